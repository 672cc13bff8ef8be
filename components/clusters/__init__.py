"""The cluster of an environment, whatever its kind, behind one interface; one module per kind.

Every Kubernetes resource of the program is declared with the ``provider`` a ``Cluster`` exposes, built from
the kubeconfig the cluster component produced; nothing falls back to the ambient kubeconfig of whoever runs
``pulumi up``. Cloud SDKs are imported only for the kind a stack uses, so that a local user needs none.
"""

from __future__ import annotations

import importlib

import pulumi
import pulumi_kubernetes as k8s

from components.config import ClusterConfig


class Cluster(pulumi.ComponentResource):
    """Base of the per-kind cluster components; its attributes are what the rest of the program consumes."""

    cluster_name: pulumi.Output[str]
    """Name of the cluster at its provider (kind cluster, EKS/AKS/GKE cluster)."""
    kind: str
    """The ``cluster.kind`` of the stack: kind, existing, eks, aks or gke."""
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


_IMPLEMENTATIONS = {
    "kind": ("components.clusters.kind", "KindCluster"),
    "existing": ("components.clusters.existing", "ExistingCluster"),
    "eks": ("components.clusters.eks", "EksCluster"),
    "aks": ("components.clusters.aks", "AksCluster"),
    "gke": ("components.clusters.gke", "GkeCluster"),
}


def create_cluster(name: str, config: ClusterConfig, opts: pulumi.ResourceOptions | None = None) -> Cluster:
    """Declare the cluster ``config`` describes, importing only that kind's module (and cloud SDK)."""
    module_name, class_name = _IMPLEMENTATIONS[config.kind]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as missing:
        extra = {"eks": "aws", "aks": "azure", "gke": "gcp"}.get(config.kind, "")
        raise pulumi.RunError(
            f"cluster.kind '{config.kind}' needs the Python package '{missing.name}', which is not installed; "
            f"install it with: .venv/bin/pip install -e '.[{extra}]'"
        ) from missing
    cluster: Cluster = getattr(module, class_name)(name, config, opts)
    return cluster
