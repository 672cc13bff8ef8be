"""Azure AKS through pulumi-azure-native, in a resource group of its own, and the registry its images go to."""

from __future__ import annotations

import base64
import re
from typing import Any

import pulumi
import pulumi_azure_native as azure
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.clusters import Cluster, ImageRepository
from components.clusters.args import AksClusterArgs, RegistryCredentials
from components.contracts import stack_resource_name

_ACR_PULL_ROLE = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
"""Built-in Azure role ``AcrPull`` (the same id in every tenant)."""


class AksCluster(Cluster):
    """An AKS cluster in ``cluster.location`` with one autoscaled system node pool.

    Creates an azure-native provider for the location, a resource group and a ``ManagedCluster`` with a
    system-assigned identity, its OIDC issuer and workload identity on. The Kubernetes provider uses the cluster's
    admin credentials, so that the program needs neither ``kubelogin`` nor an Azure AD role to deploy.
    """

    TYPE = "mlobs:cluster:AksCluster"

    azure_provider: azure.Provider
    """The azure-native provider of the cluster's location, for resources beside the cluster (the image registry)."""
    resource_group_name: pulumi.Output[str]
    """The cluster's resource group, where resources beside it go."""
    location: str
    """The cluster's Azure region."""
    kubelet_identity_object_id: pulumi.Output[str]
    """Object id of the managed identity the kubelets pull images with (a registry grants it ``AcrPull``)."""
    oidc_issuer_url: pulumi.Output[str]
    """The cluster's OIDC issuer, which a federated identity credential trusts (workload identity)."""
    image_platform: str
    """Platform of the images pushed for the nodes."""

    def __init__(self, name: str, args: AksClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(self.TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        azure_provider = azure.Provider(f"{name}-azure", location=args.location, opts=child)
        protected = pulumi.ResourceOptions(parent=self, provider=azure_provider, protect=args.protect)

        group = azure.resources.ResourceGroup(
            f"{name}-rg",
            resource_group_name=args.resource_group_name or stack_resource_name(),
            location=args.location,
            opts=protected,
        )
        cluster = azure.containerservice.ManagedCluster(
            f"{name}-aks",
            resource_group_name=group.name,
            location=args.location,
            dns_prefix=stack_resource_name(),
            kubernetes_version=args.kubernetes_version,
            enable_rbac=True,
            identity={"type": azure.containerservice.ResourceIdentityType.SYSTEM_ASSIGNED},
            # Workload identity: a pod's service account federates with an Entra ID identity (no static key).
            oidc_issuer_profile={"enabled": True},
            security_profile={"workload_identity": {"enabled": True}},
            agent_pool_profiles=[
                {
                    "name": "system",
                    "mode": "System",
                    "os_type": "Linux",
                    "type": "VirtualMachineScaleSets",
                    "vm_size": args.vm_size,
                    "count": args.node_count,
                    "enable_auto_scaling": True,
                    "min_count": args.min_nodes,
                    "max_count": args.max_nodes,
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
        self.location = args.location
        self.kubelet_identity_object_id = cluster.identity_profile.apply(_kubelet_object_id)
        self.oidc_issuer_url = cluster.oidc_issuer_profile.apply(_issuer_url)
        self.cluster_name = cluster.name
        self.kubeconfig = pulumi.Output.secret(
            credentials.kubeconfigs[0].value.apply(lambda encoded: base64.b64decode(encoded).decode())
        )
        self.kubernetes_version = args.kubernetes_version
        self.default_storage_class = pulumi.Output.from_input(str(self.facts.storage_class))
        self.control_plane_metrics = bool(self.facts.control_plane_metrics)
        self.image_platform = args.image_platform
        # The node pool is part of the ManagedCluster: its credentials exist once the nodes do.
        self.provider = k8s.Provider(f"{name}-k8s", kubeconfig=self.kubeconfig, opts=child)
        self._register()

    def image_repository(self, name: str, image: str, *, parent: pulumi.Resource) -> ImageRepository:
        """ACR beside the cluster, pushed to with its admin credentials, pulled from by the kubelet identity."""
        on_azure = pulumi.ResourceOptions(parent=parent, provider=self.azure_provider)
        invoke = pulumi.InvokeOutputOptions(parent=parent, provider=self.azure_provider)
        # Registry names are global, 5 to 50 letters and digits: a stable random suffix keeps them unique.
        suffix = random.RandomString(
            f"{name}-acr-suffix", length=8, special=False, upper=False, opts=pulumi.ResourceOptions(parent=parent)
        )
        stack = re.sub(r"[^a-z0-9]", "", stack_resource_name().lower())[:35]
        registry = azure.containerregistry.Registry(
            f"{name}-acr",
            registry_name=suffix.result.apply(lambda s: f"{stack}{s}"),
            resource_group_name=self.resource_group_name,
            location=self.location,
            sku={"name": "Basic"},
            # The stack pushes with the admin credentials; the nodes pull with their own identity (below).
            admin_user_enabled=True,
            opts=on_azure,
        )
        client = azure.authorization.get_client_config_output(opts=invoke)
        pull = azure.authorization.RoleAssignment(
            f"{name}-acr-pull",
            principal_id=self.kubelet_identity_object_id,
            principal_type="ServicePrincipal",
            role_definition_id=client.subscription_id.apply(
                lambda subscription: (
                    f"/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions/{_ACR_PULL_ROLE}"
                )
            ),
            scope=registry.id,
            opts=on_azure,
        )
        credentials = azure.containerregistry.list_registry_credentials_output(
            resource_group_name=self.resource_group_name, registry_name=registry.name, opts=invoke
        )
        login = RegistryCredentials(
            server=registry.login_server,
            username=credentials.username.apply(lambda user: user or ""),
            password=pulumi.Output.secret(credentials.passwords.apply(_first_password)),
        )
        return ImageRepository(
            repository=registry.login_server.apply(lambda server: f"{server}/{image}"),
            push_credentials=[login],
            platform=self.image_platform,
            # Pods must not try to pull before the kubelet identity may.
            pullable_after=[pull],
        )


def _kubelet_object_id(profile: Any) -> str:
    """``identityProfile.kubeletidentity.objectId`` of a ManagedCluster."""
    identity = (profile or {}).get("kubeletidentity")
    value = getattr(identity, "object_id", None)
    if not value:
        raise pulumi.RunError("the AKS cluster reports no kubelet identity (identityProfile.kubeletidentity)")
    return str(value)


def _issuer_url(profile: Any) -> str:
    """``oidcIssuerProfile.issuerURL`` of a ManagedCluster (set once the issuer is enabled)."""
    value = (profile or {}).get("issuer_url") if isinstance(profile, dict) else getattr(profile, "issuer_url", None)
    if not value:
        raise pulumi.RunError("the AKS cluster reports no OIDC issuer (oidcIssuerProfile.issuerURL)")
    return str(value)


def _first_password(passwords: Any) -> str:
    """The first of ACR's two admin passwords (either works; two exist so that one can be rotated)."""
    first = passwords[0]
    value = first.get("value") if isinstance(first, dict) else first.value
    return str(value)
