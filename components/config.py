"""The stack configuration: typed, validated, with every default in one place.

Each stack file (``stacks/Pulumi.<stack>.yaml``) holds a few structured keys in the project's namespace:
``cluster``, ``monitoring``, ``alerting`` and ``model``. They are validated here, all at once, before any
resource is declared, and a bad file fails with one message that lists every problem with its key path, the
value received and how to fix it. Unknown keys are errors at every level, so that a typo is never silently
ignored. Defaults live in these models only (not in ``Pulumi.yaml``, not in ``__main__.py``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal

import pulumi
from model_service import contract
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.fields import FieldInfo

from components.config_source import RawSetting, read_project_settings
from components.contracts import PROJECT
from components.monitors.rule_model import TimeScale, parse_duration
from components.monitors.runbooks import DEFAULT_RUNBOOK_BASE_URL
from components.monitors.slo_rules import WORKBOOK_WINDOWS, check_objective

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
KUBERNETES_MINOR = r"^1\.[0-9]{2}(\.[0-9]+)?$"


class Section(BaseModel):
    """Base of every config model: camelCase keys as in Pulumi stack files, no unknown keys, immutable."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        validate_default=True,
    )


# ---------------------------------------------------------------------------------------------------------
# cluster: one model per kind, discriminated by `kind`
# ---------------------------------------------------------------------------------------------------------

KIND_NODE_IMAGE = "kindest/node:v1.34.0@sha256:7416a61b42b1662ca6ca89f02028ac133a309a2a30ba309614e8ec94d976dc5a"
"""The node image kind v0.30.0 was released with, pinned by digest as kind's release notes require."""


class KindClusterConfig(Section):
    """A kind cluster on the local Docker engine, created and deleted by the stack."""

    kind: Literal["kind"]
    name: str | None = Field(
        None,
        pattern=DNS_LABEL,
        max_length=40,
        description="kind cluster name; defaults to 'mlobs-<stack>'.",
        examples=["mlobs-local"],
    )
    node_image: str = Field(
        KIND_NODE_IMAGE,
        pattern=r"^[^\s:]+:v1\.[0-9]+\.[0-9]+(@sha256:[0-9a-f]{64})?$",
        description="kindest/node image, pinned by tag (and digest); its tag sets the Kubernetes version.",
        examples=[KIND_NODE_IMAGE],
    )
    workers: int = Field(0, ge=0, le=4, description="Worker nodes beside the control plane.", examples=[1])
    grafana_host_port: int = Field(
        3000,
        ge=1024,
        le=65535,
        description="Host port mapped to Grafana's NodePort, so Grafana is at http://localhost:<port>.",
        examples=[3000],
    )

    @property
    def kubernetes_version(self) -> str:
        """Kubernetes version of the node image (``kindest/node:v1.34.0@…`` → ``1.34.0``)."""
        match = re.search(r":v(1\.[0-9]+\.[0-9]+)", self.node_image)
        assert match is not None  # guaranteed by the field's pattern
        return match.group(1)

    @property
    def default_storage_class(self) -> str | None:
        return "standard"  # kind's local-path provisioner

    @property
    def control_plane_metrics(self) -> bool:
        return True  # the kind config the cluster component writes exposes them


class ExistingClusterConfig(Section):
    """A cluster you already have, reached through a kubeconfig file and context."""

    kind: Literal["existing"]
    kubeconfig: str = Field(
        "~/.kube/config", min_length=1, description="Path of the kubeconfig file.", examples=["~/.kube/config"]
    )
    context: str = Field(min_length=1, description="Context of that kubeconfig to use.", examples=["prod-eu"])
    kubernetes_version: str = Field(
        pattern=KUBERNETES_MINOR,
        description="The cluster's Kubernetes version (`kubectl version`), used to render and validate objects.",
        examples=["1.34"],
    )
    storage_class: str | None = Field(
        None,
        pattern=DNS_LABEL,
        description="StorageClass for Prometheus' volume; unset uses the cluster's default class.",
        examples=["gp3"],
    )
    control_plane_metrics: bool = Field(
        False,
        description="Scrape controller-manager, scheduler and etcd: only if the cluster exposes their metrics.",
        examples=[True],
    )

    @property
    def default_storage_class(self) -> str | None:
        return self.storage_class


class _CloudCluster(Section):
    kubernetes_version: str = Field("1.34", pattern=KUBERNETES_MINOR, examples=["1.34"])
    node_count: int = Field(2, ge=1, le=100, description="Nodes the node pool starts with.", examples=[3])
    min_nodes: int = Field(1, ge=1, le=100, description="Autoscaling lower bound.", examples=[1])
    max_nodes: int = Field(4, ge=1, le=100, description="Autoscaling upper bound.", examples=[6])
    protect: bool = Field(
        True, description="Protect the cluster from `pulumi destroy`; set false for throwaway stacks.",
        examples=[False],
    )

    @model_validator(mode="after")
    def _node_bounds(self) -> _CloudCluster:
        if not self.min_nodes <= self.node_count <= self.max_nodes:
            raise ValueError(
                f"nodeCount must lie between minNodes and maxNodes (got minNodes={self.min_nodes}, "
                f"nodeCount={self.node_count}, maxNodes={self.max_nodes})"
            )
        return self

    @property
    def control_plane_metrics(self) -> bool:
        return False  # managed control planes do not expose controller-manager, scheduler or etcd metrics


class EksClusterConfig(_CloudCluster):
    """Amazon EKS through pulumi-eks: a managed node group, the EBS CSI driver and a gp3 StorageClass."""

    kind: Literal["eks"]
    region: str = Field(pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]$", examples=["eu-west-1"])
    instance_type: str = Field("t3.large", min_length=1, examples=["m6i.large"])
    vpc_id: str | None = Field(
        None, pattern=r"^vpc-[0-9a-f]+$", description="VPC to use; unset uses the account's default VPC.",
        examples=["vpc-0123456789abcdef0"],
    )
    subnet_ids: tuple[str, ...] = Field(
        (), description="Subnets for the cluster and nodes (with vpcId).", examples=[["subnet-0123456789abcdef0"]]
    )

    @property
    def default_storage_class(self) -> str | None:
        return "gp3"  # created by the EKS cluster component


class AksClusterConfig(_CloudCluster):
    """Azure AKS through pulumi-azure-native, in a resource group of its own."""

    kind: Literal["aks"]
    location: str = Field(pattern=r"^[a-z0-9]+$", examples=["westeurope"])
    vm_size: str = Field("Standard_D4s_v5", min_length=1, examples=["Standard_D4s_v5"])
    resource_group_name: str | None = Field(
        None, description="Resource group to create; defaults to 'mlobs-<stack>'.", examples=["mlobs-aks"]
    )

    @property
    def default_storage_class(self) -> str | None:
        return "managed-csi"


