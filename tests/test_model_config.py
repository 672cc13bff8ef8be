"""The ``model`` section of the stack config: defaults, per-kind rules, and messages that name the key and the fix."""

from __future__ import annotations

from typing import Any

import pytest

from components.config import ConfigError, StackConfig, validate_settings
from components.config_source import RawSetting

KIND = {"kind": "kind"}
EXISTING = {"kind": "existing", "context": "prod", "kubernetesVersion": "1.34"}
EKS = {"kind": "eks", "region": "eu-west-1"}
GKE = {"kind": "gke", "location": "europe-west1-b"}
AKS = {"kind": "aks", "location": "westeurope"}
IMAGE = "registry.example.com/ml-team/ml-model-service:1.0.0"


def validate(cluster: dict[str, Any], model: dict[str, Any] | None = None, *, secret: bool = False) -> StackConfig:
    settings = {"cluster": RawSetting(cluster, False)}
    if model is not None:
        settings["model"] = RawSetting(model, secret)
    return validate_settings(settings, stack="dev")


def problems(cluster: dict[str, Any], model: dict[str, Any] | None = None, *, secret: bool = False) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        validate(cluster, model, secret=secret)
    assert str(raised.value).startswith("stacks/Pulumi.dev.yaml: ")
    return raised.value.problems


def test_defaults_live_in_the_model():
    model = validate(KIND).model
    assert (model.name, model.namespace, model.replicas) == ("synthetic-classifier", "models", 2)
    assert model.image is None and model.registry is None
    assert model.resources.cpu_limit is None, "no CPU limit by default: throttling hurts latency"
    assert model.resources.memory_limit == "512Mi"
    assert not model.faults.enabled
    assert model.network_policy.enabled and model.network_policy.client_namespaces == ()


@pytest.mark.parametrize(
    ("cluster", "hpa", "install"),
    [(KIND, True, True), (EKS, True, True), (AKS, True, False), (GKE, True, False)],
    ids=["kind", "eks", "aks", "gke"],
)
def test_autoscaling_and_metrics_server_defaults_per_kind(cluster: dict[str, Any], hpa: bool, install: bool):
    autoscaling = validate(cluster).model.autoscaling
    assert autoscaling.enabled_on(cluster["kind"]) is hpa
    assert autoscaling.installs_metrics_server_on(cluster["kind"]) is install


def test_an_existing_cluster_autoscales_only_when_asked():
    autoscaling = validate(EXISTING, {"image": IMAGE}).model.autoscaling
    assert not autoscaling.enabled_on("existing")
    autoscaling = validate(EXISTING, {"image": IMAGE, "autoscaling": {"enabled": True}}).model.autoscaling
    assert autoscaling.enabled_on("existing") and not autoscaling.installs_metrics_server_on("existing")


def test_an_existing_cluster_needs_an_image_or_a_registry():
    [problem] = problems(EXISTING)
    assert problem.startswith("ml-observability:model: an existing cluster has no registry of this stack")
    assert "pulumi config set --path 'model.image'" in problem
    assert "pulumi config set --path 'model.registry.address'" in problem
    assert validate(EXISTING, {"image": IMAGE}).model.image == IMAGE
    assert validate(EXISTING, {"registry": {"address": "localhost:5001/mlobs"}}).model.registry is not None


def test_registry_credentials_must_be_set_as_secrets():
    registry = {"address": "registry.example.com/ml-team", "username": "robot", "password": "s3cret"}
    [problem] = problems(EXISTING, {"registry": registry})
    assert problem.startswith("ml-observability:model.registry.password: the registry password is stored in plain")
    assert "pulumi config set --secret --path 'model.registry.password' <password>" in problem
    assert "s3cret" not in problem
    parsed = validate(EXISTING, {"registry": registry}, secret=True).model.registry
    assert parsed is not None and parsed.password is not None
    assert parsed.password.get_secret_value() == "s3cret" and parsed.host == "registry.example.com"


