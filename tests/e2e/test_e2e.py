"""The monitors work: the service's metrics, scraped by a real Prometheus through the scrape configuration the
ServiceMonitor becomes, evaluated by the PrometheusRule the program declares, routed by the Alertmanager
configuration the monitoring component renders, reach a receiver when and only when they should.

Five scenarios, in order, on one set of servers (``conftest.trio``); each asserts on Prometheus' HTTP API and
on what the receivers got, and starts by establishing the deployment and traffic it needs.
"""

from __future__ import annotations

import json
import time
from datetime import datetime

import numpy as np
import pytest
from model_service import contract

from components.monitors.drift_rules import (
    FEATURE_DRIFT_ALERT,
    GROUP_LABELS,
    JS_THRESHOLD_SERIES,
    PREDICTION_DRIFT_ALERT,
    PSI_THRESHOLD_SERIES,
    observations_by_bin,
)
from components.monitors.drift_rules import js_distance as js_record
from components.monitors.drift_rules import psi as psi_record
from components.monitors.model_rules import TARGET_ABSENT_ALERT, TARGET_DOWN_ALERT
from components.monitors.model_slos import AVAILABILITY_ALERT, LATENCY_ALERT, latency_slo_name
from components.monitors.rule_model import TimeScale, by
from tests.e2e.conftest import TIMINGS
from tests.e2e.dashboard import expand, queries_by_row, query_variables
from tests.e2e.drift_math import js_of, psi_of, reference_shares
from tests.e2e.pictures import Scenario, alert_moments, draw
from tests.e2e.receiver import Notification
from tests.e2e.scenario import active, alerts_of, scope, seconds, wait_firing
from tests.e2e.stack import TEST_CREDENTIALS, Trio
from tests.processes import poll
from tests.prometheus_api import alert_states
from tests.traffic import HEALTHY, drifted

pytestmark = pytest.mark.e2e

DRIFTED_FEATURE = "f6"
"""A pure-noise feature of the sample model: shifting it moves no prediction, so only its own alert may fire."""
DRIFT_SIGMAS = 3.0
FAULTS = {"errorRatio": 0.5, "extraLatencySeconds": 1.5, "latencyRatio": 0.5}
"""Half the predictions fail and half are 1.5 s late: past the availability SLO and both latency SLOs (the stack's
thresholds relaxed by ``stack.SUITE_LATENCY_FACTOR``: 250 ms and 1 s)."""


# ---------------------------------------------------------------------------------------------------------
# 1. healthy traffic
# ---------------------------------------------------------------------------------------------------------


def test_healthy_traffic_fills_the_dashboard_and_fires_no_alert(trio: Trio) -> None:
    trio.deploy(faults=None)
    trio.traffic.set_profile(HEALTHY)
    since = time.time()
    monitors = trio.declared.monitors
    windows = (monitors.drift.short_window, monitors.drift.long_window)

    # The drift alerts can only fire once both windows hold the minimum volume: wait for it, so that "no
    # alert" below is an answer of rules able to fire.
    minimum = monitors.drift.min_window_observations
    volume = " and ".join(
        f"min(model_feature:drift_observations:increase{w}{{{scope(trio)}}}) >= {minimum}" for w in windows
    )
    poll("drift windows at the minimum volume", lambda: trio.prom.query(volume), timeout=60, interval=0.5,
         diagnose=trio.diagnose)

    # Variables first, as Grafana resolves them; then every query of the interface and model rows.
    dashboard = trio.declared.dashboard
    values: dict[str, str] = {}
    for name, match, label in query_variables(dashboard):
        found = trio.prom.label_values(label, expand(match, values))
        expected = trio.declared.namespace if name == "namespace" else trio.declared.model_name
        assert expected in found, f"dashboard variable {name} offers {found}, not {expected}"
        values[name] = expected
    scrape_interval = trio.declared.service_monitor["spec"]["endpoints"][0]["interval"]
    queries = [(title, expand(expr, values, scrape_interval))
               for title, expr in queries_by_row(dashboard, {"Interface", "Model"})]
    assert len(queries) >= 10, queries

    def empty() -> list[str]:
        return [f"{title}: {expr}" for title, expr in queries if not trio.prom.query(expr)]

    poll("every interface and model query of the dashboard returns data", lambda: not empty(), timeout=60,
         interval=1.0, diagnose=lambda: "no data:\n" + "\n".join(empty()))

    # No alert fires for longer than the longest `for` of an alert this traffic could fire. (A pending alert is
    # allowed: one scrape lost on a starved machine makes the target alerts pend, which is what `for` absorbs.)
    observe_until = time.monotonic() + seconds(trio, "10m") + 3 * seconds(trio, monitors.evaluation_interval)
    while time.monotonic() < observe_until:
        firing = [a for a in trio.prom.alerts() if a["state"] == "firing"]
        assert firing == [], f"healthy traffic fired alerts: {json.dumps(firing, indent=1)[:3000]}"
        time.sleep(0.5)
    # And not by a narrow margin: every drift statistic of every feature is under its threshold.
    for window in windows:
        for record, threshold in ((psi_record(window), PSI_THRESHOLD_SERIES),
                                  (js_record(window), JS_THRESHOLD_SERIES)):
            over = trio.prom.query(
                f"{record}{{{scope(trio)}}} >= on {by(GROUP_LABELS)} {threshold}{{{scope(trio)}}}"
            )
            assert over == [], f"healthy traffic over a drift threshold: {over}"
    assert trio.am.alerts() == []
    assert trio.receiver.notifications(since=since) == [], trio.receiver.describe(since)
    assert trio.receiver.errors == []
    assert trio.traffic.errors == []
    answered = [r.statuses.get("predict:200", 0) for r in trio.traffic.reports[-3:]]
    assert all(answered), f"the service stopped answering the traffic: {answered}"


