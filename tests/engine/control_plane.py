"""etcd, kube-apiserver and kube-controller-manager as local processes on 127.0.0.1, for ``pulumi up``.

There is no kubelet and no scheduler: objects are stored and validated by a real API server (CRDs, CEL and
OpenAPI validation, RBAC, admission), and the controller manager runs only the namespace and garbage-collector
controllers, so that deletes and namespace removal complete as on a real cluster. Every listener is bound to
127.0.0.1; the API server is told its service network and advertised address so it never looks for a route.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tests.tools import require_tool

START_TIMEOUT_SECONDS = 120
RETRIES = 30


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ControlPlane:
    """A running API server: where it listens and the token of its only (cluster-admin) user."""

    server: str
    token: str
    workdir: Path

    def kubeconfig(self, context: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Config",
            # The serving certificate is self-signed by the API server at start; the connection never leaves
            # the loopback interface.
            "clusters": [{"name": context, "cluster": {"server": self.server, "insecure-skip-tls-verify": True}}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
            "current-context": context,
            "users": [{"name": context, "user": {"token": self.token}}],
        }

    def get_text(self, path: str) -> str:
        """GET ``path`` from the API server as the client user (raises on any HTTP error)."""
        request = urllib.request.Request(self.server + path, headers={"Authorization": f"Bearer {self.token}"})
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        for _ in range(RETRIES):
            try:
                with urllib.request.urlopen(request, context=context, timeout=30) as response:
                    return str(response.read().decode())
            except urllib.error.HTTPError as error:
                if error.code != 429:  # the server asks to come back while it catches up (Retry-After)
                    raise
                time.sleep(float(error.headers.get("Retry-After") or 1))
        raise AssertionError(f"GET {path}: still 429 Too Many Requests after {RETRIES} tries")

    def get(self, path: str) -> Any:
        """GET ``path`` from the API server as JSON; None for 404."""
        try:
            return json.loads(self.get_text(path))
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise

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


def _wait_ready(check: Any, what: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{what} exited {process.returncode}:\n{log.read_text()[-5000:]}")
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.5)
    raise AssertionError(f"{what} not ready after {START_TIMEOUT_SECONDS}s:\n{log.read_text()[-5000:]}")


@contextlib.contextmanager
def control_plane(workdir: Path) -> Iterator[ControlPlane]:
    """Start etcd, the API server and the controller manager; stop them (and only them) on exit."""
    etcd, apiserver, controller_manager = (
        require_tool("etcd"),
        require_tool("kube-apiserver"),
        require_tool("kube-controller-manager"),
    )
    workdir.mkdir(parents=True, exist_ok=True)
    processes: list[subprocess.Popen[bytes]] = []
    logs: list[IO[bytes]] = []

    def start(name: str, argv: list[str]) -> tuple[subprocess.Popen[bytes], Path]:
        log_path = workdir / f"{name}.log"
        log = log_path.open("wb")
        logs.append(log)
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
        processes.append(process)
        return process, log_path

    try:
        client, peer = free_port(), free_port()
        process, log = start(
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
        _wait_ready(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{client}/health", timeout=2).status == 200,
            "etcd", process, log,
        )

        token = secrets.token_urlsafe(32)
        (workdir / "tokens.csv").write_text(f'{token},engine-test,engine-test,"system:masters"\n')
        key = workdir / "service-account.key"
        subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True, timeout=60)
        port = free_port()
        plane = ControlPlane(server=f"https://127.0.0.1:{port}", token=token, workdir=workdir)
        process, log = start(
            "kube-apiserver",
            [
                str(apiserver), "--etcd-servers", f"http://127.0.0.1:{client}",
                "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--secure-port", str(port),
                "--cert-dir", str(workdir / "certs"), "--token-auth-file", str(workdir / "tokens.csv"),
                "--authorization-mode", "RBAC", "--service-cluster-ip-range", "10.0.0.0/24",
                "--service-account-issuer", f"https://127.0.0.1:{port}",
                "--service-account-key-file", str(key), "--service-account-signing-key-file", str(key),
                "--endpoint-reconciler-type", "none", "--enable-priority-and-fairness=false",
                "--disable-admission-plugins", "ServiceAccount", "--allow-privileged=true",
            ],
        )
        _wait_ready(lambda: plane.get_text("/readyz").strip() == "ok", "kube-apiserver", process, log)

        kubeconfig = workdir / "controller-manager.kubeconfig"
        kubeconfig.write_text(json.dumps(plane.kubeconfig("engine-test")))
        process, log = start(
            "kube-controller-manager",
            [
                str(controller_manager), "--kubeconfig", str(kubeconfig), "--leader-elect=false",
                "--controllers", "namespace-controller,garbage-collector-controller",
                "--bind-address", "127.0.0.1", "--secure-port", "0",
            ],
        )
        time.sleep(2)
        if process.poll() is not None:
            raise AssertionError(f"kube-controller-manager exited {process.returncode}:\n{log.read_text()[-5000:]}")
        yield plane
    finally:
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)
        for log in logs:
            log.close()
