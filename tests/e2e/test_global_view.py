"""A global view through a real Thanos: two clusters (one an HA pair) write to Thanos Receive with the program's
remote write values; Thanos Query answers per cluster and in total, deduplicates the pair, loses nothing while the
Receive is down, and the pair's alerts reach a receiver once through three clustered Alertmanagers.

The servers are those of ``global_view`` (one set per module); the scenarios run in order.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from model_service import contract

from components.contracts import CLUSTER_LABEL, ENVIRONMENT_LABEL
from components.monitoring.alertmanager import Receiver, receiver_name
from components.monitoring.stores.config import PROMETHEUS_REPLICA_LABEL
from components.monitors.drift_rules import (
    FEATURE_DRIFT_ALERT,
    PSI_SHORT_WINDOW,
    observations_by_bin,
    psi_across_clusters,
)
from components.monitors.model_monitors import MODEL_RECORDINGS
from components.monitors.rule_model import WINDOW_LABEL, parse_duration
from tests.e2e.conftest import TIMINGS
from tests.e2e.drift_math import psi_of, reference_shares
from tests.e2e.global_view import (
    ALERTMANAGER_PEER_TIMEOUT,
    OPERATOR_PROMETHEUS_LABEL,
    QUERY_LAG,
    TENANT,
    TRAFFIC,
    ClusterServers,
    GlobalView,
    running_global_view,
)
from tests.processes import poll
from tests.prometheus_api import PrometheusApi
from tests.traffic import drifted

pytestmark = pytest.mark.e2e

STORE_LABELS = frozenset({CLUSTER_LABEL, ENVIRONMENT_LABEL, OPERATOR_PROMETHEUS_LABEL, PROMETHEUS_REPLICA_LABEL,
                          "receive", "tenant_id"})
"""Labels a series gains on its way to the store: Prometheus' external labels and the Receive's own."""
RECEIVE_DOWN_SECONDS = 30.0
DRIFTED_CLUSTER = "east"
"""The HA pair: both replicas fire the same alert, which must page once."""


@pytest.fixture(scope="module")
def view(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GlobalView]:
    started = time.monotonic()
    with running_global_view(tmp_path_factory.mktemp("global-view")) as servers:
        TIMINGS["global view: servers started (s)"] = time.monotonic() - started
        yield servers
    TIMINGS["global view: scenarios, servers included (s)"] = time.monotonic() - started


def instances(view: GlobalView) -> Iterator[tuple[ClusterServers, int, PrometheusApi]]:
    """Every Prometheus of every cluster, with its replica's ordinal."""
    for servers in view.clusters.values():
        for ordinal, api in enumerate(servers.apis):
            yield servers, ordinal, api


def store_selector(servers: ClusterServers, ordinal: int | None = None, *, of_job: bool = True) -> str:
    """Matchers of one cluster's series in the store (of one replica's, raw, when ``ordinal`` is given); the
    scrape job's only with ``of_job`` (the SLO recordings do not keep it)."""
    matchers = {"job": servers.job} if of_job else {}
    matchers[CLUSTER_LABEL] = servers.declared.name
    if ordinal is not None:
        matchers[PROMETHEUS_REPLICA_LABEL] = servers.declared.replica_pod(ordinal)
    return ", ".join(f'{k}="{v}"' for k, v in matchers.items())


def by_labels(result: list[dict[str, Any]]) -> dict[frozenset[tuple[str, str]], str]:
    """A vector keyed by its labels without the store's own, with values as the API wrote them."""
    return {frozenset((k, v) for k, v in r["metric"].items() if k not in STORE_LABELS): r["value"][1]
            for r in result}


