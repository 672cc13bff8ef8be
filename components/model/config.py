"""The stack file's models (``models.<name>``): each deployed by this stack, or an external service it watches.

A deployed model runs the sample image (built from ``model-service/``) or any image reference, with its
resources, autoscaling, network policy and faults; an external model is a service that already runs (its
namespace, Service selector, port name and metrics path), which gets only its monitors. Both have monitors
(``components/monitors/config.py``) and may name the team that owns them. Settings every model shares are
written once in ``modelDefaults`` and merged under each model, which then sets only what differs.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from model_service import contract
from pydantic import Field, StringConstraints, field_validator, model_validator

from components.clusters.kinds import KINDS, ClusterKind
from components.config.fields import (
    CPU_QUANTITY,
    DNS_LABEL,
    IMAGE_REFERENCE,
    MEMORY_QUANTITY,
    DnsLabel,
    Section,
    label_problems,
)
from components.contracts import TRACK_CANARY, TRACK_LABEL
from components.model.deployment import replica_problems, resource_problems
from components.monitors.config import ModelMonitorsConfig

SAMPLE_MODEL_NAME = "synthetic-classifier"
"""The sample model, deployed on every stack that configures no ``models``."""
MODEL_NAME = r"^[a-z0-9]([-a-z0-9]{0,48}[a-z0-9])?$"
"""A DNS label of at most 50 characters: the model's name prefixes the names of its objects (``<name>-rules``)."""
PORT_NAME = r"^[a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?$"
"""A port name (IANA service name): up to 15 characters."""


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
        problems = resource_problems(
            cpu_request=self.cpu_request, memory_request=self.memory_request,
            memory_limit=self.memory_limit, cpu_limit=self.cpu_limit, names=CONFIG_RESOURCE_NAMES,
        )
        if problems:
            raise ValueError("; ".join(problems))
        return self


CONFIG_RESOURCE_NAMES = {"cpu_request": "cpuRequest", "memory_request": "memoryRequest",
                         "memory_limit": "memoryLimit", "cpu_limit": "cpuLimit"}