class GkeClusterConfig(_CloudCluster):
    """Google GKE Standard through pulumi-gcp, with a separately managed node pool."""

    kind: Literal["gke"]
    project: str | None = Field(
        None,
        pattern=r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$",
        description="GCP project; unset uses the credentials' project (gcloud config, GOOGLE_CLOUD_PROJECT).",
        examples=["my-gcp-project"],
    )
    location: str = Field(
        pattern=r"^[a-z]+-[a-z]+[0-9](-[a-z])?$",
        description="A zone (zonal cluster) or a region (regional cluster: nodeCount is per zone).",
        examples=["europe-west1-b"],
    )
    machine_type: str = Field("e2-standard-4", min_length=1, examples=["e2-standard-4"])
    release_channel: Literal["RAPID", "REGULAR", "STABLE"] = Field("REGULAR", examples=["STABLE"])

    @property
    def default_storage_class(self) -> str | None:
        return "standard-rwo"


ClusterConfig = Annotated[
    KindClusterConfig | ExistingClusterConfig | EksClusterConfig | AksClusterConfig | GkeClusterConfig,
    Field(discriminator="kind"),
]
CLUSTER_MODELS: dict[str, type[Section]] = {
    "kind": KindClusterConfig,
    "existing": ExistingClusterConfig,
    "eks": EksClusterConfig,
    "aks": AksClusterConfig,
    "gke": GkeClusterConfig,
}


# ---------------------------------------------------------------------------------------------------------
# monitoring, alerting, model: the releases and the model the later sections of the program declare
# ---------------------------------------------------------------------------------------------------------


PROMETHEUS_DURATION = r"^(?:[0-9]+(?:ms|s|m|h|d|w|y))+$"


def _check_duration(value: str) -> str:
    parse_duration(value)  # the order of units, which the pattern does not check
    return value


class LatencySloConfig(Section):
    """One latency objective on ``/predict``: a share of requests answered within a threshold."""

    threshold_seconds: float = Field(
        gt=0,
        le=60,
        description="Latency threshold; the sample service makes it a bucket bound of its request-duration "
        "histogram, a team's own service must have it as one.",
        examples=[0.1],
    )
    objective_percent: float = Field(
        gt=0, lt=100, description="Share of requests, in percent, that must be faster than the threshold.",
        examples=[99.0],
    )


class FeatureDriftConfig(Section):
    """Thresholds of one feature (or of the prediction, feature 'prediction') that differ from the defaults."""

    psi_threshold: float | None = Field(
        None, gt=0, description="PSI at or above which this feature counts as drifted.", examples=[0.3]
    )
    js_distance_threshold: float | None = Field(
        None, gt=0, le=1, description="Jensen-Shannon distance (base 2) at or above which it counts as drifted.",
        examples=[0.15],
    )


class DriftConfig(Section):
    """Drift of every input feature and of the prediction, computed by Prometheus over two windows."""

    psi_threshold: float = Field(
        contract.PSI_THRESHOLD, gt=0, description="PSI at or above which a feature counts as drifted.",
        examples=[0.25],
    )
    js_distance_threshold: float = Field(
        contract.JS_DISTANCE_THRESHOLD, gt=0, le=1,
        description="Jensen-Shannon distance (base 2) at or above which a feature counts as drifted.",
        examples=[0.12],
    )
    short_window: str = Field(
        contract.DEFAULT_DRIFT_WINDOW, pattern=PROMETHEUS_DURATION,
        description="Window that says the drift is still there (alerts resolve soon after it ends).",
        examples=["30m"],
    )
    long_window: str = Field(
        "6h", pattern=PROMETHEUS_DURATION, description="Window that says the drift is real and lasting.",
        examples=["12h"],
    )
    min_window_observations: int = Field(
        contract.DRIFT_MIN_WINDOW_OBSERVATIONS, ge=1,
        description="Observations of a feature each window needs before its drift may alert: below it, "
        "sampling noise alone reaches the thresholds.",
        examples=[2000],
    )
    features: dict[Annotated[str, StringConstraints(min_length=1, max_length=128)], FeatureDriftConfig] = Field(
        default_factory=dict, description="Per-feature thresholds, by feature name.",
        examples=[{"f6": {"psiThreshold": 0.3}}],
    )

    _windows_are_durations = field_validator("short_window", "long_window")(_check_duration)

    @model_validator(mode="after")
    def _short_before_long(self) -> DriftConfig:
        if parse_duration(self.short_window) >= parse_duration(self.long_window):
            raise ValueError(
                f"shortWindow must be shorter than longWindow (got shortWindow={self.short_window}, "
                f"longWindow={self.long_window})"
            )
        return self


class AccuracyConfig(Section):
    """Accuracy from ground-truth feedback, against a floor."""

    floor: float = Field(
        0.8, gt=0, lt=1, description="Accuracy below which the model alerts (share of scored feedback that was "
        "right).", examples=[0.85],
    )
    window: str = Field(
        "1h", pattern=PROMETHEUS_DURATION, description="Window accuracy is computed over.", examples=["6h"]
    )
    min_feedback: int = Field(
        200, ge=1, description="Scored feedback items the window needs before accuracy may alert.",
        examples=[500],
    )

    _window_is_a_duration = field_validator("window")(_check_duration)


def _default_latency_slos() -> tuple[LatencySloConfig, ...]:
    """The contract's thresholds (a tight one for most requests, a loose one for nearly all), with objectives."""
    objectives = (95.0, 99.0)
    return tuple(
        LatencySloConfig.model_validate({"thresholdSeconds": threshold, "objectivePercent": objective})
        for threshold, objective in zip(contract.DEFAULT_LATENCY_SLO_THRESHOLDS_SECONDS, objectives, strict=True)
    )


