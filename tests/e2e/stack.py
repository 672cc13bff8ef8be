"""The sample model service, Prometheus and Alertmanager as local processes, configured from the program.

``declare`` runs the program under mocks with a stack file's configuration, the monitors' time scale and,
optionally, fault injection, and keeps the objects the local processes are configured from: the ServiceMonitor
and Service (the scrape job's interval, path and target labels), the PrometheusRule (the rule file, verbatim),
the Deployment (the service's environment) and the dashboard ConfigMap (the queries scenario 1 runs).

How a ServiceMonitor becomes a scrape configuration is the Prometheus Operator's business, and the real operator
does it in ``tests/node``. Here each pod is a target of a file-SD job carrying the labels the operator's
configuration gives a model target (``model_target_labels``); the node suite checks those labels against the
targets the real operator generated, so the two cannot part.

``Trio`` starts and stops the three servers and the recording receiver. Every server listens on a free port of
127.0.0.1, in its own process group, and is stopped on ``close`` whatever happened before; ``close`` then
checks that none of their ports is still bound. Its operations are the ones a cluster would see: a rolling
update to a new pod template (``deploy``), a killed container and its restart (``kill_pod``,
``restart_pod``), a restarted Prometheus that keeps its volume (``restart_prometheus``).

Time is compressed by the monitors' ``timeScale`` (windows, ``for``, scrape and evaluation intervals) and by
the same factor on the alerting section's ``groupWait``, ``groupInterval``, ``repeatInterval`` and
``resolveTimeout``, passed through ``AlertingConfig``. Prometheus' own ``for`` grace period and outage
tolerance scale with them; its resend delay does not: Alertmanager trusts a firing alert for four resend
delays without news, and a process restart takes real seconds that no time scale shortens.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from model_service import contract
from model_service.serve import free_port

from components.contracts import PROJECT, prometheus_label_name
from components.model.config import SAMPLE_MODEL_NAME
from components.monitoring.alertmanager import Receiver, receiver_secrets, render_alertmanager_config
from components.monitoring.config import AlertingConfig
from components.monitors.config import ModelMonitorsConfig
from components.monitors.rule_model import TimeScale
from tests.e2e.dashboard import OVERVIEW_CONFIG_MAP
from tests.e2e.receiver import RecordingReceiver
from tests.harness import ProgramRun, load_stack_file, run_program
from tests.processes import LOOPBACK, ManagedProcess, poll, port_is_free, wait_http_ok
from tests.prometheus_api import AlertmanagerApi, PrometheusApi
from tests.tools import require_tool, tool_versions, unavailable
from tests.traffic import Traffic

SERVICE_MONITOR = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"
PROMETHEUS_RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
SERVICE = "kubernetes:core/v1:Service"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"

DEFAULT_TIME_SCALE = 0.03
"""An hour of the monitors' windows in 108 seconds, so the suite runs in minutes on a 2-core machine.

