"""Everything a stack file says about an environment (``StackConfig``), and the rules across its sections.

Each section's types belong to the component that owns the section; this module puts them together and checks
what no single section can: that the monitoring settings and every model fit the cluster's kind, that a model's
team has receivers, that no two models watch the same Service, and that the stack has somewhere to put the
image it builds. ``components/config/loader.py`` reads the stack file into it and reports problems.
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any

from pydantic import Field, StringConstraints

from components.clusters.config import ClusterConfig, ExistingClusterConfig
from components.config.fields import Section
from components.contracts import selector_labels
from components.model.config import MODEL_NAME, SAMPLE_MODEL_NAME, ModelConfig
from components.monitoring.config import AlertingConfig, MonitoringConfig
from components.monitoring.stores.config import StoreConfig
from components.monitors.rule_model import format_duration, parse_duration
from components.monitors.runbooks import LOCAL_GRAFANA_URL

ModelName = Annotated[str, StringConstraints(pattern=MODEL_NAME)]


def _sample_model() -> dict[str, ModelConfig]:
    return {SAMPLE_MODEL_NAME: ModelConfig()}


class StackConfig(Section):
    """Everything a stack file says about the environment."""

    cluster: ClusterConfig
    monitoring: MonitoringConfig = MonitoringConfig()
    alerting: AlertingConfig = AlertingConfig()
    model_defaults: dict[str, Any] = Field(
        default_factory=dict,
        description="Settings every model gets unless it sets its own (any key of a model but external), merged "
        "key by key under each of them.",
        examples=[{"team": "ml-platform", "monitors": {"drift": {"longWindow": "12h"}}}],
    )
    models: dict[ModelName, ModelConfig] = Field(
        default_factory=_sample_model,
        description="The models of the stack, by name: each deployed by the stack, or external (a running service "
        "the stack only watches). Unset: the sample model.",
        examples=[{"churn": {"team": "growth", "image": "registry.example.com/churn:1.4.0"}}],
    )

    @property
    def deployed_models(self) -> dict[str, ModelConfig]:
        return {name: model for name, model in self.models.items() if model.deployed}

    @property
    def model_namespaces(self) -> tuple[str, ...]:
        """The namespaces the stack creates for its deployed models, each once."""
        return tuple(sorted({model.namespace for model in self.deployed_models.values()}))

    @property
    def builds_sample_image(self) -> bool:
        return any(model.builds_sample_image for model in self.models.values())

    def problems(self) -> list[tuple[str, str]]:
        """What the sections say together that cannot work: ``(key path, problem)``, keys as the stack file's."""
        kind = self.cluster.kind
        problems = [(f"monitoring.{key}", problem) for key, problem in self.monitoring.problems_on(kind)]
        for name, model in self.models.items():
            problems += [(f"models.{name}", problem) for problem in model.problems_on(kind)]
            if model.team is not None and model.team not in self.alerting.teams:
                teams = ", ".join(sorted(self.alerting.teams)) or "none yet"
                problems.append((
                    f"models.{name}.team",
                    f"team {model.team!r} has no receivers in alerting.teams ({teams}); add them "
                    f"(pulumi config set --path 'alerting.teams.{model.team}.slack.channel' '#alerts', with its "
                    "webhookUrl --secret), or correct the team",
                ))
        problems += self._shared_services()
        problems += self._retention_problems()
        problems += self._runbook_problems()
        if isinstance(self.cluster, ExistingClusterConfig) and self.cluster.registry is None:
            building = [name for name, model in self.models.items() if model.builds_sample_image]
            if building:
                problems.append((
                    "cluster.registry",
                    f"an existing cluster has no registry of this stack, and {', '.join(building)} "
                    f"{'runs' if len(building) == 1 else 'run'} the sample image, which the stack builds: set a "
                    "registry to push it to (pulumi config set --path 'cluster.registry.address' "
                    "registry.example.com/ml-team, with cluster.registry.username and, with --secret, "
                    f"cluster.registry.password), or the image to deploy (pulumi config set --path "
                    f"'models.{building[0]}.image' registry.example.com/ml-team/ml-model-service:1.0.0)",
                ))
        return problems

    @property
    def period_store(self) -> StoreConfig | None:
        """The store that evaluates the SLO period's rules for models whose period outlasts Prometheus' retention:
        the first of ``monitoring.remoteWrite`` that can."""
        return next((store for store in self.monitoring.remote_write if store.evaluates_long_windows), None)

    def period_evaluated_by_store(self, model: ModelConfig) -> bool:
        """Whether ``model``'s SLO period outlasts Prometheus' retention, so that a store evaluates its period
        recordings (from the data it holds) rather than the cluster's Prometheus."""
        return parse_duration(self.monitoring.prometheus.retention) < model.monitors.period_window_ms

    def _runbook_problems(self) -> list[tuple[str, str]]:
        """A notification read away from the cluster must link a runbook that opens there."""
        alerting, grafana = self.alerting, self.monitoring.grafana
        if not alerting.notifies or alerting.runbook_base_url is not None or grafana.ingress.url is not None:
            return []
        return [(
            "alerting.runbookBaseUrl",
            "alerts go to receivers, but their runbook links would open the runbook dashboard at "
            f"{LOCAL_GRAFANA_URL}, which only this machine or a port-forward reaches; publish runbooks/ and set it "
            "(pulumi config set --path 'alerting.runbookBaseUrl' "
            "https://git.example.com/platform/ml-observability/-/blob/main/runbooks), or give Grafana an address "
            "of its own (monitoring.grafana.ingress)",
        )]

    def _retention_problems(self) -> list[tuple[str, str]]:
        """A retention shorter than a window the rules read, reported once for the model that reads the longest."""
        if not self.models:
            return []
        key = "monitoring.prometheus.retention"
        retention = self.monitoring.prometheus.retention
        retention_ms = parse_duration(retention)
        alert_windows = [(ms, f"{setting} of models.{name}.monitors") for name, model in self.models.items()
                         for setting, ms in model.monitors.alert_windows_ms.items()]
        longest, setting = max(alert_windows)
        if retention_ms < longest:
            return [(key, f"{retention} is shorter than {_duration(longest)}, {setting}, which alerts read from this "
                          f"Prometheus whatever store holds the data; raise it: pulumi config set --path '{key}' "
                          f"{_duration(longest)}")]
        period, name = max((model.monitors.period_window_ms, name) for name, model in self.models.items())
        if retention_ms < period and self.period_store is None:
            stores = "; the remoteWrite stores cannot evaluate rules" if self.monitoring.remote_write else ""
            return [(key, f"{retention} is shorter than {_duration(period)}, the SLO period of models.{name}, over "
                          f"which its error budget is read{stores}: raise it (pulumi config set --path '{key}' "
                          f"{_duration(period)}; retentionSize must hold that much too), or add a "
                          "monitoring.remoteWrite store that holds the data and evaluates the period's rules (a "
                          "generic store with queryUrl, amp or azureMonitor)")]
        return []

    def _shared_services(self) -> list[tuple[str, str]]:
        """Two models whose monitors would select the same Service in the same namespace."""
        watched = {}
        for name, model in self.models.items():
            if model.external is not None:
                watched[name] = (model.external.namespace, frozenset(model.external.selector.items()))
            else:
                watched[name] = (model.namespace, frozenset(selector_labels(name, name).items()))
        counts = Counter(watched.values())
        problems = []
        for name, key in watched.items():
            if counts[key] > 1:
                others = [other for other, other_key in watched.items() if other_key == key and other != name]
                problems.append((
                    f"models.{name}",
                    f"selects the same Service as {', '.join(others)} in namespace {key[0]} (selector "
                    f"{dict(sorted(key[1]))}); each model needs its own Service: correct the selector",
                ))
        return problems


def _duration(milliseconds: int) -> str:
    """A duration as the stack file spells windows, whole days as days: ``28d`` rather than Prometheus' ``4w``."""
    day = 86_400_000
    return f"{milliseconds // day}d" if milliseconds % day == 0 else format_duration(milliseconds)


SECTIONS = tuple(info.alias or name for name, info in StackConfig.model_fields.items())
"""The stack file's top-level keys in the project's namespace."""