def test_every_model_series_arrives_and_the_pair_deduplicates_to_one(view: GlobalView) -> None:
    at = time.time() - QUERY_LAG
    for servers in view.clusters.values():
        # Every series of the cluster: a pair's replicas may each hold one the other does not have yet (a
        # recording whose inputs it has not seen), so the cluster's series are the union of its replicas'.
        local: set[frozenset[tuple[str, str]]] = set()
        for api in servers.apis:
            local |= set(by_labels(api.query(f'{{job="{servers.job}"}}', at)))
        names = {dict(labels)["__name__"] for labels in local}
        assert {contract.DRIFT_BIN_OBSERVATIONS.name, "up"} <= names, sorted(names)

        def stored(s: ClusterServers = servers) -> set[frozenset[tuple[str, str]]]:
            return set(by_labels(view.query.query(f"{{{store_selector(s)}}}", at)))

        poll(f"{servers.declared.name}'s series in Thanos", lambda local=local, stored=stored: stored() == local,
             timeout=60, interval=1.0, diagnose=lambda local=local, stored=stored: (
                 f"only local: {sorted(map(sorted, local - stored()))[:5]}\n"
                 f"only stored: {sorted(map(sorted, stored() - local))[:5]}"))
        replicas = servers.declared.replicas
        assert replicas == (2 if servers.declared.name == "east" else 1)
        raw = view.raw_query.value(f"count(up{{{store_selector(servers)}}})", at)
        assert raw == replicas, f"{servers.declared.name}: {raw} raw series of up, expected one per replica"
        [series] = view.query.query(f"up{{{store_selector(servers)}}}", at)
        assert series["metric"][ENVIRONMENT_LABEL] == "local", series
        assert series["metric"]["tenant_id"] == TENANT, "the tenant header did not reach the Receive"
        assert PROMETHEUS_REPLICA_LABEL not in series["metric"], "Query did not deduplicate on the replica label"
        TIMINGS[f"global view: series of {servers.declared.name}"] = float(len(local))


def test_recordings_read_through_thanos_equal_what_each_prometheus_computes(view: GlobalView) -> None:
    at = time.time() - QUERY_LAG
    for servers, ordinal, api in instances(view):
        local = by_labels(api.query(f'{{__name__=~"{MODEL_RECORDINGS}"}}', at))
        recorded = {dict(k)["__name__"] for k in local}
        assert any(n.startswith("model_feature:drift_psi") for n in recorded), sorted(recorded)
        assert any(n.startswith("slo:") for n in recorded), sorted(recorded)
        stored_selector = f'__name__=~"{MODEL_RECORDINGS}", {store_selector(servers, ordinal, of_job=False)}'

        def stored(selector: str = stored_selector) -> dict[frozenset[tuple[str, str]], str]:
            return by_labels(view.raw_query.query(f"{{{selector}}}", at))

        poll(f"{servers.declared.name}-{ordinal}'s recordings in Thanos", lambda local=local, stored=stored:
             stored() == local, timeout=60, interval=1.0,
             diagnose=lambda local=local, stored=stored: f"only local: {sorted(set(local) - set(stored()))[:5]}\n"
             f"only stored: {sorted(set(stored()) - set(local))[:5]}\n"
             f"differ: {[k for k in set(local) & set(stored()) if local[k] != stored()[k]][:5]}")
        TIMINGS[f"global view: recordings compared ({servers.declared.name}-{ordinal})"] = float(len(local))