class ModelMonitorsConfig(Section):
    """The model's SLOs, drift and accuracy thresholds, and the monitors' time scale."""

    availability_objective_percent: float = Field(
        99.5, gt=0, lt=100, description="Share of /predict requests, in percent, that must not fail (5xx).",
        examples=[99.9],
    )
    latency_slos: tuple[LatencySloConfig, ...] = Field(
        default_factory=_default_latency_slos, min_length=1, max_length=contract.MAX_LATENCY_SLO_THRESHOLDS,
        description="Latency objectives on /predict; their thresholds become the service's histogram bounds.",
        examples=[[{"thresholdSeconds": 0.1, "objectivePercent": 99.0}]],
    )
    slo_period: str = Field(
        "30d", pattern=r"^[1-9][0-9]*d$", description="Period over which the SLOs' error budgets are spent.",
        examples=["28d"],
    )
    drift: DriftConfig = DriftConfig()
    accuracy: AccuracyConfig = AccuracyConfig()
    memory_near_limit_ratio: float = Field(
        0.9, gt=0, lt=1, description="Share of a container's memory limit its working set may reach before "
        "an alert.", examples=[0.85],
    )
    scrape_interval: str = Field(
        "30s", pattern=PROMETHEUS_DURATION, description="How often Prometheus scrapes the model's pods.",
        examples=["15s"],
    )
    evaluation_interval: str = Field(
        "30s", pattern=PROMETHEUS_DURATION, description="How often Prometheus evaluates the model's rules.",
        examples=["15s"],
    )
    time_scale: float = Field(
        1.0, ge=0.001, le=1.0,
        description="Multiplies every rendered duration (windows, for, scrape and evaluation intervals) without "
        "renaming anything; 0.01 turns an hour into 36 seconds for end-to-end tests and demos.",
        examples=[0.01],
    )
    runbook_base_url: str = Field(
        DEFAULT_RUNBOOK_BASE_URL, pattern=r"^https?://[^\s]+$",
        description="URL of this repository's runbooks/ folder; every alert's runbook_url is built from it.",
        examples=["https://git.example.com/platform/ml-observability/-/blob/main/runbooks"],
    )

    _intervals_are_durations = field_validator("scrape_interval", "evaluation_interval")(_check_duration)

    @model_validator(mode="after")
    def _consistent(self) -> ModelMonitorsConfig:
        thresholds = [slo.threshold_seconds for slo in self.latency_slos]
        if len(set(thresholds)) != len(thresholds):
            raise ValueError(f"latencySlos: each threshold may appear once (got {thresholds})")
        check_objective(self.availability_objective_percent, self.slo_period)
        for slo in self.latency_slos:
            check_objective(slo.objective_percent, self.slo_period)
        longest = max(parse_duration(w.long) for w in WORKBOOK_WINDOWS)
        if parse_duration(self.slo_period) <= longest:
            raise ValueError(f"sloPeriod must be longer than the longest burn-rate window, 3d (got {self.slo_period})")
        scale = TimeScale(self.time_scale)
        for name, value in (("scrapeInterval", self.scrape_interval), ("evaluationInterval", self.evaluation_interval)):
            if scale.milliseconds(value) < 100:
                raise ValueError(
                    f"{name} {value} at timeScale {self.time_scale} is {scale.render(value)}, under 100ms: raise "
                    "the time scale or the interval"
                )
        return self

    @property
    def latency_thresholds_seconds(self) -> tuple[float, ...]:
        """The latency SLO thresholds, ascending: give them to the service
        (``contract.ENV_LATENCY_SLO_THRESHOLDS_SECONDS``) so its histogram has the bounds the rules select."""
        return tuple(sorted(slo.threshold_seconds for slo in self.latency_slos))


# The model's deployment --------------------------------------------------------------------------------------

SAMPLE_MODEL_NAME = "synthetic-classifier"
"""Name the sample image's model reports in its metrics (``model_info{model_name=…}``): the name its training
step gives the artifact. The workload is named after it so that the monitors' selectors and the series agree."""

IMAGE_REFERENCE = (
    r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)
REGISTRY_ADDRESS = r"^[a-z0-9]+(?:[.-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
CPU_QUANTITY = r"^(?:[0-9]+m|[0-9]+(?:\.[0-9]{1,3})?)$"
MEMORY_QUANTITY = r"^[0-9]+(?:Ki|Mi|Gi|Ti|k|M|G|T)?$"
LABEL_KEY = r"^(?:[a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
LABEL_VALUE = r"^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$"
_MEMORY_FACTORS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
                   "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}

METRICS_SERVER_SHIPPED = frozenset({"aks", "gke"})
"""Kinds whose clusters run metrics-server as a managed add-on: a second one would fight over its APIService."""
METRICS_SERVER_MISSING = frozenset({"kind", "eks"})
"""Kinds the stack creates without metrics-server: the stack installs it there, since the HPA needs it."""


def cpu_millicores(quantity: str) -> float:
    """``"250m"`` → 250, ``"1.5"`` → 1500: CPU quantities compared across fields."""
    return float(quantity[:-1]) if quantity.endswith("m") else float(quantity) * 1000


def memory_bytes(quantity: str) -> int:
    """``"512Mi"`` → 536870912: memory quantities compared across fields."""
    match = re.fullmatch(r"([0-9]+)([A-Za-z]*)", quantity)
    assert match is not None  # guaranteed by MEMORY_QUANTITY
    return int(match.group(1)) * _MEMORY_FACTORS[match.group(2)]


class ModelResourcesConfig(Section):
    """Requests and limits of the model's container.

    No CPU limit by default: CFS throttling turns a burst of requests into tail latency, which is what the
    latency SLO measures; the CPU request reserves the capacity instead. The memory limit is always set, so a
    leak ends in a restart (that an alert reports) rather than in a node under memory pressure.
    """

    cpu_request: str = Field(
        "200m", pattern=CPU_QUANTITY, description="CPU the scheduler reserves, and the HPA's 100%.",
        examples=["500m"],
    )
    memory_request: str = Field(
        "256Mi", pattern=MEMORY_QUANTITY, description="Memory the scheduler reserves.", examples=["512Mi"]
    )
    memory_limit: str = Field(
        "512Mi", pattern=MEMORY_QUANTITY, description="Memory above which the container is OOM-killed.",
        examples=["1Gi"],
    )
    cpu_limit: str | None = Field(
        None, pattern=CPU_QUANTITY,
        description="CPU limit; unset (the default) because throttling hurts latency.", examples=["1"],
    )

    @model_validator(mode="after")
    def _limits_cover_requests(self) -> ModelResourcesConfig:
        if memory_bytes(self.memory_limit) < memory_bytes(self.memory_request):
            raise ValueError(
                f"memoryLimit must be at least memoryRequest (got memoryRequest={self.memory_request}, "
                f"memoryLimit={self.memory_limit})"
            )
        if self.cpu_limit is not None and cpu_millicores(self.cpu_limit) < cpu_millicores(self.cpu_request):
            raise ValueError(
                f"cpuLimit must be at least cpuRequest (got cpuRequest={self.cpu_request}, cpuLimit={self.cpu_limit})"
            )
        return self


