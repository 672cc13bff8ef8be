"""A cluster the stack does not own: reached through a kubeconfig file and context, images pushed to the
registry the stack names."""

from __future__ import annotations

from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s

from components.clusters import Cluster, ImageRepository
from components.clusters.args import ExistingClusterArgs


class ExistingCluster(Cluster):
    """Wraps a bring-your-own cluster: a ``kubernetes.Provider`` on ``cluster.kubeconfig`` and ``cluster.context``.

    The kubeconfig file is read when the program runs, so that the provider holds its contents (as a secret)
    rather than a path that means something else on the next machine, and a missing file fails before any
    resource is declared.
    """

    TYPE = "mlobs:cluster:ExistingCluster"

    def __init__(self, name: str, args: ExistingClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        path = Path(args.kubeconfig).expanduser()
        if not path.is_file():
            raise pulumi.RunError(
                f"ml-observability:cluster.kubeconfig: no kubeconfig file at {path} (got {args.kubeconfig!r}); "
                "point it at your cluster's kubeconfig: pulumi config set --path 'cluster.kubeconfig' <path>"
            )
        super().__init__(self.TYPE, name, None, opts)
        self._args = args

        self.kind = "existing"
        self.cluster_name = pulumi.Output.from_input(args.context)
        self.kubeconfig = pulumi.Output.secret(path.read_text())
        self.kubernetes_version = args.kubernetes_version
        self.default_storage_class = (
            pulumi.Output.from_input(args.storage_class) if args.storage_class is not None else None
        )
        self.control_plane_metrics = args.control_plane_metrics
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            context=args.context,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self._register()

    def image_repository(self, name: str, image: str, *, parent: pulumi.Resource) -> ImageRepository:
        """``<cluster.registry.address>/<image>``: the cluster has no registry of the stack's; its credentials,
        if given, also become the pods' pull secret."""
        if self._args.registry_address is None:  # the configuration's rules exclude this before any resource
            raise pulumi.RunError(
                "an existing cluster needs cluster.registry to push a built image to, or every deployed model's "
                "image set"
            )
        credentials = self._args.registry_credentials
        return ImageRepository(
            repository=f"{self._args.registry_address}/{image}",
            push_credentials=[credentials] if credentials is not None else [],
            platform=self._args.image_platform,
            pull_credentials=credentials,
        )
