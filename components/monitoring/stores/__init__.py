"""Distributed metric stores Prometheus writes to, and what each one asks of the monitoring stack.

A store is one entry of ``monitoring.remoteWrite``. ``connect_store`` declares what the store needs outside the
cluster (a cloud's workspace and the identity that may write to it; nothing for a store of your own) and returns
a ``MetricsStore``: where Prometheus sends its series and with which credentials, what Prometheus' pods need for
that identity, and who evaluates the rules whose windows outlast Prometheus' retention. ``MonitoringStack`` turns
the stores into chart values and one Secret; a program of your own may build a ``MetricsStore`` by hand for a store
the stack does not know. Cloud SDKs are imported only for the kind of store a stack uses.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pulumi

from components.monitoring.stores.config import (
    PROMETHEUS_REPLICA_LABEL,
    SendMode,
    StoreConfig,
    StoreKind,
)

if TYPE_CHECKING:
    from components.clusters import Cluster
    from components.monitors.rule_evaluators import RuleEvaluator

_CONNECTORS: Mapping[StoreKind, tuple[str, str | None]] = {
    # kind -> (module:function, the pip extra of its cloud SDK)
    "generic": ("components.monitoring.stores.generic:connect_generic_store", None),
    "amp": ("components.monitoring.stores.amp:connect_amp_store", "aws"),
    "azureMonitor": ("components.monitoring.stores.azure_monitor:connect_azure_monitor_store", "azure"),
    "gmp": ("components.monitoring.stores.gmp:connect_gmp_store", "gcp"),
}


@dataclass(frozen=True, kw_only=True)
class BasicAuth:
    username: pulumi.Input[str]
    password: pulumi.Input[str]
    """Pass a secret ``Output``."""


@dataclass(frozen=True, kw_only=True)
class AzureWorkloadIdentity:
    """An Entra ID application (a user-assigned identity's client) Prometheus' service account federates with."""

    client_id: pulumi.Input[str]
    tenant_id: pulumi.Input[str]
    cloud: str = "AzurePublic"


@dataclass(frozen=True, kw_only=True)
class RemoteWriteEndpoint:
    """Where and how Prometheus sends its series to a store (one ``remoteWrite`` entry of the Prometheus CRD)."""

    url: pulumi.Input[str]
    headers: Mapping[str, str] = field(default_factory=dict)
    """Headers sent with every request (a tenant, never a credential)."""
    basic_auth: BasicAuth | None = None
    bearer_token: pulumi.Input[str] | None = None
    """Sent as ``Authorization: Bearer``; pass a secret ``Output``."""
    ca_certificate: str | None = None
    """PEM of the CA the store's certificate is checked against; ``None``: the system's CAs."""
    server_name: str | None = None
    insecure_skip_verify: bool = False
    sigv4_region: pulumi.Input[str] | None = None
    """Sign requests with AWS SigV4 for this region, with the credentials of the pod's role (IRSA)."""
    azure_workload_identity: AzureWorkloadIdentity | None = None
    queue: Mapping[str, object] = field(default_factory=dict)
    """The CRD's ``queueConfig``; empty: Prometheus' defaults."""
    write_relabel: Sequence[Mapping[str, object]] = ()
    """The CRD's ``writeRelabelConfigs``, applied after the send filter and the replica label's mapping."""
    remote_timeout: str | None = None
    replica_label: str | None = PROMETHEUS_REPLICA_LABEL
    """The label the store deduplicates a highly available pair on (the operator's ``prometheus_replica`` is
    renamed to it); ``None``: the store cannot deduplicate, so only the first replica sends."""


@dataclass(frozen=True, kw_only=True)
class PrometheusIdentity:
    """What Prometheus' pods need to act as a cloud identity (workload identity: no static key)."""

    service_account_annotations: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    pod_labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class PrometheusBuild:
    """A Prometheus build other than the chart's, for a store that takes what Prometheus exports itself."""

    image: str
    """``registry/repository:tag``, pinned."""
    args: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    """Flags without their ``--``, as the CRD's ``additionalArgs`` take them."""
    flag_lists: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """Flags given several times (``export.match``)."""
    leader_lease: bool = False
    """Whether the replicas elect an exporter through a Lease in the monitoring namespace (needs RBAC)."""


@dataclass(frozen=True, kw_only=True)
class MetricsStore:
    """One store as the monitoring stack uses it."""

    name: str
    """The store's name: the remote-write queue's ``remote_name``, the ``slo_store`` of what it evaluates."""
    kind: StoreKind
    send: SendMode = "all"
    remote_write: RemoteWriteEndpoint | None = None
    """``None``: Prometheus exports to the store by itself (``prometheus_build``)."""
    identity: PrometheusIdentity | None = None
    prometheus_build: PrometheusBuild | None = None
    rule_evaluator: RuleEvaluator | None = None
    """Who evaluates, from the store's data, the rules whose windows outlast Prometheus' retention; ``None``: the
    store cannot."""
    query_url: str | None = None
    """The store's Prometheus query API, which Grafana gets as a data source named after the store."""
    query_headers: Mapping[str, str] = field(default_factory=dict)
    """Headers Grafana sends with its queries (the tenant)."""
    outputs: Mapping[str, pulumi.Input[object]] = field(default_factory=dict)
    """What a person needs of the store (a workspace's id, its query endpoint), as the stack exports it."""


@dataclass(frozen=True, kw_only=True)
class StoreContext:
    """What every store's connector may need from the rest of the program."""

    cluster: Cluster
    """The cluster Prometheus runs on: a cloud store's identity trusts its OIDC issuer."""
    cluster_label: pulumi.Input[str]
    """The ``cluster`` external label: a store's rules select this cluster's series by it."""
    monitoring_namespace: str
    prometheus_service_account: str
    """Name of Prometheus' service account, which a cloud identity trusts (pinned in the chart's values)."""
    discovery_labels: Mapping[str, str]
    """Labels the monitoring stack's Prometheus and Thanos Ruler select PrometheusRules by."""
    opts: pulumi.ResourceOptions | None = None
    """Options of the resources the connector declares (their parent)."""


def connect_store(name: str, config: StoreConfig, context: StoreContext) -> MetricsStore:
    """Declare what the store ``config`` needs (resources named ``<name>-…``) and return it as a ``MetricsStore``,
    importing only that kind's module (and cloud SDK)."""
    target, extra = _CONNECTORS[config.kind]
    module_name, function_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as missing:
        raise pulumi.RunError(
            f"monitoring.remoteWrite kind '{config.kind}' needs the Python package '{missing.name}', which is not "
            f"installed; install it with: .venv/bin/pip install -e '.[{extra or ''}]'"
        ) from missing
    store: MetricsStore = getattr(module, function_name)(name, config, context)
    return store
