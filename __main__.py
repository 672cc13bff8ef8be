"""ml-observability: one environment's cluster, monitoring stack, and fleet of models with their monitors.

Reads as the architecture: validate the stack's configuration (nothing is declared if it is wrong), build the
cluster, then everything that runs on it with the cluster's Kubernetes provider, one ``ObservedModel`` per
configured model, and export what a person needs to reach it.
"""

import pulumi

from components.clusters import create_cluster
from components.clusters.metrics_server import MetricsServer
from components.config import to_args
from components.config.loader import load_stack_config
from components.model.image import ModelImage
from components.model.namespace import ModelNamespace
from components.model.observed import ObservedModel
from components.monitoring.stack import MonitoringStack
from components.monitoring.stores import connect_store
from components.monitors.model_dashboards import ModelDashboards

config = load_stack_config()
cluster = create_cluster("cluster", to_args.cluster_args(config.cluster))
on_cluster = pulumi.ResourceOptions(providers=[cluster.provider])
# The distributed stores Prometheus writes to, with what each needs outside the cluster (a cloud's workspace, the
# identity that writes to it).
stores = tuple(
    connect_store(f"store-{store.name}", store, to_args.store_context(config, cluster))
    for store in config.monitoring.remote_write
)
monitoring = MonitoringStack("monitoring", to_args.monitoring_stack_args(config, cluster, stores), opts=on_cluster)
with_monitoring = pulumi.ResourceOptions(providers=[cluster.provider], depends_on=[monitoring.release])

# What the deployed models share: metrics-server for their autoscalers, the sample image, their namespaces.
if to_args.installs_metrics_server(config):
    MetricsServer("metrics-server", to_args.metrics_server_args(cluster), opts=on_cluster)
sample = ModelImage("model-image", to_args.model_image_args(cluster)) if config.builds_sample_image else None
namespaces = {ns: ModelNamespace(f"models-{ns}", ns, opts=on_cluster).name for ns in config.model_namespaces}

models = {
    name: ObservedModel(
        name,
        to_args.observed_model_args(
            name, model, cluster=cluster, discovery=monitoring.discovery, scrape_from_namespace=monitoring.namespace,
            namespace=namespaces.get(model.namespace) if model.deployed else None,
            sample_image=sample.ref if sample else None,
            image_pull_credentials=sample.pull_credentials if sample else None,
            period_evaluator=to_args.period_evaluator(config, model, stores), runbooks=monitoring.runbook_links,
        ),
        opts=with_monitoring,
    )
    for name, model in config.models.items()
}
dashboards = ModelDashboards("model-dashboards", to_args.model_dashboards_args(monitoring), opts=with_monitoring)

for name, value in {**cluster.stack_outputs(), **monitoring.stack_outputs()}.items():
    pulumi.export(name, value)
pulumi.export("models", {name: model.stack_outputs() for name, model in models.items()})
pulumi.export("modelDashboard", dashboards.titles[0])
