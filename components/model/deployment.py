"""ModelDeployment: a model service on Kubernetes, hardened, scalable, and ready to be scraped.

It runs any image that follows the sample's contract (one HTTP port serving the API, ``/healthz``, ``/readyz`` and
``/metrics``; settings from ``MODEL_*`` variables) and exports exactly what its monitors need to find it: the
namespace, the pods' selector labels and the port's name. ``ModelMonitors`` takes those outputs instead of
spelling them, so that the ServiceMonitor and the Service cannot disagree.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
from model_service import contract as model_contract

from components.clusters.args import RegistryCredentials
from components.config.fields import cpu_millicores, memory_bytes
from components.contracts import (
    MODEL_HTTP_PORT,
    MODEL_HTTP_PORT_NAME,
    MODEL_METRICS_PATH,
    NAMESPACE_NAME_LABEL,
    POD_SECURITY_ENFORCE_LABEL,
    POD_SECURITY_ENFORCE_VERSION_LABEL,
    PROMETHEUS_POD_LABELS,
    TRACK_CANARY,
    TRACK_LABEL,
    TRACK_STABLE,
    common_labels,
    selector_labels,
)

COMPONENT = "model-server"
"""``app.kubernetes.io/component`` of every object of a model deployment."""
CONTAINER_NAME = "model"
SIGNING_KEY_SECRET_KEY = "feedback-signing-key"
"""Key, in the Secret, of the HMAC key that signs prediction ids."""
SIGNING_KEY_BYTES = 32
"""256 random bits: the service needs at least 16 bytes, HMAC-SHA256 gains nothing beyond its block of 64."""
SHUTDOWN_TIMEOUT_SECONDS = 20
"""Time the service gives in-flight requests after SIGTERM (``MODEL_SHUTDOWN_TIMEOUT_SECONDS``)."""
TERMINATION_GRACE_SECONDS = SHUTDOWN_TIMEOUT_SECONDS + 10
"""Kubernetes kills the pod after this: longer than the service's own drain, so that draining is never cut."""
TMP_SIZE_LIMIT = "64Mi"
"""The only writable path of the container (``/tmp``); the root filesystem is read-only."""
TRAFFIC_COMPONENT = "load-generator"
"""``app.kubernetes.io/component`` of a model's load generator."""
TRAFFIC_BATCH_SIZE = 5
TRAFFIC_ROUND_SECONDS = 3600
HEARTBEAT_FILE = "/tmp/heartbeat"
HEARTBEAT_MAX_AGE_SECONDS = 60
"""The generator touches its heartbeat every 5 s while it sends; older than this, it is stuck."""
MODEL_SERVICE_UID = 10001
"""Numeric user (and group) of the sample image's ``USER`` line: what the pod's ``runAsUser`` states, so that the
kubelet can verify ``runAsNonRoot`` without reading the image. An image of your own must run as this user too, or
set it in ``ModelDeploymentArgs.run_as_user``."""


def restricted_namespace_labels() -> dict[str, str]:
    """Pod Security ``restricted``, enforced: admission rejects any pod of the namespace that is not as locked down
    as a model's."""
    return {POD_SECURITY_ENFORCE_LABEL: "restricted", POD_SECURITY_ENFORCE_VERSION_LABEL: "latest"}


RESOURCE_NAMES = {"cpu_request": "resources.cpu_request", "memory_request": "resources.memory_request",
                  "memory_limit": "resources.memory_limit", "cpu_limit": "resources.cpu_limit"}
REPLICA_NAMES = {"replicas": "replicas", "max_replicas": "autoscaling.max_replicas"}


def resource_problems(*, cpu_request: str, memory_request: str, memory_limit: str, cpu_limit: str | None,
                      names: dict[str, str] = RESOURCE_NAMES) -> list[str]:
    """Limits below their requests, which the API server would refuse: the one definition of the rule, for the
    args and the stack file (whose keys ``names`` gives)."""
    problems = []
    if memory_bytes(memory_limit) < memory_bytes(memory_request):
        problems.append(
            f"{names['memory_limit']} must be at least {names['memory_request']} (got "
            f"{names['memory_request']}={memory_request}, {names['memory_limit']}={memory_limit})"
        )
    if cpu_limit is not None and cpu_millicores(cpu_limit) < cpu_millicores(cpu_request):
        problems.append(
            f"{names['cpu_limit']} must be at least {names['cpu_request']} (got {names['cpu_request']}={cpu_request}, "
            f"{names['cpu_limit']}={cpu_limit})"
        )
    return problems


