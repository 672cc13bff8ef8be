"""The models on every environment's cluster: their image, their objects, and the contracts between them.

The whole program runs under mocks once per stack file, and the tests of one model run for every model each stack
deploys (``model``: the sample on the real stack files, two models on the fleet's); a few variations of a stack's
``models`` section run it again. Assertions are made on the recorded graph after the run: the Service must
select the Deployment's pods and name its port, the NetworkPolicy must admit the monitoring namespace's
Prometheus, every object must pass the schema of the cluster's Kubernetes version.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest
from model_service import contract as model_contract

from components.clusters.metrics_server import METRICS_SERVER_CHART_VERSION
from components.config.loader import validate_settings
from components.config.source import RawSetting
from components.config.stack import StackConfig
from components.contracts import MODEL_HTTP_PORT, MODEL_HTTP_PORT_NAME, PROJECT, PROMETHEUS_POD_LABELS
from components.model.config import SAMPLE_MODEL_NAME, ModelConfig
from components.model.deployment import (
    MODEL_SERVICE_UID,
    SIGNING_KEY_BYTES,
    SIGNING_KEY_SECRET_KEY,
    Autoscaling,
    ContainerResources,
    ModelDeployment,
    ModelDeploymentArgs,
    traffic_selector_labels,
)
from components.model.image import (
    IMAGE_REPOSITORY,
    MODEL_SERVICE_DIR,
    image_tag,
    source_files,
    source_hash,
)
from tests.conftest import program_run
from tests.harness import (
    SECRET,
    ProgramRun,
    Registration,
    load_stack_file,
    plain,
    run_with_config,
    stack_files,
    stack_files_under_test,
    stack_name,
)
from tests.k8s_validation import builtin_errors, selector_matches

DEPLOYMENT = "mlobs:model:ModelDeployment"
OBSERVED = "mlobs:model:ObservedModel"
NAMESPACE = "mlobs:model:ModelNamespace"
IMAGE = "mlobs:model:ModelImage"
KINDS_WITH_HPA = {"kind", "eks", "aks", "gke"}
KINDS_INSTALLING_METRICS_SERVER = {"kind", "eks"}
REGISTRIES = {
    "eks": "aws:ecr/repository:Repository",
    "aks": "azure-native:containerregistry:Registry",
    "gke": "gcp:artifactregistry/repository:Repository",
}


# ---------------------------------------------------------------------------------------------------------
# helpers: the model's objects as manifests
# ---------------------------------------------------------------------------------------------------------


class ModelObjects:
    """The objects the ModelDeployment of one model declared, by kind, and the namespace the program made for it."""

    config: ModelConfig
    """The model's section of the stack file, as the program read it."""

    def __init__(self, run: ProgramRun, name: str = SAMPLE_MODEL_NAME) -> None:
        self.run = run
        self.name = name
        [self.component] = [r for r in run.by_type(DEPLOYMENT) if run.by_urn(r.parent).name == name]
        self.children = run.children_of(self.component.urn)
        namespace = self.one("Service")["metadata"]["namespace"]
        [self.namespace] = [plain(c.inputs) for r in run.by_type(NAMESPACE) for c in run.children_of(r.urn)
                            if plain(c.inputs)["metadata"]["name"] == namespace]
        self.outputs = run.outputs["models"][name]

    def registrations(self, kind: str) -> list[Registration]:
        """The model's own objects of ``kind``; its load generator's are tests/test_model_traffic.py's."""
        return [r for r in self.children if r.typ.startswith("kubernetes:") and r.typ.endswith(f":{kind}")
                and r.inputs["metadata"].get("labels", {}).get("app.kubernetes.io/component") != "load-generator"]

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [plain(r.inputs) for r in self.registrations(kind)]

    def one(self, kind: str) -> dict[str, Any]:
        [found] = self.all(kind)
        return found

    @property
    def pod(self) -> dict[str, Any]:
        return self.one("Deployment")["spec"]["template"]

    @property
    def container(self) -> dict[str, Any]:
        [container] = self.pod["spec"]["containers"]
        return container

    def env(self) -> dict[str, Any]:
        return {e["name"]: e.get("value", e.get("valueFrom")) for e in self.container["env"]}


def kind_of(run: ProgramRun) -> str:
    return str(run.outputs["clusterKind"])


