"""Azure Monitor managed service for Prometheus from AKS: an Azure Monitor workspace, and a workload identity.

Azure recommends remote write configured in Prometheus itself (azure-monitor/metrics/prometheus-remote-write) to
the workspace's data collection rule, as an identity granted Monitoring Metrics Publisher on that rule. The
identity here is a user-assigned one that Prometheus' service account federates with through the cluster's OIDC
issuer (workload identity), which Prometheus 3.7 and later speak directly (``azureAd.workloadIdentity``; 3.14 reads
the token where the webhook projects it, ``AZURE_FEDERATED_TOKEN_FILE``): no secret, no sidecar, and no identity
on the nodes that every pod could use (the managed-identity path's drawback).

Azure documents no deduplication of a highly available pair, so only the first Prometheus replica sends
(``components/monitoring/stores/remote_write.py``). When Prometheus keeps less than an SLO period, the workspace
evaluates the period's rules: each rule group becomes a Prometheus rule group of the workspace, scoped to this
cluster.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_azure_native as azure

from components.clusters.aks import AksCluster
from components.contracts import stack_resource_name
from components.monitoring.stores import (
    AzureWorkloadIdentity,
    MetricsStore,
    PrometheusIdentity,
    RemoteWriteEndpoint,
    StoreContext,
)
from components.monitoring.stores.config import AzureMonitorStoreConfig
from components.monitors.rule_model import RecordingRule, RuleGroup

MONITORING_METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"
"""Built-in Azure role "Monitoring Metrics Publisher" (the same id in every tenant)."""
CLIENT_ID_ANNOTATION = "azure.workload.identity/client-id"
USE_LABEL = "azure.workload.identity/use"
"""The service-account annotation and pod label AKS's workload identity webhook acts on."""
TOKEN_AUDIENCE = "api://AzureADTokenExchange"
INGESTION_API_VERSION = "2023-04-24"
RULE_INTERVAL = "PT1M"
"""Evaluation interval of the workspace's rule groups (Azure's shortest)."""
_RESOURCE_ID = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/(?P<group>[^/]+)/providers/[^/]+/[^/]+/(?P<name>[^/]+)$"
)


def parse_resource_id(resource_id: str) -> tuple[str, str]:
    """``(resource group, name)`` of an Azure resource id.

    >>> parse_resource_id("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Insights/dataCollectionRules/dcr")
    ('rg', 'dcr')
    """
    match = _RESOURCE_ID.match(resource_id)
    if match is None:
        raise pulumi.RunError(f"not an Azure resource id: {resource_id!r}")
    return match["group"], match["name"]


def ingestion_url(endpoint: str, rule_immutable_id: str) -> str:
    """The remote-write URL of a data collection rule behind its endpoint (Azure's remote-write documentation).

    >>> ingestion_url("https://dce.westeurope-1.metrics.ingest.monitor.azure.com", "dcr-0123")
    'https://dce.westeurope-1.metrics.ingest.monitor.azure.com/dataCollectionRules/dcr-0123/streams/Microsoft-PrometheusMetrics/api/v1/write?api-version=2023-04-24'
    """
    return (f"{endpoint.rstrip('/')}/dataCollectionRules/{rule_immutable_id}/streams/Microsoft-PrometheusMetrics"
            f"/api/v1/write?api-version={INGESTION_API_VERSION}")


@dataclass(frozen=True, kw_only=True)
class AzureMonitorRules:
    """Rule groups the workspace evaluates for this cluster: one Prometheus rule group each."""

    store: str
    cluster_label: pulumi.Input[str]
    workspace_id: pulumi.Input[str]
    resource_group_name: pulumi.Input[str]
    location: str
    provider: azure.Provider

    def declare(
        self,
        name: str,
        *,
        groups: pulumi.Output[Sequence[RuleGroup]],
        namespace: pulumi.Input[str],
        labels: Mapping[str, str],
        parent: pulumi.Resource,
    ) -> pulumi.Resource:
        # One resource for a model's period groups: their rules in evaluation order, in one group.
        rules: pulumi.Resource = azure.alertsmanagement.PrometheusRuleGroup(
            name,
            rule_group_name=f"{stack_resource_name()}-{name}",
            resource_group_name=self.resource_group_name,
            location=self.location,
            scopes=[self.workspace_id],
            cluster_name=self.cluster_label,
            interval=RULE_INTERVAL,
            rules=groups.apply(_recording_rules),
            opts=pulumi.ResourceOptions(parent=parent, provider=self.provider),
        )
        return rules


def _recording_rules(groups: Sequence[RuleGroup]) -> list[dict[str, Any]]:
    rules = []
    for group in groups:
        for rule in group.rules:
            if not isinstance(rule, RecordingRule):
                raise ValueError(f"{group.name}: the workspace evaluates recordings only here, got an alert")
            rules.append({"record": rule.record, "expression": rule.expr, "labels": dict(rule.labels)})
    return rules