# ---------------------------------------------------------------------------------------------------------
# 2. sudden drift on one feature
# ---------------------------------------------------------------------------------------------------------


def test_sudden_drift_fires_that_features_alert_only_with_the_statistics_numpy_computes(trio: Trio) -> None:
    trio.deploy(faults=None)
    monitors = trio.declared.monitors
    onset = trio.traffic.onset(trio.traffic.set_profile(drifted(DRIFTED_FEATURE, DRIFT_SIGMAS)))
    deadline = seconds(trio, monitors.drift.short_window) + seconds(trio, "10m") + 60
    posted = trio.receiver.wait_for("webhook", FEATURE_DRIFT_ALERT, "firing", since=onset, timeout=deadline)
    TIMINGS["drift start to notification (s)"] = posted.received_at - onset
    print(f"\ndrift of {DRIFTED_FEATURE} started to notification received: {posted.received_at - onset:.1f} s")

    # The notification names the feature and the severity that routed it.
    drifted_alerts = alerts_of(posted, FEATURE_DRIFT_ALERT, "firing")
    assert drifted_alerts and all(a["feature"] == DRIFTED_FEATURE for a in drifted_alerts), drifted_alerts
    assert {a["severity"] for a in drifted_alerts} == {"warning"}
    assert {a["statistic"] for a in drifted_alerts} <= {"psi", "js_distance"}
    assert all(a["namespace"] == trio.declared.namespace and a["job"] == trio.declared.job for a in drifted_alerts)
    trio.receiver.wait_for("slack", FEATURE_DRIFT_ALERT, "firing", since=onset, timeout=30)

    # Prometheus: that feature only, and not the prediction (the noise feature moves no prediction).
    feature_alerts = [a for a in trio.prom.alerts() if a["labels"]["alertname"] == FEATURE_DRIFT_ALERT]
    assert {a["labels"]["feature"] for a in feature_alerts} == {DRIFTED_FEATURE}, feature_alerts
    assert active(trio, PREDICTION_DRIFT_ALERT, "firing") == []
    assert all(FEATURE_DRIFT_ALERT not in n.names() for n in trio.receiver.notifications("pagerduty", since=onset))

    check_drift_statistics(trio)
    draw_the_drift(trio, onset)
    trio.traffic.set_profile(HEALTHY)


