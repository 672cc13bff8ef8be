"""The kinds of cluster the program deploys to, and what differs between them: one entry per kind, one place.

The configuration's rules, the chart's values, metrics-server and the model's image all read these facts rather
than testing ``kind == "gke"`` where they need one. Sources for each value are in
``../shared/facts/kube-prometheus-stack-platforms.md`` and the comments below. This module imports no cloud SDK:
only ``components/clusters/<kind>.py`` does, for the kind a stack uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, get_args

ClusterKind = Literal["kind", "existing", "eks", "aks", "gke"]
"""The one type of a cluster's kind: the stack file's ``cluster.kind`` and ``Cluster.kind``."""
CLUSTER_KINDS: tuple[ClusterKind, ...] = get_args(ClusterKind)


@dataclass(frozen=True, kw_only=True)
class KindFacts:
    """What a cluster of one kind provides, needs or forbids."""

    component: str
    """``module:Class`` of the component that declares (or wraps) such a cluster."""
    python_extra: str | None
    """The project's pip extra with that kind's cloud SDK (``pip install -e '.[aws]'``), if it needs one."""
    storage_class: str | None
    """StorageClass Prometheus' and Alertmanager's volumes use unless configured; ``None``: the cluster's default
    class (an existing cluster may name one in ``cluster.storageClass``)."""
    ephemeral_monitoring_storage: bool
    """Whether Prometheus may keep its data in ``emptyDir`` (lost with the pod): only a throwaway local cluster."""
    control_plane_metrics: bool | None
    """Whether controller-manager, scheduler, etcd and kube-proxy metrics are reachable; ``None``: the stack says
    (``cluster.controlPlaneMetrics``). Managed control planes expose none, so their targets would stay down."""
    metrics_server: Literal["install", "shipped", "unknown"]
    """metrics-server, which a HorizontalPodAutoscaler needs: the stack installs it, the provider ships it as an
    add-on (a second one would fight over its APIService), or the stack cannot know (it is assumed present)."""
    kubelet_certificates_signed: bool
    """Whether the kubelets' serving certificates are signed by a CA the cluster trusts; metrics-server must skip
    verifying them where they are not (kind)."""
    autoscaling_by_default: bool
    """Whether models autoscale unless configured otherwise (not where metrics-server may be missing)."""
    image_delivery: Literal["load", "registry of the stack", "registry of the config"]
    """Where an image this stack builds goes: loaded into the nodes (kind), pushed to a registry the stack creates
    (EKS: ECR, AKS: ACR, GKE: Artifact Registry), or pushed to the registry ``cluster.registry`` names."""
    grafana_node_port: bool
    """Grafana on a NodePort that the cluster maps to a host port (kind), rather than behind a port-forward."""
    nodes_in_zones: bool
    """Whether every node carries ``topology.kubernetes.io/zone`` (cloud node pools do): a spread over zones the
    scheduler must honour would leave pods Pending on nodes without it, so elsewhere it is only preferred."""
    high_availability_by_default: bool
    """Whether Prometheus and Alertmanager run replicated, with disruption budgets and spread, unless configured
    (on a cloud cluster, built for production; not on a laptop's or on a cluster the stack does not size)."""
    cluster_dns: Literal["coredns", "kube-dns"] = "coredns"
    """Which DNS the chart scrapes (GKE runs kube-dns)."""
    webhook_annotations: Mapping[str, str] = field(default_factory=dict)
    """Annotations of the operator's webhook configurations (AKS's admissions enforcer otherwise rewrites their
    namespaceSelector on every reconcile, a permanent diff)."""


KINDS: Mapping[ClusterKind, KindFacts] = MappingProxyType({
    "kind": KindFacts(
        component="components.clusters.kind:KindCluster",
        python_extra=None,
        storage_class="standard",  # kind's local-path provisioner
        ephemeral_monitoring_storage=True,
        control_plane_metrics=True,  # the kind config of the cluster component binds them to the node's address
        metrics_server="install",
        kubelet_certificates_signed=False,
        autoscaling_by_default=True,
        image_delivery="load",
        grafana_node_port=True,
        nodes_in_zones=False,
        high_availability_by_default=False,
    ),
    "existing": KindFacts(
        component="components.clusters.existing:ExistingCluster",
        python_extra=None,
        storage_class=None,
        ephemeral_monitoring_storage=False,
        control_plane_metrics=None,
        metrics_server="unknown",
        kubelet_certificates_signed=True,
        autoscaling_by_default=False,
        image_delivery="registry of the config",
        grafana_node_port=False,
        nodes_in_zones=False,
        high_availability_by_default=False,
    ),
    "eks": KindFacts(
        component="components.clusters.eks:EksCluster",
        python_extra="aws",
        storage_class="gp3",  # created by the EKS cluster component, with the EBS CSI driver
        ephemeral_monitoring_storage=False,
        control_plane_metrics=False,
        metrics_server="install",
        kubelet_certificates_signed=True,
        autoscaling_by_default=True,
        image_delivery="registry of the stack",
        grafana_node_port=False,
        nodes_in_zones=True,
        high_availability_by_default=True,
    ),
    "aks": KindFacts(
        component="components.clusters.aks:AksCluster",
        python_extra="azure",
        storage_class="managed-csi",
        ephemeral_monitoring_storage=False,
        control_plane_metrics=False,
        metrics_server="shipped",
        kubelet_certificates_signed=True,
        autoscaling_by_default=True,
        image_delivery="registry of the stack",
        grafana_node_port=False,
        nodes_in_zones=True,
        high_availability_by_default=True,
        webhook_annotations=MappingProxyType({"admissions.enforcer/disabled": "true"}),
    ),
    "gke": KindFacts(
        component="components.clusters.gke:GkeCluster",
        python_extra="gcp",
        storage_class="standard-rwo",  # pd-balanced through the CSI driver
        ephemeral_monitoring_storage=False,
        control_plane_metrics=False,
        metrics_server="shipped",
        kubelet_certificates_signed=True,
        autoscaling_by_default=True,
        image_delivery="registry of the stack",
        grafana_node_port=False,
        nodes_in_zones=True,
        high_availability_by_default=True,
        cluster_dns="kube-dns",
    ),
})
