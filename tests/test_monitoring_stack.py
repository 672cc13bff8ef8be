"""The MonitoringStack component under mocks: its resources, the Release's arguments and per-environment values,
its outputs and contracts, and the ``monitoring``/``alerting`` configuration sections it is built from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pytest
import yaml

from components.clusters.config import KindClusterConfig
from components.clusters.kind import kind_config
from components.config.loader import ConfigError, validate_settings
from components.config.source import RawSetting
from components.contracts import GRAFANA_NODE_PORT, PROJECT, RULE_EVALUATOR_LABEL
from components.monitoring.config import AlertingConfig, MonitoringConfig
from components.monitoring.stack import MonitoringStack, MonitoringStackArgs
from components.monitoring.values import MONITOR_KINDS
from tests import harness
from tests.chart_render import (
    EVERY_OPTION,
    TEST_CREDENTIALS,
    chart_dir,
    every_option_run,
    monitoring_release,
    program_run_with,
    release_values,
)
from tests.harness import SECRET, ProgramRun, Registration

STACK_TYPE = "mlobs:monitoring:MonitoringStack"
EXPECTED_STORAGE_CLASS = {"kind": "standard", "eks": "gp3", "aks": "managed-csi", "gke": "standard-rwo"}
"""The class each platform's volumes use (the brief's table); ``existing`` without cluster.storageClass: none."""
CONTROL_PLANE = ("kubeControllerManager", "kubeScheduler", "kubeEtcd", "kubeProxy")


def kind_of(run: ProgramRun) -> str:
    return str(run.outputs["clusterKind"])


def component(run: ProgramRun) -> Registration:
    return run.one(STACK_TYPE)


def child(run: ProgramRun, typ: str, suffix: str) -> Registration:
    found = [r for r in run.children_of(component(run).urn) if r.typ == typ and r.name.endswith(suffix)]
    assert len(found) == 1, f"expected one {typ} named *{suffix}, found {[r.name for r in found]}"
    return found[0]


def values_of(run: ProgramRun) -> dict[str, Any]:
    return release_values(monitoring_release(run))


# --- the component's resources ------------------------------------------------------------------------------


def remote_write_section(run: ProgramRun) -> list[dict[str, Any]]:
    """The stack file's ``monitoring.remoteWrite`` targets, as written."""
    stack_file = next(f for f in harness.stack_files_under_test() if harness.stack_name(f) == run.stack)
    document = yaml.safe_load(stack_file.read_text())
    monitoring = document["config"].get("ml-observability:monitoring") or {}
    return list(monitoring.get("remoteWrite") or [])


def test_children_are_named_after_the_component_and_use_the_clusters_provider(stack_run: ProgramRun):
    stack = component(stack_run)
    children = stack_run.children_of(stack.urn)
    targets = remote_write_section(stack_run)
    with_credentials = any(
        t.get("basicAuth") or t.get("bearerToken") or (t.get("tls") or {}).get("caCertificate") for t in targets
    )
    exports_with_lease = any(t["kind"] == "gmp" for t in targets) and kind_of(stack_run) != "kind"
    assert sorted(r.typ for r in children) == sorted(
        [
            "kubernetes:core/v1:Namespace",
            "random:index/randomPassword:RandomPassword",
            "kubernetes:core/v1:Secret",
            "kubernetes:core/v1:Secret",
            "kubernetes:helm.sh/v3:Release",
            *(["kubernetes:core/v1:Secret"] if with_credentials else []),
            *(
                ["kubernetes:rbac.authorization.k8s.io/v1:Role", "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding"]
                if exports_with_lease
                else []
            ),
        ]
    )
    assert all(r.name.startswith(f"{stack.name}-") for r in children)
    provider = stack_run.one("pulumi:providers:kubernetes")
    for resource in children:
        if resource.typ.startswith("kubernetes:"):
            assert resource.provider.startswith(provider.urn + "::"), resource.name


