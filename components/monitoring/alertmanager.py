"""Alertmanager's configuration, rendered from the typed ``alerting`` section by one pure function.

The routing tree routes by team first, then by the project's one severity vocabulary (``contracts.Severity``):
an alert with a ``team`` label that ``alerting.teams`` names goes to that team's receivers; every other alert (a
model without a team, the cluster's own) to the platform's, the top-level ones. Within each, ``critical`` pages
(PagerDuty), ``warning`` is posted (Slack and the generic webhook), ``info`` and anything without a severity go to
the null receiver, and a ``critical`` alert mutes the ``warning`` of the same alert in the same namespace. A team
without any receiver for a severity falls back to the platform's for it, so that no alert is dropped while
someone can be told. The chart's ``Watchdog`` (always firing, by design) and ``InfoInhibitor`` (a helper for
muting ``info`` alerts) are never notified.

Credentials never enter the configuration: each receiver reads its secret from a file (``routing_key_file``,
``api_url_file``, ``url_file``) in ``secrets_dir``, where Alertmanager mounts the Kubernetes Secret that holds
them. So the configuration is no secret, the Helm values stay readable in a preview, and a rotated credential
is picked up without a restart. The same function serves the end-to-end tests, which point ``secrets_dir`` at a
local folder and every receiver, through ``endpoint_overrides``, at a local HTTP server.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from components.contracts import SEVERITY_LABEL, TEAM_LABEL, Severity
from components.monitoring.config import AlertingConfig, TeamReceiversConfig

Receivers = AlertingConfig | TeamReceiversConfig
"""A set of receivers: the platform's (the ``alerting`` section's own) or a team's."""

NULL_RECEIVER = "null"
"""The receiver that notifies nobody: the root route's, and that of ``info`` alerts."""

NEVER_NOTIFIED = ("Watchdog", "InfoInhibitor")
"""kube-prometheus-stack alerts that fire by design and must never reach a person."""

ALERTMANAGER_SECRETS_MOUNT = "/etc/alertmanager/secrets"
"""Where the Prometheus operator mounts each Secret named in ``alertmanagerSpec.secrets`` (one folder each)."""

CHART_TEMPLATES = "/etc/alertmanager/config/*.tmpl"
"""Notification templates the chart mounts from ``alertmanager.templateFiles`` (none unless set in extraValues)."""


class Receiver(enum.StrEnum):
    """The receivers the stack can configure, named as Alertmanager's routes name them."""

    PAGERDUTY = "pagerduty"
    SLACK = "slack"
    WEBHOOK = "webhook"

    @property
    def secret_key(self) -> str:
        """Key of this receiver's credential in the Secret, and so the file name under ``secrets_dir``."""
        return _SECRET_KEYS[self]


_SECRET_KEYS = {
    Receiver.PAGERDUTY: "pagerduty-routing-key",
    Receiver.SLACK: "slack-webhook-url",
    Receiver.WEBHOOK: "webhook-url",
}

SEVERITY_RECEIVERS: Mapping[Severity, tuple[Receiver, ...]] = {
    Severity.CRITICAL: (Receiver.PAGERDUTY,),
    Severity.WARNING: (Receiver.SLACK, Receiver.WEBHOOK),
    Severity.INFO: (),
}
"""Who hears of each severity, when configured. A ``critical`` alert falls back to the ``warning`` receivers
while no pager is configured, so that it is never dropped as long as someone can be told."""


def receiver_name(receiver: Receiver, team: str | None = None) -> str:
    """The name of a receiver in Alertmanager's configuration: ``slack``, or ``fraud-slack`` for team ``fraud``."""
    return str(receiver) if team is None else f"{team}-{receiver}"


def secret_key(receiver: Receiver, team: str | None = None) -> str:
    """Key of a receiver's credential in the Secret, and so its file name under ``secrets_dir``."""
    return receiver.secret_key if team is None else f"{team}-{receiver.secret_key}"


def configured_receivers(receivers: Receivers) -> tuple[Receiver, ...]:
    """The receivers whose credentials a receiver set holds, in routing order."""
    configured = {
        Receiver.PAGERDUTY: receivers.pagerduty.configured,
        Receiver.SLACK: receivers.slack.configured,
        Receiver.WEBHOOK: receivers.webhook.configured,
    }
    return tuple(receiver for receiver in Receiver if configured[receiver])


def _receiver_sets(alerting: AlertingConfig) -> list[tuple[str | None, Receivers]]:
    """The platform's receivers (team ``None``), then each team's, by name."""
    return [(None, alerting), *sorted(alerting.teams.items())]


def receiver_secrets(alerting: AlertingConfig) -> dict[str, str]:
    """The Secret's data, ``{file name: credential}``, for every configured receiver of the platform and the teams
    (plain text: wrap it)."""
    found = {}
    for team, receivers in _receiver_sets(alerting):
        values = {
            Receiver.PAGERDUTY: receivers.pagerduty.routing_key,
            Receiver.SLACK: receivers.slack.webhook_url,
            Receiver.WEBHOOK: receivers.webhook.url,
        }
        found.update({
            secret_key(receiver, team): secret.get_secret_value().strip()
            for receiver, secret in values.items()
            if secret is not None
        })
    return found


