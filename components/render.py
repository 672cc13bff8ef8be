"""A stack's monitors as files, for teams that deploy with something other than Pulumi: per model its
PrometheusRule and ServiceMonitor manifests, and the dashboards' JSON, as monitoring mixins ship them.

    python -m components.render --stack local --out rendered/      (make render STACK=local OUT=rendered)

The same pure functions the components declare their objects with, on the stack file's validated configuration:
what ``pulumi up`` would apply, without an engine or a cluster. Values set with ``--secret`` are not needed for
monitors and are not decrypted: each reads as a placeholder. Every group of a model lands in its PrometheusRule,
the SLO period's too, since a Prometheus of the team's own evaluates them (no store's rule evaluator here).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from components.config.loader import validate_settings
from components.config.source import RawSetting
from components.config.stack import StackConfig
from components.contracts import (
    MODEL_HTTP_PORT_NAME,
    MODEL_METRICS_PATH,
    PROJECT,
    TRACK_CANARY,
    TRACK_STABLE,
    common_labels,
    selector_labels,
)
from components.model.deployment import track_workload_name
from components.monitoring.values import discovery_contract, grafana_url, runbook_links
from components.monitors.dashboard_ids import dashboard_json, slug
from components.monitors.model_monitors import (
    COMPONENT,
    MONITORING_API_VERSION,
    ModelMonitorsArgs,
    rule_groups,
    service_monitor_spec,
)
from components.monitors.overview_dashboard import model_dashboard
from components.monitors.rule_model import to_spec
from components.monitors.runbooks import runbooks_dashboard

ROOT = Path(__file__).resolve().parents[1]
SECRET_PLACEHOLDER = "https://secret.invalid/not-decrypted"
"""What a ``--secret`` value reads as: a URL, so that it fits webhook URLs as well as keys and passwords."""


@dataclass(frozen=True)
class Rendered:
    """The files of one stack: ``path relative to the output folder -> content``."""

    files: dict[str, str]

    def write(self, out: Path) -> list[Path]:
        written = []
        for relative, content in sorted(self.files.items()):
            path = out / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
            written.append(path)
        return written


def stack_config(stack_file: Path) -> StackConfig:
    """The stack file's configuration, validated as the program validates it."""
    document = yaml.safe_load(stack_file.read_text()) or {}
    settings = {}
    for key, value in (document.get("config") or {}).items():
        if key.startswith(f"{PROJECT}:"):
            plain, secret = replace_secure(value, SECRET_PLACEHOLDER)
            settings[key.split(":", 1)[1]] = RawSetting(plain, secret)
    return validate_settings(settings, stack=stack_file.name.removeprefix("Pulumi.").removesuffix(".yaml"))


def replace_secure(value: Any, placeholder: str) -> tuple[Any, bool]:
    """``value`` with every ``{"secure": …}`` of a stack file (a ``--secret`` value, encrypted) replaced by
    ``placeholder``, and whether there was one."""
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return placeholder, True
        pairs = {k: replace_secure(v, placeholder) for k, v in value.items()}
        return {k: v for k, (v, _) in pairs.items()}, any(s for _, s in pairs.values())
    if isinstance(value, list):
        items = [replace_secure(v, placeholder) for v in value]
        return [v for v, _ in items], any(s for _, s in items)
    return value, False


@dataclass(frozen=True)
class Watched:
    """Where a model's monitors point: its Service's namespace and labels, and its workload."""

    namespace: str
    selector: dict[str, str]
    workload: str
    canary_workload: str | None = None


def monitors_args(config: StackConfig, name: str) -> tuple[ModelMonitorsArgs, Watched]:
    """What ``ObservedModel`` gives ``ModelMonitors`` for model ``name``, with its resolved target."""
    model = config.models[name]
    if model.external is not None:
        external = model.external
        watched = Watched(external.namespace, dict(external.selector), external.workload or name)
        port, metrics_path, workload_kind = external.port, external.metrics_path, external.workload_kind
    else:
        canary = track_workload_name(name, TRACK_CANARY) if model.canary is not None else None
        watched = Watched(model.namespace, selector_labels(name, name), track_workload_name(name, TRACK_STABLE), canary)
        port, metrics_path, workload_kind = MODEL_HTTP_PORT_NAME, MODEL_METRICS_PATH, "Deployment"
    args = ModelMonitorsArgs(
        namespace=watched.namespace, selector=watched.selector, port=port, metrics_path=metrics_path,
        model_name=name, workload=watched.workload, workload_kind=workload_kind,
        discovery=discovery_contract(config.monitoring.release_name), settings=model.monitors, team=model.team,
        # Only a kind cluster section has a Grafana host port.
        runbooks=runbook_links(grafana_url(config.monitoring, config.cluster.kind,
                                           getattr(config.cluster, "grafana_host_port", None)), config.alerting),
    )
    return args, watched


def render(config: StackConfig) -> Rendered:
    files: dict[str, str] = {}
    for name in config.models:
        args, watched = monitors_args(config, name)
        namespace = watched.namespace
        labels = {**common_labels(args.job_name, args.job_name, COMPONENT), **args.discovery.labels}
        rule = {
            "apiVersion": MONITORING_API_VERSION, "kind": "PrometheusRule",
            "metadata": {"name": f"{args.job_name}-rules", "namespace": namespace, "labels": labels},
            "spec": to_spec(rule_groups(args, namespace=namespace, workload=watched.workload,
                                        canary_workload=watched.canary_workload)),
        }
        monitor = {
            "apiVersion": MONITORING_API_VERSION, "kind": "ServiceMonitor",
            "metadata": {"name": args.job_name, "namespace": namespace, "labels": labels},
            "spec": service_monitor_spec(args, namespace=namespace, selector=watched.selector),
        }
        files[f"{name}/prometheus-rule.yaml"] = yaml.safe_dump(rule, sort_keys=False)
        files[f"{name}/service-monitor.yaml"] = yaml.safe_dump(monitor, sort_keys=False)
    for board in (model_dashboard(), runbooks_dashboard()):
        files[f"dashboards/{slug(board.build().title or '')}.json"] = dashboard_json(board) + "\n"
    return Rendered(files)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m components.render", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default="local", help="the stack whose file in stacks/ to render")
    parser.add_argument("--out", type=Path, default=Path("rendered"), help="folder to write into")
    args = parser.parse_args(argv)
    for path in render(stack_config(ROOT / "stacks" / f"Pulumi.{args.stack}.yaml")).write(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

