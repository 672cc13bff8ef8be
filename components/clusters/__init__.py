"""The cluster of an environment, whatever its kind, behind one interface; one module per kind.

Every Kubernetes resource of the program is declared with the ``provider`` a ``Cluster`` exposes, built from
the kubeconfig the cluster component produced; nothing falls back to the ambient kubeconfig of whoever runs
``pulumi up``. On a cloud the provider also waits for what workloads need (the nodes, the storage driver), so
that nothing scheduled on it starts before there is a node to run it. Cloud SDKs are imported only for the kind
a stack uses (``components/clusters/<kind>.py``), so that a local user needs none.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from components.clusters.args import ClusterArgs, RegistryCredentials
from components.clusters.kinds import KINDS, ClusterKind, KindFacts


@dataclass(frozen=True, kw_only=True)
class ImageRepository:
    """Where an image the stack builds is pushed for a cluster, and how its nodes pull it."""

    repository: pulumi.Input[str]
    """``host/path/name``; the image is pushed as ``<repository>:<tag>``."""
    push_credentials: list[RegistryCredentials]
    """Logins the push needs (none: the local Docker credentials)."""
    platform: str
    """Platform to build for (the nodes' architecture)."""
    pull_credentials: RegistryCredentials | None = None
    """Credentials the pods need to pull (only for a registry the nodes cannot pull from on their own)."""
    pullable_after: list[pulumi.CustomResource] = field(default_factory=list)
    """Resources that must exist before a pod may pull (a role grant to the nodes' identity)."""


class Cluster(pulumi.ComponentResource):
    """Base of the per-kind cluster components; its attributes are what the rest of the program consumes."""

    cluster_name: pulumi.Output[str]
    """Name of the cluster at its provider (kind cluster, EKS/AKS/GKE cluster)."""
    kind: ClusterKind
    """The ``cluster.kind`` of the stack."""
    kubeconfig: pulumi.Output[str]
    """Kubeconfig that reaches the cluster (always a secret)."""
    kubernetes_version: str
    """Kubernetes version objects are rendered and validated for."""
    default_storage_class: pulumi.Output[str] | None
    """StorageClass for persistent volumes, or ``None`` for the cluster's default class."""
    control_plane_metrics: bool
    """Whether controller-manager, scheduler and etcd metrics can be scraped on this cluster."""
    grafana_host_port: int | None = None
    """Host port the cluster maps to Grafana's NodePort (kind only); ``None`` where Grafana needs a port-forward."""
    provider: k8s.Provider
    """The Kubernetes provider every in-cluster resource must use."""

    @property
    def facts(self) -> KindFacts:
        """What a cluster of this kind provides, needs or forbids (``components/clusters/kinds.py``)."""
        return KINDS[self.kind]

    def image_repository(self, name: str, image: str, *, parent: pulumi.Resource) -> ImageRepository:
        """The repository ``image`` is pushed to for this cluster, with what it needs declared under ``parent``
        (children named ``<name>-…``); kind clusters load images instead (``load_image``)."""
        raise NotImplementedError(f"images are loaded into the nodes of a {self.kind} cluster, not pushed")

    def load_image(
        self, name: str, *, repository: str, tag: str, context: str, parent: pulumi.Resource
    ) -> pulumi.Output[str]:
        """Build ``context`` as ``repository:tag`` and copy it into the nodes; resolves to that reference once
        there (children named ``<name>-…`` under ``parent``)."""
        raise NotImplementedError(f"images are pushed to a registry on a {self.kind} cluster, not loaded")

    def stack_outputs(self) -> dict[str, pulumi.Input[object]]:
        """What a person needs of the cluster, as the program exports it (the kubeconfig is a secret)."""
        return {
            "clusterName": self.cluster_name,
            "clusterKind": self.kind,
            "kubeconfig": self.kubeconfig,
            "kubernetesVersion": self.kubernetes_version,
            "defaultStorageClass": self.default_storage_class,
        }

    def _register(self) -> None:
        """Record the outputs; called last by each subclass, once every attribute is set."""
        self.register_outputs(
            {
                "clusterName": self.cluster_name,
                "kind": self.kind,
                "kubeconfig": self.kubeconfig,
                "kubernetesVersion": self.kubernetes_version,
                "defaultStorageClass": self.default_storage_class,
            }
        )


def create_cluster(name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None) -> Cluster:
    """Declare the cluster ``args`` describe, importing only that kind's module (and cloud SDK)."""
    facts = KINDS[args.kind]
    module_name, class_name = facts.component.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as missing:
        raise pulumi.RunError(
            f"cluster.kind '{args.kind}' needs the Python package '{missing.name}', which is not installed; "
            f"install it with: .venv/bin/pip install -e '.[{facts.python_extra or ''}]'"
        ) from missing
    cluster: Cluster = getattr(module, class_name)(name, args, opts)
    return cluster
