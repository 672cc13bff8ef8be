"""The ``models`` and ``modelDefaults`` sections: deployed and external models, defaults written once, per-kind
rules, teams, and messages that name the model's key, the value and the fix."""

from __future__ import annotations

from typing import Any

import pytest

from components.config.loader import ConfigError, validate_settings
from components.config.source import RawSetting
from components.config.stack import StackConfig
from components.model.config import SAMPLE_MODEL_NAME, ModelConfig

KIND = {"kind": "kind"}
EXISTING = {"kind": "existing", "context": "prod", "kubernetesVersion": "1.34"}
REGISTRY = {"address": "localhost:5001/mlobs"}
EKS = {"kind": "eks", "region": "eu-west-1"}
GKE = {"kind": "gke", "location": "europe-west1-b"}
AKS = {"kind": "aks", "location": "westeurope"}
IMAGE = "registry.example.com/ml-team/ml-model-service:1.0.0"
FRAUD_SERVICE = {"namespace": "fraud", "selector": {"app.kubernetes.io/name": "fraud"}, "port": "http-metrics"}


def validate(cluster: dict[str, Any], models: dict[str, Any] | None = None, *, secret: bool = False,
             **sections: Any) -> StackConfig:
    settings = {"cluster": RawSetting(cluster, secret)}
    if models is not None:
        settings["models"] = RawSetting(models, False)
    settings |= {key: RawSetting(value, False) for key, value in sections.items()}
    return validate_settings(settings, stack="dev")


def problems(cluster: dict[str, Any], models: dict[str, Any] | None = None, *, secret: bool = False,
             **sections: Any) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        validate(cluster, models, secret=secret, **sections)
    assert str(raised.value).startswith("stacks/Pulumi.dev.yaml: ")
    return raised.value.problems


def churn(**settings: Any) -> dict[str, Any]:
    return {"churn": settings}


def test_without_models_the_stack_deploys_the_sample():
    config = validate(KIND)
    assert list(config.models) == [SAMPLE_MODEL_NAME]
    model = config.models[SAMPLE_MODEL_NAME]
    assert model.deployed and model.builds_sample_image and model.team is None
    assert (model.namespace, model.replicas) == ("models", 2)
    assert model.resources.cpu_limit is None, "no CPU limit by default: throttling hurts latency"
    assert model.resources.memory_limit == "512Mi"
    assert not model.faults.enabled
    assert model.network_policy.enabled and model.network_policy.client_namespaces == ()


def test_models_deployed_and_external_side_by_side():
    config = validate(KIND, {
        "churn": {"team": "growth", "image": IMAGE, "replicas": 3},
        "recommender": {"namespace": "recs"},
        "fraud": {"team": "fraud", "external": FRAUD_SERVICE},
    }, alerting={"teams": {"growth": {}, "fraud": {}}})
    assert list(config.deployed_models) == ["churn", "recommender"]
    assert config.models["fraud"].external is not None and not config.models["fraud"].deployed
    assert config.models["fraud"].scrape_namespace() == "fraud"
    assert config.model_namespaces == ("models", "recs"), "each namespace once"
    assert config.builds_sample_image, "recommender runs the sample image"
    assert not validate(KIND, churn(image=IMAGE)).builds_sample_image


def test_defaults_are_written_once_and_a_model_sets_only_what_differs():
    config = validate(KIND, {"churn": {}, "fraud": {"replicas": 4, "monitors": {"drift": {"psiThreshold": 0.4}}}},
                      modelDefaults={"replicas": 3, "monitors": {"drift": {"longWindow": "12h"}}})
    assert config.models["churn"].replicas == 3
    assert config.models["fraud"].replicas == 4
    drift = config.models["fraud"].monitors.drift
    assert (drift.long_window, drift.psi_threshold) == ("12h", 0.4), "maps merge key by key"
    assert config.models["churn"].monitors.drift.psi_threshold == ModelConfig().monitors.drift.psi_threshold


def test_a_mistake_in_the_defaults_is_named_there_once():
    [problem] = problems(KIND, {"a": {}, "b": {}}, modelDefaults={"replicas": 0})
    assert problem.startswith("ml-observability:modelDefaults.replicas: ")
    [problem] = problems(KIND, {"a": {}}, modelDefaults={"external": FRAUD_SERVICE})
    assert problem.startswith("ml-observability:modelDefaults.external: not a default")