class AzureMonitorStore(pulumi.ComponentResource):
    """An Azure Monitor workspace (unless one is given) and the identity Prometheus writes to it as.

    Children: ``<name>-workspace``, ``<name>-identity`` with its ``<name>-federation`` to Prometheus' service
    account, and ``<name>-publisher`` (Monitoring Metrics Publisher on the workspace's data collection rule).
    """

    TYPE = "mlobs:stores:AzureMonitorStore"

    store: MetricsStore
    workspace_id: pulumi.Output[str]
    client_id: pulumi.Output[str]

    def __init__(self, name: str, config: AzureMonitorStoreConfig, context: StoreContext,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(self.TYPE, name, None, opts)
        cluster = context.cluster
        if not isinstance(cluster, AksCluster):
            raise pulumi.RunError(f"an azureMonitor store needs an AKS cluster (got a {cluster.kind} cluster)")
        on_azure = pulumi.ResourceOptions(parent=self, provider=cluster.azure_provider)
        invoke = pulumi.InvokeOutputOptions(parent=self, provider=cluster.azure_provider)

        if config.workspace_id is None:
            workspace = azure.monitor.AzureMonitorWorkspace(
                f"{name}-workspace",
                azure_monitor_workspace_name=stack_resource_name(),
                resource_group_name=cluster.resource_group_name,
                location=cluster.location,
                opts=on_azure,
            )
            workspace_id, settings = workspace.id, workspace.default_ingestion_settings
            query_endpoint = workspace.metrics.apply(lambda m: m.prometheus_query_endpoint)
        else:
            group, workspace_name = parse_resource_id(config.workspace_id)
            existing = azure.monitor.get_azure_monitor_workspace_output(
                resource_group_name=group, azure_monitor_workspace_name=workspace_name, opts=invoke
            )
            workspace_id = pulumi.Output.from_input(config.workspace_id)
            settings = existing.default_ingestion_settings
            query_endpoint = existing.metrics.apply(lambda m: m.prometheus_query_endpoint)
        rule_id = settings.apply(lambda s: s.data_collection_rule_resource_id)
        endpoint_id = settings.apply(lambda s: s.data_collection_endpoint_resource_id)
        rule = azure.monitor.get_data_collection_rule_output(
            resource_group_name=rule_id.apply(lambda i: parse_resource_id(i)[0]),
            data_collection_rule_name=rule_id.apply(lambda i: parse_resource_id(i)[1]),
            opts=invoke,
        )
        endpoint = azure.monitor.get_data_collection_endpoint_output(
            resource_group_name=endpoint_id.apply(lambda i: parse_resource_id(i)[0]),
            data_collection_endpoint_name=endpoint_id.apply(lambda i: parse_resource_id(i)[1]),
            opts=invoke,
        )
        url = pulumi.Output.all(endpoint.metrics_ingestion, rule.immutable_id).apply(
            lambda values: ingestion_url(_endpoint_of(values[0]), values[1])
        )

        identity = azure.managedidentity.UserAssignedIdentity(
            f"{name}-identity",
            resource_name_=f"{stack_resource_name()}-prometheus",
            resource_group_name=cluster.resource_group_name,
            location=cluster.location,
            opts=on_azure,
        )
        azure.managedidentity.FederatedIdentityCredential(
            f"{name}-federation",
            resource_name_=identity.name,
            resource_group_name=cluster.resource_group_name,
            federated_identity_credential_resource_name="prometheus",
            issuer=cluster.oidc_issuer_url,
            subject=f"system:serviceaccount:{context.monitoring_namespace}:{context.prometheus_service_account}",
            audiences=[TOKEN_AUDIENCE],
            opts=on_azure,
        )
        client = azure.authorization.get_client_config_output(opts=invoke)
        azure.authorization.RoleAssignment(
            f"{name}-publisher",
            principal_id=identity.principal_id,
            principal_type="ServicePrincipal",
            role_definition_id=client.subscription_id.apply(
                lambda subscription: (f"/subscriptions/{subscription}/providers/Microsoft.Authorization/"
                                      f"roleDefinitions/{MONITORING_METRICS_PUBLISHER}")
            ),
            scope=rule_id,
            opts=on_azure,
        )

        self.workspace_id = workspace_id
        self.client_id = identity.client_id
        self.store = MetricsStore(
            name=config.name,
            kind="azureMonitor",
            send=config.send,
            remote_write=RemoteWriteEndpoint(
                url=url,
                azure_workload_identity=AzureWorkloadIdentity(client_id=identity.client_id,
                                                              tenant_id=identity.tenant_id),
                queue=config.queue.as_spec(),
                write_relabel=[r.as_spec() for r in config.write_relabel],
                remote_timeout=config.remote_timeout,
                replica_label=None,  # no documented deduplication: the first replica sends
            ),
            identity=PrometheusIdentity(
                service_account_annotations={CLIENT_ID_ANNOTATION: identity.client_id},
                pod_labels={USE_LABEL: "true"},
            ),
            rule_evaluator=AzureMonitorRules(
                store=config.name, cluster_label=context.cluster_label, workspace_id=workspace_id,
                resource_group_name=cluster.resource_group_name, location=cluster.location,
                provider=cluster.azure_provider,
            ),
            outputs={"workspaceId": workspace_id, "queryEndpoint": query_endpoint, "clientId": identity.client_id},
        )
        self.register_outputs({"workspaceId": workspace_id, "clientId": identity.client_id})


def _endpoint_of(metrics_ingestion: Any) -> str:
    value = (metrics_ingestion.get("endpoint") if isinstance(metrics_ingestion, dict)
             else getattr(metrics_ingestion, "endpoint", None))
    if not value:
        raise pulumi.RunError("the workspace's data collection endpoint reports no metrics ingestion endpoint")
    return str(value)


def connect_azure_monitor_store(name: str, config: AzureMonitorStoreConfig, context: StoreContext) -> MetricsStore:
    return AzureMonitorStore(name, config, context, context.opts).store
