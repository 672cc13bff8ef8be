"""The program deployed onto the local node by the real engine: ``pulumi up`` of the ``existing`` stack.

The stack file is the real ``stacks/Pulumi.existing.yaml``; the test changes only what this node cannot
provide as a user's cluster would, each for a reason stated below:

- the cluster's kubeconfig context points at the node, and its StorageClass is the node's (local volumes);
- the model image is the one built from ``model-service/Dockerfile`` here (the model's ``image``: nothing to push),
  the rest of the model's settings as the stack file has them;
- the chart comes from the unpacked copy in ``../shared`` (no chart repository is reachable);
- Grafana is off: it cannot be built here (its Go module is AGPL), so the dashboards are proven by running
  their queries against this Prometheus, as Grafana would send them;
- the admission webhooks run, but their certificate comes from the test: the chart's certificate Jobs use an
  image (``ghcr.io/jkroepke/kube-webhook-certgen``) whose Go module the module proxy does not serve, so
  ``patch.enabled`` is off, the Secret those Jobs would create is created by the test as soon as the monitoring
  namespace exists, and the webhook configurations carry its CA (``caBundle``); ``failurePolicy`` is the chart's
  ``IgnoreOnInstallOnly``, as with the Jobs, since the chart's own rules are created before the operator serves;
- the monitors' time scale is the end-to-end suite's, so that an hour of the rules' windows takes 108 s.
"""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from components.contracts import PROJECT
from components.model.config import SAMPLE_MODEL_NAME
from components.model.image import IMAGE_REPOSITORY, image_tag
from components.monitoring.config import MonitoringConfig
from components.monitoring.values import ChartNames
from tests.chart_render import chart_dir
from tests.e2e.stack import DEFAULT_TIME_SCALE
from tests.engine.engine import EngineProject
from tests.harness import STACKS_DIR, load_stack_file
from tests.node.cluster import STORAGE_CLASS, LocalNode
from tests.node.pki import CertificateAuthority
from tests.tools import ROOT, NodeImage, built_image
from tests.traffic import Traffic

STACK = "existing"
CONTEXT = "kind-mlobs-existing"
"""The context ``stacks/Pulumi.existing.yaml`` names: the node's kubeconfig is written under it."""
TIME_SCALE = DEFAULT_TIME_SCALE
UP_TIMEOUT_SECONDS = 1200
"""Longer than the release's own timeout (``monitoring.timeoutSeconds``, 900 s), so that Helm reports first."""


def model_image() -> NodeImage:
    """The model's image for the sources checked out, built by buildah from its Dockerfile unless cached."""
    tag = image_tag()
    script = ROOT / "scripts" / "install-node.sh"
    hint = f"bash {script.relative_to(ROOT)} python-base && bash {script.relative_to(ROOT)} model-image {tag}"
    result = subprocess.run(["bash", str(script), "model-image", tag], capture_output=True, text=True,
                            timeout=1200, check=False)
    if result.returncode != 0:
        raise AssertionError(f"building the model image failed ({hint}):\n{result.stdout}\n{result.stderr}")
    return built_image(IMAGE_REPOSITORY, tag, hint)


def stack_section(key: str) -> dict[str, Any]:
    """A section of ``stacks/Pulumi.existing.yaml`` as its file has it (empty when the file sets none)."""
    config, _ = load_stack_file(STACKS_DIR / f"Pulumi.{STACK}.yaml")
    return dict(yaml.safe_load(config.get(f"{PROJECT}:{key}", "{}")) or {})


def node_overrides(image: NodeImage, ca_bundle: str) -> dict[str, Any]:
    """The test's changes to the stack's configuration (see the module's docstring for why each is needed)."""
    sample = stack_section("models")[SAMPLE_MODEL_NAME] or {}
    return {
        "cluster": {**stack_section("cluster"), "storageClass": STORAGE_CLASS},
        "models": {SAMPLE_MODEL_NAME: {**sample, "image": image.ref.removeprefix("docker.io/library/"),
                                       "monitors": {**sample.get("monitors", {}), "timeScale": TIME_SCALE}}},
        "monitoring": {
            "chart": {"path": str(chart_dir())},
            "extraValues": {
                "grafana": {"enabled": False},
                "prometheusOperator": {"admissionWebhooks": {
                    "patch": {"enabled": False},
                    "caBundle": ca_bundle,
                    "failurePolicy": "IgnoreOnInstallOnly",
                }},
            },
        },
    }


