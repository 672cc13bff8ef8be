"""Every key path the stack sets in kube-prometheus-stack's values exists in the pinned chart.

Helm ignores a misspelt key without a word (``retentionSzie: 30d`` renders fine and retains nothing), so each key
path of the values recorded from the Release, for every stack and for a configuration with every option on,
must exist in the upstream defaults of the pinned version: keys under ``grafana``, ``kube-state-metrics`` and
``prometheus-node-exporter`` in the chart's values or in that subchart's. Below a map the defaults declare
empty (``resources: {}``, ``annotations: {}``, selectors, ``storageSpec: {}``) anything goes: those are passed
through to objects whose schemas the chart-render tests check. Keys that templates read but the defaults do not
declare are listed in ``TEMPLATE_READ``, each with the template line that reads it, which the test checks.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml

from tests.chart_render import CHART_NAME, every_option_run, monitoring_release, release_values
from tests.conftest import program_run
from tests.harness import ProgramRun, stack_files, stack_name
from tests.tools import upstream_dir

SUBCHARTS = ("grafana", "kube-state-metrics", "prometheus-node-exporter")


class TemplateRead(NamedTuple):
    """A key the defaults do not declare, and where the chart reads it."""

    template: str
    """Template file, relative to the chart folder."""
    line: int
    """1-based line that reads the key."""
    reads: str
    """Text of that line that proves it (the ``.Values`` expression)."""
    why: str


TEMPLATE_READ: dict[str, TemplateRead] = {
    "grafana.fullnameOverride": TemplateRead(
        "charts/grafana/templates/_helpers.tpl", 15, ".Values.fullnameOverride",
        "names Grafana's objects after the release, so that the exported port-forward command names its Service",
    ),
    "grafana.service.nodePort": TemplateRead(
        "charts/grafana/templates/service.yaml", 66, "nodePort: {{ .Values.service.nodePort }}",
        "the NodePort kind's cluster config maps to localhost",
    ),
    "grafana.ingress.ingressClassName": TemplateRead(
        "charts/grafana/templates/ingress.yaml", 25, "ingressClassName: {{ .Values.ingress.ingressClassName }}",
        "the IngressClass of the optional Ingress (commented out in the defaults)",
    ),
}
FREE_FORM: dict[str, TemplateRead] = {
    "alertmanager.config": TemplateRead(
        "templates/alertmanager/secret.yaml", 24, "toYaml .Values.alertmanager.config",
        "Alertmanager's own configuration, written out whole; amtool checks it (test_alertmanager_config.py)",
    ),
    "grafana.grafana.ini": TemplateRead(
        "charts/grafana/templates/_config.tpl", 12, 'index .Values "grafana.ini"',
        "Grafana's ini file, section by section",
    ),
}
"""Maps written out whole: every key below them is the receiving program's, not the chart's."""


def chart_folder() -> Path:
    return upstream_dir() / "charts" / CHART_NAME


def defaults(version: str) -> dict[str, Mapping[str, Any]]:
    """The upstream default values of ``version``: ``{"": chart, "<subchart>": subchart}``."""
    folder = upstream_dir() / f"{CHART_NAME}-{version}"
    if not folder.is_dir():
        pytest.fail(f"no upstream values for {CHART_NAME} {version} in {folder.parent}: refresh the upstream data")
    found = {"": yaml.safe_load((folder / "values.yaml").read_text())}
    for subchart in SUBCHARTS:
        (path,) = sorted((folder / "subcharts").glob(f"{subchart}-*-values.yaml"))
        found[subchart] = yaml.safe_load(path.read_text())
    return found


def key_paths(values: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every key path down to the leaves; a list is a leaf (Helm replaces lists whole)."""
    for key, value in values.items():
        path = (*prefix, str(key))
        yield path
        if isinstance(value, Mapping) and value:
            yield from key_paths(value, path)


def _lookup(tree: Mapping[str, Any], path: tuple[str, ...]) -> str:
    """``"exists"``, ``"free"`` (below a map declared empty) or ``"missing"``."""
    node: Any = tree
    for key in path:
        if isinstance(node, Mapping) and not node and node is not tree:
            return "free"
        if not isinstance(node, Mapping) or key not in node:
            return "missing"
        node = node[key]
    return "exists"


