"""kube-prometheus-stack's Helm values, built from the typed configuration and the cluster's facts.

Helm ignores a misspelt key without a word, so values are never written by hand elsewhere: this module builds
all of them, and its test checks every key path it produces against the pinned chart's own defaults. The
discovery and dashboard contracts are built here too, and the selectors in the values are derived from them, so
that what Prometheus and Grafana select and what the monitors carry cannot drift apart.

Per platform (sources: ``../shared/facts/kube-prometheus-stack-platforms.md``):

- controller-manager, scheduler, etcd and kube-proxy are scraped only where the cluster exposes them (kind, whose
  cluster config binds them to the node's address, and an ``existing`` cluster that says so); on EKS, AKS and GKE
  their targets would stay down and their ``absent()`` alerts fire forever, so they are disabled with their rules
  and dashboards. Their ports are pinned rather than guessed by the chart from the Kubernetes version.
- GKE runs kube-dns, not CoreDNS; AKS's admissions enforcer rewrites webhook namespace selectors unless the
  webhook configurations opt out by annotation.
- Prometheus and Alertmanager get PersistentVolumes of the cluster's StorageClass (``emptyDir`` allowed locally).
- With high availability (on by default on the clouds), two Prometheus and three Alertmanager replicas, each with a
  PodDisruptionBudget and spread over nodes (required) and zones (required where nodes carry zones); the operator
  labels each Prometheus replica's series ``prometheus_replica`` (stores deduplicate on it, and the operator drops
  it from alerts, so both replicas' alerts are one to the clustered Alertmanagers).
- Stores (``components/monitoring/stores``) become ``additionalRemoteWrite`` entries (appended verbatim, where
  ``remoteWrite`` would be rendered as a template), Prometheus' service account and pod labels for a cloud
  identity, a Grafana data source per store with a query API, and the ThanosRuler that evaluates the SLO period's
  rules when a store of your own holds the period and Prometheus does not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi

from components.clusters.kinds import KINDS, ClusterKind
from components.contracts import (
    GRAFANA_NODE_PORT,
    NAME_LABEL,
    NAMESPACE_NAME_LABEL,
    RULE_EVALUATOR_LABEL,
    DashboardContract,
    DiscoveryContract,
)
from components.monitoring.config import AlertingConfig, MonitoringConfig
from components.monitoring.stores import MetricsStore, PrometheusBuild
from components.monitoring.stores.remote_write import grafana_data_sources, remote_write_entries, remote_write_entry
from components.monitoring.stores.thanos_ruler import ThanosRulerRules
from components.monitors.runbooks import LOCAL_GRAFANA_URL, RunbookLinks

RELEASE_LABEL = "release"
"""The label the chart's own ServiceMonitors and rules carry, with the release name as value (``releaseLabel``)."""


GRAFANA_DASHBOARD_LABEL = "grafana_dashboard"
GRAFANA_DASHBOARD_LABEL_VALUE = "1"
GRAFANA_FOLDER_ANNOTATION = "grafana_folder"
"""The chart's own dashboards carry ``grafana_dashboard: "1"``; the project's use the same, so one sidecar loads all."""

GRAFANA_ADMIN_USER_KEY = "admin-user"
GRAFANA_ADMIN_PASSWORD_KEY = "admin-password"
"""Keys of the admin Secret, as ``grafana.admin.userKey`` and ``passwordKey`` name them."""

GRAFANA_SERVICE_PORT = 80
PROMETHEUS_PORT = 9090
ALERTMANAGER_PORT = 9093

MONITOR_KINDS = ("serviceMonitor", "podMonitor", "rule", "probe", "scrapeConfig")
"""Every kind of object Prometheus selects by label: all use the discovery contract's labels."""
HOSTNAME_TOPOLOGY = "kubernetes.io/hostname"
ZONE_TOPOLOGY = "topology.kubernetes.io/zone"
OPERATOR_NAME_LABEL = "operator.prometheus.io/name"
"""Label the operator puts on a Prometheus' pods, with the Prometheus object's name."""
ALERTMANAGER_NAME_LABEL = "alertmanager"
"""Label the operator puts on an Alertmanager's pods, with the Alertmanager object's name."""

