"""``ModelMonitors`` under mocks with explicit args: a team's own service, not the sample.

These runs pin the component's own contract (token, children, labels, specs, outputs, validation) without
depending on how ``__main__.py`` wires it; tests/test_monitors_in_program.py checks the wiring per stack.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml
from model_service import contract

from components.contracts import PART_OF_LABEL, DiscoveryContract, common_labels
from components.monitors.config import ModelMonitorsConfig
from components.monitors.model_monitors import ModelMonitors, ModelMonitorsArgs, rule_groups
from components.monitors.model_rules import WORKLOAD_PODS
from components.monitors.rule_model import alert_names, to_spec
from tests.harness import ProgramRun, run_function
from tests.rule_testing import check_rules

DISCOVERY = DiscoveryContract(labels={"release": "monitoring", "ml-observability/monitors": "true"})
SELECTOR = {"app.kubernetes.io/name": "churn-model", "app.kubernetes.io/instance": "churn-model"}
SERVICE_MONITOR = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"
PROMETHEUS_RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"


def team_args(**overrides: Any) -> ModelMonitorsArgs:
    """A team's own service: not the sample, another namespace, port and job."""
    values: dict[str, Any] = {
        "namespace": "scoring",
        "selector": SELECTOR,
        "port": "metrics",
        "model_name": "churn-model",
        "workload": "churn-model-api",
        "discovery": DISCOVERY,
    }
    values.update(overrides)
    return ModelMonitorsArgs(settings=values.pop("config", ModelMonitorsConfig()), **values)


def run_monitors(args: ModelMonitorsArgs, name: str = "churn") -> tuple[ProgramRun, dict[str, Any]]:
    outputs: dict[str, Any] = {}

    def program() -> None:
        monitors = ModelMonitors(name, args)
        for key in ("service_monitor_name", "prometheus_rule_name", "rule_group_names", "alert_names"):
            getattr(monitors, key).apply(lambda value, key=key: outputs.__setitem__(key, value))
        outputs["job"] = monitors.job

    return run_function(program), outputs


def test_component_children_are_named_typed_and_parented():
    run, _ = run_monitors(team_args())
    component = run.one(ModelMonitors.TYPE)
    assert component.name == "churn"
    children = run.children_of(component.urn)
    assert sorted((c.typ, c.name) for c in children) == [
        (PROMETHEUS_RULE, "churn-rules"), (SERVICE_MONITOR, "churn-servicemonitor")
    ]
    for child in children:
        assert child.inputs["apiVersion"] == "monitoring.coreos.com/v1"
        assert child.inputs["metadata"]["namespace"] == "scoring"


def test_monitors_carry_the_discovery_contracts_labels():
    run, _ = run_monitors(team_args())
    for typ in (SERVICE_MONITOR, PROMETHEUS_RULE):
        labels = run.one(typ).inputs["metadata"]["labels"]
        assert {k: labels[k] for k in DISCOVERY.labels} == dict(DISCOVERY.labels)
        assert set(labels) - set(DISCOVERY.labels) == set(common_labels("churn-model", "churn-model", "monitoring"))
        assert labels[PART_OF_LABEL] == "ml-observability"


