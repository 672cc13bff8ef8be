"""SLO rules compatible with Sloth's: SLI and meta recordings, and multi-window multi-burn-rate alerts.

The alerting scheme is the SRE Workbook's (chapter 5, "Alerting on SLOs"): page when 2% of the period's
error budget is spent within an hour or 5% within six hours, open a ticket when 10% is spent within a day
or within three days. Each condition needs a long window (is the budget really burning?) and a short one,
about a twelfth of it (is it still burning?), so an alert resets soon after the problem stops.

The windows are data (:data:`WORKBOOK_WINDOWS`); the burn-rate factors (14.4, 6, 3, 1 for a 30-day
period) are computed from them and the period, and every number that reaches a rule is computed in
decimal arithmetic and rounded, so no ``0.0009999999999999432`` ever appears in an expression.

Names and labels are Sloth's (``slo:sli_error:ratio_rate<window>``, ``slo:objective:ratio``,
``slo:error_budget:ratio``, ``slo:period_error_budget_remaining:ratio``, ``sloth_id``, ``sloth_service``,
``sloth_slo``, ``sloth_window``, ``sloth_severity``, and the ``sloth-slo-*`` group names), so Sloth's and
Pyrra-style SLO dashboards work on them unchanged. Deliberate differences from Sloth's output:

* the SLI divides by ``(total > 0)``: an idle five minutes records nothing instead of ``NaN``, which
  would otherwise poison the period's average (``sum_over_time``) for a whole period;
* the recordings that read a whole period (the period's SLI, burn rate and budget left) form a group of their
  own, labelled ``slo_store`` with the store whose data they read: the cluster's Prometheus when it keeps a
  period of data, else a store that does (``components/monitoring/stores``), which evaluates that group;
* joins are also ``on`` the ``cluster`` label, so that rules evaluated over several clusters' series answer per
  cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal
from typing import Final, Literal

from components.contracts import CLUSTER_LABEL, LOCAL_STORE, SLO_STORE_LABEL, Severity
from components.monitors.rule_model import (
    AlertingRule,
    Matcher,
    RecordingRule,
    RuleGroup,
    TimeScale,
    by,
    parse_duration,
    selector,
)
from components.monitors.runbooks import RunbookLinks

SLOTH_ID: Final = "sloth_id"
SLOTH_SERVICE: Final = "sloth_service"
SLOTH_SLO: Final = "sloth_slo"
SLOTH_WINDOW: Final = "sloth_window"
SLOTH_SEVERITY: Final = "sloth_severity"

SLI_ERROR: Final = "slo:sli_error:ratio_rate"
"""Prefix of the SLI recordings; the logical window completes the name (``slo:sli_error:ratio_rate5m``)."""
OBJECTIVE: Final = "slo:objective:ratio"
ERROR_BUDGET: Final = "slo:error_budget:ratio"
TIME_PERIOD_DAYS: Final = "slo:time_period:days"
CURRENT_BURN_RATE: Final = "slo:current_burn_rate:ratio"
PERIOD_BURN_RATE: Final = "slo:period_burn_rate:ratio"
PERIOD_BUDGET_REMAINING: Final = "slo:period_error_budget_remaining:ratio"
SLO_INFO: Final = "sloth_slo_info"

WINDOW: Final = "{{.window}}"
"""Placeholder of the window in an SLI query, as Sloth spells it."""

SlothSeverity = Literal["page", "ticket"]
SEVERITY: Final[Mapping[SlothSeverity, Severity]] = {"page": Severity.CRITICAL, "ticket": Severity.WARNING}
"""Sloth's page/ticket in the project's vocabulary: a page is critical, a ticket a warning."""


@dataclass(frozen=True, kw_only=True)
class BurnRateWindow:
    """One alerting condition: spending ``budget_consumed`` of the period's budget within ``long``."""

    long: str
    short: str
    budget_consumed: str
    """Share of the period's error budget, as a decimal string so that no float rounding enters."""
    severity: SlothSeverity

    def factor(self, period: str) -> Decimal:
        """The burn rate that spends ``budget_consumed`` of the budget in ``long``: share * period / long.

        >>> WORKBOOK_WINDOWS[0].factor("30d"), WORKBOOK_WINDOWS[3].factor("30d")
        (Decimal('14.4'), Decimal('1'))
        """
        exact = Decimal(self.budget_consumed) * parse_duration(period) / parse_duration(self.long)
        return rounded(exact, "0.0001")


