"""The dashboard's infrastructure row, on fixture series, with promtool.

Its queries read kube-state-metrics and the kubelet's cAdvisor, which only a cluster has, so the end-to-end
suite cannot give them data. Here every query of the row, taken from the dashboard the program declares, runs
on series shaped like theirs (and on what the model's resource rules record from them) and must select the
model's pods only: not another model's in the same namespace, not the pod-level cgroup series, not another
resource's limit, and still a pod that crash-looped out of the scrape targets within the hour.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from components.monitors.config import ModelMonitorsConfig
from components.monitors.model_rules import MEMORY_NEAR_LIMIT
from components.monitors.rule_model import format_duration, selector
from tests.conftest import program_run
from tests.e2e.dashboard import OVERVIEW_CONFIG_MAP, expand, queries_by_row
from tests.monitor_rules import groups_for
from tests.rule_testing import run_rule_tests, series_values

pytestmark = pytest.mark.tools

STACK_FILE = Path(__file__).resolve().parents[2] / "stacks" / "Pulumi.local.yaml"
NAMESPACE = "models"
MODEL = "synthetic-classifier"
OTHER_MODEL = "other-model"
STEP_MS = 60_000
EVAL_MINUTES = 120
"""Minutes of fixture series; every query is evaluated at the end."""
SCRAPE_INTERVAL = "30s"
"""The Grafana data source's scrape interval (the chart's default)."""

SERVING = ("p1", "p2")
"""Pods that serve the model now."""
CRASHED = "p3"
"""A pod of the model that crash-looped and left the scrape targets ten minutes before the end."""
OTHERS = "q1"
"""A pod of another model in the same namespace."""
RESTARTS_CRASHED = [0.0] * 60 + [1.0] * 20 + [2.0] * 20 + [3.0] * 11
"""The crashed pod's restart counter, one sample a minute until it left."""


def _series(name: str, values: list[float | None] | str, **labels: str) -> dict[str, str]:
    return {"series": selector(name, **labels),
            "values": values if isinstance(values, str) else series_values(values)}


def fixture_series() -> list[dict[str, str]]:
    always = f"x{EVAL_MINUTES}"
    ksm = {"namespace": NAMESPACE, "job": "kube-state-metrics"}
    cadvisor = {"namespace": NAMESPACE, "job": "kubelet", "metrics_path": "/metrics/cadvisor"}
    series = []
    for pod in (*SERVING, CRASHED, OTHERS):
        model = OTHER_MODEL if pod == OTHERS else MODEL
        series += [
            _series("model_info", "1x110" if pod == CRASHED else f"1{always}", namespace=NAMESPACE, job=model,
                    pod=pod, model_name=model, model_version="1.0.0"),
            _series("namespace_workload_pod:kube_pod_owner:relabel", f"1{always}", namespace=NAMESPACE, pod=pod,
                    workload=model, workload_type="deployment"),
        ]
    # Each model's memory alert threshold, which its rules record: the panel draws the selected model's.
    series += [
        _series(MEMORY_NEAR_LIMIT, f"0.9{always}", namespace=NAMESPACE, job=MODEL, model_name=MODEL,
                model_version="1.0.0"),
        _series(MEMORY_NEAR_LIMIT, f"0.5{always}", namespace=NAMESPACE, job=OTHER_MODEL, model_name=OTHER_MODEL,
                model_version="1.0.0"),
    ]
    mib = 2**20
    series += [
        # CPU: a quarter of a core for p1, a tenth for p2; the pod-level cgroup and the other model do not count.
        _series("container_cpu_usage_seconds_total", f"0+15{always}", **cadvisor, pod="p1", container="model"),
        _series("container_cpu_usage_seconds_total", f"0+6{always}", **cadvisor, pod="p2", container="model"),
        _series("container_cpu_usage_seconds_total", f"0+100{always}", **cadvisor, pod="p1", container=""),
        _series("container_cpu_usage_seconds_total", f"0+30{always}", **cadvisor, pod=OTHERS, container="app"),
        # Memory: 400 MiB and 256 MiB of 512 MiB limits.
        _series("container_memory_working_set_bytes", f"{400 * mib}{always}", **cadvisor, pod="p1", container="model"),
        _series("container_memory_working_set_bytes", f"{256 * mib}{always}", **cadvisor, pod="p2", container="model"),
        _series("container_memory_working_set_bytes", f"{500 * mib}{always}", **cadvisor, pod=OTHERS, container="app"),
        *(_series("kube_pod_container_resource_limits", f"{512 * mib}{always}", **ksm, pod=pod, resource="memory",
                  unit="byte", container="app" if pod == OTHERS else "model") for pod in ("p1", "p2", OTHERS)),
        _series("kube_pod_container_resource_limits", f"2{always}", **ksm, pod="p1", container="model",
                resource="cpu", unit="core"),
        # Restarts: the crashed pod restarted three times; the others' counters stay flat, the other model's not.
        _series("kube_pod_container_status_restarts_total", RESTARTS_CRASHED, **ksm, pod=CRASHED, container="model"),
        *(_series("kube_pod_container_status_restarts_total", f"0{always}", **ksm, pod=pod, container="model")
          for pod in SERVING),
        _series("kube_pod_container_status_restarts_total", f"0+1{always}", **ksm, pod=OTHERS, container="app"),
        # Who owns the pods, which the restart count the rules record is joined with.
        *(_series("kube_pod_owner", f"1{always}", **ksm, pod=pod, owner_kind="ReplicaSet",
                  owner_name=f"{OTHER_MODEL if pod == OTHERS else MODEL}-rs") for pod in (*SERVING, CRASHED, OTHERS)),
        *(_series("kube_replicaset_owner", f"1{always}", **ksm, replicaset=f"{model}-rs", owner_kind="Deployment",
                  owner_name=model) for model in (MODEL, OTHER_MODEL)),
        # Deployments: the model wants three replicas and has two available.
        _series("kube_deployment_spec_replicas", f"3{always}", **ksm, deployment=MODEL),
        _series("kube_deployment_status_replicas_available", f"2{always}", **ksm, deployment=MODEL),
        _series("kube_deployment_spec_replicas", f"5{always}", **ksm, deployment=OTHER_MODEL),
        _series("kube_deployment_status_replicas_available", f"5{always}", **ksm, deployment=OTHER_MODEL),
    ]
    return series


