"""Two clusters writing to a real Thanos, configured from the program's remote write values.

The program runs under mocks once per cluster, with the ``local`` stack, a ``generic`` remote write target (a
Thanos Receive on 127.0.0.1, with a tenant) and the cluster's own ``cluster`` external label; ``east`` asks for
high availability. From each run's Helm values (``prometheus.prometheusSpec``) come what the Prometheus Operator
would configure: the replicas, the external labels, the remote write entries, which ``remote_write_config``
translates into Prometheus' own configuration as the operator does, and the labels the operator adds itself
(``prometheus`` and ``prometheus_replica``, the latter dropped from alerts so that both replicas' alerts are one).

Each cluster runs its own sample service with its own traffic; each Prometheus scrapes it with the labels the
operator gives a model target and evaluates the model's PrometheusRule. Both ``east`` replicas send their
alerts to three Alertmanagers clustered on loopback, configured with ``render_alertmanager_config`` and every
receiver pointed at the recording server. Thanos Query reads the Receive, deduplicating on
``prometheus_replica`` as the stack's documentation tells a Thanos user to.

Every server listens on 127.0.0.1, in its own process group; ``close`` stops them all and checks every port free.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from model_service import contract
from model_service.loadgen import LoadConfig
from model_service.serve import free_port

from components.contracts import CLUSTER_LABEL
from components.monitoring.alertmanager import (
    configured_receivers,
    receiver_name,
    receiver_secrets,
    render_alertmanager_config,
)
from components.monitoring.stores.config import PROMETHEUS_REPLICA_LABEL
from components.monitoring.values import ChartNames
from components.monitors.rule_model import TimeScale
from tests.chart_render import monitoring_release, release_values
from tests.e2e.receiver import RecordingReceiver, recording_receiver
from tests.e2e.stack import (
    DEFAULT_TIME_SCALE,
    PROMETHEUS_FOR_GRACE_PERIOD,
    PROMETHEUS_OUTAGE_TOLERANCE,
    alerting_config,
    model_target_labels,
    require_server,
    suite_monitors,
    train_artifact,
)
from tests.harness import STACKS_DIR, ProgramRun, run_program
from tests.processes import LOOPBACK, ManagedProcess, poll, port_is_free, wait_http_ok
from tests.prometheus_api import AlertmanagerApi, PrometheusApi
from tests.tools import require_tool
from tests.traffic import HEALTHY, Traffic

STACK_FILE = STACKS_DIR / "Pulumi.local.yaml"
MODEL = "synthetic-classifier"
TENANT = "ml-platform"
"""The tenant the remote write target names; Thanos Receive stores it as ``tenant_id``."""
CLUSTERS = {"east": True, "west": False}
"""Each cluster's name (its ``cluster`` external label) and whether it asks for high availability."""
TRAFFIC = {"east": HEALTHY, "west": dataclasses.replace(HEALTHY, rate=8, seed=2)}
"""Different traffic per cluster, so that their counts, and the global figures over both, differ."""
OPERATOR_PROMETHEUS_LABEL = "prometheus"
"""The external label the operator gives every Prometheus: ``<namespace>/<name>`` of its object."""
ALERTMANAGER_PEER_TIMEOUT = "5s"
"""How long each Alertmanager waits per position in the cluster for a peer's notification log entry before
sending itself (the chart's 15 s, shortened; gossip on loopback takes milliseconds)."""
QUERY_LAG = 2.0
"""The scenarios query this many seconds ago: every scrape and evaluation of that moment is stored by then."""
RECEIVE_LABEL = 'receive="0"'
"""The external label a Receive must announce so that Query can tell its blocks from another store's."""
RECEIVE_OUT_OF_ORDER_WINDOW = "10m"
"""A Receive flushes its head to a block when it stops, and after a restart refuses, as out of bounds (409, which
Prometheus does not retry), any sample older than that block's end: the samples of another Prometheus that were in
flight at the stop. An out-of-order window as long as the outages to bridge accepts them (with vertical compaction
on the compactor); the README's Thanos guide says so."""


