"""A kind cluster on the local Docker engine, created and deleted with the stack.

There is no maintained Pulumi provider for kind, so the ``kind`` CLI is driven through pulumi-command: create
on ``pulumi up``, delete on ``pulumi destroy``, and a replacement whenever the kind config or the node image
changes. The kind config exposes the control-plane metrics endpoints that kubeadm binds to 127.0.0.1 (so that
kube-prometheus-stack's controller-manager, scheduler, etcd and kube-proxy targets are up) and maps a host
port to Grafana's NodePort, so that Grafana answers on http://localhost:3000 without a port-forward.
"""

from __future__ import annotations

import hashlib
import shlex

import pulumi
import pulumi_command as command
import pulumi_kubernetes as k8s
import yaml

from components.clusters import Cluster
from components.clusters.args import KindClusterArgs
from components.contracts import GRAFANA_NODE_PORT, stack_resource_name

# kubeadm patches are left unversioned on purpose: kind translates them for the kubeadm API of the node image
# (v1beta4 from Kubernetes 1.36 takes extraArgs as a list), a versioned patch would match one API only.
_CONTROL_PLANE_METRICS_PATCH = """\
kind: ClusterConfiguration
controllerManager:
  extraArgs:
    bind-address: "0.0.0.0"
scheduler:
  extraArgs:
    bind-address: "0.0.0.0"
etcd:
  local:
    extraArgs:
      listen-metrics-urls: "http://0.0.0.0:2381"
"""
_KUBE_PROXY_METRICS_PATCH = """\
kind: KubeProxyConfiguration
metricsBindAddress: "0.0.0.0:10249"
"""


def kind_config(args: KindClusterArgs) -> str:
    """The kind cluster configuration (kind.x-k8s.io/v1alpha4) as YAML, fed to ``kind create cluster``."""
    control_plane = {
        "role": "control-plane",
        "image": args.node_image,
        "extraPortMappings": [
            {"containerPort": GRAFANA_NODE_PORT, "hostPort": args.grafana_host_port, "listenAddress": "127.0.0.1"}
        ],
    }
    workers = [{"role": "worker", "image": args.node_image} for _ in range(args.workers)]
    document = {
        "kind": "Cluster",
        "apiVersion": "kind.x-k8s.io/v1alpha4",
        "kubeadmConfigPatches": [_CONTROL_PLANE_METRICS_PATCH, _KUBE_PROXY_METRICS_PATCH],
        "nodes": [control_plane, *workers],
    }
    return yaml.safe_dump(document, sort_keys=False)


class KindCluster(Cluster):
    """A kind cluster named ``cluster.name`` (default ``mlobs-<stack>``), and a Kubernetes provider for it.

    Creates a ``command:local:Command`` whose stdout is the kubeconfig (kept secret and out of the logs) and a
    ``kubernetes.Provider`` built from it. Needs ``kind`` and a running Docker engine on ``pulumi up``; a
    preview runs neither.
    """

    TYPE = "mlobs:cluster:KindCluster"

    def __init__(self, name: str, args: KindClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(self.TYPE, name, None, opts)
        cluster_name = args.name or stack_resource_name()
        quoted = shlex.quote(cluster_name)
        manifest = kind_config(args)

        # `kind create` reports progress on stderr; stdout carries the kubeconfig alone.
        cluster = command.local.Command(
            f"{name}-kind",
            create=(
                f"kind create cluster --name {quoted} --config=- --wait 180s 1>&2"
                f" && kind get kubeconfig --name {quoted}"
            ),
            delete=f"kind delete cluster --name {quoted}",
            stdin=manifest,
            triggers=[manifest, cluster_name],
            logging=command.local.Logging.STDERR,
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["stdout"]),
        )

        self.kind = "kind"
        self.cluster_name = pulumi.Output.from_input(cluster_name)
        self.kubeconfig = pulumi.Output.secret(cluster.stdout)
        self.kubernetes_version = args.kubernetes_version
        self.default_storage_class = pulumi.Output.from_input(str(self.facts.storage_class))
        self.control_plane_metrics = bool(self.facts.control_plane_metrics)
        self.grafana_host_port = args.grafana_host_port
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            context=f"kind-{cluster_name}",
            # A kind cluster deleted by hand must not wedge `pulumi destroy` on unreachable objects.
            delete_unreachable=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self._register()

    def load_image(
        self, name: str, *, repository: str, tag: str, context: str, parent: pulumi.Resource
    ) -> pulumi.Output[str]:
        """Build with the local engine and copy into the nodes: no registry, and no pull ever happens."""
        reference = f"{repository}:{tag}"
        create = self.cluster_name.apply(
            lambda cluster_name: (
                f"docker build --tag {shlex.quote(reference)} {shlex.quote(context)} 1>&2"
                f" && kind load docker-image --name {shlex.quote(cluster_name)} {shlex.quote(reference)} 1>&2"
            )
        )
        # A new kind cluster (whose kubeconfig then changes) has none of the images loaded into the old one. The
        # kubeconfig is secret; a hash of it reveals nothing, and kept plain it shows in the preview's diff.
        cluster_identity = pulumi.Output.unsecret(
            self.kubeconfig.apply(lambda kubeconfig: hashlib.sha256(kubeconfig.encode()).hexdigest())
        )
        load = command.local.Command(
            f"{name}-kind-load",
            create=create,
            triggers=[tag, self.cluster_name, cluster_identity],
            logging=command.local.Logging.STDERR,
            opts=pulumi.ResourceOptions(parent=parent),
        )
        loaded: pulumi.Output[str] = load.stdout.apply(lambda _stdout: reference)
        return loaded
