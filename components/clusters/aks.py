"""Azure AKS through pulumi-azure-native, in a resource group of its own."""

from __future__ import annotations

import base64
from typing import Any

import pulumi
import pulumi_azure_native as azure
import pulumi_kubernetes as k8s

from components.clusters import Cluster
from components.config import AksClusterConfig


class AksCluster(Cluster):
    """An AKS cluster in ``cluster.location`` with one autoscaled system node pool.

    Creates an azure-native provider for the location, a resource group and a ``ManagedCluster`` with a
    system-assigned identity. The Kubernetes provider uses the cluster's admin credentials, so that the
    program needs neither ``kubelogin`` nor an Azure AD role to deploy.
    """

    TYPE = "mlobs:cluster:AksCluster"

    azure_provider: azure.Provider
    """The azure-native provider of the cluster's location, for resources beside the cluster (the model's registry)."""
    resource_group_name: pulumi.Output[str]
    """The cluster's resource group, where resources beside it go."""
    location: str
    """The cluster's Azure region."""
    kubelet_identity_object_id: pulumi.Output[str]
    """Object id of the managed identity the kubelets pull images with (a registry grants it ``AcrPull``)."""

    def __init__(self, name: str, config: AksClusterConfig, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(self.TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        azure_provider = azure.Provider(f"{name}-azure", location=config.location, opts=child)
        protected = pulumi.ResourceOptions(parent=self, provider=azure_provider, protect=config.protect)

        group = azure.resources.ResourceGroup(
            f"{name}-rg",
            resource_group_name=config.resource_group_name or f"mlobs-{pulumi.get_stack()}",
            location=config.location,
            opts=protected,
        )
        cluster = azure.containerservice.ManagedCluster(
            f"{name}-aks",
            resource_group_name=group.name,
            location=config.location,
            dns_prefix=f"mlobs-{pulumi.get_stack()}",
            kubernetes_version=config.kubernetes_version,
            enable_rbac=True,
            identity={"type": azure.containerservice.ResourceIdentityType.SYSTEM_ASSIGNED},
            agent_pool_profiles=[
                {
                    "name": "system",
                    "mode": "System",
                    "os_type": "Linux",
                    "type": "VirtualMachineScaleSets",
                    "vm_size": config.vm_size,
                    "count": config.node_count,
                    "enable_auto_scaling": True,
                    "min_count": config.min_nodes,
                    "max_count": config.max_nodes,
                }
            ],
            opts=protected,
        )
        credentials = azure.containerservice.list_managed_cluster_admin_credentials_output(
            resource_group_name=group.name,
            resource_name=cluster.name,
            opts=pulumi.InvokeOutputOptions(parent=self, provider=azure_provider),
        )

        self.kind = "aks"
        self.azure_provider = azure_provider
        self.resource_group_name = group.name
        self.location = config.location
        self.kubelet_identity_object_id = cluster.identity_profile.apply(_kubelet_object_id)
        self.cluster_name = cluster.name
        self.kubeconfig = pulumi.Output.secret(
            credentials.kubeconfigs[0].value.apply(lambda encoded: base64.b64decode(encoded).decode())
        )
        self.kubernetes_version = config.kubernetes_version
        self.default_storage_class = pulumi.Output.from_input(config.default_storage_class or "managed-csi")
        self.control_plane_metrics = config.control_plane_metrics
        self.provider = k8s.Provider(f"{name}-k8s", kubeconfig=self.kubeconfig, opts=child)
        self._register()


def _kubelet_object_id(profile: Any) -> str:
    """``identityProfile.kubeletidentity.objectId`` of a ManagedCluster."""
    identity = (profile or {}).get("kubeletidentity")
    value = getattr(identity, "object_id", None)
    if not value:
        raise pulumi.RunError("the AKS cluster reports no kubelet identity (identityProfile.kubeletidentity)")
    return str(value)
