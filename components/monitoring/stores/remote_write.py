"""The Prometheus CRD's ``remoteWrite`` entries and the Secret that holds their credentials, built from the stores.

Credentials never reach the chart's values: each entry refers to keys of one Secret (``secret_data``) that the
operator reads from the monitoring namespace. Before a store's own relabel rules, every entry applies the stack's:

1. the send filter: ``recordings`` keeps only the models' recording rules (``MODEL_RECORDINGS``) but the
   per-bin shares a store can derive again (``DERIVABLE_RECORDINGS``);
2. the replica label: the operator labels each replica's series ``prometheus_replica=<pod>``, which Thanos
   deduplicates on; a store that deduplicates on another label (``__replica__`` for AMP, Mimir and Cortex) gets it
   renamed, and a store that cannot deduplicate gets the first replica's series only, without the label (the
   second replica sends nothing, so nothing is stored or billed twice).

External labels (``cluster``, ``environment``) are Prometheus-wide and added before these rules run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi

from components.monitoring.stores import MetricsStore, RemoteWriteEndpoint
from components.monitoring.stores.config import PROMETHEUS_REPLICA_LABEL
from components.monitors.model_monitors import DERIVABLE_RECORDINGS, MODEL_RECORDINGS

FIRST_REPLICA = r"prometheus-.+-0"
"""Pod name of the first replica of any Prometheus (of its first shard): ``prometheus-<name>-0``."""


def secret_keys(store: str) -> dict[str, str]:
    """Keys of one store's credentials in the remote-write Secret."""
    return {
        "username": f"{store}-username",
        "password": f"{store}-password",
        "bearer_token": f"{store}-bearer-token",
        "ca_certificate": f"{store}-ca.crt",
    }


def secret_data(stores: list[MetricsStore]) -> dict[str, pulumi.Input[str]]:
    """The remote-write Secret's ``stringData``: every store's credentials (each value a secret ``Output``)."""
    data: dict[str, pulumi.Input[str]] = {}
    for store in stores:
        endpoint = store.remote_write
        if endpoint is None:
            continue
        keys = secret_keys(store.name)
        if endpoint.basic_auth is not None:
            data[keys["username"]] = pulumi.Output.secret(endpoint.basic_auth.username)
            data[keys["password"]] = pulumi.Output.secret(endpoint.basic_auth.password)
        if endpoint.bearer_token is not None:
            data[keys["bearer_token"]] = pulumi.Output.secret(endpoint.bearer_token)
        if endpoint.ca_certificate is not None:
            data[keys["ca_certificate"]] = endpoint.ca_certificate
    return data


def stack_relabel_rules(store: MetricsStore, endpoint: RemoteWriteEndpoint, *, replicas: int) -> list[dict[str, Any]]:
    """The send filter and the replica label's mapping, which run before the store's own rules."""
    rules: list[dict[str, Any]] = []
    if store.send == "recordings":
        rules.append({"sourceLabels": ["__name__"], "regex": MODEL_RECORDINGS, "action": "keep"})
        rules.append({"sourceLabels": ["__name__"], "regex": DERIVABLE_RECORDINGS, "action": "drop"})
    target = endpoint.replica_label
    if target == PROMETHEUS_REPLICA_LABEL:
        return rules
    if target is None:
        if replicas > 1:
            rules.append({"sourceLabels": [PROMETHEUS_REPLICA_LABEL], "regex": FIRST_REPLICA, "action": "keep"})
    else:
        rules.append({"sourceLabels": [PROMETHEUS_REPLICA_LABEL], "targetLabel": target, "action": "replace"})
    rules.append({"regex": PROMETHEUS_REPLICA_LABEL, "action": "labeldrop"})
    return rules


def remote_write_entry(store: MetricsStore, *, secret_name: pulumi.Input[str], replicas: int) -> dict[str, Any]:
    """One entry of the Prometheus (or ThanosRuler) CRD's ``remoteWrite`` for ``store``."""
    endpoint = store.remote_write
    if endpoint is None:
        raise ValueError(f"store {store.name!r} takes no remote write")
    keys = secret_keys(store.name)

    def ref(key: str) -> dict[str, pulumi.Input[str]]:
        return {"name": secret_name, "key": keys[key]}

    entry: dict[str, Any] = {"name": store.name, "url": endpoint.url}
    if endpoint.headers:
        entry["headers"] = dict(endpoint.headers)
    if endpoint.basic_auth is not None:
        entry["basicAuth"] = {"username": ref("username"), "password": ref("password")}
    if endpoint.bearer_token is not None:
        entry["authorization"] = {"type": "Bearer", "credentials": ref("bearer_token")}
    if endpoint.sigv4_region is not None:
        entry["sigv4"] = {"region": endpoint.sigv4_region}
    if endpoint.azure_workload_identity is not None:
        identity = endpoint.azure_workload_identity
        entry["azureAd"] = {
            "cloud": identity.cloud,
            "workloadIdentity": {"clientId": identity.client_id, "tenantId": identity.tenant_id},
        }
    tls: dict[str, Any] = {}
    if endpoint.ca_certificate is not None:
        tls["ca"] = {"secret": ref("ca_certificate")}
    if endpoint.server_name is not None:
        tls["serverName"] = endpoint.server_name
    if endpoint.insecure_skip_verify:
        tls["insecureSkipVerify"] = True
    if tls:
        entry["tlsConfig"] = tls
    if endpoint.queue:
        entry["queueConfig"] = dict(endpoint.queue)
    if endpoint.remote_timeout is not None:
        entry["remoteTimeout"] = endpoint.remote_timeout
    relabel = [*stack_relabel_rules(store, endpoint, replicas=replicas), *(dict(r) for r in endpoint.write_relabel)]
    if relabel:
        entry["writeRelabelConfigs"] = relabel
    return entry


def remote_write_entries(
    stores: list[MetricsStore], *, secret_name: pulumi.Input[str], replicas: int
) -> list[dict[str, Any]]:
    """Every store's entry, in the configured order (stores that take no remote write are left out)."""
    return [remote_write_entry(s, secret_name=secret_name, replicas=replicas) for s in stores if s.remote_write]


def grafana_data_sources(stores: list[MetricsStore]) -> list[dict[str, Any]]:
    """A Grafana data source per store with a query API, named after the store (the dashboard's data source
    variable then offers it)."""
    sources = []
    for store in stores:
        if store.query_url is None:
            continue
        source: dict[str, Any] = {"name": store.name, "type": "prometheus", "access": "proxy",
                                  "url": store.query_url, "editable": False}
        headers: Mapping[str, str] = store.query_headers
        if headers:
            source["jsonData"] = {f"httpHeaderName{i}": name for i, name in enumerate(headers, start=1)}
            source["secureJsonData"] = {f"httpHeaderValue{i}": value
                                        for i, value in enumerate(headers.values(), start=1)}
        sources.append(source)
    return sources
