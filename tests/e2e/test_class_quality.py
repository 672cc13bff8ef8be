"""Quality from ground truth, end to end: feedback that says one class is mostly mispredicted fires the per-class
recall alert for that class alone, and feedback that is wrong on every class alike fires the accuracy alert alone.

Two scenarios, in order, on one set of servers of their own (``conftest.trio``, module-scoped); each starts from
healthy traffic and ends by returning to it and waiting until every alert it fired has resolved, so the servers are
left healthy. Before the first, the model's distributions are read as the dashboard reads them.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from model_service import contract

from components.monitors.class_quality_rules import CLASS_RECALL_ALERT, RECALL_FLOOR, actual_volume, recall
from components.monitors.distribution_panels import DISTRIBUTIONS_ROW, WINDOW_VARIABLE
from components.monitors.distribution_rules import WINDOW_ROLES
from components.monitors.model_rules import ACCURACY_ALERT
from tests.e2e.conftest import TIMINGS
from tests.e2e.dashboard import expand, queries_by_row, query_variables
from tests.e2e.scenario import alerts_of, firing, scope, seconds
from tests.e2e.stack import Trio
from tests.processes import poll
from tests.traffic import HEALTHY, relabelled, scored

pytestmark = pytest.mark.e2e

TRUE_CLASS, REPORTED_CLASS = "class_0", "class_1"
"""The feedback reports class_1 for every row of class_0: of the feedback that names class_1, about half are rows
the model (rightly) called class_0, so class_1's recall halves, under the default floor of 60%. class_0 is named by
no new feedback: once a window has passed it has no recall at all. class_2 keeps the model's own recall (about
92%). A third of all feedback is now wrong, so overall accuracy falls to about 60%, under its floor
of 80%: the accuracy alert must fire with the class alert, and no other alert may."""
SCORED_ACCURACY = 0.7
"""Feedback right on 70% of the predictions, its errors spread over the other classes: accuracy 70% is under the
80% floor, while each class's recall stays about 68-71% (the sample's classes are nearly balanced), above 60%."""


def notified_names(trio: Trio, since: float) -> set[str]:
    return {name for n in trio.receiver.notifications(since=since) for name in n.names()}


def alert_deadline(trio: Trio) -> float:
    """The accuracy window to fill with the new feedback, the alerts' ``for``, Alertmanager's group wait, and a
    generous margin for a machine the suite shares."""
    monitors = trio.declared.monitors
    return seconds(trio, monitors.accuracy.window) + seconds(trio, "15m") + 120


def back_to_healthy(trio: Trio, resolved: tuple[str, ...], since: float) -> None:
    """Healthy traffic again, until every alert in ``resolved`` has been notified resolved and nothing fires."""
    restored = time.time()
    trio.traffic.set_profile(HEALTHY)
    for name in resolved:
        trio.receiver.wait_for("webhook", name, "resolved", since=restored, timeout=alert_deadline(trio))
    poll("no alert firing", lambda: not firing(trio), timeout=60, interval=0.5, diagnose=trio.diagnose)
    assert trio.receiver.errors == [] and trio.traffic.errors == []
    assert notified_names(trio, since) <= set(resolved), trio.receiver.describe(since)


def recorded(trio: Trio, record: str) -> dict[str, float]:
    """A per-class recording of the service, by class (``actual_class``)."""
    return {s["metric"][contract.LABEL_ACTUAL_CLASS]: float(s["value"][1])
            for s in trio.prom.query(f"{record}{{{scope(trio)}}}")}


# ---------------------------------------------------------------------------------------------------------
# 0. the distributions the dashboard draws
# ---------------------------------------------------------------------------------------------------------


def test_the_distributions_row_draws_every_features_live_and_training_shares(trio: Trio) -> None:
    trio.deploy(faults=None)
    trio.traffic.set_profile(HEALTHY)
    dashboard = trio.declared.dashboard
    values: dict[str, str] = {}
    for name, match, label in query_variables(dashboard):
        values[name] = trio.declared.namespace if name == "namespace" else trio.declared.model_name
        assert values[name] in trio.prom.label_values(label, expand(match, values))
    monitors = trio.declared.monitors
    windows = dict(zip(WINDOW_ROLES, (monitors.drift.short_window, monitors.drift.long_window), strict=True))
    features = (*contract.SAMPLE_FEATURE_NAMES, contract.PREDICTION_FEATURE)
    for role, window in windows.items():
        picked = {**values, WINDOW_VARIABLE: role}
        queries = [(title, expand(expr, picked)) for title, expr in queries_by_row(dashboard, {DISTRIBUTIONS_ROW})]
        assert len(queries) == 4, queries

        def answers(queries: list[tuple[str, str]] = queries) -> list[list[dict[str, Any]]] | None:
            results = [trio.prom.query(expr) for _, expr in queries]
            return results if all(results) else None

        results = poll(f"distribution queries over the {role} ({window}) answer", answers, timeout=60, interval=1.0,
                       diagnose=trio.diagnose)
        assert isinstance(results, list)
        for (title, _), series in zip(queries, results, strict=True):
            shares: dict[str, float] = {}
            for sample in series:
                feature = sample["metric"][contract.LABEL_FEATURE]
                assert sample["metric"]["slot"].endswith(sample["metric"][contract.LABEL_BIN]), sample
                shares[feature] = shares.get(feature, 0.0) + float(sample["value"][1])
            # Each feature's bars, live or training, are its whole distribution.
            assert all(total == pytest.approx(1.0, abs=1e-6) for total in shares.values()), (title, shares)
            expected = {contract.PREDICTION_FEATURE} if "class mix" in title else set(features) - {
                contract.PREDICTION_FEATURE}
            assert set(shares) == expected, (title, sorted(shares))


# ---------------------------------------------------------------------------------------------------------
# 1. one class mostly mispredicted
# ---------------------------------------------------------------------------------------------------------


def test_feedback_that_one_class_is_missed_fires_its_recall_alert_and_the_accuracy_alert(trio: Trio) -> None:
    trio.deploy(faults=None)
    trio.traffic.set_profile(HEALTHY)
    monitors = trio.declared.monitors
    accuracy = monitors.accuracy
    # Every class has a recall over the healthy window first, all above the floor: the alert is able to fire.
    poll("every class's recall recorded", lambda: len(recorded(trio, recall(accuracy.window))) == 3, timeout=60,
         interval=0.5, diagnose=trio.diagnose)
    assert min(recorded(trio, recall(accuracy.window)).values()) > accuracy.class_recall_floor
    assert firing(trio) == []

    onset = trio.traffic.onset(trio.traffic.set_profile(relabelled(TRUE_CLASS, REPORTED_CLASS)))
    posted = trio.receiver.wait_for("webhook", CLASS_RECALL_ALERT, "firing", since=onset,
                                    timeout=alert_deadline(trio))
    TIMINGS["class recall: onset to notification (s)"] = posted.received_at - onset
    print(f"\nfeedback relabelled to notification received: {posted.received_at - onset:.1f} s")
    [labels] = alerts_of(posted, CLASS_RECALL_ALERT, "firing")
    assert labels[contract.LABEL_ACTUAL_CLASS] == REPORTED_CLASS, labels
    assert (labels["severity"], labels["namespace"], labels["job"], labels["model_name"], labels["model"]) == (
        "warning", trio.declared.namespace, trio.declared.job, trio.declared.model_name, trio.declared.model_name)
    assert labels["model_version"]
    # A warning: the ticket receivers get it, the pager does not.
    trio.receiver.wait_for("slack", CLASS_RECALL_ALERT, "firing", since=onset, timeout=30)
    assert all(CLASS_RECALL_ALERT not in n.names() for n in trio.receiver.notifications("pagerduty", since=onset))

    # The accuracy alert fires too (a third of the feedback is wrong), and nothing else, for no other class.
    trio.receiver.wait_for("webhook", ACCURACY_ALERT, "firing", since=onset, timeout=alert_deadline(trio))
    now_firing = firing(trio)
    assert sorted((a["alertname"], a.get(contract.LABEL_ACTUAL_CLASS, "")) for a in now_firing) == [
        (ACCURACY_ALERT, ""), (CLASS_RECALL_ALERT, REPORTED_CLASS)], now_firing
    assert notified_names(trio, onset) == {CLASS_RECALL_ALERT, ACCURACY_ALERT}, trio.receiver.describe(onset)

    # What the alert read: the reported class under its floor with the volume to weigh it, the other classes above
    # theirs (class_0's recall, while the window still holds feedback from before the change, is the model's own).
    recalls, volumes = recorded(trio, recall(accuracy.window)), recorded(trio, actual_volume(accuracy.window))
    floors = recorded(trio, RECALL_FLOOR)
    assert recalls[REPORTED_CLASS] < floors[REPORTED_CLASS] == accuracy.class_recall_floor, (recalls, floors)
    assert volumes[REPORTED_CLASS] >= accuracy.min_class_feedback, volumes
    assert all(recalls[name] > floors[name] for name in recalls if name != REPORTED_CLASS), recalls
    TIMINGS["class recall: recall of the missed class when checked"] = recalls[REPORTED_CLASS]

    back_to_healthy(trio, (CLASS_RECALL_ALERT, ACCURACY_ALERT), onset)


# ---------------------------------------------------------------------------------------------------------
# 2. feedback wrong on every class alike
# ---------------------------------------------------------------------------------------------------------


def test_feedback_wrong_on_every_class_alike_fires_the_accuracy_alert_alone(trio: Trio) -> None:
    trio.deploy(faults=None)
    trio.traffic.set_profile(HEALTHY)
    accuracy = trio.declared.monitors.accuracy
    # A window of healthy feedback first: every class's recall back at the model's own, above the accuracy floor.
    def recovered() -> bool:
        recalls = recorded(trio, recall(accuracy.window))
        return len(recalls) == 3 and min(recalls.values()) > accuracy.floor

    poll("every class's recall back at the model's own", recovered, timeout=alert_deadline(trio), interval=0.5,
         diagnose=trio.diagnose)
    assert firing(trio) == []

    onset = trio.traffic.onset(trio.traffic.set_profile(scored(SCORED_ACCURACY)))
    posted = trio.receiver.wait_for("webhook", ACCURACY_ALERT, "firing", since=onset, timeout=alert_deadline(trio))
    TIMINGS["accuracy: onset to notification (s)"] = posted.received_at - onset
    print(f"\naccuracy lowered to notification received: {posted.received_at - onset:.1f} s")
    [labels] = alerts_of(posted, ACCURACY_ALERT, "firing")
    assert (labels["severity"], labels["namespace"], labels["job"], labels["model_name"]) == (
        "warning", trio.declared.namespace, trio.declared.job, trio.declared.model_name), labels
    trio.receiver.wait_for("slack", ACCURACY_ALERT, "firing", since=onset, timeout=30)
    assert all(ACCURACY_ALERT not in n.names() for n in trio.receiver.notifications("pagerduty", since=onset))

    # Accuracy under its floor, every class's recall above its own: the accuracy alert alone.
    measured = trio.prom.value(f"model:feedback_accuracy:ratio{accuracy.window}{{{scope(trio)}}}")
    assert measured is not None and measured < accuracy.floor, measured
    recalls = recorded(trio, recall(accuracy.window))
    assert len(recalls) == 3 and min(recalls.values()) > accuracy.class_recall_floor, recalls
    assert [a["alertname"] for a in firing(trio)] == [ACCURACY_ALERT], firing(trio)
    assert notified_names(trio, onset) == {ACCURACY_ALERT}, trio.receiver.describe(onset)
    pending = [a["labels"] for a in trio.prom.alerts() if a["labels"]["alertname"] == CLASS_RECALL_ALERT]
    assert pending == [], pending

    back_to_healthy(trio, (ACCURACY_ALERT,), onset)
