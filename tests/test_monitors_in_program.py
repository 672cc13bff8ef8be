"""The model's monitors and dashboard in the real program, for every stack file: the cross-resource contracts.

The ServiceMonitor selects the model's Service by its labels and names a port it has; the monitors carry the
labels the monitoring stack exports, and the rendered chart's Prometheus selects them in their namespace; the
rules watch the model's Deployment; the dashboard ConfigMap carries the sidecar's label where it searches.
"""

from __future__ import annotations

from tests.harness import ProgramRun, Registration

SERVICE_MONITOR = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"
PROMETHEUS_RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"


def _one_named(run: ProgramRun, typ: str, name_suffix: str) -> Registration:
    found = [r for r in run.by_type(typ) if r.name.endswith(name_suffix)]
    assert len(found) == 1, f"expected one {typ} named *{name_suffix}, found {[r.name for r in found]}"
    return found[0]


def test_service_monitor_selects_the_model_service_and_names_its_port(stack_run: ProgramRun):
    from tests.k8s_validation import selector_matches

    monitor = stack_run.one(SERVICE_MONITOR)
    service = _one_named(stack_run, "kubernetes:core/v1:Service", "-service")
    assert monitor.inputs["metadata"]["namespace"] == service.inputs["metadata"]["namespace"]
    assert selector_matches(monitor.inputs["spec"]["selector"], service.inputs["metadata"]["labels"])
    ports = {port.get("name") for port in service.inputs["spec"]["ports"]}
    assert monitor.inputs["spec"]["endpoints"][0]["port"] in ports
    deployment = stack_run.one("kubernetes:apps/v1:Deployment")
    rules = str(stack_run.one(PROMETHEUS_RULE).inputs["spec"])
    assert f'owner_name="{deployment.inputs["metadata"]["name"]}"' in rules


def test_monitors_carry_the_labels_the_monitoring_stack_exports(stack_run: ProgramRun):
    exported = stack_run.outputs["monitorLabels"]
    for typ in (SERVICE_MONITOR, PROMETHEUS_RULE):
        labels = stack_run.one(typ).inputs["metadata"]["labels"]
        assert {k: labels.get(k) for k in exported} == exported


def test_the_rendered_prometheus_selects_the_monitors(stack_run: ProgramRun):
    from tests.chart_render import render_release
    from tests.k8s_validation import namespace_selected, selector_matches

    rendered = render_release(stack_run)
    prometheus = rendered.one("Prometheus")
    spec = prometheus["spec"]
    namespaces = {r.inputs["metadata"]["name"]: r.inputs["metadata"].get("labels", {})
                  for r in stack_run.by_type("kubernetes:core/v1:Namespace")}
    for typ, selector_key, namespace_key in (
        (SERVICE_MONITOR, "serviceMonitorSelector", "serviceMonitorNamespaceSelector"),
        (PROMETHEUS_RULE, "ruleSelector", "ruleNamespaceSelector"),
    ):
        metadata = stack_run.one(typ).inputs["metadata"]
        assert selector_matches(spec.get(selector_key), metadata["labels"]), f"{selector_key} misses {typ}"
        assert namespace_selected(
            spec.get(namespace_key), metadata["namespace"], prometheus_namespace=rendered.namespace,
            namespace_labels=namespaces.get(metadata["namespace"], {}),
        ), f"{namespace_key} misses {metadata['namespace']}"


def test_monitors_pass_their_crd_schemas_in_every_stack(stack_run: ProgramRun):
    from tests.k8s_validation import custom_resource_errors

    for typ in (SERVICE_MONITOR, PROMETHEUS_RULE):
        assert custom_resource_errors(stack_run.one(typ).inputs, strict=True) == []


def test_the_program_exports_the_alert_names_and_the_dashboard(stack_run: ProgramRun):
    for outputs in stack_run.outputs["models"].values():
        assert "ModelAvailabilityErrorBudgetBurn" in outputs["alerts"]
    assert stack_run.outputs["modelDashboard"] == "ML model overview"


def test_the_dashboard_configmap_is_where_grafanas_sidecar_looks(stack_run: ProgramRun):
    from tests.chart_render import kubernetes_version, render_release
    from tests.k8s_validation import builtin_errors

    maps = [r for r in stack_run.by_type("kubernetes:core/v1:ConfigMap") if r.name.startswith("model-dashboards-")]
    assert len(maps) == 1, "the model dashboard is declared once for all models"
    metadata = maps[0].inputs["metadata"]
    exported = stack_run.outputs["dashboardLabels"]
    assert {k: metadata["labels"].get(k) for k in exported} == exported
    config_map = maps[0].inputs | {"apiVersion": "v1", "kind": "ConfigMap"}
    assert builtin_errors(config_map, kubernetes_version(stack_run)) == []
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