_CONTROL_PLANE_TARGETS: dict[str, dict[str, Any]] = {
    # Secure ports of Kubernetes >= 1.22/1.23, self-signed serving certificates (kubeadm).
    "kubeControllerManager": {
        "service": {"port": 10257, "targetPort": 10257},
        "serviceMonitor": {"https": True, "insecureSkipVerify": True},
    },
    "kubeScheduler": {
        "service": {"port": 10259, "targetPort": 10259},
        "serviceMonitor": {"https": True, "insecureSkipVerify": True},
    },
    # kubeadm's plain-HTTP metrics listener (--listen-metrics-urls), which needs no client certificate.
    "kubeEtcd": {"service": {"port": 2381, "targetPort": 2381}, "serviceMonitor": {"scheme": "http"}},
    "kubeProxy": {"service": {"port": 10249, "targetPort": 10249}, "serviceMonitor": {"https": False}},
}


def grafana_url(monitoring: MonitoringConfig, platform: ClusterKind, host_port: int | None) -> str | None:
    """Grafana's address as a person opens it: ``http://localhost:<host port>`` on kind (its NodePort mapped to
    the host), the Ingress URL if one is configured; ``None`` behind a ClusterIP Service (a port-forward)."""
    if KINDS[platform].grafana_node_port:
        return f"http://localhost:{host_port}"
    return monitoring.grafana.ingress.url


def runbook_links(grafana: str | None, alerting: AlertingConfig) -> RunbookLinks:
    """Where the alerts' runbook links point: ``alerting.runbookBaseUrl``, else the runbook dashboard of Grafana
    (at ``grafana``, or the port-forward's ``http://localhost:3000``)."""
    return RunbookLinks(grafana_url=grafana or LOCAL_GRAFANA_URL, base_url=alerting.runbook_base_url)


def discovery_contract(release_name: str) -> DiscoveryContract:
    """What a ServiceMonitor, PodMonitor or PrometheusRule must carry to be loaded: the release label, anywhere.

    The chart labels its own monitors (kubelet, kube-state-metrics, node-exporter…) with ``release: <release>``
    and nothing else that is common to all, so selecting by that label is the one choice that keeps them
    selected; the release is therefore always named explicitly.
    """
    return DiscoveryContract(labels={RELEASE_LABEL: release_name}, namespaces=None)


def dashboard_contract() -> DashboardContract:
    """How a ConfigMap becomes a Grafana dashboard: the sidecar's label, in any namespace, foldered by annotation."""
    return DashboardContract(
        label=GRAFANA_DASHBOARD_LABEL,
        label_value=GRAFANA_DASHBOARD_LABEL_VALUE,
        namespaces=None,
        folder_annotation=GRAFANA_FOLDER_ANNOTATION,
    )


@dataclass(frozen=True)
class ChartNames:
    """Names of the objects the chart creates (``fullnameOverride`` makes them the release name's) and of ours."""

    release: str

    @property
    def prometheus_service(self) -> str:
        return f"{self.release}-prometheus"

    @property
    def alertmanager_service(self) -> str:
        return f"{self.release}-alertmanager"

    @property
    def operator_service(self) -> str:
        """The operator's Service, which also serves its admission webhooks."""
        return f"{self.release}-operator"

    @property
    def admission_secret(self) -> str:
        """The Secret holding the webhooks' serving certificate (``ca``, ``cert``, ``key``), which the chart's
        certificate Jobs create and the operator mounts."""
        return f"{self.release}-admission"

    @property
    def prometheus(self) -> str:
        """The Prometheus object (and the operator's ``operator.prometheus.io/name`` of its pods)."""
        return f"{self.release}-prometheus"

    @property
    def prometheus_service_account(self) -> str:
        """Prometheus' service account, named explicitly: a cloud identity trusts it by name."""
        return f"{self.release}-prometheus"

    @property
    def alertmanager(self) -> str:
        """The Alertmanager object (and the ``alertmanager`` label of its pods)."""
        return f"{self.release}-alertmanager"

    @property
    def remote_write_secret(self) -> str:
        """The Secret holding the stores' credentials, which the operator reads for Prometheus and Thanos Ruler."""
        return f"{self.release}-remote-write"

    @property
    def export_lease(self) -> str:
        """The Lease the replicas of a Prometheus that exports by itself (GMP) elect their exporter with."""
        return f"{self.release}-prometheus-export"

    @property
    def grafana(self) -> str:
        """Grafana's Deployment and Service (the subchart's ``fullnameOverride``)."""
        return f"{self.release}-grafana"

    @property
    def grafana_admin_secret(self) -> str:
        return f"{self.release}-grafana-admin"

    @property
    def receivers_secret(self) -> str:
        return f"{self.release}-alertmanager-receivers"


def label_selector(labels: Mapping[str, str]) -> dict[str, Any]:
    return {"matchLabels": dict(labels)}