def test_while_the_receive_is_down_a_drift_pages_once_and_no_sample_is_lost(view: GlobalView) -> None:
    """Alerting does not go through the store: with the Receive down for 30 s, a drift in the HA pair fires in
    both replicas and pages once through the three clustered Alertmanagers; once the Receive is back, every
    Prometheus has resent from its WAL what it could not send, and the store has no gap."""
    east = view.clusters[DRIFTED_CLUSTER]
    since = time.time()
    onset = east.traffic.onset(view.set_traffic(DRIFTED_CLUSTER, drifted("f6", 3.0)))
    stopped, started = view.restart_receive(RECEIVE_DOWN_SECONDS)
    webhook = receiver_name(Receiver.WEBHOOK)
    first = view.receiver.wait_for(webhook, FEATURE_DRIFT_ALERT, "firing", since=since, timeout=300)
    TIMINGS["global view: drift start to the first notification (s)"] = first.received_at - onset
    # Both replicas fire it and every Alertmanager holds it, without the replica label: one alert.
    for ordinal, api in enumerate(east.apis):
        assert any(a["labels"]["alertname"] == FEATURE_DRIFT_ALERT and a["state"] == "firing"
                   for a in api.alerts()), f"east-{ordinal} does not fire {FEATURE_DRIFT_ALERT}"
    for index, am in enumerate(view.alertmanagers):
        held = [a["labels"] for a in am.alerts() if a["labels"].get("alertname") == FEATURE_DRIFT_ALERT]
        assert held and all(PROMETHEUS_REPLICA_LABEL not in labels and labels[CLUSTER_LABEL] == DRIFTED_CLUSTER
                            for labels in held), f"alertmanager-{index}: {held}"

    start, end = stopped - 5, started + 5
    poll("the span after the restart is over", lambda: time.time() > end + 1, timeout=30, interval=0.2)
    for servers, ordinal, api in instances(view):
        [local] = api.samples(f'up{{job="{servers.job}"}}', start, end).values()
        interval = parse_duration(servers.declared.service_monitor["spec"]["endpoints"][0]["interval"]) / 1000
        assert len(local) >= (end - start) / interval * 0.8, f"Prometheus itself scraped only {len(local)} times"

        def stored(s: ClusterServers = servers, o: int = ordinal) -> list[float]:
            found = view.raw_query.samples(f"up{{{store_selector(s, o)}}}", start, end)
            return next(iter(found.values()), [])

        poll(f"{servers.declared.name}-{ordinal}'s samples of the outage in Thanos", lambda local=local,
             stored=stored: stored() == local, timeout=120, interval=1.0,
             diagnose=lambda local=local, stored=stored: f"{len(local)} local, {len(stored())} stored; "
             f"missing {sorted(set(local) - set(stored()))[:10]}")
        gaps = np.diff(stored())
        assert gaps.max() < 2 * interval, f"largest gap {gaps.max():.2f}s at a {interval}s scrape interval"
        assert api.own_metric("prometheus_remote_storage_samples_retried_total") > 0, (
            "the Receive was down but Prometheus never retried")
        assert api.own_metric("prometheus_remote_storage_samples_failed_total") == 0, "samples were dropped"
    TIMINGS["global view: samples of up per Prometheus across the outage"] = float(len(local))

    # Every peer's turn (its position times the peer timeout) has passed: none sent what another had sent.
    peer_timeout = float(ALERTMANAGER_PEER_TIMEOUT.removesuffix("s"))
    settled = first.received_at + len(view.alertmanagers) * peer_timeout + 2
    poll("every Alertmanager's turn to notify is over", lambda: time.time() > settled, timeout=60, interval=0.2)
    # The webhook's payload carries every alert's labels: a notification whose alerts another already carried is
    # a duplicate (a group that grows, the JS distance joining PSI, is a new notification, not a duplicate).
    sent: dict[tuple[str, frozenset[frozenset[tuple[str, str]]]], int] = {}
    for notification in view.receiver.notifications(webhook, alert=FEATURE_DRIFT_ALERT, since=since):
        key = (notification.status, frozenset(frozenset(a.labels.items()) for a in notification.alerts))
        sent[key] = sent.get(key, 0) + 1
    assert sent and all(count == 1 for count in sent.values()), view.receiver.describe(since)
    assert view.receiver.errors == []


def test_the_fleets_psi_over_both_clusters_is_numpys_on_the_combined_counts(view: GlobalView) -> None:
    """PSI over the clusters' summed bins (``psi_across_clusters``), in Thanos: the clusters' traffic differs."""
    east = view.clusters[DRIFTED_CLUSTER]
    [short] = {s["metric"][WINDOW_LABEL] for s in view.query.query(PSI_SHORT_WINDOW)}
    reference = reference_shares(view.workdir / "model")
    job = east.job
    at = time.time() - QUERY_LAG
    counts_query = f'sum by ({CLUSTER_LABEL}, feature, bin) ({observations_by_bin(short)}{{job="{job}"}})'

    def both_clusters() -> bool:
        return {s["metric"][CLUSTER_LABEL] for s in view.query.query(counts_query, at)} == set(view.clusters)

    poll("both clusters' counts in Thanos", both_clusters, timeout=60, interval=1.0)
    counts: dict[str, dict[str, dict[str, float]]] = {}
    for series in view.query.query(counts_query, at):
        labels = series["metric"]
        counts.setdefault(labels["feature"], {}).setdefault(labels[CLUSTER_LABEL], {})[labels["bin"]] = float(
            series["value"][1])
    west_local = {(s["metric"]["feature"], s["metric"]["bin"]): float(s["value"][1]) for s in
                  view.clusters["west"].apis[0].query(f"{observations_by_bin(short)}{{job=\"{job}\"}}", at)}
    assert {(f, b): v for f, by_cluster in counts.items() for b, v in by_cluster["west"].items()} == west_local
    global_psi = {s["metric"]["feature"]: float(s["value"][1])
                  for s in view.query.query(psi_across_clusters(short, job=job), at)}
    assert set(global_psi) == set(reference), sorted(global_psi)
    for feature, bins in reference.items():
        names = sorted(bins)
        combined = sum(np.array([counts[feature][c].get(b, 0.0) for b in names]) for c in view.clusters)
        expected = psi_of(combined, np.array([bins[b] for b in names]))
        assert global_psi[feature] == pytest.approx(expected, rel=1e-9, abs=1e-12), feature
    assert TRAFFIC["east"].rate != TRAFFIC["west"].rate
    TIMINGS["global view: PSI of f6 over both clusters"] = global_psi["f6"]
    view.set_traffic(DRIFTED_CLUSTER, TRAFFIC[DRIFTED_CLUSTER])