WORKBOOK_WINDOWS: Final[tuple[BurnRateWindow, ...]] = (
    BurnRateWindow(long="1h", short="5m", budget_consumed="0.02", severity="page"),
    BurnRateWindow(long="6h", short="30m", budget_consumed="0.05", severity="page"),
    BurnRateWindow(long="1d", short="2h", budget_consumed="0.1", severity="ticket"),
    BurnRateWindow(long="3d", short="6h", budget_consumed="0.1", severity="ticket"),
)
"""The SRE Workbook's recommendation (and Sloth's ``google-30d`` windows)."""


def rounded(value: Decimal, quantum: str) -> Decimal:
    return value.quantize(Decimal(quantum), rounding=ROUND_HALF_EVEN).normalize()


def number(value: Decimal) -> str:
    """A decimal as PromQL reads it, without exponent or trailing zeros.

    >>> number(Decimal("0.0720")), number(Decimal("3E+1"))
    ('0.072', '30')
    """
    return format(value.normalize(), "f")


def error_budget(objective_percent: float) -> Decimal:
    """The error budget of an objective, as a ratio: 99.5 → 0.005 (exactly)."""
    return rounded(1 - Decimal(str(objective_percent)) / 100, "1E-12")


def threshold(window: BurnRateWindow, objective_percent: float, period: str) -> Decimal:
    """The error ratio above which ``window`` fires: its factor times the error budget, rounded.

    >>> threshold(WORKBOOK_WINDOWS[0], 99.9, "30d")
    Decimal('0.0144')
    """
    return rounded(window.factor(period) * error_budget(objective_percent), "1E-12")


def check_objective(
    objective_percent: float, period: str, windows: tuple[BurnRateWindow, ...] = WORKBOOK_WINDOWS
) -> None:
    """Refuse an objective whose fastest alert could never fire (its threshold above an error ratio of 1)."""
    if not 0 < objective_percent < 100:
        raise ValueError(f"an SLO objective is a percentage strictly between 0 and 100, got {objective_percent}")
    for window in windows:
        if threshold(window, objective_percent, period) >= 1:
            budget = number(error_budget(objective_percent) * 100)
            raise ValueError(
                f"objective {objective_percent}% leaves an error budget of {budget}%, so the "
                f"{window.factor(period)}x burn-rate alert over {window.long} would need more than 100% errors "
                f"and could never fire; choose an objective of at least "
                f"{number((100 - Decimal(100) / window.factor(period)).quantize(Decimal('0.01'), ROUND_CEILING))}%"
            )


@dataclass(frozen=True, kw_only=True)
class Slo:
    """One SLO, reduced to what its rules need (the fields of a Sloth spec)."""

    service: str
    """``sloth_service``: the service the SLO belongs to."""
    name: str
    """``sloth_slo``: the SLO's name within the service."""
    objective_percent: float
    error_query: str
    """Rate of bad events; :data:`WINDOW` is replaced by each rendered window."""
    total_query: str
    """Rate of all events; :data:`WINDOW` is replaced by each rendered window."""
    labels: Mapping[str, str]
    """Labels every recording and alert carries besides the ``sloth_*`` ones (namespace, job, model)."""
    alert: str
    category: str
    """Value of the alerts' ``category`` label (availability, latency)."""
    summary: str
    what: str
    """How the alert's description names a bad event, after ``{{ $value }}`` (``"of /predict requests
    failed"``)."""

    @property
    def id(self) -> str:
        """``sloth_id``: Sloth's ``<service>-<slo>``."""
        return f"{self.service}-{self.name}"

    @property
    def identity(self) -> dict[str, str]:
        """The labels that tell this SLO's series apart from any other's."""
        return {SLOTH_ID: self.id, SLOTH_SERVICE: self.service, SLOTH_SLO: self.name, **self.labels}


