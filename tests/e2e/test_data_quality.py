"""Input data quality end to end: out-of-range values of one feature, counted by the service, scraped, turned into
shares by the PrometheusRule the program declares and routed by its Alertmanager configuration, fire that
feature's quality alert, and only that alert, and it resolves once the inputs are back in range.

One scenario on its own servers (``conftest.trio`` is module-scoped), starting, as every scenario does, from the
deployment and traffic it needs, and leaving healthy traffic behind.
"""

from __future__ import annotations

import time

import pytest
from model_service import contract

from components.monitors.data_quality_rules import INPUT_QUALITY_ALERT, ISSUE_LABELS, issue_ratio, records
from components.monitors.drift_rules import GROUP_LABELS, JS_THRESHOLD_SERIES, PSI_THRESHOLD_SERIES
from components.monitors.drift_rules import js_distance as js_record
from components.monitors.drift_rules import psi as psi_record
from components.monitors.rule_model import by
from tests.e2e.conftest import TIMINGS
from tests.e2e.dashboard import expand, queries_by_row, query_variables
from tests.e2e.scenario import firing, scope
from tests.e2e.stack import Trio
from tests.processes import poll
from tests.traffic import HEALTHY, out_of_range

pytestmark = pytest.mark.e2e

FEATURE = "f6"
"""A pure-noise feature of the sample model: its values move no prediction, so no other model alert can follow."""
SHARE = 0.05
"""Share of records whose f6 is out of range: five times the default maximum of 1%, yet small enough to keep f6's
drift under its thresholds. Half of these values go one training standard deviation above the largest training
value and half as far below the smallest, so the two outermost deciles grow from 10% to about 12.5% each and the
others shrink to 9.5%: PSI about 0.01 (threshold 0.2) and JS distance about 0.04 (threshold 0.1), which is the
point of the alert: drift does not see such a share, the quality shares do."""
PANEL = "Input data quality"


def firing_keys(trio: Trio) -> set[tuple[str, str | None, str | None]]:
    """``(alertname, feature, kind)`` of every alert firing in Prometheus."""
    return {(a["alertname"], a.get(contract.LABEL_FEATURE), a.get(contract.LABEL_KIND)) for a in firing(trio)}


def check_recorded_shares(trio: Trio) -> None:
    """Each recorded share equals the counters' increases divided, queried at the recording's own evaluation time:
    the rule reads exactly what the service counted. A scrape stored between the rule's evaluation and the query
    would make them differ, so a mismatch is retried at the next evaluation."""
    quality = trio.declared.monitors.data_quality
    window, rendered = quality.window, trio.scale.render(quality.window)
    selector = scope(trio)
    issues = contract.INPUT_QUALITY_ISSUES.name
    raw = (f"sum by {by(ISSUE_LABELS)} (increase({issues}{{{selector}}}[{rendered}]))\n"
           f"/ ignoring (feature, kind) group_left ()\n"
           f"sum by {by(ISSUE_LABELS[:-2])} (increase({contract.INPUT_RECORDS.name}{{{selector}}}[{rendered}]))")
    recorded_at = f'timestamp({issue_ratio(window)}{{{selector}, feature="{FEATURE}", kind="out_of_range"}})'
    for _ in range(5):
        at = float(trio.prom.query(recorded_at)[0]["value"][1])
        recorded = {(r["metric"]["feature"], r["metric"]["kind"]): float(r["value"][1])
                    for r in trio.prom.query(f"{issue_ratio(window)}{{{selector}}}", at)}
        computed = {(r["metric"]["feature"], r["metric"]["kind"]): float(r["value"][1])
                    for r in trio.prom.query(raw, at)}
        if recorded == pytest.approx(computed, rel=1e-9, abs=1e-12):
            assert len(recorded) == len(contract.SAMPLE_FEATURE_NAMES) * len(contract.INPUT_QUALITY_KINDS)
            ours = recorded[(FEATURE, contract.QUALITY_OUT_OF_RANGE)]
            assert ours > quality.max_issue_ratio
            others = {key: value for key, value in recorded.items() if key != (FEATURE, contract.QUALITY_OUT_OF_RANGE)}
            assert max(others.values()) < quality.max_issue_ratio, others
            return
        time.sleep(2 * trio.scale.seconds(trio.declared.monitors.evaluation_interval))
    pytest.fail(f"recorded shares never equalled the counters' increases: {recorded} vs {computed}")


