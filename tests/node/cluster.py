"""A single-node Kubernetes cluster on this machine, inside namespaces of its own, for ``pulumi up`` to run on.

What runs, all inside the namespaces of ``tests/node/namespace.py``: etcd, kube-apiserver and the controller
manager (``tests/engine/control_plane.py``), the scheduler, containerd with runc and the standard CNI bridge
plugin, the kubelet and kube-proxy (iptables mode). Every image the node runs was built here from source
(``scripts/install-node.sh``) and is imported into containerd before the kubelet starts; none is ever pulled.
Storage is what an administrator provides on a bare node: a StorageClass without provisioner and local
PersistentVolumes, bound when a pod is scheduled.

Teardown leaves the machine as it found it, and says so: every process of the node is stopped (containers
first), the namespaces go with the last of them (and the mounts with the mount namespace), the kubelet's cgroups
are removed and the kernel settings the kubelet changes are put back. ``leftovers()`` compares the machine with
the snapshot taken before start.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.engine.control_plane import ControlPlane, Processes, control_plane, wait_ready
from tests.node.namespace import (
    NODE_BRIDGE,
    NODE_IP,
    POD_CIDR,
    SERVICE_CIDR,
    NodeNamespace,
    wait_for_namespace_gone,
)
from tests.node.pki import CertificateAuthority
from tests.processes import poll
from tests.tools import NodeImage, node_images, require_tool, unavailable, which_or_unavailable

NODE_NAME = "mlobs-node"
STORAGE_CLASS = "node-local"
"""The StorageClass of the node's PersistentVolumes (no provisioner: the volumes exist before the claims)."""
PERSISTENT_VOLUMES = 4
CONTAINERD_SOCKET = "/run/containerd/containerd.sock"
"""containerd's default address, inside the node's mount namespace: where the kubelet's cAdvisor looks for it to
label container metrics with their pod and container."""
SYSTEM_PACKAGES = "apt-get install containerd runc containernetworking-plugins iptables conntrack"
CNI_BIN_DIR = Path("/usr/lib/cni")
KUBELET_SYSCTLS = ("vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
                   "kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes")
"""Kernel settings the kubelet sets at start (its ``protectKernelDefaults: false`` behaviour); restored after."""
CGROUP_ROOT = Path("/sys/fs/cgroup")
NODE_READY_TIMEOUT = 180
CAP_SYS_RESOURCE = 24


def require_node_prerequisites() -> None:
    """Root, the system packages and cgroup v1 or v2 controllers the kubelet needs; skip (fail when strict)."""
    if os.geteuid() != 0:
        unavailable("the local node needs root (network and mount namespaces, containerd, the kubelet)")
    for binary in ("containerd", "runc", "ctr", "iptables", "conntrack", "unshare", "nsenter", "ip"):
        which_or_unavailable(binary, f"install the node's system packages: {SYSTEM_PACKAGES}")
    if not (CNI_BIN_DIR / "bridge").exists():
        unavailable(f"CNI plugins not found in {CNI_BIN_DIR}; {SYSTEM_PACKAGES}")


def _lines(*argv: str) -> frozenset[str]:
    return frozenset(subprocess.run(argv, capture_output=True, text=True, check=True).stdout.splitlines())


@dataclass(frozen=True)
class MachineState:
    """What the node must leave as it found it, in the machine's own namespaces."""

    links: frozenset[str]
    routes: frozenset[str]
    firewall: frozenset[str]
    netns: frozenset[str]
    mounts: frozenset[str]
    sysctls: dict[str, str]

    @classmethod
    def read(cls) -> MachineState:
        netns = Path("/run/netns")
        return cls(
            links=frozenset(line.split(":")[1].strip().split("@")[0] for line in _lines("ip", "-o", "link", "show")),
            routes=_lines("ip", "route", "show", "table", "all"),
            firewall=_lines("iptables", "-w", "-S") | _lines("iptables", "-w", "-t", "nat", "-S"),
            netns=frozenset(p.name for p in netns.iterdir()) if netns.is_dir() else frozenset(),
            mounts=frozenset(line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()),
            sysctls={name: (Path("/proc/sys") / name).read_text().strip() for name in KUBELET_SYSCTLS},
        )


