"""Alertmanager's configuration: valid for the Alertmanager the chart deploys, and routed by team and severity.

``amtool`` of the deployed version (v0.34.0) checks the configuration each stack gives the Release, and
``amtool config routes test`` proves where each alert goes: a team's models' alerts to that team's receivers
(the platform's where the team has none for a severity); for the others, ``critical`` pages, ``warning`` reaches
Slack and the webhook, ``info``, unlabelled alerts and the chart's Watchdog reach nobody.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.monitoring.alertmanager import (
    ALERTMANAGER_SECRETS_MOUNT,
    Receiver,
    render_alertmanager_config,
)
from components.monitoring.config import AlertingConfig
from tests.chart_render import TEST_CREDENTIALS, every_option_run, monitoring_release, release_values
from tests.conftest import program_run
from tests.harness import FLEET_STACK, SECRET, ProgramRun, Registration, stack_files_under_test, stack_name
from tests.tools import require_tool

SECRET_TYPE = "kubernetes:core/v1:Secret"


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(require_tool("amtool")), *args], capture_output=True, text=True, check=False)


def write_config(config: Mapping[str, Any], folder: Path) -> Path:
    path = folder / "alertmanager.yaml"
    path.write_text(yaml.safe_dump(dict(config), sort_keys=False))
    return path


def check_config(config: Mapping[str, Any], folder: Path) -> None:
    result = amtool("check-config", str(write_config(config, folder)))
    assert result.returncode == 0, f"amtool check-config rejected the configuration:\n{result.stdout}{result.stderr}"


def routed_to(config_file: Path, **labels: str) -> list[str]:
    """The receivers ``amtool config routes test`` resolves for an alert with ``labels``."""
    matchers = [f"{key}={value}" for key, value in labels.items()]
    result = amtool("config", "routes", "test", f"--config.file={config_file}", *matchers)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().split(",")


def expected_routes(configured: set[str]) -> dict[str, list[str]]:
    """Where each kind of alert must go, given which receivers have credentials (the routing policy)."""
    chat = [r for r in ("slack", "webhook") if r in configured]
    return {
        "critical": ["pagerduty"] if "pagerduty" in configured else chat or ["null"],
        "warning": chat or ["null"],
        "info": ["null"],
    }


def receivers_secret(run: ProgramRun) -> Registration:
    release = monitoring_release(run)
    secrets = [r for r in run.children_of(release.parent) if r.typ == SECRET_TYPE and "receivers" in r.name]
    assert len(secrets) == 1, [s.name for s in secrets]
    return secrets[0]


def secret_data(secret: Registration) -> dict[str, str]:
    """A Secret's ``stringData``, which must reach the engine as a secret (the SDK wraps it whole)."""
    data = secret.inputs.get("stringData", {SECRET: {}})
    assert set(data) == {SECRET}, "a Secret's stringData must be a secret output"
    return dict(data[SECRET])


def configured_in(secret: Registration) -> set[str]:
    """Receivers with a credential in the Secret Alertmanager mounts (the key names them)."""
    keys = set(secret_data(secret))
    return {str(r) for r in Receiver if r.secret_key in keys}


RUNS = {f"stack-{stack_name(f)}": (lambda f=f: program_run(f)) for f in stack_files_under_test()} | {
    "every-receiver": lambda: every_option_run("eks")
}


@pytest.mark.parametrize("case", sorted(RUNS))
def test_release_config_passes_amtool_and_routes_each_severity(case: str, tmp_path: Path):
    run = RUNS[case]()
    config = release_values(monitoring_release(run))["alertmanager"]["config"]
    check_config(config, tmp_path)
    config_file = tmp_path / "alertmanager.yaml"
    configured = configured_in(receivers_secret(run))
    if case == "every-receiver":
        assert configured == {"pagerduty", "slack", "webhook"}
    for severity, receivers in expected_routes(configured).items():
        assert routed_to(config_file, severity=severity, alertname="ModelErrorBudgetBurn", namespace="models") == (
            receivers
        ), severity
    assert routed_to(config_file, alertname="NoSeverity", namespace="models") == ["null"]
    assert routed_to(config_file, alertname="Watchdog", severity="none") == ["null"]
    assert routed_to(config_file, alertname="Watchdog", severity="critical") == ["null"]
    assert routed_to(config_file, alertname="InfoInhibitor", severity="none") == ["null"]


@pytest.mark.parametrize(
    ("team", "severity", "receivers"),
    [
        # growth has Slack only: its pages fall back to its own chat, as the platform's do without a pager.
        ("growth", "warning", ["growth-slack"]),
        ("growth", "critical", ["growth-slack"]),
        ("growth", "info", ["null"]),
        # fraud has a pager and a webhook.
        ("fraud", "critical", ["fraud-pagerduty"]),
        ("fraud", "warning", ["fraud-webhook"]),
        # No team, or one that alerting.teams does not name: the platform's (a pager, no chat).
        (None, "critical", ["pagerduty"]),
        (None, "warning", ["null"]),
        ("unknown-team", "critical", ["pagerduty"]),
    ],
)
def test_each_teams_alerts_reach_its_receivers(team: str | None, severity: str, receivers: list[str],
                                               tmp_path: Path):
    run = program_run(FLEET_STACK)
    config = release_values(monitoring_release(run))["alertmanager"]["config"]
    check_config(config, tmp_path)
    labels = {"alertname": "ModelFeatureDrift", "namespace": "models", "severity": severity}
    if team is not None:
        labels["team"] = team
    assert routed_to(tmp_path / "alertmanager.yaml", **labels) == receivers
    secret_keys = set(secret_data(receivers_secret(run)))
    assert secret_keys == {"pagerduty-routing-key", "growth-slack-webhook-url", "fraud-pagerduty-routing-key",
                           "fraud-webhook-url"}, "each team's credentials in the Secret Alertmanager mounts"


