"""A shift of an informative feature moves the model's predictions: the prediction drift alert fires, with the
input drift of that feature, possibly its input-quality alert (values past the training range) and, since the
shifted inputs are scored against their true class, the accuracy alerts of the model and of the classes that
lose predictions. Nothing else fires.

``f2`` shifted by two training standard deviations moves the sample model's class mix from about a third each to
about 0.14 / 0.69 / 0.17 (PSI about 0.58 against the training mix) and its accuracy from 0.89 to 0.60, computed
with the model on its held-out rows: well past the 0.2 PSI threshold and the 0.8 accuracy floor. The module has
servers of its own, so no other scenario's alert can be mistaken for this one's.
"""

from __future__ import annotations

import time

import pytest
from model_service import contract

from components.monitors.class_quality_rules import CLASS_RECALL_ALERT
from components.monitors.data_quality_rules import INPUT_QUALITY_ALERT
from components.monitors.drift_rules import FEATURE_DRIFT_ALERT, PREDICTION_DRIFT_ALERT, observations_by_bin
from components.monitors.model_rules import ACCURACY_ALERT
from tests.e2e.conftest import TIMINGS
from tests.e2e.drift_math import reference_shares
from tests.e2e.scenario import alerts_of, firing, scope, seconds
from tests.e2e.stack import Trio
from tests.processes import poll
from tests.traffic import HEALTHY, drifted

pytestmark = pytest.mark.e2e

SHIFTED_FEATURE = "f2"
SHIFT_SIGMAS = 2.0
GAINING_CLASS = "class_1"
"""The class the shift pushes predictions towards (0.69 of them, from about a third)."""


def test_an_informative_shift_fires_prediction_drift_with_its_inputs_drift_and_nothing_else(trio: Trio) -> None:
    monitors = trio.declared.monitors
    trio.deploy(faults=None)
    trio.traffic.set_profile(HEALTHY)
    minimum = monitors.drift.min_window_observations
    windows = (monitors.drift.short_window, monitors.drift.long_window)
    volume = " and ".join(
        f"min(model_feature:drift_observations:increase{w}{{{scope(trio)}}}) >= {minimum}" for w in windows
    )
    poll("drift windows at the minimum volume", lambda: trio.prom.query(volume), timeout=120, interval=0.5,
         diagnose=trio.diagnose)
    assert firing(trio) == [], "healthy traffic fired alerts"

    onset = trio.traffic.onset(trio.traffic.set_profile(drifted(SHIFTED_FEATURE, SHIFT_SIGMAS)))
    deadline = seconds(trio, monitors.drift.short_window) + seconds(trio, "10m") + 60
    posted = trio.receiver.wait_for("webhook", PREDICTION_DRIFT_ALERT, "firing", since=onset, timeout=deadline)
    TIMINGS["prediction drift: shift start to notification (s)"] = posted.received_at - onset

    labels = alerts_of(posted, PREDICTION_DRIFT_ALERT, "firing")
    assert labels and {a["feature"] for a in labels} == {contract.PREDICTION_FEATURE}, labels
    assert {a["severity"] for a in labels} == {"warning"}
    assert {a["statistic"] for a in labels} <= {"psi", "js_distance"}
    assert all(a["namespace"] == trio.declared.namespace and a["job"] == trio.declared.job for a in labels)
    trio.receiver.wait_for("slack", PREDICTION_DRIFT_ALERT, "firing", since=onset, timeout=30)

    # The predictions moved where the model sends shifted rows: the gaining class's share of the short window
    # is above its training share.
    reference = reference_shares(trio.workdir / "model")[contract.PREDICTION_FEATURE]
    counts = {r["metric"]["bin"]: float(r["value"][1]) for r in trio.prom.query(
        f'{observations_by_bin(monitors.drift.short_window)}{{{scope(trio)}, feature="{contract.PREDICTION_FEATURE}"}}'
    )}
    share = counts[GAINING_CLASS] / sum(counts.values())
    assert share > reference[GAINING_CLASS] + 0.15, (share, reference)

    # Input drift on the shifted feature only, and nothing else but what the shift does to the model: accuracy,
    # the recall of the classes that lose predictions to the gaining one (never the gaining class's), and the
    # shifted feature's input quality (two standard deviations take about 2% of its values past the largest seen
    # in training, over the 1% a data-quality window tolerates). Watched until the accuracy alerts' own `for` has
    # passed as well.
    losing = sorted(set(reference) - {GAINING_CLASS})
    expected = {(FEATURE_DRIFT_ALERT, SHIFTED_FEATURE), (PREDICTION_DRIFT_ALERT, contract.PREDICTION_FEATURE),
                (ACCURACY_ALERT, None), (INPUT_QUALITY_ALERT, SHIFTED_FEATURE),
                *((CLASS_RECALL_ALERT, name) for name in losing)}
    watch_until = time.monotonic() + seconds(trio, "15m") + 3 * seconds(trio, monitors.evaluation_interval)
    seen: set[tuple[str, str | None]] = set()
    while time.monotonic() < watch_until:
        now = {(a["alertname"], a.get("feature", a.get(contract.LABEL_ACTUAL_CLASS))) for a in firing(trio)}
        assert now <= expected, f"unexpected alerts: {now - expected}"
        seen |= now
        time.sleep(0.5)
    assert {(FEATURE_DRIFT_ALERT, SHIFTED_FEATURE), (PREDICTION_DRIFT_ALERT, contract.PREDICTION_FEATURE)} <= seen
    assert trio.receiver.notifications("pagerduty", since=onset) == [], trio.receiver.describe(onset)
    assert trio.receiver.errors == [] and trio.traffic.errors == []
    trio.traffic.set_profile(HEALTHY)