class NodeRangeGuard:
    """Rules in the machine's own namespace that drop and count anything it sends to the node's pod or service
    range while the node runs: such a packet would mean a route or relay leaked out of the node's namespace. The
    machine has no route to those ranges, so without the node nothing would be sent there either."""

    COMMENT = "ml-observability node guard"

    def __init__(self) -> None:
        self.ranges = (POD_CIDR, SERVICE_CIDR)
        for cidr in self.ranges:
            self._rule("-I", cidr)

    def _rule(self, action: str, cidr: str) -> None:
        subprocess.run(["iptables", "-w", action, "OUTPUT", "-d", cidr, "-m", "comment", "--comment", self.COMMENT,
                        "-j", "DROP"], check=True, capture_output=True, timeout=30)

    def packets(self) -> int:
        listing = subprocess.run(["iptables", "-w", "-L", "OUTPUT", "-n", "-v", "-x"], check=True,
                                 capture_output=True, text=True, timeout=30).stdout
        return sum(int(line.split()[0]) for line in listing.splitlines() if self.COMMENT in line)

    def remove(self) -> list[str]:
        """Remove the rules; the problem to report if anything was counted."""
        sent = self.packets()
        for cidr in self.ranges:
            with contextlib.suppress(subprocess.CalledProcessError):
                self._rule("-D", cidr)
        return [f"the machine's own namespace sent {sent} packets to the node's ranges"] if sent else []


@dataclass
class LocalNode:
    """The running node: its API server, the namespaces to run commands in, and what the test can reach."""

    namespace: NodeNamespace
    plane: ControlPlane
    workdir: Path
    kubectl_path: Path
    images: tuple[NodeImage, ...]
    cgroup_root: str
    pki: CertificateAuthority
    """The node's CA: it signs whatever else the cluster must trust (a webhook's serving certificate…)."""
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def admin_kubeconfig(self) -> Path:
        return self.workdir / "admin.kubeconfig"

    def kubectl(self, *args: str, check: bool = True, timeout: float = 120,
                input_text: str | None = None) -> subprocess.CompletedProcess[str]:
        """``kubectl`` at the cluster's version, inside the node's namespaces, as the cluster admin."""
        return self.namespace.run([self.kubectl_path, "--kubeconfig", self.admin_kubeconfig, *args],
                                  timeout=timeout, check=check, input_text=input_text)

    def kubectl_json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def forward(self, host: str, port: int) -> str:
        return self.namespace.forward(host, port)

    def service_url(self, namespace: str, name: str, port: int) -> str:
        """A forward to a Service's ClusterIP: the path through kube-proxy a client in the cluster takes."""
        service = self.plane.get(f"/api/v1/namespaces/{namespace}/services/{name}")
        assert service is not None, f"no Service {namespace}/{name}"
        return self.forward(service["spec"]["clusterIP"], port)

    def pods(self, namespace: str, selector: str = "") -> list[dict[str, Any]]:
        query = f"?labelSelector={selector}" if selector else ""
        return list(self.plane.get(f"/api/v1/namespaces/{namespace}/pods{query}")["items"])

    def describe(self) -> str:
        """Pods, events and the kubelet's log tail, for a failure message."""
        parts = [self.kubectl("get", "pods", "-A", "-o", "wide", check=False).stdout,
                 self.kubectl("get", "events", "-A", "--sort-by=.lastTimestamp", check=False).stdout[-6000:]]
        for name in ("kubelet", "containerd"):
            log = self.workdir / "logs" / f"{name}.log"
            if log.exists():
                parts.append(f"--- {name} log tail\n" + "\n".join(log.read_text(errors="replace").splitlines()[-40:]))
        return "\n".join(parts)