def stack_config(stack_file: Path) -> StackConfig:
    """The stack file's configuration, validated as the program reads it."""
    config, secret_keys = load_stack_file(stack_file)
    settings = {key.split(":", 1)[1]: RawSetting(json.loads(value) if value[:1] in "{[" else value,
                                                 key in secret_keys)
                for key, value in config.items() if key.startswith(f"{PROJECT}:")}
    return validate_settings(settings, stack=stack_name(stack_file))


def deployed_models() -> list[tuple[Path, str]]:
    """Every (stack file, model) a stack deploys."""
    return [(stack_file, name) for stack_file in stack_files_under_test()
            for name in stack_config(stack_file).deployed_models]


@pytest.fixture(params=deployed_models(), ids=lambda case: f"{stack_name(case[0])}-{case[1]}")
def model(request: pytest.FixtureRequest) -> ModelObjects:
    stack_file, name = request.param
    objects = ModelObjects(program_run(stack_file), name)
    objects.config = stack_config(stack_file).models[name]
    return objects


# ---------------------------------------------------------------------------------------------------------
# every stack file
# ---------------------------------------------------------------------------------------------------------


def test_the_component_owns_the_models_objects(model: ModelObjects):
    assert model.component.name == f"{model.name}-model"
    assert model.run.by_urn(model.component.parent).typ == OBSERVED
    kinds = sorted(r.typ.rsplit(":", 1)[1] for r in model.children if r.typ.startswith("kubernetes:"))
    expected = ["Deployment", "NetworkPolicy", "PodDisruptionBudget", "Secret", "Service", "ServiceAccount"]
    if kind_of(model.run) in KINDS_WITH_HPA:
        expected.append("HorizontalPodAutoscaler")
    if model.config.traffic_on(kind_of(model.run)):
        expected.append("Deployment")  # its load generator
    assert kinds == sorted(expected)
    for child in model.children:
        assert child.name.startswith(f"{model.component.name}-"), f"{child.typ} {child.name} is not named after it"


def schema_problems(model: ModelObjects) -> list[str]:
    """Every way the model's objects violate the API of the cluster's Kubernetes version."""
    version = str(model.run.outputs["kubernetesVersion"])
    return [
        problem
        for registration in model.children
        if registration.typ.startswith("kubernetes:")
        for problem in builtin_errors(plain(registration.inputs), version)
    ]


def test_every_object_passes_the_clusters_kubernetes_schema(model: ModelObjects):
    assert schema_problems(model) == []


