"""``ModelMonitors``: the ServiceMonitor and PrometheusRule that watch one model service.

Point it at any service that exports the model metric contract (``model_service.contract``): give it the
Service's selector and metrics port name, the model's name, the workload that runs its pods, its objectives
and thresholds, and the discovery contract the monitoring stack exports. It never spells the labels
Prometheus selects monitors by: they come from that contract, so a monitor cannot silently go unselected.

Every series the rules read is scoped to the service's scrape job (``namespace`` and ``job``, the job set by
the ServiceMonitor itself), so any number of ``ModelMonitors`` can share one Prometheus without their
recordings colliding.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import pulumi
import pulumi_kubernetes as k8s
from model_service import contract

from components.contracts import (
    CLUSTER_LABEL,
    LOCAL_STORE,
    MODEL_LABEL,
    TEAM_LABEL,
    TRACK_LABEL,
    DiscoveryContract,
    common_labels,
)
from components.monitors.canary_rules import canary_rule_group, canary_settings
from components.monitors.config import ModelMonitorsConfig
from components.monitors.data_quality_rules import InputQualitySettings, input_quality_rule_group
from components.monitors.drift_rules import DriftSettings, DriftThresholds, drift_rule_group
from components.monitors.model_rules import (
    AccuracySettings,
    WorkloadKind,
    accuracy_rule_group,
    resource_rule_group,
    target_rule_group,
)
from components.monitors.model_slos import LatencyObjective, SloSettings, model_slos
from components.monitors.quality_groups import quality_rule_groups
from components.monitors.rule_evaluators import RuleEvaluator
from components.monitors.rule_model import (
    AlertingRule,
    RuleGroup,
    TimeScale,
    alert_names,
    format_duration,
    to_spec,
)
from components.monitors.runbooks import RunbookLinks
from components.monitors.slo_rules import is_period_group, slo_rule_groups

MONITORING_API_VERSION: Final = "monitoring.coreos.com/v1"
DEFAULT_SCRAPE_TIMEOUT: Final = "10s"
"""Prometheus' default scrape timeout; capped at the scrape interval, which Prometheus requires."""
COMPONENT: Final = "monitoring"
MODEL_RECORDINGS: Final = (
    r"(model|model_class|model_class_pair|model_feature|model_feature_bin|model_track|model_track_class|model_workload_pod|slo):.+|sloth_slo_info"
)
"""Every series the model's recording rules write (anchored RE2, as a relabel regex): drift, SLO, accuracy (overall
and per class), confidence, the canary's comparison per track and the model's workload. What a store that takes
only the recordings is sent (``monitoring.remoteWrite[].send``), less ``DERIVABLE_RECORDINGS``."""
DERIVABLE_RECORDINGS: Final = r"model_feature_bin:drift_(bin_ratio|js_mixture_ratio):.+"
"""Recordings a recordings-only store is not sent: each window's per-bin shares, the intermediate steps of PSI and
JS distance, which a store derives again from the per-bin counts and the reference it does get
(``drift_rules.psi_across_clusters``): at the sample model's size, about a third of its recorded series."""

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_PORT_NAME = re.compile(r"^(?=.{1,15}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def with_alert_labels(groups: tuple[RuleGroup, ...], labels: Mapping[str, str]) -> tuple[RuleGroup, ...]:
    """Every alert of ``groups`` with ``labels`` added: what Alertmanager routes and groups a model's alerts by."""
    return tuple(
        dataclasses.replace(group, rules=tuple(
            dataclasses.replace(rule, labels={**rule.labels, **labels}) if isinstance(rule, AlertingRule) else rule
            for rule in group.rules
        ))
        for group in groups
    )


@dataclass(frozen=True, kw_only=True)
class ModelMonitorsArgs:
    """What ``ModelMonitors`` needs to know about a model service and its objectives."""

    namespace: pulumi.Input[str]
    """Namespace of the model's Service and pods; the ServiceMonitor and PrometheusRule are declared there."""
    selector: pulumi.Input[Mapping[str, str]]
    """Labels of the model's Service: the ServiceMonitor selects the Service by them."""
    port: str
    """Name of the Service port that serves the metrics (a name, not a number, as Prometheus Operator needs)."""
    model_name: str
    """The model's name, as its ``model_info{model_name=…}`` series says; labels the SLO recordings and alerts."""
    workload: pulumi.Input[str]
    """Name of the Deployment (or StatefulSet) that runs the model's pods: the restart and memory alerts watch
    its pods."""
    discovery: DiscoveryContract
    """Labels (and namespaces) Prometheus selects monitors and rules by: the monitoring stack's ``discovery``."""
    settings: ModelMonitorsConfig = field(default_factory=ModelMonitorsConfig)
    """Objectives, thresholds, windows, intervals and the time scale (validated when built: ``ModelMonitorsConfig
    (drift={"long_window": "12h"})``); the defaults are a new model's."""
    workload_kind: WorkloadKind = "Deployment"
    """Kind of ``workload``."""
    canary_workload: pulumi.Input[str] | None = None
    """Name of the Deployment of the model's canary, if it has one: its pods' restarts and memory are watched too."""
    team: str | None = None
    """The team that owns the model: every alert carries it as ``team``, and Alertmanager routes on it first."""
    job: str | None = None
    """Value of the ``job`` label the ServiceMonitor gives the targets (and the rules select); default: the
    model's name."""
    metrics_path: str = contract.ROUTE_METRICS
    """HTTP path of the metrics on ``port``."""
    period_evaluator: RuleEvaluator | None = None
    """The store that evaluates the SLO period's recordings from the data it holds, when the cluster's Prometheus
    keeps less than a period; ``None``: Prometheus evaluates them with the other rules."""
    runbooks: RunbookLinks = field(default_factory=RunbookLinks)
    """Where every alert's ``runbook_url`` points: the runbook dashboard of the stack's Grafana, or a published copy
    (``MonitoringStack.runbook_links``)."""

    @property
    def job_name(self) -> str:
        return self.job or self.model_name

    @property
    def scale(self) -> TimeScale:
        return TimeScale(self.settings.time_scale)

    def problems(self) -> list[str]:
        """What is wrong with these args, each naming the field, the value and what is allowed."""
        problems = []
        if not _DNS_LABEL.match(self.job_name) or len(self.job_name) > 63:
            field = "job" if self.job else "model_name"
            problems.append(f"{field} {self.job_name!r} must be a DNS label (it names the job and the monitors)")
        if not _PORT_NAME.match(self.port):
            problems.append(f"port {self.port!r} must be a port name (lowercase letters, digits and '-', 1-15 long)")
        if not self.metrics_path.startswith("/"):
            problems.append(f"metrics_path {self.metrics_path!r} must start with '/'")
        if not self.discovery.labels:
            problems.append("discovery.labels is empty: Prometheus would select monitors by nothing")
        if isinstance(self.namespace, str):
            problems += self.namespace_problems(self.namespace)
        if self.team is not None and not _DNS_LABEL.match(self.team):
            problems.append(f"team {self.team!r} must be a DNS label (it routes the alerts)")
        return problems

    def namespace_problems(self, namespace: str) -> list[str]:
        allowed = self.discovery.namespaces
        if allowed is not None and namespace not in allowed:
            return [
                f"namespace {namespace!r} is not one Prometheus watches for monitors and rules "
                f"({', '.join(allowed)}): its ServiceMonitor and PrometheusRule would be ignored"
            ]
        return []


def slo_settings(settings: ModelMonitorsConfig) -> SloSettings:
    return SloSettings(
        availability_objective_percent=settings.availability_objective_percent,
        latency=tuple(
            LatencyObjective(threshold_seconds=slo.threshold_seconds, objective_percent=slo.objective_percent)
            for slo in settings.latency_slos
        ),
        period=settings.slo_period,
    )


def drift_settings(settings: ModelMonitorsConfig) -> DriftSettings:
    drift = settings.drift
    return DriftSettings(
        short_window=drift.short_window,
        long_window=drift.long_window,
        default=DriftThresholds(psi=drift.psi_threshold, js_distance=drift.js_distance_threshold),
        per_feature={
            feature: DriftThresholds(
                psi=override.psi_threshold if override.psi_threshold is not None else drift.psi_threshold,
                js_distance=(
                    override.js_distance_threshold
                    if override.js_distance_threshold is not None
                    else drift.js_distance_threshold
                ),
            )
            for feature, override in drift.features.items()
        },
        min_window_observations=drift.min_window_observations,
    )


def accuracy_settings(settings: ModelMonitorsConfig) -> AccuracySettings:
    accuracy = settings.accuracy
    return AccuracySettings(floor=accuracy.floor, window=accuracy.window, min_feedback=accuracy.min_feedback)


def rule_groups(
    args: ModelMonitorsArgs,
    *,
    namespace: str,
    workload: str,
    period_store: str = LOCAL_STORE,
    period_matchers: Mapping[str, str] | None = None,
    canary_workload: str | None = None,
) -> tuple[RuleGroup, ...]:
    """Every rule group of the model, for resolved ``namespace`` and ``workload``: the SLO period's groups
    (``is_period_group``) recorded with ``slo_store=<period_store>`` and selecting ``period_matchers``."""
    scale = args.scale
    settings = args.settings
    job = args.job_name
    scope = {"namespace": namespace, "job": job}
    model = {contract.LABEL_MODEL_NAME: args.model_name}
    interval = scale.render(settings.evaluation_interval)
    common: dict[str, Any] = {"scale": scale, "runbooks": args.runbooks, "interval": interval}
    groups: list[RuleGroup] = []
    slos = slo_settings(settings)
    for slo in model_slos(slos, service=job, scope=scope, labels={**scope, **model}):
        groups += slo_rule_groups(slo, period=slos.period, period_store=period_store,
                                  period_matchers=period_matchers, **common)
    groups.append(drift_rule_group(drift_settings(settings), name=f"{job}-drift", scope=scope, **common))
    groups.append(accuracy_rule_group(accuracy_settings(settings), name=f"{job}-accuracy", scope=scope, **common))
    groups += quality_rule_groups(settings, job=job, scope=scope, **common)
    groups.append(canary_rule_group(canary_settings(settings.canary), name=f"{job}-canary", scope=scope, labels=model,
                                    **common))
    quality = settings.data_quality
    groups.append(input_quality_rule_group(
        InputQualitySettings(max_issue_ratio=quality.max_issue_ratio, window=quality.window,
                             min_window_records=quality.min_window_records, for_=quality.for_),
        name=f"{job}-data-quality", scope=scope, **common,
    ))
    groups.append(target_rule_group(name=f"{job}-targets", scope=scope, labels=model, **common))
    groups.append(
        resource_rule_group(
            name=f"{job}-resources",
            namespace=namespace,
            workload=workload,
            workload_kind=args.workload_kind,
            memory_near_limit_ratio=settings.memory_near_limit_ratio,
            scope=scope,
            labels=model,
            canary_workload=canary_workload,
            **common,
        )
    )
    routing = {MODEL_LABEL: args.model_name, **({TEAM_LABEL: args.team} if args.team is not None else {})}
    return with_alert_labels(tuple(groups), routing)


def service_monitor_spec(args: ModelMonitorsArgs, *, namespace: str, selector: Mapping[str, str]) -> dict[str, Any]:
    """The ServiceMonitor's ``spec``: the Service by its labels, the port by name, the job set to the rules'."""
    scale = args.scale
    interval_ms = scale.milliseconds(args.settings.scrape_interval)
    timeout_ms = min(scale.milliseconds(DEFAULT_SCRAPE_TIMEOUT), interval_ms)
    return {
        "selector": {"matchLabels": dict(selector)},
        "namespaceSelector": {"matchNames": [namespace]},
        # The operator copies the pod's track onto every series scraped from it: a canary's series and its stable
        # version's stay apart whatever the metrics themselves say (absent on pods without the label).
        "podTargetLabels": [TRACK_LABEL],
        "endpoints": [
            {
                "port": args.port,
                "path": args.metrics_path,
                "scheme": "http",
                "interval": format_duration(interval_ms),
                "scrapeTimeout": format_duration(timeout_ms),
                # The operator names the job after the Service; the rules need a name they know in advance.
                "relabelings": [{"action": "replace", "targetLabel": "job", "replacement": args.job_name}],
            }
        ],
    }


class ModelMonitors(pulumi.ComponentResource):
    """A ServiceMonitor and a PrometheusRule (recordings and alerts) for one model service.

    Children: ``<name>-servicemonitor`` and ``<name>-rules``, both labelled with the discovery contract's
    labels (plus the recommended ``app.kubernetes.io/*`` ones) in the service's namespace; with a
    ``period_evaluator``, the SLO period's groups go to it instead (``<name>-period-rules``).
    """

    TYPE: Final = "mlobs:monitoring:ModelMonitors"

    job: str
    """The ``job`` label of the service's targets; every rule selects by it."""
    service_monitor_name: pulumi.Output[str]
    """``metadata.name`` of the ServiceMonitor."""
    prometheus_rule_name: pulumi.Output[str]
    """``metadata.name`` of the PrometheusRule."""
    rule_group_names: pulumi.Output[list[str]]
    """Names of the model's rule groups, wherever evaluated (``sloth-slo-*`` per SLO, then drift, accuracy, targets,
    resources)."""
    alert_names: pulumi.Output[list[str]]
    """Every alert the rules can fire, each with a runbook of the same name."""

    def __init__(self, name: str, args: ModelMonitorsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        problems = args.problems()
        if problems:
            raise pulumi.RunError(f"ModelMonitors {name!r}: " + "; ".join(problems))
        super().__init__(self.TYPE, name, None, opts)
        # Children wait for what the component waits for (the monitoring stack's CRDs), and nothing else of
        # the caller's options is copied onto them.
        child = pulumi.ResourceOptions(parent=self, depends_on=opts.depends_on if opts else None)
        self.job = args.job_name
        labels = {**common_labels(self.job, self.job, COMPONENT), **args.discovery.labels}
        namespace = pulumi.Output.from_input(args.namespace).apply(self._checked_namespace(args))

        monitor = k8s.apiextensions.CustomResource(
            f"{name}-servicemonitor",
            api_version=MONITORING_API_VERSION,
            kind="ServiceMonitor",
            metadata={"name": self.job, "namespace": namespace, "labels": labels},
            spec=pulumi.Output.all(namespace, args.selector).apply(
                lambda values: service_monitor_spec(args, namespace=values[0], selector=values[1])
            ),
            opts=child,
        )
        evaluator = args.period_evaluator
        groups = pulumi.Output.all(
            namespace, args.workload, evaluator.cluster_label if evaluator else "", args.canary_workload or ""
        ).apply(
            lambda values: rule_groups(
                args, namespace=values[0], workload=values[1],
                period_store=evaluator.store if evaluator else LOCAL_STORE,
                period_matchers={CLUSTER_LABEL: values[2]} if evaluator else None,
                canary_workload=values[3] or None,
            )
        )
        local = groups.apply(lambda gs: tuple(g for g in gs if evaluator is None or not is_period_group(g)))
        rule = k8s.apiextensions.CustomResource(
            f"{name}-rules",
            api_version=MONITORING_API_VERSION,
            kind="PrometheusRule",
            metadata={"name": f"{self.job}-rules", "namespace": namespace, "labels": labels},
            spec=local.apply(to_spec),
            opts=child,
        )
        if evaluator is not None:
            evaluator.declare(
                f"{name}-period-rules",
                groups=groups.apply(lambda gs: tuple(g for g in gs if is_period_group(g))),
                namespace=namespace,
                labels=labels,
                parent=self,
            )

        rule_name = f"{self.job}-rules"
        self.service_monitor_name = monitor.id.apply(lambda _: self.job)
        self.prometheus_rule_name = rule.id.apply(lambda _: rule_name)
        self.rule_group_names = groups.apply(lambda gs: [g.name for g in gs])
        self.alert_names = groups.apply(lambda gs: list(alert_names(gs)))
        self.register_outputs(
            {
                "job": self.job,
                "serviceMonitorName": self.service_monitor_name,
                "prometheusRuleName": self.prometheus_rule_name,
                "ruleGroupNames": self.rule_group_names,
                "alertNames": self.alert_names,
            }
        )

    @staticmethod
    def _checked_namespace(args: ModelMonitorsArgs) -> Any:
        def check(namespace: str) -> str:
            problems = args.namespace_problems(namespace)
            if problems:
                raise pulumi.RunError("ModelMonitors: " + "; ".join(problems))
            return namespace

        return check
