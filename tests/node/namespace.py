"""The network and mount namespaces the local node lives in, and the only ways into them.

An anchor process is started with ``unshare --net --mount --propagation private``; every process of the node
(etcd, the API server, containerd, the kubelet…) and every command that talks to it (``pulumi up``,
``kubectl``) joins both namespaces with ``nsenter``. So:

- the pod and service ranges, the node's address and every listener exist only in that network namespace:
  nothing joins it to the machine's own (no veth, route or NAT), and with no default route a pod cannot send
  a packet anywhere else;
- the kubelet's mounts (volumes, secrets, the pods' network namespace files) are made in the node's mount
  namespace, which containerd shares, and never appear in the machine's mount table: the namespace starts as a
  private copy, cut from the machine's peer groups, and is then made shared inside itself, since
  ``HostToContainer`` propagation (node-exporter's mount of ``/``) needs a shared or slave root and fails the
  container otherwise ("path / is mounted on / but it is not a shared or slave mount"); the few paths the node
  writes outside its work folder (containerd's socket and shim folder, the pods' netns files, the kubelet's log
  links) are tmpfs mounts of that namespace, so they vanish with it;
- the test process reaches a listener inside through ``forward``: a relay on 127.0.0.1 of the machine whose
  upstream connections are opened from a thread that has entered the namespace (``setns``), the one thing
  that crosses.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import selectors
import socket
import subprocess
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from tests.processes import LOOPBACK, poll

CLONE_NEWNET = 0x40000000
NODE_BRIDGE = "mlobs0"
NODE_IP = "10.244.0.1"
"""The node's address: the gateway of the pods' bridge, which the API server advertises and the kubelet serves on."""
POD_CIDR = "10.244.0.0/24"
SERVICE_CIDR = "10.96.0.0/24"
KUBERNETES_SERVICE_IP = "10.96.0.1"
PRIVATE_MOUNTS = ("/run/containerd", "/run/netns", "/var/log/containers")
"""Fixed paths containerd and the kubelet write to whatever their configuration says, covered by tmpfs inside."""

_ANCHOR = f"""
set -eu
mount --make-rshared /
for folder in {' '.join(PRIVATE_MOUNTS)}; do mount -t tmpfs -o mode=0755 tmpfs "$folder"; done
ip link set lo up
ip link add {NODE_BRIDGE} type bridge
ip addr add {NODE_IP}/24 dev {NODE_BRIDGE}
ip link set {NODE_BRIDGE} up
ip route add {SERVICE_CIDR} dev {NODE_BRIDGE} src {NODE_IP}
echo 1 > /proc/sys/net/ipv4/ip_forward
echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables
echo ready
read -r _ || true
"""
"""Runs as the anchor: the private mounts, the bridge with the node's address, a route to the service range
(which kube-proxy's rules translate: a connection from the node itself, ``kubectl`` or a relay, first needs a
route to choose its source address by, as the default route gives on a real node), forwarding on; then it
waits for its stdin to close (the test process ending, however it ends)."""

_libc = ctypes.CDLL(None, use_errno=True)


class NodeNamespace:
    """The node's network and mount namespaces, held by an anchor process until ``close``."""

    def __init__(self) -> None:
        self._created = [Path(p) for p in PRIVATE_MOUNTS if not Path(p).exists()]
        for folder in self._created:
            folder.mkdir(parents=True)
        self._anchor = subprocess.Popen(
            ["unshare", "--net", "--mount", "--propagation", "private", "--", "sh", "-c", _ANCHOR],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        assert self._anchor.stdout is not None
        line = self._anchor.stdout.readline().strip()
        if line != "ready":
            self._anchor.kill()
            _, error = self._anchor.communicate(timeout=10)
            raise RuntimeError(f"the node's namespaces could not be set up: {line} {error}".strip())
        self.pid = self._anchor.pid
        self.netns_path = f"/proc/{self.pid}/ns/net"
        self.inode = os.stat(self.netns_path).st_ino
        self._forwarders: list[Forwarder] = []

    def command(self, argv: Sequence[str | Path], cwd: Path | None = None) -> list[str]:
        """``argv`` as a command that runs inside both namespaces, in ``cwd`` (default: the current folder).

        Entering a mount namespace starts a command in ``/``, and nsenter's ``--wd`` keeps a folder of the old
        namespace, whose path ``getcwd`` then cannot resolve: the folder is entered by path once inside."""
        return ["nsenter", f"--target={self.pid}", "--net", "--mount", "--", "sh", "-c", 'cd "$0" && exec "$@"',
                str(cwd or Path.cwd()), *(str(a) for a in argv)]

    def run(self, argv: Sequence[str | Path], *, timeout: float = 120, check: bool = True,
            input_text: str | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(self.command(argv), capture_output=True, text=True, timeout=timeout,
                                input=input_text, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(map(str, argv))} exited {result.returncode}:\n{result.stdout}\n"
                                 f"{result.stderr}")
        return result

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """The calling thread in the node's network namespace (sockets made meanwhile stay there)."""
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(self.netns_path, os.O_RDONLY)
        try:
            if _libc.setns(target, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns into the node's network namespace")
            yield
        finally:
            if _libc.setns(own, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back to the machine's network namespace")
            os.close(own)
            os.close(target)

    def connect(self, host: str, port: int, timeout: float = 10) -> socket.socket:
        with self.entered():
            return socket.create_connection((host, port), timeout=timeout)

    def forward(self, host: str, port: int) -> str:
        """``http://127.0.0.1:<port>``, relayed to ``host:port`` inside the namespace."""
        forwarder = Forwarder(self, host, port)
        self._forwarders.append(forwarder)
        return f"http://{LOOPBACK}:{forwarder.port}"

    def close(self) -> None:
        """Stop the relays and the anchor; the namespaces go when their last process has gone."""
        for forwarder in self._forwarders:
            forwarder.close()
        if self._anchor.poll() is None:
            assert self._anchor.stdin is not None
            self._anchor.stdin.close()
            self._anchor.wait(timeout=30)
        for folder in reversed(self._created):
            with contextlib.suppress(OSError):
                folder.rmdir()


class Forwarder:
    """A TCP relay from 127.0.0.1 of the machine to one address inside the node's network namespace."""

    def __init__(self, namespace: NodeNamespace, host: str, port: int) -> None:
        self._namespace, self._target = namespace, (host, port)
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((LOOPBACK, 0))
        self._listener.listen(64)
        self.port = int(self._listener.getsockname()[1])
        self._closed = threading.Event()
        self._accepting = threading.Thread(target=self._accept, name=f"forward-{host}:{port}", daemon=True)
        self._accepting.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        try:
            upstream = self._namespace.connect(*self._target)
        except OSError:
            client.close()  # the client sees a closed connection, as with nothing listening
            return
        with client, upstream, selectors.DefaultSelector() as selector:
            upstream.settimeout(None)
            selector.register(client, selectors.EVENT_READ, upstream)
            selector.register(upstream, selectors.EVENT_READ, client)
            while not self._closed.is_set():
                for key, _ in selector.select(timeout=1):
                    source: socket.socket = key.fileobj  # type: ignore[assignment]
                    try:
                        data = source.recv(65536)
                        if not data:
                            return
                        key.data.sendall(data)
                    except OSError:  # either side closed or reset: the relayed connection is over
                        return

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        self._accepting.join(timeout=5)


def wait_for_namespace_gone(inode: int, timeout: float = 30) -> None:
    """Until no process is in the network namespace ``inode`` any more."""

    def gone() -> bool:
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if os.stat(entry / "ns" / "net").st_ino == inode:
                        return False
        return True

    poll("every process of the node gone", gone, timeout=timeout, interval=0.2)
