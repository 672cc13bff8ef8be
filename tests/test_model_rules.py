"""Target, accuracy, restart and memory alerts under promtool: each fires on the series that should trigger
it, at the time its ``for`` and window imply, and stays silent on healthy series and on other workloads."""

from __future__ import annotations

import ast
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from model_service import contract

from components.monitors.config import ModelMonitorsConfig
from components.monitors.model_rules import (
    ACCURACY_ALERT,
    CONTAINER_RESTARTS,
    MEMORY_ALERT,
    RESTARTS_ALERT,
    RESTARTS_WINDOW,
    TARGET_ABSENT_ALERT,
    TARGET_DOWN_ALERT,
)
from components.monitors.rule_model import AlertingRule, RuleGroup, selector
from tests.monitor_rules import MINUTE, MODEL, NAMESPACE, every_alert_config, groups_for
from tests.promsim import Series, increase
from tests.rule_testing import expected_alert, run_rule_tests, series_values

REPLICASET = f"{MODEL}-5d8f7c9b6"
OTHER = "other-service"


def groups(suffix: str, config: ModelMonitorsConfig | None = None) -> tuple[RuleGroup, ...]:
    return tuple(g for g in groups_for(config or ModelMonitorsConfig()) if g.name.endswith(suffix))


def rule(groups_: tuple[RuleGroup, ...], alert: str) -> AlertingRule:
    return next(a for g in groups_ for a in g.alerts if a.alert == alert)