def sli_windows(windows: tuple[BurnRateWindow, ...] = WORKBOOK_WINDOWS) -> tuple[str, ...]:
    """Every window an SLI is recorded over, shortest first."""
    names = {w.long for w in windows} | {w.short for w in windows}
    return tuple(sorted(names, key=parse_duration))


def sli_error_name(window: str) -> str:
    """``slo:sli_error:ratio_rate<window>``, with the logical window."""
    return f"{SLI_ERROR}{window}"


PERIOD_GROUP_PREFIX: Final = "sloth-slo-period-recordings-"
"""Name prefix of the groups whose rules read a whole SLO period, the longest window of all: the only rules a
store may have to evaluate, when Prometheus keeps less than a period (``is_period_group``)."""


def group_names(slo: Slo) -> tuple[str, str, str, str]:
    """The group names of one SLO: Sloth's SLI recordings, meta recordings and alerts, and the period recordings
    (in Sloth's SLI and meta groups; apart here, so that they can be evaluated where a whole period is kept)."""
    return (
        f"sloth-slo-sli-recordings-{slo.id}",
        f"sloth-slo-meta-recordings-{slo.id}",
        f"{PERIOD_GROUP_PREFIX}{slo.id}",
        f"sloth-slo-alerts-{slo.id}",
    )


def is_period_group(group: RuleGroup) -> bool:
    """Whether ``group`` holds an SLO's period recordings (which read a whole period of data)."""
    return group.name.startswith(PERIOD_GROUP_PREFIX)


