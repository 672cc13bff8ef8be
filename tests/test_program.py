"""The whole program under mocks, once per real stack file: the resource graph each environment declares."""

from __future__ import annotations

import yaml

from components.clusters.config import KindClusterConfig
from components.clusters.kind import kind_config
from components.contracts import GRAFANA_NODE_PORT
from tests.harness import SECRET, ProgramRun

CLUSTER_COMPONENTS = {
    "kind": "mlobs:cluster:KindCluster",
    "existing": "mlobs:cluster:ExistingCluster",
    "eks": "mlobs:cluster:EksCluster",
    "aks": "mlobs:cluster:AksCluster",
    "gke": "mlobs:cluster:GkeCluster",
}
CLOUD_CLUSTER_RESOURCES = {
    "eks": "eks:index:Cluster",
    "aks": "azure-native:containerservice:ManagedCluster",
    "gke": "gcp:container/cluster:Cluster",
}


def cluster_kind(run: ProgramRun) -> str:
    return str(run.outputs["clusterKind"])


def test_declares_the_cluster_component_of_its_kind(stack_run: ProgramRun):
    kind = cluster_kind(stack_run)
    components = [r for r in stack_run.resources if r.typ.startswith("mlobs:cluster:")]
    assert [c.typ for c in components] == [CLUSTER_COMPONENTS[kind]]
    children = {r.typ for r in stack_run.children_of(components[0].urn)}
    assert "pulumi:providers:kubernetes" in children
    if kind == "kind":
        assert "command:local:Command" in children
    if kind in CLOUD_CLUSTER_RESOURCES:
        assert CLOUD_CLUSTER_RESOURCES[kind] in children
    other_clouds = {v for k, v in CLOUD_CLUSTER_RESOURCES.items() if k != kind}
    assert not other_clouds & {r.typ for r in stack_run.resources}


def test_one_kubernetes_provider_built_from_the_clusters_kubeconfig(stack_run: ProgramRun):
    provider = stack_run.one("pulumi:providers:kubernetes")
    kubeconfig = provider.inputs["kubeconfig"]
    assert set(kubeconfig) == {SECRET}, "the kubeconfig must reach the provider as a secret"
    assert yaml.safe_load(kubeconfig[SECRET])["kind"] == "Config"


def test_every_kubernetes_resource_uses_the_clusters_provider(stack_run: ProgramRun):
    provider = stack_run.one("pulumi:providers:kubernetes")
    for resource in stack_run.kubernetes_objects():
        assert resource.provider.startswith(provider.urn + "::"), (
            f"{resource.typ} {resource.name} uses {resource.provider or 'the default provider'}"
        )


def test_every_resource_belongs_to_a_component(stack_run: ProgramRun):
    for resource in stack_run.resources:
        if resource.typ.startswith("mlobs:"):
            continue
        ancestors = [a.typ for a in stack_run.ancestors(resource)]
        assert any(t.startswith("mlobs:") for t in ancestors), f"{resource.typ} {resource.name} has no component"


def test_cloud_clusters_are_protected(stack_run: ProgramRun):
    kind = cluster_kind(stack_run)
    if kind not in CLOUD_CLUSTER_RESOURCES:
        assert not any(r.protect for r in stack_run.resources)
        return
    cluster = stack_run.one(CLOUD_CLUSTER_RESOURCES[kind])
    assert cluster.protect


def test_exports_the_clusters_outputs(stack_run: ProgramRun):
    outputs = stack_run.outputs
    for key in ("clusterName", "clusterKind", "kubeconfig", "kubernetesVersion", "defaultStorageClass"):
        assert key in outputs, f"missing stack output {key}"
    assert set(outputs["kubeconfig"]) == {SECRET}, "the kubeconfig output must be secret"
    expected_storage = {"kind": "standard", "eks": "gp3", "aks": "managed-csi", "gke": "standard-rwo"}
    kind = cluster_kind(stack_run)
    if kind in expected_storage:
        assert outputs["defaultStorageClass"] == expected_storage[kind]


def test_kind_cluster_is_created_from_the_rendered_config(stack_run: ProgramRun):
    if cluster_kind(stack_run) != "kind":
        return
    cluster = stack_run.one(CLUSTER_COMPONENTS["kind"])
    [command] = [r for r in stack_run.children_of(cluster.urn) if r.typ == "command:local:Command"]
    document = yaml.safe_load(command.inputs["stdin"])
    assert command.inputs["triggers"][0] == command.inputs["stdin"], "a config change must recreate the cluster"
    name = stack_run.outputs["clusterName"]
    assert f"kind create cluster --name {name} --config=-" in command.inputs["create"]
    assert command.inputs["delete"] == f"kind delete cluster --name {name}"
    assert command.additional_secret_outputs == ["stdout"]
    [control_plane] = [n for n in document["nodes"] if n["role"] == "control-plane"]
    assert control_plane["image"].startswith("kindest/node:v")
    assert control_plane["extraPortMappings"][0]["containerPort"] == GRAFANA_NODE_PORT


def test_kind_config_exposes_control_plane_metrics():
    document = yaml.safe_load(kind_config(KindClusterConfig.model_validate({"kind": "kind", "workers": 2})))
    patches = [yaml.safe_load(p) for p in document["kubeadmConfigPatches"]]
    cluster_patch = next(p for p in patches if p["kind"] == "ClusterConfiguration")
    assert cluster_patch["controllerManager"]["extraArgs"]["bind-address"] == "0.0.0.0"
    assert cluster_patch["scheduler"]["extraArgs"]["bind-address"] == "0.0.0.0"
    assert cluster_patch["etcd"]["local"]["extraArgs"]["listen-metrics-urls"] == "http://0.0.0.0:2381"
    proxy_patch = next(p for p in patches if p["kind"] == "KubeProxyConfiguration")
    assert proxy_patch["metricsBindAddress"] == "0.0.0.0:10249"
    assert "apiVersion" not in cluster_patch, "versioned patches apply to one kubeadm API only"
    assert [n["role"] for n in document["nodes"]] == ["control-plane", "worker", "worker"]


# What workloads must wait for on each cloud: a node to run on (GKE removes its default pool, so the cluster has
# none until its own pool exists) and, on EKS, the storage driver the volumes need.
WAITED_FOR = {"gke": {"gcp:container/nodePool:NodePool"},
              "eks": {"eks:index:ManagedNodeGroup", "aws:eks/addon:Addon"}}


def test_on_a_cloud_the_kubernetes_provider_waits_for_what_workloads_need(stack_run: ProgramRun):
    [provider] = stack_run.by_type("pulumi:providers:kubernetes")
    waited = {stack_run.by_urn(urn).typ for urn in provider.dependencies}
    expected = WAITED_FOR.get(str(stack_run.outputs["clusterKind"]), set())
    assert expected <= waited, f"the provider waits for {sorted(waited)}"
    # So the monitoring release, which every in-cluster resource's provider is, waits for them too.
    release = next(r for r in stack_run.by_type("kubernetes:helm.sh/v3:Release")
                   if r.inputs.get("chart") != "metrics-server")
    assert release.provider.startswith(provider.urn)