@pytest.mark.parametrize("name", ["Churn", "churn_model", "-churn", "a" * 51])
def test_model_names_are_dns_labels(name: str):
    [problem] = problems(KIND, {name: {}})
    assert problem.startswith(f"ml-observability:models.{name}: ")


def test_a_team_must_have_receivers():
    [problem] = problems(KIND, churn(team="growth"), alerting={"teams": {"fraud": {}}})
    assert problem.startswith("ml-observability:models.churn.team: team 'growth' has no receivers in alerting.teams "
                              "(fraud)")
    assert "pulumi config set --path 'alerting.teams.growth.slack.channel'" in problem


def test_two_models_on_one_service_are_refused():
    external = {**FRAUD_SERVICE, "namespace": "models", "selector": {
        "app.kubernetes.io/name": "churn", "app.kubernetes.io/instance": "churn"}}
    found = problems(KIND, {"churn": {}, "copy": {"external": external}})
    assert [p.split(":", 2)[1].split(" ")[0] for p in found] == ["models.churn", "models.copy"]
    assert "selects the same Service as copy in namespace models" in found[0]


def test_an_external_model_takes_no_deployment_settings():
    [problem] = problems(KIND, {"fraud": {"external": FRAUD_SERVICE, "replicas": 3, "image": IMAGE}})
    assert problem.startswith("ml-observability:models.fraud: an external model is not deployed by this stack, so "
                              "replicas, image mean nothing for it")
    [problem] = problems(KIND, {"fraud": {"external": {**FRAUD_SERVICE, "port": "a-port-name-far-too-long"}}})
    assert problem.startswith("ml-observability:models.fraud.external.port: ")
    [problem] = problems(KIND, {"fraud": {"external": {**FRAUD_SERVICE, "selector": {}}}})
    assert problem.startswith("ml-observability:models.fraud.external.selector: ")


@pytest.mark.parametrize(
    ("cluster", "hpa", "install"),
    [(KIND, True, True), (EKS, True, True), (AKS, True, False), (GKE, True, False)],
    ids=["kind", "eks", "aks", "gke"],
)
def test_autoscaling_and_metrics_server_defaults_per_kind(cluster: dict[str, Any], hpa: bool, install: bool):
    autoscaling = validate(cluster).models[SAMPLE_MODEL_NAME].autoscaling
    assert autoscaling.enabled_on(cluster["kind"]) is hpa
    assert autoscaling.installs_metrics_server_on(cluster["kind"]) is install


def test_an_existing_cluster_autoscales_only_when_asked():
    autoscaling = validate(EXISTING, churn(image=IMAGE)).models["churn"].autoscaling
    assert not autoscaling.enabled_on("existing")
    autoscaling = validate(EXISTING, churn(image=IMAGE, autoscaling={"enabled": True})).models["churn"].autoscaling
    assert autoscaling.enabled_on("existing") and not autoscaling.installs_metrics_server_on("existing")


def test_an_existing_cluster_needs_a_registry_for_the_sample_image():
    [problem] = problems(EXISTING, {"churn": {}, "fraud": {"image": IMAGE}})
    assert problem.startswith("ml-observability:cluster.registry: an existing cluster has no registry of this stack, "
                              "and churn runs the sample image")
    assert "pulumi config set --path 'cluster.registry.address'" in problem
    assert "pulumi config set --path 'models.churn.image'" in problem
    assert validate(EXISTING, churn(image=IMAGE)).models["churn"].image == IMAGE
    registry = validate({**EXISTING, "registry": REGISTRY}, churn()).cluster.registry  # type: ignore[union-attr]
    assert registry is not None and registry.host == "localhost:5001"


def test_registry_credentials_must_be_set_as_secrets():
    registry = {"address": "registry.example.com/ml-team", "username": "robot", "password": "s3cret"}
    [problem] = problems({**EXISTING, "registry": registry}, churn())
    assert problem.startswith("ml-observability:cluster.registry.password: credential stored in plain text")
    assert "pulumi config set --secret --path 'cluster.registry.password' <value>" in problem
    assert "s3cret" not in problem
    parsed = validate({**EXISTING, "registry": registry}, churn(), secret=True).cluster.registry  # type: ignore[union-attr]
    assert parsed is not None and parsed.password is not None
    assert parsed.password.get_secret_value() == "s3cret" and parsed.host == "registry.example.com"


