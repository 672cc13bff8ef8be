"""The kube-prometheus-stack release as a component: Prometheus, Alertmanager and Grafana for one environment.

Values come from typed configuration (``components.monitoring.values``), the Alertmanager configuration from one
pure function (``components.monitoring.alertmanager``), and credentials from Secrets the component creates, so that
nothing secret is ever part of the Helm values and no password is a default anyone knows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
import yaml

from components.clusters.kinds import CLUSTER_KINDS, KINDS, ClusterKind
from components.contracts import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    PART_OF_LABEL,
    POD_SECURITY_ENFORCE_LABEL,
    PROJECT,
    DashboardContract,
    DiscoveryContract,
)
from components.contracts import common_labels as project_labels
from components.monitoring.alertmanager import ALERTMANAGER_SECRETS_MOUNT, receiver_secrets, render_alertmanager_config
from components.monitoring.config import AlertingConfig, MonitoringConfig
from components.monitoring.stores import MetricsStore, remote_write
from components.monitoring.values import (
    ALERTMANAGER_PORT,
    GRAFANA_ADMIN_PASSWORD_KEY,
    GRAFANA_ADMIN_USER_KEY,
    GRAFANA_SERVICE_PORT,
    PROMETHEUS_PORT,
    ChartNames,
    chart_values,
    dashboard_contract,
    discovery_contract,
    grafana_url,
    runbook_links,
)
from components.monitors.runbooks import RunbookLinks

CHART_NAME = "kube-prometheus-stack"
MAX_HISTORY = 10
"""Helm release revisions kept: enough to roll back, few enough that the release Secrets stay small."""


@dataclass(frozen=True, kw_only=True)
class MonitoringStackArgs:
    """What the monitoring stack needs: its settings (its own section types, validated when built) and the facts
    of the cluster it runs on."""

    monitoring: MonitoringConfig
    """The stack's ``monitoring`` section: chart source, namespace, release name, Prometheus, resources…"""
    alerting: AlertingConfig
    """The stack's ``alerting`` section: receivers (with their credentials) and grouping intervals."""
    platform: ClusterKind
    """The cluster's kind (``Cluster.kind``): chooses Grafana's Service type and the platform's chart settings."""
    control_plane_metrics: bool
    """Whether controller-manager, scheduler, etcd and kube-proxy metrics are reachable (``Cluster``)."""
    storage_class: pulumi.Input[str] | None
    """StorageClass of the volumes (``Cluster.default_storage_class``); ``None``: the cluster's default class."""
    grafana_host_port: int | None = None
    """On kind, the host port the cluster maps to Grafana's NodePort (``cluster.grafanaHostPort``)."""
    external_labels: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    """Labels of every series sent to a store: ``cluster`` and ``environment`` (``monitoring.prometheus
    .externalLabels`` is merged over them)."""
    stores: tuple[MetricsStore, ...] = ()
    """Stores Prometheus writes to (``components.monitoring.stores.connect_store``), in order."""
    period_store: MetricsStore | None = None
    """The store that evaluates the SLO period's rules for models whose period Prometheus does not keep; with a
    Thanos Ruler evaluator, the stack runs that ruler."""

    def __post_init__(self) -> None:
        if self.platform not in CLUSTER_KINDS:
            raise ValueError(f"platform must be one of {', '.join(CLUSTER_KINDS)} (got {self.platform!r})")
        if KINDS[self.platform].grafana_node_port and self.grafana_host_port is None:
            raise ValueError("grafana_host_port is required on kind: Grafana is reached through it")
        # The stack configuration refuses these before anything is declared; this guards direct callers.
        if problems := self.monitoring.problems_on(self.platform):
            raise pulumi.RunError("; ".join(f"{PROJECT}:monitoring.{key}: {problem}" for key, problem in problems))


