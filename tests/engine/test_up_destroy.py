"""``pulumi up``, ``pulumi up`` again and ``pulumi destroy`` of the ``existing`` stack on a real API server.

The API server (tests/engine/control_plane.py) has no kubelet, so nothing ever runs: this test proves that
every object the program declares, the chart's custom resources included, is accepted as sent, that a second
``up`` finds nothing to change (no perpetual diff), and that ``destroy`` removes everything the program made
except the chart's ``monitoring.coreos.com`` CRDs, which Helm never deletes.

Test-only, through tests/engine/program/__main__.py and the test's config, never in the product: awaited objects carry
``pulumi.com/skipAwait``, the release neither awaits nor runs hooks, and the chart's admission webhooks (which
the API server would call, and nothing serves) are off.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.engine.control_plane import ControlPlane, control_plane
from tests.engine.engine import EngineProject
from tests.engine.test_preview import engine_overrides
from tests.tools import tool_versions

pytestmark = pytest.mark.engine

CONTEXT = "kind-mlobs-existing"  # the context stacks/Pulumi.existing.yaml names
NO_WEBHOOKS = {"prometheusOperator": {"admissionWebhooks": {"enabled": False}, "tls": {"enabled": False}}}


def up_overrides() -> dict[str, Any]:
    overrides = engine_overrides()
    overrides["monitoring"] = overrides["monitoring"] | {"extraValues": NO_WEBHOOKS}
    return overrides


def object_path(plane: ControlPlane, api_version: str, kind: str, namespace: str | None, name: str) -> str:
    """The REST path of one object, its resource name found through discovery."""
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    plural = next(r["name"] for r in plane.get(base)["resources"] if r["kind"] == kind and "/" not in r["name"])
    scope = f"/namespaces/{namespace}" if namespace else ""
    return f"{base}{scope}/{plural}/{name}"


def declared_objects(engine: EngineProject) -> list[dict[str, Any]]:
    """Outputs of every plain Kubernetes object in the state (the release's objects are checked apart)."""
    return [
        resource["outputs"]
        for resource in engine.stack_resources()
        if resource["type"].startswith("kubernetes:")
        and resource["type"] != "kubernetes:helm.sh/v3:Release"
        and resource.get("custom")
    ]


def is_crd_leftover(plane: ControlPlane, item: tuple[str, str, str, str]) -> bool:
    """A ``monitoring.coreos.com`` CRD, or the local APIService the API server registers for each of its versions
    (it goes with the CRD: no service behind it, removed by the server when the CRD is deleted)."""
    _, kind, _, name = item
    if kind == "CustomResourceDefinition":
        return name.endswith(".monitoring.coreos.com")
    if kind == "APIService" and name.endswith(".monitoring.coreos.com"):
        service = plane.get(f"/apis/apiregistration.k8s.io/v1/apiservices/{name}")["spec"].get("service")
        return service is None
    return False


def test_up_up_destroy_on_a_real_api_server(tmp_path: Path) -> None:
    start = time.monotonic()
    with control_plane(tmp_path / "control-plane") as plane:
        # The version stamps of the build: pulumi-kubernetes refuses a server that reports v0.0.0-master.
        assert plane.get("/version")["gitVersion"] == tool_versions()["KUBERNETES_VERSION"]
        baseline = plane.all_objects()
        engine = EngineProject.create(
            tmp_path / "engine", "existing", up_overrides(), extra_env={"ML_OBS_ENGINE_NO_WAIT": "1"}
        )
        (Path(engine.env["HOME"]) / ".kube" / "config").write_text(yaml.safe_dump(plane.kubeconfig(CONTEXT)))

        engine.run("up", "--yes", "--skip-preview", "--stack", "existing")
        objects = declared_objects(engine)
        assert len(objects) >= 10, f"the state holds only {len(objects)} Kubernetes objects"
        for outputs in objects:
            metadata = outputs["metadata"]
            stored = plane.get(
                object_path(plane, outputs["apiVersion"], outputs["kind"], metadata.get("namespace"), metadata["name"])
            )
            assert stored is not None, f"{outputs['kind']} {metadata['name']} is in the state but not on the server"
            assert stored["metadata"]["uid"] == metadata["uid"]
        release = next(r for r in engine.stack_resources() if r["type"] == "kubernetes:helm.sh/v3:Release")
        assert release["outputs"]["status"]["status"] == "deployed"
        namespace = release["outputs"]["status"]["namespace"]
        made = plane.all_objects() - baseline
        for kind in ("Prometheus", "Alertmanager", "PrometheusRule", "ServiceMonitor", "Deployment", "DaemonSet"):
            assert any(k == kind and ns == namespace for _, k, ns, _ in made), f"the release made no {kind}"
        assert any(k == "Namespace" for _, k, _, _ in made)

        second = engine.run("up", "--yes", "--expect-no-changes", "--stack", "existing")
        assert "unchanged" in second.stdout

        engine.run("destroy", "--yes", "--skip-preview", "--stack", "existing")
        leftovers = plane.all_objects() - baseline
        assert leftovers, "the chart's CRDs are expected to stay: Helm never deletes them"
        unexpected = sorted(item for item in leftovers if not is_crd_leftover(plane, item))
        assert not unexpected, f"destroy left objects behind: {unexpected}"
    print(f"up, up, destroy on a local API server: {time.monotonic() - start:.1f}s ({engine.timings})")