def severity_receivers(receivers: Receivers) -> dict[Severity, tuple[Receiver, ...]]:
    """The configured receivers of a set each severity reaches (empty: none of the set)."""
    configured = set(configured_receivers(receivers))
    reached = {
        severity: tuple(r for r in options if r in configured) for severity, options in SEVERITY_RECEIVERS.items()
    }
    if not reached[Severity.CRITICAL]:
        reached[Severity.CRITICAL] = reached[Severity.WARNING]
    return reached


def _severity_routes(reached: Mapping[Severity, tuple[str, ...]]) -> list[dict[str, Any]]:
    routes = []
    for severity in Severity:
        names = reached[severity] or (NULL_RECEIVER,)
        for position, name in enumerate(names):
            route: dict[str, Any] = {"receiver": name, "matchers": [_matcher(SEVERITY_LABEL, severity)]}
            if position < len(names) - 1:
                route["continue"] = True  # the next route of the same severity notifies too
            routes.append(route)
    return routes


def render_alertmanager_config(
    alerting: AlertingConfig,
    *,
    secrets_dir: str,
    endpoint_overrides: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Alertmanager's configuration (``alertmanager.yaml``) as a plain mapping, with no credential in it.

    ``secrets_dir`` is the folder holding one file per credential, named by ``secret_key``: in the cluster,
    ``f"{ALERTMANAGER_SECRETS_MOUNT}/<Secret name>"``. ``endpoint_overrides`` sends a receiver's notifications
    (by ``receiver_name``) to another URL, for tests against local servers: PagerDuty's Events API URL (its routing
    key is still read from its file), or the Slack or webhook URL itself, which then replaces the URL file.

    >>> config = render_alertmanager_config(AlertingConfig(), secrets_dir="/secrets")
    >>> config["route"]["receiver"], [r["name"] for r in config["receivers"]]
    ('null', ['null'])
    """
    overrides = {str(name): url for name, url in (endpoint_overrides or {}).items()}
    declared = {receiver_name(r, team) for team, receivers in _receiver_sets(alerting)
                for r in configured_receivers(receivers)}
    unknown = set(overrides) - declared
    if unknown:
        raise ValueError(
            f"endpoint_overrides names receivers that are not configured: {', '.join(sorted(unknown))}"
        )
    folder = secrets_dir.rstrip("/")
    platform = {severity: tuple(receiver_name(r) for r in receivers)
                for severity, receivers in severity_receivers(alerting).items()}

    routes: list[dict[str, Any]] = [
        {"receiver": NULL_RECEIVER, "matchers": [_matcher("alertname", "|".join(NEVER_NOTIFIED), regex=True)]}
    ]
    for team, receivers in sorted(alerting.teams.items()):
        own = severity_receivers(receivers)
        reached = {severity: tuple(receiver_name(r, team) for r in own[severity]) or platform[severity]
                   for severity in Severity}
        routes.append({"receiver": NULL_RECEIVER, "matchers": [_matcher(TEAM_LABEL, team)],
                       "routes": _severity_routes(reached)})
    routes += _severity_routes(platform)

    return {
        "global": {"resolve_timeout": alerting.resolve_timeout},
        "route": {
            "receiver": NULL_RECEIVER,
            "group_by": list(alerting.group_by),
            "group_wait": alerting.group_wait,
            "group_interval": alerting.group_interval,
            "repeat_interval": alerting.repeat_interval,
            "routes": routes,
        },
        "inhibit_rules": [
            {
                "source_matchers": [_matcher(SEVERITY_LABEL, Severity.CRITICAL)],
                "target_matchers": [_matcher(SEVERITY_LABEL, Severity.WARNING)],
                "equal": list(alerting.inhibit_equal),
            }
        ],
        "receivers": [
            {"name": NULL_RECEIVER},
            *(_receiver(r, team, receivers, folder, overrides.get(receiver_name(r, team)))
              for team, receivers in _receiver_sets(alerting) for r in configured_receivers(receivers)),
        ],
        "templates": [CHART_TEMPLATES],
    }


def _receiver(receiver: Receiver, team: str | None, receivers: Receivers, folder: str,
              endpoint: str | None) -> dict[str, Any]:
    credential = f"{folder}/{secret_key(receiver, team)}"
    name = receiver_name(receiver, team)
    if receiver is Receiver.PAGERDUTY:
        pagerduty: dict[str, Any] = {"routing_key_file": credential, "send_resolved": True}
        if endpoint is not None:
            pagerduty["url"] = endpoint
        return {"name": name, "pagerduty_configs": [pagerduty]}
    if receiver is Receiver.SLACK:
        slack: dict[str, Any] = {"send_resolved": True}
        slack.update({"api_url": endpoint} if endpoint is not None else {"api_url_file": credential})
        if receivers.slack.channel is not None:
            slack["channel"] = receivers.slack.channel
        return {"name": name, "slack_configs": [slack]}
    webhook: dict[str, Any] = {"send_resolved": True}
    webhook.update({"url": endpoint} if endpoint is not None else {"url_file": credential})
    return {"name": name, "webhook_configs": [webhook]}


def _matcher(label: str, value: str, *, regex: bool = False) -> str:
    """One matcher in Alertmanager's string form, the value always quoted (``severity="critical"``)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'{label}{"=~" if regex else "="}"{escaped}"'
