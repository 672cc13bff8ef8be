"""``pulumi preview`` of the ``local`` and ``existing`` stacks by the real engine, language host and providers.

The mock tests prove what the program declares; this proves the engine accepts it: the config is read and
validated by the CLI, the program runs under the real language host, the Kubernetes provider checks every
object and the Helm release loads the chart. The planned resources must be the ones the mock harness records
for the same stack and config, so the two kinds of test describe one program.

The cloud stacks (eks, aks, gke) need the eks, aws, azure-native and gcp providers, far too large to build
here: they stay covered by the mock tests only.
"""

from __future__ import annotations

import socket
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.model.config import SAMPLE_MODEL_NAME
from tests.chart_render import chart_dir
from tests.engine.engine import EngineProject, is_program_resource, planned
from tests.harness import STACKS_DIR, run_program, user_home_with_kubeconfig

pytestmark = pytest.mark.engine

# An image to deploy as is: the stack then builds nothing (no Docker, no registry) on preview or up.
TEST_IMAGE = "registry.invalid/ml-model-service:engine-test"


def engine_overrides() -> dict[str, Any]:
    """Test config shared by the engine run and the mock run it is compared with."""
    return {
        "models": {SAMPLE_MODEL_NAME: {"image": TEST_IMAGE}},
        "monitoring": {"chart": {"path": str(chart_dir())}},
    }


def closed_loopback_port() -> int:
    """A loopback port nothing listens on: the preview's cluster is unreachable by construction."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_kubeconfig(home: Path, server: str, context: str, user: dict[str, Any]) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
        "current-context": context,
        "users": [{"name": context, "user": user}],
    }
    (home / ".kube" / "config").write_text(yaml.safe_dump(config))


def mock_plan(stack: str) -> Counter[tuple[str, str]]:
    with user_home_with_kubeconfig():
        run = run_program(STACKS_DIR / f"Pulumi.{stack}.yaml", engine_overrides())
    return Counter((r.typ, r.name) for r in run.resources if is_program_resource(r.typ, r.name))


@pytest.mark.parametrize("stack", ["local", "existing"])
def test_preview_plans_what_the_mocks_record(stack: str, tmp_path: Path) -> None:
    engine = EngineProject.create(tmp_path, stack, engine_overrides())
    context = yaml.safe_load((STACKS_DIR / f"Pulumi.{stack}.yaml").read_text())["config"]["ml-observability:cluster"]
    write_kubeconfig(
        Path(engine.env["HOME"]),
        f"https://127.0.0.1:{closed_loopback_port()}",
        str(context.get("context", "unused")),
        {"token": "engine-test"},
    )
    start = time.monotonic()
    preview = engine.preview_json()
    print(f"pulumi preview --stack {stack}: {time.monotonic() - start:.1f}s")

    engine_plan = planned(preview)
    expected = mock_plan(stack)
    assert engine_plan == expected, (
        f"only in the engine's plan: {sorted((engine_plan - expected).elements())}; "
        f"only in the mocks': {sorted((expected - engine_plan).elements())}"
    )
    assert {step["op"] for step in preview["steps"]} == {"create"}, "a new stack can only plan creates"
    assert any(typ == "kubernetes:helm.sh/v3:Release" for typ, _ in engine_plan)