def test_the_schema_check_catches_a_broken_object(model: ModelObjects):
    stack_run = model.run
    """The validation above can fail: a misspelt field of the Deployment is reported."""
    deployment = model.one("Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {"path": "/readyz"}
    assert builtin_errors(deployment, str(stack_run.outputs["kubernetesVersion"])) != []


def test_the_service_selects_the_deployments_pods_on_a_named_port(model: ModelObjects):
    deployment, service = model.one("Deployment"), model.one("Service")
    pod_labels = model.pod["metadata"]["labels"]
    assert selector_matches(deployment["spec"]["selector"], pod_labels)
    assert selector_matches({"matchLabels": service["spec"]["selector"]}, pod_labels)
    assert service["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    container_ports = {p["name"]: p["containerPort"] for p in model.container["ports"]}
    [port] = service["spec"]["ports"]
    assert port["name"] == MODEL_HTTP_PORT_NAME
    assert port["targetPort"] in container_ports, "the Service targets a port the container does not name"
    assert container_ports[port["targetPort"]] == MODEL_HTTP_PORT
    assert model.env()["MODEL_PORT"] == str(MODEL_HTTP_PORT), "the service must listen on the declared port"


def test_the_pdb_netpol_and_hpa_act_on_the_deployments_pods(model: ModelObjects):
    pod_labels = model.pod["metadata"]["labels"]
    assert selector_matches(model.one("PodDisruptionBudget")["spec"]["selector"], pod_labels)
    assert selector_matches(model.one("NetworkPolicy")["spec"]["podSelector"], pod_labels)
    for hpa in model.all("HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        assert (target["kind"], target["name"]) == ("Deployment", model.one("Deployment")["metadata"]["name"])


def test_the_outputs_are_what_the_monitors_select_by(model: ModelObjects):
    service = model.one("Service")
    namespace = service["metadata"]["namespace"]
    assert model.namespace["metadata"]["name"] == namespace
    assert model.outputs["url"] == f"http://{service['metadata']['name']}.{namespace}.svc:{MODEL_HTTP_PORT}"
    assert service["metadata"]["name"] == model.name
    assert selector_matches({"matchLabels": service["spec"]["selector"]}, service["metadata"]["labels"]), (
        "a ServiceMonitor selects the Service by the pods' selector labels: the Service must carry them"
    )


def test_the_models_service_monitor_selects_its_service_and_names_its_port(model: ModelObjects):
    service = model.one("Service")
    [monitor] = [plain(r.inputs) for r in model.run.by_type("kubernetes:monitoring.coreos.com/v1:ServiceMonitor")
                 if plain(r.inputs)["metadata"]["name"] == model.name]
    assert monitor["metadata"]["namespace"] == service["metadata"]["namespace"]
    assert selector_matches(monitor["spec"]["selector"], service["metadata"]["labels"])
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    others = [plain(r.inputs) for r in model.run.by_type("kubernetes:core/v1:Service")
              if plain(r.inputs)["metadata"]["namespace"] == service["metadata"]["namespace"]
              and plain(r.inputs)["metadata"]["name"] != service["metadata"]["name"]]
    assert not [o for o in others if selector_matches(monitor["spec"]["selector"], o["metadata"]["labels"])], (
        "the monitor must select its model's Service only"
    )


def test_the_network_policy_admits_prometheus_from_the_monitoring_namespace(model: ModelObjects):
    stack_run = model.run
    [rule, *client_rules] = model.one("NetworkPolicy")["spec"]["ingress"]
    generator_peer = {"podSelector": {"matchLabels": traffic_selector_labels(model.name)}}
    generator = [{"ports": rule["ports"], "from": [generator_peer]}]
    assert client_rules == (generator if model.config.traffic_on(kind_of(stack_run)) else []), (
        "the stack files name no client namespaces: only the load generator, where it runs")
    [peer] = rule["from"]
    monitoring_namespace = stack_run.outputs["monitoringNamespace"]
    assert peer["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": monitoring_namespace}}
    assert peer["podSelector"] == {"matchLabels": dict(PROMETHEUS_POD_LABELS)}
    assert rule["ports"] == [{"port": MODEL_HTTP_PORT_NAME, "protocol": "TCP"}]


def test_the_pods_run_locked_down(model: ModelObjects):
    pod_spec = model.pod["spec"]
    assert pod_spec["automountServiceAccountToken"] is False
    assert pod_spec["enableServiceLinks"] is False
    assert pod_spec["securityContext"]["runAsNonRoot"] is True
    assert pod_spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = model.container["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == MODEL_SERVICE_UID
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    [tmp] = model.container["volumeMounts"]
    volumes = {v["name"]: v for v in pod_spec["volumes"]}
    assert tmp["mountPath"] == "/tmp" and "emptyDir" in volumes[tmp["name"]]
    assert model.one("ServiceAccount")["automountServiceAccountToken"] is False
    assert model.namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_probes_resources_and_rollout(model: ModelObjects):
    container = model.container
    assert container["livenessProbe"]["httpGet"] == {"path": model_contract.ROUTE_HEALTHZ, "port": MODEL_HTTP_PORT_NAME}
    assert container["readinessProbe"]["httpGet"] == {"path": model_contract.ROUTE_READYZ, "port": MODEL_HTTP_PORT_NAME}
    assert container["startupProbe"]["httpGet"]["port"] == MODEL_HTTP_PORT_NAME
    resources = container["resources"]
    assert set(resources["requests"]) == {"cpu", "memory"}
    assert set(resources["limits"]) == {"memory"}, "no CPU limit unless the config asks for one"
    strategy = model.one("Deployment")["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate" and strategy["rollingUpdate"]["maxUnavailable"] == 0
    assert container["imagePullPolicy"] == "IfNotPresent"
    shutdown = float(model.env()["MODEL_SHUTDOWN_TIMEOUT_SECONDS"])
    assert model.pod["spec"]["terminationGracePeriodSeconds"] > shutdown


def test_the_service_gets_the_monitors_slo_thresholds_and_a_shared_signing_key(model: ModelObjects):
    env = model.env()
    thresholds = env[model_contract.ENV_LATENCY_SLO_THRESHOLDS_SECONDS]
    monitored = model.config.monitors.latency_thresholds_seconds
    assert thresholds == model_contract.format_latency_thresholds(monitored)
    assert env[model_contract.ENV_MODEL_NAME] == model.name, "the service reports the model's name"
    key_ref = env["MODEL_FEEDBACK_SIGNING_KEY"]["secretKeyRef"]
    [secret] = model.all("Secret")
    assert key_ref == {"name": secret["metadata"]["name"], "key": SIGNING_KEY_SECRET_KEY}
    [signing_key] = [r for r in model.children if r.typ == "random:index/randomBytes:RandomBytes"]
    assert signing_key.inputs["length"] == SIGNING_KEY_BYTES
    [secret_registration] = model.registrations("Secret")
    assert set(secret_registration.inputs["stringData"]) == {SECRET}, "the key must stay secret in the state"
    assert not any(e["name"].startswith("MODEL_FAULT_") for e in model.container["env"]), "faults are off by default"


def test_autoscaling_and_metrics_server_per_environment(model: ModelObjects):
    stack_run = model.run
    kind = kind_of(stack_run)
    hpas = model.all("HorizontalPodAutoscaler")
    deployment_spec = model.one("Deployment")["spec"]
    if kind in KINDS_WITH_HPA:
        [hpa] = hpas
        assert "replicas" not in deployment_spec, "the HPA owns the replica count"
        assert hpa["spec"]["minReplicas"] == model.config.replicas
        assert hpa["spec"]["maxReplicas"] == model.config.autoscaling.max_replicas
        assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    else:
        assert hpas == []
        assert deployment_spec["replicas"] == model.config.replicas
    releases = [r for r in stack_run.by_type("kubernetes:helm.sh/v3:Release") if r.inputs["chart"] == "metrics-server"]
    if kind in KINDS_INSTALLING_METRICS_SERVER:
        [release] = releases
        assert release.inputs["version"] == METRICS_SERVER_CHART_VERSION
        assert release.inputs["repositoryOpts"]["repo"] == "https://kubernetes-sigs.github.io/metrics-server/"
        insecure = "--kubelet-insecure-tls" in release.inputs["values"]["args"]
        assert insecure == (kind == "kind"), "only kind's kubelets serve self-signed certificates"
        assert stack_run.by_urn(release.parent).typ == "mlobs:autoscaling:MetricsServer"
    else:
        assert releases == []


def test_no_object_skips_the_readiness_wait(model: ModelObjects):
    for registration in model.children:
        annotations = (registration.inputs.get("metadata") or {}).get("annotations") or {}
        assert "pulumi.com/skipAwait" not in annotations, f"{registration.typ} {registration.name}"


def test_the_image_reaches_the_cluster_of_each_environment(model: ModelObjects):
    stack_run = model.run
    kind = kind_of(stack_run)
    if model.config.image is not None:
        assert model.container["image"] == model.outputs["image"] == model.config.image, "a given image runs as is"
        return
    image = stack_run.one(IMAGE)
    children = stack_run.children_of(image.urn)
    tag = image_tag()
    reference = model.container["image"]
    assert reference == model.outputs["image"]
    assert not reference.endswith(":latest")
    builds = [c for c in children if c.typ == "docker-build:index:Image"]
    loads = [c for c in children if c.typ == "command:local:Command"]
    if kind == "kind":
        assert builds == []
        [load] = loads
        cluster = stack_run.outputs["clusterName"]
        assert f"docker build --tag {IMAGE_REPOSITORY}:{tag} model-service" in load.inputs["create"]
        assert f"kind load docker-image --name {cluster} {IMAGE_REPOSITORY}:{tag}" in load.inputs["create"]
        assert tag in load.inputs["triggers"], "a change of the sources must rebuild the image"
        assert reference == f"{IMAGE_REPOSITORY}:{tag}"
        return
    assert loads == []
    [build] = builds
    assert build.inputs["push"] is True
    assert build.inputs["buildOnPreview"] is False
    assert build.inputs["context"] == {"location": "model-service"}
    [pushed] = build.inputs["tags"]
    assert pushed.endswith(f"/{IMAGE_REPOSITORY}:{tag}")
    assert reference.startswith(f"{pushed}@sha256:"), "pods run the pushed image by digest"
    for registry in build.inputs["registries"]:
        assert set(registry["password"]) == {SECRET}, "registry credentials must stay secret"
        assert pushed.startswith(registry["address"] + "/")
    if kind in REGISTRIES:
        [registry] = [c for c in children if c.typ == REGISTRIES[kind]]
        assert registry.provider, "the registry is declared with the cluster's cloud provider"
    if kind == "aks":
        [grant] = [c for c in children if c.typ == "azure-native:authorization:RoleAssignment"]
        assert grant.inputs["roleDefinitionId"].endswith("/roleDefinitions/7f951dda-4ed3-4680-a7ca-43fe172d538d")
        assert grant.inputs["principalId"] == "00000000-0000-0000-0000-00000000c0de"  # the kubelet identity (mock)
    if kind == "existing":
        assert pushed == f"localhost:5001/mlobs/{IMAGE_REPOSITORY}:{tag}"  # stacks/Pulumi.existing.yaml


# ---------------------------------------------------------------------------------------------------------
# variations of a stack's model section
# ---------------------------------------------------------------------------------------------------------


def run_with_models(stack: str, models: dict[str, Any], *, cluster: dict[str, Any] | None = None,
                    secret: bool = False) -> ProgramRun:
    """The program on ``stacks/Pulumi.<stack>.yaml`` with its models section replaced, and settings merged into its
    cluster section (``secret``: the cluster section set with --secret)."""
    [stack_file] = [f for f in stack_files() if f.name == f"Pulumi.{stack}.yaml"]
    config, secret_keys = load_stack_file(stack_file)
    config[f"{PROJECT}:models"] = json.dumps(models)
    if cluster is not None:
        config[f"{PROJECT}:cluster"] = json.dumps({**json.loads(config[f"{PROJECT}:cluster"]), **cluster})
    if secret:
        secret_keys.append(f"{PROJECT}:cluster")
    return run_with_config(stack, config, secret_keys)


def test_configured_settings_reach_the_pods():
    run = run_with_models(
        "local",
        {SAMPLE_MODEL_NAME: {
            "namespace": "scoring",
            "replicas": 3,
            "image": "registry.example.com/ml/ml-model-service:2.0.0",
            "resources": {"cpuRequest": "500m", "cpuLimit": "2", "memoryLimit": "1Gi"},
            "autoscaling": {"enabled": False},
            "faults": {"errorRatio": 0.1, "extraLatencySeconds": 0.5, "latencyRatio": 0.2},
            "networkPolicy": {"clientNamespaces": ["checkout"], "clientPodLabels": {"team/client": "true"}},
            "logLevel": "debug",
        }},
    )
    model = ModelObjects(run)
    assert model.container["image"] == "registry.example.com/ml/ml-model-service:2.0.0"
    assert run.by_type(IMAGE) == [], "a given image is not built"
    assert model.container["resources"]["limits"] == {"cpu": "2", "memory": "1Gi"}
    assert model.container["resources"]["requests"]["cpu"] == "500m"
    assert model.one("Deployment")["spec"]["replicas"] == 3
    assert model.all("HorizontalPodAutoscaler") == []
    assert [r for r in run.by_type("kubernetes:helm.sh/v3:Release") if r.inputs["chart"] == "metrics-server"] == []
    env = model.env()
    faults = [env[f"MODEL_FAULT_{name}"] for name in ("ERROR_RATIO", "EXTRA_LATENCY_SECONDS", "LATENCY_RATIO")]
    assert faults == ["0.1", "0.5", "0.2"]
    assert env["MODEL_LOG_LEVEL"] == "debug"
    assert model.one("Service")["metadata"]["namespace"] == "scoring"
    assert model.outputs["url"] == f"http://{SAMPLE_MODEL_NAME}.scoring.svc:{MODEL_HTTP_PORT}"
    _, clients = model.one("NetworkPolicy")["spec"]["ingress"]
    assert clients["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "checkout"}}},
        {"namespaceSelector": {}, "podSelector": {"matchLabels": {"team/client": "true"}}},
    ]
    assert schema_problems(model) == []


def test_registry_credentials_push_the_image_and_become_the_pull_secret():
    run = run_with_models(
        "existing",
        {SAMPLE_MODEL_NAME: {}},
        cluster={"registry": {"address": "registry.example.com/ml-team", "username": "robot", "password": "s3cret"}},
        secret=True,
    )
    model = ModelObjects(run)
    [build] = [c for c in run.children_of(run.one(IMAGE).urn) if c.typ == "docker-build:index:Image"]
    assert build.inputs["registries"] == [
        {"address": "registry.example.com", "username": "robot", "password": {SECRET: "s3cret"}}
    ]
    pull = [s for s in model.registrations("Secret") if s.inputs["type"] == "kubernetes.io/dockerconfigjson"]
    [pull_secret] = pull
    assert set(pull_secret.inputs["stringData"]) == {SECRET}
    auths = json.loads(plain(pull_secret.inputs)["stringData"][".dockerconfigjson"])["auths"]
    assert auths["registry.example.com"]["username"] == "robot"
    assert model.pod["spec"]["imagePullSecrets"] == [{"name": plain(pull_secret.inputs)["metadata"]["name"]}]
    version = str(run.outputs["kubernetesVersion"])
    assert builtin_errors(plain(pull_secret.inputs), version) == []


def test_autoscaling_can_be_turned_on_for_an_existing_cluster():
    run = run_with_models(
        "existing",
        {SAMPLE_MODEL_NAME: {
            "image": "registry.example.com/ml/ml-model-service@sha256:" + "a" * 64,
            "autoscaling": {"enabled": True, "metricsServer": "install", "maxReplicas": 6},
        }},
    )
    [hpa] = ModelObjects(run).all("HorizontalPodAutoscaler")
    assert hpa["spec"]["maxReplicas"] == 6
    [release] = [r for r in run.by_type("kubernetes:helm.sh/v3:Release") if r.inputs["chart"] == "metrics-server"]
    assert release.inputs["values"]["args"] == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"replicas": 0}, "replicas must be at least 1 (got 0)"),
        ({"autoscaling": Autoscaling(max_replicas=1, target_cpu_utilization_percent=70)},
         "autoscaling.max_replicas must be at least replicas, the autoscaler's lower bound "
         "(got replicas=2, autoscaling.max_replicas=1)"),
        ({"resources": ContainerResources(cpu_request="100m", memory_request="1Gi", memory_limit="256Mi")},
         "resources.memory_limit must be at least resources.memory_request"),
        ({"latency_slo_thresholds_seconds": (0.1, 0.2, 0.3, 0.4, 0.5)}, "takes 1 to 4 thresholds"),
        ({"latency_slo_thresholds_seconds": (-1.0,)}, "positive number of seconds"),
    ],
)
def test_args_a_team_gets_wrong_fail_before_anything_is_declared(change: dict[str, Any], message: str):
    args = ModelDeploymentArgs(
        model_name="churn",
        namespace="ml",
        image="registry.example.com/churn:1.0.0",
        replicas=2,
        resources=ContainerResources(cpu_request="100m", memory_request="128Mi", memory_limit="256Mi"),
        scrape_from_namespace="monitoring",
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        ModelDeployment("churn", dataclasses.replace(args, **change))


# ---------------------------------------------------------------------------------------------------------
# the image's tag and user
# ---------------------------------------------------------------------------------------------------------


def copy_sources(target: Path) -> Path:
    for path in source_files():
        destination = target / path.relative_to(MODEL_SERVICE_DIR)
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(path.read_bytes())
    return target


def test_the_tag_is_a_hash_of_the_sources_only(tmp_path: Path):
    copy = copy_sources(tmp_path / "model-service")
    assert source_hash(copy) == source_hash(), "the checkout location must not change the tag"
    (copy / "model_service" / "__pycache__").mkdir(exist_ok=True)
    (copy / "model_service" / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"cache")
    (copy / ".venv-dev" / "lib").mkdir(parents=True)
    (copy / ".venv-dev" / "lib" / "site.py").write_text("x = 1\n")
    (copy / "ml_model_service.egg-info").mkdir(exist_ok=True)
    (copy / "ml_model_service.egg-info" / "PKG-INFO").write_text("changed")
    assert source_hash(copy) == source_hash(), "caches, virtualenvs and build metadata must not rebuild the image"
    settings = copy / "model_service" / "settings.py"
    settings.write_text(settings.read_text() + "\n# changed\n")
    assert source_hash(copy) != source_hash()
    assert re.fullmatch(r"[0-9a-f]{12}", image_tag(copy))


def test_pods_run_as_the_images_user():
    dockerfile = (MODEL_SERVICE_DIR / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\d+)(?::(\d+))?\s*$", dockerfile, flags=re.MULTILINE)
    assert users, "the Dockerfile must name its user numerically, so that runAsNonRoot can be verified"
    user, group = users[-1]
    assert int(user) == MODEL_SERVICE_UID
    assert int(group or user) == MODEL_SERVICE_UID


def test_the_default_model_name_is_the_one_the_sample_reports():
    """The sample's artifact names its model in its metrics; the workload (and the monitors) use the same name."""
    tree = ast.parse((MODEL_SERVICE_DIR / "model_service" / "train.py").read_text())
    names = {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    assert names["DEFAULT_MODEL_NAME"] == SAMPLE_MODEL_NAME