def test_a_password_without_a_user_is_refused():
    [problem] = problems(EXISTING, {"registry": {"address": "r.example.com/x", "password": "p"}}, secret=True)
    assert problem.startswith("ml-observability:model.registry: username and password go together")
    assert "set both, or neither" in problem


def test_a_registry_is_only_for_existing_clusters():
    [problem] = problems(EKS, {"registry": {"address": "registry.example.com/ml-team"}})
    assert problem.startswith("ml-observability:model: model.registry is only for existing clusters")
    assert "remove model.registry" in problem


def test_image_and_registry_exclude_each_other():
    [problem] = problems(EXISTING, {"image": IMAGE, "registry": {"address": "registry.example.com/x"}})
    assert problem.startswith("ml-observability:model: image and registry exclude each other")


@pytest.mark.parametrize("image", ["ml-model-service", "ml-model-service:latest", "registry.example.com/x:latest"])
def test_images_must_be_pinned(image: str):
    [problem] = problems(KIND, {"image": image})
    assert problem.startswith("ml-observability:model.image: ")
    assert "not pinned" in problem and "version tag other than 'latest' or a digest" in problem


def test_metrics_server_is_not_installed_twice():
    [problem] = problems(GKE, {"autoscaling": {"metricsServer": "install"}})
    assert problem.startswith("ml-observability:model: model.autoscaling.metricsServer cannot be 'install' on gke")


def test_the_autoscalers_bounds_must_hold():
    [problem] = problems(KIND, {"replicas": 5, "autoscaling": {"maxReplicas": 3}})
    assert "model.autoscaling.maxReplicas must be at least model.replicas" in problem
    assert "(got replicas=5, maxReplicas=3)" in problem
    # Without autoscaling the bound does not apply.
    assert validate(KIND, {"replicas": 5, "autoscaling": {"enabled": False, "maxReplicas": 3}}).model.replicas == 5


def test_limits_must_cover_requests():
    [problem] = problems(KIND, {"resources": {"memoryRequest": "1Gi", "memoryLimit": "512Mi"}})
    assert problem.startswith("ml-observability:model.resources: memoryLimit must be at least memoryRequest")
    [problem] = problems(KIND, {"resources": {"cpuRequest": "1", "cpuLimit": "500m"}})
    assert "cpuLimit must be at least cpuRequest (got cpuRequest=1, cpuLimit=500m)" in problem


def test_a_bad_value_names_the_key_the_value_and_the_fix():
    [problem] = problems(KIND, {"replicas": 0})
    assert problem.startswith("ml-observability:model.replicas: ")
    assert "(got 0)" in problem
    assert "pulumi config set --path 'model.replicas' <value> (for example 3)" in problem
    [problem] = problems(KIND, {"resources": {"memoryLimit": "lots"}})
    assert problem.startswith("ml-observability:model.resources.memoryLimit: ")
    assert "(got 'lots')" in problem and "(for example '1Gi')" in problem
    [problem] = problems(KIND, {"faults": {"errorRatio": 2}})
    assert problem.startswith("ml-observability:model.faults.errorRatio: ") and "(got 2)" in problem


def test_an_unknown_key_is_named_with_the_allowed_ones():
    [problem] = problems(KIND, {"replica": 3})
    assert problem.startswith("ml-observability:model.replica: unknown setting (got 3); remove it or correct its name")
    assert "replicas" in problem and "autoscaling" in problem
    [problem] = problems(KIND, {"autoscaling": {"max": 3}})
    assert problem.startswith("ml-observability:model.autoscaling.max: unknown setting")
    assert "maxReplicas" in problem


def test_client_labels_must_be_kubernetes_labels():
    [problem] = problems(KIND, {"networkPolicy": {"clientPodLabels": {"not a key": "x"}}})
    assert problem.startswith("ml-observability:model.networkPolicy.clientPodLabels: 'not a key' is not a Kubernetes")
    config = validate(KIND, {"networkPolicy": {"clientNamespaces": ["checkout"], "clientPodLabels": {"a/b": "c"}}})
    assert config.model.network_policy.client_pod_labels == {"a/b": "c"}