def test_a_password_without_a_user_is_refused():
    [problem] = problems({**EXISTING, "registry": {"address": "r.example.com/x", "password": "p"}}, churn(),
                         secret=True)
    assert problem.startswith("ml-observability:cluster.registry: username and password go together")
    assert "set both, or neither" in problem


def test_a_registry_is_only_for_existing_clusters():
    [problem] = problems({**EKS, "registry": REGISTRY})
    assert problem.startswith("ml-observability:cluster.registry: unknown setting")


def test_the_old_model_section_says_where_it_went():
    [problem] = problems(KIND, model={"replicas": 3})
    assert problem.startswith("ml-observability:model: unknown setting")
    assert "the model section became models" in problem and "model.registry to cluster.registry" in problem


@pytest.mark.parametrize("image", ["ml-model-service", "ml-model-service:latest", "registry.example.com/x:latest"])
def test_images_must_be_pinned(image: str):
    [problem] = problems(KIND, churn(image=image))
    assert problem.startswith("ml-observability:models.churn.image: ")
    assert "not pinned" in problem and "version tag other than 'latest' or a digest" in problem


def test_metrics_server_is_not_installed_twice():
    [problem] = problems(GKE, churn(autoscaling={"metricsServer": "install"}))
    assert problem.startswith("ml-observability:models.churn: autoscaling.metricsServer cannot be 'install' on gke")


def test_the_autoscalers_bounds_must_hold():
    [problem] = problems(KIND, churn(replicas=5, autoscaling={"maxReplicas": 3}))
    assert problem.startswith("ml-observability:models.churn: autoscaling.maxReplicas must be at least replicas")
    assert "(got replicas=5, autoscaling.maxReplicas=3)" in problem
    # Without autoscaling the bound does not apply.
    assert validate(KIND, churn(replicas=5, autoscaling={"enabled": False, "maxReplicas": 3})).models[
        "churn"].replicas == 5


def test_limits_must_cover_requests():
    [problem] = problems(KIND, churn(resources={"memoryRequest": "1Gi", "memoryLimit": "512Mi"}))
    assert problem.startswith("ml-observability:models.churn.resources: memoryLimit must be at least memoryRequest")
    [problem] = problems(KIND, churn(resources={"cpuRequest": "1", "cpuLimit": "500m"}))
    assert "cpuLimit must be at least cpuRequest (got cpuRequest=1, cpuLimit=500m)" in problem


def test_a_bad_value_names_the_key_the_value_and_the_fix():
    [problem] = problems(KIND, churn(replicas=0))
    assert problem.startswith("ml-observability:models.churn.replicas: ")
    assert "(got 0)" in problem
    assert "pulumi config set --path 'models.churn.replicas' <value> (for example 3)" in problem
    [problem] = problems(KIND, churn(resources={"memoryLimit": "lots"}))
    assert problem.startswith("ml-observability:models.churn.resources.memoryLimit: ")
    assert "(got 'lots')" in problem and "(for example '1Gi')" in problem
    [problem] = problems(KIND, churn(faults={"errorRatio": 2}))
    assert problem.startswith("ml-observability:models.churn.faults.errorRatio: ") and "(got 2)" in problem


def test_an_unknown_key_is_named_with_the_allowed_ones():
    [problem] = problems(KIND, churn(replica=3))
    assert problem.startswith("ml-observability:models.churn.replica: unknown setting (got 3); remove it or correct "
                              "its name")
    assert "replicas" in problem and "autoscaling" in problem and "external" in problem
    [problem] = problems(KIND, churn(autoscaling={"max": 3}))
    assert problem.startswith("ml-observability:models.churn.autoscaling.max: unknown setting")
    assert "maxReplicas" in problem


def test_snake_case_keys_are_unknown_in_a_stack_file():
    [problem] = problems(KIND, churn(log_level="debug"))
    assert problem.startswith("ml-observability:models.churn.log_level: unknown setting")
    assert "logLevel" in problem


def test_client_labels_must_be_kubernetes_labels():
    [problem] = problems(KIND, churn(networkPolicy={"clientPodLabels": {"not a key": "x"}}))
    assert problem.startswith("ml-observability:models.churn.networkPolicy.clientPodLabels: 'not a key' is not a "
                              "Kubernetes")
    config = validate(KIND, churn(networkPolicy={"clientNamespaces": ["checkout"], "clientPodLabels": {"a/b": "c"}}))
    assert config.models["churn"].network_policy.client_pod_labels == {"a/b": "c"}
