"""A slow burn opens a ticket and never pages: 2% of predictions fail, against a 99.5% availability SLO.

The error ratio sits between the ticket's burn-rate thresholds (3x and 1x the 0.5% budget: 1.5% and 0.5%) and
the page's (14.4x and 6x: 7.2% and 3%). Injected faults are spread evenly over the requests
(``model_service.faults``), so every window of the SLI holds 2% to within one request and the outcome is the
same on every run. The module has servers of its own: an SLI window of days (a few hours here) remembers every
error of another scenario.
"""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from components.monitors.model_slos import AVAILABILITY_ALERT
from components.monitors.slo_rules import (
    SLOTH_SLO,
    WORKBOOK_WINDOWS,
    sli_error_name,
    threshold,
)
from tests.e2e.conftest import TIMINGS
from tests.e2e.scenario import alerts_of, firing, scope, seconds
from tests.e2e.stack import Trio
from tests.processes import poll
from tests.traffic import HEALTHY

pytestmark = pytest.mark.e2e

ERROR_RATIO = 0.02
AVAILABILITY_SLO = "requests-availability"


def sli(trio: Trio, window: str) -> str:
    return f'{sli_error_name(window)}{{{scope(trio)}, {SLOTH_SLO}="{AVAILABILITY_SLO}"}}'


def test_a_slow_burn_opens_a_ticket_and_never_pages(trio: Trio) -> None:
    monitors = trio.declared.monitors
    objective = monitors.availability_objective_percent
    limits = {w: Decimal(threshold(w, objective, monitors.slo_period)) for w in WORKBOOK_WINDOWS}
    page = [w for w in WORKBOOK_WINDOWS if w.severity == "page"]
    ticket = [w for w in WORKBOOK_WINDOWS if w.severity == "ticket"]
    # The premise: the ratio is above a ticket's thresholds and under every page's.
    assert any(limits[w] < Decimal(str(ERROR_RATIO)) for w in ticket), limits
    assert all(limits[w] > Decimal(str(ERROR_RATIO)) for w in page), limits

    # History first: healthy traffic fills the page's short windows, so that the few requests of a window that
    # has just opened cannot make a ratio of their own.
    trio.deploy(faults=None)
    trio.traffic.set_profile(HEALTHY)
    longest_page_short = max((w.short for w in page), key=lambda w: seconds(trio, w))
    poll("the SLI recorded", lambda: trio.prom.query(sli(trio, longest_page_short)), timeout=60,
         diagnose=trio.diagnose)
    time.sleep(seconds(trio, longest_page_short))

    onset = time.time()
    declared = trio.deploy(faults={"errorRatio": ERROR_RATIO})
    assert float(declared.container_env()["MODEL_FAULT_ERROR_RATIO"]) == ERROR_RATIO
    deadline = max(seconds(trio, w.short) for w in ticket) + 60
    posted = trio.receiver.wait_for("webhook", AVAILABILITY_ALERT, "firing", since=onset, timeout=deadline)
    TIMINGS["slow burn: errors start to ticket (s)"] = posted.received_at - onset

    labels = alerts_of(posted, AVAILABILITY_ALERT, "firing")
    assert labels, posted
    assert {(a["sloth_severity"], a["severity"], a["sloth_slo"]) for a in labels} == {
        ("ticket", "warning", AVAILABILITY_SLO)
    }, labels
    assert all(a["namespace"] == trio.declared.namespace and a["job"] == trio.declared.job for a in labels)
    trio.receiver.wait_for("slack", AVAILABILITY_ALERT, "firing", since=onset, timeout=30)

    # The ratio every window recorded is the injected one (a 5m window holds about 180 requests here: to within
    # one request and the scrape's edges), and since the errors began no window of a page came near its threshold.
    poll("the shortest SLI window at the injected ratio",
         lambda: abs((trio.prom.value(sli(trio, "5m")) or 0.0) - ERROR_RATIO) < 0.01, timeout=30,
         diagnose=lambda: f"5m SLI: {trio.prom.value(sli(trio, '5m'))}")
    since = f"{max(1, round(time.time() - onset))}s"
    for window in page:
        for name in (window.short, window.long):
            peak = trio.prom.value(f"max_over_time({sli(trio, name)}[{since}])")
            assert peak is not None and peak < float(limits[window]), (
                f"SLI {name} reached {peak}, over the page's {limits[window]}"
            )

    # Only the ticket fires; nothing was paged.
    others = [a for a in firing(trio)
              if (a["alertname"], a.get("sloth_severity")) != (AVAILABILITY_ALERT, "ticket")]
    assert others == [], others
    assert trio.receiver.notifications("pagerduty", since=onset) == [], trio.receiver.describe(onset)
    assert trio.receiver.errors == []
    trio.deploy(faults=None)