def _write(path: Path, content: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    return path


def _without_sys_resource() -> bool:
    """True where this process lacks CAP_SYS_RESOURCE (some sandboxed machines drop it from the bounding set).

    Without it no process may lower its OOM score below its own: runc then fails every pod sandbox, which
    containerd gives -998 (``failed to update /proc/self/oom_score_adj: Permission denied``), and the kubelet
    and kube-proxy cannot give themselves -999. The node then keeps every score at or above containerd's, as a
    rootless node does; a Guaranteed pod's -997 becomes that floor too.
    """
    effective = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("CapEff"))
    return not int(effective.split()[1], 16) >> CAP_SYS_RESOURCE & 1


def _containerd_config(workdir: Path, sandbox_image: str) -> Path:
    """containerd's CRI with runc (cgroupfs, as the kubelet's driver) and the CNI configuration below."""
    return _write(workdir / "containerd" / "config.toml", f"""version = 2
root = "{workdir / 'containerd' / 'root'}"
state = "{workdir / 'containerd' / 'state'}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "{CONTAINERD_SOCKET}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  # No container's OOM score below containerd's own: lowering it takes CAP_SYS_RESOURCE (see _without_sys_resource).
  restrict_oom_score_adj = {str(_without_sys_resource()).lower()}
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{workdir / 'cni'}"
""")