def draw_the_drift(trio: Trio, onset: float) -> None:
    """The pictures ``make demo`` draws, from this run's recordings: the alert's moments are in them."""
    monitors = trio.declared.monitors
    scenario = Scenario(selector=scope(trio), feature=DRIFTED_FEATURE, short_window=monitors.drift.short_window,
                        period=monitors.slo_period, start=onset - seconds(trio, "10m"), end=time.time(),
                        step=seconds(trio, monitors.evaluation_interval))
    moments = alert_moments(trio.prom, scenario)
    assert {"pending", "firing"} <= set(moments) and moments["pending"] <= moments["firing"], moments
    for path in draw(trio.prom, scenario, trio.workdir / "pictures"):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000, path
    TIMINGS["drift picture: pending to firing (s)"] = moments["firing"] - moments["pending"]


def check_drift_statistics(trio: Trio) -> None:
    """PSI and JS distance as recorded by Prometheus equal numpy's and scipy's on the per-bin ``increase()``
    Prometheus returns for the same window at the same evaluation time, for every feature and both windows.

    The time is a recording's own evaluation timestamp. A scrape that started just before it but was stored
    just after the rule ran would be seen by the query and not by the rule, and on a loaded machine, where a
    scrape takes longer, that happens at many evaluations in a row: the recorded per-bin counts tell that case
    apart, so the evaluations of the last few minutes are tried, newest first, until one saw every scrape.
    """
    monitors = trio.declared.monitors
    reference = reference_shares(trio.workdir / "model")
    selector = scope(trio)
    short = monitors.drift.short_window
    now = time.time()
    evaluations = trio.prom.samples(f'{psi_record(short)}{{{selector}, feature="{DRIFTED_FEATURE}"}}',
                                    now - seconds(trio, "10m"), now)
    assert len(evaluations) == 1, evaluations
    [times] = evaluations.values()
    mismatched: list[tuple[str, str, str, float | None, float]] = []
    for attempt, at in enumerate(sorted(times, reverse=True)):
        mismatched = []
        computed: dict[tuple[str, str, str], tuple[float, float]] = {}
        for window in (short, monitors.drift.long_window):
            rendered = trio.scale.render(window)
            raw = trio.prom.query(
                f"sum by (feature, bin) (increase({contract.DRIFT_BIN_OBSERVATIONS.name}{{{selector}}}[{rendered}]))",
                at,
            )
            recorded = {(r["metric"]["feature"], r["metric"]["bin"]): float(r["value"][1])
                        for r in trio.prom.query(f"{observations_by_bin(window)}{{{selector}}}", at)}
            counts: dict[str, dict[str, float]] = {}
            for series in raw:
                feature, bin_ = series["metric"]["feature"], series["metric"]["bin"]
                counts.setdefault(feature, {})[bin_] = float(series["value"][1])
                if recorded.get((feature, bin_)) != float(series["value"][1]):
                    mismatched.append((window, feature, bin_, recorded.get((feature, bin_)),
                                       float(series["value"][1])))
            for statistic, record in (("psi", psi_record(window)), ("js", js_record(window))):
                for series in trio.prom.query(f"{record}{{{selector}}}", at):
                    assert float(series["value"][0]) == pytest.approx(at, abs=1e-3), "not the same evaluation"
                    feature = series["metric"]["feature"]
                    bins = sorted(reference[feature])
                    observed = np.array([counts[feature].get(b, 0.0) for b in bins])
                    expected = np.array([reference[feature][b] for b in bins])
                    ours = psi_of(observed, expected) if statistic == "psi" else js_of(observed, expected)
                    computed[(window, feature, statistic)] = (float(series["value"][1]), ours)
        if mismatched:
            continue
        assert len(computed) == 2 * 2 * len(reference), sorted(computed)
        for key, (prometheus, numpy) in computed.items():
            assert prometheus == pytest.approx(numpy, rel=1e-9, abs=1e-12), f"{key}: {prometheus} vs numpy {numpy}"
        drifted_psi = computed[(short, DRIFTED_FEATURE, "psi")][0]
        assert drifted_psi >= monitors.drift.psi_threshold, f"{DRIFTED_FEATURE} PSI {drifted_psi} under its threshold"
        TIMINGS["drift statistics checked at evaluation attempt"] = attempt + 1
        return
    pytest.fail(f"recorded per-bin counts never matched the raw increase() at any of {len(times)} evaluations; "
                f"at the oldest (window, feature, bin, recorded, raw): {mismatched[:5]}")


# ---------------------------------------------------------------------------------------------------------
# 3. errors and slow responses
# ---------------------------------------------------------------------------------------------------------


