"""The real kube-prometheus-stack chart, rendered with the values a run of the program gave its Release.

The values are the ones recorded from the Release's inputs while the program ran under mocks (what the Helm
provider would receive), never a second call of the values builder: a bug in how the component passes values
(a lost key, a secret that hides them, a number turned into a string) shows here. The chart is the pinned copy
in the upstream data, rendered by the pinned ``helm`` for the stack's Kubernetes version. Renders are cached per
program run, so a test module pays for one ``helm template`` per stack.
"""

from __future__ import annotations

import copy
import json
import secrets
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from components.contracts import PROJECT
from tests.harness import SECRET, STACKS_DIR, ProgramRun, Registration, load_stack_file, run_with_config
from tests.k8s_validation import load_documents
from tests.tools import require_tool, upstream_dir

RELEASE_TYPE = "kubernetes:helm.sh/v3:Release"
MONITORING_STACK_TYPE = "mlobs:monitoring:MonitoringStack"
CHART_NAME = "kube-prometheus-stack"


def chart_dir() -> Path:
    """The unpacked chart copy, subcharts included (skips, or fails in strict mode, when absent)."""
    return upstream_dir() / "charts" / CHART_NAME


def monitoring_release(run: ProgramRun) -> Registration:
    """The kube-prometheus-stack Release of a run: the one Release child of the ``MonitoringStack`` component."""
    stacks = run.by_type(MONITORING_STACK_TYPE)
    assert len(stacks) == 1, f"expected one {MONITORING_STACK_TYPE}, found {[s.name for s in stacks]}"
    releases = [r for r in run.children_of(stacks[0].urn) if r.typ == RELEASE_TYPE]
    assert len(releases) == 1, f"expected one Release in {stacks[0].name}, found {[r.name for r in releases]}"
    return releases[0]


def release_values(release: Registration) -> dict[str, Any]:
    """A copy of the Release's ``values`` as recorded; fails if any part is secret (Pulumi would then hide them
    all). A copy, since program runs are shared between tests."""
    values = release.inputs.get("values", {})
    secret_paths = list(_secret_paths(values, "values"))
    assert not secret_paths, f"secret values in the Release hide its whole values from the preview: {secret_paths}"
    return copy.deepcopy(dict(values))


def _secret_paths(value: Any, path: str) -> Iterator[str]:
    if isinstance(value, dict):
        if set(value) == {SECRET}:
            yield path
            return
        for key, item in value.items():
            yield from _secret_paths(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _secret_paths(item, f"{path}[{index}]")


_OVERRIDE_RUNS: dict[str, ProgramRun] = {}


def program_run_with(
    stack: str, overrides: Mapping[str, Any], *, secret_sections: tuple[str, ...] = ()
) -> ProgramRun:
    """The program under mocks with ``stack``'s file and some top-level sections replaced (cached per arguments).

    ``secret_sections`` are passed as encrypted, as ``pulumi config set --secret --path`` leaves them.
    """
    key = json.dumps([stack, overrides, secret_sections], sort_keys=True)
    if key not in _OVERRIDE_RUNS:
        config, secret_keys = load_stack_file(STACKS_DIR / f"Pulumi.{stack}.yaml")
        for section, value in overrides.items():
            config[f"{PROJECT}:{section}"] = json.dumps(value)
        secret_keys += [f"{PROJECT}:{section}" for section in secret_sections]
        _OVERRIDE_RUNS[key] = run_with_config(stack, config, secret_keys)
    return _OVERRIDE_RUNS[key]


TEST_CREDENTIALS = {
    "pagerduty": secrets.token_hex(16),
    "slack": f"https://hooks.slack.example/services/{secrets.token_hex(8)}",
    "webhook": f"https://tickets.example.com/alertmanager?token={secrets.token_hex(8)}",
}
"""Receiver credentials generated for this test session: nothing of the kind is written in the repository."""

EVERY_OPTION = {
    "monitoring": {
        "storage": {"storageClass": "premium-rwo"},
        "grafana": {
            "adminUser": "platform-admin",
            "ingress": {
                "enabled": True,
                "host": "grafana.example.com",
                "className": "nginx",
                "tlsSecretName": "grafana-tls",
                "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"},
            },
        },
        "nodeExporter": {"hostRootFsMount": False},
        "prometheus": {"replicas": 2, "retention": "30d", "retentionSize": "40GiB", "storageSize": "50Gi"},
        "alertmanager": {"replicas": 3},
    },
    "alerting": {
        "pagerduty": {"routingKey": TEST_CREDENTIALS["pagerduty"]},
        "slack": {"webhookUrl": TEST_CREDENTIALS["slack"], "channel": "#ml-alerts"},
        "webhook": {"url": TEST_CREDENTIALS["webhook"]},
        "runbookBaseUrl": "https://git.example.com/platform/ml-observability/-/blob/main/runbooks",
    },
}
"""A configuration that turns on every optional branch of the values: Ingress, all receivers, a class override."""


