"""The rendered-chart diff: a values change reports exactly the objects the chart's templates tie to it.

Expectations come from reading kube-prometheus-stack 88.5.3's templates, not from running the tool:
``grafana.replicas`` is read only by grafana's deployment.yaml (``replicas: {{ .Values.replicas }}``);
``prometheus.prometheusSpec.retention`` only by templates/prometheus/prometheus.yaml; ``defaultRules.rules.etcd``
gates only templates/prometheus/rules-1.14/etcd.yaml; grafana's poddisruptionbudget.yaml exists only when
``podDisruptionBudget`` is set; ``grafana.adminPassword`` fills grafana's Secret, whose checksum annotates
grafana's Deployment (``checksum/secret``). Every test runs the real pinned helm on the real chart.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.contracts import PROJECT
from scripts import chart_diff
from scripts.chart_diff import ChartSource, ObjectKey, ReleaseDiff, ReleaseSpec
from tests.tools import ROOT, require_tool, upstream_dir

pytestmark = pytest.mark.tools

RELEASE, NAMESPACE = "kps", "monitoring"
# What the project's monitoring stack always sets: no chart-generated (random) Grafana password.
BASE: dict[str, Any] = {"grafana": {"admin": {"existingSecret": "grafana-admin"}}}


@pytest.fixture(scope="module")
def helm() -> str:
    return str(require_tool("helm"))


@pytest.fixture(scope="module")
def chart() -> Path:
    path = upstream_dir() / "charts" / "kube-prometheus-stack"
    assert (path / "Chart.yaml").is_file(), f"no unpacked chart at {path}"
    return path


def spec(values: dict[str, Any]) -> ReleaseSpec:
    return ReleaseSpec(ChartSource("kube-prometheus-stack", "88.5.3"), RELEASE, NAMESPACE, values, "1.34.0")


def merged(base: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    result = dict(base)
    for key, value in change.items():
        nested = isinstance(value, dict) and isinstance(result.get(key), dict)
        result[key] = merged(result[key], value) if nested else value
    return result


def diff(helm: str, chart: Path, base: dict[str, Any], head: dict[str, Any]) -> ReleaseDiff:
    return chart_diff.diff_release(helm, spec(base), spec(head), chart, chart, "kube-prometheus-stack")


def key(api_version: str, kind: str, name: str, namespace: str = NAMESPACE) -> ObjectKey:
    return (api_version, kind, namespace, name)


GRAFANA_DEPLOYMENT = key("apps/v1", "Deployment", "kps-grafana")
GRAFANA_SECRET = key("v1", "Secret", "kps-grafana")
PROMETHEUS = key("monitoring.coreos.com/v1", "Prometheus", "kps-kube-prometheus-stack-prometheus")
ETCD_RULES = key("monitoring.coreos.com/v1", "PrometheusRule", "kps-kube-prometheus-stack-etcd")
GRAFANA_PDB = key("policy/v1", "PodDisruptionBudget", "kps-grafana")

ONE_KEY_CHANGES = {
    "grafana.replicas": ({"grafana": {"replicas": 2}}, {"changed": {GRAFANA_DEPLOYMENT}}),
    "prometheus retention": (
        {"prometheus": {"prometheusSpec": {"retention": "30d"}}},
        {"changed": {PROMETHEUS}},
    ),
    "etcd rules off": ({"defaultRules": {"rules": {"etcd": False}}}, {"removed": {ETCD_RULES}}),
    "grafana PDB on": ({"grafana": {"podDisruptionBudget": {"minAvailable": 1}}}, {"added": {GRAFANA_PDB}}),
}


@pytest.mark.parametrize("change, expected", ONE_KEY_CHANGES.values(), ids=ONE_KEY_CHANGES.keys())
def test_one_key_changes_exactly_the_objects_that_read_it(
    helm: str, chart: Path, change: dict[str, Any], expected: dict[str, set[ObjectKey]]
):
    result = diff(helm, chart, BASE, merged(BASE, change))
    for kind in ("changed", "added", "removed"):
        assert result.keys(kind) == expected.get(kind, set()), kind


def test_the_reverse_change_swaps_added_and_removed(helm: str, chart: Path):
    with_pdb = merged(BASE, {"grafana": {"podDisruptionBudget": {"minAvailable": 1}}})
    result = diff(helm, chart, with_pdb, BASE)
    assert result.keys("removed") == {GRAFANA_PDB}
    assert result.keys("added") == result.keys("changed") == set()
    assert result.head_count == result.base_count - 1


def test_changed_object_diff_shows_the_field_and_its_two_values(helm: str, chart: Path):
    result = diff(helm, chart, BASE, merged(BASE, {"grafana": {"replicas": 3}}))
    [change] = result.changes
    changed_lines = [line for line in change.diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    assert changed_lines == ["-  replicas: 1", "+  replicas: 3"]


def test_identical_values_give_no_diff(helm: str, chart: Path):
    assert diff(helm, chart, BASE, dict(BASE)).changes == []


def test_fields_random_on_every_render_are_not_reported(helm: str, chart: Path):
    """The chart's defaults generate a random Grafana password: two renders differ, yet nothing was changed."""
    defaults = spec({})
    first, second, third = (chart_diff.index_objects(chart_diff.render(helm, chart, defaults)) for _ in range(3))
    assert first[GRAFANA_SECRET] != second[GRAFANA_SECRET], "the chart no longer randomises: pick another case"
    unstable = {(k, path) for k in first for path in chart_diff.differing_paths(first[k], second[k])}
    assert {k for k, _ in unstable} == {GRAFANA_SECRET, GRAFANA_DEPLOYMENT}
    assert chart_diff.diff_objects(first, third, unstable).changes == []


