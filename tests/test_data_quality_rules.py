"""Input-quality rules under promtool: the recorded shares equal the counters' increases divided as the contract
says, and ``ModelInputQualityIssues`` fires for the feature and kind over the maximum, at the time its window and
``for`` imply, and stays silent below the maximum and under the volume guard.

Expected shares and times come from Prometheus 3's ``increase()`` computed in Python on the same input series
(tests/promsim.py), never from the rules under test.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from model_service import contract
from pydantic import ValidationError

from components.monitors.config import ModelMonitorsConfig
from components.monitors.data_quality_rules import (
    INPUT_QUALITY_ALERT,
    ISSUE_RATIO_OVER_WINDOW,
    ISSUE_RATIO_THRESHOLD,
    InputQualitySettings,
    issue_ratio,
)
from components.monitors.rule_model import AlertingRule, RuleGroup, parse_duration, selector
from tests.monitor_rules import MINUTE, MODEL, NAMESPACE, groups_for, monitors_config
from tests.promsim import Series, increase
from tests.rule_testing import expected_alert, run_rule_tests, series_values

TARGET = {"namespace": NAMESPACE, "job": MODEL, "pod": f"{MODEL}-0", "instance": "10.0.0.1:8080"}
CANARY_TARGET = {"namespace": NAMESPACE, "job": MODEL, "pod": f"{MODEL}-1", "instance": "10.0.0.2:8080"}
TOLERANCE = 1e-9
MINUTES = 3 * 60
ONSET = 60
"""Minute from which the stable version's f6 values are out of range."""


def quality_group(config: ModelMonitorsConfig) -> tuple[RuleGroup, ...]:
    return tuple(g for g in groups_for(config) if g.name.endswith("-data-quality"))


def alert_of(groups: tuple[RuleGroup, ...]) -> AlertingRule:
    return next(a for g in groups for a in g.alerts if a.alert == INPUT_QUALITY_ALERT)


def cumulative(per_minute: Callable[[int], float]) -> list[float]:
    values = [0.0]
    for minute in range(1, MINUTES + 1):
        values.append(values[-1] + per_minute(minute))
    return values


# Per version: records per minute, and per (feature, kind) problem records per minute.
VERSIONS: dict[str, tuple[Callable[[int], float], dict[tuple[str, str], Callable[[int], float]]]] = {
    "1.0.0": (
        lambda m: 100.0,
        {
            ("f6", contract.QUALITY_OUT_OF_RANGE): lambda m: 3.0 if m > ONSET else 0.0,  # 3%: over 1%
            ("f2", contract.QUALITY_MISSING): lambda m: 0.5,  # 0.5%: under 1%, all along
            ("f6", contract.QUALITY_NULL): lambda m: 0.0,
        },
    ),
    # A canary at 10 records a minute, half with a null f3: 600 records an hour, under the 1000 the window needs.
    "0.9.0": (lambda m: 10.0, {("f3", contract.QUALITY_NULL): lambda m: 5.0}),
}


def window_ms(config: ModelMonitorsConfig) -> int:
    return parse_duration(config.data_quality.window)


def share(config: ModelMonitorsConfig, version: str, key: tuple[str, str], minute: int) -> tuple[float, float] | None:
    """The share of problem records and the records of the window ending at ``minute``, as Prometheus has them."""
    records_rate, issues = VERSIONS[version]
    records = increase(Series(cumulative(records_rate), MINUTE), minute * MINUTE, window_ms(config))
    problems = increase(Series(cumulative(issues[key]), MINUTE), minute * MINUTE, window_ms(config))
    if records is None or problems is None or records == 0:
        return None
    return problems / records, records


def input_series() -> list[dict[str, str]]:
    series = []
    for version, (records_rate, issues) in VERSIONS.items():
        target = TARGET if version == "1.0.0" else CANARY_TARGET
        labels = {**target, "model_name": MODEL, "model_version": version}
        series.append({"series": selector(contract.INPUT_RECORDS.name, **labels),
                       "values": series_values(cumulative(records_rate))})
        for (feature, kind), rate in issues.items():
            series.append({"series": selector(contract.INPUT_QUALITY_ISSUES.name, **labels, feature=feature, kind=kind),
                           "values": series_values(cumulative(rate))})
        series.append({"series": selector(contract.MODEL_INFO.name, **labels), "values": f"1x{MINUTES}"})
    return series


def identity(version: str, feature: str, kind: str) -> str:
    labels = {"namespace": NAMESPACE, "job": MODEL, "model_name": MODEL, "model_version": version,
              "feature": feature, "kind": kind}
    return "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def close_to(expr: str, value: float, minute: int, labels: str) -> dict[str, Any]:
    """A promql_expr_test that passes when ``expr`` is within the tolerance of ``value``."""
    return {"expr": f"abs({expr} - {value!r}) < bool {TOLERANCE}", "eval_time": f"{minute}m",
            "exp_samples": [{"labels": labels, "value": 1}]}


def at(minute: int, expected: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"eval_time": f"{minute}m", "alertname": INPUT_QUALITY_ALERT, "exp_alerts": expected or []}


