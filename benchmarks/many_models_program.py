"""The program of a platform that serves many models: one cluster and monitoring stack, N models and monitors.

Used by ``program_scale.py`` to see how evaluation grows with the number of models. It composes the same
components as ``__main__.py``, with the stack's model section copied per model under its own name and
namespace (``MLOBS_BENCH_MODELS`` says how many), an image reference so that nothing is built, and one shared
dashboard, as a real multi-model platform would declare them.
"""

import os

import pulumi

from components.clusters import create_cluster
from components.config import load_stack_config
from components.model.deployment import ModelDeployment, ModelDeploymentArgs
from components.monitoring.stack import MonitoringStack, MonitoringStackArgs
from components.monitors.model_dashboards import ModelDashboards, ModelDashboardsArgs
from components.monitors.model_monitors import ModelMonitors, ModelMonitorsArgs

config = load_stack_config()
models = int(os.environ.get("MLOBS_BENCH_MODELS", "1"))
cluster = create_cluster("cluster", config.cluster)
on_cluster_provider = pulumi.ResourceOptions(providers=[cluster.provider])
monitoring = MonitoringStack(
    "monitoring",
    MonitoringStackArgs.for_cluster(config.monitoring, config.alerting, cluster),
    opts=on_cluster_provider,
)
for index in range(models):
    name = f"model-{index:03d}"
    model_config = config.model.model_copy(update={"name": name, "namespace": name, "image": "registry.example/m:1"})
    model = ModelDeployment(
        name,
        ModelDeploymentArgs.from_config(
            model_config,
            cluster_kind=cluster.kind,
            image=model_config.image or "",
            image_pull_credentials=None,
            scrape_from_namespace=monitoring.namespace,
            latency_slo_thresholds_seconds=model_config.monitors.latency_thresholds_seconds,
        ),
        opts=on_cluster_provider,
    )
    ModelMonitors(
        f"{name}-monitors",
        ModelMonitorsArgs.from_config(
            model_config.monitors,
            namespace=model.namespace,
            selector=model.selector_labels,
            port=model.port_name,
            model_name=model.model_name,
            workload=model.deployment_name,
            discovery=monitoring.discovery,
            metrics_path=model.metrics_path,
        ),
        opts=pulumi.ResourceOptions(providers=[cluster.provider], depends_on=[monitoring.release]),
    )
ModelDashboards(
    "model-dashboards",
    ModelDashboardsArgs.from_config(
        config.model.monitors, namespace=monitoring.namespace, contract=monitoring.dashboards
    ),
    opts=pulumi.ResourceOptions(providers=[cluster.provider], depends_on=[monitoring.release]),
)