def test_errors_and_slow_responses_page_through_the_fast_burn_alerts(trio: Trio) -> None:
    trio.traffic.set_profile(HEALTHY)
    since = time.time()
    declared = trio.deploy(faults=FAULTS)
    env = declared.container_env()
    assert float(env["MODEL_FAULT_ERROR_RATIO"]) == FAULTS["errorRatio"], "the Deployment carries the faults"

    deadline = seconds(trio, "1h") + 60
    availability = trio.receiver.wait_for("pagerduty", AVAILABILITY_ALERT, "firing", since=since, timeout=deadline)
    labels = alerts_of(availability, AVAILABILITY_ALERT, "firing")
    assert labels and all(a["severity"] == "critical" and a["sloth_severity"] == "page" for a in labels), labels
    assert availability.body["routing_key"] == TEST_CREDENTIALS["pagerduty"], "the routing key file was read"
    assert availability.body["event_action"] == "trigger"
    slow_slo = latency_slo_name(max(slo.threshold_seconds for slo in trio.declared.monitors.latency_slos))
    latency = trio.receiver.wait_for("pagerduty", LATENCY_ALERT, "firing", since=since, timeout=deadline)
    assert any(a["sloth_slo"] == slow_slo and a["severity"] == "critical" for a in alerts_of(latency, LATENCY_ALERT))

    firing = active(trio, AVAILABILITY_ALERT, sloth_severity="page")
    assert firing and firing[0]["labels"]["severity"] == "critical", trio.diagnose()
    # The service really failed: its own counters, through the scrape, say so.
    window = trio.scale.render("5m")
    failed = trio.prom.value(
        f'sum(increase(model_http_requests_total{{{scope(trio)}, route="/predict", code="500"}}[{window}]))'
    )
    assert failed is not None and failed > 0
    # Routing: no critical alert was posted to the warning receivers.
    for notification in trio.receiver.notifications("webhook", since=since):
        assert all(a.labels.get("severity") != "critical" for a in notification.alerts), notification


# ---------------------------------------------------------------------------------------------------------
# 4. service killed
# ---------------------------------------------------------------------------------------------------------


def test_killed_service_fires_the_down_alert_which_resolves_after_restart(trio: Trio) -> None:
    since = time.time()
    pod = trio.kill_pod()
    deadline = seconds(trio, "5m") + 30
    down = trio.receiver.wait_for("webhook", TARGET_DOWN_ALERT, "firing", since=since, timeout=deadline)
    labels = alerts_of(down, TARGET_DOWN_ALERT, "firing")
    assert [(a["pod"], a["severity"], a["namespace"], a["job"]) for a in labels] == [
        (pod.name, "warning", trio.declared.namespace, trio.declared.job)
    ], labels
    trio.receiver.wait_for("slack", TARGET_DOWN_ALERT, "firing", since=since, timeout=30)
    # The only replica is down: nothing watches the model any more, which pages, for this model's job.
    absent = trio.receiver.wait_for("pagerduty", TARGET_ABSENT_ALERT, "firing", since=since, timeout=30)
    assert [(a["severity"], a["namespace"], a["job"]) for a in alerts_of(absent, TARGET_ABSENT_ALERT, "firing")] == [
        ("critical", trio.declared.namespace, trio.declared.job)
    ], absent
    assert absent.body["event_action"] == "trigger"
    assert active(trio, TARGET_DOWN_ALERT, pod=pod.name)
    assert trio.prom.value(f'{trio.up_selector()[:-1]}, pod="{pod.name}"}}') == 0.0

    restarted = time.time()
    trio.restart_pod(pod)
    deadline = seconds(trio, "5m") + 60  # group_interval bounds the resolved notification
    resolved = trio.receiver.wait_for("webhook", TARGET_DOWN_ALERT, "resolved", since=restarted, timeout=deadline)
    assert [a["pod"] for a in alerts_of(resolved, TARGET_DOWN_ALERT, "resolved")] == [pod.name]
    assert resolved.status == "resolved"
    trio.receiver.wait_for("slack", TARGET_DOWN_ALERT, "resolved", since=restarted, timeout=30)
    absent = trio.receiver.wait_for("pagerduty", TARGET_ABSENT_ALERT, "resolved", since=restarted, timeout=30)
    assert absent.body["event_action"] == "resolve"
    assert alert_states(trio.prom.alerts(), TARGET_DOWN_ALERT) == []
    assert trio.prom.value(f'{trio.up_selector()[:-1]}, pod="{pod.name}"}}') == 1.0