def test_release_depends_on_its_namespace_and_the_secrets_it_mounts(stack_run: ProgramRun):
    release = monitoring_release(stack_run)
    namespace = child(stack_run, "kubernetes:core/v1:Namespace", "-ns")
    grafana = child(stack_run, "kubernetes:core/v1:Secret", "-grafana-admin")
    receivers = child(stack_run, "kubernetes:core/v1:Secret", "-alertmanager-receivers")
    assert {namespace.urn, grafana.urn, receivers.urn} <= set(release.dependencies)
    assert release.inputs["namespace"] == namespace.inputs["metadata"]["name"]
    for secret in (grafana, receivers):
        assert secret.inputs["metadata"]["namespace"] == release.inputs["namespace"]


def test_release_arguments(stack_run: ProgramRun):
    inputs = monitoring_release(stack_run).inputs
    pinned = yaml.safe_load((chart_dir() / "Chart.yaml").read_text())["version"]
    assert inputs["chart"] == "kube-prometheus-stack"
    assert inputs["repositoryOpts"] == {"repo": "https://prometheus-community.github.io/helm-charts"}
    assert inputs["version"] == pinned == MonitoringConfig().chart.version
    assert inputs["name"] == stack_run.outputs["monitoringRelease"] == "kube-prometheus-stack"
    assert inputs["namespace"] == stack_run.outputs["monitoringNamespace"] == "monitoring"
    assert inputs["timeout"] >= 600, "the chart's workloads and hook Jobs take minutes to become ready"
    assert inputs["cleanupOnFail"] is True
    assert inputs["maxHistory"] >= 1
    assert inputs.get("skipCrds", False) is False
    assert inputs["values"]["crds"] == {"enabled": True}


# --- values that differ by environment ----------------------------------------------------------------------


def test_volumes_use_the_environments_storage_class(stack_run: ProgramRun):
    values = values_of(stack_run)
    expected = EXPECTED_STORAGE_CLASS.get(kind_of(stack_run))
    claims = [
        values["prometheus"]["prometheusSpec"]["storageSpec"]["volumeClaimTemplate"]["spec"],
        values["alertmanager"]["alertmanagerSpec"]["storage"]["volumeClaimTemplate"]["spec"],
    ]
    for claim in claims:
        assert claim.get("storageClassName") == expected
        assert claim["accessModes"] == ["ReadWriteOnce"]
    assert stack_run.outputs.get("defaultStorageClass") == expected


def test_control_plane_targets_only_where_the_cluster_exposes_them(stack_run: ProgramRun):
    values = values_of(stack_run)
    exposed = kind_of(stack_run) == "kind"  # the stack files leave controlPlaneMetrics false on existing
    for target in CONTROL_PLANE:
        assert values[target]["enabled"] is exposed, target
    if exposed:  # ports pinned, not guessed by the chart from a Kubernetes version it may not see
        assert values["kubeControllerManager"]["service"]["port"] == 10257
        assert values["kubeScheduler"]["service"]["port"] == 10259
        assert values["kubeEtcd"]["service"]["port"] == 2381


def test_existing_cluster_turns_control_plane_targets_on_when_it_says_so():
    run = harness.run_program(
        harness.STACKS_DIR / "Pulumi.existing.yaml",
        {"cluster": {"kind": "existing", "context": "ctx", "kubernetesVersion": "1.34", "controlPlaneMetrics": True,
                     "registry": {"address": "localhost:5001/mlobs"}}},
    )
    values = values_of(run)
    assert all(values[target]["enabled"] for target in CONTROL_PLANE)


def test_platform_specific_values(stack_run: ProgramRun):
    values = values_of(stack_run)
    kind = kind_of(stack_run)
    webhooks = values["prometheusOperator"]["admissionWebhooks"]
    if kind == "aks":
        for configuration in ("mutatingWebhookConfiguration", "validatingWebhookConfiguration"):
            assert webhooks[configuration]["annotations"] == {"admissions.enforcer/disabled": "true"}
    else:
        assert "mutatingWebhookConfiguration" not in webhooks
    if kind == "gke":
        assert values["coreDns"] == {"enabled": False} and values["kubeDns"] == {"enabled": True}
    else:
        assert "coreDns" not in values and "kubeDns" not in values