def remote_write_config(entry: Mapping[str, Any]) -> dict[str, Any]:
    """Prometheus' ``remote_write`` item for one entry of the Prometheus object's ``remoteWrite``, as the
    operator renders it; a field this translation does not know fails rather than being left out."""
    known = {"name", "url", "headers", "queueConfig", "writeRelabelConfigs", "remoteTimeout"}
    if unknown := set(entry) - known:
        raise ValueError(f"remote write fields this suite cannot translate: {sorted(unknown)}")
    queue_keys = {"capacity": "capacity", "maxShards": "max_shards", "minShards": "min_shards",
                  "maxSamplesPerSend": "max_samples_per_send", "batchSendDeadline": "batch_send_deadline",
                  "minBackoff": "min_backoff", "maxBackoff": "max_backoff", "retryOnRateLimit": "retry_on_http_429",
                  "sampleAgeLimit": "sample_age_limit"}
    relabel_keys = {"sourceLabels": "source_labels", "targetLabel": "target_label", "regex": "regex",
                    "action": "action", "replacement": "replacement", "separator": "separator", "modulus": "modulus"}
    config: dict[str, Any] = {"url": entry["url"], "name": entry["name"]}
    if "headers" in entry:
        config["headers"] = dict(entry["headers"])
    if "remoteTimeout" in entry:
        config["remote_timeout"] = entry["remoteTimeout"]
    if "queueConfig" in entry:
        config["queue_config"] = {queue_keys[k]: _integral(v) for k, v in entry["queueConfig"].items()}
    if "writeRelabelConfigs" in entry:
        config["write_relabel_configs"] = [{relabel_keys[k]: v for k, v in rule.items()}
                                           for rule in entry["writeRelabelConfigs"]]
    return config


def _integral(value: Any) -> Any:
    """Numbers come back from the engine as floats; Prometheus' integer fields refuse ``10.0``."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


@dataclass
class ClusterDeclared:
    """What the program declares for one cluster."""

    name: str
    run: ProgramRun
    prometheus_spec: dict[str, Any]
    names: ChartNames
    service_monitor: dict[str, Any]
    service: dict[str, Any]
    deployment: dict[str, Any]
    rule: dict[str, Any]

    @property
    def replicas(self) -> int:
        return int(self.prometheus_spec.get("replicas") or 1)

    @property
    def namespace(self) -> str:
        return str(self.run.outputs["monitoringNamespace"])

    def replica_pod(self, ordinal: int) -> str:
        """The StatefulSet pod the operator names for this replica (the ``prometheus_replica`` label)."""
        return f"prometheus-{self.names.prometheus}-{ordinal}"


def declare(cluster: str, *, high_availability: bool, receive_url: str, time_scale: float,
            sends: tuple[str, ...] = ("all",)) -> ClusterDeclared:
    """The program for one cluster, with a ``generic`` target per ``send`` choice, each its own tenant (the same
    series twice in one tenant would conflict); ``all`` is ``TENANT``."""
    targets = [{"name": f"thanos-{send}", "kind": "generic", "url": receive_url, "send": send,
                "tenant": TENANT if send == "all" else f"{TENANT}-{send}",
                "queue": {"minBackoff": "100ms", "maxBackoff": "1s"}} for send in sends]
    run = run_program(STACK_FILE, overrides={
        "models": {MODEL: {"monitors": suite_monitors({}, time_scale)}},
        "monitoring": {
            "highAvailability": high_availability,
            "prometheus": {"externalLabels": {CLUSTER_LABEL: cluster}},
            "remoteWrite": targets,
        },
    })

    def named(typ: str, name: str) -> dict[str, Any]:
        [found] = [r.inputs for r in run.by_type(typ) if r.inputs["metadata"]["name"] == name]
        return found

    [rule] = [r.inputs for r in run.by_type("kubernetes:monitoring.coreos.com/v1:PrometheusRule")]
    values = release_values(monitoring_release(run))
    return ClusterDeclared(
        name=cluster, run=run, prometheus_spec=values["prometheus"]["prometheusSpec"],
        names=ChartNames(str(run.outputs["monitoringRelease"])),
        service_monitor=named("kubernetes:monitoring.coreos.com/v1:ServiceMonitor", MODEL),
        service=named("kubernetes:core/v1:Service", MODEL), deployment=named("kubernetes:apps/v1:Deployment", MODEL),
        rule=rule,
    )


@dataclass
class ClusterServers:
    """One cluster's sample service, its traffic and its Prometheus replicas (with their APIs)."""

    declared: ClusterDeclared
    model_port: int
    model: ManagedProcess
    traffic: Traffic
    prometheus: list[ManagedProcess] = field(default_factory=list)
    apis: list[PrometheusApi] = field(default_factory=list)

    @property
    def job(self) -> str:
        [endpoint] = self.declared.service_monitor["spec"]["endpoints"]
        [job] = [r["replacement"] for r in endpoint["relabelings"] if r.get("targetLabel") == "job"]
        return str(job)


