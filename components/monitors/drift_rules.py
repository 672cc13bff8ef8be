"""Drift computed by Prometheus: PSI and Jensen-Shannon distance per feature, over two windows.

The service exports, per feature and per bin, a counter of live values and the training data's share of
the bin (the model contract's drift series). From them, for each window, Prometheus records the window's
share per bin, summed across replicas, and compares it with the reference share:

* PSI = Σ (q - p) · ln(q / p), both shares clamped below at the contract's ``PSI_EPSILON`` (an empty bin
  contributes a large but finite term instead of an infinity);
* JS distance = √(½ Σ q · log₂(q / m) + ½ Σ p · log₂(p / m)), m = (q + p) / 2, shares clamped at
  ``JS_EPSILON`` only so that 0 · log 0 is 0 rather than NaN (JS is bounded with empty bins);

the same formulas as ``scipy.spatial.distance.jensenshannon(p, q, base=2)`` and the usual PSI, which the
tests check on the same counts.

Like burn-rate alerts, a drift alert needs both windows above the feature's threshold: the long window says
the shift is real and lasting, the short one that it is still there, so the alert resolves soon after the
inputs return. Both windows must also hold the contract's minimum volume: below it, sampling noise alone
reaches the thresholds. Thresholds are recorded as series per feature, so a per-feature override and the
dashboard's threshold lines come from the same place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from model_service import contract

from components.contracts import CLUSTER_LABEL, Severity
from components.monitors.rule_model import (
    WINDOW_LABEL,
    AlertingRule,
    Matcher,
    RecordingRule,
    RuleGroup,
    TimeScale,
    by,
    parse_duration,
    re2_escape,
    selector,
)
from components.monitors.runbooks import RunbookLinks

FEATURE_DRIFT_ALERT: Final = "ModelFeatureDrift"
PREDICTION_DRIFT_ALERT: Final = "ModelPredictionDrift"
STATISTIC_LABEL: Final = "statistic"
"""Alert label naming the statistic that crossed its threshold: ``psi`` or ``js_distance``."""
DRIFT_FOR: Final = "10m"
"""How long both windows must stay above the threshold: the windows already smooth, this only rides out a
single evaluation's spike."""

GROUP_LABELS: Final = (CLUSTER_LABEL, "namespace", "job", *contract.DRIFT_GROUP_LABELS)
"""Labels of one drift statistic: the contract's (model, version, feature) plus the scrape target's
namespace and job, so two services exporting the same model name never share a series, and the cluster, so that
the same rules over a store of several clusters answer per cluster."""
BIN_LABELS: Final = (*GROUP_LABELS, contract.LABEL_BIN)

REFERENCE: Final = "model_feature_bin:drift_reference_ratio:max"
PSI_THRESHOLD_SERIES: Final = "model_feature:drift_psi:threshold"
JS_THRESHOLD_SERIES: Final = "model_feature:drift_js_distance:threshold"
PSI_SHORT_WINDOW: Final = "model_feature:drift_psi:short_window"
PSI_LONG_WINDOW: Final = "model_feature:drift_psi:long_window"
JS_SHORT_WINDOW: Final = "model_feature:drift_js_distance:short_window"
JS_LONG_WINDOW: Final = "model_feature:drift_js_distance:long_window"
"""The drift statistics of each model's own short and long windows under one name, their window as a label: what a
dashboard of several models, each with its windows, reads."""


def observations_by_bin(window: str) -> str:
    return f"model_feature_bin:drift_observations:increase{window}"


def observations(window: str) -> str:
    return f"model_feature:drift_observations:increase{window}"


def bin_ratio(window: str) -> str:
    return f"model_feature_bin:drift_bin_ratio:{window}"


def js_mixture(window: str) -> str:
    return f"model_feature_bin:drift_js_mixture_ratio:{window}"


def psi(window: str) -> str:
    return f"model_feature:drift_psi:{window}"


def js_distance(window: str) -> str:
    return f"model_feature:drift_js_distance:{window}"


def psi_across_clusters(window: str, **scope: str) -> str:
    """PSI of a feature over every cluster a store holds: the clusters' recorded per-bin counts summed first.

    Averaging per-cluster PSIs would weigh a quiet cluster like a busy one and hide a shift the fleet as a whole
    shows; PSI is not additive, so the global figure comes from the summed bins, which each Prometheus already
    records (``observations_by_bin``) and writes to the store. ``scope`` selects the model (``job``,
    ``namespace``, ``model_name``); an HA pair must reach the store deduplicated, or its bins count twice.
    """
    labels = tuple(label for label in GROUP_LABELS if label != CLUSTER_LABEL)
    bins = by((*labels, contract.LABEL_BIN))
    counts = f"sum by {bins} ({selector(observations_by_bin(window), **scope)})"
    q = (f"clamp_min(\n    {counts}\n  / ignoring ({contract.LABEL_BIN}) group_left ()\n"
         f"    (sum by {by(labels)} ({selector(observations_by_bin(window), **scope)}) > 0),\n"
         f"  {contract.PSI_EPSILON}\n)")
    p = f"clamp_min(max by {bins} ({selector(REFERENCE, **scope)}), {contract.PSI_EPSILON})"
    return f"sum by {by(labels)} (\n  ({q} - on {bins} {p})\n* on {bins}\n  ln({q} / on {bins} {p})\n)"


