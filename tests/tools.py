"""Where the tests find what they need from outside the repository, and what happens when it is missing.

A test that needs a tool (helm, promtool, amtool) or the upstream chart data skips with a reason that says how
to get it, so that a user who cloned only the project can still run the rest. In strict mode
(``ML_OBS_STRICT=1``, set by ``.ci/run``) the same absence fails the test: in CI a skip must never hide a
broken install.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VERSIONS_FILE = ROOT / "scripts" / "tool-versions.env"


def strict() -> bool:
    """True when a missing prerequisite must fail rather than skip."""
    return os.environ.get("ML_OBS_STRICT", "") not in ("", "0", "false")


def unavailable(reason: str) -> None:
    """Skip (or, in strict mode, fail) the calling test with ``reason``."""
    if strict():
        pytest.fail(f"ML_OBS_STRICT is set and a prerequisite is missing: {reason}", pytrace=False)
    pytest.skip(reason)


def tool_versions() -> dict[str, str]:
    """The pins of scripts/tool-versions.env, the one place tool versions are written."""
    versions = {}
    for line in VERSIONS_FILE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            versions[key.strip()] = value.strip()
    return versions


def tools_dir() -> Path:
    return Path(os.environ.get("ML_OBS_TOOLS_DIR", Path.home() / ".cache" / "ml-observability" / "tools"))


_TOOL_PACKAGES = {  # binary -> (install-tools.sh argument, version key)
    "helm": ("helm", "HELM_VERSION"),
    "promtool": ("prometheus", "PROMETHEUS_VERSION"),
    "prometheus": ("prometheus", "PROMETHEUS_VERSION"),
    "amtool": ("alertmanager", "ALERTMANAGER_VERSION"),
    "alertmanager": ("alertmanager", "ALERTMANAGER_VERSION"),
    "thanos": ("thanos", "THANOS_VERSION"),
    "actionlint": ("actionlint", "ACTIONLINT_VERSION"),
    "sloth": ("sloth", "SLOTH_VERSION"),
    # Built by scripts/install-engine.sh (the real Pulumi engine and a control plane for tests/engine).
    "pulumi": ("pulumi", "PULUMI_VERSION"),
    "pulumi-resource-kubernetes": ("pulumi-resource-kubernetes", "PULUMI_KUBERNETES_PROVIDER_VERSION"),
    "etcd": ("etcd", "ETCD_VERSION"),
    "kube-apiserver": ("kube", "KUBERNETES_VERSION"),
    "kube-controller-manager": ("kube", "KUBERNETES_VERSION"),
    # Built by scripts/install-node.sh (the local node of tests/node).
    "kubelet": ("kube-node", "KUBERNETES_VERSION"),
    "kube-proxy": ("kube-node", "KUBERNETES_VERSION"),
    "kube-scheduler": ("kube-node", "KUBERNETES_VERSION"),
    "kubectl": ("kube-node", "KUBERNETES_VERSION"),
}
_INSTALLERS = {"pulumi": "install-engine.sh", "pulumi-resource-kubernetes": "install-engine.sh",
               "etcd": "install-engine.sh", "kube": "install-engine.sh", "kube-node": "install-node.sh"}
"""The script that builds each package; the others come from scripts/install-tools.sh."""


def require_tool(binary: str) -> Path:
    """Path of ``binary`` at the pinned version, built by scripts/install-tools.sh; skip or fail without it.

    Only the pinned build counts: a ``promtool`` on PATH from Debian (Prometheus 2.42) evaluates ranges
    differently from the 3.x the chart deploys, so a test passing against it would prove nothing.
    """
    package, version_key = _TOOL_PACKAGES[binary]
    version = tool_versions()[version_key]
    candidate = tools_dir() / f"{package}-{version}" / "bin" / binary
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return candidate
    unavailable(
        f"{binary} {version} not found at {candidate}; build it with: bash scripts/"
        f"{_INSTALLERS.get(package, 'install-tools.sh')} {package}"
        " (needs Go; set ML_OBS_TOOLS_DIR to use another cache folder)"
    )
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class NodeImage:
    """A container image scripts/install-node.sh built: its name there, the reference it is tagged with, its
    archive (what containerd imports)."""

    name: str
    ref: str
    archive: Path


_NODE_IMAGES = {  # image -> the version key of its folder, as scripts/install-node.sh names them
    "prometheus-operator": "PROMETHEUS_OPERATOR_VERSION",
    "prometheus-config-reloader": "PROMETHEUS_OPERATOR_VERSION",
    "prometheus": "PROMETHEUS_VERSION",
    "alertmanager": "ALERTMANAGER_VERSION",
    "kube-state-metrics": "KUBE_STATE_METRICS_VERSION",
    "node-exporter": "NODE_EXPORTER_VERSION",
    "pause": "PAUSE_VERSION",
}


def built_image(name: str, key: str, hint: str) -> NodeImage:
    folder = tools_dir() / "images" / f"{name}-{key}"
    if not (folder / ".complete").exists():
        unavailable(f"image {name} {key} not found in {folder}; build it with: {hint}")
    return NodeImage(name=name, ref=(folder / "ref").read_text().strip(), archive=folder / "image.tar")


def node_images() -> tuple[NodeImage, ...]:
    """Every image the local node imports before it starts: the chart's and the pause container."""
    versions = tool_versions()
    return tuple(built_image(name, versions[key], "bash scripts/install-node.sh images (as root)")
                 for name, key in _NODE_IMAGES.items())


def upstream_dir() -> Path:
    """Upstream chart data (chart, default values, CRDs): ``$ML_OBS_UPSTREAM_DIR``, else ``../shared/upstream``."""
    path = Path(os.environ.get("ML_OBS_UPSTREAM_DIR", ROOT.parent / "shared" / "upstream"))
    if not path.is_dir():
        unavailable(
            f"upstream chart data not found at {path}; lay out kube-prometheus-stack there "
            "(helm pull prometheus-community/kube-prometheus-stack --version 88.5.3 --untar -d <dir>/charts) "
            "or set ML_OBS_UPSTREAM_DIR"
        )
    return path


def which_or_unavailable(binary: str, hint: str) -> str:
    """A binary installed by pip or apt (not pinned by this project's tool cache)."""
    found = shutil.which(binary)
    if found is None:
        unavailable(f"{binary} not found on PATH; {hint}")
        raise AssertionError("unreachable")
    return found
