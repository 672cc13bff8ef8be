"""``make outputs`` and ``make env``: what a person runs in a new shell to open a deployed stack, from the stack's
own outputs (the program's, under mocks, per stack file), with the same backend and passphrase as ``make up``."""

from __future__ import annotations

import importlib.util
import io
import json
import shlex
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from components.monitoring.values import ChartNames
from tests.harness import ProgramRun, plain

ROOT = Path(__file__).resolve().parents[1]


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("outputs_script", ROOT / "scripts" / "outputs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["outputs_script"] = module
    spec.loader.exec_module(module)
    return module


script = load_script()


def printed(run: ProgramRun, kubeconfig: str = ".state/test.kubeconfig") -> list[str]:
    out = io.StringIO()
    code = script.main(["--kubeconfig", kubeconfig], stdin=io.StringIO(json.dumps(plain(run.outputs))),
                       out=out)
    assert code == 0
    return out.getvalue().splitlines()


def test_grafana_is_given_with_its_user_and_password(stack_run: ProgramRun):
    outputs = plain(stack_run.outputs)
    lines = printed(stack_run)
    grafana = lines[0]
    if outputs.get("grafanaUrl"):
        assert grafana.split() == ["Grafana", outputs["grafanaUrl"]]
    else:
        assert outputs["grafanaPortForward"] in grafana and "KUBECONFIG=.state/test.kubeconfig" in grafana
    assert lines[1].split() == ["user", outputs["grafanaAdminUser"]]
    assert lines[2].split() == ["password", outputs["grafanaAdminPassword"]]
    assert len(outputs["grafanaAdminPassword"]) >= 20


def test_the_port_forwards_name_the_services_the_chart_creates(stack_run: ProgramRun):
    names = ChartNames(str(stack_run.outputs["monitoringRelease"]))
    namespace = stack_run.outputs["monitoringNamespace"]
    lines = printed(stack_run)
    for label, service, port in (("Prometheus", names.prometheus_service, 9090),
                                 ("Alertmanager", names.alertmanager_service, 9093)):
        [line] = [line for line in lines if line.startswith(label)]
        command = shlex.split(line.split("   then ")[0])[1:]
        assert command == ["KUBECONFIG=.state/test.kubeconfig", "kubectl", "--namespace", namespace,
                           "port-forward", f"service/{service}", f"{port}:{port}"], line


def test_every_served_model_gets_its_own_local_port(stack_run: ProgramRun):
    models = plain(stack_run.outputs)["models"]
    lines = [line for line in printed(stack_run) if line.startswith("model ")]
    served = {name for name, facts in models.items() if facts.get("url")}
    assert {line.split(":")[0].removeprefix("model ") for line in lines} == served
    ports = [line.rsplit("http://localhost:", 1)[1].split()[0] for line in lines]
    assert len(set(ports)) == len(ports)
    for line in lines:
        name = line.split(":")[0].removeprefix("model ")
        namespace, service, port = script.service_of(models[name]["url"])
        assert f"--namespace {namespace} port-forward service/{service} " in line and line.count(f":{port}") >= 1


def test_a_stack_without_outputs_says_to_run_make_up_first():
    assert script.main(["--kubeconfig", "k"], stdin=io.StringIO(""), out=io.StringIO()) == 1


def test_make_env_exports_the_backend_and_passphrase_file_make_up_uses():
    printed_env = subprocess.run(["make", "-s", "env"], cwd=ROOT, capture_output=True, text=True, check=True,
                                 env={"PATH": "/usr/bin:/bin"}).stdout.splitlines()
    assert printed_env == [f"export PULUMI_BACKEND_URL=file://{ROOT}/.state",
                           f"export PULUMI_CONFIG_PASSPHRASE_FILE={ROOT}/.state/passphrase"]


def test_make_outputs_never_makes_a_new_passphrase():
    planned = subprocess.run(["make", "--no-print-directory", "-n", "-B", "outputs"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
    assert ".state/passphrase" not in planned and "secrets.token_urlsafe" not in planned
    assert "scripts/outputs.py --kubeconfig .state/local.kubeconfig" in planned
