"""The node tests run only when asked for with ``-m node`` (``make node-test``, and ``make test`` in its own step).

They need root, the node's system packages and images built from source (scripts/install-node.sh), and several
minutes, so the plain ``pytest`` of ``make test`` leaves them out instead of skipping them, which strict mode
would turn into failures. One node and one deployment serve the whole module, in order, as one cluster serves a
user; each test asserts one thing a user would meet, and the last destroys the stack.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.node.cluster import LocalNode, local_node
from tests.node.deployment import Deployment, deployed

NODE_DIR = Path(__file__).resolve().parent
TIMINGS: dict[str, float] = {}
"""Measured durations, printed in the run's summary so CI logs carry them without ``-s``."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "node" in (config.option.markexpr or ""):
        return
    node_items = [item for item in items if NODE_DIR in Path(str(item.fspath)).parents]
    if node_items:
        config.hook.pytest_deselected(items=node_items)
        items[:] = [item for item in items if item not in node_items]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNode]:
    with local_node(tmp_path_factory.mktemp("node")) as running:
        TIMINGS.update(running.timings)
        yield running


@pytest.fixture(scope="module")
def deployment(node: LocalNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    start = time.monotonic()
    with deployed(node, tmp_path_factory.mktemp("engine")) as running:
        TIMINGS.update(running.timings)
        yield running
    TIMINGS["node scenarios after pulumi up (s)"] = time.monotonic() - start


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TIMINGS:
        terminalreporter.section("local node timings")
        for name, seconds in TIMINGS.items():
            terminalreporter.write_line(f"{name}: {seconds:.1f}")
