"""The stack file's sections as the components' args: the one place that knows both.

Components take typed args (dataclasses, and for their settings the section types they own), never the stack file
itself, so that a program of your own can build the same args without a stack file. ``__main__.py`` reads the
configuration, asks this module for each component's args, and declares the components.
"""

from __future__ import annotations

import pulumi

from components.clusters import Cluster
from components.clusters.args import (
    AksClusterArgs,
    ClusterArgs,
    EksClusterArgs,
    ExistingClusterArgs,
    GkeClusterArgs,
    KindClusterArgs,
    RegistryCredentials,
)
from components.clusters.config import (
    AksClusterConfig,
    ClusterConfig,
    EksClusterConfig,
    ExistingClusterConfig,
    GkeClusterConfig,
    KindClusterConfig,
)
from components.clusters.metrics_server import MetricsServerArgs
from components.config.stack import StackConfig
from components.contracts import CLUSTER_LABEL, ENVIRONMENT_LABEL, DiscoveryContract
from components.model.config import ModelConfig
from components.model.deployment import (
    Autoscaling,
    Canary,
    ContainerResources,
    FaultInjection,
    ModelDeploymentArgs,
    SyntheticTraffic,
)
from components.model.image import ModelImageArgs
from components.model.observed import ExternalService, ObservedModelArgs
from components.monitoring.stack import MonitoringStack, MonitoringStackArgs
from components.monitoring.stores import MetricsStore, StoreContext
from components.monitoring.values import ChartNames, discovery_contract
from components.monitors.model_dashboards import ModelDashboardsArgs
from components.monitors.rule_evaluators import RuleEvaluator
from components.monitors.runbooks import RunbookLinks


def cluster_args(config: ClusterConfig) -> ClusterArgs:
    """The cluster component's args: the section's fields, one for one (the registry's password stays secret)."""
    fields = config.model_dump(exclude={"kind"})
    if isinstance(config, KindClusterConfig):
        return KindClusterArgs(kubernetes_version=config.kubernetes_version, **fields)
    if isinstance(config, ExistingClusterConfig):
        registry = config.registry
        credentials = None
        if registry is not None and registry.username is not None and registry.password is not None:
            credentials = RegistryCredentials(
                server=registry.host,
                username=registry.username,
                password=pulumi.Output.secret(registry.password.get_secret_value()),
            )
        return ExistingClusterArgs(
            kubeconfig=config.kubeconfig,
            context=config.context,
            kubernetes_version=config.kubernetes_version,
            storage_class=config.storage_class,
            control_plane_metrics=config.control_plane_metrics,
            registry_address=registry.address if registry is not None else None,
            registry_credentials=credentials,
            image_platform=config.image_platform,
        )
    if isinstance(config, EksClusterConfig):
        return EksClusterArgs(**fields)
    if isinstance(config, AksClusterConfig):
        return AksClusterArgs(**fields)
    assert isinstance(config, GkeClusterConfig)
    return GkeClusterArgs(**fields)


def external_labels(config: StackConfig, cluster: Cluster) -> dict[str, pulumi.Input[str]]:
    """The labels every series sent to a store carries: the cluster's name and the stack's, unless configured."""
    labels: dict[str, pulumi.Input[str]] = {CLUSTER_LABEL: cluster.cluster_name, ENVIRONMENT_LABEL: pulumi.get_stack()}
    return labels | config.monitoring.prometheus.external_labels


def store_context(config: StackConfig, cluster: Cluster) -> StoreContext:
    """What the stores' connectors need of the cluster and of the monitoring stack they serve."""
    monitoring = config.monitoring
    return StoreContext(
        cluster=cluster,
        cluster_label=external_labels(config, cluster)[CLUSTER_LABEL],
        monitoring_namespace=monitoring.namespace,
        prometheus_service_account=ChartNames(monitoring.release_name).prometheus_service_account,
        discovery_labels=discovery_contract(monitoring.release_name).labels,
    )


def period_store(config: StackConfig, stores: tuple[MetricsStore, ...]) -> MetricsStore | None:
    """The store that evaluates the SLO period's rules, if a model's period outlasts Prometheus' retention."""
    chosen = config.period_store
    if chosen is None or not any(config.period_evaluated_by_store(m) for m in config.models.values()):
        return None
    return next(store for store in stores if store.name == chosen.name)


def period_evaluator(config: StackConfig, model: ModelConfig, stores: tuple[MetricsStore, ...]) -> RuleEvaluator | None:
    """Who evaluates ``model``'s SLO period recordings: ``None`` (its cluster's Prometheus) when Prometheus keeps
    a whole period, else the period store."""
    store = period_store(config, stores)
    if store is None or not config.period_evaluated_by_store(model):
        return None
    return store.rule_evaluator