def replica_problems(*, replicas: int, max_replicas: int | None, names: dict[str, str] = REPLICA_NAMES) -> list[str]:
    """An autoscaler whose upper bound is under its lower bound (the replicas)."""
    if max_replicas is not None and max_replicas < replicas:
        return [
            f"{names['max_replicas']} must be at least {names['replicas']}, the autoscaler's lower bound "
            f"(got {names['replicas']}={replicas}, {names['max_replicas']}={max_replicas})"
        ]
    return []


@dataclass(frozen=True, kw_only=True)
class ContainerResources:
    """Requests and limits of the model's container."""

    cpu_request: str
    """CPU reserved for the container; the HPA's utilisation is relative to it."""
    memory_request: str
    """Memory reserved for the container."""
    memory_limit: str
    """Memory at which the container is OOM-killed."""
    cpu_limit: str | None = None
    """CPU limit; ``None`` leaves it unset, because CFS throttling turns bursts into tail latency."""


@dataclass(frozen=True, kw_only=True)
class Autoscaling:
    """A HorizontalPodAutoscaler (autoscaling/v2) on CPU; the cluster must serve the resource metrics API."""

    max_replicas: int
    """Upper bound; the lower bound is ``ModelDeploymentArgs.replicas``."""
    target_cpu_utilization_percent: int
    """Average CPU use, in percent of the request, the HPA keeps the pods at."""


@dataclass(frozen=True, kw_only=True)
class FaultInjection:
    """Faults the service injects into ``/predict``, to exercise the SLO alerts in demos and tests."""

    error_ratio: float = 0.0
    """Share of requests answered 500."""
    extra_latency_seconds: float = 0.0
    """Delay added to the share of requests that ``latency_ratio`` picks."""
    latency_ratio: float = 1.0
    """Share of requests that get the extra latency."""


@dataclass(frozen=True, kw_only=True)
class SyntheticTraffic:
    """Traffic from the sample image's own load generator (``model_service.loadgen``), so that a new cluster's
    dashboard shows live data. The generator runs in rounds of an hour (each a fresh process, so that its report
    never grows) and touches a heartbeat file while it sends, which its liveness probe reads."""

    rate: float
    """``/predict`` requests a second, of ``TRAFFIC_BATCH_SIZE`` records each."""
    feedback_ratio: float
    """Share of predictions that get their true label back."""
    shift: Mapping[str, float] = field(default_factory=dict)
    """Features shifted by this many training standard deviations (drifted traffic)."""


@dataclass(frozen=True, kw_only=True)
class Canary:
    """A second version of the model beside the stable one: the same pod, another image, a fixed replica count."""

    image: pulumi.Input[str]
    """Image reference of the canary version, pinned."""
    replicas: int = 1
    """Pods of the canary; never autoscaled, so that its share of the traffic stays what was chosen."""


