"""Shared fixtures: one run of the program under mocks per stack file, reused by every test of that stack; and the
end-to-end timings, printed once at the end of the run however many workers measured them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import TIMINGS
from tests.harness import ProgramRun, run_program, stack_files_under_test, stack_name

_TIMINGS_KEY = "ml_obs_e2e_timings"

_RUNS: dict[Path, ProgramRun] = {}


def program_run(stack_file: Path) -> ProgramRun:
    """The program's graph for ``stack_file``, computed once per session (the program is deterministic)."""
    if stack_file not in _RUNS:
        _RUNS[stack_file] = run_program(stack_file)
    return _RUNS[stack_file]


@pytest.fixture(params=stack_files_under_test(), ids=stack_name)
def stack_run(request: pytest.FixtureRequest) -> ProgramRun:
    """The recorded graph of the program for each real stack file in ``stacks/``, and for the fleet's."""
    return program_run(request.param)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """In a worker of ``pytest -n``: hand what it measured to the controller, which prints the summary."""
    worker_output = getattr(session.config, "workeroutput", None)
    if worker_output is not None:
        worker_output[_TIMINGS_KEY] = json.dumps(TIMINGS)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """In the controller of ``pytest -n`` (pytest-xdist's hook): gather a finished worker's timings."""
    TIMINGS.update(json.loads(node.workeroutput.get(_TIMINGS_KEY, "{}")))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TIMINGS:
        terminalreporter.section("end-to-end timings")
        for name, seconds in sorted(TIMINGS.items()):
            terminalreporter.write_line(f"{name}: {seconds:.1f}")