def namespace_selector(namespaces: tuple[str, ...] | None) -> dict[str, Any]:
    """``{}`` (every namespace) or the listed ones, by the name label the API server sets on each namespace."""
    if namespaces is None:
        return {}
    return {"matchExpressions": [{"key": NAMESPACE_NAME_LABEL, "operator": "In", "values": list(namespaces)}]}


def chart_values(
    *,
    monitoring: MonitoringConfig,
    alertmanager_config: Mapping[str, Any],
    platform: ClusterKind,
    control_plane_metrics: bool,
    storage_class: pulumi.Input[str] | None,
    discovery: DiscoveryContract,
    dashboards: DashboardContract,
    grafana_admin_secret: pulumi.Input[str],
    receivers_secret: pulumi.Input[str],
    external_labels: Mapping[str, pulumi.Input[str]] | None = None,
    stores: tuple[MetricsStore, ...] = (),
    remote_write_secret: pulumi.Input[str] | None = None,
    period_store: MetricsStore | None = None,
) -> dict[str, Any]:
    """The release's values: every setting of the stack, then ``monitoring.extraValues`` merged over them.

    ``storage_class`` is the cluster's (``None``: its default class); ``monitoring.storage.storageClass``
    overrides it. The Secret names are inputs so that the release depends on the Secrets it mounts.
    ``external_labels`` are the stack's (``cluster``, ``environment``), under ``monitoring.prometheus
    .externalLabels``; ``stores`` are written to, their credentials in ``remote_write_secret``; ``period_store``
    is the store that evaluates the SLO period's rules, if any does.
    """
    names = ChartNames(monitoring.release_name)
    resources = monitoring.resources
    prometheus = monitoring.prometheus
    facts = KINDS[platform]
    replicas = monitoring.prometheus_replicas(platform)
    secret_name = remote_write_secret if remote_write_secret is not None else names.remote_write_secret

    prometheus_spec: dict[str, Any] = {
        "replicas": replicas,
        "retention": prometheus.retention,
        "retentionSize": prometheus.retention_size,
        "scrapeInterval": prometheus.scrape_interval,
        "evaluationInterval": prometheus.evaluation_interval,
        "resources": resources.prometheus.as_values(),
        "storageSpec": _volume(monitoring, storage_class, prometheus.storage_size),
        "externalLabels": {**(external_labels or {}), **prometheus.external_labels},
    }
    for kind in MONITOR_KINDS:
        prometheus_spec[f"{kind}SelectorNilUsesHelmValues"] = False
        prometheus_spec[f"{kind}Selector"] = label_selector(discovery.labels)
        prometheus_spec[f"{kind}NamespaceSelector"] = namespace_selector(discovery.namespaces)
    # Rules a store's Thanos Ruler evaluates carry the evaluator label: Prometheus leaves them to it.
    prometheus_spec["ruleSelector"] = {
        **label_selector(discovery.labels),
        "matchExpressions": [{"key": RULE_EVALUATOR_LABEL, "operator": "DoesNotExist"}],
    }
    if replicas > 1:
        prometheus_spec["topologySpreadConstraints"] = _spread(
            {NAME_LABEL: "prometheus", OPERATOR_NAME_LABEL: names.prometheus}, zones_required=facts.nodes_in_zones
        )
    entries = remote_write_entries(list(stores), secret_name=secret_name, replicas=replicas)
    if entries:
        prometheus_spec["additionalRemoteWrite"] = entries
    identity_labels: dict[str, str] = {}
    identity_annotations: dict[str, pulumi.Input[str]] = {}
    for store in stores:
        if store.identity is not None:
            identity_labels |= store.identity.pod_labels
            identity_annotations |= store.identity.service_account_annotations
        if store.prometheus_build is not None:
            prometheus_spec |= _prometheus_build(store.prometheus_build, names, monitoring.namespace, replicas)
    if identity_labels:
        prometheus_spec["podMetadata"] = {"labels": identity_labels}

    admission_webhooks: dict[str, Any] = {"patch": {"resources": resources.admission_jobs.as_values()}}
    if facts.webhook_annotations:  # AKS's admissions enforcer would rewrite their namespaceSelector otherwise
        admission_webhooks["mutatingWebhookConfiguration"] = {"annotations": dict(facts.webhook_annotations)}
        admission_webhooks["validatingWebhookConfiguration"] = {"annotations": dict(facts.webhook_annotations)}

    alertmanager_replicas = monitoring.alertmanager_replicas(platform)
    alertmanager_spec: dict[str, Any] = {
        "replicas": alertmanager_replicas,
        "resources": resources.alertmanager.as_values(),
        "storage": _volume(monitoring, storage_class, monitoring.alertmanager.storage_size),
        "secrets": [receivers_secret],
    }
    if alertmanager_replicas > 1:
        alertmanager_spec["topologySpreadConstraints"] = _spread(
            {NAME_LABEL: "alertmanager", ALERTMANAGER_NAME_LABEL: names.alertmanager},
            zones_required=facts.nodes_in_zones,
        )
    values: dict[str, Any] = {
        "fullnameOverride": names.release,
        "crds": {"enabled": True},
        "prometheus": {
            "prometheusSpec": prometheus_spec,
            # Named, so that a cloud identity can trust it by name; annotated with the identity it acts as.
            "serviceAccount": {"name": names.prometheus_service_account, "annotations": identity_annotations},
            "podDisruptionBudget": _disruption_budget(replicas),
        },
        "alertmanager": {
            "config": _copy_tree(alertmanager_config),
            "alertmanagerSpec": alertmanager_spec,
            "podDisruptionBudget": _disruption_budget(alertmanager_replicas),
        },
        "prometheusOperator": {
            # The operator creates the kubelet's Service itself, outside the release: in kube-system (the
            # default) it would outlive an uninstall or a destroy, and a later release would scrape every kubelet
            # twice. In the monitoring namespace it goes with that namespace, and kube-system is left untouched
            # (on GKE Autopilot, which forbids writing there, this is required).
            "kubeletService": {"namespace": monitoring.namespace},
            "resources": resources.operator.as_values(),
            "prometheusConfigReloader": {"resources": resources.config_reloader.as_values()},
            "admissionWebhooks": admission_webhooks,
        },
        "grafana": _grafana(monitoring, platform, dashboards, grafana_admin_secret, names),
        "kubelet": {"namespace": monitoring.namespace},  # where the kubelet ServiceMonitor looks for that Service
        "kube-state-metrics": {"resources": resources.kube_state_metrics.as_values()},
        "prometheus-node-exporter": {
            "resources": resources.node_exporter.as_values(),
            "hostRootFsMount": {"enabled": monitoring.node_exporter.host_root_fs_mount},
        },
        **_control_plane(control_plane_metrics),
    }
    if facts.cluster_dns == "kube-dns":
        values["coreDns"] = {"enabled": False}
        values["kubeDns"] = {"enabled": True}
    if sources := grafana_data_sources(list(stores)):
        values["grafana"]["additionalDataSources"] = sources
    if period_store is not None and isinstance(period_store.rule_evaluator, ThanosRulerRules):
        values["thanosRuler"] = _thanos_ruler(monitoring, period_store, period_store.rule_evaluator, discovery,
                                              secret_name)
    return deep_merge(values, monitoring.extra_values)


