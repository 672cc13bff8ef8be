"""A canary against its stable version: per-track recordings and ``ModelCanaryWorseThanStable``.

Every series scraped from a model's pod carries the pod's track (``TRACK_SERIES_LABEL``: ``stable`` or
``canary``, copied by the ServiceMonitor's ``podTargetLabels``). Over one window (``monitors.canary.window``)
these rules record, per track, the interface SLIs of ``/predict`` (error ratio, a latency quantile), the
accuracy on scored feedback and the shares of predicted classes, and the Jensen-Shannon distance of each track's
shares to the stable's (the drift rules' formula, ``drift_rules.js_distance_expr``; the stable's own is 0).
Feature drift needs no rule here: the drift rules already group by model version (the contract's drift labels),
so a canary serving its own version has its own PSI, JS distance and ``ModelFeatureDrift`` against training.

Accuracy is per version, not per scoring pod: the Service sends a prediction's feedback to a pod of either
track, which counts it under the version the id names (``MODEL_ACCEPTED_VERSIONS``); a track's accuracy is that
of the versions its pods report in ``model_info``.

The alert fires when the canary is worse than the stable version by more than a configured margin on any of
the four, each instance labelled with its ``criterion``, and only once the canary has served
``minRequests`` in the window (accuracy: once both versions have ``minFeedback`` scored items), since a few
requests tell nothing. The group is declared for every model, canary or not: without canary pods its canary
recordings and alert are empty and cost nothing, every recording still has the stable's values, an external
model whose own canary pods carry the track label is compared too, and a canary that starts or ends changes no
rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Final

from model_service import contract

from components.contracts import CLUSTER_LABEL, TRACK_CANARY, TRACK_SERIES_LABEL, TRACK_STABLE, TRACKS, Severity
from components.monitors.config import CanaryConfig
from components.monitors.drift_rules import js_distance_expr, js_mixture_expr
from components.monitors.model_rules import percent
from components.monitors.model_slos import SERVER_ERROR_CODES
from components.monitors.rule_model import (
    WINDOW_LABEL,
    AlertingRule,
    Matcher,
    RecordingRule,
    RuleGroup,
    TimeScale,
    by,
    selector,
)
from components.monitors.runbooks import RunbookLinks

CANARY_ALERT: Final = "ModelCanaryWorseThanStable"
CRITERION_LABEL: Final = "criterion"
"""Alert label naming what the canary is worse at: one of ``CRITERIA``."""
CRITERIA: Final = ("error_ratio", "latency", "accuracy", "prediction_mix")
CANARY_FOR: Final = "10m"
"""How long the canary must stay worse: the window already smooths, this rides out a burst of a few minutes."""
QUANTILE_LABEL: Final = "quantile"

SCOPE_GROUP: Final = (CLUSTER_LABEL, "namespace", "job")
"""Labels of one model's service (across clusters too); the tracks are compared within it."""
TRACK_GROUP: Final = (*SCOPE_GROUP, TRACK_SERIES_LABEL)
"""Labels of one track's recording."""
CLASS_GROUP: Final = (*TRACK_GROUP, contract.LABEL_CLASS)


REQUESTS: Final = "model_track:http_requests:increase_window"
ERROR_RATIO: Final = "model_track:http_errors:ratio_window"
LATENCY: Final = "model_track:http_request_duration_seconds:quantile_window"
FEEDBACK_VOLUME: Final = "model_track:feedback:increase_window"
FEEDBACK_CORRECT: Final = "model_track:feedback_correct:increase_window"
ACCURACY: Final = "model_track:feedback_accuracy:ratio_window"
PREDICTIONS: Final = "model_track_class:predictions:increase_window"
PREDICTION_SHARE: Final = "model_track_class:prediction_share:ratio_window"
STABLE_PREDICTION_SHARE: Final = "model_track_class:prediction_share_stable:ratio_window"
"""The stable version's class shares, beside every track's: the reference each track's distance is to."""
PREDICTION_JS_MIXTURE: Final = "model_track_class:prediction_js_mixture:ratio_window"
PREDICTION_JS_DISTANCE: Final = "model_track:prediction_js_distance_to_stable:window"
"""JS distance of a track's class shares to the stable's (0 for the stable itself)."""
RECORDINGS: Final = (REQUESTS, ERROR_RATIO, LATENCY, FEEDBACK_VOLUME, FEEDBACK_CORRECT, ACCURACY, PREDICTIONS,
                     PREDICTION_SHARE, STABLE_PREDICTION_SHARE, PREDICTION_JS_MIXTURE, PREDICTION_JS_DISTANCE)