class ModelAutoscalingConfig(Section):
    """The HorizontalPodAutoscaler on CPU, and the metrics-server it needs.

    kind and EKS clusters come without metrics-server: the stack installs it there (its Helm chart). AKS and
    GKE run their own. On an ``existing`` cluster the stack cannot know, so autoscaling is off unless turned
    on, and metrics-server is then assumed present unless ``metricsServer: install``.
    """

    enabled: bool | None = Field(
        None,
        description="Scale on CPU between replicas and maxReplicas; unset: on for kind, eks, aks and gke, "
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

    def enabled_on(self, kind: ClusterKind) -> bool:
        """Whether the HPA is declared on a cluster of this kind."""
        return self.enabled if self.enabled is not None else KINDS[kind].autoscaling_by_default

    def installs_metrics_server_on(self, kind: ClusterKind) -> bool:
        """Whether this model's autoscaling needs the stack to install metrics-server on a cluster of this kind."""
        if not self.enabled_on(kind):
            return False
        if self.metrics_server is not None:
            return self.metrics_server == "install"
        return KINDS[kind].metrics_server == "install"


class ModelNetworkPolicyConfig(Section):
    """Who may reach the model's port: Prometheus always, and the clients named here."""

    enabled: bool = Field(
        True, description="Declare the NetworkPolicy (the CNI must enforce it to have an effect).",
        examples=[False],
    )
    client_namespaces: tuple[DnsLabel, ...] = Field(
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
        if problem := label_problems(value):
            raise ValueError(problem)
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


class ModelTrafficConfig(Section):
    """Traffic for a new cluster's dashboard: the sample image's own load generator, in a Deployment beside it."""

    enabled: bool | None = Field(
        None,
        description="Run the load generator; unset: on kind (a new local cluster shows live data), off elsewhere. "
        "It is part of the sample image only.",
        examples=[True],
    )
    rate: float = Field(2.0, gt=0, le=50, description="/predict requests a second (5 records each).", examples=[5])
    feedback_ratio: float = Field(
        0.3, ge=0, le=1, description="Share of predictions that get their true label back as feedback.",
        examples=[0.5],
    )
    drift: dict[str, float] = Field(
        default_factory=dict,
        description="Features to shift, by how many training standard deviations: drifted traffic, which fires "
        "that feature's drift alert; empty: traffic like the training data.",
        examples=[{"f6": 3.0}],
    )

    @field_validator("drift")
    @classmethod
    def _known_features(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(contract.SAMPLE_FEATURE_NAMES))
        if unknown:
            raise ValueError(f"the sample model has no feature {', '.join(unknown)}; its features are "
                             f"{', '.join(contract.SAMPLE_FEATURE_NAMES)}")
        return value


class ExternalServiceConfig(Section):
    """A model service this stack does not deploy: where its pods are, so that its monitors find them.

    It must export the metric contract (``model-service/README.md``) on a named port of its Service.
    """

    namespace: DnsLabel = Field(description="Namespace of the model's Service and pods.", examples=["fraud"])
    selector: dict[str, str] = Field(
        min_length=1,
        description="Labels of the model's Service: its ServiceMonitor selects the Service by them.",
        examples=[{"app.kubernetes.io/name": "fraud-detector"}],
    )
    port: str = Field(
        pattern=PORT_NAME, description="Name of the Service port that serves the metrics.", examples=["http-metrics"]
    )
    metrics_path: str = Field(
        contract.ROUTE_METRICS, pattern=r"^/[^\s]*$", description="HTTP path of the metrics on that port.",
        examples=["/metrics"],
    )
    workload: str | None = Field(
        None, pattern=DNS_LABEL,
        description="Name of the Deployment or StatefulSet that runs its pods (for the restart and memory alerts); "
        "unset: the model's name.",
        examples=["fraud-detector"],
    )
    workload_kind: Literal["Deployment", "StatefulSet"] = Field(
        "Deployment", description="Kind of that workload.", examples=["StatefulSet"]
    )

    @field_validator("selector")
    @classmethod
    def _valid_labels(cls, value: dict[str, str]) -> dict[str, str]:
        if problem := label_problems(value):
            raise ValueError(problem)
        return value


class ModelCanaryConfig(Section):
    """A second version beside the stable one, behind the same Service: its own Deployment ``<model>-canary``,
    whose pods are labelled ``track: canary`` (the stable's ``track: stable``), so that every series says which
    version served it and the canary alert compares the two."""

    image: str = Field(
        pattern=IMAGE_REFERENCE,
        description="Image of the canary version (pinned by tag or digest).",
        examples=["registry.example.com/ml-team/ml-model-service:1.1.0"],
    )
    replicas: int = Field(
        1, ge=1, le=50,
        description="Pods of the canary (never autoscaled): its share of the traffic is replicas / (replicas + "
        "the stable's).",
        examples=[1],
    )

    @field_validator("image")
    @classmethod
    def _image_is_pinned(cls, value: str) -> str:
        if problem := unpinned_image_problem(value):
            raise ValueError(problem)
        return value


def unpinned_image_problem(image: str) -> str | None:
    """Why ``image`` is not pinned (no tag, or ``latest``, and no digest), or ``None``: a moving reference makes
    a rollout whose version nobody can name."""
    match = re.match(IMAGE_REFERENCE, image)
    assert match is not None  # the pattern ran first
    if match.group("digest") is None and match.group("tag") in (None, "latest"):
        return (
            f"image {image!r} is not pinned: give it a version tag other than 'latest' or a digest "
            "(for example registry.example.com/ml-team/ml-model-service:1.0.0)"
        )
    return None


ModelVersion = Annotated[str, StringConstraints(pattern=contract.NAME_PATTERN)]
"""A model version as the service reports it (``model_version``)."""

DEPLOYED_ONLY = ("namespace", "replicas", "image", "resources", "autoscaling", "network_policy", "faults",
                 "traffic", "log_level", "canary", "accepted_versions")
"""Settings that describe how this stack deploys a model: meaningless for an external one."""


class ModelConfig(Section):
    """One model: deployed by this stack, or external; with its monitors and its owning team."""

    team: DnsLabel | None = Field(
        None,
        description="Team that owns the model: its alerts carry `team` and go to alerting.teams.<team>'s "
        "receivers.",
        examples=["fraud"],
    )
    external: ExternalServiceConfig | None = Field(
        None,
        description="The model's service, when it already runs and this stack only watches it; unset: the stack "
        "deploys the model.",
        examples=[{"namespace": "fraud", "selector": {"app": "fraud"}, "port": "http-metrics"}],
    )
    namespace: DnsLabel = Field(
        "models", description="Namespace the stack deploys the model into (and creates).", examples=["ml-serving"],
    )
    replicas: int = Field(
        2, ge=1, le=50, description="Pods when autoscaling is off; the autoscaler's lower bound when on.",
        examples=[3],
    )
    image: str | None = Field(
        None, pattern=IMAGE_REFERENCE,
        description="Image to deploy as is (pinned by tag or digest); unset: the sample image, built from "
        "model-service/.",
        examples=["registry.example.com/ml-team/ml-model-service:1.0.0"],
    )
    resources: ModelResourcesConfig = ModelResourcesConfig()
    autoscaling: ModelAutoscalingConfig = ModelAutoscalingConfig()
    network_policy: ModelNetworkPolicyConfig = ModelNetworkPolicyConfig()
    faults: ModelFaultsConfig = ModelFaultsConfig()
    traffic: ModelTrafficConfig = ModelTrafficConfig()
    log_level: Literal["critical", "error", "warning", "info", "debug"] = Field(
        "info", description="The service's log level.", examples=["debug"]
    )
    canary: ModelCanaryConfig | None = Field(
        None,
        description="A canary version beside the stable one, behind the same Service; unset: no canary. Not for "
        "an external model.",
        examples=[{"image": "registry.example.com/ml-team/ml-model-service:1.1.0", "replicas": 1}],
    )
    accepted_versions: tuple[ModelVersion, ...] = Field(
        (),
        max_length=contract.MAX_ACCEPTED_VERSIONS,
        description="Model versions (as model_info reports them) whose prediction ids every pod scores, each under "
        "its own version: the stable's and the canary's, or the previous and the new during a rollout; empty: "
        f"each pod its own only. At most {contract.MAX_ACCEPTED_VERSIONS}; needed with a canary.",
        examples=[["1.0.0", "1.1.0"]],
    )
    monitors: ModelMonitorsConfig = ModelMonitorsConfig()

    @field_validator("image")
    @classmethod
    def _image_is_pinned(cls, value: str | None) -> str | None:
        if value is not None and (problem := unpinned_image_problem(value)):
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _deployed_or_external(self) -> ModelConfig:
        if self.external is not None and self.canary is not None:
            raise ValueError(
                f"a canary is a Deployment this stack declares beside the model's own, which an external model "
                f"does not have (got canary.image {self.canary.image!r} beside external); remove canary, or "
                f"label the canary pods of that service {TRACK_LABEL}: {TRACK_CANARY} where it is deployed"
            )
        if self.external is not None:
            fields = type(self).model_fields
            given = [fields[name].alias or name for name in DEPLOYED_ONLY if name in self.model_fields_set]
            if given:
                raise ValueError(
                    f"an external model is not deployed by this stack, so {', '.join(given)} mean nothing for it "
                    "(got them beside external); remove them, or remove external to deploy the model"
                )
        return self

    @model_validator(mode="after")
    def _canary_differs(self) -> ModelConfig:
        if self.canary is not None and self.canary.image == self.image:
            raise ValueError(
                f"the canary runs the stable version's image (got canary.image {self.canary.image!r}, the same as "
                "image): give canary.image the new version's image, or remove canary"
            )
        if self.canary is not None and self.external is None and len(set(self.accepted_versions)) < 2:
            raise ValueError(
                "with a canary, the Service sends a prediction's feedback to a pod of either version, which refuses "
                "the other version's ids unless acceptedVersions lists both (got acceptedVersions "
                f"{list(self.accepted_versions)}); set the stable's and the canary's model versions, as their "
                "model_info reports them (pulumi config set --path 'models.<name>.acceptedVersions[0]' 1.0.0, and "
                "[1] the canary's)"
            )
        return self

    @model_validator(mode="after")
    def _traffic_from_the_sample_image(self) -> ModelConfig:
        if self.traffic.enabled and self.image is not None:
            raise ValueError(
                f"traffic comes from the sample image's load generator, which image {self.image!r} may not have "
                "(got traffic.enabled: true beside image); remove traffic.enabled, or image to deploy the sample"
            )
        return self

    @property
    def deployed(self) -> bool:
        return self.external is None

    def traffic_on(self, kind: ClusterKind) -> bool:
        """Whether the stack runs the load generator beside this model on a cluster of ``kind``."""
        if not self.builds_sample_image:
            return False
        return self.traffic.enabled if self.traffic.enabled is not None else kind == "kind"

    @property
    def builds_sample_image(self) -> bool:
        """Whether the stack builds the sample image for this model (deployed, no image given)."""
        return self.deployed and self.image is None

    def scrape_namespace(self) -> str:
        """The namespace of the model's Service."""
        return self.external.namespace if self.external is not None else self.namespace

    def problems_on(self, kind: ClusterKind) -> list[str]:
        """What this model cannot do on a cluster of ``kind`` (empty when it fits), keys relative to the model."""
        problems: list[str] = []
        if not self.deployed:
            return problems
        if KINDS[kind].metrics_server == "shipped" and self.autoscaling.metrics_server == "install":
            problems.append(
                f"autoscaling.metricsServer cannot be 'install' on {kind}, whose clusters run metrics-server "
                "already; remove the setting"
            )
        if self.autoscaling.enabled_on(kind):
            problems += replica_problems(
                replicas=self.replicas, max_replicas=self.autoscaling.max_replicas,
                names={"replicas": "replicas", "max_replicas": "autoscaling.maxReplicas"},
            )
        return problems