def test_secret_values_are_redacted_yet_their_change_is_reported(helm: str, chart: Path):
    base = merged(BASE, {"grafana": {"admin": {"existingSecret": ""}, "adminPassword": "base-password-1"}})
    head = merged(base, {"grafana": {"adminPassword": "head-password-2"}})
    result = diff(helm, chart, base, head)
    assert result.keys("changed") == {GRAFANA_SECRET, GRAFANA_DEPLOYMENT}  # the Secret and its checksum
    markdown = chart_diff.to_markdown([result], "diff")
    secret_diff = next(c.diff for c in result.changes if c.key == GRAFANA_SECRET)
    assert "<redacted " in secret_diff
    for leaked in ("base-password-1", "head-password-2", "YmFzZS1wYXNzd29yZC0x", "aGVhZC1wYXNzd29yZC0y"):
        assert leaked not in markdown


def test_markdown_lists_every_change_and_folds_each_diff(helm: str, chart: Path):
    head = merged(BASE, {"grafana": {"replicas": 2, "podDisruptionBudget": {"minAvailable": 1}},
                         "defaultRules": {"rules": {"etcd": False}}})
    markdown = chart_diff.to_markdown([diff(helm, chart, BASE, head)], "Rendered chart diff: local")
    assert markdown.startswith("## Rendered chart diff: local\n")
    assert "**1 changed, 1 added, 1 removed**" in markdown
    assert "| changed | Deployment `monitoring/kps-grafana` (apps/v1) |" in markdown
    assert "| added | PodDisruptionBudget `monitoring/kps-grafana` (policy/v1) |" in markdown
    etcd_rules = "PrometheusRule `monitoring/kps-kube-prometheus-stack-etcd` (monitoring.coreos.com/v1)"
    assert f"| removed | {etcd_rules} |" in markdown
    assert markdown.count("<details>") == 1 and "```diff" in markdown


def test_markdown_stays_within_a_comments_size():
    changes = [
        chart_diff.ObjectChange(("v1", "ConfigMap", "ns", f"dashboard-{i}"), "changed", "-a\n+b\n" * 2000)
        for i in range(10)
    ]
    result = ReleaseDiff("big", 10, 10, changes)
    markdown = chart_diff.to_markdown([result], "diff", limit=30_000)
    assert len(markdown) <= 30_000
    assert markdown.count("| changed |") == 10, "every object is listed even when its diff is left out"
    assert "object diffs left out" in markdown