def undeclared_keys(values: Mapping[str, Any], upstream: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The key paths of ``values`` that neither the defaults nor the lists above account for."""
    problems = []
    for path in key_paths(values):
        dotted = ".".join(path)
        if any(dotted == p or dotted.startswith(f"{p}.") for p in FREE_FORM) or dotted in TEMPLATE_READ:
            continue
        found = _lookup(upstream[""], path)
        if found == "missing" and path[0] in SUBCHARTS and len(path) > 1:
            found = _lookup(upstream[path[0]], path[1:])
        if found == "missing":
            problems.append(dotted)
    return problems


def mistyped_keys(values: Mapping[str, Any], upstream: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Key paths set to a map where the chart's default is a scalar or a list, or the other way round."""
    problems = []
    for path in key_paths(values):
        mine: Any = values
        for key in path:
            mine = mine[key]
        for tree, subpath in ((upstream[""], path), (upstream.get(path[0], {}), path[1:])):
            default: Any = tree
            for key in subpath:
                default = default.get(key) if isinstance(default, Mapping) else None
            if default is None or not subpath:
                continue
            if isinstance(default, Mapping) != isinstance(mine, Mapping) or (
                isinstance(default, list) != isinstance(mine, list)
            ):
                problems.append(f"{'.'.join(path)}: {type(mine).__name__} where the chart has {type(default).__name__}")
    return problems


def recorded_values(run: ProgramRun) -> tuple[str, dict[str, Any]]:
    release = monitoring_release(run)
    return str(release.inputs["version"]), release_values(release)


RUNS = {f"stack-{stack_name(f)}": (lambda f=f: program_run(f)) for f in stack_files()} | {
    "every-option-aks": lambda: every_option_run("aks"),
    "every-option-local": lambda: every_option_run("local"),
}


@pytest.mark.parametrize("case", sorted(RUNS))
def test_every_key_path_exists_upstream(case: str):
    version, values = recorded_values(RUNS[case]())
    upstream = defaults(version)
    assert undeclared_keys(values, upstream) == [], (
        "keys Helm would ignore: fix the name, or add the key to TEMPLATE_READ with the template line reading it"
    )
    assert mistyped_keys(values, upstream) == []


def test_the_check_catches_a_misspelt_key():
    version, values = recorded_values(program_run(stack_files()[0]))
    values["prometheus"]["prometheusSpec"]["retentionSzie"] = "30d"
    values["grafana"]["sidecar"]["dashboards"]["lable"] = "grafana_dashboard"
    values["grafana"]["resources"]["requests"]["cpu"] = "1"  # below a free-form map: accepted
    assert undeclared_keys(values, defaults(version)) == [
        "prometheus.prometheusSpec.retentionSzie",
        "grafana.sidecar.dashboards.lable",
    ]


def test_the_check_catches_a_map_for_a_scalar():
    version, values = recorded_values(program_run(stack_files()[0]))
    values["prometheus"]["prometheusSpec"]["retention"] = {"time": "10d"}
    assert mistyped_keys(values, defaults(version)) == [
        "prometheus.prometheusSpec.retention: dict where the chart has str"
    ]


@pytest.mark.parametrize("key", sorted(TEMPLATE_READ | FREE_FORM))
def test_listed_keys_are_read_by_the_template_named(key: str):
    entry = (TEMPLATE_READ | FREE_FORM)[key]
    lines = (chart_folder() / entry.template).read_text().splitlines()
    assert entry.reads in lines[entry.line - 1], (
        f"{entry.template}:{entry.line} no longer reads {key} ({entry.reads!r}); find where the chart reads it now"
    )


@pytest.mark.parametrize("key", sorted(TEMPLATE_READ))
def test_listed_keys_are_not_declared_upstream(key: str):
    """An entry for a key the defaults declare hides nothing but is stale: the defaults check covers it."""
    version = str(monitoring_release(program_run(stack_files()[0])).inputs["version"])
    upstream = defaults(version)
    path = tuple(key.split("."))
    declared = _lookup(upstream[""], path) == "exists" or (
        path[0] in SUBCHARTS and _lookup(upstream[path[0]], path[1:]) == "exists"
    )
    assert not declared, f"{key} is declared upstream now: remove it from TEMPLATE_READ"