def test_grafana_service_is_a_nodeport_mapped_to_localhost_on_kind_only(stack_run: ProgramRun):
    service = values_of(stack_run)["grafana"]["service"]
    if kind_of(stack_run) == "kind":
        assert service == {"type": "NodePort", "nodePort": GRAFANA_NODE_PORT}
        mapping = yaml.safe_load(kind_config(KindClusterConfig(kind="kind")))["nodes"][0]["extraPortMappings"][0]
        assert mapping["containerPort"] == service["nodePort"]
        assert stack_run.outputs["grafanaUrl"] == f"http://localhost:{mapping['hostPort']}"
        assert "grafanaPortForward" not in stack_run.outputs
    else:
        assert service == {"type": "ClusterIP"}
        assert "grafanaUrl" not in stack_run.outputs
        command = stack_run.outputs["grafanaPortForward"]
        assert command.startswith("kubectl --namespace monitoring port-forward service/")
        assert command.endswith(" 3000:80")


def test_grafana_reads_generated_credentials_from_its_secret(stack_run: ProgramRun):
    grafana = values_of(stack_run)["grafana"]
    secret = child(stack_run, "kubernetes:core/v1:Secret", "-grafana-admin")
    password = child(stack_run, "random:index/randomPassword:RandomPassword", "-grafana-password")
    admin = grafana["admin"]
    assert admin["existingSecret"] == secret.inputs["metadata"]["name"]
    data = secret.inputs["stringData"]
    assert set(data) == {SECRET}, "the admin credentials must reach the engine as a secret"
    assert set(data[SECRET]) == {admin["userKey"], admin["passwordKey"]}
    assert password.inputs["length"] >= 20
    generated = stack_run.outputs["grafanaAdminPassword"]
    assert set(generated) == {SECRET}, "the password output must be secret"
    assert data[SECRET][admin["passwordKey"]] == generated[SECRET]
    assert data[SECRET][admin["userKey"]] == stack_run.outputs["grafanaAdminUser"] == "admin"
    assert "adminPassword" not in grafana


def test_small_resource_profile_for_every_container(stack_run: ProgramRun):
    values = values_of(stack_run)
    blocks = {
        "prometheus": values["prometheus"]["prometheusSpec"]["resources"],
        "alertmanager": values["alertmanager"]["alertmanagerSpec"]["resources"],
        "operator": values["prometheusOperator"]["resources"],
        "config-reloader": values["prometheusOperator"]["prometheusConfigReloader"]["resources"],
        "admission jobs": values["prometheusOperator"]["admissionWebhooks"]["patch"]["resources"],
        "grafana": values["grafana"]["resources"],
        "grafana sidecars": values["grafana"]["sidecar"]["resources"],
        "kube-state-metrics": values["kube-state-metrics"]["resources"],
        "node-exporter": values["prometheus-node-exporter"]["resources"],
    }
    for name, block in blocks.items():
        assert set(block["requests"]) == {"cpu", "memory"}, name
        assert set(block["limits"]) == {"memory"}, f"{name}: a memory limit and no CPU limit (throttling)"


def test_every_option_reaches_the_values():
    values = values_of(every_option_run("aks"))
    spec = values["prometheus"]["prometheusSpec"]
    assert spec["storageSpec"]["volumeClaimTemplate"]["spec"]["storageClassName"] == "premium-rwo"
    assert (spec["replicas"], spec["retention"], spec["retentionSize"]) == (2, "30d", "40GiB")
    assert spec["storageSpec"]["volumeClaimTemplate"]["spec"]["resources"]["requests"]["storage"] == "50Gi"
    assert values["alertmanager"]["alertmanagerSpec"]["replicas"] == 3
    ingress = values["grafana"]["ingress"]
    assert ingress["hosts"] == ["grafana.example.com"] and ingress["ingressClassName"] == "nginx"
    assert ingress["tls"] == [{"secretName": "grafana-tls", "hosts": ["grafana.example.com"]}]
    assert values["grafana"]["grafana.ini"]["server"]["root_url"] == "https://grafana.example.com"
    assert values["prometheus-node-exporter"]["hostRootFsMount"] == {"enabled": False}
    assert every_option_run("aks").outputs["grafanaUrl"] == "https://grafana.example.com"


