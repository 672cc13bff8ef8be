"""The rule groups that follow a model's quality beyond overall accuracy: per-class recall and precision, mean
confidence and age, and the drift windows' per-bin counts under their roles for the dashboard's distributions.

Optional alerts are left out when unset: no confidence floor, only the mean confidence is recorded; no maximum
age, no age group.
"""

from __future__ import annotations

from typing import Any

from components.monitors.class_quality_rules import ClassQualitySettings, class_quality_rule_group
from components.monitors.config import ModelMonitorsConfig
from components.monitors.distribution_rules import distribution_rule_group
from components.monitors.prediction_rules import ConfidenceSettings, confidence_rule_group, model_age_rule_group
from components.monitors.rule_model import RuleGroup, TimeScale
from components.monitors.runbooks import RunbookLinks


def class_quality_settings(settings: ModelMonitorsConfig) -> ClassQualitySettings:
    accuracy = settings.accuracy
    return ClassQualitySettings(
        window=accuracy.window,
        floor=accuracy.class_recall_floor,
        per_class=dict(accuracy.class_recall_floors),
        min_class_feedback=accuracy.min_class_feedback,
    )


def quality_rule_groups(
    settings: ModelMonitorsConfig,
    *,
    job: str,
    scope: dict[str, str],
    scale: TimeScale,
    runbooks: RunbookLinks,
    interval: str | None = None,
) -> list[RuleGroup]:
    """``<job>-class-quality``, ``<job>-confidence`` (its alert with a floor), ``<job>-model-age`` (with a maximum
    age) and ``<job>-distributions``."""
    common: dict[str, Any] = {"scope": scope, "interval": interval}
    groups = [class_quality_rule_group(class_quality_settings(settings), name=f"{job}-class-quality", scale=scale,
                                       runbooks=runbooks, **common)]
    confidence = settings.confidence
    groups.append(confidence_rule_group(
        ConfidenceSettings(floor=confidence.floor, window=confidence.window,
                           min_predictions=confidence.min_predictions),
        name=f"{job}-confidence", scale=scale, runbooks=runbooks, **common,
    ))
    if settings.max_model_age is not None:
        groups.append(model_age_rule_group(settings.max_model_age, name=f"{job}-model-age", scale=scale,
                                           runbooks=runbooks, **common))
    drift = settings.drift
    groups.append(distribution_rule_group((drift.short_window, drift.long_window), name=f"{job}-distributions",
                                          **common))
    return groups