def js_mixture_expr(q: str, p: str, *, bins: str) -> str:
    """m = (q + p) / 2 per bin, from two distributions' (clamped) shares with the same labels ``bins``."""
    return f"(\n    {q}\n  + on {bins}\n    {p}\n) / 2"


def js_distance_expr(q: str, p: str, mixture: str, *, group: str, bins: str) -> str:
    """JS distance = sqrt(KL(q || m) / 2 + KL(p || m) / 2), in bits, per ``group``: ``q`` and ``p`` are (clamped)
    shares by ``bins`` (``group`` and the bin), ``mixture`` their recorded ``js_mixture_expr``.

    Equal distributions give a sum of float noise around 0, below it as often as above: clamped at 0, so that
    their distance is 0 rather than the NaN of a negative number's square root."""
    return (
        "sqrt(clamp_min(\n"
        f"    0.5 * sum by {group} (\n"
        f"        {q}\n      * on {bins}\n        log2({q} / on {bins} {mixture})\n    )\n"
        f"  + on {group}\n"
        f"    0.5 * sum by {group} (\n"
        f"        {p}\n      * on {bins}\n        log2({p} / on {bins} {mixture})\n    ),\n"
        "  0\n))"
    )


@dataclass(frozen=True, kw_only=True)
class DriftThresholds:
    """Values at or above which a feature counts as drifted."""

    psi: float
    js_distance: float


@dataclass(frozen=True, kw_only=True)
class DriftSettings:
    """Windows, thresholds and the volume guard of the drift rules."""

    short_window: str
    long_window: str
    default: DriftThresholds
    per_feature: Mapping[str, DriftThresholds]
    """Thresholds of features that differ from ``default`` (the prediction is the feature
    ``contract.PREDICTION_FEATURE``)."""
    min_window_observations: int

    def __post_init__(self) -> None:
        if parse_duration(self.short_window) >= parse_duration(self.long_window):
            raise ValueError(
                f"the drift short window must be shorter than the long one (got {self.short_window} and "
                f"{self.long_window})"
            )

    @property
    def windows(self) -> tuple[str, str]:
        return (self.short_window, self.long_window)


def _threshold_rules(
    record: str, default: float, overrides: Mapping[str, float], scope: Mapping[str, str]
) -> list[RecordingRule]:
    """One threshold series per feature of the model: overridden features, then every other feature."""
    group = by(GROUP_LABELS)
    rules = [
        RecordingRule(
            record=record,
            expr=f"{value} * group by {group} ({selector(REFERENCE, **scope, feature=feature)})",
            labels={contract.LABEL_FEATURE: feature},  # tells the rules apart (promtool's duplicate check)
        )
        for feature, value in sorted(overrides.items())
    ]
    others = [Matcher(contract.LABEL_FEATURE, "|".join(re2_escape(f) for f in sorted(overrides)), "!~")]
    rules.append(
        RecordingRule(
            record=record,
            expr=f"{default} * group by {group} ({selector(REFERENCE, *(others if overrides else []), **scope)})",
        )
    )
    return rules