def test_command_line_writes_markdown_and_fails_on_a_broken_chart(helm: str, chart: Path, tmp_path: Path):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(BASE))
    (tmp_path / "head.yaml").write_text(yaml.safe_dump(merged(BASE, {"grafana": {"replicas": 2}})))
    command = [sys.executable, str(ROOT / "scripts" / "chart_diff.py"), "values", "--chart", str(chart),
               "--base-values", str(tmp_path / "base.yaml"), "--head-values", str(tmp_path / "head.yaml"),
               "--release", RELEASE, "--namespace", NAMESPACE, "--output", str(tmp_path / "diff.md")]
    env = {"HELM": helm, "PATH": "/usr/bin:/bin"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    assert "| changed | Deployment `monitoring/kps-grafana` (apps/v1) |" in (tmp_path / "diff.md").read_text()
    assert "+  replicas: 2" in done.stdout, "the unabridged diff goes to standard output for the job's log"

    broken = [*command[:4], str(tmp_path), *command[5:]]
    failed = subprocess.run(broken, capture_output=True, text=True, env=env, check=False)
    assert failed.returncode == 2
    assert "helm template" in failed.stderr and "failed" in failed.stderr


# -------------------------------------------------------------------------------------------------------------
# values from the program: two checkouts, the real program under mocks in each
# -------------------------------------------------------------------------------------------------------------

MONITORING_RELEASE = "monitoring-release"


def checkout_copy(destination: Path) -> Path:
    """A copy of this checkout's program (what a base branch checkout would hold), without caches."""
    ignore = shutil.ignore_patterns(".git", ".venv", ".state", "__pycache__", "*.egg-info", "model-service",
                                    "benchmarks", ".pytest_cache", ".mypy_cache", ".ruff_cache")
    shutil.copytree(ROOT, destination, ignore=ignore)
    return destination


def test_program_mode_reads_each_checkouts_release_and_diffs_one_stack_setting(
    helm: str, chart: Path, tmp_path: Path
):
    head = checkout_copy(tmp_path / "head")
    stack_file = head / "stacks" / "Pulumi.local.yaml"
    document = yaml.safe_load(stack_file.read_text())
    monitoring = document["config"].setdefault(f"{PROJECT}:monitoring", {})
    monitoring.setdefault("extraValues", {}).setdefault("grafana", {})["replicas"] = 2
    stack_file.write_text(yaml.safe_dump(document))

    locator = chart_diff.ChartLocator(helm, [chart.parent])
    diffs = {d.title.split("`")[1]: d for d in chart_diff.diff_programs(ROOT, head, "local", locator)}

    assert MONITORING_RELEASE in diffs, f"the program declares no {MONITORING_RELEASE}: {sorted(diffs)}"
    release = diffs[MONITORING_RELEASE]
    namespace = chart_diff.program_releases(head, "local")[MONITORING_RELEASE].namespace
    grafana = ("apps/v1", "Deployment", namespace, f"{release_name(head)}-grafana")
    assert release.keys("changed") == {grafana} and not release.keys("added") | release.keys("removed")
    assert "+  replicas: 2" in release.changes[0].diff
    for name, other in diffs.items():
        if name != MONITORING_RELEASE:
            assert other.changes == [] and other.note == "Chart, values and release unchanged.", name


def release_name(root: Path) -> str:
    return chart_diff.program_releases(root, "local")[MONITORING_RELEASE].release


def test_program_mode_reports_a_stack_new_on_the_head_as_all_added(helm: str, chart: Path, tmp_path: Path):
    base = checkout_copy(tmp_path / "base")
    (base / "stacks" / "Pulumi.local.yaml").unlink()
    diffs = chart_diff.diff_programs(base, ROOT, "local", chart_diff.ChartLocator(helm, [chart.parent]),
                                     only=[MONITORING_RELEASE])
    [release] = diffs
    assert release.note == "New release: every object is added."
    assert release.base_count == 0 and len(release.keys("added")) == release.head_count > 50