class ModelRegistryConfig(Section):
    """A registry the stack pushes the sample's image to, for clusters that have no registry of the stack's."""

    address: str = Field(
        pattern=REGISTRY_ADDRESS,
        description="Registry host and repository path the image is pushed under (host[:port]/path).",
        examples=["registry.example.com/ml-team"],
    )
    username: str | None = Field(
        None, min_length=1, description="User that pushes (and, through a pull secret, pulls) the image.",
        examples=["robot$ml-team"],
    )
    password: SecretStr | None = Field(
        None, description="That user's password or token; set it with --secret.", examples=["<token>"],
    )

    @field_validator("password")
    @classmethod
    def _password_is_encrypted(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        secret_sections = (info.context or {}).get("secret_sections")
        if value is not None and secret_sections is not None and "model" not in secret_sections:
            raise ValueError(
                "the registry password is stored in plain text; remove it from the stack file and set it "
                "encrypted: pulumi config set --secret --path 'model.registry.password' <password>"
            )
        return value

    @model_validator(mode="after")
    def _credentials_in_pairs(self) -> ModelRegistryConfig:
        if (self.username is None) != (self.password is None):
            raise ValueError(
                "username and password go together (got only "
                f"{'username' if self.username is not None else 'password'}): set both, or neither to push with "
                "the local Docker credentials and pull with the nodes' own"
            )
        return self

    @property
    def host(self) -> str:
        """The registry's host (and port), as Docker credentials are keyed."""
        return self.address.split("/", 1)[0]


class ModelBuildConfig(Section):
    """How the sample's image is built when no ``model.image`` is given."""

    platform: Literal["linux/amd64", "linux/arm64"] = Field(
        "linux/amd64",
        description="Platform of images pushed to a registry (the nodes' architecture); kind builds for the "
        "local engine.",
        examples=["linux/arm64"],
    )


class ModelAutoscalingConfig(Section):
    """The HorizontalPodAutoscaler on CPU, and the metrics-server it needs.

    kind and EKS clusters come without metrics-server: the stack installs it there (its Helm chart). AKS and
    GKE run their own. On an ``existing`` cluster the stack cannot know, so autoscaling is off unless turned
    on, and metrics-server is then assumed present unless ``metricsServer: install``.
    """

    enabled: bool | None = Field(
        None,
        description="Scale on CPU between model.replicas and maxReplicas; unset: on for kind, eks, aks and gke, "
        "off for existing.",
        examples=[True],
    )
    max_replicas: int = Field(4, ge=1, le=50, description="Upper bound of the autoscaler.", examples=[6])
    target_cpu_utilization_percent: int = Field(
        70, ge=10, le=400, description="Average CPU use, in percent of the CPU request, the HPA aims at.",
        examples=[60],
    )
    metrics_server: Literal["install", "present"] | None = Field(
        None,
        description="Whether the stack installs metrics-server; unset: installed on kind and eks, present "
        "elsewhere.",
        examples=["install"],
    )

    def enabled_on(self, kind: str) -> bool:
        """Whether the HPA is declared on a cluster of this kind."""
        return self.enabled if self.enabled is not None else kind != "existing"

    def installs_metrics_server_on(self, kind: str) -> bool:
        """Whether the stack installs metrics-server on a cluster of this kind."""
        if not self.enabled_on(kind):
            return False
        if self.metrics_server is not None:
            return self.metrics_server == "install"
        return kind in METRICS_SERVER_MISSING


class ModelNetworkPolicyConfig(Section):
    """Who may reach the model's port: Prometheus always, and the clients named here."""

    enabled: bool = Field(
        True, description="Declare the NetworkPolicy (the CNI must enforce it to have an effect).",
        examples=[False],
    )
    client_namespaces: tuple[Annotated[str, StringConstraints(pattern=DNS_LABEL, max_length=63)], ...] = Field(
        (), description="Namespaces whose pods may call the model's API.", examples=[["checkout", "batch-scoring"]],
    )
    client_pod_labels: dict[str, str] = Field(
        default_factory=dict,
        description="Labels of pods, in any namespace, that may call the model's API.",
        examples=[{"ml-observability/model-client": "true"}],
    )

    @field_validator("client_pod_labels")
    @classmethod
    def _valid_labels(cls, value: dict[str, str]) -> dict[str, str]:
        for key, label in value.items():
            if not re.match(LABEL_KEY, key):
                raise ValueError(f"{key!r} is not a Kubernetes label key ([prefix/]name, name up to 63 characters)")
            if not re.match(LABEL_VALUE, label):
                raise ValueError(f"{label!r} (of {key!r}) is not a Kubernetes label value (up to 63 characters)")
        return value


class ModelFaultsConfig(Section):
    """Fault injection for demos and end-to-end tests of the alerts; off by default."""

    error_ratio: float = Field(
        0.0, ge=0.0, le=1.0, description="Share of /predict requests answered 500.", examples=[0.05]
    )
    extra_latency_seconds: float = Field(
        0.0, ge=0.0, le=60.0, description="Delay added to the /predict requests chosen by latencyRatio.",
        examples=[0.3],
    )
    latency_ratio: float = Field(
        1.0, ge=0.0, le=1.0, description="Share of /predict requests that get the extra latency.", examples=[0.2]
    )

    @property
    def enabled(self) -> bool:
        """Whether any fault is configured (the service then also exports its fault counter)."""
        return self.error_ratio > 0 or (self.extra_latency_seconds > 0 and self.latency_ratio > 0)


class ModelConfig(Section):
    """The sample model's deployment and its monitors."""

    name: str = Field(
        SAMPLE_MODEL_NAME, pattern=DNS_LABEL, max_length=50,
        description="Model name: names the workload and must equal the model_name the image's metrics carry.",
        examples=[SAMPLE_MODEL_NAME],
    )
    namespace: str = Field(
        "models", pattern=DNS_LABEL, max_length=63, description="Namespace the stack creates for the model.",
        examples=["ml-serving"],
    )
    replicas: int = Field(
        2, ge=1, le=50, description="Pods when autoscaling is off; the autoscaler's lower bound when on.",
        examples=[3],
    )
    image: str | None = Field(
        None, pattern=IMAGE_REFERENCE,
        description="Image to deploy as is (pinned by tag or digest), which skips the build; unset: the stack "
        "builds model-service/.",
        examples=["registry.example.com/ml-team/ml-model-service:1.0.0"],
    )
    registry: ModelRegistryConfig | None = Field(
        None,
        description="Registry to push the built image to; only for existing clusters (the others get a registry "
        "of the stack's).",
        examples=[{"address": "registry.example.com/ml-team"}],
    )
    build: ModelBuildConfig = ModelBuildConfig()
    resources: ModelResourcesConfig = ModelResourcesConfig()
    autoscaling: ModelAutoscalingConfig = ModelAutoscalingConfig()
    network_policy: ModelNetworkPolicyConfig = ModelNetworkPolicyConfig()
    faults: ModelFaultsConfig = ModelFaultsConfig()
    log_level: Literal["critical", "error", "warning", "info", "debug"] = Field(
        "info", description="The service's log level.", examples=["debug"]
    )
    monitors: ModelMonitorsConfig = ModelMonitorsConfig()

    @field_validator("image")
    @classmethod
    def _image_is_pinned(cls, value: str | None) -> str | None:
        if value is None:
            return value
        match = re.match(IMAGE_REFERENCE, value)
        assert match is not None  # the pattern ran first
        if match.group("digest") is None and match.group("tag") in (None, "latest"):
            raise ValueError(
                f"image {value!r} is not pinned: give it a version tag other than 'latest' or a digest "
                "(for example registry.example.com/ml-team/ml-model-service:1.0.0)"
            )
        return value

    @model_validator(mode="after")
    def _one_image_source(self) -> ModelConfig:
        if self.image is not None and self.registry is not None:
            raise ValueError(
                "image and registry exclude each other (got both): image deploys a ready image, registry receives "
                "the one the stack builds; remove one of them"
            )
        return self

    def problems_on(self, kind: str) -> list[str]:
        """What this model section cannot do on a cluster of ``kind`` (empty when it fits)."""
        problems = []
        if kind == "existing" and self.image is None and self.registry is None:
            problems.append(
                "an existing cluster has no registry of this stack, and neither model.image nor model.registry "
                "is set: set the image to deploy (pulumi config set --path 'model.image' "
                "registry.example.com/ml-team/ml-model-service:1.0.0) or a registry to push the built image to "
                "(pulumi config set --path 'model.registry.address' registry.example.com/ml-team, with "
                "model.registry.username and, with --secret, model.registry.password)"
            )
        if kind != "existing" and self.registry is not None:
            problems.append(
                f"model.registry is only for existing clusters: a {kind} stack pushes to a registry it creates "
                "(or deploys model.image); remove model.registry"
            )
        if kind in METRICS_SERVER_SHIPPED and self.autoscaling.metrics_server == "install":
            problems.append(
                f"model.autoscaling.metricsServer cannot be 'install' on {kind}, whose clusters run metrics-server "
                "already; remove the setting"
            )
        if self.autoscaling.enabled_on(kind) and self.autoscaling.max_replicas < self.replicas:
            problems.append(
                "model.autoscaling.maxReplicas must be at least model.replicas, the autoscaler's lower bound "
                f"(got replicas={self.replicas}, maxReplicas={self.autoscaling.max_replicas})"
            )
        return problems


# The monitoring stack (kube-prometheus-stack) ----------------------------------------------------------------

KUBE_PROMETHEUS_STACK_VERSION = "88.5.3"
"""The chart version the project is tested against: the tests read this version's values, templates and CRDs."""
PROMETHEUS_COMMUNITY_REPOSITORY = "https://prometheus-community.github.io/helm-charts"
PROMETHEUS_DURATION = r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
"""A duration as the Prometheus CRD validates ``spec.retention`` and ``spec.scrapeInterval``."""
PROMETHEUS_SIZE = r"^(0|([0-9]*[.])?[0-9]+((K|M|G|T|E|P)i?)?B)$"
"""A size as the Prometheus CRD validates ``spec.retentionSize``."""
ALERTMANAGER_DURATION = r"^([0-9]+(ms|s|m|h|d|w|y))+$"
"""A duration as Alertmanager's configuration reads ``group_wait`` and the like."""
SEMVER = r"^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$"
_PROMETHEUS_SIZE_UNITS = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6}