def test_service_monitor_selects_the_service_by_its_labels_and_port_name():
    run, outputs = run_monitors(team_args(config=ModelMonitorsConfig.model_validate({"timeScale": 0.01})))
    spec = run.one(SERVICE_MONITOR).inputs["spec"]
    assert spec["selector"] == {"matchLabels": SELECTOR}
    assert spec["namespaceSelector"] == {"matchNames": ["scoring"]}
    (endpoint,) = spec["endpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == contract.ROUTE_METRICS
    assert (endpoint["interval"], endpoint["scrapeTimeout"]) == ("300ms", "100ms")  # 30s and 10s at 0.01
    assert endpoint["relabelings"] == [{"action": "replace", "targetLabel": "job", "replacement": "churn-model"}]
    assert outputs["job"] == "churn-model" and outputs["service_monitor_name"] == "churn-model"


def test_prometheus_rule_holds_the_rendered_groups_and_passes_promtool(tmp_path: Path):
    args = team_args()
    run, outputs = run_monitors(args)
    spec = run.one(PROMETHEUS_RULE).inputs["spec"]
    groups = rule_groups(args, namespace="scoring", workload="churn-model-api")
    assert spec == to_spec(groups)
    assert outputs["rule_group_names"] == [g["name"] for g in spec["groups"]]
    assert outputs["alert_names"] == list(alert_names(groups))
    assert outputs["prometheus_rule_name"] == "churn-model-rules"
    assert set(outputs["alert_names"]) == {
        "ModelAvailabilityErrorBudgetBurn", "ModelLatencyErrorBudgetBurn", "ModelFeatureDrift",
        "ModelPredictionDrift", "ModelAccuracyBelowFloor", "ModelTargetDown", "ModelTargetAbsent",
        "ModelPodRestarting", "ModelMemoryNearLimit", "ModelClassRecallBelowFloor", "ModelCanaryWorseThanStable",
        "ModelInputQualityIssues",
    }  # the confidence and age alerts are off until their floor and maximum age are set
    # promtool reads rule files, not PrometheusRule objects: the CR's spec is one.
    rule_file = tmp_path / "rules.yaml"
    rule_file.write_text(yaml.safe_dump(spec))
    assert "SUCCESS" in check_rules(rule_file)
    text = str(spec)
    assert 'namespace="scoring", job="churn-model"' in text and 'owner_name="churn-model-api"' in text


def test_rules_of_a_statefulset_find_its_pods_directly():
    args = team_args(workload_kind="StatefulSet")
    groups = rule_groups(args, namespace="scoring", workload="churn-model-api")
    pods = next(r for g in groups for r in g.rules if getattr(r, "record", "") == WORKLOAD_PODS)
    assert 'owner_kind="StatefulSet", owner_name="churn-model-api"' in pods.expr
    assert "kube_replicaset_owner" not in pods.expr


@pytest.mark.parametrize("scale", [1.0, 0.01])
def test_monitors_and_rules_pass_their_crd_schemas(scale: float):
    from tests.k8s_validation import custom_resource_errors

    run, _ = run_monitors(team_args(config=ModelMonitorsConfig.model_validate({"timeScale": scale})))
    for typ in (SERVICE_MONITOR, PROMETHEUS_RULE):
        obj = run.one(typ).inputs
        assert custom_resource_errors(obj, strict=True) == []
    broken = dict(run.one(SERVICE_MONITOR).inputs)
    broken["spec"] = {**broken["spec"], "endpoints": [{"port": "metrics", "intervall": "30s"}]}
    assert custom_resource_errors(broken, strict=True), "the schema check must see a misspelt field"


def test_children_wait_for_what_the_component_waits_for():
    captured: dict[str, Any] = {}

    def program() -> None:
        crds = pulumi.CustomResource("test:index:Crds", "crds")
        captured["urn"] = crds.urn
        ModelMonitors("churn", team_args(), opts=pulumi.ResourceOptions(depends_on=[crds]))

    run = run_function(program)
    crds = run.one("test:index:Crds")
    for typ in (SERVICE_MONITOR, PROMETHEUS_RULE):
        assert crds.urn in run.one(typ).dependencies


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"port": "Metrics_Port"}, "port 'Metrics_Port' must be a port name"),
        ({"namespace": "default", "discovery": DiscoveryContract(labels={"release": "x"}, namespaces=("models",))},
         "namespace 'default' is not one Prometheus watches"),
        ({"discovery": DiscoveryContract(labels={})}, "discovery.labels is empty"),
        ({"model_name": "Churn Model"}, "model_name 'Churn Model' must be a DNS label"),
    ],
)
def test_bad_args_fail_before_any_resource_naming_the_field(overrides: dict[str, Any], message: str):
    with pytest.raises(pulumi.RunError, match=message):
        ModelMonitors("churn", team_args(**overrides))