def _cni_config(workdir: Path) -> Path:
    """The bridge the namespace already holds, host-local addresses, and routes to the service range only: a
    pod has no default route, so nothing it sends can leave the node."""
    return _write(workdir / "cni" / "10-mlobs.conflist", json.dumps({
        "cniVersion": "1.0.0",
        "name": "mlobs",
        "plugins": [
            {
                "type": "bridge", "bridge": NODE_BRIDGE, "isGateway": True, "ipMasq": False, "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR, "rangeStart": "10.244.0.10", "gateway": NODE_IP}]],
                    "routes": [{"dst": SERVICE_CIDR}],
                    "dataDir": str(workdir / "cni-ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }, indent=1))


def _kubelet_config(workdir: Path, pki: CertificateAuthority, cgroup_root: str) -> Path:
    serving = pki.issue("kubelet", NODE_NAME, ip_addresses=(NODE_IP,), dns_names=(NODE_NAME,))
    resolv = _write(workdir / "kubelet" / "resolv.conf", "# no cluster DNS on this node\noptions ndots:1\n")
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": NODE_IP,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "tlsCertFile": str(serving.certificate),
        "tlsPrivateKeyFile": str(serving.key),
        # Prometheus scrapes the kubelet with its service account's token (TokenReview, SubjectAccessReview),
        # the API server reaches it with its client certificate; nothing anonymous.
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                           "x509": {"clientCAFile": str(pki.ca.certificate)}},
        "authorization": {"mode": "Webhook"},
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": cgroup_root,
        "containerRuntimeEndpoint": f"unix://{CONTAINERD_SOCKET}",
        "failSwapOn": False,
        "resolvConf": str(resolv),
        "podLogsDir": str(workdir / "kubelet" / "pod-logs"),
        "clusterDomain": "cluster.local",
        # The imported images are the only copies: the kubelet must never collect them, nor evict for a disk
        # this machine shares with everything else.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%",
                         "nodefs.inodesFree": "1%"},
        "serializeImagePulls": False,
        "rotateCertificates": False,
    }
    if _without_sys_resource():
        config["oomScoreAdj"] = 0
    return _write(workdir / "kubelet" / "config.yaml", yaml.safe_dump(config))


def _kube_proxy_config(workdir: Path, kubeconfig: Path) -> Path:
    config = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "mode": "iptables",
        "clusterCIDR": POD_CIDR,
        "hostnameOverride": NODE_NAME,
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": f"{NODE_IP}:10249",
        # Conntrack limits are the machine's, not the node's: left alone.
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
    }
    if _without_sys_resource():
        config["oomScoreAdj"] = 0
    return _write(workdir / "kube-proxy" / "config.yaml", yaml.safe_dump(config))


def _cgroup_hierarchies() -> list[Path]:
    """Every mounted cgroup v1 hierarchy (or the v2 root): where the node's cgroup root must exist."""
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        return [CGROUP_ROOT]
    return [p for p in CGROUP_ROOT.iterdir() if p.is_dir() and (p / "cgroup.procs").exists()]


def _create_cgroup_root(name: str) -> None:
    for hierarchy in _cgroup_hierarchies():
        folder = hierarchy / name
        folder.mkdir(exist_ok=True)
        for setting in ("cpuset.cpus", "cpuset.mems"):  # a v1 cpuset starts empty: no task could run in it
            if (folder / setting).exists():
                (folder / setting).write_text((hierarchy / setting).read_text())


def _cgroup_processes(name: str) -> set[int]:
    found: set[int] = set()
    for hierarchy in _cgroup_hierarchies():
        for procs in (hierarchy / name).rglob("cgroup.procs") if (hierarchy / name).exists() else ():
            with contextlib.suppress(OSError):
                found |= {int(pid) for pid in procs.read_text().split()}
    return found


def _remove_cgroup_root(name: str) -> list[str]:
    problems = []
    for hierarchy in _cgroup_hierarchies():
        root = hierarchy / name
        if not root.exists():
            continue
        for folder in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                folder.rmdir()
        try:
            root.rmdir()
        except OSError as error:
            problems.append(f"cgroup {root}: {error}")
    return problems


def _processes_in_namespace(inode: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.stat(entry / "ns" / "net").st_ino == inode:
                    found.add(int(entry.name))
    return found


def _kill(pids: set[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def local_node(workdir: Path) -> Iterator[LocalNode]:
    """Start the node (about a minute) and stop it on exit, whatever happened; fail if it left anything behind."""
    require_node_prerequisites()
    binaries = {name: require_tool(name) for name in ("kubelet", "kube-proxy", "kube-scheduler", "kubectl")}
    images = node_images()
    before = MachineState.read()
    guard = NodeRangeGuard()
    cgroup_root = f"mlobs-node-{os.getpid()}"
    try:
        namespace = NodeNamespace()
    except BaseException:
        guard.remove()
        raise
    processes = Processes(_write(workdir / "logs" / ".keep", "").parent, namespace)
    timings: dict[str, float] = {}
    start = time.monotonic()
    try:
        pki = CertificateAuthority.create(workdir / "pki")
        with control_plane(workdir / "control-plane", node=namespace, pki=pki, processes=processes) as plane:
            admin = _write(workdir / "admin.kubeconfig", yaml.safe_dump(plane.kubeconfig("mlobs-node", inside=True)))
            processes.start("kube-scheduler", [str(binaries["kube-scheduler"]), "--kubeconfig", str(admin),
                                               "--leader-elect=false", "--bind-address", "127.0.0.1",
                                               "--secure-port", "0"])
            timings["control plane (s)"] = time.monotonic() - start

            sandbox = next(image.ref for image in images if image.name == "pause")
            process, log = processes.start("containerd", ["containerd", "--config",
                                                          str(_containerd_config(workdir, sandbox))])
            ctr = ["ctr", "--address", CONTAINERD_SOCKET, "--namespace", "k8s.io"]
            wait_ready(lambda: namespace.run([*ctr, "version"], check=False, timeout=10).returncode == 0,
                       "containerd", process, log)
            imported = time.monotonic()
            for image in images:
                namespace.run([*ctr, "images", "import", image.archive], timeout=600)
            timings["images imported (s)"] = time.monotonic() - imported

            _cni_config(workdir)
            _create_cgroup_root(cgroup_root)
            process, log = processes.start("kubelet", [
                str(binaries["kubelet"]), "--config", str(_kubelet_config(workdir, pki, cgroup_root)),
                "--kubeconfig", str(admin), "--hostname-override", NODE_NAME, "--node-ip", NODE_IP,
                "--root-dir", str(workdir / "kubelet" / "root"), "--cert-dir", str(workdir / "kubelet" / "pki"),
                "--v", "1",
            ])
            wait_ready(lambda: _node_ready(plane), "the kubelet's node", process, log, timeout=NODE_READY_TIMEOUT)
            process, log = processes.start("kube-proxy", [
                str(binaries["kube-proxy"]), "--config", str(_kube_proxy_config(workdir, admin)),
            ])
            wait_ready(lambda: "KUBE-SERVICES" in namespace.run(["iptables-save", "-t", "nat"], check=False).stdout,
                       "kube-proxy", process, log)
            _provide_storage(plane, workdir)
            timings["node ready (s)"] = time.monotonic() - start
            yield LocalNode(namespace=namespace, plane=plane, workdir=workdir, kubectl_path=binaries["kubectl"],
                            images=images, cgroup_root=cgroup_root, pki=pki, timings=timings)
    finally:
        problems = _tear_down(namespace, processes, cgroup_root, before, guard)
        assert not problems, "the local node left things behind:\n" + "\n".join(problems)


def _node_ready(plane: ControlPlane) -> bool:
    node = plane.get(f"/api/v1/nodes/{NODE_NAME}")
    if node is None:
        return False
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions", []))


def _provide_storage(plane: ControlPlane, workdir: Path) -> None:
    """A StorageClass without provisioner and local PersistentVolumes on the node, as an administrator would
    provide on a bare node; the kubelet gives each claim's pod its fsGroup on the volume."""
    plane.create("/apis/storage.k8s.io/v1/storageclasses", {
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": STORAGE_CLASS},
        "provisioner": "kubernetes.io/no-provisioner", "volumeBindingMode": "WaitForFirstConsumer",
        "reclaimPolicy": "Delete",
    })
    for index in range(PERSISTENT_VOLUMES):
        path = workdir / "volumes" / f"pv-{index}"
        path.mkdir(parents=True)
        plane.create("/api/v1/persistentvolumes", {
            "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": f"{STORAGE_CLASS}-{index}"},
            "spec": {
                "capacity": {"storage": "20Gi"}, "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain", "storageClassName": STORAGE_CLASS,
                "local": {"path": str(path)},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": [NODE_NAME]}]}]}},
            },
        })


def _tear_down(namespace: NodeNamespace, processes: Processes, cgroup_root: str, before: MachineState,
               guard: NodeRangeGuard) -> list[str]:
    """Stop everything, containers first; return what is still there that was not before."""
    problems: list[str] = []
    processes.stop("kubelet")
    processes.stop("kube-proxy")
    # The containers: every task in the node's cgroups (the kubelet put each pod there), then their shims and
    # anything else in the node's network namespace once the named processes are stopped.
    _kill(_cgroup_processes(cgroup_root))
    processes.stop_all()
    _kill(_processes_in_namespace(namespace.inode) - {namespace.pid})
    namespace.close()
    try:
        wait_for_namespace_gone(namespace.inode)
    except TimeoutError as error:
        problems.append(str(error))
    poll("the node's cgroups empty", lambda: not _cgroup_processes(cgroup_root), timeout=30)
    problems += _remove_cgroup_root(cgroup_root)
    for name, value in before.sysctls.items():
        path = Path("/proc/sys") / name
        if path.read_text().strip() != value:
            path.write_text(value)
    problems += guard.remove()
    after = MachineState.read()
    problems += [f"network interface {link} was added" for link in sorted(after.links - before.links)]
    problems += [f"route {route!r} was added" for route in sorted(after.routes - before.routes)]
    problems += [f"firewall rule {rule!r} was added" for rule in sorted(after.firewall - before.firewall)]
    problems += [f"network namespace {ns} was added" for ns in sorted(after.netns - before.netns)]
    problems += [f"mount {mount} was added" for mount in sorted(after.mounts - before.mounts)]
    problems += [f"sysctl {k} is {after.sysctls[k]}, was {v}" for k, v in before.sysctls.items()
                 if after.sysctls[k] != v]
    return problems