def _spread(pod_labels: Mapping[str, str], *, zones_required: bool) -> list[dict[str, Any]]:
    """Replicas on different nodes (the scheduler must), and zones (must, where every node has one)."""
    selector = {"matchLabels": dict(pod_labels)}
    return [
        {"maxSkew": 1, "topologyKey": HOSTNAME_TOPOLOGY, "whenUnsatisfiable": "DoNotSchedule",
         "labelSelector": selector},
        {"maxSkew": 1, "topologyKey": ZONE_TOPOLOGY,
         "whenUnsatisfiable": "DoNotSchedule" if zones_required else "ScheduleAnyway", "labelSelector": selector},
    ]


def _disruption_budget(replicas: int) -> dict[str, Any]:
    """At most one replica evicted at a time; none for a single replica, whose budget would block every drain."""
    if replicas < 2:
        return {"enabled": False}
    return {"enabled": True, "minAvailable": replicas - 1}


def _prometheus_build(
    build: PrometheusBuild, names: ChartNames, namespace: str, replicas: int
) -> dict[str, Any]:
    """The image and flags of a Prometheus build that exports by itself; replicas elect one exporter."""
    repository, tag = build.image.rsplit(":", 1)
    registry, repository = repository.split("/", 1)
    args: list[dict[str, Any]] = [{"name": name, "value": value} for name, value in build.args.items()]
    args += [{"name": name, "value": value} for name, values in build.flag_lists.items() for value in values]
    if build.leader_lease and replicas > 1:
        args += [{"name": "export.ha.backend", "value": "kube"},
                 {"name": "export.ha.kube.namespace", "value": namespace},
                 {"name": "export.ha.kube.name", "value": names.export_lease}]
    return {
        "image": {"registry": registry, "repository": repository, "tag": tag},
        "version": tag.split("-", 1)[0],  # the Prometheus release it is built on, for the operator's config
        "additionalArgs": args,
    }


