"""The model's monitors and dashboard in the real program, for every stack file: the cross-resource contracts.

The ServiceMonitor selects the model's Service by its labels and names a port it has; the monitors carry the
labels the monitoring stack exports, and the rendered chart's Prometheus selects them in their namespace; the
rules watch the model's Deployment; the dashboard ConfigMap carries the sidecar's label where it searches.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import program_run
from tests.harness import ProgramRun, Registration

SERVICE_MONITOR = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"
PROMETHEUS_RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"


def monitors_of(run: ProgramRun) -> dict[str, tuple[Registration, Registration]]:
    """Each model's ServiceMonitor and PrometheusRule, by the model's name (the monitor's name)."""
    rules = {r.inputs["metadata"]["name"].removesuffix("-rules"): r for r in run.by_type(PROMETHEUS_RULE)}
    return {r.inputs["metadata"]["name"]: (r, rules[r.inputs["metadata"]["name"]])
            for r in run.by_type(SERVICE_MONITOR)}


def test_every_model_has_its_monitors(stack_run: ProgramRun):
    assert sorted(monitors_of(stack_run)) == sorted(stack_run.outputs["models"])


def test_a_deployed_models_service_monitor_selects_its_service_and_its_rules_its_deployment(stack_run: ProgramRun):
    from tests.k8s_validation import selector_matches

    services = {r.inputs["metadata"]["name"]: r for r in stack_run.by_type("kubernetes:core/v1:Service")}
    deployments = {r.inputs["metadata"]["name"]: r for r in stack_run.by_type("kubernetes:apps/v1:Deployment")
                   if r.inputs["metadata"]["labels"].get("app.kubernetes.io/component") == "model-server"}
    checked = 0
    for name, (monitor, rule) in monitors_of(stack_run).items():
        if name not in deployments:
            continue  # an external model: its Service is not the program's
        service = services[name]
        assert monitor.inputs["metadata"]["namespace"] == service.inputs["metadata"]["namespace"]
        assert selector_matches(monitor.inputs["spec"]["selector"], service.inputs["metadata"]["labels"])
        ports = {port.get("name") for port in service.inputs["spec"]["ports"]}
        assert monitor.inputs["spec"]["endpoints"][0]["port"] in ports
        assert f'owner_name="{deployments[name].inputs["metadata"]["name"]}"' in str(rule.inputs["spec"])
        checked += 1
    assert checked == len(deployments) >= 1


def test_an_external_models_monitors_watch_the_service_its_config_names():
    import json

    from tests.harness import FLEET_STACK, load_stack_file

    config, _ = load_stack_file(FLEET_STACK)
    [(name, model)] = [(n, m) for n, m in json.loads(config["ml-observability:models"]).items() if "external" in m]
    external = model["external"]
    monitor, rule = monitors_of(program_run(FLEET_STACK))[name]
    assert monitor.inputs["metadata"]["namespace"] == external["namespace"]
    assert monitor.inputs["spec"]["selector"] == {"matchLabels": external["selector"]}
    assert monitor.inputs["spec"]["endpoints"][0]["port"] == external["port"]
    assert f'owner_name="{external["workload"]}"' in str(rule.inputs["spec"])


def test_monitors_carry_the_labels_the_monitoring_stack_exports(stack_run: ProgramRun):
    exported = stack_run.outputs["monitorLabels"]
    for pair in monitors_of(stack_run).values():
        for registration in pair:
            labels = registration.inputs["metadata"]["labels"]
            assert {k: labels.get(k) for k in exported} == exported


def test_the_rendered_prometheus_selects_the_monitors(stack_run: ProgramRun):
    from tests.chart_render import render_release
    from tests.k8s_validation import namespace_selected, selector_matches

    rendered = render_release(stack_run)
    prometheus = rendered.one("Prometheus")
    spec = prometheus["spec"]
    namespaces = {r.inputs["metadata"]["name"]: r.inputs["metadata"].get("labels", {})
                  for r in stack_run.by_type("kubernetes:core/v1:Namespace")}
    for monitor, rule in monitors_of(stack_run).values():
        for registration, selector_key, namespace_key in (
            (monitor, "serviceMonitorSelector", "serviceMonitorNamespaceSelector"),
            (rule, "ruleSelector", "ruleNamespaceSelector"),
        ):
            metadata = registration.inputs["metadata"]
            assert selector_matches(spec.get(selector_key), metadata["labels"]), f"{selector_key} misses {metadata}"
            assert namespace_selected(
                spec.get(namespace_key), metadata["namespace"], prometheus_namespace=rendered.namespace,
                namespace_labels=namespaces.get(metadata["namespace"], {}),
            ), f"{namespace_key} misses {metadata['namespace']}"


def test_monitors_pass_their_crd_schemas_in_every_stack(stack_run: ProgramRun):
    from tests.k8s_validation import custom_resource_errors

    for pair in monitors_of(stack_run).values():
        for registration in pair:
            assert custom_resource_errors(registration.inputs, strict=True) == []


def test_every_alert_carries_its_models_team_and_name(stack_run: ProgramRun):
    from components.contracts import MODEL_LABEL, TEAM_LABEL

    for name, (_, rule) in monitors_of(stack_run).items():
        teams = {r["labels"].get(TEAM_LABEL) for g in rule.inputs["spec"]["groups"] for r in g["rules"] if "alert" in r}
        models = {r["labels"][MODEL_LABEL] for g in rule.inputs["spec"]["groups"] for r in g["rules"] if "alert" in r}
        assert models == {name}
        assert len(teams) == 1, f"{name}: one team for all its alerts, got {teams}"


def test_the_program_exports_the_alert_names_and_the_dashboard(stack_run: ProgramRun):
    for outputs in stack_run.outputs["models"].values():
        assert "ModelAvailabilityErrorBudgetBurn" in outputs["alerts"]
    assert stack_run.outputs["modelDashboard"] == "ML model overview"


def test_the_dashboard_configmap_is_where_grafanas_sidecar_looks(stack_run: ProgramRun):
    from tests.chart_render import kubernetes_version, render_release
    from tests.k8s_validation import builtin_errors

    maps = [r for r in stack_run.by_type("kubernetes:core/v1:ConfigMap") if r.name.startswith("model-dashboards-")]
    titles = sorted(json.loads(next(iter(m.inputs["data"].values())))["title"] for m in maps)
    assert titles == ["ML model overview", "ML model runbooks"], "each dashboard is declared once for all models"
    exported = stack_run.outputs["dashboardLabels"]
    for config_map in maps:
        metadata = config_map.inputs["metadata"]
        assert {k: metadata["labels"].get(k) for k in exported} == exported
        document = config_map.inputs | {"apiVersion": "v1", "kind": "ConfigMap"}
        assert builtin_errors(document, kubernetes_version(stack_run)) == []
    rendered = render_release(stack_run)
    sidecars = [
        container
        for deployment in rendered.of_kind("Deployment")
        for container in deployment["spec"]["template"]["spec"].get("containers", [])
        if container["name"] == "grafana-sc-dashboard"
    ]
    assert len(sidecars) == 1, "Grafana's dashboard sidecar is not in the rendered chart"
    env = {e["name"]: e.get("value") for e in sidecars[0].get("env", [])}
    assert metadata["labels"].get(env["LABEL"]) == env.get("LABEL_VALUE", metadata["labels"].get(env["LABEL"]))
    searched = env.get("NAMESPACE")
    assert searched == "ALL" or metadata["namespace"] in (searched or rendered.namespace).split(","), (
        f"the sidecar searches {searched or rendered.namespace}, the ConfigMap is in {metadata['namespace']}"
    )


@pytest.mark.tools
def test_every_models_rules_pass_promtool(stack_run: ProgramRun, tmp_path: Path):
    from components.monitors.rule_model import dump_yaml
    from tests.rule_testing import check_rules

    for name, (_, rule) in monitors_of(stack_run).items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(dump_yaml(rule.inputs["spec"]))
        check_rules(path)