Not smaller: Prometheus hands discovered targets to its scrape manager at most every 5 seconds, a delay no
setting scales, and the target alerts' ``for: 5m`` must stay longer than it (9 s here), or a restarted
Prometheus would page for a service it simply has not scraped yet."""
SUITE_LATENCY_FACTOR = 10
"""The suite's latency SLOs are the stack's thresholds times this (25 ms and 100 ms become 250 ms and 1 s). The
suite shares two cores with every other suite of a CI run, and how fast a request is answered there is the
machine's load, not the monitors' logic: at the stack's own thresholds a loaded machine burns the latency budget
of healthy traffic. The scenarios that burn it inject latency past the relaxed thresholds."""


def suite_monitors(monitors: Mapping[str, Any], time_scale: float) -> dict[str, Any]:
    """A model's ``monitors`` settings as every end-to-end run declares them: its windows compressed by
    ``time_scale``, its latency thresholds relaxed by :data:`SUITE_LATENCY_FACTOR`."""
    stack = ModelMonitorsConfig.model_validate(monitors)
    return {
        **monitors,
        "timeScale": time_scale,
        "latencySlos": [{"thresholdSeconds": round(slo.threshold_seconds * SUITE_LATENCY_FACTOR, 6),
                         "objectivePercent": slo.objective_percent} for slo in stack.latency_slos],
    }


PROMETHEUS_FOR_GRACE_PERIOD = "10m"
PROMETHEUS_OUTAGE_TOLERANCE = "1h"
TEST_CREDENTIALS = {"pagerduty": "e2e-pagerduty-routing-key", "slack": "https://hooks.slack.invalid/e2e",
                    "webhook": "https://tickets.invalid/e2e"}


def require_server(binary: str) -> Path:
    """The pinned build of ``prometheus`` or ``alertmanager``; an older or other build skips (fails when strict).

    Checked by ``--version``, since a binary at the expected path can still be a stale build.
    """
    path = require_tool(binary)
    key = {"prometheus": "PROMETHEUS_VERSION", "alertmanager": "ALERTMANAGER_VERSION"}[binary]
    pinned = tool_versions()[key].removeprefix("v")
    result = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=30, check=False)
    first_line = (result.stdout or result.stderr).splitlines()[0] if (result.stdout or result.stderr) else ""
    if f"version {pinned} " not in first_line + " ":
        unavailable(
            f"{path} reports {first_line!r}, not version {pinned}; rebuild it with: bash scripts/install-tools.sh "
            f"{'prometheus' if binary == 'prometheus' else 'alertmanager'}"
        )
    return path


# ---------------------------------------------------------------------------------------------------------
# What the program declares
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Declared:
    """The objects of one run of the program that the local processes are configured from."""

    run: ProgramRun
    service_monitor: dict[str, Any]
    services: tuple[dict[str, Any], ...]
    deployment: dict[str, Any]
    prometheus_rule: dict[str, Any]
    dashboard: dict[str, Any]
    monitors: ModelMonitorsConfig
    """The stack's ``model.monitors`` as the program read it (thresholds, windows, the time scale)."""

    @property
    def namespace(self) -> str:
        return str(self.deployment["metadata"]["namespace"])

    @property
    def model_name(self) -> str:
        return str(self.deployment["metadata"]["name"])

    @property
    def job(self) -> str:
        """The ``job`` label the ServiceMonitor's relabelings set (what every rule selects)."""
        jobs = [r["replacement"] for e in self.service_monitor["spec"]["endpoints"] for r in e.get("relabelings", [])
                if r.get("targetLabel") == "job"]
        return str(jobs[-1]) if jobs else str(self.services[0]["metadata"]["name"])

    def container_env(self) -> dict[str, str]:
        """The container's environment as the Deployment declares it; a Secret reference gets a fresh value
        (only the feedback signing key is one, generated randomly in a cluster too)."""
        container = self.deployment["spec"]["template"]["spec"]["containers"][0]
        env: dict[str, str] = {}
        for variable in container.get("env", []):
            if "value" in variable:
                env[variable["name"]] = str(variable["value"])
            elif "secretKeyRef" in variable.get("valueFrom", {}):
                env[variable["name"]] = secrets.token_urlsafe(24)
            else:
                raise ValueError(f"environment variable {variable['name']} has a source this suite cannot provide")
        return env

    @property
    def scrape_pool(self) -> str:
        """The scrape job the operator makes of the ServiceMonitor's first endpoint."""
        metadata = self.service_monitor["metadata"]
        return f"serviceMonitor/{metadata['namespace']}/{metadata['name']}/0"

    def model_target_labels(self, pod: str) -> dict[str, str]:
        [service] = [s for s in self.services if s["metadata"]["namespace"] == self.namespace]
        return model_target_labels(self.service_monitor, service, self.deployment, pod)


def model_target_labels(service_monitor: Mapping[str, Any], service: Mapping[str, Any],
                        deployment: Mapping[str, Any], pod: str) -> dict[str, str]:
    """The labels the Prometheus Operator's configuration gives the model's target in ``pod`` (the Endpoints
    role, the chart's default), ``instance`` aside: the Service's namespace and name, the pod and its container,
    the endpoint's port name, the job the ServiceMonitor's relabeling sets, and the pod labels its
    ``podTargetLabels`` copy, where the pod has them (``tests/node`` compares them with the real operator's
    targets)."""
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    [endpoint] = service_monitor["spec"]["endpoints"]
    [job] = [r["replacement"] for r in endpoint.get("relabelings", []) if r.get("targetLabel") == "job"]
    pod_labels = deployment["spec"]["template"]["metadata"].get("labels", {})
    copied = {prometheus_label_name(label): pod_labels[label]
              for label in service_monitor["spec"].get("podTargetLabels", []) if pod_labels.get(label)}
    return {"namespace": service["metadata"]["namespace"], "service": service["metadata"]["name"], "pod": pod,
            "container": container["name"], "endpoint": endpoint["port"], "job": job, **copied}