def test_extra_values_are_merged_last():
    extra = {
        "prometheus": {"prometheusSpec": {"externalLabels": {"cluster": "prod-eu"}, "retention": "3d"}},
        "grafana": {"sidecar": {"dashboards": {"labelValue": "yes"}}},
    }
    run = program_run_with("gke", {"monitoring": {"extraValues": extra}})
    values = values_of(run)
    spec = values["prometheus"]["prometheusSpec"]
    # Maps merge key by key: the stack's environment label stays beside the overridden cluster label.
    assert spec["externalLabels"] == {"cluster": "prod-eu", "environment": "gke"} and spec["retention"] == "3d"
    assert spec["retentionSize"] == MonitoringConfig().prometheus.retention_size  # siblings kept
    assert values["grafana"]["sidecar"]["dashboards"]["labelValue"] == "yes"


# --- the contracts --------------------------------------------------------------------------------------------


def run_component(args: MonitoringStackArgs) -> tuple[MonitoringStack, ProgramRun]:
    """The component alone under the harness's mocks, to read the Python attributes it exposes."""
    run = ProgramRun(stack="component", resources=[])
    mocks = harness._Mocks(run)
    pulumi.runtime.set_all_config({}, [])
    pulumi.runtime.set_mocks(
        mocks, project=PROJECT, stack="component", preview=False, monitor=harness._RecordingMonitor(mocks)
    )
    built: dict[str, MonitoringStack] = {}

    def program() -> None:
        provider = k8s.Provider("k8s", kubeconfig=harness.FAKE_KUBECONFIG)
        built["stack"] = MonitoringStack("monitoring", args, opts=pulumi.ResourceOptions(providers=[provider]))

    pulumi.runtime.test(program)()
    return built["stack"], run


@pytest.mark.parametrize("release_name", ["kube-prometheus-stack", "kps"])
def test_discovery_contract_is_what_prometheus_selects(release_name: str):
    stack, run = run_component(
        MonitoringStackArgs(
            monitoring=MonitoringConfig.model_validate({"releaseName": release_name}),
            alerting=AlertingConfig(),
            platform="eks",
            control_plane_metrics=False,
            storage_class="gp3",
        )
    )
    spec = values_of(run)["prometheus"]["prometheusSpec"]
    assert dict(stack.discovery.labels) == {"release": release_name}
    assert stack.discovery.namespaces is None
    for kind in MONITOR_KINDS:
        assert spec[f"{kind}SelectorNilUsesHelmValues"] is False
        assert spec[f"{kind}Selector"]["matchLabels"] == dict(stack.discovery.labels), kind
        assert spec[f"{kind}NamespaceSelector"] == {}, f"{kind}: the contract watches every namespace"
    # Rules a store's Thanos Ruler evaluates are left to it: only they carry the evaluator label.
    assert spec["ruleSelector"]["matchExpressions"] == [{"key": RULE_EVALUATOR_LABEL, "operator": "DoesNotExist"}]
    assert all("matchExpressions" not in spec[f"{kind}Selector"] for kind in MONITOR_KINDS if kind != "rule")
    assert monitoring_release(run).inputs["name"] == release_name


def test_dashboard_contract_is_what_grafanas_sidecar_watches():
    stack, run = run_component(
        MonitoringStackArgs(
            monitoring=MonitoringConfig(), alerting=AlertingConfig(), platform="kind", control_plane_metrics=True,
            storage_class="standard", grafana_host_port=3000,
        )
    )
    dashboards = values_of(run)["grafana"]["sidecar"]["dashboards"]
    assert dashboards["enabled"] is True
    assert (dashboards["label"], dashboards["labelValue"]) == (stack.dashboards.label, stack.dashboards.label_value)
    assert dashboards["searchNamespace"] == "ALL" and stack.dashboards.namespaces is None
    assert dashboards["folderAnnotation"] == stack.dashboards.folder_annotation
    assert dashboards["provider"]["foldersFromFilesStructure"] is True
    assert stack.grafana_url == "http://localhost:3000"