def expected_samples() -> dict[str, list[list[tuple[dict[str, str], float]]]]:
    """What each query of each panel must return, computed without Prometheus."""
    in_last_hour = RESTARTS_CRASHED[EVAL_MINUTES - 59:EVAL_MINUTES + 1]  # samples in (t - 1h, t]
    crashed = max(in_last_hour) - min(in_last_hour)
    assert crashed == 2
    return {
        "CPU": [[({"pod": "p1"}, 0.25), ({"pod": "p2"}, 0.1)]],
        "Memory against the limit": [[({"pod": "p1", "container": "model"}, 400 / 512),
                                      ({"pod": "p2", "container": "model"}, 256 / 512)],
                                     [({}, 0.9)]],
        "Restarts (last hour)": [[({"pod": "p1", "container": "model"}, 0.0),
                                  ({"pod": "p2", "container": "model"}, 0.0),
                                  ({"pod": CRASHED, "container": "model"}, crashed)]],
        "Replicas": [[({"model_version": "1.0.0"}, 2.0)], [({"deployment": MODEL}, 3.0)],
                     [({"deployment": MODEL}, 2.0)]],
    }


def test_every_infrastructure_query_selects_the_models_pods_only(tmp_path: Path) -> None:
    (configmap,) = [r for r in program_run(STACK_FILE).by_type("kubernetes:core/v1:ConfigMap")
                    if r.name == OVERVIEW_CONFIG_MAP]
    dashboard = json.loads(next(iter(configmap.inputs["data"].values())))
    queries = queries_by_row(dashboard, {"Infrastructure"})
    expected = expected_samples()
    assert [title for title, _ in queries] == [t for t, per_query in expected.items() for _ in per_query], (
        "the infrastructure row's queries changed: update the fixtures"
    )
    seen: dict[str, int] = {}
    tests: list[dict[str, Any]] = []
    for title, expr in queries:
        index = seen[title] = seen.get(title, -1) + 1
        tests.append({
            "expr": expand(expr, {"namespace": NAMESPACE, "model": MODEL}, SCRAPE_INTERVAL),
            "eval_time": format_duration(EVAL_MINUTES * STEP_MS),
            "exp_samples": [{"labels": selector("", **labels), "value": value}
                            for labels, value in expected[title][index]],
        })
    run_rule_tests(
        tmp_path, [g for g in groups_for(ModelMonitorsConfig()) if g.name.endswith("-resources")],
        [{"interval": format_duration(STEP_MS), "input_series": fixture_series(), "promql_expr_test": tests}],
        evaluation_interval_ms=STEP_MS,
    )