"""Every recording of the group, each over the model's one comparison window, named without it and labelled with
it (``window``): a dashboard of several models, each with its window, reads them."""


@dataclass(frozen=True, kw_only=True)
class CanarySettings:
    """The window, the margins and the volume guards of the comparison."""

    window: str
    max_error_ratio_increase: float
    latency_quantile: float
    max_latency_increase_ratio: float
    max_accuracy_drop: float
    max_prediction_js_distance: float
    min_requests: int
    min_feedback: int


def canary_settings(config: CanaryConfig) -> CanarySettings:
    """The rules' settings from the model's ``monitors.canary``."""
    return CanarySettings(**{name: getattr(config, name) for name in CanaryConfig.model_fields})


def canary_rule_group(
    settings: CanarySettings,
    *,
    name: str,
    scope: Mapping[str, str],
    scale: TimeScale,
    runbooks: RunbookLinks,
    labels: Mapping[str, str] | None = None,
    interval: str | None = None,
) -> RuleGroup:
    """The per-track recordings and the canary alert of one service (``scope``: its namespace and job); ``labels``
    go on the alert, since the interface series it compares carry no model labels of their own."""
    window = settings.window
    rendered = scale.render(window)
    service, track, classes = by(SCOPE_GROUP), by(TRACK_GROUP), by(CLASS_GROUP)
    route = {contract.LABEL_ROUTE: contract.ROUTE_PREDICT}
    total = selector(contract.HTTP_REQUESTS.name, **scope, **route)
    errors = selector(contract.HTTP_REQUESTS.name, Matcher(contract.LABEL_CODE, SERVER_ERROR_CODES, "=~"),
                      **scope, **route)
    buckets = selector(f"{contract.HTTP_REQUEST_DURATION.name}_bucket", **scope, **route)

    def recorded(record: str, **labels: str) -> str:
        return selector(record, **scope, **labels)

    def of(record: str, track_name: str) -> str:
        return recorded(record, **{TRACK_SERIES_LABEL: track_name})

    rules: list[RecordingRule | AlertingRule] = [
        RecordingRule(record=REQUESTS, expr=f"sum by {track} (increase({total}[{rendered}]))"),
        RecordingRule(
            record=ERROR_RATIO,
            # No 5xx series exists before a track's first error: its traffic then counts 0 errors.
            expr=(
                f"(sum by {track} (increase({errors}[{rendered}])) or on {track} 0 * {recorded(REQUESTS)})\n"
                f"/ on {track}\n({recorded(REQUESTS)} > 0)"
            ),
        ),
        RecordingRule(
            record=LATENCY,
            expr=(
                f"histogram_quantile({settings.latency_quantile}, "
                f"sum by {by((*TRACK_GROUP, 'le'))} (rate({buckets}[{rendered}])))"
            ),
            labels={QUANTILE_LABEL: str(settings.latency_quantile)},
        ),
    ]
    # Accuracy per track: the feedback of the versions the track's pods serve, wherever it was scored.
    versions = by((*SCOPE_GROUP, contract.LABEL_MODEL_VERSION))
    for track_name in TRACKS:
        served = selector(contract.MODEL_INFO.name, **scope, **{TRACK_SERIES_LABEL: track_name})
        for record, extra in ((FEEDBACK_VOLUME, {}), (FEEDBACK_CORRECT,
                                                              {contract.LABEL_OUTCOME: contract.OUTCOME_CORRECT})):
            feedback = selector(contract.FEEDBACK.name, **scope, **extra)
            rules.append(RecordingRule(
                record=record,
                expr=(
                    f"sum by {service} (\n  sum by {versions} (increase({feedback}[{rendered}]))\n"
                    f"  and on {versions}\n  {served}\n)"
                ),
                labels={TRACK_SERIES_LABEL: track_name},
            ))
    rules.append(RecordingRule(
        record=ACCURACY,
        expr=f"{recorded(FEEDBACK_CORRECT)}\n/ on {track}\n({recorded(FEEDBACK_VOLUME)} > 0)",
    ))
    # Shares of predicted classes per track, and their JS distance to the stable's (drift_rules' formula).
    q = f"clamp_min({recorded(PREDICTION_SHARE)}, {contract.JS_EPSILON})"
    p = f"clamp_min({recorded(STABLE_PREDICTION_SHARE)}, {contract.JS_EPSILON})"
    rules += [
        RecordingRule(
            record=PREDICTIONS,
            expr=f"sum by {classes} (increase({selector(contract.PREDICTIONS.name, **scope)}[{rendered}]))",
        ),
        RecordingRule(
            record=PREDICTION_SHARE,
            expr=(
                f"{recorded(PREDICTIONS)}\n/ on {track} group_left ()\n"
                f"(sum by {track} ({recorded(PREDICTIONS)}) > 0)"
            ),
        ),
        RecordingRule(
            record=STABLE_PREDICTION_SHARE,
            expr=(
                f"group by {classes} ({recorded(PREDICTION_SHARE)})\n"
                f"* on {by((*SCOPE_GROUP, contract.LABEL_CLASS))} group_left ()\n"
                f"max by {by((*SCOPE_GROUP, contract.LABEL_CLASS))} ({of(PREDICTION_SHARE, TRACK_STABLE)})"
            ),
        ),
        RecordingRule(record=PREDICTION_JS_MIXTURE, expr=js_mixture_expr(q, p, bins=classes)),
        RecordingRule(
            record=PREDICTION_JS_DISTANCE,
            expr=js_distance_expr(q, p, recorded(PREDICTION_JS_MIXTURE), group=track, bins=classes),
        ),
    ]

    canary_volume = f"{of(REQUESTS, TRACK_CANARY)} >= {settings.min_requests}"
    feedback_guard = f"\nand on {service}\n".join(
        f"{of(FEEDBACK_VOLUME, name)} >= {settings.min_feedback}" for name in TRACKS
    )
    conditions = {
        "error_ratio": (
            f"{of(ERROR_RATIO, TRACK_CANARY)}\n- on {service}\n{of(ERROR_RATIO, TRACK_STABLE)}\n"
            f"> {settings.max_error_ratio_increase}\nand on {service}\n{canary_volume}",
            f"fails {{{{ $value | humanizePercentage }}}} more of its {contract.ROUTE_PREDICT} requests than the "
            f"stable version (at most {percent(settings.max_error_ratio_increase)} more allowed)",
        ),
        "latency": (
            f"{of(LATENCY, TRACK_CANARY)}\n/ on {service}\n({of(LATENCY, TRACK_STABLE)} > 0)\n"
            f"> {1 + settings.max_latency_increase_ratio:g}\nand on {service}\n{canary_volume}",
            f"answers {contract.ROUTE_PREDICT} {{{{ $value | printf \"%.2f\" }}}} times as slowly as the stable "
            f"version at the {settings.latency_quantile:g} quantile (at most "
            f"{1 + settings.max_latency_increase_ratio:g} times allowed)",
        ),
        "accuracy": (
            f"{of(ACCURACY, TRACK_STABLE)}\n- on {service}\n{of(ACCURACY, TRACK_CANARY)}\n"
            f"> {settings.max_accuracy_drop}\nand on {service}\n{feedback_guard}",
            "is right on {{ $value | humanizePercentage }} less of its scored feedback than the stable version "
            f"(at most {percent(settings.max_accuracy_drop)} less allowed, each version with at least "
            f"{settings.min_feedback} items)",
        ),
        "prediction_mix": (
            f"{of(PREDICTION_JS_DISTANCE, TRACK_CANARY)}\n> {settings.max_prediction_js_distance}\n"
            f"and on {service}\n{canary_volume}",
            "predicts classes in other proportions than the stable version: Jensen-Shannon distance "
            "{{ $value | printf \"%.3f\" }} between their shares of predicted classes (at most "
            f"{settings.max_prediction_js_distance:g} allowed)",
        ),
    }
    for criterion in CRITERIA:
        expr, what = conditions[criterion]
        rules.append(AlertingRule(
            alert=CANARY_ALERT,
            expr=expr,
            for_=scale.render(CANARY_FOR),
            severity=Severity.WARNING,
            summary="The model's canary version is worse than its stable version.",
            description=(
                "The canary of job {{ $labels.job }} in namespace {{ $labels.namespace }} " + what
                + f", over the last {window} (the canary with at least {settings.min_requests} requests)."
            ),
            runbook_url=runbooks.url(CANARY_ALERT),
            labels={**(labels or {}), CRITERION_LABEL: criterion},
        ))
    windowed = tuple(replace(rule, labels={**rule.labels, WINDOW_LABEL: window}) if isinstance(rule, RecordingRule)
                     else rule for rule in rules)
    return RuleGroup(name=name, rules=windowed, interval=interval)
