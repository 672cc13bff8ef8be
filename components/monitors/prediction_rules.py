"""What the model says about itself without waiting for feedback: the mean confidence of its predictions, and its
age, each against a limit.

``ModelConfidenceBelowFloor``: the mean probability the model gives the class it predicts, from the contract's
confidence histogram (``_sum`` over ``_count``, summed across replicas), over a window. Confidence falls when the
inputs leave the region the model was trained on, often hours or days before the feedback that would show the
accuracy drop arrives. The alert compares it with a floor rather than with a longer baseline window: a floor is set
once from the held-out confidence the training reports and reads the same in every window, while a relative drop
follows a slow decline into its own baseline and, after a rollout, compares two versions with each other.

``ModelStale``: the model was trained longer ago than its maximum age, from the training time the service exports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from model_service import contract

from components.contracts import Severity
from components.monitors.model_rules import MODEL_GROUP, percent
from components.monitors.rule_model import (
    WINDOW_LABEL,
    AlertingRule,
    RecordingRule,
    RuleGroup,
    TimeScale,
    by,
    parse_duration,
    selector,
)
from components.monitors.runbooks import RunbookLinks

CONFIDENCE_ALERT: Final = "ModelConfidenceBelowFloor"
STALE_ALERT: Final = "ModelStale"
STALE_FOR: Final = "10m"
"""Longer than the 5 minutes a replaced version's last training-time sample stays in an instant query."""

CONFIDENCE_FOR: Final = "15m"
"""A mean over the window already smooths single batches; the floor must be missed for a while, as accuracy's is."""

CONFIDENCE_FLOOR: Final = "model:prediction_confidence:floor"
"""The model's confidence floor, per model: the dashboard draws it."""
CONFIDENCE_OVER_WINDOW: Final = "model:prediction_confidence:mean_window"
"""The mean confidence over the model's own window under one name, the window as label ``window``."""
SECONDS_PER_DAY: Final = 86_400


def predictions(window: str) -> str:
    """Predictions (confidence observations) over ``window``: the volume guard."""
    return f"model:predictions:increase{window}"


def mean_confidence(window: str) -> str:
    return f"model:prediction_confidence:mean{window}"


@dataclass(frozen=True, kw_only=True)
class ConfidenceSettings:
    """The confidence window, its floor (none: recorded, never alerted on) and the predictions the window needs
    before it may alert."""

    floor: float | None
    window: str
    min_predictions: int


def confidence_rule_group(
    settings: ConfidenceSettings,
    *,
    name: str,
    scope: Mapping[str, str],
    scale: TimeScale,
    runbooks: RunbookLinks,
    interval: str | None = None,
) -> RuleGroup:
    """Mean confidence over the window, and with a floor, the floor and ``ModelConfidenceBelowFloor``.

    The mean is recorded whether or not a floor is set: the dashboard draws it for every model, and a team reads
    its model's usual level off it before choosing a floor."""
    window = settings.window
    rendered = scale.render(window)
    group = by(MODEL_GROUP)
    histogram = contract.PREDICTION_CONFIDENCE.name
    volume = selector(predictions(window), **scope)
    mean = selector(mean_confidence(window), **scope)
    means = (
        RecordingRule(
            record=predictions(window),
            expr=f"sum by {group} (increase({selector(f'{histogram}_count', **scope)}[{rendered}]))",
        ),
        RecordingRule(
            record=mean_confidence(window),
            expr=(
                f"sum by {group} (increase({selector(f'{histogram}_sum', **scope)}[{rendered}]))\n"
                f"/ on {group}\n({volume} > 0)"
            ),
        ),
        RecordingRule(record=CONFIDENCE_OVER_WINDOW, expr=mean, labels={WINDOW_LABEL: window}),
    )
    if settings.floor is None:
        return RuleGroup(name=name, interval=interval, rules=means)
    return RuleGroup(
        name=name,
        interval=interval,
        rules=(
            *means,
            RecordingRule(
                record=CONFIDENCE_FLOOR,
                expr=f"{settings.floor} * group by {group} ({selector(contract.MODEL_INFO.name, **scope)})",
            ),
            AlertingRule(
                alert=CONFIDENCE_ALERT,
                expr=f"{mean} < {settings.floor}\nand on {group}\n{volume} >= {settings.min_predictions}",
                for_=scale.render(CONFIDENCE_FOR),
                severity=Severity.WARNING,
                summary="The model's predictions are less confident than its floor: its inputs may have left what it "
                        "was trained on.",
                description=(
                    "Model {{ $labels.model_name }} {{ $labels.model_version }} in namespace {{ $labels.namespace }} "
                    "gave the class it predicted a mean probability of {{ $value | humanizePercentage }} over the "
                    f"last {window}, below its floor of {percent(settings.floor)} (at least "
                    f"{settings.min_predictions} predictions)."
                ),
                runbook_url=runbooks.url(CONFIDENCE_ALERT),
            ),
        ),
    )


def model_age_rule_group(
    max_age: str,
    *,
    name: str,
    scope: Mapping[str, str],
    scale: TimeScale,
    runbooks: RunbookLinks,
    interval: str | None = None,
) -> RuleGroup:
    """``ModelStale`` once ``time()`` minus the training time exceeds ``max_age``.

    Unlike every other duration of the monitors, ``max_age`` is not multiplied by the time scale: it is compared
    with the wall clock (``time()``) and the training time the model artifact carries, neither of which runs faster
    in a compressed run. A scaled ``30d`` would be 22 hours at the end-to-end suite's 0.03, and would page for a
    model trained yesterday. Its ``for`` (:data:`STALE_FOR`, scaled like every ``for``) outlasts the series of a
    version a rollout has just replaced, which stays in Prometheus' instant vector until it goes stale.
    """
    limit_seconds = parse_duration(max_age) // 1000
    group = by(MODEL_GROUP)
    trained = selector(contract.MODEL_TRAINED_TIMESTAMP.name, **scope)
    return RuleGroup(
        name=name,
        interval=interval,
        rules=(
            AlertingRule(
                alert=STALE_ALERT,
                # Compared in whole seconds, shown in days, as people count a model's age.
                expr=f"(time() - max by {group} ({trained}) > {limit_seconds})\n/ {SECONDS_PER_DAY}",
                for_=scale.render(STALE_FOR),
                severity=Severity.WARNING,
                summary="The model was trained longer ago than its maximum age.",
                description=(
                    "Model {{ $labels.model_name }} {{ $labels.model_version }} in namespace {{ $labels.namespace }} "
                    "was trained {{ $value | printf \"%.1f\" }} days ago, more than its maximum age of "
                    f"{max_age}: retrain it on recent data, or raise maxModelAge if it still performs."
                ),
                runbook_url=runbooks.url(STALE_ALERT),
            ),
        ),
    )
