"""Per-class recall and precision under promtool: the recordings equal numpy's on a small confusion matrix, and
``ModelClassRecallBelowFloor`` fires for the class under its floor, at the time its window and ``for`` imply,
and stays silent above the floor and under the volume guard.

Expected values and times come from numpy on the cells' counts and from Prometheus 3's ``increase()`` as
``tests/promsim.py`` computes it, never from the rules under test.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from model_service import contract

from components.monitors.class_quality_rules import (
    CLASS_RECALL_ALERT,
    PRECISION_OVER_WINDOW,
    RECALL_FLOOR,
    RECALL_OVER_WINDOW,
    actual_volume,
    precision,
    recall,
)
from components.monitors.config import ModelMonitorsConfig
from components.monitors.rule_model import AlertingRule, RuleGroup, selector
from tests.monitor_rules import MINUTE, MODEL, NAMESPACE, groups_for, monitors_config
from tests.promsim import Series, increase
from tests.rule_testing import expected_alert, run_rule_tests, series_values

VERSION = "1.0.0"
TARGET = {"namespace": NAMESPACE, "job": MODEL, "pod": f"{MODEL}-0", "instance": "10.0.0.1:8080"}
IDENTITY = {"namespace": NAMESPACE, "job": MODEL, "model_name": MODEL, "model_version": VERSION}
CLASSES = ("class_0", "class_1", "class_2", "class_3")
TOLERANCE = 1e-9


def class_groups(config: ModelMonitorsConfig) -> tuple[RuleGroup, ...]:
    return tuple(g for g in groups_for(config) if g.name.endswith("-class-quality"))


def alert_of(groups: tuple[RuleGroup, ...]) -> AlertingRule:
    return next(a for g in groups for a in g.alerts if a.alert == CLASS_RECALL_ALERT)


def cell_series(predicted: str, actual: str, values: list[float], version: str = VERSION) -> dict[str, str]:
    outcome = contract.OUTCOME_CORRECT if predicted == actual else contract.OUTCOME_INCORRECT
    return {
        "series": selector(contract.FEEDBACK.name, **TARGET, model_name=MODEL, model_version=version,
                           predicted_class=predicted, actual_class=actual, outcome=outcome),
        "values": series_values(values),
    }


def labels_text(labels: Mapping[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def close_to(expr: str, value: float, labels: Mapping[str, str], at: str = "1h") -> dict[str, Any]:
    return {"expr": f"abs({expr} - {float(value)!r}) < bool {TOLERANCE}", "eval_time": at,
            "exp_samples": [{"labels": labels_text(labels), "value": 1}]}


# ---------------------------------------------------------------------------------------------------------
# Recordings against numpy
# ---------------------------------------------------------------------------------------------------------

CONFUSION = np.array([
    # predicted: class_0 class_1 class_2 class_3; one row per actual class
    [50, 8, 2, 0],
    [10, 30, 10, 0],
    [0, 5, 85, 0],
    [0, 0, 0, 0],  # a class no feedback names: no recall, no precision (not 0/0, not 0)
])


@pytest.mark.tools
def test_recall_and_precision_recordings_equal_numpy(tmp_path: Path):
    diagonal = np.diag(CONFUSION).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        expected_recall = diagonal / CONFUSION.sum(axis=1)
        expected_precision = diagonal / CONFUSION.sum(axis=0)
    assert expected_recall[:3] == pytest.approx([50 / 60, 30 / 50, 85 / 90])
    assert expected_precision[:3] == pytest.approx([50 / 60, 30 / 43, 85 / 97])
    # Every counter sits at a large value and jumps by its cell's count between minutes 30 and 31: every cell's
    # increase is extrapolated alike, so the ratios are exact; the volumes are what increase() makes of the jump.
    samples, jump, base = 2 * 60, 30, 1_000
    series, cumulative = [], {}
    for a, actual in enumerate(CLASSES):
        for p, predicted in enumerate(CLASSES):
            values = [float(base + (CONFUSION[a, p] if i > jump else 0)) for i in range(samples)]
            cumulative[(predicted, actual)] = values
            series.append(cell_series(predicted, actual, values))
    checks = []
    for index, name in enumerate(CLASSES[:3]):
        actual_labels = {**IDENTITY, "actual_class": name}
        predicted_labels = {**IDENTITY, "predicted_class": name}
        checks.append(close_to(f"{recall('1h')}{labels_text(actual_labels)}", expected_recall[index], actual_labels))
        checks.append(close_to(f"{precision('1h')}{labels_text(predicted_labels)}", expected_precision[index],
                               predicted_labels))
        volume = sum(increase(Series(cumulative[(p, name)], MINUTE), 60 * MINUTE, 60 * MINUTE)  # type: ignore[misc]
                     for p in CLASSES)
        checks.append(close_to(f"{actual_volume('1h')}{labels_text(actual_labels)}", volume, actual_labels))
        # The dashboard's copy carries the window.
        checks.append(close_to(f"{RECALL_OVER_WINDOW}{labels_text(actual_labels)}", expected_recall[index],
                               {**actual_labels, "window": "1h"}))
        checks.append(close_to(f"{PRECISION_OVER_WINDOW}{labels_text(predicted_labels)}",
                               expected_precision[index], {**predicted_labels, "window": "1h"}))
    nothing = {**IDENTITY, "actual_class": "class_3"}
    checks.append({"expr": f"absent({recall('1h')}{labels_text(nothing)})", "eval_time": "1h",
                   "exp_samples": [{"labels": labels_text(nothing), "value": 1}]})
    checks.append({"expr": f"{RECALL_FLOOR}{labels_text(nothing)}", "eval_time": "1h",
                   "exp_samples": [{"labels": f"{RECALL_FLOOR}{labels_text(nothing)}", "value": 0.6}]})
    tests = [{"interval": "1m", "input_series": series, "promql_expr_test": checks}]
    run_rule_tests(tmp_path, class_groups(ModelMonitorsConfig()), tests, evaluation_interval_ms=MINUTE)


# ---------------------------------------------------------------------------------------------------------
# The alert
# ---------------------------------------------------------------------------------------------------------

MINUTES, DROP, HOLD = 4 * 60, 2 * 60, 15
Rates = Mapping[str, tuple[Callable[[int], int], Callable[[int], int]]]
"""Per actual class: (right, wrong) items per minute at minute ``m``; wrong ones are predicted as the next class."""


def simulate(rates: Rates, floors: Mapping[str, float], min_volume: int) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """The counters' input series, and per class: the first minute the alert fires and its value then (or None)."""
    series: list[dict[str, str]] = []
    outcome: dict[str, Any] = {}
    for index, (actual, (right, wrong)) in enumerate(rates.items()):
        other = CLASSES[(index + 1) % len(rates)]
        counts = {}
        for predicted, rate in ((actual, right), (other, wrong)):
            values = [0.0]
            for minute in range(1, MINUTES + 1):
                values.append(values[-1] + rate(minute))
            counts[predicted] = Series(values, MINUTE)
            series.append(cell_series(predicted, actual, values))

        def value(minute: int, counts: dict[str, Series] = counts, actual: str = actual,
                  other: str = other) -> tuple[float, float] | None:
            right_increase = increase(counts[actual], minute * MINUTE, 60 * MINUTE)
            wrong_increase = increase(counts[other], minute * MINUTE, 60 * MINUTE)
            if right_increase is None or wrong_increase is None or right_increase + wrong_increase <= 0:
                return None
            return right_increase / (right_increase + wrong_increase), right_increase + wrong_increase

        def condition(minute: int, value: Callable[[int], tuple[float, float] | None] = value,
                      floor: float = floors[actual]) -> bool:
            result = value(minute)
            return result is not None and result[0] < floor and result[1] >= min_volume

        below = [m for m in range(MINUTES + 1) if condition(m)]
        if not below:
            outcome[actual] = None
            continue
        fires = below[0] + HOLD
        assert all(condition(m) for m in range(below[0], fires + 1))
        result = value(fires)
        assert result is not None
        outcome[actual] = (fires, result[0])
    return series, outcome


