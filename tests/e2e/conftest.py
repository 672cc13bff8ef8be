"""The end-to-end suite's shared servers and the timings it reports at the end of the run.

One set of servers serves the whole module, as one cluster would serve every scenario: starting them takes
seconds, and the scenarios run in order (healthy, drift, errors, killed service, restarted Prometheus), each
establishing what it needs rather than relying on the one before.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.e2e.stack import Trio, running_trio
from tests.harness import STACKS_DIR

STACK_FILE = STACKS_DIR / "Pulumi.local.yaml"
"""The local stack: the one a person runs with ``make up``, whose monitors' settings the scenarios prove."""

TIMINGS: dict[str, float] = {}
"""Measured durations, printed in the run's summary so CI logs carry them without ``-s``."""


@pytest.fixture(scope="module")
def trio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trio]:
    started = time.monotonic()
    with running_trio(STACK_FILE, tmp_path_factory.mktemp("e2e")) as servers:
        TIMINGS["servers started (s)"] = time.monotonic() - started
        yield servers
    TIMINGS["end-to-end scenarios, servers included (s)"] = time.monotonic() - started


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TIMINGS:
        terminalreporter.section("end-to-end timings")
        for name, seconds in TIMINGS.items():
            terminalreporter.write_line(f"{name}: {seconds:.1f}")