class AdmissionCertificate:
    """Creates the webhooks' serving certificate Secret as soon as the monitoring namespace exists, in a thread:
    what the chart's pre-install Job would have done before the operator's pod mounts it."""

    def __init__(self, node: LocalNode, pki: CertificateAuthority, namespace: str, names: ChartNames) -> None:
        self._node, self._namespace, self._names = node, namespace, names
        service = names.operator_service
        self.pair = pki.issue("admission", service, dns_names=(
            service, f"{service}.{namespace}", f"{service}.{namespace}.svc", f"{service}.{namespace}.svc.cluster.local",
        ))
        self.ca = pki.ca.certificate
        self.created_at: float | None = None
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="admission-certificate", daemon=True)
        self._thread.start()

    @property
    def ca_bundle(self) -> str:
        return base64.b64encode(self.ca.read_bytes()).decode()

    def _run(self) -> None:
        plane = self._node.plane
        encode = lambda path: base64.b64encode(path.read_bytes()).decode()  # noqa: E731
        while not self._stop.is_set():
            try:
                if plane.get(f"/api/v1/namespaces/{self._namespace}") is not None:
                    plane.create(f"/api/v1/namespaces/{self._namespace}/secrets", {
                        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                        "metadata": {"name": self._names.admission_secret, "namespace": self._namespace},
                        "data": {"ca": encode(self.ca), "cert": encode(self.pair.certificate),
                                 "key": encode(self.pair.key)},
                    })
                    self.created_at = time.monotonic()
                    return
            except Exception as error:  # reported by the test, never lost in the thread
                self.errors.append(repr(error))
            self._stop.wait(0.2)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@dataclass
class Deployment:
    """The stack as deployed: its engine project, what it declared, and how to reach what it runs."""

    node: LocalNode
    engine: EngineProject
    image: NodeImage
    names: ChartNames
    monitoring_namespace: str
    baseline: set[tuple[str, str, str, str]] = field(default_factory=set)
    """Every object of the node before ``pulumi up``: what ``destroy`` must return it to (CRDs aside)."""
    timings: dict[str, float] = field(default_factory=dict)
    destroyed: bool = False
    traffic: Traffic | None = None
    """The traffic a scenario started, stopped before destroy."""

    def outputs(self) -> dict[str, Any]:
        return dict(json.loads(self.engine.run("stack", "output", "--json", "--stack", STACK).stdout))

    def state(self) -> list[dict[str, Any]]:
        return self.engine.stack_resources()

    def declared(self, kind: str) -> list[dict[str, Any]]:
        """The outputs of every object of ``kind`` (``ServiceMonitor``…) the program declared itself."""
        return [r["outputs"] for r in self.state()
                if r["type"].startswith("kubernetes:") and r["type"].endswith(f":{kind}") and r.get("custom")]

    def destroy(self) -> None:
        started = time.monotonic()
        self.engine.run("destroy", "--yes", "--skip-preview", "--stack", STACK, timeout=UP_TIMEOUT_SECONDS,
                        diagnose=self.node.describe)
        self.timings["pulumi destroy (s)"] = time.monotonic() - started
        self.destroyed = True


@contextlib.contextmanager
def deployed(node: LocalNode, workdir: Path) -> Iterator[Deployment]:
    """``pulumi up`` onto the node, then, on exit, ``pulumi destroy`` unless a test already did."""
    image = model_image()
    started = time.monotonic()
    node.namespace.run(["ctr", "--address", "/run/containerd/containerd.sock", "--namespace", "k8s.io",
                        "images", "import", image.archive], timeout=600)
    timings = {"model image imported (s)": time.monotonic() - started}
    monitoring = MonitoringConfig()
    names = ChartNames(monitoring.release_name)
    admission = AdmissionCertificate(node, node.pki, monitoring.namespace, names)
    engine = EngineProject.create(workdir, STACK, node_overrides(image, admission.ca_bundle),
                                  wrap=node.namespace.command)
    (Path(engine.env["HOME"]) / ".kube" / "config").write_text(
        yaml.safe_dump(node.plane.kubeconfig(CONTEXT, inside=True)))
    deployment = Deployment(node=node, engine=engine, image=image, names=names,
                            monitoring_namespace=monitoring.namespace, baseline=node.plane.all_objects(),
                            timings=timings)
    try:
        started = time.monotonic()
        engine.run("up", "--yes", "--skip-preview", "--stack", STACK, timeout=UP_TIMEOUT_SECONDS,
                   diagnose=node.describe)
        timings["pulumi up, to every resource ready (s)"] = time.monotonic() - started
        admission.stop()
        assert not admission.errors, admission.errors
        yield deployment
    finally:
        admission.stop()
        if deployment.traffic is not None:
            deployment.traffic.stop()
        if not deployment.destroyed:
            with contextlib.suppress(AssertionError):
                deployment.destroy()

