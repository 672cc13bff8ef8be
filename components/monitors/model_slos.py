"""The two SLOs every model that exports the metric contract gets: availability and latency of ``/predict``.

They are specs for the generator in ``slo_rules`` (the SLI as an error and a total query over the contract's
request counter and duration histogram); the objectives and the period come from the model's monitors' settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from model_service import contract

from components.contracts import CLUSTER_LABEL
from components.monitors.rule_model import Matcher, by, selector
from components.monitors.slo_rules import WINDOW, Slo, number, rounded

SERVER_ERROR_CODES: Final = "5.."
"""The ``code`` values (an RE2 pattern) of a failed request: what the availability SLI, and the canary's error
ratio, count as errors."""
AVAILABILITY_ALERT: Final = "ModelAvailabilityErrorBudgetBurn"
LATENCY_ALERT: Final = "ModelLatencyErrorBudgetBurn"


@dataclass(frozen=True, kw_only=True)
class LatencyObjective:
    """Share of requests that must be answered within a threshold."""

    threshold_seconds: float
    """Must be a bucket bound of the service's request-duration histogram (the sample service makes every
    configured threshold one)."""
    objective_percent: float


@dataclass(frozen=True, kw_only=True)
class SloSettings:
    """The objectives of a model service's interface."""

    availability_objective_percent: float
    latency: tuple[LatencyObjective, ...]
    period: str
    """The SLO period, e.g. ``30d``: the error budget is spent over it."""


def latency_slo_name(threshold_seconds: float) -> str:
    """``requests-latency-100ms``: the threshold in milliseconds, ``p`` for a decimal point (label-safe).

    >>> latency_slo_name(0.1), latency_slo_name(0.0025), latency_slo_name(2.0)
    ('requests-latency-100ms', 'requests-latency-2p5ms', 'requests-latency-2000ms')
    """
    milliseconds = number(rounded(Decimal(str(threshold_seconds)) * 1000, "0.001"))
    return f"requests-latency-{milliseconds.replace('.', 'p')}ms"


def model_slos(
    settings: SloSettings, *, service: str, scope: Mapping[str, str], labels: Mapping[str, str]
) -> tuple[Slo, ...]:
    """The availability SLO and one latency SLO per threshold, on the contract's ``/predict`` series.

    ``scope`` are the equality matchers that select this service's series (namespace and job); ``labels``
    are added to every recording.
    """
    route = {contract.LABEL_ROUTE: contract.ROUTE_PREDICT}
    cluster = by((CLUSTER_LABEL,))
    requests = contract.HTTP_REQUESTS.name
    errors = selector(requests, Matcher(contract.LABEL_CODE, SERVER_ERROR_CODES, "=~"), **scope, **route)
    total = selector(requests, **scope, **route)
    slos = [
        Slo(
            service=service,
            name="requests-availability",
            objective_percent=settings.availability_objective_percent,
            # No 5xx series exists before the first error: a cluster with traffic and no error counts 0.
            error_query=(
                f"sum by {cluster} (rate({errors}[{WINDOW}])) or 0 * sum by {cluster} (rate({total}[{WINDOW}]))"
            ),
            total_query=f"sum by {cluster} (rate({total}[{WINDOW}]))",
            labels=labels,
            alert=AVAILABILITY_ALERT,
            category="availability",
            summary="The model service answers too many prediction requests with errors for its availability SLO.",
            what=f"of {contract.ROUTE_PREDICT} requests failed (5xx)",
        )
    ]
    duration = contract.HTTP_REQUEST_DURATION.name
    count = selector(f"{duration}_count", **scope, **route)
    for objective in settings.latency:
        fast = selector(f"{duration}_bucket", **scope, **route, le=contract.format_le(objective.threshold_seconds))
        slos.append(
            Slo(
                service=service,
                name=latency_slo_name(objective.threshold_seconds),
                objective_percent=objective.objective_percent,
                error_query=(
                    f"sum by {cluster} (rate({count}[{WINDOW}])) - sum by {cluster} (rate({fast}[{WINDOW}]))"
                ),
                total_query=f"sum by {cluster} (rate({count}[{WINDOW}]))",
                labels=labels,
                alert=LATENCY_ALERT,
                category="latency",
                summary="The model service answers too many prediction requests too slowly for its latency SLO.",
                what=(
                    f"of {contract.ROUTE_PREDICT} requests took longer than "
                    f"{number(Decimal(str(objective.threshold_seconds)))}s"
                ),
            )
        )
    return tuple(slos)
