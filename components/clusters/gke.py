"""Google GKE Standard through pulumi-gcp: a cluster without its default pool, a managed node pool, and
Artifact Registry for images."""

from __future__ import annotations

import re

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s
import yaml

from components.clusters import Cluster, ImageRepository
from components.clusters.args import GkeClusterArgs, RegistryCredentials
from components.contracts import stack_resource_name

_GCP_ZONE = re.compile(r"^(?P<region>[a-z]+-[a-z]+[0-9])-[a-z]$")


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
    """The gcp provider of the cluster's project, for resources beside the cluster (the image registry)."""
    project: pulumi.Output[str]
    """The project the cluster is in."""
    location: str
    """The cluster's zone or region."""
    image_platform: str
    """Platform of the images pushed for the nodes."""

    def __init__(self, name: str, args: GkeClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(self.TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        gcp_provider = gcp.Provider(f"{name}-gcp", project=args.project, opts=child)
        on_gcp = pulumi.ResourceOptions(parent=self, provider=gcp_provider)
        # The project the credentials resolve to, when the stack does not name one.
        project = gcp.organizations.get_client_config_output(
            opts=pulumi.InvokeOutputOptions(parent=self, provider=gcp_provider)
        ).project
        protected = pulumi.ResourceOptions(parent=self, provider=gcp_provider, protect=args.protect)

        nodes_account = gcp.serviceaccount.Account(
            f"{name}-nodes-sa",
            account_id=f"{stack_resource_name()}-nodes"[:30],
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
            location=args.location,
            min_master_version=args.kubernetes_version,
            release_channel={"channel": args.release_channel},
            remove_default_node_pool=True,
            initial_node_count=1,
            networking_mode="VPC_NATIVE",
            ip_allocation_policy={},
            workload_identity_config={"workload_pool": project.apply(lambda p: f"{p}.svc.id.goog")},
            deletion_protection=args.protect,
            opts=protected,
        )
        node_pool = gcp.container.NodePool(
            f"{name}-nodes",
            cluster=cluster.id,
            location=args.location,
            node_count=args.node_count,
            autoscaling={"min_node_count": args.min_nodes, "max_node_count": args.max_nodes},
            node_config={
                "machine_type": args.machine_type,
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
        self.location = args.location
        self.cluster_name = cluster.name
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(cluster.name, cluster.endpoint, cluster.master_auth.cluster_ca_certificate).apply(
                lambda values: gke_kubeconfig(values[0], values[1], values[2])
            )
        )
        self.kubernetes_version = args.kubernetes_version
        self.default_storage_class = pulumi.Output.from_input(str(self.facts.storage_class))
        self.control_plane_metrics = bool(self.facts.control_plane_metrics)
        self.image_platform = args.image_platform
        # The cluster has no node until its pool exists (the default pool is removed): workloads wait for it, or
        # a release would start with nothing to schedule on.
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[node_pool]),
        )
        self._register()

    def image_repository(self, name: str, image: str, *, parent: pulumi.Resource) -> ImageRepository:
        """Artifact Registry in the cluster's region; the nodes' service account is ``artifactregistry.reader``."""
        region = gcp_region(self.location)
        repository = gcp.artifactregistry.Repository(
            f"{name}-registry",
            repository_id=stack_resource_name().lower(),
            format="DOCKER",
            location=region,
            project=self.project,
            opts=pulumi.ResourceOptions(parent=parent, provider=self.gcp_provider),
        )
        token = gcp.organizations.get_client_config_output(
            opts=pulumi.InvokeOutputOptions(parent=parent, provider=self.gcp_provider)
        ).access_token
        host = f"{region}-docker.pkg.dev"
        login = RegistryCredentials(server=host, username="oauth2accesstoken", password=pulumi.Output.secret(token))
        path = pulumi.Output.all(self.project, repository.repository_id).apply(
            lambda values: f"{host}/{values[0]}/{values[1]}/{image}"
        )
        return ImageRepository(repository=path, push_credentials=[login], platform=self.image_platform)


def gcp_region(location: str) -> str:
    """Artifact Registry is regional: ``europe-west1-b`` (a zone) → ``europe-west1``; a region stays as it is."""
    match = _GCP_ZONE.match(location)
    return match.group("region") if match else location