def prometheus_size_bytes(size: str) -> float:
    """``"8GiB"`` → 8589934592: Prometheus reads KB and KiB alike, as powers of 1024 (``units.ParseBase2Bytes``)."""
    if size == "0":
        return 0.0
    match = re.fullmatch(r"([0-9]*\.?[0-9]+)([KMGTPE]?)i?B", size)
    assert match is not None  # guaranteed by PROMETHEUS_SIZE
    return float(match.group(1)) * float(1024 ** _PROMETHEUS_SIZE_UNITS[match.group(2)])


class ChartSourceConfig(Section):
    """Where Helm fetches kube-prometheus-stack: its public repository, or a copy for clusters without internet."""

    version: str = Field(
        KUBE_PROMETHEUS_STACK_VERSION,
        pattern=SEMVER,
        description="Chart version, pinned; upgrading it needs the CRD steps of the README ('Upgrading the chart').",
        examples=[KUBE_PROMETHEUS_STACK_VERSION],
    )
    repository: str = Field(
        PROMETHEUS_COMMUNITY_REPOSITORY,
        pattern=r"^https?://[^\s]+$",
        description="Helm repository (an index.yaml URL base) to fetch the chart from, e.g. a mirror.",
        examples=["https://charts.example.com/prometheus-community"],
    )
    path: str | None = Field(
        None,
        min_length=1,
        description="Local folder holding the unpacked chart with its subcharts (relative to the project); its "
        "Chart.yaml must state `version`.",
        examples=["vendor/kube-prometheus-stack"],
    )
    oci: str | None = Field(
        None,
        pattern=r"^oci://[^\s]+/kube-prometheus-stack$",
        description="OCI reference of the chart in a registry mirror.",
        examples=["oci://registry.example.com/charts/kube-prometheus-stack"],
    )

    @model_validator(mode="after")
    def _one_source(self) -> ChartSourceConfig:
        given = [key for key in ("repository", "path", "oci")
                 if key in self.model_fields_set and getattr(self, key) is not None]
        if len(given) > 1:
            raise ValueError(
                f"repository, path and oci are alternative chart sources (got {', '.join(given)}); keep one of them"
            )
        return self


class ContainerResourcesConfig(Section):
    """Requests and a memory limit for one container of the chart.

    No CPU limit: CFS throttling slows scrapes and rule evaluation and fires ``CPUThrottlingHigh``; the request
    reserves the CPU instead. The memory limit is always set, so that a runaway Prometheus restarts instead of
    pressing the node. A setting left out keeps the value of the default profile.
    """

    cpu_request: str = Field(pattern=CPU_QUANTITY, description="CPU the scheduler reserves.", examples=["100m"])
    memory_request: str = Field(
        pattern=MEMORY_QUANTITY, description="Memory the scheduler reserves.", examples=["256Mi"]
    )
    memory_limit: str = Field(
        pattern=MEMORY_QUANTITY, description="Memory above which the container is OOM-killed.", examples=["1Gi"]
    )

    @model_validator(mode="after")
    def _limit_covers_request(self) -> ContainerResourcesConfig:
        if memory_bytes(self.memory_limit) < memory_bytes(self.memory_request):
            raise ValueError(
                f"memoryLimit must be at least memoryRequest (got memoryRequest={self.memory_request}, "
                f"memoryLimit={self.memory_limit})"
            )
        return self

    def as_values(self) -> dict[str, dict[str, str]]:
        """The ``resources`` block of a container, as the chart (and Kubernetes) take it."""
        return {
            "requests": {"cpu": self.cpu_request, "memory": self.memory_request},
            "limits": {"memory": self.memory_limit},
        }


def _resources(cpu: str, memory: str, limit: str) -> ContainerResourcesConfig:
    return ContainerResourcesConfig.model_validate({"cpuRequest": cpu, "memoryRequest": memory, "memoryLimit": limit})