@dataclass(frozen=True, kw_only=True)
class ModelDeploymentArgs:
    """What to run and who may reach it."""

    model_name: str
    """Name of the model; names the objects and their labels, and must equal the ``model_name`` its metrics carry."""
    namespace: pulumi.Input[str]
    """Namespace of the objects: a name, or the Output of a namespace the program declares (``create_namespace``
    off), so that the model waits for it."""
    image: pulumi.Input[str]
    """Image reference, pinned (a content tag or a digest); an Output of the image build orders the rollout after it."""
    replicas: int
    """Pods when ``autoscaling`` is ``None``; the autoscaler's lower bound otherwise."""
    resources: ContainerResources
    """Requests and limits of the container."""
    scrape_from_namespace: pulumi.Input[str]
    """Namespace of the Prometheus that scrapes the model (an output of the monitoring stack); the NetworkPolicy
    admits scrapes from it."""
    scraper_pod_labels: Mapping[str, str] = field(default_factory=lambda: dict(PROMETHEUS_POD_LABELS))
    """Labels of the Prometheus pods in that namespace."""
    autoscaling: Autoscaling | None = None
    """The HPA, or ``None`` for a fixed number of replicas."""
    latency_slo_thresholds_seconds: tuple[float, ...] = model_contract.DEFAULT_LATENCY_SLO_THRESHOLDS_SECONDS
    """The latency SLO thresholds of the monitors: the service makes each a bucket bound of its request-duration
    histogram, so that the SLO rules' ``le`` selectors always exist. Pass the monitors' own values."""
    faults: FaultInjection | None = None
    """Fault injection, or ``None`` (no fault, and no fault counter)."""
    log_level: str = "info"
    """The service's log level."""
    network_policy: bool = True
    """Declare the NetworkPolicy that admits only Prometheus and the clients below."""
    client_namespaces: tuple[str, ...] = ()
    """Namespaces whose pods may call the API."""
    client_pod_labels: Mapping[str, str] = field(default_factory=dict)
    """Labels of pods, in any namespace, that may call the API (none when empty)."""
    image_pull_credentials: RegistryCredentials | None = None
    """Credentials for a registry the nodes cannot pull from on their own; they become an image pull Secret."""
    create_namespace: bool = True
    """Create the namespace (and own it), or deploy into one that exists (or that the program declares for several
    models: then pass its name as an Output, so that the model waits for it)."""
    traffic: SyntheticTraffic | None = None
    """A load generator beside the model (the sample image only: it runs the image's ``model_service.loadgen``)."""
    run_as_user: int = MODEL_SERVICE_UID
    """Numeric user and group the container runs as (the image's non-root ``USER``)."""
    canary: Canary | None = None
    """A canary Deployment (``<model_name>-canary``) behind the same Service, or ``None``."""
    accepted_versions: tuple[str, ...] = ()
    """Model versions whose prediction ids every pod scores (``MODEL_ACCEPTED_VERSIONS``), its own besides: with a
    canary, the stable's and the canary's, so that feedback counts wherever the Service sends it."""
    reported_name: bool = True
    """Tell the service its name (``MODEL_NAME``), so that its metrics say ``model_name=<model_name>`` whatever its
    artifact is called: the sample image deployed twice under two names reports two models. Turn it off for an
    image that does not read ``MODEL_NAME``."""