@pytest.mark.parametrize(
    ("given", "configured"),
    [
        ({}, set()),
        ({"slack": {"webhookUrl": TEST_CREDENTIALS["slack"]}}, {"slack"}),
        ({"webhook": {"url": TEST_CREDENTIALS["webhook"]}}, {"webhook"}),
        ({"pagerduty": {"routingKey": TEST_CREDENTIALS["pagerduty"]}}, {"pagerduty"}),
        (
            {
                "pagerduty": {"routingKey": TEST_CREDENTIALS["pagerduty"]},
                "webhook": {"url": TEST_CREDENTIALS["webhook"]},
            },
            {"pagerduty", "webhook"},
        ),
    ],
    ids=["none", "slack", "webhook", "pagerduty", "pagerduty+webhook"],
)
def test_each_combination_of_receivers_routes_by_policy(given: dict[str, Any], configured: set[str], tmp_path: Path):
    config = render_alertmanager_config(AlertingConfig.model_validate(given), secrets_dir="/secrets")
    check_config(config, tmp_path)
    for severity, receivers in expected_routes(configured).items():
        assert routed_to(tmp_path / "alertmanager.yaml", severity=severity) == receivers, severity


def test_credentials_are_files_in_the_mounted_secret_and_never_in_the_values():
    run = every_option_run("eks")
    release = monitoring_release(run)
    values = release_values(release)
    secret = receivers_secret(run)
    secret_name = secret.inputs["metadata"]["name"]
    data = secret_data(secret)

    assert values["alertmanager"]["alertmanagerSpec"]["secrets"] == [secret_name]
    assert secret.inputs["metadata"]["namespace"] == release.inputs["namespace"]
    assert set(data.values()) == set(TEST_CREDENTIALS.values())

    files = {
        key: entry[key]
        for receiver in values["alertmanager"]["config"]["receivers"]
        for configs in (v for k, v in receiver.items() if k.endswith("_configs"))
        for entry in configs
        for key in entry
        if key.endswith("_file")
    }
    assert set(files) == {"routing_key_file", "api_url_file", "url_file"}
    folder = f"{ALERTMANAGER_SECRETS_MOUNT}/{secret_name}"
    assert {path.rpartition("/")[0] for path in files.values()} == {folder}
    assert {path.rpartition("/")[2] for path in files.values()} == set(data)

    recorded = json.dumps(release.inputs)
    for credential in TEST_CREDENTIALS.values():
        assert credential not in recorded


def test_critical_mutes_the_warning_of_the_same_alert_and_namespace():
    config = render_alertmanager_config(
        AlertingConfig.model_validate({"inhibitEqual": ["alertname", "namespace", "model"]}), secrets_dir="/s"
    )
    assert config["inhibit_rules"] == [
        {
            "source_matchers": ['severity="critical"'],
            "target_matchers": ['severity="warning"'],
            "equal": ["alertname", "namespace", "model"],
        }
    ]


def test_grouping_and_intervals_come_from_the_alerting_section(tmp_path: Path):
    alerting = AlertingConfig.model_validate(
        {"groupBy": ["alertname", "model"], "groupWait": "1m", "groupInterval": "10m", "repeatInterval": "1d",
         "resolveTimeout": "10m"}
    )
    config = render_alertmanager_config(alerting, secrets_dir="/s")
    check_config(config, tmp_path)
    route = config["route"]
    assert (route["group_by"], route["group_wait"], route["group_interval"], route["repeat_interval"]) == (
        ["alertname", "model"], "1m", "10m", "1d"
    )
    assert config["global"]["resolve_timeout"] == "10m"


def test_endpoint_overrides_point_every_receiver_at_local_servers(tmp_path: Path):
    alerting = AlertingConfig.model_validate(
        {
            "pagerduty": {"routingKey": TEST_CREDENTIALS["pagerduty"]},
            "slack": {"webhookUrl": TEST_CREDENTIALS["slack"], "channel": "#ml-alerts"},
            "webhook": {"url": TEST_CREDENTIALS["webhook"]},
        }
    )
    local = {receiver: f"http://127.0.0.1:9099/{receiver}" for receiver in Receiver}
    config = render_alertmanager_config(alerting, secrets_dir=str(tmp_path / "secrets"), endpoint_overrides=local)
    check_config(config, tmp_path)
    by_name = {receiver["name"]: receiver for receiver in config["receivers"]}
    assert by_name["pagerduty"]["pagerduty_configs"] == [
        {"routing_key_file": f"{tmp_path}/secrets/pagerduty-routing-key", "send_resolved": True,
         "url": local[Receiver.PAGERDUTY]}
    ]
    assert by_name["slack"]["slack_configs"] == [
        {"send_resolved": True, "api_url": local[Receiver.SLACK], "channel": "#ml-alerts"}
    ]
    assert by_name["webhook"]["webhook_configs"] == [{"send_resolved": True, "url": local[Receiver.WEBHOOK]}]


def test_an_override_for_an_unconfigured_receiver_is_refused():
    with pytest.raises(ValueError, match="not configured: slack"):
        render_alertmanager_config(
            AlertingConfig(), secrets_dir="/s", endpoint_overrides={Receiver.SLACK: "http://127.0.0.1:1/"}
        )
