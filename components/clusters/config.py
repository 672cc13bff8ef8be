"""The stack file's ``cluster`` section: one model per kind, discriminated by ``kind``."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, SecretStr, model_validator

from components.clusters.kinds import KINDS, ClusterKind
from components.config.fields import (
    DNS_LABEL,
    KUBERNETES_MINOR,
    REGISTRY_ADDRESS,
    Section,
)

KIND_NODE_IMAGE = "kindest/node:v1.34.0@sha256:7416a61b42b1662ca6ca89f02028ac133a309a2a30ba309614e8ec94d976dc5a"
"""The node image kind v0.30.0 was released with, pinned by digest as kind's release notes require."""

ImagePlatform = Literal["linux/amd64", "linux/arm64"]


class _Cluster(Section):
    @property
    def control_plane_metrics(self) -> bool:
        return bool(KINDS[self.kind].control_plane_metrics)  # type: ignore[attr-defined]

    @property
    def default_storage_class(self) -> str | None:
        return KINDS[self.kind].storage_class  # type: ignore[attr-defined]


class KindClusterConfig(_Cluster):
    """A kind cluster on the local Docker engine, created and deleted by the stack."""

    kind: Literal["kind"]
    name: str | None = Field(
        None,
        pattern=DNS_LABEL,
        max_length=40,
        description="kind cluster name; defaults to 'mlobs-<stack>'.",
        examples=["mlobs-local"],
    )
    node_image: str = Field(
        KIND_NODE_IMAGE,
        pattern=r"^[^\s:]+:v1\.[0-9]+\.[0-9]+(@sha256:[0-9a-f]{64})?$",
        description="kindest/node image, pinned by tag (and digest); its tag sets the Kubernetes version.",
        examples=[KIND_NODE_IMAGE],
    )
    workers: int = Field(0, ge=0, le=4, description="Worker nodes beside the control plane.", examples=[1])
    grafana_host_port: int = Field(
        3000,
        ge=1024,
        le=65535,
        description="Host port mapped to Grafana's NodePort, so Grafana is at http://localhost:<port>.",
        examples=[3000],
    )

    @property
    def kubernetes_version(self) -> str:
        """Kubernetes version of the node image (``kindest/node:v1.34.0@…`` → ``1.34.0``)."""
        match = re.search(r":v(1\.[0-9]+\.[0-9]+)", self.node_image)
        assert match is not None  # guaranteed by the field's pattern
        return match.group(1)


class ClusterRegistryConfig(Section):
    """A registry the images this stack builds are pushed to, for a cluster that has none of the stack's."""

    address: str = Field(
        pattern=REGISTRY_ADDRESS,
        description="Registry host and repository path the images are pushed under (host[:port]/path).",
        examples=["registry.example.com/ml-team"],
    )
    username: str | None = Field(
        None, min_length=1, description="User that pushes (and, through a pull secret, pulls) the images.",
        examples=["robot$ml-team"],
    )
    password: SecretStr | None = Field(
        None, description="That user's password or token; set it with --secret.", examples=["<token>"],
    )

    @model_validator(mode="after")
    def _credentials_in_pairs(self) -> ClusterRegistryConfig:
        if (self.username is None) != (self.password is None):
            raise ValueError(
                "username and password go together (got only "
                f"{'username' if self.username is not None else 'password'}): set both, or neither to push with "
                "the local Docker credentials and pull with the nodes' own"
            )
        return self

    @property
    def host(self) -> str:
        """The registry's host (and port), as Docker credentials are keyed."""
        return self.address.split("/", 1)[0]


class ExistingClusterConfig(_Cluster):
    """A cluster you already have, reached through a kubeconfig file and context."""

    kind: Literal["existing"]
    kubeconfig: str = Field(
        "~/.kube/config", min_length=1, description="Path of the kubeconfig file.", examples=["~/.kube/config"]
    )
    context: str = Field(min_length=1, description="Context of that kubeconfig to use.", examples=["prod-eu"])
    kubernetes_version: str = Field(
        pattern=KUBERNETES_MINOR,
        description="The cluster's Kubernetes version (`kubectl version`), used to render and validate objects.",
        examples=["1.34"],
    )
    storage_class: str | None = Field(
        None,
        pattern=DNS_LABEL,
        description="StorageClass for Prometheus' volume; unset uses the cluster's default class.",
        examples=["gp3"],
    )
    control_plane_metrics_exposed: bool = Field(
        False,
        alias="controlPlaneMetrics",
        description="Scrape controller-manager, scheduler and etcd: only if the cluster exposes their metrics.",
        examples=[True],
    )
    registry: ClusterRegistryConfig | None = Field(
        None,
        description="Registry the images this stack builds are pushed to (an existing cluster has none of the "
        "stack's); needed unless every deployed model names its image.",
        examples=[{"address": "registry.example.com/ml-team"}],
    )
    image_platform: ImagePlatform = Field(
        "linux/amd64", description="Platform of the images this stack builds: the nodes' architecture.",
        examples=["linux/arm64"],
    )

    @property
    def control_plane_metrics(self) -> bool:
        return self.control_plane_metrics_exposed

    @property
    def default_storage_class(self) -> str | None:
        return self.storage_class


