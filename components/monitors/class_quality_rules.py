"""Precision and recall of every class from the feedback confusion matrix, and ``ModelClassRecallBelowFloor``.

Overall accuracy hides a class the model has stopped recognising when that class is rare or the others are easy:
a churn model can stay at 90% while it misses most churners. The service exports feedback as a confusion matrix
(``predicted_class`` by ``actual_class``, with ``outcome``), so over the accuracy window Prometheus records

* recall of a class = feedback of that actual class predicted right / all feedback of that actual class;
* precision of a class = feedback predicted as that class that was right / all feedback predicted as it;

both from one recording of the matrix's cells, so the two never read different windows. Only recall alerts: a
class the model misses is the failure a team cannot see elsewhere, while low precision of one class shows as low
recall of the classes it takes from. Each class's recall is compared with its own floor (a recorded series, as
the drift thresholds are, so an override and the dashboard's line come from one place), once the window holds a
minimum of that class's feedback: a class seen a dozen times has a recall of sampling noise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from model_service import contract

from components.contracts import Severity
from components.monitors.model_rules import ACCURACY_FOR, MODEL_GROUP, percent
from components.monitors.rule_model import (
    WINDOW_LABEL,
    AlertingRule,
    Matcher,
    RecordingRule,
    RuleGroup,
    TimeScale,
    by,
    re2_escape,
    selector,
)
from components.monitors.runbooks import RunbookLinks

CLASS_RECALL_ALERT: Final = "ModelClassRecallBelowFloor"

ACTUAL: Final = contract.LABEL_ACTUAL_CLASS
PREDICTED: Final = contract.LABEL_PREDICTED_CLASS
CELL_GROUP: Final = (*MODEL_GROUP, PREDICTED, ACTUAL, contract.LABEL_OUTCOME)
"""Labels of one cell of a model's confusion matrix."""
ACTUAL_GROUP: Final = (*MODEL_GROUP, ACTUAL)
PREDICTED_GROUP: Final = (*MODEL_GROUP, PREDICTED)

RECALL_FLOOR: Final = "model_class:feedback_recall:floor"
"""Each class's recall floor, by ``actual_class``: the alert and the dashboard read it."""
RECALL_OVER_WINDOW: Final = "model_class:feedback_recall:ratio_window"
PRECISION_OVER_WINDOW: Final = "model_class:feedback_precision:ratio_window"
"""Recall and precision over the model's accuracy window under one name, the window as label ``window``: what a
dashboard of several models reads."""


def cells(window: str) -> str:
    """Feedback per cell of the confusion matrix over ``window``, summed across replicas."""
    return f"model_class_pair:feedback:increase{window}"


def actual_volume(window: str) -> str:
    """Feedback per actual class over ``window``: the denominator of recall and the volume guard."""
    return f"model_class:feedback_actual:increase{window}"


def predicted_volume(window: str) -> str:
    """Feedback per predicted class over ``window``: the denominator of precision."""
    return f"model_class:feedback_predicted:increase{window}"


def recall(window: str) -> str:
    return f"model_class:feedback_recall:ratio{window}"


def precision(window: str) -> str:
    return f"model_class:feedback_precision:ratio{window}"


@dataclass(frozen=True, kw_only=True)
class ClassQualitySettings:
    """The window (the accuracy window), the recall floors and the feedback a class needs before it may alert."""

    window: str
    floor: float
    """Recall floor of every class not in ``per_class``."""
    per_class: Mapping[str, float] = field(default_factory=dict)
    """Recall floors that differ from ``floor``, by class name."""
    min_class_feedback: int

    def __post_init__(self) -> None:
        for name, value in {"default": self.floor, **self.per_class}.items():
            if not 0 < value < 1:
                raise ValueError(f"the recall floor of {name} must be between 0 and 1 (got {value})")


