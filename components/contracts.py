"""Names that two or more resources must agree on, defined once.

A selector label spelled twice is a selector that can silently stop matching: the Prometheus operator skips a
ServiceMonitor whose labels miss its selector without any error, a Service whose selector misses the pods has
no endpoints, and Grafana's sidecar ignores a ConfigMap without its label. Every such name lives here (or is
exported by the component that configures it, as the discovery contract is by ``MonitoringStack``) and is
derived everywhere else. This module holds constants and small frozen values only, so that anything may
import it.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import pulumi
from model_service import contract as model_contract

PROJECT = "ml-observability"
"""The Pulumi project name; also the namespace of the project's own config keys (``ml-observability:cluster``)."""
RESOURCE_PREFIX = "mlobs"
"""Prefix of the names the stack gives things outside Kubernetes (clusters, registries, cloud accounts)."""


def stack_resource_name(stack: str | None = None) -> str:
    """``mlobs-<stack>``: the name of what the stack creates at a cloud provider or on the local machine (the kind
    cluster, the EKS cluster, the resource group, the registries), unique per stack.

    >>> stack_resource_name("eks")
    'mlobs-eks'
    """
    return f"{RESOURCE_PREFIX}-{stack if stack is not None else pulumi.get_stack()}"


# Kubernetes recommended labels (https://kubernetes.io/docs/concepts/overview/working-with-objects/common-labels/).
NAME_LABEL = "app.kubernetes.io/name"
INSTANCE_LABEL = "app.kubernetes.io/instance"
VERSION_LABEL = "app.kubernetes.io/version"
COMPONENT_LABEL = "app.kubernetes.io/component"
PART_OF_LABEL = "app.kubernetes.io/part-of"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "pulumi"
"""``app.kubernetes.io/managed-by`` of every object the program declares."""
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
"""Set by Kubernetes on every namespace to its name: how a NetworkPolicy selects a namespace by name."""
POD_SECURITY_ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
POD_SECURITY_ENFORCE_VERSION_LABEL = "pod-security.kubernetes.io/enforce-version"
"""Pod Security admission's namespace labels: the level every pod of the namespace must meet, and its version."""


def selector_labels(name: str, instance: str) -> dict[str, str]:
    """The labels a Service, a PodDisruptionBudget or a NetworkPolicy selects pods by.

    Only the two labels that never change for the life of a workload: ``version`` is left out, as in
    kube-prometheus, because a selector that includes it stops matching on the first upgrade.

    >>> selector_labels("churn-model", "churn-model")
    {'app.kubernetes.io/name': 'churn-model', 'app.kubernetes.io/instance': 'churn-model'}
    """
    return {NAME_LABEL: name, INSTANCE_LABEL: instance}


def common_labels(name: str, instance: str, component: str, version: str | None = None) -> dict[str, str]:
    """Selector labels plus the descriptive ones every object of the project carries."""
    labels = selector_labels(name, instance) | {
        COMPONENT_LABEL: component,
        PART_OF_LABEL: PROJECT,
        MANAGED_BY_LABEL: MANAGED_BY,
    }
    if version is not None:
        labels[VERSION_LABEL] = version
    return labels


class Severity(enum.StrEnum):
    """The one severity vocabulary of every alert and of Alertmanager's routes.

    The same three words kube-prometheus-stack's own rules use, so that the chart's alerts and the
    project's are routed by the same tree.
    """

    CRITICAL = "critical"
    """Someone is paged now."""
    WARNING = "warning"
    """A ticket or a chat message: look during working hours."""
    INFO = "info"
    """Recorded and shown, never notified."""


SEVERITY_LABEL = "severity"
"""The alert label Alertmanager routes on."""
TEAM_LABEL = "team"
"""The alert label naming the team that owns a model: Alertmanager routes on it before the severity."""
MODEL_LABEL = "model"
"""The alert label naming the model an alert is about, as the stack names it."""

# Series across clusters ---------------------------------------------------------------------------------------
# One Prometheus per cluster writes to a store shared by many: every series it sends carries these external labels,
# every rule aggregates and joins by CLUSTER_LABEL too (absent in the cluster's own Prometheus, so nothing changes
# there), and the same rules evaluated on the store answer per cluster.