class ModelDeployment(pulumi.ComponentResource):
    """A model service: Namespace, ServiceAccount, signing-key Secret, Deployment, Service, PodDisruptionBudget,
    HorizontalPodAutoscaler and NetworkPolicy; with a canary, a second Deployment and PodDisruptionBudget
    (``<model>-canary``) whose pods the same Service, NetworkPolicy and signing key serve.

    Contract honoured: every object carries ``common_labels(model_name, model_name, "model-server")``; the pods
    and the Service's selector use ``selector_labels(model_name, model_name)``; the container and the Service
    expose one port named ``MODEL_HTTP_PORT_NAME`` that serves the API, the probes and ``/metrics``. Every pod is
    labelled ``TRACK_LABEL`` (``stable`` or ``canary``); each Deployment selects its own track's pods. The pods
    run as the image's non-root user with a read-only root filesystem, no privilege escalation, no
    capabilities and the RuntimeDefault seccomp profile, which the namespace enforces (Pod Security
    ``restricted``). Takes the cluster's Kubernetes provider through ``opts`` (``providers=[cluster.provider]``).
    """

    TYPE = "mlobs:model:ModelDeployment"

    model_name: str
    """Name of the model (the ``model_name`` of its metrics)."""
    namespace: pulumi.Output[str]
    """Namespace of the model's objects; resolves once the namespace exists."""
    service_name: pulumi.Output[str]
    """Name of the Service a ServiceMonitor selects."""
    deployment_name: pulumi.Output[str]
    """Name of the Deployment (for dashboards of replicas and rollouts)."""
    selector_labels: dict[str, str]
    """Labels of the pods and of the Service: what a ServiceMonitor's ``selector.matchLabels`` must be."""
    port_name: str
    """Name of the Service port that serves ``/metrics``: a ServiceMonitor endpoint's ``port``."""
    metrics_path: str
    """Path of the metrics on that port."""
    url: pulumi.Output[str]
    """In-cluster URL of the API, e.g. ``http://synthetic-classifier.models.svc:8080``."""
    image: pulumi.Output[str]
    """Image reference the pods run."""
    canary_deployment_name: pulumi.Output[str] | None
    """Name of the canary's Deployment, or ``None`` without a canary."""

    def __init__(self, name: str, args: ModelDeploymentArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        _validate(args)  # before registering anything: bad args leave no half-declared component behind
        super().__init__(self.TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        model = args.model_name
        labels = common_labels(model, model, COMPONENT)
        selector = selector_labels(model, model)

        if args.create_namespace:
            namespace_resource = k8s.core.v1.Namespace(
                f"{name}-ns",
                metadata={
                    "name": args.namespace,
                    # Admission rejects any pod of the namespace that is not as locked down as this one's.
                    "labels": {**labels, **restricted_namespace_labels()},
                },
                opts=child,
            )
            namespace = namespace_resource.metadata.apply(lambda metadata: str(metadata.name))
        else:
            namespace = pulumi.Output.from_input(args.namespace)

        def metadata(object_name: str = model) -> k8s.meta.v1.ObjectMetaArgsDict:
            return {"name": object_name, "namespace": namespace, "labels": labels}

        service_account = k8s.core.v1.ServiceAccount(
            f"{name}-sa",
            metadata=metadata(),
            automount_service_account_token=False,  # the service never calls the Kubernetes API
            opts=child,
        )

        # One key for every replica, so that any replica scores feedback for a prediction another one made.
        signing_key = random.RandomBytes(f"{name}-signing-key", length=SIGNING_KEY_BYTES, opts=child)
        signing_secret = k8s.core.v1.Secret(
            f"{name}-signing-key",
            metadata=metadata(f"{model}-signing-key"),
            type="Opaque",
            string_data={SIGNING_KEY_SECRET_KEY: signing_key.base64},
            opts=child,
        )

        pull_secrets: list[k8s.core.v1.LocalObjectReferenceArgsDict] = []
        if args.image_pull_credentials is not None:
            pull_secret = k8s.core.v1.Secret(
                f"{name}-pull-secret",
                metadata=metadata(f"{model}-pull"),
                type="kubernetes.io/dockerconfigjson",
                string_data={".dockerconfigjson": _docker_config_json(args.image_pull_credentials)},
                opts=child,
            )
            pull_secrets = [{"name": pull_secret.metadata.apply(lambda m: str(m.name))}]

        service_account_name = service_account.metadata.apply(lambda m: str(m.name))
        signing_secret_name = signing_secret.metadata.apply(lambda m: str(m.name))

        def declare_track(track: str, image: pulumi.Input[str], replicas: int | None) -> k8s.apps.v1.Deployment:
            """One track's Deployment and PodDisruptionBudget, from the one pod spec builder: the canary differs
            from the stable version only in its image, its track label and its replica count."""
            track_selector = deployment_selector(model, track)
            object_name = track_workload_name(model, track)
            suffix = object_name.removeprefix(model)
            spec: k8s.apps.v1.DeploymentSpecArgsDict = {
                "revision_history_limit": 5,
                "selector": track_selector,
                "strategy": {
                    "type": "RollingUpdate",
                    # A new pod must be ready before an old one goes: a rollout never lowers capacity.
                    "rolling_update": {"max_unavailable": 0, "max_surge": 1},
                },
                "template": {
                    "metadata": {"labels": {**labels, TRACK_LABEL: track}},
                    "spec": _pod_spec(
                        args,
                        image=image,
                        service_account=service_account_name,
                        signing_secret=signing_secret_name,
                        selector=selector,
                        pull_secrets=pull_secrets,
                    ),
                },
            }
            if replicas is not None:
                spec["replicas"] = replicas
            created = k8s.apps.v1.Deployment(
                f"{name}{suffix}-deployment", metadata=metadata(object_name), spec=spec, opts=child
            )
            # One pod at a time may be evicted: drains proceed, and with 2+ replicas the service stays up. With
            # maxUnavailable (not minAvailable) a single replica never blocks a node drain. Each track's budget
            # selects its own Deployment's pods only: the eviction API refuses a pod that two budgets select.
            k8s.policy.v1.PodDisruptionBudget(
                f"{name}{suffix}-pdb",
                metadata=metadata(object_name),
                spec={"max_unavailable": 1, "selector": track_selector},
                opts=child,
            )
            return created

        # With an HPA, the autoscaler owns the replica count: declaring it too would reset it on every up.
        deployment = declare_track(TRACK_STABLE, args.image, args.replicas if args.autoscaling is None else None)
        canary = declare_track(TRACK_CANARY, args.canary.image, args.canary.replicas) if args.canary else None

        service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=metadata(),
            spec={
                "type": "ClusterIP",
                "selector": selector,
                "ports": [
                    {
                        "name": MODEL_HTTP_PORT_NAME,
                        "port": MODEL_HTTP_PORT,
                        "target_port": MODEL_HTTP_PORT_NAME,
                        "protocol": "TCP",
                        "app_protocol": "http",
                    }
                ],
            },
            opts=child,
        )

        if args.autoscaling is not None:
            k8s.autoscaling.v2.HorizontalPodAutoscaler(
                f"{name}-hpa",
                metadata=metadata(),
                spec={
                    "scale_target_ref": {
                        "api_version": "apps/v1",
                        "kind": "Deployment",
                        "name": deployment.metadata.apply(lambda m: str(m.name)),
                    },
                    "min_replicas": args.replicas,
                    "max_replicas": args.autoscaling.max_replicas,
                    "metrics": [
                        {
                            "type": "Resource",
                            "resource": {
                                "name": "cpu",
                                "target": {
                                    "type": "Utilization",
                                    "average_utilization": args.autoscaling.target_cpu_utilization_percent,
                                },
                            },
                        }
                    ],
                },
                opts=child,
            )

        if args.network_policy:
            k8s.networking.v1.NetworkPolicy(
                f"{name}-netpol",
                metadata=metadata(),
                spec=_network_policy_spec(args, selector),
                opts=child,
            )

        if args.traffic is not None:
            traffic_name = f"{model}-traffic"
            url = pulumi.Output.concat("http://", service.metadata.apply(lambda m: str(m.name)), ":",
                                       str(MODEL_HTTP_PORT))
            k8s.apps.v1.Deployment(
                f"{name}-traffic",
                metadata={"name": traffic_name, "namespace": namespace,
                          "labels": common_labels(traffic_name, model, TRAFFIC_COMPONENT)},
                spec={
                    "replicas": 1,
                    "revision_history_limit": 2,
                    "selector": {"match_labels": traffic_selector_labels(model)},
                    "template": {
                        "metadata": {"labels": common_labels(traffic_name, model, TRAFFIC_COMPONENT)},
                        "spec": _traffic_pod_spec(args, args.traffic, url, service_account.metadata.apply(
                            lambda m: str(m.name)), pull_secrets),
                    },
                },
                opts=pulumi.ResourceOptions(parent=self, depends_on=[deployment]),
            )

        self.model_name = model
        self.namespace = namespace
        self.service_name = service.metadata.apply(lambda m: str(m.name))
        self.deployment_name = deployment.metadata.apply(lambda m: str(m.name))
        self.selector_labels = selector
        self.port_name = MODEL_HTTP_PORT_NAME
        self.metrics_path = MODEL_METRICS_PATH
        self.url = pulumi.Output.concat(
            "http://", self.service_name, ".", self.namespace, ".svc:", str(MODEL_HTTP_PORT)
        )
        self.image = pulumi.Output.from_input(args.image)
        self.canary_deployment_name = (
            canary.metadata.apply(lambda m: str(m.name)) if canary is not None else None
        )
        self.register_outputs(
            {
                "modelName": self.model_name,
                "namespace": self.namespace,
                "serviceName": self.service_name,
                "deploymentName": self.deployment_name,
                "selectorLabels": self.selector_labels,
                "portName": self.port_name,
                "metricsPath": self.metrics_path,
                "url": self.url,
                "image": self.image,
                "canaryDeploymentName": self.canary_deployment_name,
            }
        )


def _validate(args: ModelDeploymentArgs) -> None:
    """Reject args that would only fail in the cluster, before any child exists."""
    problems = []
    if args.replicas < 1:
        problems.append(f"replicas must be at least 1 (got {args.replicas})")
    if len(set(args.accepted_versions)) > model_contract.MAX_ACCEPTED_VERSIONS:
        problems.append(f"accepted_versions takes at most {model_contract.MAX_ACCEPTED_VERSIONS} versions (got "
                        f"{list(args.accepted_versions)}): list those that serve now")
    if args.canary is not None and args.canary.replicas < 1:
        problems.append(f"canary.replicas must be at least 1 (got {args.canary.replicas}); remove canary for none")
    problems += replica_problems(
        replicas=args.replicas, max_replicas=args.autoscaling.max_replicas if args.autoscaling else None
    )
    resources = args.resources
    problems += resource_problems(cpu_request=resources.cpu_request, memory_request=resources.memory_request,
                                  memory_limit=resources.memory_limit, cpu_limit=resources.cpu_limit)
    # The service refuses thresholds it cannot make bucket bounds of; fail here rather than in a crash loop.
    try:
        model_contract.latency_buckets(args.latency_slo_thresholds_seconds)
    except ValueError as error:
        problems.append(f"latency_slo_thresholds_seconds: {error}")
    if not 1 <= len(args.latency_slo_thresholds_seconds) <= model_contract.MAX_LATENCY_SLO_THRESHOLDS:
        problems.append(
            f"latency_slo_thresholds_seconds takes 1 to {model_contract.MAX_LATENCY_SLO_THRESHOLDS} thresholds "
            f"(got {args.latency_slo_thresholds_seconds})"
        )
    if problems:
        raise ValueError(f"ModelDeploymentArgs of {args.model_name!r}: " + "; ".join(problems))


def _environment(args: ModelDeploymentArgs, signing_secret: pulumi.Input[str]) -> list[k8s.core.v1.EnvVarArgsDict]:
    """The service's ``MODEL_*`` settings (model-service/README.md, Configuration)."""
    env: list[k8s.core.v1.EnvVarArgsDict] = [
        {"name": model_contract.ENV_PORT, "value": str(MODEL_HTTP_PORT)},
        {
            "name": model_contract.ENV_LATENCY_SLO_THRESHOLDS_SECONDS,
            "value": model_contract.format_latency_thresholds(args.latency_slo_thresholds_seconds),
        },
        {
            "name": model_contract.ENV_FEEDBACK_SIGNING_KEY,
            "value_from": {"secret_key_ref": {"name": signing_secret, "key": SIGNING_KEY_SECRET_KEY}},
        },
        {"name": model_contract.ENV_LOG_LEVEL, "value": args.log_level},
        {"name": model_contract.ENV_SHUTDOWN_TIMEOUT_SECONDS, "value": str(float(SHUTDOWN_TIMEOUT_SECONDS))},
    ]
    if args.reported_name:
        env.append({"name": model_contract.ENV_MODEL_NAME, "value": args.model_name})
    if args.accepted_versions:
        env.append({"name": model_contract.ENV_ACCEPTED_VERSIONS, "value": ",".join(args.accepted_versions)})
    if args.faults is not None:
        faults = args.faults
        env += [
            {"name": model_contract.ENV_FAULT_ERROR_RATIO, "value": repr(float(faults.error_ratio))},
            {"name": model_contract.ENV_FAULT_EXTRA_LATENCY_SECONDS,
             "value": repr(float(faults.extra_latency_seconds))},
            {"name": model_contract.ENV_FAULT_LATENCY_RATIO, "value": repr(float(faults.latency_ratio))},
        ]
    return env


def _probe(path: str, *, period: int, failures: int) -> k8s.core.v1.ProbeArgsDict:
    return {
        "http_get": {"path": path, "port": MODEL_HTTP_PORT_NAME},
        "period_seconds": period,
        "timeout_seconds": 2,
        "failure_threshold": failures,
    }


def _pod_spec(
    args: ModelDeploymentArgs,
    *,
    image: pulumi.Input[str],
    service_account: pulumi.Input[str],
    signing_secret: pulumi.Input[str],
    selector: Mapping[str, str],
    pull_secrets: list[k8s.core.v1.LocalObjectReferenceArgsDict],
) -> k8s.core.v1.PodSpecArgsDict:
    resources = args.resources
    limits: dict[str, pulumi.Input[str]] = {"memory": resources.memory_limit}
    if resources.cpu_limit is not None:
        limits["cpu"] = resources.cpu_limit
    spec: k8s.core.v1.PodSpecArgsDict = {
        "service_account_name": service_account,
        "automount_service_account_token": False,
        # A Service named `model` would inject MODEL_PORT=tcp://…, which collides with the service's own setting.
        "enable_service_links": False,
        "termination_grace_period_seconds": TERMINATION_GRACE_SECONDS,
        "security_context": {
            "run_as_non_root": True,
            "run_as_user": args.run_as_user,
            "run_as_group": args.run_as_user,
            "fs_group": args.run_as_user,
            "seccomp_profile": {"type": "RuntimeDefault"},
        },
        # Replicas on different nodes where there are several: one node's loss leaves the others serving.
        "topology_spread_constraints": [
            {
                "max_skew": 1,
                "topology_key": "kubernetes.io/hostname",
                "when_unsatisfiable": "ScheduleAnyway",
                "label_selector": {"match_labels": dict(selector)},
            }
        ],
        "containers": [
            {
                "name": CONTAINER_NAME,
                "image": image,
                # Tags are content hashes or digests, never moved: a node's copy is always the right one (and a
                # kind-loaded image exists only on the nodes).
                "image_pull_policy": "IfNotPresent",
                "ports": [{"name": MODEL_HTTP_PORT_NAME, "container_port": MODEL_HTTP_PORT, "protocol": "TCP"}],
                "env": _environment(args, signing_secret),
                # Liveness only once the process serves; readiness only once the model is loaded.
                "startup_probe": _probe(model_contract.ROUTE_HEALTHZ, period=2, failures=30),
                "liveness_probe": _probe(model_contract.ROUTE_HEALTHZ, period=10, failures=3),
                "readiness_probe": _probe(model_contract.ROUTE_READYZ, period=5, failures=2),
                "resources": {
                    "requests": {"cpu": resources.cpu_request, "memory": resources.memory_request},
                    "limits": limits,
                },
                "security_context": _container_security_context(args.run_as_user),
                "volume_mounts": [{"name": "tmp", "mount_path": "/tmp"}],
            }
        ],
        "volumes": [{"name": "tmp", "empty_dir": {"size_limit": TMP_SIZE_LIMIT}}],
    }
    if pull_secrets:
        spec["image_pull_secrets"] = pull_secrets
    return spec


def track_workload_name(model_name: str, track: str) -> str:
    """The name of a track's Deployment (and PodDisruptionBudget): the model's for the stable one, ``<model>-canary``
    for the canary."""
    return model_name if track == TRACK_STABLE else f"{model_name}-{track}"


def deployment_selector(model_name: str, track: str) -> k8s.meta.v1.LabelSelectorArgsDict:
    """The ``spec.selector`` of a track's Deployment: the model's pods of that track only.

    The canary's adds ``track: canary``. The stable's excludes the canary's pods (``NotIn``) rather than requiring
    ``track: stable``, so that it also selects pods without the label: those of a Deployment declared before tracks
    existed, which it adopts when it takes that Deployment's place (a selector is immutable, so adding the
    expression replaces the Deployment once; see README.md, Canary). Both stay disjoint, so neither Deployment (nor
    the stable's autoscaler, which averages over its selector) counts the other's pods.
    """
    base = selector_labels(model_name, model_name)
    if track == TRACK_STABLE:
        return {"match_labels": base,
                "match_expressions": [{"key": TRACK_LABEL, "operator": "NotIn", "values": [TRACK_CANARY]}]}
    return {"match_labels": {**base, TRACK_LABEL: track}}


def traffic_selector_labels(model_name: str) -> dict[str, str]:
    """The labels of a model's load generator pods (never the model's own selector: the Service skips them)."""
    return selector_labels(f"{model_name}-traffic", model_name)


def traffic_command(url: pulumi.Input[str], traffic: SyntheticTraffic) -> list[pulumi.Input[str]]:
    """The generator's command: rounds of ``TRAFFIC_ROUND_SECONDS``, started again after a failed one."""
    arguments: list[pulumi.Input[str]] = [
        "--url", url, "--rate", repr(float(traffic.rate)), "--batch-size", str(TRAFFIC_BATCH_SIZE),
        "--feedback-ratio", repr(float(traffic.feedback_ratio)), "--duration", str(TRAFFIC_ROUND_SECONDS),
        "--wait-ready", "300", "--heartbeat-file", HEARTBEAT_FILE,
    ]
    for feature, sigmas in sorted(traffic.shift.items()):
        arguments += ["--shift", f"{feature}={float(sigmas)!r}"]
    loop = 'while :; do python -m model_service.loadgen "$@" || sleep 5; done'
    return ["/bin/sh", "-c", loop, "loadgen", *arguments]


def _traffic_pod_spec(
    args: ModelDeploymentArgs,
    traffic: SyntheticTraffic,
    url: pulumi.Input[str],
    service_account: pulumi.Input[str],
    pull_secrets: list[k8s.core.v1.LocalObjectReferenceArgsDict],
) -> k8s.core.v1.PodSpecArgsDict:
    """The model's image, as locked down as the model, running its load generator."""
    heartbeat_fresh: k8s.core.v1.ProbeArgsDict = {
        "exec_": {"command": ["python", "-c", "import os, sys, time; sys.exit(time.time() - os.path.getmtime("
                             f"{HEARTBEAT_FILE!r}) > {HEARTBEAT_MAX_AGE_SECONDS})"]},
        "period_seconds": 15,
        "timeout_seconds": 5,
        "failure_threshold": 2,
    }
    spec: k8s.core.v1.PodSpecArgsDict = {
        "service_account_name": service_account,
        "automount_service_account_token": False,
        "enable_service_links": False,
        "security_context": {
            "run_as_non_root": True,
            "run_as_user": args.run_as_user,
            "run_as_group": args.run_as_user,
            "seccomp_profile": {"type": "RuntimeDefault"},
        },
        "containers": [{
            "name": "load-generator",
            "image": args.image,
            "image_pull_policy": "IfNotPresent",
            "command": traffic_command(url, traffic),
            "env": [{"name": "OPENBLAS_NUM_THREADS", "value": "1"}, {"name": "OMP_NUM_THREADS", "value": "1"}],
            # Waits up to 300 s for the model to be ready before its first beat of sending.
            "startup_probe": {**heartbeat_fresh, "period_seconds": 10, "failure_threshold": 36},
            "liveness_probe": heartbeat_fresh,
            "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
            "security_context": _container_security_context(args.run_as_user),
            "volume_mounts": [{"name": "tmp", "mount_path": "/tmp"}],
        }],
        "volumes": [{"name": "tmp", "empty_dir": {"size_limit": TMP_SIZE_LIMIT}}],
    }
    if pull_secrets:
        spec["image_pull_secrets"] = pull_secrets
    return spec


def _container_security_context(user: int) -> k8s.core.v1.SecurityContextArgsDict:
    """Non-root, read-only root filesystem, no privilege, no capability: Pod Security ``restricted`` and more."""
    return {
        "run_as_non_root": True,
        "run_as_user": user,
        "run_as_group": user,
        "read_only_root_filesystem": True,
        "allow_privilege_escalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccomp_profile": {"type": "RuntimeDefault"},
    }


def _network_policy_spec(
    args: ModelDeploymentArgs, selector: Mapping[str, str]
) -> k8s.networking.v1.NetworkPolicySpecArgsDict:
    """Ingress to the model's port from Prometheus and the configured clients only; egress is not restricted."""
    port: list[k8s.networking.v1.NetworkPolicyPortArgsDict] = [{"port": MODEL_HTTP_PORT_NAME, "protocol": "TCP"}]
    prometheus: k8s.networking.v1.NetworkPolicyPeerArgsDict = {
        "namespace_selector": {"match_labels": {NAMESPACE_NAME_LABEL: args.scrape_from_namespace}},
        "pod_selector": {"match_labels": dict(args.scraper_pod_labels)},
    }
    clients: list[k8s.networking.v1.NetworkPolicyPeerArgsDict] = [
        {"namespace_selector": {"match_labels": {NAMESPACE_NAME_LABEL: namespace}}}
        for namespace in args.client_namespaces
    ]
    if args.client_pod_labels:
        clients.append({"namespace_selector": {}, "pod_selector": {"match_labels": dict(args.client_pod_labels)}})
    if args.traffic is not None:  # the load generator, in the model's own namespace
        clients.append({"pod_selector": {"match_labels": traffic_selector_labels(args.model_name)}})
    ingress: list[k8s.networking.v1.NetworkPolicyIngressRuleArgsDict] = [{"from_": [prometheus], "ports": port}]
    if clients:
        ingress.append({"from_": clients, "ports": port})
    return {"pod_selector": {"match_labels": dict(selector)}, "policy_types": ["Ingress"], "ingress": ingress}


def _docker_config_json(credentials: RegistryCredentials) -> pulumi.Output[str]:
    """The ``.dockerconfigjson`` of an image pull Secret, kept secret."""

    def render(values: list[Any]) -> str:
        server, username, password = (str(v) for v in values)
        auth = base64.b64encode(f"{username}:{password}".encode()).decode()
        return json.dumps({"auths": {server: {"username": username, "password": password, "auth": auth}}})

    return pulumi.Output.secret(
        pulumi.Output.all(credentials.server, credentials.username, credentials.password).apply(render)
    )
