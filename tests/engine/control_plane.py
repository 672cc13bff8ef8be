"""etcd, kube-apiserver and kube-controller-manager as local processes, for ``pulumi up``.

Two shapes, one code path:

- **objects only** (``control_plane(workdir)``, the engine tests): every listener on 127.0.0.1 of the machine, a
  self-signed serving certificate, and only the namespace and garbage-collector controllers, so that deletes
  and namespace removal complete as on a real cluster. Objects are stored and validated by a real API server
  (CRDs, CEL and OpenAPI validation, RBAC, admission) but nothing ever runs: there is no kubelet.
- **a node's control plane** (``control_plane(workdir, node=...)``, tests/node): inside the node's namespaces,
  serving on the node's address with certificates of the node's CA, the default admission plugins (the
  ServiceAccount plugin mounts the pods' tokens, Pod Security enforces the namespaces' levels) and every default
  controller; the node adds the scheduler, containerd, the kubelet and kube-proxy.

The API server's only user is a cluster-admin token; the service network is the node's.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from model_service.serve import free_port

from tests.tools import require_tool

if TYPE_CHECKING:
    from tests.node.namespace import NodeNamespace
    from tests.node.pki import CertificateAuthority

START_TIMEOUT_SECONDS = 120
RETRIES = 30
API_SERVER_PORT = 6443
"""The API server's port inside a node's namespace (where no other listener can take it)."""


@dataclass
class ControlPlane:
    """A running API server: where it listens and the token of its only (cluster-admin) user.

    ``server`` is where the test process reaches it; ``inside_server`` is the address clients inside the node's
    namespace use (the same for the objects-only shape).
    """

    server: str
    token: str
    workdir: Path
    inside_server: str = ""

    def kubeconfig(self, context: str, *, inside: bool = False) -> dict[str, Any]:
        server = self.inside_server if inside and self.inside_server else self.server
        return {
            "apiVersion": "v1",
            "kind": "Config",
            # The connection never leaves the loopback interface or the node's namespace; the test trusts it
            # without checking the serving certificate.
            "clusters": [{"name": context, "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
            "current-context": context,
            "users": [{"name": context, "user": {"token": self.token}}],
        }

    def call(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> str:
        """One API call as the cluster-admin user, its response's text (raises on any HTTP error but 429)."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": content_type}
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        for _ in range(RETRIES):
            request = urllib.request.Request(self.server + path, data=data, method=method, headers=headers)
            try:
                with urllib.request.urlopen(request, context=context, timeout=30) as response:
                    return str(response.read().decode())
            except urllib.error.HTTPError as error:
                if error.code != 429:  # the server asks to come back while it catches up (Retry-After)
                    raise
                time.sleep(float(error.headers.get("Retry-After") or 1))
        raise AssertionError(f"{method} {path}: still 429 Too Many Requests after {RETRIES} tries")

    def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Any:
        """One API call, JSON in and out."""
        return json.loads(self.call(method, path, body, content_type))

    def get_text(self, path: str) -> str:
        """GET ``path`` from the API server as the client user (raises on any HTTP error)."""
        return self.call("GET", path)

    def get(self, path: str) -> Any:
        """GET ``path`` from the API server as JSON; None for 404."""
        try:
            return self.request("GET", path)
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise

    def create(self, path: str, body: dict[str, Any]) -> Any:
        return self.request("POST", path, body)

    def all_objects(self) -> set[tuple[str, str, str, str]]:
        """(group/version, kind, namespace, name) of every listable object, through API discovery."""
        found: set[tuple[str, str, str, str]] = set()
        group_versions = ["v1"] + [
            group["preferredVersion"]["groupVersion"] for group in self.get("/apis")["groups"]
        ]
        for group_version in group_versions:
            base = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
            for resource in self.get(base)["resources"]:
                if "/" in resource["name"] or "list" not in resource.get("verbs", []):
                    continue
                if resource["name"] in ("events", "leases", "componentstatuses"):
                    continue  # written by the control plane itself as it runs
                listing = self.get(f"{base}/{resource['name']}") or {"items": []}
                for item in listing["items"]:
                    metadata = item["metadata"]
                    found.add((group_version, resource["kind"], metadata.get("namespace", ""), metadata["name"]))
        return found


def wait_ready(check: Callable[[], bool], what: str, process: subprocess.Popen[bytes], log: Path,
               timeout: float = START_TIMEOUT_SECONDS) -> None:
    """Until ``check()`` is true; fails at once with the log's tail if the process exits meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{what} exited {process.returncode}:\n{log.read_text()[-5000:]}")
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.5)
    raise AssertionError(f"{what} not ready after {timeout}s:\n{log.read_text()[-5000:]}")


class Processes:
    """The processes one fixture started, each logging to ``<workdir>/<name>.log``; stopped in reverse order."""

    def __init__(self, workdir: Path, node: NodeNamespace | None = None) -> None:
        self.workdir, self.node = workdir, node
        self.started: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._logs: list[IO[bytes]] = []

    def start(self, name: str, argv: list[str]) -> tuple[subprocess.Popen[bytes], Path]:
        log_path = self.workdir / f"{name}.log"
        log = log_path.open("wb")
        self._logs.append(log)
        command = self.node.command(argv, self.workdir) if self.node is not None else argv
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   cwd=self.workdir)
        self.started.append((name, process))
        return process, log_path

    def reachable(self, check: Callable[[], bool]) -> Callable[[], bool]:
        """``check`` run from inside the node's network namespace (or as is, with no node)."""
        if self.node is None:
            return check
        node = self.node

        def inside() -> bool:
            with node.entered():
                return check()

        return inside

    def stop(self, name: str, timeout: float = 30) -> None:
        for started_name, process in reversed(self.started):
            if started_name == name and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=30)

    def stop_all(self) -> None:
        for name, _ in reversed(self.started):
            self.stop(name)
        for log in self._logs:
            log.close()


