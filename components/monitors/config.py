"""The stack file's monitors of a model (``models.<name>.monitors``): its SLOs, drift and accuracy thresholds."""

from __future__ import annotations

from typing import Annotated

from model_service import contract
from pydantic import Field, StringConstraints, model_validator

from components.config.fields import Section, Window
from components.monitors.rule_model import TimeScale, parse_duration
from components.monitors.slo_rules import WORKBOOK_WINDOWS, check_objective

ClassName = Annotated[str, StringConstraints(min_length=1, max_length=128)]
"""A class of the model, as the feedback's ``actual_class`` label says it."""


class LatencySloConfig(Section):
    """One latency objective on ``/predict``: a share of requests answered within a threshold."""

    threshold_seconds: float = Field(
        gt=0,
        le=60,
        description="Latency threshold; the sample service makes it a bucket bound of its request-duration "
        "histogram, a team's own service must have it as one.",
        examples=[0.1],
    )
    objective_percent: float = Field(
        gt=0, lt=100, description="Share of requests, in percent, that must be faster than the threshold.",
        examples=[99.0],
    )


class FeatureDriftConfig(Section):
    """Thresholds of one feature (or of the prediction, feature 'prediction') that differ from the defaults."""

    psi_threshold: float | None = Field(
        None, gt=0, description="PSI at or above which this feature counts as drifted.", examples=[0.3]
    )
    js_distance_threshold: float | None = Field(
        None, gt=0, le=1, description="Jensen-Shannon distance (base 2) at or above which it counts as drifted.",
        examples=[0.15],
    )


class DriftConfig(Section):
    """Drift of every input feature and of the prediction, computed by Prometheus over two windows."""

    psi_threshold: float = Field(
        contract.PSI_THRESHOLD, gt=0, description="PSI at or above which a feature counts as drifted.",
        examples=[0.25],
    )
    js_distance_threshold: float = Field(
        contract.JS_DISTANCE_THRESHOLD, gt=0, le=1,
        description="Jensen-Shannon distance (base 2) at or above which a feature counts as drifted.",
        examples=[0.12],
    )
    short_window: Window = Field(
        contract.DEFAULT_DRIFT_WINDOW,
        description="Window that says the drift is still there (alerts resolve soon after it ends).",
        examples=["30m"],
    )
    long_window: Window = Field(
        "6h", description="Window that says the drift is real and lasting.", examples=["12h"],
    )
    min_window_observations: int = Field(
        contract.DRIFT_MIN_WINDOW_OBSERVATIONS, ge=1,
        description="Observations of a feature each window needs before its drift may alert: below it, "
        "sampling noise alone reaches the thresholds.",
        examples=[2000],
    )
    features: dict[Annotated[str, StringConstraints(min_length=1, max_length=128)], FeatureDriftConfig] = Field(
        default_factory=dict, description="Per-feature thresholds, by feature name.",
        examples=[{"f6": {"psiThreshold": 0.3}}],
    )

    @model_validator(mode="after")
    def _short_before_long(self) -> DriftConfig:
        if parse_duration(self.short_window) >= parse_duration(self.long_window):
            raise ValueError(
                f"shortWindow must be shorter than longWindow (got shortWindow={self.short_window}, "
                f"longWindow={self.long_window})"
            )
        return self


class AccuracyConfig(Section):
    """Accuracy from ground-truth feedback, against a floor."""

    floor: float = Field(
        0.8, gt=0, lt=1, description="Accuracy below which the model alerts (share of scored feedback that was "
        "right).", examples=[0.85],
    )
    window: Window = Field("1h", description="Window accuracy is computed over.", examples=["6h"])
    min_feedback: int = Field(
        200, ge=1, description="Scored feedback items the window needs before accuracy may alert.",
        examples=[500],
    )
    class_recall_floor: float = Field(
        0.6, gt=0, lt=1, description="Recall below which a class alerts (share of the feedback whose actual class it "
        "is that the model predicted right), for every class without its own floor.", examples=[0.7],
    )
    class_recall_floors: dict[ClassName, Annotated[float, Field(gt=0, lt=1)]] = Field(
        default_factory=dict, description="Recall floors of classes that differ from classRecallFloor, by class name "
        "(the feedback's actual_class).", examples=[{"fraud": 0.5}],
    )
    min_class_feedback: int = Field(
        100, ge=1, description="Scored feedback items whose actual class is the class that the window needs before "
        "its recall may alert.", examples=[50],
    )