class ChartResourcesConfig(Section):
    """Resources of every container the chart runs; the chart sets none.

    The defaults are a small profile that fits a 2-CPU kind node beside its control plane (about 0.4 CPU and
    1 GiB requested in all); raise Prometheus' first on a real cluster, from ``container_memory_working_set_bytes``.
    """

    prometheus: ContainerResourcesConfig = Field(
        _resources("200m", "512Mi", "1Gi"), description="Prometheus server.", examples=[{"memoryLimit": "4Gi"}]
    )
    alertmanager: ContainerResourcesConfig = Field(
        _resources("10m", "32Mi", "128Mi"), description="Alertmanager.", examples=[{"memoryLimit": "256Mi"}]
    )
    operator: ContainerResourcesConfig = Field(
        _resources("50m", "64Mi", "200Mi"), description="Prometheus operator.", examples=[{"memoryLimit": "400Mi"}]
    )
    config_reloader: ContainerResourcesConfig = Field(
        _resources("10m", "25Mi", "50Mi"),
        description="config-reloader sidecars of Prometheus and Alertmanager.",
        examples=[{"memoryLimit": "100Mi"}],
    )
    admission_jobs: ContainerResourcesConfig = Field(
        _resources("10m", "32Mi", "64Mi"),
        description="The admission webhook's certificate Jobs (run at install and upgrade).",
        examples=[{"memoryLimit": "128Mi"}],
    )
    grafana: ContainerResourcesConfig = Field(
        _resources("50m", "128Mi", "256Mi"), description="Grafana.", examples=[{"memoryLimit": "512Mi"}]
    )
    grafana_sidecars: ContainerResourcesConfig = Field(
        _resources("10m", "64Mi", "128Mi"),
        description="Grafana's dashboard and datasource sidecars.",
        examples=[{"memoryLimit": "256Mi"}],
    )
    kube_state_metrics: ContainerResourcesConfig = Field(
        _resources("10m", "64Mi", "128Mi"), description="kube-state-metrics.", examples=[{"memoryLimit": "256Mi"}]
    )
    node_exporter: ContainerResourcesConfig = Field(
        _resources("20m", "32Mi", "64Mi"), description="node-exporter, on every node.", examples=[{"cpuRequest": "50m"}]
    )

    @model_validator(mode="before")
    @classmethod
    def _fill_from_profile(cls, data: Any) -> Any:
        """A component given in part keeps the profile's other settings, not the first missing-field error."""
        if not isinstance(data, dict):
            return data
        filled = dict(data)
        for name, info in cls.model_fields.items():
            key = info.alias or name
            if isinstance(filled.get(key), dict) and isinstance(info.default, ContainerResourcesConfig):
                filled[key] = info.default.model_dump(by_alias=True) | filled[key]
        return filled


class PrometheusConfig(Section):
    """The Prometheus server: how long it keeps data, how often it scrapes, how many replicas."""

    retention: str = Field(
        "10d", pattern=PROMETHEUS_DURATION, min_length=1, description="How long samples are kept.", examples=["30d"]
    )
    retention_size: str = Field(
        "8GiB",
        pattern=PROMETHEUS_SIZE,
        description="Most disk the samples may use; keep it below 90% of storageSize (WAL and compaction need "
        "the rest).",
        examples=["40GiB"],
    )
    scrape_interval: str = Field(
        "30s", pattern=PROMETHEUS_DURATION, min_length=1, description="Default interval between scrapes.",
        examples=["60s"],
    )
    evaluation_interval: str = Field(
        "30s", pattern=PROMETHEUS_DURATION, min_length=1, description="Interval between rule evaluations.",
        examples=["60s"],
    )
    replicas: int = Field(1, ge=1, le=5, description="Prometheus replicas (each scrapes everything).", examples=[2])
    storage_size: str = Field(
        "10Gi", pattern=MEMORY_QUANTITY, description="Size of each replica's volume.", examples=["50Gi"]
    )


class AlertmanagerConfig(Section):
    """The Alertmanager cluster; its routing and receivers are the `alerting` section."""

    replicas: int = Field(
        1, ge=1, le=5, description="Alertmanager replicas (they gossip to deduplicate notifications).", examples=[3]
    )
    storage_size: str = Field(
        "1Gi", pattern=MEMORY_QUANTITY, description="Volume for silences and the notification log.",
        examples=["2Gi"],
    )


class MonitoringStorageConfig(Section):
    """Volumes of Prometheus and Alertmanager."""

    storage_class: str | None = Field(
        None,
        pattern=DNS_LABEL,
        description="StorageClass of the volumes; unset: the cluster's (kind standard, EKS gp3, AKS managed-csi, "
        "GKE standard-rwo, existing: cluster.storageClass or the default class).",
        examples=["premium-rwo"],
    )
    empty_dir: bool = Field(
        False,
        description="Keep data in emptyDir volumes, lost with the pod: only for the local (kind) stack.",
        examples=[True],
    )


class GrafanaIngressConfig(Section):
    """An Ingress in front of Grafana, for clusters with an ingress controller; off by default."""

    enabled: bool = Field(False, description="Declare the Ingress.", examples=[True])
    host: str | None = Field(
        None,
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)+[a-z]{2,63}$",
        description="Host name Grafana is served at (needed when enabled).",
        examples=["grafana.example.com"],
    )
    class_name: str | None = Field(
        None, pattern=DNS_LABEL, description="IngressClass; unset: the cluster's default class.", examples=["nginx"]
    )
    tls_secret_name: str | None = Field(
        None,
        pattern=DNS_LABEL,
        description="Secret in the monitoring namespace with the certificate (e.g. from cert-manager); unset: "
        "plain HTTP.",
        examples=["grafana-tls"],
    )
    annotations: dict[str, str] = Field(
        default_factory=dict,
        description="Annotations of the Ingress (controller or cert-manager settings).",
        examples=[{"cert-manager.io/cluster-issuer": "letsencrypt"}],
    )

    @model_validator(mode="after")
    def _host_when_enabled(self) -> GrafanaIngressConfig:
        if self.enabled and self.host is None:
            raise ValueError("enabled needs host (got no host): set the host name Grafana is served at")
        return self

    @property
    def url(self) -> str | None:
        """Grafana's external URL through the Ingress, or ``None`` without one."""
        if not self.enabled or self.host is None:
            return None
        return f"{'https' if self.tls_secret_name else 'http'}://{self.host}"


class GrafanaConfig(Section):
    """Grafana: its admin user and how it is reached from outside the cluster."""

    admin_user: str = Field(
        "admin", pattern=r"^[A-Za-z0-9._@-]{1,64}$", description="Name of Grafana's admin user.",
        examples=["platform-admin"],
    )
    ingress: GrafanaIngressConfig = GrafanaIngressConfig()


class NodeExporterConfig(Section):
    """node-exporter, the DaemonSet that reports each node's CPU, memory, disks and network."""

    host_root_fs_mount: bool = Field(
        True,
        description="Mount the node's / with HostToContainer propagation for filesystem metrics; set false where "
        "the pod fails with 'path / is mounted on / but it is not a shared or slave mount' (Docker Desktop).",
        examples=[False],
    )