def test_stack_exports_the_contracts_and_the_access_points(stack_run: ProgramRun):
    outputs = stack_run.outputs
    assert outputs["monitorLabels"] == {"release": outputs["monitoringRelease"]}
    assert outputs["dashboardLabels"] == {"grafana_dashboard": "1"}
    assert outputs["monitoringChartVersion"] == monitoring_release(stack_run).inputs["version"]
    namespace = outputs["monitoringNamespace"]
    assert outputs["prometheusUrl"].endswith(f".{namespace}.svc:9090")
    assert outputs["alertmanagerUrl"].endswith(f".{namespace}.svc:9093")


# --- chart sources ----------------------------------------------------------------------------------------------


def test_local_chart_folder_is_installed_without_repository():
    run = program_run_with("eks", {"monitoring": {"chart": {"path": str(chart_dir())}}})
    inputs = monitoring_release(run).inputs
    assert inputs["chart"] == str(chart_dir())
    assert "repositoryOpts" not in inputs and "version" not in inputs


def test_local_chart_folder_of_another_version_is_refused(tmp_path: Path):
    (tmp_path / "Chart.yaml").write_text("name: kube-prometheus-stack\nversion: 87.0.0\n")
    args = MonitoringStackArgs(
        monitoring=MonitoringConfig.model_validate({"chart": {"path": str(tmp_path)}}),
        alerting=AlertingConfig(), platform="eks", control_plane_metrics=False, storage_class="gp3",
    )
    with pytest.raises(pulumi.RunError, match=r"holds kube-prometheus-stack 87\.0\.0, not kube-prometheus-stack 88"):
        run_component(args)


def test_oci_reference_is_installed_with_its_version():
    oci = "oci://registry.example.com/charts/kube-prometheus-stack"
    inputs = monitoring_release(program_run_with("gke", {"monitoring": {"chart": {"oci": oci}}})).inputs
    assert (inputs["chart"], inputs["version"]) == (oci, MonitoringConfig().chart.version)
    assert "repositoryOpts" not in inputs


# --- arguments and configuration --------------------------------------------------------------------------------


def test_empty_dir_is_refused_outside_kind_before_anything_is_declared():
    found = problems(settings(cluster={"kind": "gke", "location": "europe-west1-b"},
                              monitoring={"storage": {"emptyDir": True}}))
    assert found == [
        f"{PROJECT}:monitoring.storage.emptyDir: loses Prometheus' data with every pod restart, which only the "
        "local kind stack accepts (got emptyDir on a gke cluster); remove it: pulumi config rm --path "
        "'monitoring.storage.emptyDir'"
    ]
    with pytest.raises(pulumi.RunError, match=r"storage\.emptyDir: .*on a gke cluster"):  # a direct caller too
        MonitoringStackArgs(
            monitoring=MonitoringConfig.model_validate({"storage": {"emptyDir": True}}),
            alerting=AlertingConfig(), platform="gke", control_plane_metrics=False, storage_class="standard-rwo",
        )


def test_empty_dir_on_kind_drops_the_volume_claims():
    run = program_run_with("local", {"monitoring": {"storage": {"emptyDir": True}}})
    values = values_of(run)
    assert values["prometheus"]["prometheusSpec"]["storageSpec"] == {}
    assert values["alertmanager"]["alertmanagerSpec"]["storage"] == {}


def settings(secret_sections: frozenset[str] | set[str] = frozenset(), **sections: Any) -> dict[str, RawSetting]:
    """Raw settings of a kind stack with ``sections``, those in ``secret_sections`` marked encrypted."""
    base: dict[str, Any] = {"cluster": {"kind": "kind"}} | sections
    return {key: RawSetting(value=value, secret=key in secret_sections) for key, value in base.items()}