# ---------------------------------------------------------------------------------------------------------
# 5. Prometheus restarted while an alert fires
# ---------------------------------------------------------------------------------------------------------


def test_restarted_prometheus_keeps_its_data_and_the_alert_without_a_duplicate_page(trio: Trio) -> None:
    trio.deploy(faults=FAULTS)
    trio.traffic.set_profile(HEALTHY)
    alerting = trio.alerting
    group_interval = TimeScale(1.0).seconds(alerting.group_interval)
    repeat_interval = TimeScale(1.0).seconds(alerting.repeat_interval)
    page = {"sloth_severity": "page"}
    wait_firing(trio, AVAILABILITY_ALERT, timeout=seconds(trio, "1h") + 60, **page)

    def last_page() -> Notification | None:
        pages = trio.receiver.notifications("pagerduty", alert=AVAILABILITY_ALERT)
        return pages[-1] if pages else None

    def settled() -> bool:
        """Alertmanager has paged for the alert as it fires now, and nothing has changed for a while."""
        last = last_page()
        return (
            last is not None and last.status == "firing" and bool(active(trio, AVAILABILITY_ALERT, **page))
            and time.time() - last.received_at > group_interval + 1
        )

    poll("the page for the firing alert sent and settled", settled, timeout=seconds(trio, "1h") + 60,
         diagnose=trio.diagnose)
    before = last_page()
    assert before is not None
    pages_before = len(trio.receiver.notifications("pagerduty", alert=AVAILABILITY_ALERT))

    # Samples from before the restart, read at a fixed time before it.
    sampled_at = time.time() - 2
    samples = f'sum(model_http_requests_total{{{scope(trio)}, route="/predict"}})'
    history = f"sum(count_over_time({trio.up_selector()}[{trio.scale.render('1h')}]))"
    before_values = (trio.prom.value(samples, sampled_at), trio.prom.value(history, sampled_at))
    assert None not in before_values

    stopped_at = trio.restart_prometheus()
    restarted_in = time.time() - stopped_at
    TIMINGS["Prometheus restart (s)"] = restarted_in

    after_values = (trio.prom.value(samples, sampled_at), trio.prom.value(history, sampled_at))
    assert after_values == before_values, "samples from before the restart changed or were lost"
    firing = wait_firing(trio, AVAILABILITY_ALERT, timeout=30, **page)
    assert firing[0]["labels"]["severity"] == "critical"

    def resent() -> bool:
        """The restarted Prometheus has sent the alert again: Alertmanager updated it after the restart."""
        for alert in trio.am.alerts():
            labels = alert["labels"]
            if labels.get("alertname") == AVAILABILITY_ALERT and labels.get("sloth_severity") == "page":
                updated = datetime.fromisoformat(alert["updatedAt"].replace("Z", "+00:00")).timestamp()
                return updated > stopped_at and alert["status"]["state"] == "active"
        return False

    # A restarted Prometheus first restores the alert's state, then re-evaluates and re-sends it; on a loaded
    # machine that takes longer than the scaled intervals suggest, so the wait is generous (it ends when seen).
    poll("the alert re-sent to Alertmanager by the restarted Prometheus", resent, timeout=90, diagnose=trio.diagnose)
    # Alertmanager flushes a group every group_interval: two of them with nothing new is the answer.
    quiet_until = time.time() + 2 * group_interval + TimeScale(1.0).seconds(alerting.group_wait) + 1
    while time.time() < quiet_until:
        time.sleep(0.2)
    assert time.time() < before.received_at + repeat_interval, "the check outlasted the repeat interval"
    after = trio.receiver.notifications("pagerduty", alert=AVAILABILITY_ALERT)
    assert len(after) == pages_before, "a duplicate page after the restart:\n" + trio.receiver.describe(stopped_at)
    assert active(trio, AVAILABILITY_ALERT, **page), "the alert stopped firing after the restart"
    assert trio.receiver.errors == []