def monitoring_stack_args(
    config: StackConfig, cluster: Cluster, stores: tuple[MetricsStore, ...] = ()
) -> MonitoringStackArgs:
    """The monitoring stack's args on ``cluster``, every cluster fact taken from the cluster component itself, and
    the ``stores`` connected for ``config.monitoring.remoteWrite``."""
    return MonitoringStackArgs(
        monitoring=config.monitoring,
        alerting=config.alerting,
        platform=cluster.kind,
        control_plane_metrics=cluster.control_plane_metrics,
        storage_class=cluster.default_storage_class,
        grafana_host_port=cluster.grafana_host_port,
        external_labels=external_labels(config, cluster),
        stores=stores,
        period_store=period_store(config, stores),
    )


def installs_metrics_server(config: StackConfig) -> bool:
    """Whether any deployed model autoscales on a cluster that lacks metrics-server (one release serves all)."""
    kind = config.cluster.kind
    return any(model.autoscaling.installs_metrics_server_on(kind) for model in config.deployed_models.values())


def metrics_server_args(cluster: Cluster) -> MetricsServerArgs:
    return MetricsServerArgs(kubelet_insecure_tls=not cluster.facts.kubelet_certificates_signed)


def model_image_args(cluster: Cluster) -> ModelImageArgs:
    return ModelImageArgs(cluster=cluster)


def observed_model_args(
    name: str,
    model: ModelConfig,
    *,
    cluster: Cluster,
    discovery: DiscoveryContract,
    scrape_from_namespace: pulumi.Input[str],
    namespace: pulumi.Input[str] | None = None,
    sample_image: pulumi.Input[str] | None = None,
    image_pull_credentials: RegistryCredentials | None = None,
    period_evaluator: RuleEvaluator | None = None,
    runbooks: RunbookLinks | None = None,
) -> ObservedModelArgs:
    """The args of model ``name``: its deployment (into ``namespace``, the program's ``ModelNamespace``, running
    ``model.image`` or the stack's ``sample_image``), or its external service; its monitors, its team, and the
    store that evaluates its SLO period (``period_evaluator``), and where its runbook links point (``runbooks``, the
    monitoring stack's ``runbook_links``)."""
    links = runbooks if runbooks is not None else RunbookLinks()
    if model.external is not None:
        external = model.external
        return ObservedModelArgs(
            name=name,
            team=model.team,
            service=ExternalService(
                namespace=external.namespace,
                selector=dict(external.selector),
                port=external.port,
                metrics_path=external.metrics_path,
                workload=external.workload,
                workload_kind=external.workload_kind,
            ),
            discovery=discovery,
            monitors=model.monitors,
            period_evaluator=period_evaluator,
            runbooks=links,
        )
    image = model.image if model.image is not None else sample_image
    if image is None:
        raise ValueError(f"model {name!r} runs the sample image: pass the stack's sample_image")
    autoscaling, faults, policy = model.autoscaling, model.faults, model.network_policy
    deployment = ModelDeploymentArgs(
        model_name=name,
        namespace=namespace if namespace is not None else model.namespace,
        create_namespace=namespace is None,
        image=image,
        replicas=model.replicas,
        resources=ContainerResources(
            cpu_request=model.resources.cpu_request,
            memory_request=model.resources.memory_request,
            memory_limit=model.resources.memory_limit,
            cpu_limit=model.resources.cpu_limit,
        ),
        scrape_from_namespace=scrape_from_namespace,
        autoscaling=(
            Autoscaling(max_replicas=autoscaling.max_replicas,
                        target_cpu_utilization_percent=autoscaling.target_cpu_utilization_percent)
            if autoscaling.enabled_on(cluster.kind) else None
        ),
        latency_slo_thresholds_seconds=model.monitors.latency_thresholds_seconds,
        faults=(
            FaultInjection(error_ratio=faults.error_ratio, extra_latency_seconds=faults.extra_latency_seconds,
                           latency_ratio=faults.latency_ratio)
            if faults.enabled else None
        ),
        log_level=model.log_level,
        network_policy=policy.enabled,
        client_namespaces=policy.client_namespaces,
        client_pod_labels=dict(policy.client_pod_labels),
        image_pull_credentials=image_pull_credentials if model.image is None else None,
        canary=Canary(image=model.canary.image, replicas=model.canary.replicas) if model.canary else None,
        accepted_versions=model.accepted_versions,
        traffic=(
            SyntheticTraffic(rate=model.traffic.rate, feedback_ratio=model.traffic.feedback_ratio,
                             shift=dict(model.traffic.drift))
            if model.traffic_on(cluster.kind) else None
        ),
    )
    return ObservedModelArgs(name=name, team=model.team, deployment=deployment, discovery=discovery,
                             monitors=model.monitors, period_evaluator=period_evaluator, runbooks=links)


def model_dashboards_args(monitoring: MonitoringStack) -> ModelDashboardsArgs:
    return ModelDashboardsArgs(namespace=monitoring.namespace, contract=monitoring.dashboards)