def at(minute: int, alert: str, expected: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    return {"eval_time": f"{minute}m", "alertname": alert, "exp_alerts": list(expected)}


def pod_target(pod: str) -> dict[str, str]:
    return {"namespace": NAMESPACE, "job": MODEL, "pod": pod, "instance": f"{pod}:8080"}


@pytest.mark.tools
def test_target_down_and_absent(tmp_path: Path):
    rules = groups("-targets")
    down, absent = rule(rules, TARGET_DOWN_ALERT), rule(rules, TARGET_ABSENT_ALERT)
    a, b = f"{REPLICASET}-aaaaa", f"{REPLICASET}-bbbbb"
    model = {"model_name": MODEL}
    replica_a_down = expected_alert(down, {**pod_target(a), **model}, 0)
    replica_b_down = expected_alert(down, {**pod_target(b), **model}, 0)
    nothing_up = expected_alert(absent, {"namespace": NAMESPACE, "job": MODEL, **model}, 1)
    tests = [
        {
            # Replica a fails its scrapes from minute 10, replica b from minute 20.
            "interval": "1m",
            "input_series": [
                {"series": selector("up", **pod_target(a)), "values": "1x9 0x30"},
                {"series": selector("up", **pod_target(b)), "values": "1x19 0x20"},
                # Another service's target in the same namespace never counts.
                {"series": selector("up", namespace=NAMESPACE, job=OTHER, pod="x", instance="x:80"),
                 "values": "0x40"},
            ],
            "alert_rule_test": [
                at(9, TARGET_DOWN_ALERT), at(14, TARGET_DOWN_ALERT), at(15, TARGET_DOWN_ALERT, [replica_a_down]),
                at(25, TARGET_DOWN_ALERT, [replica_a_down, replica_b_down]),
                at(15, TARGET_ABSENT_ALERT), at(24, TARGET_ABSENT_ALERT), at(25, TARGET_ABSENT_ALERT, [nothing_up]),
            ],
        },
        {
            # No target at all: the ServiceMonitor selects nothing.
            "interval": "1m",
            "input_series": [{"series": selector("up", namespace=NAMESPACE, job=OTHER, pod="x", instance="x:80"),
                              "values": "1x20"}],
            "alert_rule_test": [at(4, TARGET_ABSENT_ALERT), at(5, TARGET_ABSENT_ALERT, [nothing_up]),
                                at(5, TARGET_DOWN_ALERT)],
        },
    ]
    run_rule_tests(tmp_path, rules, tests, evaluation_interval_ms=MINUTE)


@pytest.mark.tools
def test_accuracy_below_its_floor_with_enough_feedback(tmp_path: Path):
    config = ModelMonitorsConfig()
    floor, hold = config.accuracy.floor, 15
    rules = groups("-accuracy", config)
    alert = rule(rules, ACCURACY_ALERT)
    minutes, drop = 4 * 60, 2 * 60
    # Version 1.0.0: 9 of 10 right per minute, then 5 of 10. Version 0.9.0 (a canary): 1 of 2 right all
    # along, 120 items an hour, under the 200 the window needs.
    per_minute = {
        ("1.0.0", "correct"): lambda m: 9 if m <= drop else 5,
        ("1.0.0", "incorrect"): lambda m: 1 if m <= drop else 5,
        ("0.9.0", "correct"): lambda m: 1,
        ("0.9.0", "incorrect"): lambda m: 1,
    }
    cumulative: dict[tuple[str, str], list[float]] = {}
    for key, rate in per_minute.items():
        values = [0.0]
        for minute in range(1, minutes + 1):
            values.append(values[-1] + rate(minute))
        cumulative[key] = values

    def accuracy(version: str, minute: int) -> tuple[float, float] | None:
        correct = increase(Series(cumulative[(version, "correct")], MINUTE), minute * MINUTE, 60 * MINUTE)
        wrong = increase(Series(cumulative[(version, "incorrect")], MINUTE), minute * MINUTE, 60 * MINUTE)
        if correct is None or wrong is None:
            return None
        return correct / (correct + wrong), correct + wrong

    def condition(version: str, minute: int) -> bool:
        value = accuracy(version, minute)
        return value is not None and value[0] < floor and value[1] >= config.accuracy.min_feedback

    below = min(m for m in range(minutes + 1) if condition("1.0.0", m))
    fires = below + hold
    assert all(condition("1.0.0", m) for m in range(below, fires + 1))
    assert not any(condition("0.9.0", m) for m in range(minutes + 1))
    labels = {"namespace": NAMESPACE, "job": MODEL, "model_name": MODEL, "model_version": "1.0.0"}
    value = accuracy("1.0.0", fires)
    assert value is not None
    series = []
    for (version, outcome), values in cumulative.items():
        actual = "class_0" if outcome == "correct" else "class_1"
        series.append({
            "series": selector(contract.FEEDBACK.name, **pod_target("p"), model_name=MODEL, model_version=version,
                               predicted_class="class_0", actual_class=actual, outcome=outcome),
            "values": series_values(values),
        })
    tests = [{
        "interval": "1m",
        "input_series": series,
        "alert_rule_test": [at(drop, ACCURACY_ALERT), at(fires - 1, ACCURACY_ALERT),
                            at(fires, ACCURACY_ALERT, [expected_alert(alert, labels, value[0])])],
    }]
    run_rule_tests(tmp_path, rules, tests, evaluation_interval_ms=MINUTE)


def ownership(pods: dict[str, str]) -> list[dict[str, str]]:
    """kube-state-metrics' owner series: each pod's ReplicaSet, and each ReplicaSet's Deployment."""
    series = []
    for pod, deployment in pods.items():
        replicaset = pod.rsplit("-", 1)[0]
        series.append({"series": selector("kube_pod_owner", job="kube-state-metrics", namespace=NAMESPACE, pod=pod,
                                          owner_kind="ReplicaSet", owner_name=replicaset, owner_is_controller="true"),
                       "values": "1x120"})
        series.append({"series": selector("kube_replicaset_owner", job="kube-state-metrics", namespace=NAMESPACE,
                                          replicaset=replicaset, owner_kind="Deployment", owner_name=deployment,
                                          owner_is_controller="true"),
                       "values": "1x120"})
    return series


@pytest.mark.tools
def test_restarts_of_the_workloads_pods(tmp_path: Path):
    rules = groups("-resources")
    alert = rule(rules, RESTARTS_ALERT)
    mine, theirs = f"{REPLICASET}-aaaaa", f"{OTHER}-7c6d5-bbbbb"
    restarts = [0.0] * 30 + [1.0] * 10 + [2.0] * 81  # restarts just before minutes 30 and 40

    def in_window(minute: int) -> float:
        window = restarts[max(0, minute - 59): minute + 1]  # samples in (t - 1h, t]
        return max(window) - min(window)

    fires = min(m for m in range(len(restarts)) if in_window(m) >= 2)
    resolves = min(m for m in range(fires, len(restarts)) if in_window(m) < 2)
    assert (fires, resolves) == (40, 89)
    labels = {"namespace": NAMESPACE, "pod": mine, "container": "model", "model_name": MODEL}
    ksm = {"job": "kube-state-metrics", "namespace": NAMESPACE, "uid": "u", "container": "model"}
    tests = [{
        "interval": "1m",
        "input_series": [
            {"series": selector("kube_pod_container_status_restarts_total", **ksm, pod=mine),
             "values": series_values(restarts)},
            # Another deployment's pod restarting faster does not concern the model.
            {"series": selector("kube_pod_container_status_restarts_total", **ksm, pod=theirs),
             "values": "0+1x120"},
            *ownership({mine: MODEL, theirs: OTHER}),
        ],
        "alert_rule_test": [
            at(fires - 1, RESTARTS_ALERT), at(fires, RESTARTS_ALERT, [expected_alert(alert, labels, 2)]),
            at(resolves - 1, RESTARTS_ALERT, [expected_alert(alert, labels, 2)]), at(resolves, RESTARTS_ALERT),
        ],
        # The count the alert compares, recorded for the dashboard: the model's pod only, with the window.
        "promql_expr_test": [
            {"expr": CONTAINER_RESTARTS, "eval_time": f"{minute}m", "exp_samples": [{
                "labels": selector(CONTAINER_RESTARTS, **labels, job=MODEL, window=RESTARTS_WINDOW),
                "value": in_window(minute)}]}
            for minute in (fires - 1, fires, resolves)
        ],
    }]
    run_rule_tests(tmp_path, rules, tests, evaluation_interval_ms=MINUTE)


@pytest.mark.tools
def test_memory_near_the_limit(tmp_path: Path):
    config = ModelMonitorsConfig()
    rules = groups("-resources", config)
    alert = rule(rules, MEMORY_ALERT)
    mine, theirs = f"{REPLICASET}-aaaaa", f"{OTHER}-7c6d5-bbbbb"
    mib = 1024 * 1024
    limit, before, after = 512 * mib, 400 * mib, 480 * mib
    assert before / limit < config.memory_near_limit_ratio < after / limit
    cadvisor = {"job": "kubelet", "metrics_path": "/metrics/cadvisor", "namespace": NAMESPACE, "image": "img",
                "node": "n1"}
    ksm = {"job": "kube-state-metrics", "namespace": NAMESPACE, "resource": "memory", "unit": "byte", "node": "n1"}
    labels = {"namespace": NAMESPACE, "pod": mine, "container": "model", "model_name": MODEL}
    tests = [{
        "interval": "1m",
        "input_series": [
            {"series": selector("container_memory_working_set_bytes", **cadvisor, pod=mine, container="model",
                                id="/kubepods/a/model"),
             "values": f"{before}x19 {after}x40"},
            # The pod's own cgroup (container="") holds more than any container: never compared with a limit.
            {"series": selector("container_memory_working_set_bytes", **cadvisor, pod=mine, container="",
                                id="/kubepods/a"),
             "values": f"{limit}x60"},
            {"series": selector("kube_pod_container_resource_limits", **ksm, pod=mine, container="model"),
             "values": f"{limit}x60"},
            # Another deployment's container at its limit.
            {"series": selector("container_memory_working_set_bytes", **cadvisor, pod=theirs, container="app",
                                id="/kubepods/b/app"),
             "values": f"{limit}x60"},
            {"series": selector("kube_pod_container_resource_limits", **ksm, pod=theirs, container="app"),
             "values": f"{limit}x60"},
            *ownership({mine: MODEL, theirs: OTHER}),
        ],
        # Above the ratio from minute 20; held for 15 minutes.
        "alert_rule_test": [at(19, MEMORY_ALERT), at(34, MEMORY_ALERT),
                            at(35, MEMORY_ALERT, [expected_alert(alert, labels, after / limit)])],
    }]
    run_rule_tests(tmp_path, rules, tests, evaluation_interval_ms=MINUTE)


def test_every_alert_is_exercised_by_a_promtool_test():
    """Each alert the monitors declare is named, by its constant, in a promtool rule test of this suite."""
    import components.monitors.canary_rules
    import components.monitors.class_quality_rules
    import components.monitors.data_quality_rules
    import components.monitors.drift_rules
    import components.monitors.model_rules
    import components.monitors.model_slos
    import components.monitors.prediction_rules
    from components.monitors.rule_model import alert_names

    # Names read by code (an import alone does not count): ast.Name nodes are uses, never import aliases.
    used = {node.id for path in Path(__file__).parent.glob("test_*_rules.py")
            for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Name)}
    constants = {
        value: name
        for module in (components.monitors.model_rules, components.monitors.drift_rules, components.monitors.model_slos,
                       components.monitors.class_quality_rules, components.monitors.prediction_rules,
                       components.monitors.canary_rules,
                       components.monitors.data_quality_rules)
        for name, value in vars(module).items()
        if name.endswith("_ALERT")
    }
    for alert in alert_names(groups_for(every_alert_config())):
        assert alert in constants, f"{alert} has no constant"
        assert constants[alert] in used, f"no promtool test uses {alert}"