def slo_rule_groups(
    slo: Slo,
    *,
    period: str,
    scale: TimeScale,
    runbooks: RunbookLinks,
    interval: str | None = None,
    windows: tuple[BurnRateWindow, ...] = WORKBOOK_WINDOWS,
    period_store: str = LOCAL_STORE,
    period_matchers: Mapping[str, str] | None = None,
) -> tuple[RuleGroup, RuleGroup, RuleGroup, RuleGroup]:
    """The four rule groups of one SLO (``group_names``).

    ``period_store`` names the store whose data the period recordings read (their ``slo_store`` label); a store
    holding several clusters' series evaluates them with ``period_matchers`` selecting this cluster's
    (``{"cluster": …}``). Every join is also ``on`` the cluster label, so that the same rules evaluated across
    clusters answer per cluster.
    """
    check_objective(slo.objective_percent, period, windows)
    identity = slo.identity
    matchers = [Matcher(k, v) for k, v in identity.items()]
    on_identity = by([*identity, CLUSTER_LABEL])
    in_store = [Matcher(k, v) for k, v in (period_matchers or {}).items()]

    def recorded(name: str) -> str:
        return selector(name, *matchers)

    def stored(name: str) -> str:
        return selector(name, *matchers, *in_store)

    sli_rules = [
        RecordingRule(
            record=sli_error_name(window),
            expr=(
                f"({slo.error_query.replace(WINDOW, scale.render(window))})\n/\n"
                f"({slo.total_query.replace(WINDOW, scale.render(window))} > 0)"
            ),
            labels={**identity, SLOTH_WINDOW: window},
        )
        for window in sli_windows(windows)
    ]
    shortest = sli_windows(windows)[0]
    from_store = {**identity, SLO_STORE_LABEL: period_store}
    period_rules = [
        RecordingRule(
            record=sli_error_name(period),
            expr=(
                f"sum_over_time({stored(sli_error_name(shortest))}[{scale.render(period)}])\n"
                f"/ ignoring ({SLOTH_WINDOW})\n"
                f"count_over_time({stored(sli_error_name(shortest))}[{scale.render(period)}])"
            ),
            labels={**from_store, SLOTH_WINDOW: period},
        ),
        RecordingRule(
            record=PERIOD_BURN_RATE,
            expr=f"{stored(sli_error_name(period))}\n/ on {on_identity} group_left\n{stored(ERROR_BUDGET)}",
            labels=from_store,
        ),
        RecordingRule(record=PERIOD_BUDGET_REMAINING, expr=f"1 - {stored(PERIOD_BURN_RATE)}", labels=from_store),
    ]

    objective = rounded(Decimal(str(slo.objective_percent)) / 100, "1E-12")
    budget = error_budget(slo.objective_percent)
    meta_rules = [
        RecordingRule(record=OBJECTIVE, expr=f"vector({number(objective)})", labels=identity),
        RecordingRule(record=ERROR_BUDGET, expr=f"vector({number(budget)})", labels=identity),
        RecordingRule(
            record=TIME_PERIOD_DAYS,
            expr=f"vector({number(Decimal(parse_duration(period)) / 86_400_000)})",
            labels=identity,
        ),
        RecordingRule(
            record=CURRENT_BURN_RATE,
            expr=(
                f"{recorded(sli_error_name(shortest))}\n/ on {on_identity} group_left\n{recorded(ERROR_BUDGET)}"
            ),
            labels=identity,
        ),
        RecordingRule(
            record=SLO_INFO,
            expr="vector(1)",
            labels={
                **identity,
                "sloth_mode": "ml-observability",
                "sloth_spec": "prometheus/v1",
                "sloth_objective": number(Decimal(str(slo.objective_percent))),
            },
        ),
    ]

    alert_rules = []
    for severity in ("page", "ticket"):
        chosen = [w for w in windows if w.severity == severity]
        if not chosen:
            continue
        branches = []
        for window in chosen:
            limit = number(threshold(window, slo.objective_percent, period))
            short = f"max without ({SLOTH_WINDOW}) ({recorded(sli_error_name(window.short))} > {limit})"
            long = f"max without ({SLOTH_WINDOW}) ({recorded(sli_error_name(window.long))} > {limit})"
            branches.append(f"(\n  {short}\nand\n  {long}\n)")
        conditions = " or ".join(
            f"{number(w.factor(period))}x over {w.long} and {w.short}" for w in chosen
        )
        alert_rules.append(
            AlertingRule(
                alert=slo.alert,
                expr="\nor\n".join(branches),
                severity=SEVERITY[severity],
                summary=slo.summary,
                description=(
                    f"{{{{ $value | humanizePercentage }}}} {slo.what} for {{{{ $labels.sloth_service }}}} in "
                    f"namespace {{{{ $labels.namespace }}}} (model {{{{ $labels.model_name }}}}). The "
                    f"{number(Decimal(str(slo.objective_percent)))}% SLO {{{{ $labels.sloth_slo }}}} is spending "
                    f"its {period} error budget too fast ({severity}: burn rate above {conditions})."
                ),
                runbook_url=runbooks.url(slo.alert),
                labels={**slo.labels, SLOTH_ID: slo.id, SLOTH_SERVICE: slo.service, SLOTH_SLO: slo.name,
                        SLOTH_SEVERITY: severity, "category": slo.category},
            )
        )
    sli_name, meta_name, period_name, alerts_name = group_names(slo)
    return (
        RuleGroup(name=sli_name, rules=tuple(sli_rules), interval=interval),
        RuleGroup(name=meta_name, rules=tuple(meta_rules), interval=interval),
        RuleGroup(name=period_name, rules=tuple(period_rules), interval=interval),
        RuleGroup(name=alerts_name, rules=tuple(alert_rules), interval=interval),
    )
