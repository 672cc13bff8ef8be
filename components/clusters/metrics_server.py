"""metrics-server, for the clusters that come without it (kind, EKS), so that HorizontalPodAutoscalers work.

An HPA on CPU reads the resource metrics API (``metrics.k8s.io``), which only metrics-server serves. AKS and GKE
run it as a managed add-on; kind and EKS do not, so the stack installs the upstream chart there. It is one
release per cluster, whatever the number of models, and is declared apart from any model for that reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

METRICS_SERVER_CHART = "metrics-server"
METRICS_SERVER_REPOSITORY = "https://kubernetes-sigs.github.io/metrics-server/"
METRICS_SERVER_CHART_VERSION = "3.13.1"
"""Chart release that ships metrics-server v0.8.1; pinned, since a chart upgrade changes cluster-wide objects."""
METRICS_SERVER_NAMESPACE = "kube-system"
"""Where clusters that ship metrics-server run it, so that people find it in the usual place."""


@dataclass(frozen=True, kw_only=True)
class MetricsServerArgs:
    """How metrics-server reaches the kubelets."""

    kubelet_insecure_tls: bool
    """Skip verifying the kubelets' serving certificates. kind's kubelets serve self-signed certificates that
    no CA in the cluster signed, so metrics-server cannot scrape them otherwise; never set on a real cluster."""


class MetricsServer(pulumi.ComponentResource):
    """The metrics-server Helm release (``metrics-server`` in ``kube-system``), pinned to a chart version.

    Takes the cluster's Kubernetes provider through ``opts`` (``providers=[cluster.provider]``).
    """

    TYPE = "mlobs:autoscaling:MetricsServer"

    release_name: pulumi.Output[str]
    """Name of the Helm release."""

    def __init__(self, name: str, args: MetricsServerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(self.TYPE, name, None, opts)
        release = k8s.helm.v3.Release(
            f"{name}-release",
            name=METRICS_SERVER_CHART,
            chart=METRICS_SERVER_CHART,
            version=METRICS_SERVER_CHART_VERSION,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=METRICS_SERVER_REPOSITORY),
            namespace=METRICS_SERVER_NAMESPACE,
            values={"args": ["--kubelet-insecure-tls"] if args.kubelet_insecure_tls else []},
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.release_name = release.name.apply(lambda release_name: str(release_name))
        self.register_outputs({"releaseName": self.release_name})