def pod_template_hash(deployment: Mapping[str, Any]) -> str:
    """A short hash of the pod template, as a ReplicaSet's name carries one: a changed template (new
    environment, say) makes new pod names, so a rolling update shows in the ``pod`` label as in a cluster."""
    template = json.dumps(deployment["spec"]["template"], sort_keys=True)
    return hashlib.sha256(template.encode()).hexdigest()[:10]


def _stack_section(stack_file: Path, key: str) -> dict[str, Any]:
    config, _ = load_stack_file(stack_file)
    raw = config.get(f"{PROJECT}:{key}")
    return json.loads(raw) if raw else {}


def declare(stack_file: Path, *, time_scale: float, faults: Mapping[str, float] | None = None,
            model_name: str = SAMPLE_MODEL_NAME, settings: Mapping[str, Any] | None = None,
            workload: str | None = None) -> Declared:
    """Run the program with ``stack_file``'s configuration, its model ``model_name`` alone, with the monitors'
    ``timeScale``, ``faults`` and other ``settings`` of the model; keep its Deployment named ``workload`` (default:
    the model's own, a canary's is ``<model>-canary``)."""
    model = {**_stack_section(stack_file, "models").get(model_name, {}), **(settings or {})}
    monitors = suite_monitors(model.get("monitors", {}), time_scale)
    model = {**model, "monitors": monitors}
    if faults:
        model["faults"] = {**model.get("faults", {}), **faults}
    run = run_program(stack_file, overrides={"models": {model_name: model}})
    monitor = run.one(SERVICE_MONITOR).inputs
    dashboards = [r for r in run.by_type(CONFIG_MAP) if r.name == OVERVIEW_CONFIG_MAP]
    assert len(dashboards) == 1, f"expected one dashboard ConfigMap, found {[r.name for r in dashboards]}"
    return Declared(
        run=run,
        service_monitor=monitor,
        services=tuple(r.inputs for r in run.by_type(SERVICE)),
        # The model's own Deployment (on kind its load generator's is beside it: the suite sends its own traffic).
        deployment=next(r.inputs for r in run.by_type(DEPLOYMENT)
                        if r.inputs["metadata"]["name"] == (workload or model_name)),
        prometheus_rule=run.one(PROMETHEUS_RULE).inputs,
        dashboard=json.loads(next(iter(dashboards[0].inputs["data"].values()))),
        monitors=ModelMonitorsConfig.model_validate(monitors),
    )


def alerting_config(stack_file: Path, *, time_scale: float) -> AlertingConfig:
    """The stack's alerting section with every receiver configured and its durations scaled."""
    section = _stack_section(stack_file, "alerting")
    base = AlertingConfig.model_validate(section)
    scale = TimeScale(time_scale)
    return AlertingConfig.model_validate({
        **section,
        "pagerduty": {**section.get("pagerduty", {}), "routingKey": TEST_CREDENTIALS["pagerduty"]},
        "slack": {**section.get("slack", {}), "webhookUrl": TEST_CREDENTIALS["slack"]},
        "webhook": {**section.get("webhook", {}), "url": TEST_CREDENTIALS["webhook"]},
        "groupWait": scale.render(base.group_wait),
        "groupInterval": scale.render(base.group_interval),
        "repeatInterval": scale.render(base.repeat_interval),
        "resolveTimeout": scale.render(base.resolve_timeout),
    })


def train_artifact(directory: Path, version: str | None = None) -> Path:
    """The sample model, trained by its own command (what the image's build step runs), as ``version`` if given
    (what another image's build would name it)."""
    if not (directory / "metadata.json").exists():
        subprocess.run(
            [sys.executable, "-m", "model_service.train", "--output", str(directory),
             *(["--model-version", version] if version else [])],
            check=True, capture_output=True, timeout=300,
        )
    return directory


# ---------------------------------------------------------------------------------------------------------
# The trio
# ---------------------------------------------------------------------------------------------------------


@dataclass
class Pod:
    """A local copy of the Deployment's pod: its process and how it appears among the Service's endpoints."""

    name: str
    port: int
    process: ManagedProcess
    ready: bool = True
    declared: Declared | None = None
    """The declaration of a pod of another Deployment than the Trio's (a canary's): its target labels come from it."""

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"


