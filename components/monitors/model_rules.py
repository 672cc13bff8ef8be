"""The model service's other alerts: scrape targets, accuracy from feedback, and its pods' restarts and memory.

Target alerts read ``up`` of the service's own job. Accuracy comes from the contract's feedback counters,
guarded by a minimum of scored feedback in the window. Restarts and memory read kube-state-metrics and the
kubelet's cAdvisor, which know nothing of the model: the pods are found through their owner (ReplicaSet →
Deployment, or StatefulSet), recorded once as ``model_workload_pod:kube_pod_owner:relabel``. That series
comes from kube-state-metrics, so it still lists a pod that crash-loops and has left the Service's
endpoints, exactly when its restarts matter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from model_service import contract

from components.contracts import CLUSTER_LABEL, Severity
from components.monitors.cluster_metrics import (
    CONTAINER_MEMORY_WORKING_SET_BYTES,
    KUBE_POD_CONTAINER_RESOURCE_LIMITS,
    KUBE_POD_CONTAINER_STATUS_RESTARTS,
    KUBE_POD_OWNER,
    KUBE_REPLICASET_OWNER,
)
from components.monitors.rule_model import (
    WINDOW_LABEL,
    AlertingRule,
    Matcher,
    RecordingRule,
    RuleGroup,
    TimeScale,
    by,
    selector,
)
from components.monitors.runbooks import RunbookLinks

TARGET_DOWN_ALERT: Final = "ModelTargetDown"
TARGET_ABSENT_ALERT: Final = "ModelTargetAbsent"
ACCURACY_ALERT: Final = "ModelAccuracyBelowFloor"
RESTARTS_ALERT: Final = "ModelPodRestarting"
MEMORY_ALERT: Final = "ModelMemoryNearLimit"

TARGET_FOR: Final = "5m"
"""Longer than a rolling update's gap between a pod leaving and its successor's first scrape."""
ACCURACY_FOR: Final = "15m"
"""Accuracy moves with every feedback batch; the floor must be missed for a while, not once."""
RESTARTS_WINDOW: Final = "1h"
RESTARTS_THRESHOLD: Final = 2
"""Restarts of one container within :data:`RESTARTS_WINDOW` that make an alert: one restart can be a node
drain or a one-off OOM kill, two in an hour are a pattern."""
MEMORY_FOR: Final = "15m"
"""A working set above the ratio for this long is a level, not a garbage-collection peak."""

MODEL_GROUP: Final = (CLUSTER_LABEL, "namespace", "job", *contract.MODEL_LABELS)
"""Labels of one model's series: its scrape target's, and the cluster's across clusters."""
POD: Final = by((CLUSTER_LABEL, "namespace", "pod"))

WORKLOAD_PODS: Final = "model_workload_pod:kube_pod_owner:relabel"
FEEDBACK_VOLUME: Final = "model:feedback:increase"
ACCURACY: Final = "model:feedback_accuracy:ratio"
ACCURACY_FLOOR: Final = "model:feedback_accuracy:floor"
ACCURACY_OVER_WINDOW: Final = "model:feedback_accuracy:ratio_window"
"""The accuracy over the model's own window under one name, the window as label ``window``: what a dashboard of
several models reads."""
CONTAINER_RESTARTS: Final = "model_workload_pod:container_restarts:window"
"""Restarts of each container of the workload's pods within :data:`RESTARTS_WINDOW` (label ``window``): what
``ModelPodRestarting`` compares, under a name without the window, which the dashboard shows."""
MEMORY_NEAR_LIMIT: Final = "model:container_memory_near_limit:threshold"
"""The model's memory alert threshold (share of the limit), per model: the dashboard draws it."""

WorkloadKind = Literal["Deployment", "StatefulSet"]


def percent(ratio: float) -> str:
    """``0.875`` → ``87.5%``: a ratio as people read it in an alert, without float noise.

    >>> percent(0.9), percent(0.875)
    ('90%', '87.5%')
    """
    return f"{round(ratio * 100, 6):g}%"


@dataclass(frozen=True, kw_only=True)
class AccuracySettings:
    """The accuracy floor and how much feedback a window needs before it is compared with it."""

    floor: float
    window: str
    min_feedback: int