class MonitoringConfig(Section):
    """The kube-prometheus-stack release: Prometheus, Alertmanager, Grafana and the exporters."""

    chart: ChartSourceConfig = ChartSourceConfig()
    namespace: str = Field(
        "monitoring", pattern=DNS_LABEL, max_length=63, description="Namespace the stack creates for the release.",
        examples=["observability"],
    )
    release_name: str = Field(
        "kube-prometheus-stack",
        pattern=DNS_LABEL,
        max_length=26,
        description="Helm release name: the `release` label every monitor and rule must carry, and the prefix of "
        "the chart's object names (at most 26 characters, the chart's own limit).",
        examples=["kps"],
    )
    timeout_seconds: int = Field(
        900, ge=60, le=3600, description="How long Helm waits for every workload to be ready.", examples=[1200]
    )
    prometheus: PrometheusConfig = PrometheusConfig()
    alertmanager: AlertmanagerConfig = AlertmanagerConfig()
    storage: MonitoringStorageConfig = MonitoringStorageConfig()
    resources: ChartResourcesConfig = ChartResourcesConfig()
    grafana: GrafanaConfig = GrafanaConfig()
    node_exporter: NodeExporterConfig = NodeExporterConfig()
    extra_values: dict[str, Any] = Field(
        default_factory=dict,
        description="Chart values deep-merged over everything the stack sets, last: the escape hatch for what "
        "has no setting. Maps merge key by key, anything else replaces.",
        examples=[{"prometheus": {"prometheusSpec": {"externalLabels": {"cluster": "prod-eu"}}}}],
    )

    @model_validator(mode="after")
    def _retention_fits_the_volume(self) -> MonitoringConfig:
        if self.storage.empty_dir:
            return self
        retained = prometheus_size_bytes(self.prometheus.retention_size)
        volume = memory_bytes(self.prometheus.storage_size)
        if retained == 0 or retained > 0.9 * volume:
            raise ValueError(
                "prometheus.retentionSize must be set and at most 90% of prometheus.storageSize, or the volume "
                "fills up and Prometheus stops (got retentionSize="
                f"{self.prometheus.retention_size}, storageSize={self.prometheus.storage_size})"
            )
        return self

    def problems_on(self, kind: str) -> list[str]:
        """What this monitoring section cannot do on a cluster of ``kind`` (empty when it fits)."""
        problems = []
        if self.storage.empty_dir and kind != "kind":
            problems.append(
                "storage.emptyDir loses Prometheus' data with every pod restart, which only the local kind stack "
                f"accepts (got emptyDir on a {kind} cluster); remove it: pulumi config rm --path "
                "'monitoring.storage.emptyDir'"
            )
        return problems


# Alerting: Alertmanager's receivers and routing ---------------------------------------------------------------


def _encrypted(value: SecretStr | None, info: ValidationInfo, path: str) -> SecretStr | None:
    """Reject a credential written in plain text into the stack file (and so into git)."""
    secret_sections = (info.context or {}).get("secret_sections")
    if value is not None and secret_sections is not None and "alerting" not in secret_sections:
        raise ValueError(
            "this credential is stored in plain text; remove it from the stack file and set it encrypted: "
            f"pulumi config set --secret --path 'alerting.{path}' <value>"
        )
    return value


def _url(value: SecretStr | None) -> SecretStr | None:
    """Alertmanager reads a ``*_file`` URL only when it notifies: check its form now rather than at 3 a.m."""
    if value is not None and not re.fullmatch(r"https?://[^\s/]+(/[^\s]*)?", value.get_secret_value().strip()):
        raise ValueError("must be an http(s) URL")
    return value


