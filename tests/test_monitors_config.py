"""A model's ``monitors`` section: defaults from the metric contract, and messages that name key, value and fix."""

from __future__ import annotations

from typing import Any

import pytest
from model_service import contract

from components.config.loader import ConfigError, validate_settings
from components.config.source import RawSetting
from components.config.stack import StackConfig
from components.monitors.config import ModelMonitorsConfig

KIND = {"kind": "kind"}


def validate(monitors: dict[str, Any]) -> StackConfig:
    settings = {"cluster": KIND, "models": {"churn": {"monitors": monitors}}}
    return validate_settings({k: RawSetting(v, False) for k, v in settings.items()}, stack="dev")


def problems(monitors: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        validate(monitors)
    return raised.value.problems


def test_defaults_come_from_the_contract():
    config = validate({}).models["churn"].monitors
    assert config.drift.psi_threshold == contract.PSI_THRESHOLD
    assert config.drift.js_distance_threshold == contract.JS_DISTANCE_THRESHOLD
    assert config.drift.min_window_observations == contract.DRIFT_MIN_WINDOW_OBSERVATIONS
    assert config.drift.short_window == contract.DEFAULT_DRIFT_WINDOW
    assert config.latency_thresholds_seconds == tuple(sorted(contract.DEFAULT_LATENCY_SLO_THRESHOLDS_SECONDS))
    assert (config.time_scale, config.slo_period, config.availability_objective_percent) == (1.0, "30d", 99.5)


def test_class_floors_confidence_and_age_in_camel_case():
    config = validate({"accuracy": {"classRecallFloors": {"fraud": 0.4}, "minClassFeedback": 50},
                       "confidence": {"floor": 0.7, "window": "6h"}, "maxModelAge": "30d"}).models["churn"].monitors
    assert (config.accuracy.class_recall_floor, config.accuracy.class_recall_floors) == (0.6, {"fraud": 0.4})
    assert (config.confidence.floor, config.confidence.window, config.max_model_age) == (0.7, "6h", "30d")
    defaults = validate({}).models["churn"].monitors
    assert (defaults.confidence.floor, defaults.max_model_age) == (None, None)


def test_latency_thresholds_are_what_the_service_gets():
    config = ModelMonitorsConfig.model_validate({"latencySlos": [
        {"thresholdSeconds": 0.3, "objectivePercent": 99.0}, {"thresholdSeconds": 0.05, "objectivePercent": 95.0}]})
    assert config.latency_thresholds_seconds == (0.05, 0.3)
    assert contract.format_latency_thresholds(config.latency_thresholds_seconds) == "0.05,0.3"


def test_per_feature_thresholds_and_camel_case_keys():
    config = validate({"drift": {"features": {"f6": {"psiThreshold": 0.3}}, "longWindow": "12h"},
                       "accuracy": {"minFeedback": 500}, "timeScale": 0.01}).models["churn"].monitors
    assert config.drift.features["f6"].psi_threshold == 0.3
    assert config.drift.features["f6"].js_distance_threshold is None
    assert (config.drift.long_window, config.accuracy.min_feedback, config.time_scale) == ("12h", 500, 0.01)


@pytest.mark.parametrize(
    ("monitors", "expected"),
    [
        ({"availabilityObjectivePercent": 90},
         "ml-observability:models.churn.monitors: objective 90.0% leaves an error budget of 10%, so the 14.4x "
         "burn-rate alert over 1h would need more than 100% errors and could never fire; choose an objective of at "
         "least 93.06%"),
        ({"drift": {"shortWindow": "6h", "longWindow": "1h"}},
         "ml-observability:models.churn.monitors.drift: shortWindow must be shorter than longWindow (got "
         "shortWindow=6h, longWindow=1h)"),
        ({"drift": {"shortWindow": "1m1h"}},
         "ml-observability:models.churn.monitors.drift.shortWindow: not a Prometheus duration: '1m1h'"),
        ({"latencySlos": [{"thresholdSeconds": 0.1, "objectivePercent": 99}] * 2},
         "ml-observability:models.churn.monitors: latencySlos: each threshold may appear once (got [0.1, 0.1])"),
        ({"timeScale": 0.002},
         "ml-observability:models.churn.monitors: scrapeInterval 30s at timeScale 0.002 is 60ms, under 100ms"),
        ({"drift": {"psiTreshold": 0.3}},
         "ml-observability:models.churn.monitors.drift.psiTreshold: unknown setting"),
        ({"accuracy": {"classRecallFloors": {"fraud": 1.5}}},
         "ml-observability:models.churn.monitors.accuracy.classRecallFloors.fraud: Input should be less than 1 (got "
         "1.5); Set a valid value"),
        ({"accuracy": {"minClassFeedback": 0}},
         "ml-observability:models.churn.monitors.accuracy.minClassFeedback: Input should be greater than or equal to 1 "
         "(got 0)"),
        ({"confidence": {"floor": 0}},
         "ml-observability:models.churn.monitors.confidence.floor: Input should be greater than 0 (got 0)"),
        ({"maxModelAge": "30days"},
         "ml-observability:models.churn.monitors.maxModelAge: not a Prometheus duration: '30days'"),
    ],
)
def test_bad_settings_name_the_key_the_value_and_the_fix(monitors: dict[str, Any], expected: str):
    [problem] = problems(monitors)
    assert problem.startswith(expected), problem