def target_rule_group(
    *,
    name: str,
    scope: Mapping[str, str],
    labels: Mapping[str, str],
    scale: TimeScale,
    runbooks: RunbookLinks,
    interval: str | None = None,
) -> RuleGroup:
    """``ModelTargetDown`` (one target fails its scrapes) and ``ModelTargetAbsent`` (no target succeeds).

    With no healthy target nothing about the service is measured: its SLO alerts cannot fire, so that case
    pages on its own. ``absent(up{…} == 1)`` covers both no target at all (a ServiceMonitor or Service that
    selects nothing, every pod unready) and every target failing.
    """
    up = selector("up", **scope)
    return RuleGroup(
        name=name,
        interval=interval,
        rules=(
            AlertingRule(
                alert=TARGET_DOWN_ALERT,
                expr=f"{up} == 0",
                for_=scale.render(TARGET_FOR),
                severity=Severity.WARNING,
                summary="Prometheus cannot scrape a replica of the model service.",
                description=(
                    "Prometheus has failed to scrape {{ $labels.instance }} (pod {{ $labels.pod }}) of job "
                    "{{ $labels.job }} in namespace {{ $labels.namespace }} for " + TARGET_FOR
                    + " (up = {{ $value }}): its metrics, and what the alerts learn from them, are missing."
                ),
                runbook_url=runbooks.url(TARGET_DOWN_ALERT),
                labels=labels,
            ),
            AlertingRule(
                alert=TARGET_ABSENT_ALERT,
                expr=f"absent({up} == 1)",
                for_=scale.render(TARGET_FOR),
                severity=Severity.CRITICAL,
                summary="No replica of the model service is being scraped: the service is unmonitored.",
                description=(
                    f"No target of job {scope.get('job', '')} in namespace {scope.get('namespace', '')} has been "
                    f"scraped successfully for {TARGET_FOR} (absent = {{{{ $value }}}}): either Prometheus "
                    "discovers none (ServiceMonitor, Service or pods) or every scrape fails. The model's SLO, "
                    "drift and accuracy alerts cannot fire meanwhile."
                ),
                runbook_url=runbooks.url(TARGET_ABSENT_ALERT),
                labels={**labels, **scope},
            ),
        ),
    )


def accuracy_rule_group(
    settings: AccuracySettings,
    *,
    name: str,
    scope: Mapping[str, str],
    scale: TimeScale,
    runbooks: RunbookLinks,
    interval: str | None = None,
) -> RuleGroup:
    """Accuracy over the window from the feedback counters, and ``ModelAccuracyBelowFloor``.

    The alert takes the model's name and version from the feedback series themselves.
    """
    window = settings.window
    rendered = scale.render(window)
    group = by(MODEL_GROUP)
    feedback = contract.FEEDBACK.name
    volume = selector(f"{FEEDBACK_VOLUME}{window}", **scope)
    accuracy = selector(f"{ACCURACY}{window}", **scope)
    return RuleGroup(
        name=name,
        interval=interval,
        rules=(
            RecordingRule(
                record=f"{FEEDBACK_VOLUME}{window}",
                expr=f"sum by {group} (increase({selector(feedback, **scope)}[{rendered}]))",
            ),
            RecordingRule(
                record=f"{ACCURACY}{window}",
                expr=(
                    f"sum by {group} "
                    f"(increase({selector(feedback, **scope, outcome=contract.OUTCOME_CORRECT)}[{rendered}]))\n"
                    f"/ on {group}\n({volume} > 0)"
                ),
            ),
            RecordingRule(
                record=ACCURACY_OVER_WINDOW,
                expr=accuracy,
                labels={WINDOW_LABEL: window},
            ),
            RecordingRule(
                record=ACCURACY_FLOOR,
                expr=f"{settings.floor} * group by {group} ({selector(contract.MODEL_INFO.name, **scope)})",
            ),
            AlertingRule(
                alert=ACCURACY_ALERT,
                expr=(
                    f"{accuracy} < {settings.floor}\nand on {group}\n"
                    f"{volume} >= {settings.min_feedback}"
                ),
                for_=scale.render(ACCURACY_FOR),
                severity=Severity.WARNING,
                summary="The model's accuracy on scored feedback is below its floor.",
                description=(
                    "Model {{ $labels.model_name }} {{ $labels.model_version }} in namespace "
                    "{{ $labels.namespace }} was right on {{ $value | humanizePercentage }} of the feedback "
                    f"scored over the last {window}, below its floor of {percent(settings.floor)} (at least "
                    f"{settings.min_feedback} items scored)."
                ),
                runbook_url=runbooks.url(ACCURACY_ALERT),
            ),
        ),
    )


