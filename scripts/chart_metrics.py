#!/usr/bin/env python3
"""List the metric names kube-prometheus-stack's scrapes and rules produce, from the rendered chart.

The model's rules and dashboard may only use series the sample service exports or that the monitoring
stack produces (kube-state-metrics, the kubelet's cAdvisor, node-exporter, Prometheus' ``up``, and the
chart's recording rules). This script renders the pinned chart copy with its default values (``helm
template``, the pinned helm) and collects:

* every metric name the PromQL expressions of its PrometheusRules and Grafana dashboards select, and every
  name its rules record: what the chart itself relies on;
* every metric of the kube-state-metrics collectors the rendered Deployment enables (``--resources``), read
  from the source of the kube-state-metrics version the chart deploys (its Go module, through ``go mod
  download``): the chart's rules do not use all of them (``kube_pod_container_status_restarts_total`` for
  one), yet its scrape exports them.

It writes them, one per line, to ``scripts/kube-prometheus-stack-metrics.txt``.

Usage: python scripts/chart_metrics.py [--check]   (``--check``: fail if the committed list is stale)
Needs: helm from scripts/install-tools.sh, Go (for ``go mod download``), the chart copy under
``$ML_OBS_UPSTREAM_DIR`` (default ``../shared/upstream``), and promql-parser (the dev dependencies).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import yaml

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "scripts" / "kube-prometheus-stack-metrics.txt"
KUBERNETES_VERSION = "1.34.0"
RELEASE = "monitoring"
NAMESPACE = "monitoring"

_RANGE_VARIABLES = re.compile(r"\$(__rate_interval|__interval|__range|interval|resolution)\b|\$\{__rate_interval\}")
_VARIABLES = re.compile(r"\$\{[^}]+\}|\$[A-Za-z_][A-Za-z0-9_]*")


def _versions() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "scripts" / "tool-versions.env").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            pins[key.strip()] = value.strip()
    return pins


def helm() -> Path:
    tools = Path(os.environ.get("ML_OBS_TOOLS_DIR", Path.home() / ".cache" / "ml-observability" / "tools"))
    path = tools / f"helm-{_versions()['HELM_VERSION']}" / "bin" / "helm"
    if not path.is_file():
        sys.exit(f"helm not found at {path}: run bash scripts/install-tools.sh helm")
    return path


def chart_dir() -> Path:
    upstream = Path(os.environ.get("ML_OBS_UPSTREAM_DIR", ROOT.parent / "shared" / "upstream"))
    chart = upstream / "charts" / "kube-prometheus-stack"
    if not (chart / "Chart.yaml").is_file():
        sys.exit(f"the kube-prometheus-stack chart copy is not at {chart}: set ML_OBS_UPSTREAM_DIR")
    return chart


def render(chart: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        [str(helm()), "template", RELEASE, str(chart), "--namespace", NAMESPACE, "--kube-version", KUBERNETES_VERSION],
        capture_output=True, text=True, check=True,
    )
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def _dashboard_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _dashboard_panels(panel.get("panels", []))


def dashboard_expressions(dashboard: dict[str, Any]) -> Iterator[str]:
    """Panel targets and query variables; ``label_values(expr, label)`` contributes its ``expr``."""
    for panel in _dashboard_panels(dashboard.get("panels", []) + [
        p for row in dashboard.get("rows", []) for p in row.get("panels", [])
    ]):
        for target in panel.get("targets", []):
            if target.get("expr"):
                yield target["expr"]
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if variable.get("type") != "query" or not isinstance(query, str):
            continue
        match = re.fullmatch(r"\s*(?:label_values|query_result)\((.*?)(?:,\s*[A-Za-z_]+)?\)\s*", query, re.DOTALL)
        if match and match.group(1).strip():
            yield match.group(1)


def substitute_variables(expression: str) -> str:
    """Grafana variables made plain PromQL: ranges become 5m, other variables a label value."""
    return _VARIABLES.sub("x", _RANGE_VARIABLES.sub("5m", expression))


def metric_names(expression: str) -> set[str]:
    """Names of the series an expression selects: each vector selector's name or ``__name__`` matcher."""
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                names.add(node.name)
            for matcher in node.matchers.matchers:
                if matcher.name == "__name__" and str(matcher.op) == "MatchOp.Equal":
                    names.add(matcher.value)
        for attribute in ("expr", "lhs", "rhs", "vector_selector", "param"):
            child = getattr(node, attribute, None)
            if child is not None and not isinstance(child, (str, int, float)):
                visit(child)
        for argument in getattr(node, "args", None) or []:
            visit(argument)

    visit(promql_parser.parse(expression))
    return names