def problems(raw: dict[str, RawSetting]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        validate_settings(raw, stack="test")
    return caught.value.problems


def test_a_resource_setting_given_in_part_keeps_the_profile():
    config = validate_settings(
        settings(monitoring={"resources": {"prometheus": {"memoryLimit": "4Gi"}}}), stack="test"
    ).monitoring
    assert config.resources.prometheus.memory_limit == "4Gi"
    assert config.resources.prometheus.cpu_request == MonitoringConfig().resources.prometheus.cpu_request
    assert config.resources.grafana == MonitoringConfig().resources.grafana


def test_monitoring_mistakes_are_reported_with_their_key_paths():
    found = problems(
        settings(
            monitoring={
                "prometheus": {"retentionSize": "20GiB", "retention": "ten days"},
                "resources": {"grafana": {"memoryLimit": "64Mi"}, "prometheus": {"cpuLimit": "1"}},
                "releaseName": "a-release-name-longer-than-the-chart-allows",
                "chart": {"path": "vendor/kps", "oci": "oci://r.example.com/charts/kube-prometheus-stack"},
            }
        )
    )
    text = "\n".join(found)
    assert f"{PROJECT}:monitoring.prometheus.retention: " in text
    assert f"{PROJECT}:monitoring.resources.grafana: memoryLimit must be at least memoryRequest" in text
    assert f"{PROJECT}:monitoring.resources.prometheus.cpuLimit: unknown setting" in text
    assert f"{PROJECT}:monitoring.releaseName: " in text
    assert f"{PROJECT}:monitoring.chart: repository, path and oci are alternative chart sources (got path, oci)" in text


def test_retention_size_must_leave_room_on_the_volume():
    found = problems(settings(monitoring={"prometheus": {"retentionSize": "10GiB", "storageSize": "10Gi"}}))
    assert found == [
        f"{PROJECT}:monitoring: prometheus.retentionSize must be set and at most 90% of prometheus.storageSize, or "
        "the volume fills up and Prometheus stops (got retentionSize=10GiB, storageSize=10Gi); correct those "
        "settings in monitoring"
    ]


def test_receiver_credentials_must_be_encrypted_and_are_never_printed():
    published = "https://git.example.com/platform/ml-observability/-/blob/main/runbooks"
    plain = problems(settings(alerting={"slack": {"webhookUrl": TEST_CREDENTIALS["slack"]},
                                        "runbookBaseUrl": published}))
    assert len(plain) == 1 and "pulumi config set --secret --path 'alerting.slack.webhookUrl'" in plain[0]
    assert TEST_CREDENTIALS["slack"] not in plain[0]

    broken = problems(
        settings({"alerting"}, alerting={"webhook": {"url": f"not a url {TEST_CREDENTIALS['pagerduty']}"}})
    )
    assert len(broken) == 1 and "alerting.webhook.url: must be an http(s) URL" in broken[0]
    assert TEST_CREDENTIALS["pagerduty"] not in broken[0]

    config = validate_settings(settings({"alerting"}, alerting=EVERY_OPTION["alerting"]), stack="test").alerting
    assert config.slack.webhook_url is not None
    assert TEST_CREDENTIALS["slack"] not in repr(config)


def test_alerting_mistakes_are_reported_with_their_key_paths():
    found = "\n".join(
        problems(
            settings(
                {"alerting"},
                alerting={"slack": {"channel": "#ml"}, "inhibitEqual": ["alertname"], "groupWait": "soon"},
            )
        )
    )
    assert f"{PROJECT}:alerting.slack: channel needs webhookUrl" in found
    assert f"{PROJECT}:alerting.inhibitEqual: must include namespace" in found
    assert f"{PROJECT}:alerting.groupWait: " in found


def test_every_setting_documents_itself():
    """The error messages quote a setting's description and first example: every field must have both."""
    from pydantic import BaseModel

    def walk(model: type[BaseModel], path: str) -> list[str]:
        missing = []
        for name, info in model.model_fields.items():
            key = f"{path}.{info.alias or name}"
            annotation = info.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                missing += walk(annotation, key)
            elif not info.description or not info.examples:
                missing.append(key)
        return missing

    assert walk(MonitoringConfig, "monitoring") + walk(AlertingConfig, "alerting") == []
