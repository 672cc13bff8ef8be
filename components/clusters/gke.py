"""Google GKE Standard through pulumi-gcp: a cluster without its default pool and a managed node pool."""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s
import yaml

from components.clusters import Cluster
from components.config import GkeClusterConfig


def gke_kubeconfig(name: str, endpoint: str, ca_certificate: str) -> str:
    """A kubeconfig that authenticates with ``gke-gcloud-auth-plugin``, as GKE requires since 1.26."""
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": name, "cluster": {"server": f"https://{endpoint}",
                                                    "certificate-authority-data": ca_certificate}}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
            "current-context": name,
            "users": [
                {
                    "name": name,
                    "user": {
                        "exec": {
                            "apiVersion": "client.authentication.k8s.io/v1beta1",
                            "command": "gke-gcloud-auth-plugin",
                            "installHint": "gcloud components install gke-gcloud-auth-plugin",
                            "provideClusterInfo": True,
                        }
                    },
                }
            ],
        }
    )


class GkeCluster(Cluster):
    """A GKE Standard cluster in ``cluster.location`` with an autoscaled node pool of its own.

    Creates a gcp provider for ``cluster.project`` (or the credentials' project), a service account for the
    nodes, the ``Cluster`` (default pool removed, Workload Identity on, ``deletion_protection`` following
    ``cluster.protect``) and a ``NodePool``.
    The kubeconfig execs ``gke-gcloud-auth-plugin``, which must be on PATH.
    """

    TYPE = "mlobs:cluster:GkeCluster"

    gcp_provider: gcp.Provider
    """The gcp provider of the cluster's project, for resources beside the cluster (the model's registry)."""
    project: pulumi.Output[str]
    """The project the cluster is in."""
    location: str
    """The cluster's zone or region."""

    def __init__(self, name: str, config: GkeClusterConfig, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(self.TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        gcp_provider = gcp.Provider(f"{name}-gcp", project=config.project, opts=child)
        on_gcp = pulumi.ResourceOptions(parent=self, provider=gcp_provider)
        # The project the credentials resolve to, when the stack does not name one.
        project = gcp.organizations.get_client_config_output(
            opts=pulumi.InvokeOutputOptions(parent=self, provider=gcp_provider)
        ).project
        protected = pulumi.ResourceOptions(parent=self, provider=gcp_provider, protect=config.protect)

        nodes_account = gcp.serviceaccount.Account(
            f"{name}-nodes-sa",
            account_id=f"mlobs-{pulumi.get_stack()}-nodes"[:30],
            display_name="GKE nodes of ml-observability",
            opts=on_gcp,
        )
        for role in ("roles/logging.logWriter", "roles/monitoring.metricWriter", "roles/artifactregistry.reader"):
            gcp.projects.IAMMember(
                f"{name}-nodes-{role.split('/')[-1].lower()}",
                project=project,
                role=role,
                member=nodes_account.email.apply(lambda email: f"serviceAccount:{email}"),
                opts=on_gcp,
            )
        cluster = gcp.container.Cluster(
            f"{name}-gke",
            location=config.location,
            min_master_version=config.kubernetes_version,
            release_channel={"channel": config.release_channel},
            remove_default_node_pool=True,
            initial_node_count=1,
            networking_mode="VPC_NATIVE",
            ip_allocation_policy={},
            workload_identity_config={"workload_pool": project.apply(lambda p: f"{p}.svc.id.goog")},
            deletion_protection=config.protect,
            opts=protected,
        )
        gcp.container.NodePool(
            f"{name}-nodes",
            cluster=cluster.id,
            location=config.location,
            node_count=config.node_count,
            autoscaling={"min_node_count": config.min_nodes, "max_node_count": config.max_nodes},
            node_config={
                "machine_type": config.machine_type,
                "service_account": nodes_account.email,
                "oauth_scopes": ["https://www.googleapis.com/auth/cloud-platform"],
                "workload_metadata_config": {"mode": "GKE_METADATA"},
            },
            management={"auto_repair": True, "auto_upgrade": True},
            opts=protected,
        )

        self.kind = "gke"
        self.gcp_provider = gcp_provider
        self.project = project
        self.location = config.location
        self.cluster_name = cluster.name
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(cluster.name, cluster.endpoint, cluster.master_auth.cluster_ca_certificate).apply(
                lambda values: gke_kubeconfig(values[0], values[1], values[2])
            )
        )
        self.kubernetes_version = config.kubernetes_version
        self.default_storage_class = pulumi.Output.from_input(config.default_storage_class or "standard-rwo")
        self.control_plane_metrics = config.control_plane_metrics
        self.provider = k8s.Provider(f"{name}-k8s", kubeconfig=self.kubeconfig, opts=child)
        self._register()