class MonitoringStack(pulumi.ComponentResource):
    """kube-prometheus-stack in its own namespace, with generated Grafana credentials and Alertmanager routing.

    Creates the Namespace, a ``RandomPassword`` and the Secret Grafana reads its admin credentials from, the
    Secret holding the receivers' credentials (mounted by Alertmanager, read through ``*_file`` fields), and the
    Helm ``Release`` (CRDs included). Honours two contracts it exports: ``discovery`` (the labels Prometheus
    selects ServiceMonitors, PodMonitors and PrometheusRules by) and ``dashboards`` (the label Grafana's sidecar
    loads dashboard ConfigMaps by). Anything that creates monitoring.coreos.com objects must depend on
    ``release``, which installs their CRDs.
    """

    TYPE = "mlobs:monitoring:MonitoringStack"

    namespace: pulumi.Output[str]
    """The monitoring namespace."""
    release: k8s.helm.v3.Release
    """The Helm release: ``depends_on`` it for anything that needs the monitoring CRDs or the operator."""
    release_name: str
    """Helm release name (also the value of the ``release`` label monitors carry)."""
    chart_version: str
    """Version of kube-prometheus-stack installed."""
    discovery: DiscoveryContract
    """Labels (and namespaces) a ServiceMonitor, PodMonitor or PrometheusRule needs to be loaded."""
    dashboards: DashboardContract
    """Label, value, namespaces and folder annotation of a Grafana dashboard ConfigMap."""
    grafana_url: str | None
    """Grafana's URL from outside the cluster: ``http://localhost:<port>`` on kind, the Ingress URL if any."""
    grafana_port_forward: str | None
    """The ``kubectl port-forward`` command that opens Grafana on http://localhost:3000 (ClusterIP Service)."""
    runbook_links: RunbookLinks
    """Where the alerts' runbook links point: the runbook dashboard of this Grafana, or ``alerting.runbookBaseUrl``."""
    grafana_admin_user: str
    """Grafana's admin user name."""
    grafana_admin_password: pulumi.Output[str]
    """Grafana's admin password, generated (secret)."""
    prometheus_url: str
    """Prometheus' in-cluster URL."""
    alertmanager_url: str
    """Alertmanager's in-cluster URL."""
    store_outputs: dict[str, dict[str, pulumi.Input[object]]]
    """Per store Prometheus writes to: its kind and what a person needs of it (a workspace's id, its endpoint)."""

    def __init__(self, name: str, args: MonitoringStackArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(self.TYPE, name, None, opts)
        config = args.monitoring
        names = ChartNames(config.release_name)
        chart, version, repository = _chart_reference(config)
        child = pulumi.ResourceOptions(parent=self)

        namespace = k8s.core.v1.Namespace(
            f"{name}-ns",
            metadata={
                "name": config.namespace,
                "labels": {
                    PART_OF_LABEL: PROJECT,
                    MANAGED_BY_LABEL: MANAGED_BY,
                    # node-exporter needs the host's network, PIDs and filesystem, which the baseline and
                    # restricted Pod Security levels reject on clusters that enforce one by default.
                    POD_SECURITY_ENFORCE_LABEL: "privileged",
                },
            },
            opts=child,
        )
        password = random.RandomPassword(f"{name}-grafana-password", length=32, special=False, opts=child)
        grafana_secret = k8s.core.v1.Secret(
            f"{name}-grafana-admin",
            metadata={
                "name": names.grafana_admin_secret,
                "namespace": namespace.metadata.name,
                "labels": project_labels("grafana", config.release_name, "admin-credentials"),
            },
            type="Opaque",
            string_data={
                GRAFANA_ADMIN_USER_KEY: config.grafana.admin_user,
                GRAFANA_ADMIN_PASSWORD_KEY: password.result,
            },
            opts=child,
        )
        remote_write_secret = self._remote_write_secret(name, args, names, namespace)
        elects_exporter = any(store.prometheus_build and store.prometheus_build.leader_lease for store in args.stores)
        if elects_exporter and config.prometheus_replicas(args.platform) > 1:
            self._export_lease_access(name, names, namespace)
        receivers_secret = k8s.core.v1.Secret(
            f"{name}-alertmanager-receivers",
            metadata={
                "name": names.receivers_secret,
                "namespace": namespace.metadata.name,
                "labels": project_labels("alertmanager", config.release_name, "receiver-credentials"),
            },
            type="Opaque",
            # None rather than {} when no receiver is configured: the provider stores no empty stringData, so an
            # empty map would show as "+stringData" and replace the Secret on every update.
            string_data={
                key: pulumi.Output.secret(value) for key, value in receiver_secrets(args.alerting).items()
            }
            or None,
            opts=child,
        )

        self.discovery = discovery_contract(config.release_name)
        self.dashboards = dashboard_contract()
        alertmanager_config = render_alertmanager_config(
            args.alerting, secrets_dir=f"{ALERTMANAGER_SECRETS_MOUNT}/{names.receivers_secret}"
        )
        values = chart_values(
            monitoring=config,
            alertmanager_config=alertmanager_config,
            platform=args.platform,
            control_plane_metrics=args.control_plane_metrics,
            storage_class=args.storage_class,
            discovery=self.discovery,
            dashboards=self.dashboards,
            grafana_admin_secret=grafana_secret.metadata.name,
            receivers_secret=receivers_secret.metadata.name,
            external_labels=args.external_labels,
            stores=args.stores,
            remote_write_secret=remote_write_secret.metadata.name if remote_write_secret is not None else None,
            period_store=args.period_store,
        )
        self.release = k8s.helm.v3.Release(
            f"{name}-release",
            # Named explicitly: the name is the `release` label every monitor is selected by.
            name=config.release_name,
            chart=chart,
            version=version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=repository) if repository is not None else None,
            namespace=namespace.metadata.name,
            values=values,
            skip_crds=False,
            timeout=config.timeout_seconds,
            cleanup_on_fail=True,
            max_history=MAX_HISTORY,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[grafana_secret, receivers_secret, *([remote_write_secret] if remote_write_secret else [])],
            ),
        )

        self.namespace = namespace.metadata.name
        self.release_name = config.release_name
        self.chart_version = config.chart.version
        self.grafana_url = grafana_url(config, args.platform, args.grafana_host_port)
        self.grafana_port_forward = (
            None
            if KINDS[args.platform].grafana_node_port
            else f"kubectl --namespace {config.namespace} port-forward service/{names.grafana} "
            f"3000:{GRAFANA_SERVICE_PORT}"
        )
        self.runbook_links = runbook_links(self.grafana_url, args.alerting)
        self.grafana_admin_user = config.grafana.admin_user
        self.grafana_admin_password = pulumi.Output.secret(password.result)
        self.store_outputs = {store.name: {"kind": store.kind, **store.outputs} for store in args.stores}
        self.prometheus_url = f"http://{names.prometheus_service}.{config.namespace}.svc:{PROMETHEUS_PORT}"
        self.alertmanager_url = f"http://{names.alertmanager_service}.{config.namespace}.svc:{ALERTMANAGER_PORT}"
        self.register_outputs(
            {
                "namespace": self.namespace,
                "release": self.release,
                "releaseName": self.release_name,
                "chartVersion": self.chart_version,
                "discoveryLabels": dict(self.discovery.labels),
                "dashboardLabels": self.dashboards.labels,
                "grafanaUrl": self.grafana_url,
                "grafanaPortForward": self.grafana_port_forward,
                "grafanaAdminUser": self.grafana_admin_user,
                "grafanaAdminPassword": self.grafana_admin_password,
                "prometheusUrl": self.prometheus_url,
                "alertmanagerUrl": self.alertmanager_url,
                "stores": self.store_outputs,
            }
        )

    def _remote_write_secret(
        self, name: str, args: MonitoringStackArgs, names: ChartNames, namespace: k8s.core.v1.Namespace
    ) -> k8s.core.v1.Secret | None:
        """The stores' credentials, which the operator reads for Prometheus (and Thanos Ruler); none without any."""
        data = remote_write.secret_data(list(args.stores))
        if not data:
            return None
        return k8s.core.v1.Secret(
            f"{name}-remote-write",
            metadata={
                "name": names.remote_write_secret,
                "namespace": namespace.metadata.name,
                "labels": project_labels("prometheus", names.release, "remote-write-credentials"),
            },
            type="Opaque",
            string_data=data,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _export_lease_access(self, name: str, names: ChartNames, namespace: k8s.core.v1.Namespace) -> None:
        """Let Prometheus' replicas hold the Lease they elect their exporter with (GMP's ``export.ha``)."""
        child = pulumi.ResourceOptions(parent=self)
        metadata = k8s.meta.v1.ObjectMetaArgs(
            name=names.export_lease,
            namespace=namespace.metadata.name,
            labels=project_labels("prometheus", names.release, "export-lease"),
        )
        role = k8s.rbac.v1.Role(
            f"{name}-export-lease",
            metadata=metadata,
            rules=[k8s.rbac.v1.PolicyRuleArgs(
                api_groups=["coordination.k8s.io"], resources=["leases"],
                verbs=["get", "list", "watch", "create", "update", "patch"],
            )],
            opts=child,
        )
        k8s.rbac.v1.RoleBinding(
            f"{name}-export-lease",
            metadata=metadata,
            role_ref=k8s.rbac.v1.RoleRefArgs(api_group="rbac.authorization.k8s.io", kind="Role",
                                             name=role.metadata.name),
            subjects=[k8s.rbac.v1.SubjectArgs(kind="ServiceAccount", name=names.prometheus_service_account,
                                              namespace=namespace.metadata.name)],
            opts=child,
        )

    def stack_outputs(self) -> dict[str, pulumi.Input[object]]:
        """What a person needs to reach the stack, as the program exports it (the password is a secret)."""
        outputs: dict[str, pulumi.Input[object]] = {
            "monitoringNamespace": self.namespace,
            "monitoringRelease": self.release_name,
            "monitoringChartVersion": self.chart_version,
            "monitorLabels": dict(self.discovery.labels),
            "dashboardLabels": self.dashboards.labels,
        }
        if self.grafana_url is not None:
            outputs["grafanaUrl"] = self.grafana_url
        if self.grafana_port_forward is not None:
            outputs["grafanaPortForward"] = self.grafana_port_forward
        outputs |= {
            "grafanaAdminUser": self.grafana_admin_user,
            "grafanaAdminPassword": self.grafana_admin_password,
            "prometheusUrl": self.prometheus_url,
            "alertmanagerUrl": self.alertmanager_url,
        }
        if self.store_outputs:
            outputs["metricsStores"] = self.store_outputs
        return outputs


def _chart_reference(config: MonitoringConfig) -> tuple[str, str | None, str | None]:
    """``(chart, version, repository)`` for the Release, from the configured source.

    A local folder is checked now: Helm would install whatever version the folder holds, so a copy that is not
    the configured version fails here rather than after an unintended upgrade.
    """
    source = config.chart
    if source.oci is not None:
        return source.oci, source.version, None
    if source.path is None:
        return CHART_NAME, source.version, source.repository
    chart_file = Path(source.path).expanduser() / "Chart.yaml"
    if not chart_file.is_file():
        raise pulumi.RunError(
            f"{PROJECT}:monitoring.chart.path: no Chart.yaml in {chart_file.parent} (got {source.path!r}); point it "
            f"at the unpacked {CHART_NAME} chart (helm pull prometheus-community/{CHART_NAME} --version "
            f"{source.version} --untar)"
        )
    chart = yaml.safe_load(chart_file.read_text()) or {}
    if chart.get("name") != CHART_NAME or str(chart.get("version")) != source.version:
        raise pulumi.RunError(
            f"{PROJECT}:monitoring.chart.path: {chart_file} holds {chart.get('name')} {chart.get('version')}, not "
            f"{CHART_NAME} {source.version}; set monitoring.chart.version to the folder's version or replace the "
            "folder"
        )
    return str(Path(source.path).expanduser()), None, None
