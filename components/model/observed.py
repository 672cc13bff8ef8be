"""``ObservedModel``: one model of the fleet, deployed by the program or already running, with its monitors.

A platform's program declares each model in one call: with ``deployment`` args, the model is deployed
(``ModelDeployment``) and its monitors are pointed at what the deployment exports; with ``service``, it is a
service someone else runs and only its monitors are declared. Either way the monitors carry the model's team,
which routes its alerts.

    ObservedModel(
        "churn",
        ObservedModelArgs(
            name="churn",
            team="growth",
            service=ExternalService(namespace="churn", selector={"app": "churn"}, port="http-metrics"),
            discovery=monitoring.discovery,
        ),
        opts=pulumi.ResourceOptions(providers=[cluster.provider], depends_on=[monitoring.release]),
    )
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
from model_service import contract

from components.contracts import DiscoveryContract
from components.model.deployment import ModelDeployment, ModelDeploymentArgs
from components.monitors.config import ModelMonitorsConfig
from components.monitors.model_monitors import ModelMonitors, ModelMonitorsArgs
from components.monitors.model_rules import WorkloadKind
from components.monitors.rule_evaluators import RuleEvaluator
from components.monitors.runbooks import RunbookLinks


@dataclass(frozen=True, kw_only=True)
class ExternalService:
    """Where a model this program does not deploy runs: what its monitors select."""

    namespace: pulumi.Input[str]
    """Namespace of the model's Service and pods."""
    selector: Mapping[str, str]
    """Labels of the model's Service."""
    port: str
    """Name of the Service port that serves the metrics."""
    metrics_path: str = contract.ROUTE_METRICS
    """HTTP path of the metrics on that port."""
    workload: str | None = None
    """Deployment or StatefulSet running its pods (restart and memory alerts); ``None``: the model's name."""
    workload_kind: WorkloadKind = "Deployment"


@dataclass(frozen=True, kw_only=True)
class ObservedModelArgs:
    """One model: its name, its owner, where it runs (deployed here or external), and its monitors' settings."""

    name: str
    """The model's name: its ``model_name`` label, its scrape job, and the prefix of its objects' names."""
    discovery: DiscoveryContract
    """The labels Prometheus selects monitors by: the monitoring stack's ``discovery``."""
    deployment: ModelDeploymentArgs | None = None
    """Deploy the model with these args; exclusive with ``service``."""
    service: ExternalService | None = None
    """The running service of a model this program does not deploy; exclusive with ``deployment``."""
    team: str | None = None
    """The team that owns the model; its alerts carry ``team`` and route to that team's receivers."""
    monitors: ModelMonitorsConfig = field(default_factory=ModelMonitorsConfig)
    """Objectives and thresholds of its monitors."""
    period_evaluator: RuleEvaluator | None = None
    """The store that evaluates the SLO period's recordings, when Prometheus keeps less than a period
    (``ModelMonitorsArgs.period_evaluator``)."""
    runbooks: RunbookLinks = field(default_factory=RunbookLinks)
    """Where its alerts' runbook links point: the monitoring stack's ``runbook_links``."""

    def __post_init__(self) -> None:
        if (self.deployment is None) == (self.service is None):
            raise ValueError(
                f"ObservedModelArgs of {self.name!r}: give exactly one of deployment (the program deploys the model) "
                f"and service (it runs already); got {'both' if self.deployment else 'neither'}"
            )
        if self.deployment is not None and self.deployment.model_name != self.name:
            raise ValueError(
                f"ObservedModelArgs of {self.name!r}: deployment.model_name is {self.deployment.model_name!r}; the "
                "two names must be the same"
            )


class ObservedModel(pulumi.ComponentResource):
    """A model of the fleet: its ``ModelDeployment`` when the program deploys it, and its ``ModelMonitors``.

    Children: ``<name>-model`` (a ModelDeployment, when deployed) and ``<name>-monitors`` (ModelMonitors). Takes
    the cluster's Kubernetes provider through ``opts`` (``providers=[cluster.provider]``), and should depend on the
    monitoring stack's release, whose CRDs the monitors need (its ``depends_on`` reaches the monitors only).
    """

    TYPE = "mlobs:model:ObservedModel"

    deployment: ModelDeployment | None
    """The model's deployment, or ``None`` for an external model."""
    monitors: ModelMonitors
    """Its ServiceMonitor and PrometheusRule."""
    namespace: pulumi.Output[str]
    """Namespace of the model's Service (and of its monitors)."""
    job: str
    """The ``job`` label of its targets (every rule selects by it)."""
    url: pulumi.Output[str] | None
    """In-cluster URL of a deployed model's API; ``None`` for an external one."""
    alert_names: pulumi.Output[list[str]]
    """Every alert its monitors can fire."""

    def __init__(self, name: str, args: ObservedModelArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(self.TYPE, name, None, opts)
        if args.deployment is not None:
            self.deployment = ModelDeployment(
                f"{name}-model", args.deployment, opts=pulumi.ResourceOptions(parent=self)
            )
            deployed = self.deployment
            namespace: pulumi.Input[str] = deployed.namespace
            selector: pulumi.Input[Mapping[str, str]] = deployed.selector_labels
            port, metrics_path = deployed.port_name, deployed.metrics_path
            workload: pulumi.Input[str] = deployed.deployment_name
            canary_workload: pulumi.Input[str] | None = deployed.canary_deployment_name
            workload_kind: WorkloadKind = "Deployment"
            self.url = deployed.url
        else:
            assert args.service is not None  # ObservedModelArgs guarantees one of the two
            service = args.service
            self.deployment = None
            namespace, selector, port, metrics_path = (service.namespace, service.selector, service.port,
                                                       service.metrics_path)
            workload, workload_kind = service.workload or args.name, service.workload_kind
            canary_workload = None
            self.url = None
        depends_on = opts.depends_on if opts is not None else None
        self.monitors = ModelMonitors(
            f"{name}-monitors",
            ModelMonitorsArgs(
                namespace=namespace,
                selector=selector,
                port=port,
                metrics_path=metrics_path,
                model_name=args.name,
                workload=workload,
                workload_kind=workload_kind,
                canary_workload=canary_workload,
                discovery=args.discovery,
                settings=args.monitors,
                team=args.team,
                period_evaluator=args.period_evaluator,
                runbooks=args.runbooks,
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends_on),
        )
        self.namespace = pulumi.Output.from_input(namespace)
        self.job = self.monitors.job
        self.alert_names = self.monitors.alert_names
        self.register_outputs(self.stack_outputs())

    def stack_outputs(self) -> dict[str, pulumi.Input[object]]:
        """What a person needs of the model, as the program exports it (under ``models.<name>``)."""
        outputs: dict[str, pulumi.Input[object]] = {
            "namespace": self.namespace, "job": self.job, "alerts": self.alert_names,
        }
        if self.deployment is not None:
            outputs |= {"url": self.deployment.url, "image": self.deployment.image}
        return outputs
