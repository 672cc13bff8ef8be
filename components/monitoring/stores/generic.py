"""A store of your own (Thanos Receive, Mimir, Cortex, VictoriaMetrics): nothing to declare, only an endpoint."""

from __future__ import annotations

import pulumi

from components.monitoring.stores import BasicAuth, MetricsStore, RemoteWriteEndpoint, StoreContext
from components.monitoring.stores.config import GenericStoreConfig
from components.monitoring.stores.thanos_ruler import ThanosRulerRules


def connect_generic_store(name: str, config: GenericStoreConfig, context: StoreContext) -> MetricsStore:
    """The store as configured; with a ``queryUrl``, the stack's Thanos Ruler evaluates its period rules."""
    tenant = {config.tenant_header: config.tenant} if config.tenant is not None else {}
    auth = config.basic_auth
    endpoint = RemoteWriteEndpoint(
        url=config.url,
        headers={**config.headers, **tenant},
        basic_auth=(
            BasicAuth(username=auth.username, password=pulumi.Output.secret(auth.password.get_secret_value()))
            if auth is not None else None
        ),
        bearer_token=(
            pulumi.Output.secret(config.bearer_token.get_secret_value()) if config.bearer_token is not None else None
        ),
        ca_certificate=config.tls.ca_certificate,
        server_name=config.tls.server_name,
        insecure_skip_verify=config.tls.insecure_skip_verify,
        queue=config.queue.as_spec(),
        write_relabel=[rule.as_spec() for rule in config.write_relabel],
        remote_timeout=config.remote_timeout,
        replica_label=config.replica_label,
    )
    evaluator = (
        ThanosRulerRules(store=config.name, cluster_label=context.cluster_label, query_url=config.query_url)
        if config.query_url is not None else None
    )
    return MetricsStore(
        name=config.name,
        kind="generic",
        send=config.send,
        remote_write=endpoint,
        rule_evaluator=evaluator,
        query_url=config.query_url,
        query_headers=tenant,
    )