@contextlib.contextmanager
def control_plane(
    workdir: Path, *, node: NodeNamespace | None = None, pki: CertificateAuthority | None = None,
    processes: Processes | None = None,
) -> Iterator[ControlPlane]:
    """Start etcd, the API server and the controller manager; stop them (and only them) on exit.

    With ``node`` (and its ``pki``), they run inside the node's namespaces and ``processes`` (shared with the
    node's other components) owns them; see the module's docstring for the two shapes.
    """
    etcd, apiserver, controller_manager = (
        require_tool("etcd"),
        require_tool("kube-apiserver"),
        require_tool("kube-controller-manager"),
    )
    workdir.mkdir(parents=True, exist_ok=True)
    owned = processes is None
    processes = processes or Processes(workdir, node)
    if node is not None:
        from tests.node.namespace import KUBERNETES_SERVICE_IP, NODE_IP, SERVICE_CIDR
    try:
        if node is None:
            client, peer = free_port(), free_port()
        else:  # the namespace has no other listener: the usual ports
            client, peer = 2379, 2380
        process, log = processes.start(
            "etcd",
            [
                str(etcd), "--name", "engine-test", "--data-dir", str(workdir / "etcd"),
                "--listen-client-urls", f"http://127.0.0.1:{client}",
                "--advertise-client-urls", f"http://127.0.0.1:{client}",
                "--listen-peer-urls", f"http://127.0.0.1:{peer}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
                "--initial-cluster", f"engine-test=http://127.0.0.1:{peer}",
                "--log-level", "warn", "--unsafe-no-fsync",
            ],
        )
        wait_ready(processes.reachable(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{client}/health", timeout=2).status == 200),
            "etcd", process, log)

        token = secrets.token_urlsafe(32)
        (workdir / "tokens.csv").write_text(f'{token},engine-test,engine-test,"system:masters"\n')
        common = ["--etcd-servers", f"http://127.0.0.1:{client}", "--token-auth-file", str(workdir / "tokens.csv"),
                  "--authorization-mode", "RBAC", "--allow-privileged=true"]
        if node is None or pki is None:
            key = workdir / "service-account.key"
            subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True,
                           timeout=60)
            port = free_port()
            plane = ControlPlane(server=f"https://127.0.0.1:{port}", token=token, workdir=workdir)
            arguments = [
                "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--secure-port", str(port),
                "--cert-dir", str(workdir / "certs"), "--service-cluster-ip-range", "10.0.0.0/24",
                "--service-account-issuer", f"https://127.0.0.1:{port}",
                "--endpoint-reconciler-type", "none", "--enable-priority-and-fairness=false",
                "--disable-admission-plugins", "ServiceAccount",
            ]
        else:
            key = pki.service_account_key()
            serving = pki.issue(
                "kube-apiserver", "kube-apiserver",
                dns_names=("kubernetes", "kubernetes.default", "kubernetes.default.svc",
                           "kubernetes.default.svc.cluster.local", "localhost"),
                ip_addresses=(KUBERNETES_SERVICE_IP, NODE_IP, "127.0.0.1"),
            )
            kubelet_client = pki.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client",
                                       organization="system:masters")
            inside = f"https://{NODE_IP}:{API_SERVER_PORT}"
            plane = ControlPlane(server=node.forward(NODE_IP, API_SERVER_PORT).replace("http://", "https://"),
                                 token=token, workdir=workdir, inside_server=inside)
            arguments = [
                "--bind-address", "0.0.0.0", "--advertise-address", NODE_IP, "--secure-port", str(API_SERVER_PORT),
                "--tls-cert-file", str(serving.certificate), "--tls-private-key-file", str(serving.key),
                "--client-ca-file", str(pki.ca.certificate),
                "--kubelet-client-certificate", str(kubelet_client.certificate),
                "--kubelet-client-key", str(kubelet_client.key),
                # The node's name resolves nowhere (no DNS in the namespace): exec, logs and port-forward reach
                # the kubelet at its InternalIP, the one its serving certificate is for.
                "--kubelet-preferred-address-types", "InternalIP",
                "--kubelet-certificate-authority", str(pki.ca.certificate),
                "--service-cluster-ip-range", SERVICE_CIDR,
                "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
            ]
        process, log = processes.start(
            "kube-apiserver",
            [str(apiserver), *common, *arguments,
             "--service-account-key-file", str(key), "--service-account-signing-key-file", str(key)],
        )
        wait_ready(lambda: plane.get_text("/readyz").strip() == "ok", "kube-apiserver", process, log)

        kubeconfig = workdir / "controller-manager.kubeconfig"
        kubeconfig.write_text(json.dumps(plane.kubeconfig("engine-test", inside=True)))
        if node is None or pki is None:
            controllers = ["--controllers", "namespace-controller,garbage-collector-controller"]
        else:
            controllers = ["--controllers", "*", "--service-account-private-key-file", str(key),
                           "--root-ca-file", str(pki.ca.certificate), "--use-service-account-credentials=false"]
        process, log = processes.start(
            "kube-controller-manager",
            [str(controller_manager), "--kubeconfig", str(kubeconfig), "--leader-elect=false", *controllers,
             "--bind-address", "127.0.0.1", "--secure-port", "0"],
        )
        time.sleep(2)
        if process.poll() is not None:
            raise AssertionError(f"kube-controller-manager exited {process.returncode}:\n{log.read_text()[-5000:]}")
        yield plane
    finally:
        if owned:
            processes.stop_all()