def drift_rule_group(
    settings: DriftSettings,
    *,
    name: str,
    scope: Mapping[str, str],
    scale: TimeScale,
    runbooks: RunbookLinks,
    interval: str | None = None,
) -> RuleGroup:
    """The drift recordings and alerts of one service, in evaluation order.

    ``scope`` are the equality matchers that select this service's series (namespace and job). The alerts
    take the model's name and version from the series themselves.
    """
    group = by(GROUP_LABELS)
    bins = by(BIN_LABELS)
    rules: list[RecordingRule | AlertingRule] = [
        RecordingRule(
            record=REFERENCE,
            expr=f"max by {bins} ({selector(contract.DRIFT_BIN_REFERENCE_RATIO.name, **scope)})",
        )
    ]

    def recorded(record: str) -> str:
        return selector(record, **scope)

    for window in settings.windows:
        rendered = scale.render(window)
        q_psi = f"clamp_min({recorded(bin_ratio(window))}, {contract.PSI_EPSILON})"
        p_psi = f"clamp_min({recorded(REFERENCE)}, {contract.PSI_EPSILON})"
        q_js = f"clamp_min({recorded(bin_ratio(window))}, {contract.JS_EPSILON})"
        p_js = f"clamp_min({recorded(REFERENCE)}, {contract.JS_EPSILON})"
        mixture = recorded(js_mixture(window))
        rules += [
            RecordingRule(
                record=observations_by_bin(window),
                expr=(
                    f"sum by {bins} "
                    f"(increase({selector(contract.DRIFT_BIN_OBSERVATIONS.name, **scope)}[{rendered}]))"
                ),
            ),
            RecordingRule(
                record=observations(window),
                expr=f"sum by {group} ({recorded(observations_by_bin(window))})",
            ),
            # Share of the window's observations in each bin; a window without any observation records none.
            RecordingRule(
                record=bin_ratio(window),
                expr=(
                    f"{recorded(observations_by_bin(window))}\n/ ignoring ({contract.LABEL_BIN}) group_left ()\n"
                    f"({recorded(observations(window))} > 0)"
                ),
            ),
            # PSI = sum over bins of (q - p) * ln(q / p).
            RecordingRule(
                record=psi(window),
                expr=(
                    f"sum by {group} (\n"
                    f"    (\n        {q_psi}\n      - on {bins}\n        {p_psi}\n    )\n"
                    f"  * on {bins}\n"
                    f"    ln(\n        {q_psi}\n      / on {bins}\n        {p_psi}\n    )\n"
                    ")"
                ),
            ),
            RecordingRule(record=js_mixture(window), expr=js_mixture_expr(q_js, p_js, bins=bins)),
            RecordingRule(
                record=js_distance(window), expr=js_distance_expr(q_js, p_js, mixture, group=group, bins=bins)
            ),
        ]

    rules += _threshold_rules(
        PSI_THRESHOLD_SERIES,
        settings.default.psi,
        {f: t.psi for f, t in settings.per_feature.items()},
        scope,
    )
    rules += _threshold_rules(
        JS_THRESHOLD_SERIES,
        settings.default.js_distance,
        {f: t.js_distance for f, t in settings.per_feature.items()},
        scope,
    )

    short, long = settings.windows
    for record, statistic_of, window in ((PSI_SHORT_WINDOW, psi, short), (PSI_LONG_WINDOW, psi, long),
                                         (JS_SHORT_WINDOW, js_distance, short), (JS_LONG_WINDOW, js_distance, long)):
        rules.append(RecordingRule(record=record, expr=recorded(statistic_of(window)), labels={WINDOW_LABEL: window}))
    volume = f"\nand on {group}\n".join(
        f"{recorded(observations(w))} >= {settings.min_window_observations}" for w in settings.windows
    )
    statistics = (("psi", psi, PSI_THRESHOLD_SERIES, "PSI"), ("js_distance", js_distance, JS_THRESHOLD_SERIES,
                                                              "Jensen-Shannon distance"))
    for alert, feature_matcher, subject in (
        (FEATURE_DRIFT_ALERT, Matcher(contract.LABEL_FEATURE, contract.PREDICTION_FEATURE, "!="),
         "Input feature {{ $labels.feature }}"),
        (PREDICTION_DRIFT_ALERT, Matcher(contract.LABEL_FEATURE, contract.PREDICTION_FEATURE),
         "The prediction"),
    ):
        for statistic, series, threshold_series, title in statistics:
            threshold = recorded(threshold_series)
            expr = (
                f"({selector(series(short), feature_matcher, **scope)} > on {group} {threshold})\n"
                f"and on {group}\n"
                f"({selector(series(long), feature_matcher, **scope)} > on {group} {threshold})\n"
                f"and on {group}\n"
                f"{volume}"
            )
            rules.append(
                AlertingRule(
                    alert=alert,
                    expr=expr,
                    for_=scale.render(DRIFT_FOR),
                    severity=Severity.WARNING,
                    summary=(
                        "A model input feature no longer follows its training distribution."
                        if alert == FEATURE_DRIFT_ALERT
                        else "The model's predictions no longer follow their training distribution."
                    ),
                    description=(
                        f"{subject} of model {{{{ $labels.model_name }}}} {{{{ $labels.model_version }}}} in "
                        f"namespace {{{{ $labels.namespace }}}} has drifted: {title} "
                        f"{{{{ $value | printf \"%.3f\" }}}} over the last {short}, and above its threshold over "
                        f"the last {long} too (each window with at least {settings.min_window_observations} "
                        "observations)."
                    ),
                    runbook_url=runbooks.url(alert),
                    labels={STATISTIC_LABEL: statistic},
                )
            )
    return RuleGroup(name=name, rules=tuple(rules), interval=interval)