def workload_pods_expr(namespace: str, workload: str, kind: WorkloadKind) -> str:
    """1 for each pod the workload owns, by (cluster, namespace, pod), from kube-state-metrics' owner series."""
    if kind == "StatefulSet":
        owned = selector(KUBE_POD_OWNER, namespace=namespace, owner_kind="StatefulSet", owner_name=workload)
        return f"max by {POD} ({owned})"
    pods = selector(KUBE_POD_OWNER, namespace=namespace, owner_kind="ReplicaSet")
    replicasets = selector(KUBE_REPLICASET_OWNER, namespace=namespace, owner_kind="Deployment", owner_name=workload)
    replicaset = by((CLUSTER_LABEL, "namespace", "replicaset"))
    return (
        f"max by {POD} (\n"
        f'  label_replace({pods}, "replicaset", "$1", "owner_name", "(.*)")\n'
        f"  * on {replicaset} group_left ()\n"
        f"  max by {replicaset} ({replicasets})\n"
        ")"
    )


def resource_rule_group(
    *,
    name: str,
    namespace: str,
    workload: str,
    workload_kind: WorkloadKind,
    memory_near_limit_ratio: float,
    scope: Mapping[str, str],
    labels: Mapping[str, str],
    scale: TimeScale,
    runbooks: RunbookLinks,
    interval: str | None = None,
    canary_workload: str | None = None,
) -> RuleGroup:
    """The workload's pods (and its canary Deployment's, ``canary_workload``), and ``ModelPodRestarting`` and
    ``ModelMemoryNearLimit`` on them."""
    pods = selector(WORKLOAD_PODS, **scope)
    restarts = selector(KUBE_POD_CONTAINER_STATUS_RESTARTS, namespace=namespace)
    window = scale.render(RESTARTS_WINDOW)
    working_set = selector(
        CONTAINER_MEMORY_WORKING_SET_BYTES, Matcher("container", "", "!="), namespace=namespace
    )
    limits = selector(KUBE_POD_CONTAINER_RESOURCE_LIMITS, namespace=namespace, resource="memory")
    containers = by((CLUSTER_LABEL, "namespace", "pod", "container"))
    # max - min over the window counts restarts exactly; increase() would extrapolate 2 into 2.03.
    restarted = (
        f"max by {containers} (max_over_time({restarts}[{window}]) - min_over_time({restarts}[{window}]))\n"
        f"* on {POD} group_left ()\n{pods}"
    )
    return RuleGroup(
        name=name,
        interval=interval,
        rules=(
            *(
                RecordingRule(
                    record=WORKLOAD_PODS,
                    expr=workload_pods_expr(namespace, owner, workload_kind),
                    labels={**scope, "workload": owner},
                )
                for owner in (workload, *((canary_workload,) if canary_workload else ()))
            ),
            RecordingRule(
                record=MEMORY_NEAR_LIMIT,
                expr=f"{memory_near_limit_ratio} * group by {by(MODEL_GROUP)} "
                     f"({selector(contract.MODEL_INFO.name, **scope)})",
            ),
            RecordingRule(
                record=CONTAINER_RESTARTS,
                expr=restarted,
                labels={**scope, **labels, WINDOW_LABEL: RESTARTS_WINDOW},
            ),
            AlertingRule(
                alert=RESTARTS_ALERT,
                expr=f"{restarted}\n>= {RESTARTS_THRESHOLD}",
                severity=Severity.WARNING,
                summary="A container of the model's pods keeps restarting.",
                description=(
                    "Container {{ $labels.container }} of pod {{ $labels.pod }} in namespace "
                    "{{ $labels.namespace }} restarted {{ $value }} times in the last " + RESTARTS_WINDOW
                    + f" (workload {workload}); each restart drops its in-flight requests and resets its metrics."
                ),
                runbook_url=runbooks.url(RESTARTS_ALERT),
                labels=labels,
            ),
            AlertingRule(
                alert=MEMORY_ALERT,
                expr=(
                    f"(\n  max by {containers} ({working_set})\n  / on {containers}\n"
                    f"  max by {containers} ({limits})\n)\n"
                    f"* on {POD} group_left ()\n{pods}\n> {memory_near_limit_ratio}"
                ),
                for_=scale.render(MEMORY_FOR),
                severity=Severity.WARNING,
                summary="A container of the model's pods is close to its memory limit.",
                description=(
                    "Container {{ $labels.container }} of pod {{ $labels.pod }} in namespace "
                    "{{ $labels.namespace }} uses {{ $value | humanizePercentage }} of its memory limit "
                    f"(alert above {percent(memory_near_limit_ratio)} for {MEMORY_FOR}); at the limit it is OOM-killed."
                ),
                runbook_url=runbooks.url(MEMORY_ALERT),
                labels=labels,
            ),
        ),
    )