def _floor_rules(settings: ClassQualitySettings, scope: Mapping[str, str]) -> list[RecordingRule]:
    """One floor series per class the feedback counters know: overridden classes, then every other class."""
    group = by(ACTUAL_GROUP)
    feedback = contract.FEEDBACK.name
    rules = [
        RecordingRule(
            record=RECALL_FLOOR,
            expr=f"{value} * group by {group} ({selector(feedback, **scope, **{ACTUAL: name})})",
            labels={ACTUAL: name},  # tells the rules apart (promtool's duplicate check)
        )
        for name, value in sorted(settings.per_class.items())
    ]
    others = [Matcher(ACTUAL, "|".join(re2_escape(name) for name in sorted(settings.per_class)), "!~")]
    rules.append(
        RecordingRule(
            record=RECALL_FLOOR,
            expr=f"{settings.floor} * group by {group} "
                 f"({selector(feedback, *(others if settings.per_class else []), **scope)})",
        )
    )
    return rules


def _floors_text(settings: ClassQualitySettings) -> str:
    overrides = ", ".join(f"{name} {percent(value)}" for name, value in sorted(settings.per_class.items()))
    return percent(settings.floor) + (f"; {overrides}" if overrides else "")


def class_quality_rule_group(
    settings: ClassQualitySettings,
    *,
    name: str,
    scope: Mapping[str, str],
    scale: TimeScale,
    runbooks: RunbookLinks,
    interval: str | None = None,
) -> RuleGroup:
    """The confusion matrix over the window, recall and precision per class, their floors and the alert.

    The alert takes the model's name and version, and the class (``actual_class``), from the series themselves.
    """
    window = settings.window
    rendered = scale.render(window)

    def recorded(record: str, *matchers: Matcher) -> str:
        return selector(record, *matchers, **scope)

    correct = Matcher(contract.LABEL_OUTCOME, contract.OUTCOME_CORRECT)
    actual, predicted = by(ACTUAL_GROUP), by(PREDICTED_GROUP)
    floor = recorded(RECALL_FLOOR)
    return RuleGroup(
        name=name,
        interval=interval,
        rules=(
            RecordingRule(
                record=cells(window),
                expr=f"sum by {by(CELL_GROUP)} (increase({selector(contract.FEEDBACK.name, **scope)}[{rendered}]))",
            ),
            RecordingRule(record=actual_volume(window), expr=f"sum by {actual} ({recorded(cells(window))})"),
            RecordingRule(record=predicted_volume(window), expr=f"sum by {predicted} ({recorded(cells(window))})"),
            # A class without feedback in the window has no recall (nor precision) rather than 0/0.
            RecordingRule(
                record=recall(window),
                expr=(
                    f"sum by {actual} ({recorded(cells(window), correct)})\n/ on {actual}\n"
                    f"({recorded(actual_volume(window))} > 0)"
                ),
            ),
            RecordingRule(
                record=precision(window),
                expr=(
                    f"sum by {predicted} ({recorded(cells(window), correct)})\n/ on {predicted}\n"
                    f"({recorded(predicted_volume(window))} > 0)"
                ),
            ),
            RecordingRule(record=RECALL_OVER_WINDOW, expr=recorded(recall(window)), labels={WINDOW_LABEL: window}),
            RecordingRule(
                record=PRECISION_OVER_WINDOW, expr=recorded(precision(window)), labels={WINDOW_LABEL: window}
            ),
            *_floor_rules(settings, scope),
            AlertingRule(
                alert=CLASS_RECALL_ALERT,
                expr=(
                    f"{recorded(recall(window))} < on {actual} {floor}\nand on {actual}\n"
                    f"{recorded(actual_volume(window))} >= {settings.min_class_feedback}"
                ),
                for_=scale.render(ACCURACY_FOR),
                severity=Severity.WARNING,
                summary="The model misses one class: its recall on scored feedback is below the class's floor.",
                description=(
                    "Of the feedback whose actual class is {{ $labels.actual_class }}, model "
                    "{{ $labels.model_name }} {{ $labels.model_version }} in namespace {{ $labels.namespace }} "
                    "predicted {{ $value | humanizePercentage }} right over the last "
                    f"{window}, below the class's floor (floors: {_floors_text(settings)}; at least "
                    f"{settings.min_class_feedback} items of the class scored)."
                ),
                runbook_url=runbooks.url(CLASS_RECALL_ALERT),
            ),
        ),
    )