@pytest.mark.tools
def test_shares_fire_for_the_feature_over_the_maximum_only(tmp_path: Path):
    config = ModelMonitorsConfig()
    quality = config.data_quality
    rules = quality_group(config)
    alert = alert_of(rules)
    hold = parse_duration(quality.for_) // MINUTE
    stable = ("f6", contract.QUALITY_OUT_OF_RANGE)

    def condition(version: str, key: tuple[str, str], minute: int) -> bool:
        value = share(config, version, key, minute)
        return value is not None and value[0] > quality.max_issue_ratio and value[1] >= quality.min_window_records

    above = min(m for m in range(MINUTES + 1) if condition("1.0.0", stable, m))
    fires = above + hold
    assert ONSET < above < fires < MINUTES
    assert all(condition("1.0.0", stable, m) for m in range(above, fires + 1))
    # The other shares never qualify: one stays under the maximum, the canary's is far over it with too few records.
    missing = ("f2", contract.QUALITY_MISSING)
    assert not any(condition("1.0.0", missing, m) for m in range(MINUTES + 1))
    canary = ("f3", contract.QUALITY_NULL)
    canary_share = share(config, "0.9.0", canary, fires)
    assert canary_share is not None and canary_share[0] > quality.max_issue_ratio
    assert canary_share[1] < quality.min_window_records
    assert not any(condition("0.9.0", canary, m) for m in range(MINUTES + 1))

    fired = share(config, "1.0.0", stable, fires)
    assert fired is not None
    labels = {"namespace": NAMESPACE, "job": MODEL, "model_name": MODEL, "model_version": "1.0.0",
              "feature": stable[0], "kind": stable[1]}
    checks = []
    for minute in (30, above, fires, MINUTES):
        for version, key in (("1.0.0", stable), ("1.0.0", missing), ("1.0.0", ("f6", contract.QUALITY_NULL)),
                             ("0.9.0", canary)):
            value = share(config, version, key, minute)
            assert value is not None
            recorded = selector(issue_ratio(quality.window), namespace=NAMESPACE, job=MODEL, model_version=version,
                                feature=key[0], kind=key[1])
            checks.append(close_to(recorded, value[0], minute, identity(version, *key)))
    # The same share under the name without the window, which carries it as a label (what the dashboard reads).
    copy = selector(ISSUE_RATIO_OVER_WINDOW, namespace=NAMESPACE, job=MODEL, feature=missing[0])
    checks.append(close_to(copy, 0.005, MINUTES, identity("1.0.0", *missing)[:-1] + f', window="{quality.window}"}}'))
    checks.append({"expr": selector(ISSUE_RATIO_THRESHOLD, namespace=NAMESPACE, job=MODEL), "eval_time": "10m",
                   "exp_samples": [
                       {"labels": ISSUE_RATIO_THRESHOLD + "{" + f'job="{MODEL}", model_name="{MODEL}", '
                                  f'model_version="{version}", namespace="{NAMESPACE}"' + "}",
                        "value": quality.max_issue_ratio} for version in VERSIONS]})
    tests = [{
        "interval": "1m",
        "input_series": input_series(),
        "promql_expr_test": checks,
        "alert_rule_test": [at(ONSET), at(above), at(fires - 1),
                            at(fires, [expected_alert(alert, labels, fired[0])]),
                            at(MINUTES, [expected_alert(alert, labels, share(config, "1.0.0", stable, MINUTES)[0])])],
    }]
    run_rule_tests(tmp_path, rules, tests, evaluation_interval_ms=MINUTE)


@pytest.mark.tools
def test_the_maximum_volume_and_hold_come_from_the_config(tmp_path: Path):
    # A guard of 500 admits the canary's 600 records an hour, and of every share only its 50% of null f3 is over 40%.
    config = monitors_config(dataQuality={"maxIssueRatio": 0.4, "minWindowRecords": 500, "for": "5m"})
    rules = quality_group(config)
    alert = alert_of(rules)
    quality = config.data_quality
    canary = ("f3", contract.QUALITY_NULL)

    def condition(minute: int) -> bool:
        value = share(config, "0.9.0", canary, minute)
        return value is not None and value[0] > quality.max_issue_ratio and value[1] >= quality.min_window_records

    above = min(m for m in range(MINUTES + 1) if condition(m))
    fires = above + parse_duration(quality.for_) // MINUTE
    fired = share(config, "0.9.0", canary, fires)
    assert fired is not None
    labels = {"namespace": NAMESPACE, "job": MODEL, "model_name": MODEL, "model_version": "0.9.0",
              "feature": canary[0], "kind": canary[1]}
    assert "40%" in alert.description and "at least 500 records" in alert.description
    tests = [{
        "interval": "1m",
        "input_series": input_series(),
        # The stable version's 3% stays under 40%: only the canary fires.
        "alert_rule_test": [at(above), at(fires - 1), at(fires, [expected_alert(alert, labels, fired[0])])],
    }]
    run_rule_tests(tmp_path, rules, tests, evaluation_interval_ms=MINUTE)


def test_config_errors_name_the_field_the_value_and_the_fix():
    with pytest.raises(ValidationError, match=r"dataQuality\.maxIssueRatio\n  Input should be less than 1"):
        monitors_config(dataQuality={"maxIssueRatio": 1.5})
    with pytest.raises(ValidationError, match=r"dataQuality\.minWindowRecords\n  Input should be greater than or"):
        monitors_config(dataQuality={"minWindowRecords": 0})
    with pytest.raises(ValidationError, match=r"for must be shorter than window \(got for=1h, window=1h\).*lower for "
                                              r"or widen window"):
        monitors_config(dataQuality={"for": "1h"})
    with pytest.raises(ValidationError, match=r"dataQuality\.for"):
        monitors_config(dataQuality={"for": "ten minutes"})
    with pytest.raises(ValidationError, match=r"dataQuality\.forDuration\n  Extra inputs are not permitted"):
        monitors_config(dataQuality={"forDuration": "5m"})
    assert ModelMonitorsConfig().alert_windows_ms["dataQuality.window"] == parse_duration("1h")
    with pytest.raises(ValueError, match=r"max_issue_ratio must be in \(0, 1\), got 0"):
        InputQualitySettings(max_issue_ratio=0, window="1h", min_window_records=1, for_="5m")
