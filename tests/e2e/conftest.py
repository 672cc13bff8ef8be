"""The end-to-end suite's shared servers and the timings it reports at the end of the run.

One set of servers serves a whole module, as one cluster would serve every scenario: starting them takes
seconds, and a module's scenarios run in order (in ``test_e2e``: healthy, drift, errors, killed service,
restarted Prometheus), each establishing what it needs rather than relying on the one before. Modules share
nothing (every server listens on a free port of its own), so ``make test`` runs them side by side.
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
"""Measured durations, printed in the run's summary so CI logs carry them without ``-s`` (``tests/conftest.py``
gathers them from every worker when the modules run side by side)."""


@pytest.fixture(scope="module")
def trio(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trio]:
    module = request.module.__name__.rsplit(".", 1)[-1]
    started = time.monotonic()
    with running_trio(STACK_FILE, tmp_path_factory.mktemp("e2e")) as servers:
        TIMINGS[f"{module}: servers started (s)"] = time.monotonic() - started
        yield servers
    TIMINGS[f"{module}: scenarios, servers included (s)"] = time.monotonic() - started
