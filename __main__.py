"""ml-observability: one environment's cluster, monitoring stack, model service and monitors.

Reads as the architecture: validate the stack's configuration (nothing is declared if it is wrong), build the
cluster, then everything that runs on it with the cluster's Kubernetes provider, and export what a person
needs to reach it.
"""

import pulumi

from components.clusters import create_cluster
from components.clusters.metrics_server import MetricsServer, MetricsServerArgs
from components.config import load_stack_config
from components.model.deployment import ModelDeployment, ModelDeploymentArgs
from components.model.image import ModelImage, ModelImageArgs
from components.monitoring.stack import MonitoringStack, MonitoringStackArgs
from components.monitors.model_dashboards import ModelDashboards, ModelDashboardsArgs
from components.monitors.model_monitors import ModelMonitors, ModelMonitorsArgs

config = load_stack_config()

cluster = create_cluster("cluster", config.cluster)

monitoring = MonitoringStack(
    "monitoring",
    MonitoringStackArgs.for_cluster(config.monitoring, config.alerting, cluster),
    opts=pulumi.ResourceOptions(providers=[cluster.provider]),
)

# The model: its image where the cluster can pull it, then the service, scraped from the monitoring namespace.
if config.model.autoscaling.installs_metrics_server_on(cluster.kind):
    MetricsServer(
        "metrics-server",
        MetricsServerArgs.for_cluster(cluster.kind),
        opts=pulumi.ResourceOptions(providers=[cluster.provider]),
    )
model_image = ModelImage("model-image", ModelImageArgs.from_config(config.model, cluster=cluster))
model = ModelDeployment(
    "model",
    ModelDeploymentArgs.from_config(
        config.model,
        cluster_kind=cluster.kind,
        image=model_image.ref,
        image_pull_credentials=model_image.pull_credentials,
        scrape_from_namespace=monitoring.namespace,
        latency_slo_thresholds_seconds=config.model.monitors.latency_thresholds_seconds,
    ),
    opts=pulumi.ResourceOptions(providers=[cluster.provider]),
)

# Its monitors, selected by the labels the monitoring stack exports, and the one dashboard all models share.
monitors = ModelMonitors(
    "model-monitors",
    ModelMonitorsArgs.from_config(
        config.model.monitors,
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
dashboards = ModelDashboards(
    "model-dashboards",
    ModelDashboardsArgs.from_config(
        config.model.monitors, namespace=monitoring.namespace, contract=monitoring.dashboards
    ),
    opts=pulumi.ResourceOptions(providers=[cluster.provider], depends_on=[monitoring.release]),
)

pulumi.export("clusterName", cluster.cluster_name)
pulumi.export("clusterKind", cluster.kind)
pulumi.export("kubeconfig", cluster.kubeconfig)
pulumi.export("kubernetesVersion", cluster.kubernetes_version)
pulumi.export("defaultStorageClass", cluster.default_storage_class)
pulumi.export("monitoringNamespace", monitoring.namespace)
pulumi.export("monitoringRelease", monitoring.release_name)
pulumi.export("monitoringChartVersion", monitoring.chart_version)
pulumi.export("monitorLabels", monitoring.discovery.labels)
pulumi.export("dashboardLabels", monitoring.dashboards.labels)
if monitoring.grafana_url is not None:
    pulumi.export("grafanaUrl", monitoring.grafana_url)
if monitoring.grafana_port_forward is not None:
    pulumi.export("grafanaPortForward", monitoring.grafana_port_forward)
pulumi.export("grafanaAdminUser", monitoring.grafana_admin_user)
pulumi.export("grafanaAdminPassword", monitoring.grafana_admin_password)
pulumi.export("prometheusUrl", monitoring.prometheus_url)
pulumi.export("alertmanagerUrl", monitoring.alertmanager_url)
pulumi.export("modelUrl", model.url)
pulumi.export("modelImage", model.image)
pulumi.export("modelAlerts", monitors.alert_names)
pulumi.export("modelDashboard", dashboards.titles[0])
