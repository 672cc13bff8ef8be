"""Data quality of a model's inputs: per feature and kind of problem, the share of the records that had it.

The service counts the records it examined and, per feature, the records whose value was missing, null,
non-finite or outside the feature's training range (the contract's ``INPUT_RECORDS`` and
``INPUT_QUALITY_ISSUES``). Over the model's window, Prometheus records each share, summed across replicas, and
``ModelInputQualityIssues`` fires when one passes its threshold for a while, with enough records in the window
that a handful of bad ones is not a large share.

Why a separate alert and not drift: a small share of impossible values hardly moves the drift statistics (the
values land in the outermost bins, together with every legitimate value beyond the outer edges), and refused
records never reach the drift bins at all. A client that stopped sending one feature, or sends ``null`` or
``NaN`` for it, or a unit change that puts 2% of the values out of range, shows here long before it shows as
drift, and the alert names the feature and the kind of problem.
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

INPUT_QUALITY_ALERT: Final = "ModelInputQualityIssues"

ISSUE_LABELS: Final = (*MODEL_GROUP, contract.LABEL_FEATURE, contract.LABEL_KIND)
"""Labels of one share: the model's (cluster, namespace, job, name, version), the feature and the kind."""

ISSUE_RATIO_OVER_WINDOW: Final = "model_feature:input_quality_issues:ratio_window"
"""Each share over the model's own window under one name, the window as label ``window``: what a dashboard of
several models reads."""
ISSUE_RATIO_THRESHOLD: Final = "model:input_quality_issues:threshold"
"""The model's maximum share, one series per model: the dashboard draws it."""


def records(window: str) -> str:
    """Records examined in the window, per model."""
    return f"model:input_records:increase{window}"


def issues(window: str) -> str:
    """Records with a problem in the window, per model, feature and kind."""
    return f"model_feature:input_quality_issues:increase{window}"


def issue_ratio(window: str) -> str:
    """Share of the window's records with a problem, per model, feature and kind."""
    return f"model_feature:input_quality_issues:ratio{window}"


@dataclass(frozen=True, kw_only=True)
class InputQualitySettings:
    """The maximum share of problem records, the window it is computed over, its volume guard and hold time."""

    max_issue_ratio: float
    window: str
    min_window_records: int
    for_: str
    """Logical duration a share must stay above the maximum before the alert fires."""

    def __post_init__(self) -> None:
        if not 0 < self.max_issue_ratio < 1:
            raise ValueError(f"max_issue_ratio must be in (0, 1), got {self.max_issue_ratio!r}")
        if self.min_window_records < 1:
            raise ValueError(f"min_window_records must be at least 1, got {self.min_window_records!r}")
        parse_duration(self.window)
        parse_duration(self.for_)


def input_quality_rule_group(
    settings: InputQualitySettings,
    *,
    name: str,
    scope: Mapping[str, str],
    scale: TimeScale,
    runbooks: RunbookLinks,
    interval: str | None = None,
) -> RuleGroup:
    """The shares of problem records over the model's window, its threshold, and ``ModelInputQualityIssues``.

    ``scope`` are the equality matchers that select this service's series (namespace and job). The alert takes
    the model's name and version, the feature and the kind from the series themselves.
    """
    window = settings.window
    rendered = scale.render(window)
    group = by(MODEL_GROUP)
    ratio = selector(issue_ratio(window), **scope)
    volume = selector(records(window), **scope)
    return RuleGroup(
        name=name,
        interval=interval,
        rules=(
            RecordingRule(
                record=records(window),
                expr=f"sum by {group} (increase({selector(contract.INPUT_RECORDS.name, **scope)}[{rendered}]))",
            ),
            RecordingRule(
                record=issues(window),
                expr=(
                    f"sum by {by(ISSUE_LABELS)} "
                    f"(increase({selector(contract.INPUT_QUALITY_ISSUES.name, **scope)}[{rendered}]))"
                ),
            ),
            # A window without any record records no share (rather than 0/0).
            RecordingRule(
                record=issue_ratio(window),
                expr=(
                    f"{selector(issues(window), **scope)}\n"
                    f"/ ignoring ({contract.LABEL_FEATURE}, {contract.LABEL_KIND}) group_left ()\n"
                    f"({volume} > 0)"
                ),
            ),
            RecordingRule(record=ISSUE_RATIO_OVER_WINDOW, expr=ratio, labels={WINDOW_LABEL: window}),
            RecordingRule(
                record=ISSUE_RATIO_THRESHOLD,
                expr=f"{settings.max_issue_ratio} * group by {group} "
                     f"({selector(contract.MODEL_INFO.name, **scope)})",
            ),
            AlertingRule(
                alert=INPUT_QUALITY_ALERT,
                expr=f"{ratio} > {settings.max_issue_ratio}\nand on {group}\n{volume} >= {settings.min_window_records}",
                for_=scale.render(settings.for_),
                severity=Severity.WARNING,
                summary="Too many of the model's input records have a problem in one feature.",
                description=(
                    "{{ $value | humanizePercentage }} of the records model {{ $labels.model_name }} "
                    "{{ $labels.model_version }} in namespace {{ $labels.namespace }} received over the last "
                    f"{window} had feature {{{{ $labels.feature }}}} {{{{ $labels.kind }}}}, above the maximum of "
                    f"{percent(settings.max_issue_ratio)} (at least {settings.min_window_records} records in the "
                    "window). Missing, null and non-finite values are refused; out-of-range values are served."
                ),
                runbook_url=runbooks.url(INPUT_QUALITY_ALERT),
            ),
        ),
    )