def chart_metrics(objects: list[dict[str, Any]]) -> tuple[set[str], list[str]]:
    """Every metric name the rendered chart's rules and dashboards use or record, and what failed to parse."""
    names: set[str] = set()
    unparsed: list[str] = []
    expressions: list[str] = []
    for obj in objects:
        if obj.get("kind") == "PrometheusRule":
            for group in obj["spec"].get("groups", []):
                for rule in group.get("rules", []):
                    expressions.append(rule["expr"])
                    if "record" in rule:
                        names.add(rule["record"])
        elif obj.get("kind") == "ConfigMap":
            for key, value in (obj.get("data") or {}).items():
                if key.endswith(".json"):
                    expressions += dashboard_expressions(json.loads(value))
    for expression in expressions:
        try:
            names |= metric_names(substitute_variables(expression))
        except (ValueError, RuntimeError):
            unparsed.append(expression)
    return names, unparsed


def kube_state_metrics_source(version: str) -> Path:
    """The kube-state-metrics module at ``version``, downloaded into the tools' Go module cache."""
    tools = Path(os.environ.get("ML_OBS_TOOLS_DIR", Path.home() / ".cache" / "ml-observability" / "tools"))
    environment = {**os.environ, "GOMODCACHE": str(tools / "go" / "mod"), "GOFLAGS": "-mod=mod"}
    result = subprocess.run(
        ["go", "mod", "download", "-json", f"k8s.io/kube-state-metrics/v2@v{version.lstrip('v')}"],
        capture_output=True, text=True, check=True, env=environment, cwd=tools,
    )
    return Path(json.loads(result.stdout)["Dir"])


def kube_state_metrics(objects: list[dict[str, Any]], chart: Path) -> set[str]:
    """The metric names of the collectors the rendered kube-state-metrics Deployment enables."""
    subchart = yaml.safe_load((chart / "charts" / "kube-state-metrics" / "Chart.yaml").read_text())
    stores = kube_state_metrics_source(subchart["appVersion"]) / "internal" / "store"
    resources: list[str] = []
    for obj in objects:
        if obj.get("kind") != "Deployment":
            continue
        for container in obj["spec"]["template"]["spec"]["containers"]:
            for argument in container.get("args", []):
                if argument.startswith("--resources="):
                    resources += argument.removeprefix("--resources=").split(",")
    if not resources:
        sys.exit("the rendered chart has no kube-state-metrics Deployment with --resources")
    names: set[str] = set()
    for resource in resources:
        candidates = [resource[:-3] + "y", resource[:-2], resource[:-1]]  # policies, classes, pods
        source = next((stores / f"{c}.go" for c in candidates if (stores / f"{c}.go").is_file()), None)
        if source is None:
            sys.exit(f"no kube-state-metrics store for the collector {resource!r} in {stores}")
        names |= set(re.findall(r'"(kube_[a-z0-9_]+)"', source.read_text()))
    return names


def document(names: set[str], chart_version: str) -> str:
    header = (
        f"# Metric names kube-prometheus-stack {chart_version}'s rules and dashboards read or record, and its\n"
        f"# kube-state-metrics exports (default values, Kubernetes {KUBERNETES_VERSION}).\n"
        "# Generated by scripts/chart_metrics.py; do not edit.\n"
    )
    return header + "".join(f"{name}\n" for name in sorted(names))


def generate() -> str:
    chart = chart_dir()
    version = yaml.safe_load((chart / "Chart.yaml").read_text())["version"]
    objects = render(chart)
    names, unparsed = chart_metrics(objects)
    if unparsed:
        sys.exit(f"{len(unparsed)} expressions of the chart did not parse, e.g. {unparsed[0]!r}")
    return document(names | kube_state_metrics(objects, chart), version)


def read_list(path: Path = OUTPUT) -> set[str]:
    """The committed list, for tests."""
    return {line for line in path.read_text().splitlines() if line and not line.startswith("#")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed list differs")
    args = parser.parse_args()
    text = generate()
    if args.check:
        if OUTPUT.read_text() != text:
            print(f"{OUTPUT} is stale: run python scripts/chart_metrics.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    print(f"{OUTPUT}: {len(read_list())} metric names")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