def _thanos_ruler(
    monitoring: MonitoringConfig,
    store: MetricsStore,
    evaluator: ThanosRulerRules,
    discovery: DiscoveryContract,
    secret_name: pulumi.Input[str],
) -> dict[str, Any]:
    """Thanos Ruler evaluating the rules labelled for ``store`` against its query API, writing back to it (no
    state of its own: stateless mode)."""
    return {
        "enabled": True,
        "thanosRulerSpec": {
            "queryEndpoints": [evaluator.query_url],
            "ruleSelectorNilUsesHelmValues": False,
            "ruleSelector": label_selector({**discovery.labels, RULE_EVALUATOR_LABEL: store.name}),
            "ruleNamespaceSelector": namespace_selector(discovery.namespaces),
            "evaluationInterval": monitoring.prometheus.evaluation_interval,
            "remoteWrite": [remote_write_entry(store, secret_name=secret_name, replicas=1)],
            "resources": monitoring.resources.thanos_ruler.as_values(),
        },
    }


def _volume(monitoring: MonitoringConfig, storage_class: pulumi.Input[str] | None, size: str) -> dict[str, Any]:
    """A volumeClaimTemplate, or ``{}`` (the operator's emptyDir)."""
    if monitoring.storage.empty_dir:
        return {}
    spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
    chosen = monitoring.storage.storage_class if monitoring.storage.storage_class is not None else storage_class
    if chosen is not None:
        spec["storageClassName"] = chosen
    return {"volumeClaimTemplate": {"spec": spec}}


def _control_plane(enabled: bool) -> dict[str, Any]:
    if not enabled:
        return {component: {"enabled": False} for component in _CONTROL_PLANE_TARGETS}
    return {component: {"enabled": True, **_copy_tree(v)} for component, v in _CONTROL_PLANE_TARGETS.items()}


def _grafana(
    monitoring: MonitoringConfig,
    platform: ClusterKind,
    dashboards: DashboardContract,
    admin_secret: pulumi.Input[str],
    names: ChartNames,
) -> dict[str, Any]:
    resources = monitoring.resources
    grafana: dict[str, Any] = {
        "fullnameOverride": names.grafana,
        # Credentials come from the Secret the stack generates; the chart then renders no password of its own.
        "admin": {
            "existingSecret": admin_secret,
            "userKey": GRAFANA_ADMIN_USER_KEY,
            "passwordKey": GRAFANA_ADMIN_PASSWORD_KEY,
        },
        "resources": resources.grafana.as_values(),
        "sidecar": {
            "resources": resources.grafana_sidecars.as_values(),
            "dashboards": {
                "enabled": True,
                "label": dashboards.label,
                "labelValue": dashboards.label_value,
                "searchNamespace": "ALL" if dashboards.namespaces is None else list(dashboards.namespaces),
                "folderAnnotation": dashboards.folder_annotation,
                # Both are needed for the folder annotation to create folders.
                "provider": {"foldersFromFilesStructure": True},
            },
        },
        # On kind the cluster config maps a host port to this NodePort: Grafana is on localhost without a tunnel.
        "service": (
            {"type": "NodePort", "nodePort": GRAFANA_NODE_PORT} if KINDS[platform].grafana_node_port
            else {"type": "ClusterIP"}
        ),
    }
    ingress = monitoring.grafana.ingress
    if ingress.enabled and ingress.host is not None:
        grafana["ingress"] = {
            "enabled": True,
            "hosts": [ingress.host],
            "path": "/",
            "annotations": dict(ingress.annotations),
            "tls": (
                [{"secretName": ingress.tls_secret_name, "hosts": [ingress.host]}] if ingress.tls_secret_name else []
            ),
        }
        if ingress.class_name is not None:
            grafana["ingress"]["ingressClassName"] = ingress.class_name
        grafana["grafana.ini"] = {"server": {"root_url": ingress.url}}
    return grafana


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` over ``base``, as Helm merges values: maps key by key, anything else (lists too) replaces.

    >>> deep_merge({"a": {"b": 1, "c": [1]}}, {"a": {"c": [2], "d": 3}})
    {'a': {'b': 1, 'c': [2], 'd': 3}}
    """
    merged = {key: _copy_tree(value) for key, value in base.items()}
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = _copy_tree(value)
    return merged


def _copy_tree(value: Any) -> Any:
    """A copy of the maps and lists, sharing the leaves: an ``Output`` leaf must not be deep-copied."""
    if isinstance(value, Mapping):
        return {key: _copy_tree(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy_tree(item) for item in value]
    return value