@dataclass
class Trio:
    """The model service, Prometheus and Alertmanager, with the receiver and the traffic, for one stack file."""

    stack_file: Path
    workdir: Path
    receiver: RecordingReceiver
    time_scale: float = DEFAULT_TIME_SCALE
    declared: Declared = field(init=False)
    alerting: AlertingConfig = field(init=False)
    pods: list[Pod] = field(default_factory=list)
    prometheus: ManagedProcess = field(init=False)
    alertmanager: ManagedProcess = field(init=False)
    prom: PrometheusApi = field(init=False)
    am: AlertmanagerApi = field(init=False)
    traffic: Traffic = field(init=False)
    ports: set[int] = field(default_factory=set)
    _pod_count: int = 0
    _declared: dict[tuple[tuple[str, float], ...], Declared] = field(default_factory=dict)

    @property
    def scale(self) -> TimeScale:
        return TimeScale(self.time_scale)

    # -- configuration files ------------------------------------------------------------------------------

    @property
    def sd_file(self) -> Path:
        return self.workdir / "prometheus" / "endpoints.json"

    def _write_endpoints(self) -> None:
        """The Service's endpoints now, ready or not (the operator's configuration scrapes both, so a crashed pod
        shows as ``up == 0``); Prometheus picks changes up from the file within a second."""
        groups = [{"targets": [f"{LOOPBACK}:{pod.port}"],
                   "labels": (pod.declared or self.declared).model_target_labels(pod.name)} for pod in self.pods]
        temporary = self.sd_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(groups, indent=1))
        temporary.replace(self.sd_file)  # atomic: Prometheus never reads half a file

    def _write_prometheus_config(self, alertmanager_port: int, *, with_rules: bool) -> Path:
        folder = self.workdir / "prometheus"
        rules = folder / "rules" / (
            f"{self.declared.prometheus_rule['metadata']['namespace']}-"
            f"{self.declared.prometheus_rule['metadata']['name']}.yaml"
        )
        rules.parent.mkdir(parents=True, exist_ok=True)
        rules.write_text(yaml.safe_dump(self.declared.prometheus_rule["spec"], sort_keys=False))
        [endpoint] = self.declared.service_monitor["spec"]["endpoints"]
        config = {
            "global": {"scrape_interval": endpoint["interval"], "evaluation_interval": endpoint["interval"]},
            "rule_files": [str(rules)] if with_rules else [],
            "alerting": {"alertmanagers": [
                {"api_version": "v2", "static_configs": [{"targets": [f"{LOOPBACK}:{alertmanager_port}"]}]}
            ]},
            "scrape_configs": [{
                "job_name": self.declared.scrape_pool,
                "scheme": endpoint["scheme"],
                "metrics_path": endpoint["path"],
                "scrape_timeout": endpoint["scrapeTimeout"],
                "file_sd_configs": [{"files": [str(self.sd_file)], "refresh_interval": "1s"}],
            }],
        }
        path = folder / "prometheus.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def _write_alertmanager_config(self) -> Path:
        folder = self.workdir / "alertmanager"
        secrets_dir = folder / "secrets"
        secrets_dir.mkdir(parents=True, exist_ok=True)
        for name, value in receiver_secrets(self.alerting).items():
            (secrets_dir / name).write_text(value)
        config = render_alertmanager_config(
            self.alerting,
            secrets_dir=str(secrets_dir),
            endpoint_overrides={receiver: self.receiver.url(receiver.value) for receiver in Receiver},
        )
        path = folder / "alertmanager.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    # -- processes -----------------------------------------------------------------------------------------

    def _port(self) -> int:
        port = free_port()
        self.ports.add(port)
        return port

    def _new_pod(self, declared: Declared | None = None, extra_env: Mapping[str, str] | None = None) -> Pod:
        """A pod of the Trio's Deployment, or of ``declared``'s (a canary's), with ``extra_env`` on top."""
        declared = declared or self.declared
        self._pod_count += 1
        name = f"{declared.model_name}-{pod_template_hash(declared.deployment)}-{self._pod_count:05d}"
        port = self._port()
        base = {k: v for k, v in os.environ.items() if not k.startswith("MODEL_")}
        env = {
            **base,
            **declared.container_env(),
            contract.ENV_HOST: LOOPBACK,  # the pod's IP
            contract.ENV_PORT: str(port),  # the local port that stands for the container port
            contract.ENV_ARTIFACT_DIR: str(train_artifact(self.workdir / "model")),  # where the image trains into
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            **(extra_env or {}),
        }
        process = ManagedProcess(
            name, [sys.executable, "-m", "model_service.serve"], log_dir=self.workdir / "logs", ports=[port], env=env
        )
        return Pod(name=name, port=port, process=process, declared=declared if declared is not self.declared else None)

    def _start_pod(self, pod: Pod) -> None:
        pod.process.start()
        wait_http_ok(pod.process, f"{pod.url}/readyz", timeout=60)

    def start(self) -> None:
        """Declare, configure and start everything; return once Prometheus scrapes the service."""
        for folder in ("logs", "prometheus", "alertmanager", "model"):
            (self.workdir / folder).mkdir(parents=True, exist_ok=True)
        prometheus_bin, alertmanager_bin = require_server("prometheus"), require_server("alertmanager")
        self.declared = self._declared[()] = declare(self.stack_file, time_scale=self.time_scale)
        self.alerting = alerting_config(self.stack_file, time_scale=self.time_scale)
        train_artifact(self.workdir / "model")

        pod = self._new_pod()
        self.pods.append(pod)
        self._start_pod(pod)
        self._write_endpoints()

        alertmanager_port, prometheus_port = self._port(), self._port()
        self.alertmanager = ManagedProcess(
            "alertmanager",
            [alertmanager_bin, f"--config.file={self._write_alertmanager_config()}",
             f"--storage.path={self.workdir / 'alertmanager' / 'data'}",
             f"--web.listen-address={LOOPBACK}:{alertmanager_port}", "--cluster.listen-address=",
             f"--web.external-url=http://{LOOPBACK}:{alertmanager_port}/",
             "--log.level=info"],
            log_dir=self.workdir / "logs", ports=[alertmanager_port],
        )
        self.alertmanager.start()
        wait_http_ok(self.alertmanager, f"http://{LOOPBACK}:{alertmanager_port}/-/ready", timeout=30)
        self.am = AlertmanagerApi(f"http://{LOOPBACK}:{alertmanager_port}")

        # Rules are loaded once the service has been scraped: a Prometheus that has run for a while is what
        # the monitors watch from, not one whose first discovery round (5 s, unscaled) is still pending.
        config = self._write_prometheus_config(alertmanager_port, with_rules=False)
        self.prometheus = ManagedProcess(
            "prometheus",
            [prometheus_bin, f"--config.file={config}",
             f"--storage.tsdb.path={self.workdir / 'prometheus' / 'data'}",
             f"--web.listen-address={LOOPBACK}:{prometheus_port}",
             f"--web.external-url=http://{LOOPBACK}:{prometheus_port}/",
             f"--rules.alert.for-grace-period={self.scale.render(PROMETHEUS_FOR_GRACE_PERIOD)}",
             f"--rules.alert.for-outage-tolerance={self.scale.render(PROMETHEUS_OUTAGE_TOLERANCE)}",
             "--web.enable-lifecycle", "--log.level=info"],
            log_dir=self.workdir / "logs", ports=[prometheus_port],
        )
        self.prometheus.start()
        wait_http_ok(self.prometheus, f"http://{LOOPBACK}:{prometheus_port}/-/ready", timeout=60)
        self.prom = PrometheusApi(f"http://{LOOPBACK}:{prometheus_port}")
        self.wait_scraped()
        self._write_prometheus_config(alertmanager_port, with_rules=True)
        self.prom.reload()
        expected = {group["name"] for group in self.declared.prometheus_rule["spec"]["groups"]}
        loaded = {group["name"] for group in self.prom.rules()}
        assert loaded == expected, f"Prometheus loaded rule groups {sorted(loaded)}, expected {sorted(expected)}"

        self.traffic = Traffic(self.pods[-1].url)
        self.traffic.start()

    def up_selector(self) -> str:
        return f'up{{namespace="{self.declared.namespace}", job="{self.declared.job}"}}'

    def wait_scraped(self, pod: Pod | None = None, timeout: float = 30) -> None:
        """Until Prometheus has scraped ``pod`` (default: every ready pod) successfully."""
        wanted = [pod] if pod is not None else [p for p in self.pods if p.ready]

        def scraped() -> bool:
            series = {r["metric"].get("pod"): float(r["value"][1]) for r in self.prom.query(self.up_selector())}
            return all(series.get(p.name) == 1.0 for p in wanted)

        poll("model service scraped", scraped, timeout=timeout,
             diagnose=lambda: json.dumps(self.prom.targets(), indent=1)[:4000])

    def add_pod(self, declared: Declared, extra_env: Mapping[str, str] | None = None) -> Pod:
        """Start a pod of another Deployment behind the same Service (a canary's, beside the Trio's pods): an
        endpoint with that Deployment's target labels, scraped before this returns, stopped with the others."""
        pod = self._new_pod(declared, extra_env)
        self._start_pod(pod)
        self.pods.append(pod)
        self._write_endpoints()
        self.wait_scraped(pod)
        return pod

    def deploy(self, faults: Mapping[str, float] | None = None) -> Declared:
        """Apply the program with ``faults`` (None: none); a changed pod template rolls out as a Deployment
        does with ``maxSurge``: the new pod starts and becomes an endpoint, traffic moves, the old pod goes."""
        key = tuple(sorted((faults or {}).items()))
        if key not in self._declared:  # the program is deterministic: one run per configuration
            self._declared[key] = declare(self.stack_file, time_scale=self.time_scale, faults=faults)
        declared = self._declared[key]
        if pod_template_hash(declared.deployment) == pod_template_hash(self.declared.deployment):
            return self.declared
        self.declared = declared
        old = list(self.pods)
        pod = self._new_pod()
        self._start_pod(pod)
        self.pods.append(pod)
        self._write_endpoints()
        self.wait_scraped(pod)
        self.traffic.point_at(pod.url)
        self.pods = [pod]
        self._write_endpoints()
        self.traffic.wait_next_round()  # the round that started before the switch ends on the old pod
        for previous in old:
            previous.process.stop()
        return declared

    def kill_pod(self) -> Pod:
        """SIGKILL the serving pod's process; it stays an endpoint, not ready, as a crashed container does."""
        pod = self.pods[-1]
        pod.process.kill()
        pod.ready = False
        self._write_endpoints()
        return pod

    def restart_pod(self, pod: Pod) -> None:
        """The kubelet's restart of the crashed container: same pod, same port, ready once it answers."""
        self._start_pod(pod)
        pod.ready = True
        self._write_endpoints()

    def restart_prometheus(self) -> float:
        """Stop Prometheus (SIGTERM, as a pod's termination does), start it on the same data directory and
        port; returns the wall-clock time it was stopped."""
        stopped_at = time.time()
        code = self.prometheus.stop()
        assert code == 0, f"Prometheus did not shut down cleanly ({code}):\n{self.prometheus.log_tail()}"
        self.prometheus.start()
        wait_http_ok(self.prometheus, f"{self.prom.base_url}/-/ready", timeout=60)
        return stopped_at

    def diagnose(self) -> str:
        """Alerts, notifications and logs, for a failure message."""
        parts = []
        with contextlib.suppress(Exception):
            parts.append("prometheus alerts: " + json.dumps(
                [(a["labels"].get("alertname"), a["state"], a["labels"].get("feature")) for a in self.prom.alerts()]))
        parts.append(self.receiver.describe())
        for process in (*(p.process for p in self.pods), self.prometheus, self.alertmanager):
            parts.append(f"--- {process.name} log tail\n{process.log_tail(12)}")
        return "\n".join(parts)

    def close(self) -> list[str]:
        """Stop everything that was started, in any state; return the ports still bound (none expected)."""
        problems = []
        stoppers = []
        if hasattr(self, "traffic"):
            stoppers.append(self.traffic.stop)
        stoppers += [p.process.stop for p in self.pods]
        for attribute in ("prometheus", "alertmanager"):
            if hasattr(self, attribute):
                stoppers.append(getattr(self, attribute).stop)
        for api in ("prom", "am"):
            if hasattr(self, api):
                stoppers.append(getattr(self, api).close)
        for stop in stoppers:
            try:
                stop()
            except Exception as error:  # every process is stopped even if one stop fails
                problems.append(repr(error))
        bound = [port for port in sorted(self.ports) if not port_is_free(port)]
        return problems + [f"port {port} still bound" for port in bound]


@contextlib.contextmanager
def running_trio(stack_file: Path, workdir: Path, *, time_scale: float = DEFAULT_TIME_SCALE) -> Iterator[Trio]:
    """A started ``Trio``; on exit every process is stopped and every port checked free, whatever happened."""
    from tests.e2e.receiver import recording_receiver

    section = _stack_section(stack_file, "alerting")
    group_by = tuple(AlertingConfig.model_validate(section).group_by)
    with recording_receiver(group_by) as receiver:
        trio = Trio(stack_file=stack_file, workdir=workdir, receiver=receiver, time_scale=time_scale)
        try:
            trio.start()
            yield trio
        finally:
            leftovers = trio.close()
            ports = [receiver.port, *trio.ports]
            assert not leftovers, f"after stopping the end-to-end servers: {leftovers} (ports {ports})"
