"""Mean confidence and model age under promtool: ``ModelConfidenceBelowFloor`` fires when the mean confidence of a
model with enough predictions stays under its floor, ``ModelStale`` once the model is older than its maximum age
(in calendar time, whatever the time scale), and neither exists when its setting is unset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from model_service import contract

from components.monitors.prediction_rules import (
    CONFIDENCE_ALERT,
    CONFIDENCE_FLOOR,
    CONFIDENCE_OVER_WINDOW,
    STALE_ALERT,
    STALE_FOR,
    mean_confidence,
)
from components.monitors.rule_model import AlertingRule, RuleGroup, alert_names, parse_duration, selector
from tests.monitor_rules import MINUTE, MODEL, NAMESPACE, groups_for, monitors_config
from tests.promsim import Series, increase
from tests.rule_testing import expected_alert, run_rule_tests, series_values

TARGET = {"namespace": NAMESPACE, "job": MODEL, "pod": f"{MODEL}-0", "instance": "10.0.0.1:8080"}
FLOOR = 0.7
DAY_SECONDS = 86_400


def groups(suffix: str, **overrides: Any) -> tuple[RuleGroup, ...]:
    return tuple(g for g in groups_for(monitors_config(**overrides)) if g.name.endswith(suffix))


def alert_of(groups_: tuple[RuleGroup, ...], name: str) -> AlertingRule:
    return next(a for g in groups_ for a in g.alerts if a.alert == name)


def identity(version: str) -> dict[str, str]:
    return {"namespace": NAMESPACE, "job": MODEL, "model_name": MODEL, "model_version": version}


def test_both_alerts_are_off_until_configured():
    assert {CONFIDENCE_ALERT, STALE_ALERT}.isdisjoint(alert_names(groups_for(monitors_config())))
    configured = alert_names(groups_for(monitors_config(confidence={"floor": FLOOR}, maxModelAge="30d")))
    assert {CONFIDENCE_ALERT, STALE_ALERT} <= set(configured)


def test_the_maximum_age_is_calendar_time_at_any_time_scale():
    """The window and ``for`` of the confidence alert shrink with the time scale; the maximum age does not."""
    fast = alert_of(groups("-model-age", maxModelAge="30d", timeScale=0.01), STALE_ALERT)
    normal = alert_of(groups("-model-age", maxModelAge="30d"), STALE_ALERT)
    assert fast.expr == normal.expr and "> 2592000)" in fast.expr
    # Its `for` is a wait on Prometheus' own clock (a replaced version's series going stale), scaled like any.
    assert (normal.for_, fast.for_) == (STALE_FOR, "6s")
    scaled = alert_of(groups("-confidence", confidence={"floor": FLOOR}, timeScale=0.01), CONFIDENCE_ALERT)
    assert scaled.for_ == "9s"


@pytest.mark.tools
def test_mean_confidence_under_its_floor_with_enough_predictions(tmp_path: Path):
    rules = groups("-confidence", confidence={"floor": FLOOR})
    alert = alert_of(rules, CONFIDENCE_ALERT)
    config = monitors_config(confidence={"floor": FLOOR}).confidence
    minutes, drop, hold = 4 * 60, 2 * 60, 15
    # Version 1.0.0: 100 predictions a minute at a mean confidence of 0.87, then 0.6 from minute 120. Version
    # 0.9.0 (a canary): 10 a minute at 0.5 all along, 600 an hour, under the 1000 the window needs.
    per_minute = {
        "1.0.0": (100, lambda m: 0.87 if m <= drop else 0.6),
        "0.9.0": (10, lambda m: 0.5),
    }
    series: list[dict[str, str]] = []
    histograms: dict[str, tuple[Series, Series]] = {}
    for version, (count, mean) in per_minute.items():
        counts, sums = [0.0], [0.0]
        for minute in range(1, minutes + 1):
            counts.append(counts[-1] + count)
            sums.append(round(sums[-1] + count * mean(minute), 6))
        histograms[version] = (Series(counts, MINUTE), Series(sums, MINUTE))
        name = contract.PREDICTION_CONFIDENCE.name
        labels = {**TARGET, "model_name": MODEL, "model_version": version}
        series.append({"series": selector(f"{name}_count", **labels), "values": series_values(counts)})
        series.append({"series": selector(f"{name}_sum", **labels), "values": series_values(sums)})
        series.append({"series": selector(contract.MODEL_INFO.name, **labels), "values": f"1x{minutes}"})

    def mean_at(version: str, minute: int) -> tuple[float, float] | None:
        counts, sums = histograms[version]
        n = increase(counts, minute * MINUTE, 60 * MINUTE)
        total = increase(sums, minute * MINUTE, 60 * MINUTE)
        if n is None or total is None or n <= 0:
            return None
        return total / n, n

    def condition(version: str, minute: int) -> bool:
        value = mean_at(version, minute)
        return value is not None and value[0] < FLOOR and value[1] >= config.min_predictions

    below = min(m for m in range(minutes + 1) if condition("1.0.0", m))
    fires = below + hold
    assert all(condition("1.0.0", m) for m in range(below, fires + 1))
    assert not any(condition("0.9.0", m) for m in range(minutes + 1))
    value = mean_at("1.0.0", fires)
    healthy = mean_at("1.0.0", drop)
    assert value is not None and healthy is not None and healthy[0] == pytest.approx(0.87)
    labels = "{" + ", ".join(f'{k}="{v}"' for k, v in identity("1.0.0").items()) + "}"
    tests = [{
        "interval": "1m",
        "input_series": series,
        "promql_expr_test": [
            {"expr": f"abs({mean_confidence('1h')}{labels} - {healthy[0]!r}) < bool 1e-9", "eval_time": f"{drop}m",
             "exp_samples": [{"labels": labels, "value": 1}]},
            {"expr": f"{CONFIDENCE_OVER_WINDOW}{labels} > bool 0", "eval_time": f"{drop}m",
             "exp_samples": [{"labels": labels[:-1] + ', window="1h"}', "value": 1}]},
            {"expr": f"{CONFIDENCE_FLOOR}{labels}", "eval_time": f"{drop}m",
             "exp_samples": [{"labels": f"{CONFIDENCE_FLOOR}{labels}", "value": FLOOR}]},
        ],
        "alert_rule_test": [
            {"eval_time": f"{drop}m", "alertname": CONFIDENCE_ALERT, "exp_alerts": []},
            {"eval_time": f"{fires - 1}m", "alertname": CONFIDENCE_ALERT, "exp_alerts": []},
            {"eval_time": f"{fires}m", "alertname": CONFIDENCE_ALERT,
             "exp_alerts": [expected_alert(alert, identity("1.0.0"), value[0])]},
        ],
    }]
    run_rule_tests(tmp_path, rules, tests, evaluation_interval_ms=MINUTE)


@pytest.mark.tools
def test_a_model_older_than_its_maximum_age_is_stale(tmp_path: Path):
    rules = groups("-model-age", maxModelAge="30d")
    alert = alert_of(rules, STALE_ALERT)
    limit = 30 * DAY_SECONDS
    # promtool's clock starts at 0: version 1.0.0 was trained 29.5 days before it, so it turns 30 days old at
    # 12h; version 1.1.0, trained a day before, never does.
    old, new = -(limit - 12 * 3600), -DAY_SECONDS
    series = []
    for version, trained in (("1.0.0", old), ("1.1.0", new)):
        labels = {**TARGET, "model_name": MODEL, "model_version": version}
        series.append({"series": selector(contract.MODEL_TRAINED_TIMESTAMP.name, **labels),
                       "values": f"{trained}x1000"})
    at_limit = 12 * 60
    waited = parse_duration(STALE_FOR) // 60_000
    after = at_limit + 1 + waited  # over the limit, then for the alert's whole `for`
    age_days = (after * 60 - old) / DAY_SECONDS
    assert at_limit * 60 - old == limit
    tests = [{
        "interval": "1m",  # a sample a minute: no gap longer than the lookback during the `for`
        "input_series": series,
        "alert_rule_test": [
            {"eval_time": f"{at_limit - 1}m", "alertname": STALE_ALERT, "exp_alerts": []},
            {"eval_time": f"{at_limit}m", "alertname": STALE_ALERT, "exp_alerts": []},
            {"eval_time": f"{after - 1}m", "alertname": STALE_ALERT, "exp_alerts": []},
            {"eval_time": f"{after}m", "alertname": STALE_ALERT,
             "exp_alerts": [expected_alert(alert, identity("1.0.0"), age_days)]},
        ],
    }]
    run_rule_tests(tmp_path, rules, tests, evaluation_interval_ms=MINUTE)
