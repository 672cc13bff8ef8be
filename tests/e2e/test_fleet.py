"""Two models of two teams on one Prometheus and Alertmanager: one dashboard serves both, each with its own windows,
and a drift in one model notifies its team only.

The servers are those of ``fleet`` (one per module, as one cluster serves the fleet); the scenarios run in order.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from components.contracts import MODEL_LABEL, TEAM_LABEL
from components.monitors.config import ModelMonitorsConfig
from components.monitors.drift_rules import FEATURE_DRIFT_ALERT
from components.monitors.rule_model import WINDOW_LABEL
from tests.e2e.conftest import TIMINGS
from tests.e2e.dashboard import OVERVIEW_CONFIG_MAP, expand, queries_by_row, query_variables
from tests.e2e.fleet import FLEET, Fleet, running_fleet
from tests.processes import poll
from tests.traffic import drifted

pytestmark = pytest.mark.e2e

DRIFTED_MODEL = "churn"
"""Owned by team growth, whose only receiver is its Slack channel."""
OTHER_MODEL = "fraud-detector"
"""Owned by team fraud (PagerDuty and a webhook); its traffic stays healthy."""


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    with running_fleet(tmp_path_factory.mktemp("fleet")) as servers:
        yield servers


def dashboard(fleet: Fleet) -> dict[str, Any]:
    [config_map] = [r for r in fleet.run.by_type("kubernetes:core/v1:ConfigMap")
                    if r.name == OVERVIEW_CONFIG_MAP]
    return json.loads(next(iter(config_map.inputs["data"].values())))  # type: ignore[no-any-return]


def model_queries(fleet: Fleet, model: str) -> dict[str, list[str]]:
    """The Model row's expressions with the dashboard's variables resolved for ``model``, by panel title."""
    board = dashboard(fleet)
    declared = fleet.models[model]
    values: dict[str, str] = {}
    for name, match, label in query_variables(board):
        found = fleet.prom.label_values(label, expand(match, values))
        expected = declared.service_monitor["metadata"]["namespace"] if name == "namespace" else model
        assert expected in found, f"variable {name} offers {found}, not {expected}"
        values[name] = expected
    interval = declared.service_monitor["spec"]["endpoints"][0]["interval"]
    queries: dict[str, list[str]] = {}
    for title, expr in queries_by_row(board, {"Model"}):
        queries.setdefault(title, []).append(expand(expr, values, interval))
    return queries


def test_one_dashboard_shows_each_model_with_its_own_windows(fleet: Fleet) -> None:
    # The same panels, the model variable set to each model in turn: each shows its model's drift and accuracy
    # over that model's own windows, which its recordings carry as the `window` label.
    for model, settings in FLEET.items():
        monitors = ModelMonitorsConfig.model_validate(settings.get("monitors", {}))
        short_window, accuracy_window = monitors.drift.short_window, monitors.accuracy.window
        queries = model_queries(fleet, model)

        expected = {"Feature drift: PSI over the short window": {short_window},
                    "Feature drift: JS distance over the short window": {short_window},
                    "Accuracy": {accuracy_window}}

        def shown(queries: dict[str, list[str]] = queries) -> dict[str, set[str]]:
            """The windows each drift and accuracy panel shows (its first query: the statistic)."""
            return {title: {s["metric"].get(WINDOW_LABEL, "") for s in fleet.prom.query(queries[title][0])}
                    for title in ("Feature drift: PSI over the short window",
                                  "Feature drift: JS distance over the short window", "Accuracy")}

        poll(f"{model}'s drift and accuracy panels over its own windows",
             lambda expected=expected, shown=shown: shown() == expected,
             timeout=120, interval=1.0, diagnose=lambda shown=shown: f"shown: {shown()}\n{fleet.diagnose()}")
        for title, expressions in queries.items():
            for expr in expressions:
                assert all(s["metric"].get("model_name") in (None, model) for s in fleet.prom.query(expr)), (
                    f"{title} shows another model than {model}"
                )
    windows_of = {m: ModelMonitorsConfig.model_validate(FLEET[m].get("monitors", {})).drift.short_window for m in FLEET}
    assert len(set(windows_of.values())) == 2, f"the two models' windows must differ: {windows_of}"


def test_a_drift_in_one_model_notifies_its_team_only(fleet: Fleet) -> None:
    since = time.time()
    drifting = fleet.models[DRIFTED_MODEL].traffic
    assert drifting is not None
    onset = drifting.onset(drifting.set_profile(drifted("f6", 3.0)))
    notification = fleet.receiver.wait_for("growth-slack", FEATURE_DRIFT_ALERT, "firing", since=since,
                                           timeout=300)
    TIMINGS["fleet: drift start to the team's notification (s)"] = notification.received_at - onset
    firing = [a for a in fleet.prom.alerts() if a["labels"].get("alertname") == FEATURE_DRIFT_ALERT
              and a["state"] == "firing"]
    assert {(a["labels"][MODEL_LABEL], a["labels"][TEAM_LABEL], a["labels"]["feature"]) for a in firing} == {
        (DRIFTED_MODEL, "growth", "f6")
    }, firing
    # Alertmanager routed the alert to the team's receiver only.
    routed = {(a["labels"][MODEL_LABEL], tuple(sorted(r["name"] for r in a["receivers"]))) for a in fleet.am.alerts()
              if a["labels"].get("alertname") == FEATURE_DRIFT_ALERT and a["status"]["state"] == "active"}
    assert routed == {(DRIFTED_MODEL, ("growth-slack",))}, routed
    # A group interval later, no other receiver has heard of it: not the other team, not the platform.
    time.sleep(fleet.time_scale * 5 * 60 + 2)
    others = [n for n in fleet.receiver.notifications(since=since) if n.receiver != "growth-slack"]
    assert [(n.receiver, sorted(n.names())) for n in others if FEATURE_DRIFT_ALERT in n.names()] == [], (
        fleet.receiver.describe(since)
    )
    assert fleet.receiver.errors == []
