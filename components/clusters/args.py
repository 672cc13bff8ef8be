"""What each kind of cluster component takes: typed args, importable without any cloud SDK.

One dataclass per kind, with the same field names as that kind's section of the stack file
(``components/clusters/config.py``), so that ``components/config/to_args.py`` maps one onto the other field
by field and a program of your own can build them directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.clusters.kinds import ClusterKind

ImagePlatform = str
"""``linux/amd64`` or ``linux/arm64``: the nodes' architecture, which images pushed for them are built for."""


@dataclass(frozen=True, kw_only=True)
class RegistryCredentials:
    """Credentials of a registry, for pushing images and for the pods' pull secret."""

    server: pulumi.Input[str]
    """Registry host (and port), as Docker keys credentials: ``registry.example.com``."""
    username: pulumi.Input[str]
    """User name."""
    password: pulumi.Input[str]
    """Password or token; pass a secret Output."""


@dataclass(frozen=True, kw_only=True)
class KindClusterArgs:
    """A kind cluster on the local Docker engine."""

    kind: ClusterKind = "kind"
    name: str | None = None
    """kind cluster name; ``None``: ``mlobs-<stack>``."""
    node_image: str
    """``kindest/node`` image, pinned; its tag is the Kubernetes version."""
    kubernetes_version: str
    """The node image's Kubernetes version."""
    workers: int = 0
    """Worker nodes beside the control plane."""
    grafana_host_port: int = 3000
    """Host port mapped to Grafana's NodePort."""


@dataclass(frozen=True, kw_only=True)
class ExistingClusterArgs:
    """A cluster reached through a kubeconfig file and context."""

    kind: ClusterKind = "existing"
    kubeconfig: str
    """Path of the kubeconfig file (``~`` expanded); read when the program runs."""
    context: str
    """Context of that kubeconfig."""
    kubernetes_version: str
    storage_class: str | None = None
    """StorageClass of persistent volumes; ``None``: the cluster's default class."""
    control_plane_metrics: bool = False
    """Whether controller-manager, scheduler and etcd metrics are reachable."""
    registry_address: str | None = None
    """``host[:port]/path`` the images this stack builds are pushed under."""
    registry_credentials: RegistryCredentials | None = None
    """Credentials of that registry, for the push and the pods' pull secret; ``None``: the local Docker
    credentials push, the nodes pull with their own."""
    image_platform: ImagePlatform = "linux/amd64"


@dataclass(frozen=True, kw_only=True)
class _CloudClusterArgs:
    kubernetes_version: str
    node_count: int
    min_nodes: int
    max_nodes: int
    protect: bool = True
    """Protect the cluster (and what losing it would lose) from ``pulumi destroy``."""
    image_platform: ImagePlatform = "linux/amd64"


@dataclass(frozen=True, kw_only=True)
class EksClusterArgs(_CloudClusterArgs):
    kind: ClusterKind = "eks"
    region: str
    instance_type: str
    vpc_id: str | None = None
    subnet_ids: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class AksClusterArgs(_CloudClusterArgs):
    kind: ClusterKind = "aks"
    location: str
    vm_size: str
    resource_group_name: str | None = None


@dataclass(frozen=True, kw_only=True)
class GkeClusterArgs(_CloudClusterArgs):
    kind: ClusterKind = "gke"
    location: str
    machine_type: str
    release_channel: str = "REGULAR"
    project: str | None = None


ClusterArgs = KindClusterArgs | ExistingClusterArgs | EksClusterArgs | AksClusterArgs | GkeClusterArgs
