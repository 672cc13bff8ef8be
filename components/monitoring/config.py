"""The stack file's ``monitoring`` and ``alerting`` sections: the kube-prometheus-stack release and Alertmanager's
receivers and routing, per team."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator

from components.clusters.kinds import KINDS, ClusterKind
from components.config.fields import (
    CPU_QUANTITY,
    DNS_LABEL,
    MEMORY_QUANTITY,
    DnsLabel,
    PrometheusLabelName,
    Section,
    Window,
    http_url,
    memory_bytes,
)
from components.monitoring.stores.config import (
    HA_TRACKER_REPLICA_LABEL,
    PROMETHEUS_REPLICA_LABEL,
    StoreConfig,
    store_problems,
)

# The monitoring stack (kube-prometheus-stack) ----------------------------------------------------------------

HA_PROMETHEUS_REPLICAS = 2
HA_ALERTMANAGER_REPLICAS = 3
"""Replicas with high availability: a Prometheus pair (either scrapes and alerts alone), and an Alertmanager trio
(a majority survives one pod's loss, and a drained node never takes the last one)."""

KUBE_PROMETHEUS_STACK_VERSION = "88.5.3"
"""The chart version the project is tested against: the tests read this version's values, templates and CRDs."""
PROMETHEUS_COMMUNITY_REPOSITORY = "https://prometheus-community.github.io/helm-charts"
PROMETHEUS_SIZE = r"^(0|([0-9]*[.])?[0-9]+((K|M|G|T|E|P)i?)?B)$"
"""A size as the Prometheus CRD validates ``spec.retentionSize``."""
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
    thanos_ruler: ContainerResourcesConfig = Field(
        _resources("50m", "128Mi", "512Mi"),
        description="Thanos Ruler, when a store of your own evaluates the SLO period's rules.",
        examples=[{"memoryLimit": "1Gi"}],
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


RESERVED_EXTERNAL_LABELS = ("prometheus", PROMETHEUS_REPLICA_LABEL, HA_TRACKER_REPLICA_LABEL)
"""External labels the operator or a store's deduplication owns: ``prometheus`` (``<namespace>/<name>``, the same on
every replica) and the replica labels."""


class PrometheusConfig(Section):
    """The Prometheus server: how long it keeps data, how often it scrapes, how many replicas."""

    retention: Window = Field(
        "30d",
        description="How long samples are kept: at least the longest window the rules read (the SLO period), "
        "unless a remote-write store that evaluates the period's rules holds the data.",
        examples=["45d"],
    )
    retention_size: str = Field(
        "8GiB",
        pattern=PROMETHEUS_SIZE,
        description="Most disk the samples may use; keep it below 90% of storageSize (WAL and compaction need "
        "the rest).",
        examples=["40GiB"],
    )
    scrape_interval: Window = Field("30s", description="Default interval between scrapes.", examples=["60s"])
    evaluation_interval: Window = Field("30s", description="Interval between rule evaluations.", examples=["60s"])
    replicas: int | None = Field(
        None, ge=1, le=5,
        description="Prometheus replicas, each scraping everything (an HA pair: stores deduplicate them on the "
        "replica label); unset: 2 with highAvailability, else 1.",
        examples=[2],
    )
    external_labels: dict[PrometheusLabelName, str] = Field(
        default_factory=dict,
        description="Labels every series sent to a store carries, besides `cluster` (the cluster's name) and "
        "`environment` (the stack's), which these may override.",
        examples=[{"cluster": "prod-eu-1", "region": "eu-west-1"}],
    )

    @field_validator("external_labels")
    @classmethod
    def _not_reserved(cls, value: dict[str, str]) -> dict[str, str]:
        taken = sorted(set(value) & set(RESERVED_EXTERNAL_LABELS))
        if taken:
            raise ValueError(f"{', '.join(taken)} belong to the operator and the stores' deduplication (got them in "
                             "externalLabels); remove them")
        empty = sorted(key for key, label in value.items() if not label)
        if empty:
            raise ValueError(f"an empty value removes nothing and adds nothing (got {', '.join(empty)}); remove it")
        templated = sorted(key for key, label in value.items() if "{{" in label)
        if templated:
            raise ValueError(f"the chart renders external labels as Go templates, so a value may not contain '{{{{' "
                             f"(got it in {', '.join(templated)}); change it")
        return value
    storage_size: str = Field(
        "10Gi", pattern=MEMORY_QUANTITY, description="Size of each replica's volume.", examples=["50Gi"]
    )


class AlertmanagerConfig(Section):
    """The Alertmanager cluster; its routing and receivers are the `alerting` section."""

    replicas: int | None = Field(
        None, ge=1, le=5,
        description="Alertmanager replicas, clustered (they gossip silences and what they notified, so an alert "
        "is notified once); unset: 3 with highAvailability, else 1.",
        examples=[3],
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
    high_availability: bool | None = Field(
        None,
        description="Two Prometheus and three Alertmanager replicas (unless set), PodDisruptionBudgets, and pods "
        "spread over nodes and zones; unset: on for eks, aks and gke, off for kind and existing.",
        examples=[True],
    )
    remote_write: tuple[StoreConfig, ...] = Field(
        (),
        description="Distributed stores Prometheus writes to, each a `kind`: generic (Thanos, Mimir, Cortex, "
        "VictoriaMetrics), amp (EKS), azureMonitor (AKS), gmp (GKE).",
        examples=[[{"name": "thanos", "kind": "generic", "url": "https://receive.example.com/api/v1/receive"}]],
    )
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

    def high_availability_on(self, kind: ClusterKind) -> bool:
        """Whether the stack runs Prometheus and Alertmanager highly available on a cluster of ``kind``."""
        return KINDS[kind].high_availability_by_default if self.high_availability is None else self.high_availability

    def prometheus_replicas(self, kind: ClusterKind) -> int:
        if self.prometheus.replicas is not None:
            return self.prometheus.replicas
        return HA_PROMETHEUS_REPLICAS if self.high_availability_on(kind) else 1

    def alertmanager_replicas(self, kind: ClusterKind) -> int:
        if self.alertmanager.replicas is not None:
            return self.alertmanager.replicas
        return HA_ALERTMANAGER_REPLICAS if self.high_availability_on(kind) else 1

    def problems_on(self, kind: ClusterKind) -> list[tuple[str, str]]:
        """What this monitoring section cannot do on a cluster of ``kind``: ``(key path within the section,
        problem)``, empty when it fits."""
        problems = [(f"remoteWrite[{index}]", problem) for index, problem in store_problems(self.remote_write, kind)]
        if self.storage.empty_dir and not KINDS[kind].ephemeral_monitoring_storage:
            problems.append((
                "storage.emptyDir",
                "loses Prometheus' data with every pod restart, which only the local kind stack accepts (got emptyDir "
                f"on a {kind} cluster); remove it: pulumi config rm --path 'monitoring.storage.emptyDir'",
            ))
        return problems


# Alerting: Alertmanager's receivers and routing ---------------------------------------------------------------


class PagerDutyReceiverConfig(Section):
    """PagerDuty, through the Events API v2: where `critical` alerts page."""

    routing_key: SecretStr | None = Field(
        None,
        min_length=1,
        description="Integration key of a PagerDuty service's Events API v2 integration; set it with --secret.",
        examples=["<integration key>"],
    )

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

    # Alertmanager reads a ``*_file`` URL only when it notifies: its form is checked now rather than at 3 a.m.
    _webhook_url = field_validator("webhook_url")(http_url)

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

    _url = field_validator("url")(http_url)

    @property
    def configured(self) -> bool:
        return self.url is not None


class TeamReceiversConfig(Section):
    """The receivers of one team: its models' alerts go to them instead of the platform's, severity by severity."""

    pagerduty: PagerDutyReceiverConfig = PagerDutyReceiverConfig()
    slack: SlackReceiverConfig = SlackReceiverConfig()
    webhook: WebhookReceiverConfig = WebhookReceiverConfig()


class AlertingConfig(Section):
    """Alertmanager's receivers and routing: by team first, then `critical` pages, `warning` posts, `info` is never
    notified.

    The top-level receivers are the platform's: they get the alerts of models without a team, the cluster's own
    (kube-prometheus-stack's rules), and a team's alerts of a severity the team has no receiver for. Receivers
    without credentials are left out; with none at all every alert goes to the null receiver, the safe default for
    a new stack. Credentials are secret: set them with ``pulumi config set --secret --path
    'alerting.<receiver>.<key>'`` (or ``'alerting.teams.<team>.<receiver>.<key>'``), which encrypts them in the
    stack file.
    """

    pagerduty: PagerDutyReceiverConfig = PagerDutyReceiverConfig()
    slack: SlackReceiverConfig = SlackReceiverConfig()
    webhook: WebhookReceiverConfig = WebhookReceiverConfig()
    teams: dict[DnsLabel, TeamReceiversConfig] = Field(
        default_factory=dict,
        description="Receivers per team, by team name (a model's `team`).",
        examples=[{"fraud": {"slack": {"channel": "#fraud-alerts"}}}],
    )
    group_by: tuple[PrometheusLabelName, ...] = Field(
        ("namespace", "alertname"),
        min_length=1,
        description="Labels that put alerts into one notification.",
        examples=[["namespace", "alertname", "model"]],
    )
    group_wait: Window = Field("30s", description="Wait before the first notification of a new group.",
                               examples=["1m"])
    group_interval: Window = Field("5m", description="Wait before notifying about alerts added to a group.",
                                   examples=["10m"])
    repeat_interval: Window = Field("4h", description="Wait before repeating a notification that still fires.",
                                    examples=["12h"])
    resolve_timeout: Window = Field(
        "5m", description="When an alert without an end time is considered resolved.", examples=["10m"],
    )
    inhibit_equal: tuple[PrometheusLabelName, ...] = Field(
        ("alertname", "namespace"),
        description="Labels a `critical` alert and a `warning` alert must share for the first to mute the second; "
        "alertname and namespace at least.",
        examples=[["alertname", "namespace", "model"]],
    )

    runbook_base_url: str | None = Field(
        None,
        pattern=r"^https?://[^\s]+$",
        description="URL of a published copy of this repository's runbooks/ folder, which every alert's "
        "runbook_url then points at; unset: the runbook dashboard of the stack's own Grafana. Needed when alerts "
        "go to receivers and Grafana has no address of its own (monitoring.grafana.ingress).",
        examples=["https://git.example.com/platform/ml-observability/-/blob/main/runbooks"],
    )

    @property
    def notifies(self) -> bool:
        """Whether any alert leaves the cluster: a receiver of the platform or of a team has its credentials."""
        sets: list[AlertingConfig | TeamReceiversConfig] = [self, *self.teams.values()]
        return any(s.pagerduty.configured or s.slack.configured or s.webhook.configured for s in sets)

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
