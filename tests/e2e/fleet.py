"""Two models of two teams on one Prometheus and one Alertmanager, as local processes, configured from the program.

The program runs under mocks with the ``local`` stack and two models (``FLEET``), each owned by its team and with
its own drift windows; each model's service runs the sample as a process, with its Deployment's environment (so it
reports its own name), and is a target of its own scrape job with the labels the operator gives a model target;
Prometheus loads both models' PrometheusRules; Alertmanager routes with ``render_alertmanager_config`` and both
teams' receivers, every receiver pointed at the recording server. Time is compressed as in ``stack``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from model_service import contract
from model_service.serve import free_port

from components.monitoring.alertmanager import (
    configured_receivers,
    receiver_name,
    receiver_secrets,
    render_alertmanager_config,
)
from components.monitoring.config import AlertingConfig
from components.monitors.rule_model import TimeScale
from tests.e2e.receiver import RecordingReceiver, recording_receiver
from tests.e2e.stack import (
    DEFAULT_TIME_SCALE,
    PROMETHEUS_FOR_GRACE_PERIOD,
    PROMETHEUS_OUTAGE_TOLERANCE,
    TEST_CREDENTIALS,
    model_target_labels,
    require_server,
    suite_monitors,
    train_artifact,
)
from tests.harness import STACKS_DIR, ProgramRun, run_program
from tests.processes import LOOPBACK, ManagedProcess, poll, port_is_free, wait_http_ok
from tests.prometheus_api import AlertmanagerApi, PrometheusApi
from tests.traffic import Traffic

STACK_FILE = STACKS_DIR / "Pulumi.local.yaml"
FLEET: dict[str, dict[str, Any]] = {
    "churn": {"team": "growth"},
    "fraud-detector": {
        "team": "fraud",
        "monitors": {"drift": {"shortWindow": "15m", "longWindow": "2h"}, "accuracy": {"window": "30m"}},
    },
}
"""Two models of two teams; the second with its own drift and accuracy windows."""
TEAM_RECEIVERS: dict[str, dict[str, Any]] = {
    "growth": {"slack": {"webhookUrl": "https://hooks.slack.invalid/growth"}},
    "fraud": {"pagerduty": {"routingKey": "e2e-fraud-routing-key"},
              "webhook": {"url": "https://tickets.invalid/fraud"}},
}


@dataclass
class FleetModel:
    """One model of the fleet: what the program declared for it, and its running service."""

    name: str
    service_monitor: dict[str, Any]
    service: dict[str, Any]
    deployment: dict[str, Any]
    rule: dict[str, Any]
    port: int = 0
    process: ManagedProcess | None = None
    traffic: Traffic | None = None

    @property
    def pod(self) -> str:
        return f"{self.name}-0001"

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def environment(self) -> dict[str, str]:
        [container] = self.deployment["spec"]["template"]["spec"]["containers"]
        env = {}
        for variable in container.get("env", []):
            env[variable["name"]] = (str(variable["value"]) if "value" in variable
                                     else secrets.token_urlsafe(24))  # the signing key, a Secret in a cluster
        return env


def declare(time_scale: float) -> tuple[ProgramRun, dict[str, FleetModel]]:
    """The program with the fleet's models (time-scaled) and both teams, under mocks."""
    models = {name: {**model, "monitors": suite_monitors(model.get("monitors", {}), time_scale)}
              for name, model in FLEET.items()}
    run = run_program(STACK_FILE, overrides={"models": models, "alerting": {"teams": {t: {} for t in TEAM_RECEIVERS}}})

    def named(typ: str, name: str) -> dict[str, Any]:
        [found] = [r.inputs for r in run.by_type(typ) if r.inputs["metadata"]["name"] == name]
        return found

    return run, {
        name: FleetModel(
            name=name,
            service_monitor=named("kubernetes:monitoring.coreos.com/v1:ServiceMonitor", name),
            service=named("kubernetes:core/v1:Service", name),
            deployment=named("kubernetes:apps/v1:Deployment", name),
            rule=named("kubernetes:monitoring.coreos.com/v1:PrometheusRule", f"{name}-rules"),
        )
        for name in FLEET
    }