def every_option_run(stack: str) -> ProgramRun:
    """``stack`` with ``EVERY_OPTION`` (the ``alerting`` section encrypted, as its credentials require)."""
    return program_run_with(stack, EVERY_OPTION, secret_sections=("alerting",))


def kubernetes_version(run: ProgramRun) -> str:
    """The Kubernetes version the run's cluster reports (the ``kubernetesVersion`` stack output)."""
    version = run.outputs.get("kubernetesVersion")
    assert isinstance(version, str), f"the program exported no kubernetesVersion (got {version!r})"
    return version


def helm_template(
    chart: Path,
    *,
    release_name: str,
    namespace: str,
    values: Mapping[str, Any],
    kube_version: str,
) -> list[dict[str, Any]]:
    """``helm template`` with the pinned helm; the rendered objects, hooks included, in order."""
    helm = require_tool("helm")
    with tempfile.NamedTemporaryFile("w", suffix=".json") as values_file:
        json.dump(values, values_file)
        values_file.flush()
        result = subprocess.run(
            [
                str(helm), "template", release_name, str(chart),
                "--namespace", namespace,
                "--kube-version", kube_version,
                "--values", values_file.name,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    assert result.returncode == 0, f"helm template failed:\n{result.stderr}"
    return load_documents(result.stdout)


@dataclass(frozen=True)
class RenderedChart:
    """What the chart produced for one program run."""

    stack: str
    release_name: str
    namespace: str
    kubernetes_version: str
    values: dict[str, Any]
    objects: list[dict[str, Any]]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o.get("kind") == kind]

    def one(self, kind: str, name: str | None = None) -> dict[str, Any]:
        """The single object of ``kind`` (named ``name`` if given)."""
        found = [o for o in self.of_kind(kind) if name is None or o["metadata"]["name"] == name]
        assert len(found) == 1, (
            f"expected one {kind}{f' named {name}' if name else ''}, found {[o['metadata']['name'] for o in found]}"
        )
        return found[0]

    def names(self, kind: str) -> list[str]:
        return [o["metadata"]["name"] for o in self.of_kind(kind)]


_RENDERS: dict[int, tuple[ProgramRun, RenderedChart]] = {}


def render_release(run: ProgramRun) -> RenderedChart:
    """The chart copy rendered with ``run``'s Release inputs, for the stack's Kubernetes version (cached per run).

    The Release must ask for the chart and version of the copy; otherwise the render would not show what the
    stack installs, and the test fails saying so.
    """
    cached = _RENDERS.get(id(run))
    if cached is not None and cached[0] is run:
        return cached[1]
    release = monitoring_release(run)
    inputs = release.inputs
    chart = chart_dir()
    upstream = yaml.safe_load((chart / "Chart.yaml").read_text())
    chart_ref = str(inputs["chart"])
    if (Path(chart_ref) / "Chart.yaml").is_file():  # a local chart folder: it states its own name and version
        requested = yaml.safe_load((Path(chart_ref) / "Chart.yaml").read_text())
        name, pinned = requested["name"], requested["version"]
    else:  # a repository chart name or an OCI reference, with the version as an input
        name, pinned = chart_ref.rstrip("/").rsplit("/", 1)[-1], inputs.get("version")
    assert name == CHART_NAME, f"the Release installs {chart_ref!r}, not {CHART_NAME}"
    assert pinned == upstream["version"], (
        f"the Release pins {CHART_NAME} {pinned} but the upstream copy is {upstream['version']}: refresh the upstream "
        "data for the new version"
    )
    version = kubernetes_version(run)
    rendered = RenderedChart(
        stack=run.stack,
        release_name=str(inputs["name"]),
        namespace=str(inputs["namespace"]),
        kubernetes_version=version,
        values=release_values(release),
        objects=helm_template(
            chart,
            release_name=str(inputs["name"]),
            namespace=str(inputs["namespace"]),
            values=release_values(release),
            kube_version=version,
        ),
    )
    _RENDERS[id(run)] = (run, rendered)
    return rendered