class ConfidenceConfig(Section):
    """Mean confidence of the predictions against a floor: a signal without waiting for feedback.

    A floor rather than a drop relative to a longer baseline window: the floor is read off the model's held-out
    confidence and the dashboard's line, and means the same in every window; a relative drop follows a slow decline
    into its own baseline, and mixes two versions after every rollout."""

    floor: float | None = Field(
        None, gt=0, lt=1, description="Mean confidence (probability given to the predicted class) below which the "
        "model alerts; none: no alert. Set it under the model's held-out mean confidence.", examples=[0.7],
    )
    window: Window = Field("1h", description="Window the mean confidence is computed over.", examples=["6h"])
    min_predictions: int = Field(
        1000, ge=1, description="Predictions the window needs before the mean confidence may alert.",
        examples=[5000],
    )


class CanaryConfig(Section):
    """How much worse than the stable version a canary may be, over one window, before it alerts.

    Compared only while both tracks serve (pods labelled ``track: canary`` beside ``track: stable``), and only
    once the canary has served ``minRequests`` (and, for accuracy, both versions have ``minFeedback`` items)."""

    window: Window = Field("30m", description="Window both versions are compared over.", examples=["1h"])
    max_error_ratio_increase: float = Field(
        0.01, gt=0, le=1,
        description="How far the canary's share of failed (5xx) /predict requests may exceed the stable's, as "
        "a difference of ratios.",
        examples=[0.005],
    )
    latency_quantile: float = Field(
        0.95, gt=0, lt=1, description="Quantile of /predict latency compared.", examples=[0.99],
    )
    max_latency_increase_ratio: float = Field(
        0.25, gt=0, le=10,
        description="How much slower the canary's latency quantile may be, relative to the stable's (0.25: up to "
        "1.25 times).",
        examples=[0.5],
    )
    max_accuracy_drop: float = Field(
        0.05, gt=0, lt=1,
        description="How far the canary's accuracy on scored feedback may fall below the stable's, as a "
        "difference of ratios.",
        examples=[0.02],
    )
    max_prediction_js_distance: float = Field(
        0.1, gt=0, le=1,
        description="Jensen-Shannon distance (base 2) between the two versions' shares of predicted classes "
        "above which the canary predicts differently.",
        examples=[0.15],
    )
    min_requests: int = Field(
        100, ge=1,
        description="/predict requests the canary must have served in the window before it is compared.",
        examples=[500],
    )
    min_feedback: int = Field(
        100, ge=1,
        description="Scored feedback items each version needs in the window before their accuracies are "
        "compared.",
        examples=[200],
    )


class DataQualityConfig(Section):
    """Shares of the model's input records with a problem in one feature: missing, null, non-finite or out of the
    training range."""

    max_issue_ratio: float = Field(
        0.01, gt=0, lt=1, description="Share of the window's records with one kind of problem in one feature above "
        "which the model alerts.", examples=[0.05],
    )
    window: Window = Field("1h", description="Window the shares are computed over.", examples=["30m"])
    min_window_records: int = Field(
        1000, ge=1, description="Records the window needs before a share may alert: below it, a few bad records "
        "make a large share.", examples=[500],
    )
    for_: Window = Field(
        "10m", alias="for", description="How long a share must stay above maxIssueRatio before the alert fires.",
        examples=["15m"],
    )

    @model_validator(mode="after")
    def _hold_within_window(self) -> DataQualityConfig:
        if parse_duration(self.for_) >= parse_duration(self.window):
            raise ValueError(
                f"for must be shorter than window (got for={self.for_}, window={self.window}): the window already "
                "smooths the share, a hold as long as it only delays the alert by more than a whole window; lower "
                "for or widen window"
            )
        return self


def _default_latency_slos() -> tuple[LatencySloConfig, ...]:
    """The contract's thresholds (a tight one for most requests, a loose one for nearly all), with objectives."""
    objectives = (95.0, 99.0)
    return tuple(
        LatencySloConfig.model_validate({"thresholdSeconds": threshold, "objectivePercent": objective})
        for threshold, objective in zip(contract.DEFAULT_LATENCY_SLO_THRESHOLDS_SECONDS, objectives, strict=True)
    )


