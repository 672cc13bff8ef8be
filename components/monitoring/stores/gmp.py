"""Google Cloud Managed Service for Prometheus from GKE, by self-deployed collection.

Google documents two paths: managed collection (its own collectors, configured by ``PodMonitoring`` objects, which
do not read the chart's ServiceMonitors) and self-deployed collection, for prometheus-operator setups such as
kube-prometheus-stack: Prometheus runs Google's drop-in build, which keeps every upstream function (scraping, rules,
alerts, local storage) and exports what it holds to Monarch. Remote write into the service is not a documented
path. This store takes the self-deployed one: the Prometheus image becomes Google's build (a 2.53 release: the
project's rules are checked against that version), with the export labels of this cluster, as a Google service
account that Prometheus' Kubernetes service account impersonates through Workload Identity, granted only
``roles/monitoring.metricWriter``. With two replicas, they elect the one that exports through a Lease
(``--export.ha.backend=kube``), so nothing is written twice.

Monarch keeps 24 months, so Prometheus' own retention must still cover the SLO period: the service's rule
evaluation needs its managed rule evaluator, which self-deployed collection does not run.
"""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from components.clusters.gke import GkeCluster
from components.contracts import stack_resource_name
from components.monitoring.stores import MetricsStore, PrometheusBuild, PrometheusIdentity, StoreContext
from components.monitoring.stores.config import GmpStoreConfig
from components.monitors.model_monitors import DERIVABLE_RECORDINGS, MODEL_RECORDINGS

GCP_SERVICE_ACCOUNT_ANNOTATION = "iam.gke.io/gcp-service-account"
"""The service-account annotation naming the Google service account a pod acts as (Workload Identity)."""
METRIC_WRITER = "roles/monitoring.metricWriter"
WORKLOAD_IDENTITY_USER = "roles/iam.workloadIdentityUser"
RECORDINGS_SELECTOR = f'{{__name__=~"{MODEL_RECORDINGS}", __name__!~"{DERIVABLE_RECORDINGS}"}}'
"""What ``send: recordings`` exports: the same series a remote-write store gets (``remote_write.py``)."""


class GmpStore(pulumi.ComponentResource):
    """The Google service account Prometheus exports as, and what lets its Kubernetes service account act as it.

    Children: ``<name>-account``, ``<name>-metric-writer`` (its only project role) and ``<name>-workload-identity``
    (Prometheus' service account may impersonate it).
    """

    TYPE = "mlobs:stores:GmpStore"

    store: MetricsStore
    service_account_email: pulumi.Output[str]

    def __init__(self, name: str, config: GmpStoreConfig, context: StoreContext,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(self.TYPE, name, None, opts)
        cluster = context.cluster
        if not isinstance(cluster, GkeCluster):
            raise pulumi.RunError(f"a gmp store needs a GKE cluster (got a {cluster.kind} cluster)")
        on_gcp = pulumi.ResourceOptions(parent=self, provider=cluster.gcp_provider)

        account = gcp.serviceaccount.Account(
            f"{name}-account",
            account_id=f"{stack_resource_name()}-prometheus"[:30].rstrip("-"),
            display_name="Prometheus of ml-observability, exporting to Managed Service for Prometheus",
            project=cluster.project,
            opts=on_gcp,
        )
        gcp.projects.IAMMember(
            f"{name}-metric-writer",
            project=cluster.project,
            role=METRIC_WRITER,
            member=account.email.apply(lambda email: f"serviceAccount:{email}"),
            opts=on_gcp,
        )
        gcp.serviceaccount.IAMMember(
            f"{name}-workload-identity",
            service_account_id=account.name,
            role=WORKLOAD_IDENTITY_USER,
            member=cluster.project.apply(
                lambda project: f"serviceAccount:{project}.svc.id.goog"
                f"[{context.monitoring_namespace}/{context.prometheus_service_account}]"
            ),
            opts=on_gcp,
        )

        flags: dict[str, pulumi.Input[str]] = {
            "export.label.project-id": cluster.project,
            "export.label.location": cluster.location,
            "export.label.cluster": context.cluster_label,
        }
        self.service_account_email = account.email
        self.store = MetricsStore(
            name=config.name,
            kind="gmp",
            send=config.send,
            identity=PrometheusIdentity(service_account_annotations={GCP_SERVICE_ACCOUNT_ANNOTATION: account.email}),
            prometheus_build=PrometheusBuild(
                image=config.image,
                args=flags,
                flag_lists={"export.match": [RECORDINGS_SELECTOR]} if config.send == "recordings"
                else {},
                leader_lease=True,
            ),
            outputs={"project": cluster.project, "serviceAccount": account.email},
        )
        self.register_outputs({"serviceAccount": account.email})


def connect_gmp_store(name: str, config: GmpStoreConfig, context: StoreContext) -> MetricsStore:
    return GmpStore(name, config, context, context.opts).store