def at(minute: int, expected: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"eval_time": f"{minute}m", "alertname": CLASS_RECALL_ALERT, "exp_alerts": expected or []}


@pytest.mark.tools
def test_a_class_under_its_floor_fires_above_it_and_under_the_volume_guard_not(tmp_path: Path):
    config = ModelMonitorsConfig()
    accuracy = config.accuracy
    rules = class_groups(config)
    # class_0: 9 of 10 right all along. class_1: 9 of 10, then 3 of 10 from minute 120 (240 an hour). class_2: 2 of
    # 10 right all along, but one item a minute, 60 an hour, under the 100 the window needs.
    rates: Rates = {
        "class_0": (lambda m: 9, lambda m: 1),
        "class_1": (lambda m: 9 if m <= DROP else 3, lambda m: 1 if m <= DROP else 7),
        "class_2": (lambda m: 1 if m % 5 == 0 else 0, lambda m: 0 if m % 5 == 0 else 1),
    }
    assert 60 < accuracy.min_class_feedback <= 600
    series, outcome = simulate(rates, {name: accuracy.class_recall_floor for name in rates},
                               accuracy.min_class_feedback)
    assert outcome["class_0"] is None and outcome["class_2"] is None, outcome
    fires, value = outcome["class_1"]
    assert DROP < fires < MINUTES
    expected = expected_alert(alert_of(rules), {**IDENTITY, "actual_class": "class_1"}, value)
    tests = [{
        "interval": "1m",
        "input_series": series,
        "alert_rule_test": [at(DROP), at(fires - 1), at(fires, [expected])],
    }]
    run_rule_tests(tmp_path, rules, tests, evaluation_interval_ms=MINUTE)


@pytest.mark.tools
def test_a_class_floor_overrides_the_default(tmp_path: Path):
    config = monitors_config(accuracy={"classRecallFloors": {"class_0": 0.95, "class_1": 0.2}})
    accuracy = config.accuracy
    rules = class_groups(config)
    # class_0 at 90% is under its own 95%; class_1 at 30% is above its own 20%; class_2 at 50% under the default.
    rates: Rates = {
        "class_0": (lambda m: 9, lambda m: 1),
        "class_1": (lambda m: 3, lambda m: 7),
        "class_2": (lambda m: 5, lambda m: 5),
    }
    floors = {"class_0": 0.95, "class_1": 0.2, "class_2": accuracy.class_recall_floor}
    series, outcome = simulate(rates, floors, accuracy.min_class_feedback)
    assert outcome["class_1"] is None
    (fires_0, value_0), (fires_2, value_2) = outcome["class_0"], outcome["class_2"]
    assert fires_0 == fires_2, outcome
    alert = alert_of(rules)
    assert "floors: 60%; class_0 95%, class_1 20%" in alert.description
    tests = [{
        "interval": "1m",
        "input_series": series,
        "alert_rule_test": [at(fires_0 - 1), at(fires_0, [
            expected_alert(alert, {**IDENTITY, "actual_class": "class_0"}, value_0),
            expected_alert(alert, {**IDENTITY, "actual_class": "class_2"}, value_2),
        ])],
    }]
    run_rule_tests(tmp_path, rules, tests, evaluation_interval_ms=MINUTE)
