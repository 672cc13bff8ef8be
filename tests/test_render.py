"""``make render``: a stack's monitors as files (components/render.py), for teams without Pulumi. What it writes is
what the program declares for the same stack file, and passes the same checks: promtool on every rule and the
monitoring CRDs' schemas on every manifest."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.monitors.slo_rules import PERIOD_GROUP_PREFIX
from components.render import render, stack_config
from tests.conftest import program_run
from tests.harness import ROOT, ProgramRun, stack_files_under_test, stack_name
from tests.k8s_validation import custom_resource_errors

STACKS = stack_files_under_test()


def declared(run: ProgramRun, typ: str) -> dict[str, dict[str, Any]]:
    """The program's objects of ``typ`` by ``metadata.name``."""
    return {r.inputs["metadata"]["name"]: r.inputs for r in run.by_type(typ)}


@pytest.mark.parametrize("stack_file", STACKS, ids=stack_name)
def test_it_writes_what_the_program_declares(stack_file: Path):
    files = render(stack_config(stack_file)).files
    run = program_run(stack_file)
    rules = declared(run, "kubernetes:monitoring.coreos.com/v1:PrometheusRule")
    monitors = declared(run, "kubernetes:monitoring.coreos.com/v1:ServiceMonitor")
    models = sorted(run.outputs["models"])
    assert sorted(path.split("/")[0] for path in files if not path.startswith("dashboards/")) == sorted(models * 2)
    for model in models:
        monitor = yaml.safe_load(files[f"{model}/service-monitor.yaml"])
        assert monitor == {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor", **monitors[model]}
        rule = yaml.safe_load(files[f"{model}/prometheus-rule.yaml"])
        program = rules[rule["metadata"]["name"]]
        assert rule["metadata"] == program["metadata"]
        # Where a store evaluates the SLO period, the program sends those groups to it; a file keeps them all.
        kept = [g for g in rule["spec"]["groups"] if not is_period_group_named(g["name"])]
        assert kept == [g for g in program["spec"]["groups"] if not is_period_group_named(g["name"])]
        assert len(rule["spec"]["groups"]) >= len(program["spec"]["groups"])
    shipped = [json.loads(next(iter(r.inputs["data"].values()))) for r in run.by_type("kubernetes:core/v1:ConfigMap")
               if r.name.startswith("model-dashboards-")]
    boards = {board["title"]: board for board in shipped}
    for path, content in files.items():
        if path.startswith("dashboards/"):
            board = json.loads(content)
            assert boards[board["title"]] == board


def is_period_group_named(name: str) -> bool:
    """``slo_rules.is_period_group`` on a group as YAML."""
    return name.startswith(PERIOD_GROUP_PREFIX)


@pytest.mark.tools
@pytest.mark.parametrize("stack_file", [f for f in STACKS if stack_name(f) in ("local", "fleet")], ids=stack_name)
def test_what_it_writes_passes_promtool_and_the_crd_schemas(stack_file: Path, tmp_path: Path):
    from tests.rule_testing import check_rules

    written = render(stack_config(stack_file)).write(tmp_path)
    manifests = [p for p in written if p.suffix == ".yaml"]
    assert manifests
    for path in manifests:
        document = yaml.safe_load(path.read_text())
        assert custom_resource_errors(document) == [], path
        if document["kind"] == "PrometheusRule":
            spec = tmp_path / f"{path.parent.name}-groups.yaml"
            spec.write_text(yaml.safe_dump(document["spec"]))
            check_rules(spec)


def test_make_render_writes_the_stacks_files(tmp_path: Path):
    out = tmp_path / "rendered"
    printed = subprocess.run([sys.executable, "-m", "components.render", "--stack", "local", "--out", str(out)],
                             cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert sorted(printed) == sorted(str(p) for p in out.rglob("*") if p.is_file())
    assert {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} == {
        "synthetic-classifier/prometheus-rule.yaml", "synthetic-classifier/service-monitor.yaml",
        "dashboards/ml-model-overview.json", "dashboards/ml-model-runbooks.json"}
    makefile = (ROOT / "Makefile").read_text()
    assert "python -m components.render --stack $(STACK) --out $(OUT)" in makefile


def test_secrets_are_never_decrypted_for_it():
    config = stack_config(ROOT / "tests" / "fixtures" / "Pulumi.fleet.yaml")
    assert config.alerting.pagerduty.routing_key is not None
    assert "v1:" not in config.alerting.pagerduty.routing_key.get_secret_value()