CLUSTER_LABEL = "cluster"
"""External label naming the cluster a series comes from (the kubernetes-mixin's ``clusterLabel``)."""
ENVIRONMENT_LABEL = "environment"
"""External label naming the environment (the Pulumi stack) a series comes from."""
SLO_STORE_LABEL = "slo_store"
"""Label of the SLO period recordings naming the store whose data they read: ``LOCAL_STORE`` or a store's name."""
LOCAL_STORE = "prometheus"
"""``slo_store`` of recordings the cluster's own Prometheus evaluates from its own data."""
RULE_EVALUATOR_LABEL = "ml-observability/evaluated-by"
"""Label of a PrometheusRule that a store's Thanos Ruler evaluates (its value: the store's name); Prometheus'
rule selector excludes such rules, the ruler's selects them."""


@dataclass(frozen=True, kw_only=True)
class DiscoveryContract:
    """What a ServiceMonitor, PodMonitor or PrometheusRule must carry for Prometheus to load it.

    Exported by ``MonitoringStack`` from the same values it gives the chart, and taken by ``ModelMonitors``,
    which never spells these labels itself.
    """

    labels: Mapping[str, str]
    """Labels every monitor and rule must carry (the Prometheus selectors' ``matchLabels``)."""
    namespaces: tuple[str, ...] | None = None
    """Namespaces Prometheus watches for monitors and rules; ``None`` means every namespace."""


@dataclass(frozen=True, kw_only=True)
class DashboardContract:
    """How a ConfigMap becomes a Grafana dashboard: the sidecar's label and where it searches."""

    label: str
    """Label key the Grafana dashboard sidecar watches."""
    label_value: str
    """Value of that label."""
    namespaces: tuple[str, ...] | None = None
    """Namespaces the sidecar searches; ``None`` means every namespace."""
    folder_annotation: str = "grafana_folder"
    """Annotation naming the Grafana folder a dashboard lands in."""
    extra_labels: Mapping[str, str] = field(default_factory=dict)
    """Other labels to put on the ConfigMap (none are needed for discovery)."""

    @property
    def labels(self) -> dict[str, str]:
        """The labels a dashboard ConfigMap must carry."""
        return {**self.extra_labels, self.label: self.label_value}


# The model service -----------------------------------------------------------------------------------------
# One named port serves the API, the probes and /metrics (model-service/README.md). The Deployment, the Service,
# the NetworkPolicy and the ServiceMonitor refer to it by this name, and the name and number come from the
# service's own contract module, so that none of them can drift from what the container listens on.

MODEL_HTTP_PORT_NAME: str = model_contract.PORT_NAME
"""Name of the model's container and Service port; the ServiceMonitor's ``endpoints[].port``."""
MODEL_HTTP_PORT: int = model_contract.DEFAULT_PORT
"""Number of that port, in the container (``MODEL_PORT``) and on the Service."""
MODEL_METRICS_PATH: str = model_contract.ROUTE_METRICS
"""Path Prometheus scrapes on that port."""

TRACK_LABEL = "track"
"""Pod label telling a model's stable pods from its canary's (``TRACK_STABLE``, ``TRACK_CANARY``), both behind one
Service. The ServiceMonitor copies it onto every series scraped from a pod (``podTargetLabels``), under the name
``prometheus_label_name(TRACK_LABEL)``, which the canary rules group by."""
TRACK_STABLE = "stable"
TRACK_CANARY = "canary"
TRACKS: tuple[str, str] = (TRACK_STABLE, TRACK_CANARY)


def prometheus_label_name(kubernetes_label: str) -> str:
    """The label name the Prometheus operator gives a pod label it copies onto series (``podTargetLabels``):
    every character Prometheus does not allow in a label name becomes ``_``.

    >>> prometheus_label_name("track"), prometheus_label_name("example.com/track")
    ('track', 'example_com_track')
    """
    return re.sub(r"[^a-zA-Z0-9_]", "_", kubernetes_label)


TRACK_SERIES_LABEL = prometheus_label_name(TRACK_LABEL)
"""The track as a label of every series scraped from a model's pod."""

PROMETHEUS_POD_LABELS: Mapping[str, str] = MappingProxyType({NAME_LABEL: "prometheus"})
"""Labels the Prometheus operator puts on every Prometheus pod it runs, whatever the release: what a
NetworkPolicy admits scrapes by, together with the monitoring namespace."""


GRAFANA_NODE_PORT = 30300
"""NodePort of Grafana's Service on kind; the kind cluster maps a host port (3000 by default) to it."""