class PagerDutyReceiverConfig(Section):
    """PagerDuty, through the Events API v2: where `critical` alerts page."""

    routing_key: SecretStr | None = Field(
        None,
        min_length=1,
        description="Integration key of a PagerDuty service's Events API v2 integration; set it with --secret.",
        examples=["<integration key>"],
    )

    @field_validator("routing_key")
    @classmethod
    def _routing_key_encrypted(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        return _encrypted(value, info, "pagerduty.routingKey")

    @property
    def configured(self) -> bool:
        return self.routing_key is not None


class SlackReceiverConfig(Section):
    """Slack, through an incoming webhook: where `warning` alerts are posted."""

    webhook_url: SecretStr | None = Field(
        None,
        description="Incoming-webhook URL of a Slack app; set it with --secret.",
        examples=["https://hooks.slack.com/services/<id>"],
    )
    channel: str | None = Field(
        None,
        pattern=r"^[#@]?[a-z0-9][a-z0-9._-]{0,79}$",
        description="Channel to post to; unset: the webhook's own channel.",
        examples=["#ml-alerts"],
    )

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        return _encrypted(_url(value), info, "slack.webhookUrl")

    @model_validator(mode="after")
    def _channel_needs_webhook(self) -> SlackReceiverConfig:
        if self.channel is not None and self.webhook_url is None:
            raise ValueError(f"channel needs webhookUrl (got channel={self.channel!r} and no webhookUrl)")
        return self

    @property
    def configured(self) -> bool:
        return self.webhook_url is not None


class WebhookReceiverConfig(Section):
    """A generic webhook (Alertmanager's JSON payload): where `warning` alerts are sent, e.g. to a ticketing bridge."""

    url: SecretStr | None = Field(
        None,
        description="URL the alerts are POSTed to; may carry a token, so set it with --secret.",
        examples=["https://tickets.example.com/alertmanager"],
    )

    @field_validator("url")
    @classmethod
    def _webhook_url(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        return _encrypted(_url(value), info, "webhook.url")

    @property
    def configured(self) -> bool:
        return self.url is not None


class AlertingConfig(Section):
    """Alertmanager's receivers and routing: `critical` pages, `warning` posts, `info` is never notified.

    Receivers without credentials are left out; with none at all every alert goes to the null receiver, which
    is the safe default for a new stack. Credentials are secret: set them with ``pulumi config set --secret
    --path 'alerting.<receiver>.<key>'``, which encrypts them in the stack file.
    """

    pagerduty: PagerDutyReceiverConfig = PagerDutyReceiverConfig()
    slack: SlackReceiverConfig = SlackReceiverConfig()
    webhook: WebhookReceiverConfig = WebhookReceiverConfig()
    group_by: tuple[Annotated[str, StringConstraints(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")], ...] = Field(
        ("namespace", "alertname"),
        min_length=1,
        description="Labels that put alerts into one notification.",
        examples=[["namespace", "alertname", "model"]],
    )
    group_wait: str = Field(
        "30s", pattern=ALERTMANAGER_DURATION, description="Wait before the first notification of a new group.",
        examples=["1m"],
    )
    group_interval: str = Field(
        "5m", pattern=ALERTMANAGER_DURATION, description="Wait before notifying about alerts added to a group.",
        examples=["10m"],
    )
    repeat_interval: str = Field(
        "4h", pattern=ALERTMANAGER_DURATION, description="Wait before repeating a notification that still fires.",
        examples=["12h"],
    )
    resolve_timeout: str = Field(
        "5m", pattern=ALERTMANAGER_DURATION,
        description="When an alert without an end time is considered resolved.", examples=["10m"],
    )
    inhibit_equal: tuple[Annotated[str, StringConstraints(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")], ...] = Field(
        ("alertname", "namespace"),
        description="Labels a `critical` alert and a `warning` alert must share for the first to mute the second; "
        "alertname and namespace at least.",
        examples=[["alertname", "namespace", "model"]],
    )

    @field_validator("inhibit_equal")
    @classmethod
    def _same_alert(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        missing = [label for label in ("alertname", "namespace") if label not in value]
        if missing:
            raise ValueError(
                f"must include {' and '.join(missing)}, or a critical alert would mute warnings of other alerts "
                "or other namespaces"
            )
        return value


class StackConfig(Section):
    """Everything a stack file says about the environment."""

    cluster: ClusterConfig
    monitoring: MonitoringConfig = MonitoringConfig()
    alerting: AlertingConfig = AlertingConfig()
    model: ModelConfig = ModelConfig()

    @field_validator("monitoring")
    @classmethod
    def _monitoring_fits_the_cluster(cls, monitoring: MonitoringConfig, info: ValidationInfo) -> MonitoringConfig:
        """Per-kind rules of the monitoring section, checked before any resource is declared."""
        cluster = info.data.get("cluster")  # absent when the cluster section itself is invalid
        if cluster is not None and (problems := monitoring.problems_on(cluster.kind)):
            raise ValueError("; ".join(problems))
        return monitoring

    @field_validator("model")
    @classmethod
    def _model_fits_the_cluster(cls, model: ModelConfig, info: ValidationInfo) -> ModelConfig:
        """Per-kind rules of the model section, checked before any resource is declared."""
        cluster = info.data.get("cluster")  # absent when the cluster section itself is invalid
        if cluster is not None and (problems := model.problems_on(cluster.kind)):
            raise ValueError("; ".join(problems))
        return model


SECTIONS = tuple(StackConfig.model_fields)


# ---------------------------------------------------------------------------------------------------------
# loading and error reporting
# ---------------------------------------------------------------------------------------------------------


class ConfigError(pulumi.RunError):
    """Raised once, with every problem of a stack file, before any resource is declared.

    A ``RunError`` so that the CLI prints the message alone, without a Python traceback.
    """

    def __init__(self, stack_file: str, problems: list[str]) -> None:
        self.stack_file = stack_file
        self.problems = problems
        noun = "setting" if len(problems) == 1 else "settings"
        super().__init__(f"{stack_file}: {len(problems)} invalid {noun}\n" + "\n".join(f"  {p}" for p in problems))


def load_stack_config(project: str | None = None, stack: str | None = None) -> StackConfig:
    """Read and validate the current stack's configuration, or raise one ``ConfigError`` listing every problem."""
    project = project or pulumi.get_project()
    stack = stack or pulumi.get_stack()
    return validate_settings(read_project_settings(project), project=project, stack=stack)


def validate_settings(settings: Mapping[str, RawSetting], *, project: str = PROJECT, stack: str) -> StackConfig:
    """Validate the raw settings of one stack; pure, so that every rule can be tested without an engine."""
    stack_file = f"stacks/Pulumi.{stack}.yaml"
    problems = [
        _problem(project, key, "unknown setting", setting.value, setting.secret,
                 f"remove it or correct its name; the settings are {', '.join(SECTIONS)}")
        for key, setting in sorted(settings.items())
        if key not in SECTIONS
    ]
    document = {key: setting.value for key, setting in settings.items() if key in SECTIONS}
    secret_sections = {key for key, setting in settings.items() if setting.secret}
    try:
        # Validators that must know which sections hold encrypted values (credentials) read it from the context.
        config = StackConfig.model_validate(document, context={"secret_sections": frozenset(secret_sections)})
    except ValidationError as error:
        problems += [_describe(project, e, secret_sections) for e in error.errors()]
        raise ConfigError(stack_file, problems) from None
    if problems:
        raise ConfigError(stack_file, problems)
    return config


def _describe(project: str, error: Any, secret_sections: set[str]) -> str:
    """Turn one pydantic error into ``<project>:<key path>: <problem> (got <value>); <how to fix>``."""
    location = list(error["loc"])
    branch = None
    if location[:1] == ["cluster"] and len(location) > 1 and location[1] in CLUSTER_MODELS:
        branch = location.pop(1)  # pydantic puts the union branch into the location; the stack file has none
    path = _key_path(location)
    kind = error["type"]
    value = error.get("input")
    secret = bool(location) and (location[0] in secret_sections or isinstance(value, SecretStr))
    info = _field_for(location, branch)

    if kind == "missing":
        return _problem(project, path, "required setting is missing", None, secret,
                        f"set it: pulumi config set --path '{path}' <value>{_example(info)}", show_value=False)
    if kind == "extra_forbidden":
        return _problem(project, path, "unknown setting", value, secret,
                        f"remove it or correct its name; allowed here: {_allowed_keys(location[:-1], branch)}")
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tag = error.get("ctx", {}).get("tag")
        problem = "unknown cluster kind" if kind == "union_tag_invalid" else "cluster kind is missing"
        return _problem(project, f"{path}.kind", problem, tag, secret,
                        f"set cluster.kind to one of {', '.join(CLUSTER_MODELS)}",
                        show_value=kind == "union_tag_invalid")
    message = error["msg"].removeprefix("Value error, ")
    if kind == "value_error":  # a check across fields: its message already names the fields and values
        return f"{project}:{path}: {message}; correct those settings in {path}"
    hint = f"{info.description} " if info is not None and info.description else ""
    return _problem(project, path, message, value, secret,
                    f"{hint}Set a valid value: pulumi config set --path '{path}' <value>{_example(info)}")


def _problem(project: str, path: str, problem: str, value: Any, secret: bool, fix: str,
             *, show_value: bool = True) -> str:
    got = ""
    if show_value:
        got = " (got [secret])" if secret else f" (got {value!r})"
    return f"{project}:{path}: {problem}{got}; {fix}"


def _key_path(location: Iterable[Any]) -> str:
    """``['cluster', 'subnetIds', 0]`` → ``cluster.subnetIds[0]``, the form ``pulumi config set --path`` takes."""
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else f"{'.' if path else ''}{part}"
    return path


def _model_at(location: list[Any], branch: str | None) -> type[BaseModel] | None:
    """The config model a key path points into, following the cluster's discriminator."""
    model: type[BaseModel] | None = StackConfig
    for part in location:
        if isinstance(part, int):
            continue
        if model is None:
            return None
        info = _fields(model).get(part)
        if info is None:
            return None
        if part == "cluster" and model is StackConfig:
            model = CLUSTER_MODELS.get(branch or "")
        else:
            annotation = info.annotation
            model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return model


def _field_for(location: list[Any], branch: str | None) -> FieldInfo | None:
    if not location or isinstance(location[-1], int):
        return None
    parent = _model_at(location[:-1], branch)
    return _fields(parent).get(location[-1]) if parent is not None else None


def _fields(model: type[BaseModel]) -> dict[str, FieldInfo]:
    """A model's fields by the key a stack file uses (the camelCase alias)."""
    return {info.alias or name: info for name, info in model.model_fields.items()}


def _example(info: FieldInfo | None) -> str:
    if info is not None and info.examples:
        return f" (for example {info.examples[0]!r})"
    return ""


def _allowed_keys(location: list[Any], branch: str | None) -> str:
    model = _model_at(location, branch)
    if model is None:
        return "see components/config.py"
    return ", ".join(_fields(model)) or "none"