def alerting(time_scale: float) -> AlertingConfig:
    """The platform's receivers and both teams', with credentials, durations scaled like the monitors'."""
    base = AlertingConfig()
    scale = TimeScale(time_scale)
    return AlertingConfig.model_validate({
        "pagerduty": {"routingKey": TEST_CREDENTIALS["pagerduty"]},
        "slack": {"webhookUrl": TEST_CREDENTIALS["slack"]},
        "webhook": {"url": TEST_CREDENTIALS["webhook"]},
        "teams": TEAM_RECEIVERS,
        "groupWait": scale.render(base.group_wait),
        "groupInterval": scale.render(base.group_interval),
        "repeatInterval": scale.render(base.repeat_interval),
        "resolveTimeout": scale.render(base.resolve_timeout),
    })


@dataclass
class Fleet:
    """The fleet's services, Prometheus and Alertmanager, with the recording receiver."""

    workdir: Path
    receiver: RecordingReceiver
    time_scale: float = DEFAULT_TIME_SCALE
    run: ProgramRun = field(init=False)
    models: dict[str, FleetModel] = field(init=False)
    prom: PrometheusApi = field(init=False)
    am: AlertmanagerApi = field(init=False)
    processes: list[ManagedProcess] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)

    def _port(self) -> int:
        self.ports.append(free_port())
        return self.ports[-1]

    def _prometheus_config(self, alertmanager_port: int, *, with_rules: bool) -> Path:
        folder = self.workdir / "prometheus"
        rule_files, jobs = [], []
        for model in self.models.values():
            [endpoint] = model.service_monitor["spec"]["endpoints"]
            targets = folder / f"{model.name}-targets.json"
            targets.write_text(json.dumps([{
                "targets": [f"{LOOPBACK}:{model.port}"],
                "labels": model_target_labels(model.service_monitor, model.service, model.deployment, model.pod),
            }]))
            metadata = model.service_monitor["metadata"]
            jobs.append({
                "job_name": f"serviceMonitor/{metadata['namespace']}/{metadata['name']}/0",
                "scheme": endpoint["scheme"], "metrics_path": endpoint["path"],
                "scrape_interval": endpoint["interval"], "scrape_timeout": endpoint["scrapeTimeout"],
                "file_sd_configs": [{"files": [str(targets)]}],
            })
            rules = folder / f"{model.name}-rules.yaml"
            rules.write_text(yaml.safe_dump(model.rule["spec"], sort_keys=False))
            rule_files.append(str(rules))
        interval = jobs[0]["scrape_interval"]
        path = folder / "prometheus.yml"
        path.write_text(yaml.safe_dump({
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "rule_files": rule_files if with_rules else [],
            "alerting": {"alertmanagers": [
                {"api_version": "v2", "static_configs": [{"targets": [f"{LOOPBACK}:{alertmanager_port}"]}]}]},
            "scrape_configs": jobs,
        }, sort_keys=False))
        return path

    def _alertmanager_config(self) -> Path:
        folder = self.workdir / "alertmanager"
        secrets_dir = folder / "secrets"
        secrets_dir.mkdir(parents=True, exist_ok=True)
        config = alerting(self.time_scale)
        for name, value in receiver_secrets(config).items():
            (secrets_dir / name).write_text(value)
        receivers = [receiver_name(r) for r in configured_receivers(config)]
        receivers += [receiver_name(r, team) for team, team_config in config.teams.items()
                      for r in configured_receivers(team_config)]
        rendered = render_alertmanager_config(config, secrets_dir=str(secrets_dir),
                                              endpoint_overrides={r: self.receiver.url(r) for r in receivers})
        path = folder / "alertmanager.yml"
        path.write_text(yaml.safe_dump(rendered, sort_keys=False))
        return path

    def start(self) -> None:
        for folder in ("logs", "prometheus", "alertmanager"):
            (self.workdir / folder).mkdir(parents=True, exist_ok=True)
        prometheus_bin, alertmanager_bin = require_server("prometheus"), require_server("alertmanager")
        self.run, self.models = declare(self.time_scale)
        artifact = train_artifact(self.workdir / "model")
        base = {k: v for k, v in os.environ.items() if not k.startswith("MODEL_")}
        for model in self.models.values():
            model.port = self._port()
            env = {**base, **model.environment(), contract.ENV_HOST: LOOPBACK, contract.ENV_PORT: str(model.port),
                   contract.ENV_ARTIFACT_DIR: str(artifact), "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
            model.process = ManagedProcess(model.pod, [sys.executable, "-m", "model_service.serve"],
                                           log_dir=self.workdir / "logs", ports=[model.port], env=env)
            self.processes.append(model.process)
            model.process.start()
            wait_http_ok(model.process, f"{model.url}/readyz", timeout=60)

        am_port, prom_port = self._port(), self._port()
        alertmanager = ManagedProcess(
            "alertmanager",
            [alertmanager_bin, f"--config.file={self._alertmanager_config()}",
             f"--storage.path={self.workdir / 'alertmanager' / 'data'}", f"--web.listen-address={LOOPBACK}:{am_port}",
             "--cluster.listen-address=", f"--web.external-url=http://{LOOPBACK}:{am_port}/"],
            log_dir=self.workdir / "logs", ports=[am_port],
        )
        self.processes.append(alertmanager)
        alertmanager.start()
        wait_http_ok(alertmanager, f"http://{LOOPBACK}:{am_port}/-/ready", timeout=30)
        self.am = AlertmanagerApi(f"http://{LOOPBACK}:{am_port}")

        scale = TimeScale(self.time_scale)
        prometheus = ManagedProcess(
            "prometheus",
            [prometheus_bin, f"--config.file={self._prometheus_config(am_port, with_rules=False)}",
             f"--storage.tsdb.path={self.workdir / 'prometheus' / 'data'}",
             f"--web.listen-address={LOOPBACK}:{prom_port}", f"--web.external-url=http://{LOOPBACK}:{prom_port}/",
             f"--rules.alert.for-grace-period={scale.render(PROMETHEUS_FOR_GRACE_PERIOD)}",
             f"--rules.alert.for-outage-tolerance={scale.render(PROMETHEUS_OUTAGE_TOLERANCE)}",
             "--web.enable-lifecycle"],
            log_dir=self.workdir / "logs", ports=[prom_port],
        )
        self.processes.append(prometheus)
        prometheus.start()
        wait_http_ok(prometheus, f"http://{LOOPBACK}:{prom_port}/-/ready", timeout=60)
        self.prom = PrometheusApi(f"http://{LOOPBACK}:{prom_port}")
        # Rules once both models are scraped, as in the single-model suite: no alert before the first scrape.
        poll("both models scraped", lambda: len(self.prom.query("up == 1")) == len(self.models), timeout=60,
             diagnose=lambda: json.dumps(self.prom.targets(), indent=1)[:3000])
        self._prometheus_config(am_port, with_rules=True)
        self.prom.reload()
        for model in self.models.values():
            model.traffic = Traffic(model.url)
            model.traffic.start()

    def diagnose(self) -> str:
        parts = [self.receiver.describe()]
        with contextlib.suppress(Exception):
            parts.append("alerts: " + json.dumps([(a["labels"].get("alertname"), a["labels"].get("model"), a["state"])
                                                  for a in self.prom.alerts()]))
        parts += [f"--- {p.name}\n{p.log_tail(8)}" for p in self.processes]
        return "\n".join(parts)

    def close(self) -> list[str]:
        problems = []
        for model in self.models.values() if hasattr(self, "models") else ():
            if model.traffic is not None:
                model.traffic.stop()
        for process in reversed(self.processes):
            try:
                process.stop()
            except Exception as error:  # every process is stopped even if one stop fails
                problems.append(repr(error))
        return problems + [f"port {port} still bound" for port in self.ports if not port_is_free(port)]


@contextlib.contextmanager
def running_fleet(workdir: Path, *, time_scale: float = DEFAULT_TIME_SCALE) -> Iterator[Fleet]:
    """A started ``Fleet``; on exit every process is stopped and every port checked free, whatever happened."""
    with recording_receiver(tuple(AlertingConfig().group_by)) as receiver:
        fleet = Fleet(workdir=workdir, receiver=receiver, time_scale=time_scale)
        try:
            fleet.start()
            yield fleet
        finally:
            leftovers = fleet.close()
            assert not leftovers, f"after stopping the fleet's servers: {leftovers}"
