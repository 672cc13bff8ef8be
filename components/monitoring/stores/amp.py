"""Amazon Managed Service for Prometheus from EKS: a workspace, and an IAM role for Prometheus' service account.

AWS documents remote write from a self-managed Prometheus with SigV4 signing and IAM roles for service accounts
(AMP-onboard-ingest-metrics-existing-Prometheus): Prometheus signs with the role its service account assumes
through the cluster's OIDC provider, so no key is stored anywhere. The role may do one thing, ``aps:RemoteWrite``,
on one workspace. ``sigv4.roleArn`` stays unset: it is for assuming a second role (another account's), and
naming the service account's own role there fails with "not authorized to perform: sts:AssumeRole".

AMP deduplicates a highly available pair on ``cluster`` and ``__replica__`` (AMP-ingest-dedupe), keeping the first
and dropping the replica label. When Prometheus keeps less than an SLO period, the workspace evaluates the
period's rules itself: each model's groups become a rule groups namespace of the workspace.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.clusters.eks import EksCluster, service_account_trust
from components.contracts import stack_resource_name
from components.monitoring.stores import MetricsStore, PrometheusIdentity, RemoteWriteEndpoint, StoreContext
from components.monitoring.stores.config import HA_TRACKER_REPLICA_LABEL, AmpStoreConfig
from components.monitors.rule_model import RuleGroup, dump_yaml, to_spec

ROLE_ARN_ANNOTATION = "eks.amazonaws.com/role-arn"
"""The service-account annotation EKS's pod identity webhook reads to give a pod a role's credentials (IRSA)."""
_WORKSPACE_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):aps:(?P<region>[a-z0-9-]+):[0-9]{12}:workspace/(?P<id>ws-.+)$"
)


def remote_write_url(region: str, workspace_id: str) -> str:
    """The workspace's remote-write endpoint (AMP API reference, "RemoteWrite").

    >>> remote_write_url("eu-west-1", "ws-0123")
    'https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-0123/api/v1/remote_write'
    """
    return f"https://aps-workspaces.{region}.amazonaws.com/workspaces/{workspace_id}/api/v1/remote_write"


@dataclass(frozen=True, kw_only=True)
class AmpRules:
    """Rule groups the workspace evaluates: one rule groups namespace per model."""

    store: str
    cluster_label: pulumi.Input[str]
    workspace_id: pulumi.Input[str]
    region: str
    """The workspace's region (another than the cluster's, for a workspace given by ARN)."""
    provider: aws.Provider

    def declare(
        self,
        name: str,
        *,
        groups: pulumi.Output[Sequence[RuleGroup]],
        namespace: pulumi.Input[str],
        labels: Mapping[str, str],
        parent: pulumi.Resource,
    ) -> pulumi.Resource:
        rules: pulumi.Resource = aws.amp.RuleGroupNamespace(
            name,
            # Unique within the workspace, which several clusters' stacks may share.
            name=f"{stack_resource_name()}-{name}",
            workspace_id=self.workspace_id,
            region=self.region,
            data=groups.apply(lambda gs: dump_yaml(to_spec(gs))),
            opts=pulumi.ResourceOptions(parent=parent, provider=self.provider),
        )
        return rules


class AmpStore(pulumi.ComponentResource):
    """A workspace (unless one is given by ARN) and the role Prometheus writes to it as.

    Children: ``<name>-workspace``, ``<name>-role`` (trusting only Prometheus' service account through the
    cluster's OIDC provider) and ``<name>-remote-write`` (its only permission).
    """

    TYPE = "mlobs:stores:AmpStore"

    store: MetricsStore
    """The store as the monitoring stack uses it."""
    workspace_arn: pulumi.Output[str]
    role_arn: pulumi.Output[str]

    def __init__(self, name: str, config: AmpStoreConfig, context: StoreContext,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(self.TYPE, name, None, opts)
        cluster = context.cluster
        if not isinstance(cluster, EksCluster):
            raise pulumi.RunError(f"an amp store needs an EKS cluster (got a {cluster.kind} cluster)")
        on_aws = pulumi.ResourceOptions(parent=self, provider=cluster.aws_provider)

        if config.workspace_arn is None:
            workspace = aws.amp.Workspace(
                f"{name}-workspace", alias=stack_resource_name(), tags={"ml-observability/store": config.name},
                opts=on_aws,
            )
            workspace_arn, workspace_id, region = workspace.arn, workspace.id, cluster.region
            url: pulumi.Input[str] = workspace.id.apply(lambda ws: remote_write_url(cluster.region, ws))
        else:
            match = _WORKSPACE_ARN.match(config.workspace_arn)
            assert match is not None  # guaranteed by the config's pattern
            workspace_arn = pulumi.Output.from_input(config.workspace_arn)
            workspace_id, region = match["id"], match["region"]
            url = remote_write_url(region, match["id"])

        subject = f"system:serviceaccount:{context.monitoring_namespace}:{context.prometheus_service_account}"
        role = aws.iam.Role(
            f"{name}-role",
            description=f"Prometheus of {stack_resource_name()} writing to AMP",
            assume_role_policy=service_account_trust(cluster.oidc_provider_arn, cluster.oidc_issuer, subject),
            opts=on_aws,
        )
        aws.iam.RolePolicy(
            f"{name}-remote-write",
            role=role.name,
            policy=workspace_arn.apply(
                lambda arn: json.dumps({
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": ["aps:RemoteWrite"], "Resource": arn}],
                })
            ),
            opts=on_aws,
        )

        self.workspace_arn = workspace_arn
        self.role_arn = role.arn
        self.store = MetricsStore(
            name=config.name,
            kind="amp",
            send=config.send,
            remote_write=RemoteWriteEndpoint(
                url=url,
                sigv4_region=region,
                queue=config.queue.as_spec(),
                write_relabel=[rule.as_spec() for rule in config.write_relabel],
                remote_timeout=config.remote_timeout,
                replica_label=HA_TRACKER_REPLICA_LABEL,
            ),
            identity=PrometheusIdentity(service_account_annotations={ROLE_ARN_ANNOTATION: role.arn}),
            rule_evaluator=AmpRules(store=config.name, cluster_label=context.cluster_label,
                                    workspace_id=workspace_id, region=region, provider=cluster.aws_provider),
            outputs={"workspaceArn": workspace_arn, "roleArn": role.arn, "remoteWriteUrl": url},
        )
        self.register_outputs({"workspaceArn": workspace_arn, "roleArn": role.arn})


def connect_amp_store(name: str, config: AmpStoreConfig, context: StoreContext) -> MetricsStore:
    return AmpStore(name, config, context, context.opts).store
