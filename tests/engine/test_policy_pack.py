"""The policy pack in policy/ enforced by the real engine: ``pulumi preview --policy-pack policy``.

The pack's unit tests call its checks directly; here the CLI loads the pack through its Python analyzer, hands
it every resource the program registers, and must refuse the preview of a stack that breaks a mandatory
policy, saying which resource and how to fix it, while the real stacks pass.

The served language host (3.68) cannot start a pack by itself for this CLI (it reads the pack's folder from a
field the CLI no longer sends); tests/engine/program/__main__.py hands that start over to pulumi-policy's own
entry point, as the pack's analyzer script does, so the pack's code runs unchanged.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.engine.engine import EngineProject
from tests.engine.test_preview import closed_loopback_port, engine_overrides, write_kubeconfig
from tests.tools import ROOT

pytestmark = pytest.mark.engine

FIXTURE = ROOT / "tests" / "fixtures" / "Pulumi.policy-violation.yaml"
POLICY_PACK = ROOT / "policy"


def previewed_with_pack(tmp_path: Path, stack: str, stack_file: Path, overrides: dict[str, Any]) -> Any:
    engine = EngineProject.create(
        tmp_path, stack, overrides, stack_file=stack_file, extra_env={"ML_OBS_ENGINE_POLICY_PACK": str(POLICY_PACK)}
    )
    write_kubeconfig(
        Path(engine.env["HOME"]),
        f"https://127.0.0.1:{closed_loopback_port()}",
        "kind-mlobs-existing",
        {"token": "engine-test"},
    )
    return engine.run("preview", "--stack", stack, "--policy-pack", str(POLICY_PACK), check=False)


def test_a_password_in_the_chart_values_blocks_the_preview(tmp_path: Path) -> None:
    fixture = yaml.safe_load(FIXTURE.read_text())["config"]
    monitoring = fixture["ml-observability:monitoring"]
    monitoring["extraValues"]["grafana"]["adminPassword"] = secrets.token_urlsafe(16)
    overrides = engine_overrides()
    overrides["monitoring"] = monitoring | overrides["monitoring"]
    result = previewed_with_pack(tmp_path, "policy-violation", FIXTURE, overrides)
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"the preview passed despite the violation:\n{output[-5000:]}"
    assert "[mandatory]  grafana-admin-password-from-secret" in output, output[-5000:]
    # The message names the resource (type, Pulumi name, Helm release) and the fix.
    assert "kubernetes:helm.sh/v3:Release 'monitoring-release' (release monitoring/kube-prometheus-stack)" in output
    assert "values set grafana.adminPassword" in output
    assert "Remove it and set grafana.admin.existingSecret" in output


@pytest.mark.parametrize("stack", ["local", "existing"])
def test_the_real_stacks_pass_the_pack(stack: str, tmp_path: Path) -> None:
    result = previewed_with_pack(tmp_path, stack, ROOT / "stacks" / f"Pulumi.{stack}.yaml", engine_overrides())
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-8000:]
    assert "ml-observability@v0.1.0 (local: " in output, f"the pack did not run:\n{output[-5000:]}"
    assert "[mandatory]" not in output
    # On `local` the Grafana Secret's name is unknown until the cluster exists, so the engine reports (as an
    # advisory notice) that this one policy cannot run during preview; it runs on `pulumi up`.
    notices = [line for line in output.splitlines() if "[advisory]" in line]
    assert all("grafana-admin-password-from-secret" in line for line in notices), notices
    assert stack == "local" or not notices, notices