@dataclass
class GlobalView:
    """Thanos Receive and Query, two clusters' servers, and three clustered Alertmanagers."""

    workdir: Path
    receiver: RecordingReceiver | None
    time_scale: float = DEFAULT_TIME_SCALE
    sends: tuple[str, ...] = ("all",)
    """The ``send`` choice of each remote write target (one target each)."""
    clusters: dict[str, ClusterServers] = field(default_factory=dict)
    processes: list[ManagedProcess] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)
    alertmanagers: list[AlertmanagerApi] = field(default_factory=list)
    receive: ManagedProcess | None = None
    query: PrometheusApi = field(init=False)
    """Thanos Query, deduplicating HA pairs on ``prometheus_replica``."""
    raw_query: PrometheusApi = field(init=False)
    """Thanos Query without deduplication: every replica's own series."""

    @property
    def scale(self) -> TimeScale:
        return TimeScale(self.time_scale)

    def _port(self) -> int:
        self.ports.append(free_port())
        return self.ports[-1]

    def _start(self, process: ManagedProcess, ready_url: str, timeout: float = 60) -> ManagedProcess:
        if process not in self.processes:
            self.processes.append(process)
        process.start()
        wait_http_ok(process, ready_url, timeout=timeout)
        return process

    # --- the store -------------------------------------------------------------------------------------------

    def start_thanos(self) -> str:
        """Receive and Query; returns the Receive's remote write URL."""
        thanos = require_tool("thanos")
        receive_http, receive_grpc, receive_write = self._port(), self._port(), self._port()
        self.receive = self._start(ManagedProcess(
            "thanos-receive",
            [thanos, "receive", f"--tsdb.path={self.workdir / 'receive'}", f"--label={RECEIVE_LABEL}",
             f"--http-address={LOOPBACK}:{receive_http}", f"--grpc-address={LOOPBACK}:{receive_grpc}",
             f"--remote-write.address={LOOPBACK}:{receive_write}", "--tsdb.retention=1d",
             f"--tsdb.out-of-order.time-window={RECEIVE_OUT_OF_ORDER_WINDOW}"],
            log_dir=self.workdir / "logs", ports=[receive_http, receive_grpc, receive_write],
        ), f"http://{LOOPBACK}:{receive_http}/-/ready")
        query_http, query_grpc = self._port(), self._port()
        self._start(ManagedProcess(
            "thanos-query",
            [thanos, "query", f"--http-address={LOOPBACK}:{query_http}", f"--grpc-address={LOOPBACK}:{query_grpc}",
             f"--endpoint={LOOPBACK}:{receive_grpc}", f"--query.replica-label={PROMETHEUS_REPLICA_LABEL}"],
            log_dir=self.workdir / "logs", ports=[query_http, query_grpc],
        ), f"http://{LOOPBACK}:{query_http}/-/ready")
        self.query = PrometheusApi(f"http://{LOOPBACK}:{query_http}", {"dedup": "true"})
        self.raw_query = PrometheusApi(f"http://{LOOPBACK}:{query_http}", {"dedup": "false"})
        poll("Thanos Query sees the Receive", self._query_sees_receive, timeout=60, interval=0.5,
             diagnose=self.diagnose)
        return f"http://{LOOPBACK}:{receive_write}/api/v1/receive"

    def _query_sees_receive(self) -> bool:
        stores = self.query.client.get("/api/v1/stores").json().get("data") or {}
        return any(stores.values())

    def restart_receive(self, down_for: float) -> tuple[float, float]:
        """Stop the Receive, keep it down ``down_for`` seconds, start it again; returns (stopped, started)."""
        assert self.receive is not None
        self.receive.stop()
        stopped = time.time()
        time.sleep(down_for)
        http_port = self.receive.ports[0]
        self._start(self.receive, f"http://{LOOPBACK}:{http_port}/-/ready")
        return stopped, time.time()

    # --- Alertmanager --------------------------------------------------------------------------------------

    def _start_alertmanagers(self, count: int) -> list[int]:
        binary = require_server("alertmanager")
        folder = self.workdir / "alertmanager"
        secrets_dir = folder / "secrets"
        secrets_dir.mkdir(parents=True, exist_ok=True)
        config = alerting_config(STACK_FILE, time_scale=self.time_scale)
        for name, value in receiver_secrets(config).items():
            (secrets_dir / name).write_text(value)
        receivers = [receiver_name(r) for r in configured_receivers(config)]
        assert self.receiver is not None, "Alertmanagers need the recording receiver"
        receiver = self.receiver
        rendered = render_alertmanager_config(config, secrets_dir=str(secrets_dir),
                                              endpoint_overrides={r: receiver.url(r) for r in receivers})
        config_path = folder / "alertmanager.yml"
        config_path.write_text(yaml.safe_dump(rendered, sort_keys=False))
        web = [self._port() for _ in range(count)]
        gossip = [self._port() for _ in range(count)]
        for index in range(count):
            peers = [f"--cluster.peer={LOOPBACK}:{port}" for i, port in enumerate(gossip) if i != index]
            self._start(ManagedProcess(
                f"alertmanager-{index}",
                [binary, f"--config.file={config_path}", f"--storage.path={folder / f'data-{index}'}",
                 f"--web.listen-address={LOOPBACK}:{web[index]}",
                 f"--web.external-url=http://{LOOPBACK}:{web[index]}/",
                 f"--cluster.listen-address={LOOPBACK}:{gossip[index]}",
                 f"--cluster.advertise-address={LOOPBACK}:{gossip[index]}",
                 f"--cluster.peer-timeout={ALERTMANAGER_PEER_TIMEOUT}", *peers],
                log_dir=self.workdir / "logs", ports=[web[index], gossip[index]],
            ), f"http://{LOOPBACK}:{web[index]}/-/ready")
            self.alertmanagers.append(AlertmanagerApi(f"http://{LOOPBACK}:{web[index]}"))
        poll("the Alertmanagers form one cluster of three", lambda: all(
            len(self.cluster_peers(am)) == count for am in self.alertmanagers), timeout=60, interval=0.5,
            diagnose=self.diagnose)
        return web

    @staticmethod
    def cluster_peers(am: AlertmanagerApi) -> list[dict[str, Any]]:
        status = am.client.get("/api/v2/status").json()
        return list(status.get("cluster", {}).get("peers") or [])

    # --- the clusters ----------------------------------------------------------------------------------------

    def _prometheus_config(self, servers: ClusterServers, ordinal: int, alertmanager_ports: list[int], *,
                           with_rules: bool) -> Path:
        declared = servers.declared
        folder = self.workdir / f"{declared.name}-{ordinal}"
        folder.mkdir(parents=True, exist_ok=True)
        [endpoint] = declared.service_monitor["spec"]["endpoints"]
        pod = f"{MODEL}-{declared.name}-0001"
        targets = folder / "targets.json"
        targets.write_text(json.dumps([{
            "targets": [f"{LOOPBACK}:{servers.model_port}"],
            "labels": model_target_labels(declared.service_monitor, declared.service, declared.deployment, pod),
        }]))
        rules = folder / "rules.yaml"
        rules.write_text(yaml.safe_dump(declared.rule["spec"], sort_keys=False))
        spec = declared.prometheus_spec
        external_labels = {
            **spec["externalLabels"],
            OPERATOR_PROMETHEUS_LABEL: f"{declared.namespace}/{declared.names.prometheus}",
            PROMETHEUS_REPLICA_LABEL: declared.replica_pod(ordinal),
        }
        metadata = declared.service_monitor["metadata"]
        path = folder / "prometheus.yml"
        path.write_text(yaml.safe_dump({
            "global": {"scrape_interval": endpoint["interval"], "evaluation_interval": endpoint["interval"],
                       "external_labels": external_labels},
            "rule_files": [str(rules)] if with_rules else [],
            "alerting": {
                # The operator drops the replica label from alerts, so that a pair's alerts are the same alert.
                "alert_relabel_configs": [{"action": "labeldrop", "regex": PROMETHEUS_REPLICA_LABEL}],
                "alertmanagers": [{"api_version": "v2", "static_configs": [
                    {"targets": [f"{LOOPBACK}:{port}" for port in alertmanager_ports]}]}],
            },
            "remote_write": [remote_write_config(e) for e in spec.get("additionalRemoteWrite", [])],
            "scrape_configs": [{
                "job_name": f"serviceMonitor/{metadata['namespace']}/{metadata['name']}/0",
                "scheme": endpoint["scheme"], "metrics_path": endpoint["path"],
                "scrape_interval": endpoint["interval"], "scrape_timeout": endpoint["scrapeTimeout"],
                "file_sd_configs": [{"files": [str(targets)]}],
            }],
        }, sort_keys=False))
        return path

    def start_cluster(self, name: str, high_availability: bool, receive_url: str, artifact: Path,
                       alertmanager_ports: list[int]) -> ClusterServers:
        declared = declare(name, high_availability=high_availability, receive_url=receive_url,
                           time_scale=self.time_scale, sends=self.sends)
        port = self._port()
        [container] = declared.deployment["spec"]["template"]["spec"]["containers"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODEL_")}
        for variable in container.get("env", []):
            env[variable["name"]] = str(variable["value"]) if "value" in variable else secrets.token_urlsafe(24)
        env.update({contract.ENV_HOST: LOOPBACK, contract.ENV_PORT: str(port), contract.ENV_ARTIFACT_DIR: str(artifact),
                    "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"})
        model = ManagedProcess(f"{name}-model", [sys.executable, "-m", "model_service.serve"],
                               log_dir=self.workdir / "logs", ports=[port], env=env)
        self._start(model, f"http://{LOOPBACK}:{port}/readyz")
        servers = ClusterServers(declared=declared, model_port=port, model=model,
                                 traffic=Traffic(f"http://{LOOPBACK}:{port}"))
        self.clusters[name] = servers
        binary = require_server("prometheus")
        scale = self.scale
        for ordinal in range(declared.replicas):
            web = self._port()
            config = self._prometheus_config(servers, ordinal, alertmanager_ports, with_rules=False)
            servers.prometheus.append(self._start(ManagedProcess(
                declared.replica_pod(ordinal) + f"-{name}",
                [binary, f"--config.file={config}", f"--storage.tsdb.path={config.parent / 'data'}",
                 f"--web.listen-address={LOOPBACK}:{web}", f"--web.external-url=http://{LOOPBACK}:{web}/",
                 f"--rules.alert.for-grace-period={scale.render(PROMETHEUS_FOR_GRACE_PERIOD)}",
                 f"--rules.alert.for-outage-tolerance={scale.render(PROMETHEUS_OUTAGE_TOLERANCE)}",
                 "--web.enable-lifecycle"],
                log_dir=self.workdir / "logs", ports=[web],
            ), f"http://{LOOPBACK}:{web}/-/ready"))
            servers.apis.append(PrometheusApi(f"http://{LOOPBACK}:{web}"))
        return servers

    def start(self) -> None:
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        receive_url = self.start_thanos()
        alertmanager_ports = self._start_alertmanagers(3)
        artifact = train_artifact(self.workdir / "model")
        for name, high_availability in CLUSTERS.items():
            self.start_cluster(name, high_availability, receive_url, artifact, alertmanager_ports)
        for servers in self.clusters.values():
            self.load_rules_and_start_traffic(servers, alertmanager_ports, TRAFFIC[servers.declared.name])

    def load_rules_and_start_traffic(self, servers: ClusterServers, alertmanager_ports: list[int],
                                     traffic: LoadConfig) -> None:
        """Rules once the model is scraped, as in the other suites (no alert before the first scrape); then
        traffic, until every Prometheus had scraped its predictions ``QUERY_LAG`` ago."""
        for ordinal, api in enumerate(servers.apis):
            poll(f"{servers.declared.name}-{ordinal} scrapes its model", lambda api=api: api.value("up") == 1,
                 timeout=60, diagnose=self.diagnose)
            self._prometheus_config(servers, ordinal, alertmanager_ports, with_rules=True)
            api.reload()
            # Every group evaluated once: otherwise a query at a moment before one group's first evaluation
            # sees fewer series in one replica than in the other, which is a race of the start, not the store.
            groups = len(servers.declared.rule["spec"]["groups"])
            poll(f"{servers.declared.name}-{ordinal} evaluated every rule group", lambda api=api, groups=groups: (
                len(api.rules()) == groups and all(
                    not g["lastEvaluation"].startswith("0001-") for g in api.rules())),
                timeout=60, diagnose=self.diagnose)
        servers.traffic.set_profile(traffic)
        servers.traffic.start()
        for ordinal, api in enumerate(servers.apis):
            poll(f"{servers.declared.name}-{ordinal} scraped predictions", lambda api=api: (
                api.value(f"sum({contract.PREDICTIONS.name})", time.time() - QUERY_LAG) or 0) > 0, timeout=60,
                diagnose=self.diagnose)

    def set_traffic(self, cluster: str, profile: LoadConfig) -> int:
        return self.clusters[cluster].traffic.set_profile(profile)

    # --- reporting and teardown ----------------------------------------------------------------------------

    def diagnose(self) -> str:
        parts = [self.receiver.describe()] if self.receiver is not None else []
        parts += [f"--- {p.name}\n{p.log_tail(8)}" for p in self.processes]
        return "\n".join(parts)

    def close(self) -> list[str]:
        problems = []
        for servers in self.clusters.values():
            servers.traffic.stop()
        for api in [*(a for s in self.clusters.values() for a in s.apis), *self.alertmanagers]:
            with contextlib.suppress(httpx.HTTPError):
                api.close()
        for process in reversed(self.processes):
            try:
                process.stop()
            except Exception as error:  # every process is stopped even if one stop fails
                problems.append(repr(error))
        return problems + [f"port {port} still bound" for port in self.ports if not port_is_free(port)]


@contextlib.contextmanager
def running_global_view(workdir: Path, *, time_scale: float = DEFAULT_TIME_SCALE) -> Iterator[GlobalView]:
    """A started ``GlobalView``; on exit every process is stopped and every port checked free, whatever happened."""
    config = alerting_config(STACK_FILE, time_scale=time_scale)
    with recording_receiver(tuple(config.group_by)) as receiver:
        view = GlobalView(workdir=workdir, receiver=receiver, time_scale=time_scale)
        try:
            view.start()
            yield view
        finally:
            leftovers = view.close()
            assert not leftovers, f"after stopping the global view's servers: {leftovers}"