class ModelMonitorsConfig(Section):
    """The model's SLOs, drift and accuracy thresholds, and the monitors' time scale."""

    availability_objective_percent: float = Field(
        99.5, gt=0, lt=100, description="Share of /predict requests, in percent, that must not fail (5xx).",
        examples=[99.9],
    )
    latency_slos: tuple[LatencySloConfig, ...] = Field(
        default_factory=_default_latency_slos, min_length=1, max_length=contract.MAX_LATENCY_SLO_THRESHOLDS,
        description="Latency objectives on /predict; their thresholds become the service's histogram bounds.",
        examples=[[{"thresholdSeconds": 0.1, "objectivePercent": 99.0}]],
    )
    slo_period: str = Field(
        "30d", pattern=r"^[1-9][0-9]*d$", description="Period over which the SLOs' error budgets are spent.",
        examples=["28d"],
    )
    drift: DriftConfig = DriftConfig()
    accuracy: AccuracyConfig = AccuracyConfig()
    confidence: ConfidenceConfig = ConfidenceConfig()
    max_model_age: Window | None = Field(
        None, description="Age (now minus the training time the model reports) above which the model alerts as "
        "stale; none: no alert. Calendar time, never scaled by timeScale.", examples=["30d"],
    )
    canary: CanaryConfig = CanaryConfig()
    data_quality: DataQualityConfig = DataQualityConfig()
    memory_near_limit_ratio: float = Field(
        0.9, gt=0, lt=1, description="Share of a container's memory limit its working set may reach before "
        "an alert.", examples=[0.85],
    )
    scrape_interval: Window = Field("30s", description="How often Prometheus scrapes the model's pods.",
                                    examples=["15s"])
    evaluation_interval: Window = Field("30s", description="How often Prometheus evaluates the model's rules.",
                                        examples=["15s"])
    time_scale: float = Field(
        1.0, ge=0.001, le=1.0,
        description="Multiplies every rendered duration (windows, for, scrape and evaluation intervals) without "
        "renaming anything; 0.01 turns an hour into 36 seconds for end-to-end tests and demos.",
        examples=[0.01],
    )
    @model_validator(mode="after")
    def _consistent(self) -> ModelMonitorsConfig:
        """The rules across these settings, defined here only: ``ModelMonitorsArgs`` holds a validated instance."""
        thresholds = [slo.threshold_seconds for slo in self.latency_slos]
        if len(set(thresholds)) != len(thresholds):
            raise ValueError(f"latencySlos: each threshold may appear once (got {thresholds})")
        check_objective(self.availability_objective_percent, self.slo_period)
        for slo in self.latency_slos:
            check_objective(slo.objective_percent, self.slo_period)
        longest = max(parse_duration(w.long) for w in WORKBOOK_WINDOWS)
        if parse_duration(self.slo_period) <= longest:
            raise ValueError(f"sloPeriod must be longer than the longest burn-rate window, 3d (got {self.slo_period})")
        scale = TimeScale(self.time_scale)
        for name, value in (("scrapeInterval", self.scrape_interval), ("evaluationInterval", self.evaluation_interval)):
            if scale.milliseconds(value) < 100:
                raise ValueError(
                    f"{name} {value} at timeScale {self.time_scale} is {scale.render(value)}, under 100ms: raise "
                    "the time scale or the interval"
                )
        return self

    @property
    def period_window_ms(self) -> int:
        """The SLO period as the period recordings read it (time scale applied), in milliseconds."""
        return TimeScale(self.time_scale).milliseconds(self.slo_period)

    @property
    def alert_windows_ms(self) -> dict[str, int]:
        """Every other window the rules read, rendered, in milliseconds, by the setting it comes from: the alerts
        read them where they are evaluated, in the cluster's Prometheus, whose retention must cover the longest."""
        scale = TimeScale(self.time_scale)
        burn = max((w.long for w in WORKBOOK_WINDOWS), key=parse_duration)
        return {
            f"the SLO alerts' longest burn-rate window ({burn})": scale.milliseconds(burn),
            "drift.longWindow": scale.milliseconds(self.drift.long_window),
            "accuracy.window": scale.milliseconds(self.accuracy.window),
            "confidence.window": scale.milliseconds(self.confidence.window),
            "canary.window": scale.milliseconds(self.canary.window),
            "dataQuality.window": scale.milliseconds(self.data_quality.window),
        }

    @property
    def latency_thresholds_seconds(self) -> tuple[float, ...]:
        """The latency SLO thresholds, ascending: give them to the service
        (``contract.ENV_LATENCY_SLO_THRESHOLDS_SECONDS``) so its histogram has the bounds the rules select."""
        return tuple(sorted(slo.threshold_seconds for slo in self.latency_slos))