class _CloudCluster(_Cluster):
    kubernetes_version: str = Field("1.34", pattern=KUBERNETES_MINOR, examples=["1.34"])
    node_count: int = Field(2, ge=1, le=100, description="Nodes the node pool starts with.", examples=[3])
    min_nodes: int = Field(1, ge=1, le=100, description="Autoscaling lower bound.", examples=[1])
    max_nodes: int = Field(4, ge=1, le=100, description="Autoscaling upper bound.", examples=[6])
    protect: bool = Field(
        True, description="Protect the cluster from `pulumi destroy`; set false for throwaway stacks.",
        examples=[False],
    )
    image_platform: ImagePlatform = Field(
        "linux/amd64", description="Platform of the images this stack builds: the nodes' architecture.",
        examples=["linux/arm64"],
    )

    @model_validator(mode="after")
    def _node_bounds(self) -> _CloudCluster:
        if not self.min_nodes <= self.node_count <= self.max_nodes:
            raise ValueError(
                f"nodeCount must lie between minNodes and maxNodes (got minNodes={self.min_nodes}, "
                f"nodeCount={self.node_count}, maxNodes={self.max_nodes})"
            )
        return self


class EksClusterConfig(_CloudCluster):
    """Amazon EKS through pulumi-eks: a managed node group, the EBS CSI driver and a gp3 StorageClass."""

    kind: Literal["eks"]
    region: str = Field(pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]$", examples=["eu-west-1"])
    instance_type: str = Field("t3.large", min_length=1, examples=["m6i.large"])
    vpc_id: str | None = Field(
        None, pattern=r"^vpc-[0-9a-f]+$", description="VPC to use; unset uses the account's default VPC.",
        examples=["vpc-0123456789abcdef0"],
    )
    subnet_ids: tuple[str, ...] = Field(
        (), description="Subnets for the cluster and nodes (with vpcId).", examples=[["subnet-0123456789abcdef0"]]
    )


class AksClusterConfig(_CloudCluster):
    """Azure AKS through pulumi-azure-native, in a resource group of its own."""

    kind: Literal["aks"]
    location: str = Field(pattern=r"^[a-z0-9]+$", examples=["westeurope"])
    vm_size: str = Field("Standard_D4s_v5", min_length=1, examples=["Standard_D4s_v5"])
    resource_group_name: str | None = Field(
        None, description="Resource group to create; defaults to 'mlobs-<stack>'.", examples=["mlobs-aks"]
    )


class GkeClusterConfig(_CloudCluster):
    """Google GKE Standard through pulumi-gcp, with a separately managed node pool."""

    kind: Literal["gke"]
    project: str | None = Field(
        None,
        pattern=r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$",
        description="GCP project; unset uses the credentials' project (gcloud config, GOOGLE_CLOUD_PROJECT).",
        examples=["my-gcp-project"],
    )
    location: str = Field(
        pattern=r"^[a-z]+-[a-z]+[0-9](-[a-z])?$",
        description="A zone (zonal cluster) or a region (regional cluster: nodeCount is per zone).",
        examples=["europe-west1-b"],
    )
    machine_type: str = Field("e2-standard-4", min_length=1, examples=["e2-standard-4"])
    release_channel: Literal["RAPID", "REGULAR", "STABLE"] = Field("REGULAR", examples=["STABLE"])


ClusterConfig = Annotated[
    KindClusterConfig | ExistingClusterConfig | EksClusterConfig | AksClusterConfig | GkeClusterConfig,
    Field(discriminator="kind"),
]
CLUSTER_MODELS: dict[ClusterKind, type[Section]] = {
    "kind": KindClusterConfig,
    "existing": ExistingClusterConfig,
    "eks": EksClusterConfig,
    "aks": AksClusterConfig,
    "gke": GkeClusterConfig,
}
