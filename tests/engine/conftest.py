"""The engine tests run only when asked for with ``-m engine`` (``make engine-test``).

They need binaries that take a long first build (scripts/install-engine.sh) and minutes per run, so the plain
``pytest`` of ``make test`` leaves them out instead of skipping them, which strict mode would turn into failures.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ENGINE_DIR = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "engine" in (config.option.markexpr or ""):
        return
    engine = [item for item in items if ENGINE_DIR in Path(str(item.fspath)).parents]
    if engine:
        config.hook.pytest_deselected(items=engine)
        items[:] = [item for item in items if item not in engine]
