"""A cluster the stack does not own: reached through a kubeconfig file and context from config."""

from __future__ import annotations

from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s

from components.clusters import Cluster
from components.config import ExistingClusterConfig


class ExistingCluster(Cluster):
    """Wraps a bring-your-own cluster: a ``kubernetes.Provider`` on ``cluster.kubeconfig`` and ``cluster.context``.

    The kubeconfig file is read when the program runs, so that the provider holds its contents (as a secret)
    rather than a path that means something else on the next machine, and a missing file fails before any
    resource is declared.
    """

    TYPE = "mlobs:cluster:ExistingCluster"

    def __init__(
        self, name: str, config: ExistingClusterConfig, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        path = Path(config.kubeconfig).expanduser()
        if not path.is_file():
            raise pulumi.RunError(
                f"ml-observability:cluster.kubeconfig: no kubeconfig file at {path} (got {config.kubeconfig!r}); "
                "point it at your cluster's kubeconfig: pulumi config set --path 'cluster.kubeconfig' <path>"
            )
        super().__init__(self.TYPE, name, None, opts)

        self.kind = "existing"
        self.cluster_name = pulumi.Output.from_input(config.context)
        self.kubeconfig = pulumi.Output.secret(path.read_text())
        self.kubernetes_version = config.kubernetes_version
        self.default_storage_class = (
            pulumi.Output.from_input(config.storage_class) if config.storage_class is not None else None
        )
        self.control_plane_metrics = config.control_plane_metrics
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            context=config.context,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self._register()