def test_out_of_range_values_fire_that_features_quality_alert_only(trio: Trio) -> None:
    trio.deploy(faults=None)
    trio.traffic.set_profile(HEALTHY)
    monitors = trio.declared.monitors
    quality = monitors.data_quality
    selector = scope(trio)

    # Healthy first: the window holds the volume the alert needs, and the dashboard's panel has data for this model.
    volume = f"{records(quality.window)}{{{selector}}} >= {quality.min_window_records}"
    poll("data-quality window at the minimum volume", lambda: trio.prom.query(volume), timeout=60, interval=0.5,
         diagnose=trio.diagnose)
    dashboard = trio.declared.dashboard
    values: dict[str, str] = {}
    for name, match, label in query_variables(dashboard):
        values[name] = trio.declared.namespace if name == "namespace" else trio.declared.model_name
        assert values[name] in trio.prom.label_values(label, expand(match, values)), name
    interval = trio.declared.service_monitor["spec"]["endpoints"][0]["interval"]
    panel = [expand(expr, values, interval) for title, expr in queries_by_row(dashboard, {"Model"}) if title == PANEL]
    assert len(panel) == 2, panel
    poll(f"every query of the {PANEL} panel returns data", lambda: all(trio.prom.query(q) for q in panel),
         timeout=60, interval=1.0, diagnose=trio.diagnose)
    over = trio.prom.query(f"{issue_ratio(quality.window)}{{{selector}}} > {quality.max_issue_ratio}")
    assert over == [], f"healthy traffic over the maximum share: {over}"

    onset = trio.traffic.onset(trio.traffic.set_profile(out_of_range(FEATURE, SHARE)))
    deadline = trio.scale.seconds(quality.window) + trio.scale.seconds(quality.for_) + 60
    posted = trio.receiver.wait_for("webhook", INPUT_QUALITY_ALERT, "firing", since=onset, timeout=deadline)
    TIMINGS["out-of-range start to notification (s)"] = posted.received_at - onset
    print(f"\nout-of-range {FEATURE} started to notification received: {posted.received_at - onset:.1f} s")

    # The notification names the feature, the kind, the model and the severity that routed it.
    alerts = [a.labels for a in posted.alerts if a.name == INPUT_QUALITY_ALERT and a.status == "firing"]
    assert [(a["feature"], a["kind"], a["severity"], a["model"], a["model_name"], a["namespace"], a["job"])
            for a in alerts] == [(FEATURE, contract.QUALITY_OUT_OF_RANGE, "warning", trio.declared.model_name,
                                  trio.declared.model_name, trio.declared.namespace, trio.declared.job)], alerts
    trio.receiver.wait_for("slack", INPUT_QUALITY_ALERT, "firing", since=onset, timeout=30)
    assert all(INPUT_QUALITY_ALERT not in n.names() for n in trio.receiver.notifications("pagerduty", since=onset))

    # Prometheus: that feature and kind, and no other alert (no drift either: see SHARE).
    assert firing_keys(trio) == {(INPUT_QUALITY_ALERT, FEATURE, contract.QUALITY_OUT_OF_RANGE)}, trio.prom.alerts()
    for window in (monitors.drift.short_window, monitors.drift.long_window):
        for record, threshold in ((psi_record(window), PSI_THRESHOLD_SERIES), (js_record(window), JS_THRESHOLD_SERIES)):
            drifted = trio.prom.query(f"{record}{{{selector}}} >= on {by(GROUP_LABELS)} {threshold}{{{selector}}}")
            assert drifted == [], f"out-of-range values drifted a feature: {drifted}"
    check_recorded_shares(trio)
    # The records were served: the service answered every prediction of the last rounds.
    for report in trio.traffic.reports[-3:]:
        assert set(report.statuses) <= {"predict:200", "feedback:200"}, report.statuses
    assert trio.traffic.errors == []

    # Back in range, the share falls under the maximum within a window and the alert resolves.
    healed = trio.traffic.onset(trio.traffic.set_profile(HEALTHY))
    deadline = trio.scale.seconds(quality.window) + 90
    trio.receiver.wait_for("webhook", INPUT_QUALITY_ALERT, "resolved", since=healed, timeout=deadline)
    assert firing_keys(trio) == set(), trio.prom.alerts()
    assert trio.receiver.errors == []
