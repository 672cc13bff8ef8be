"""Shared fixtures: one run of the program under mocks per stack file, reused by every test of that stack."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness import ProgramRun, run_program, stack_files_under_test, stack_name

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
