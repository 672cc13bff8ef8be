"""One local HTTP server that stands in for PagerDuty, Slack and a webhook, and records what each receives.

Alertmanager's receivers are pointed at ``/<receiver name>`` of this server (``/pagerduty``, ``/slack``,
``/webhook``, or a team's ``/fraud-slack``) through the alerting component's endpoint overrides, so each route
of the configuration is observed separately; a receiver's kind is the last word of its name. Each
notification is parsed into the alerts it carries, from the payload each integration really sends:

* the webhook's JSON holds every alert with its labels and status;
* PagerDuty's Events API v2 event holds ``event_action`` (trigger/resolve), the routing key Alertmanager read
  from its secret file, and the firing and resolved alerts with their labels in ``custom_details``;
* Slack's message holds the status, the group's labels and the labels all its alerts share in its title.

Answers are what the real services answer (202 for PagerDuty, ``ok`` for Slack), so Alertmanager records a
success and does not retry.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.processes import LOOPBACK, poll, port_is_free

KINDS = ("pagerduty", "slack", "webhook")


def receiver_kind(receiver: str) -> str:
    """``pagerduty``, ``slack`` or ``webhook``: what a receiver named ``slack`` or ``fraud-slack`` integrates."""
    kind = receiver.rsplit("-", 1)[-1]
    if kind not in KINDS:
        raise ValueError(f"receiver {receiver!r} names no integration ({', '.join(KINDS)})")
    return kind


@dataclass(frozen=True)
class Alert:
    """One alert of a notification, as far as the integration's payload tells it."""

    name: str
    status: str
    """``firing`` or ``resolved``."""
    labels: dict[str, str]


@dataclass(frozen=True)
class Notification:
    """One request a receiver got."""

    receiver: str
    received_at: float
    """Wall-clock time (``time.time()``) of its arrival."""
    status: str
    """``firing`` or ``resolved`` for the whole notification."""
    alerts: tuple[Alert, ...]
    body: dict[str, Any] = field(repr=False)

    def names(self, status: str | None = None) -> set[str]:
        return {a.name for a in self.alerts if status is None or a.status == status}


_SLACK_TITLE = re.compile(r"^\[(FIRING|RESOLVED)(?::(\d+))?\]\s+(.*)$")


def _parse_pagerduty(body: dict[str, Any]) -> tuple[str, tuple[Alert, ...]]:
    """Alerts from the event's ``custom_details``, where Alertmanager lists the firing and resolved alerts."""
    status = "resolved" if body.get("event_action") == "resolve" else "firing"
    details = body.get("payload", {}).get("custom_details", {})
    alerts: list[Alert] = []
    for key in ("firing", "resolved"):
        items = details.get(key) or []
        if not isinstance(items, list):
            raise ValueError(f"custom_details.{key} is not a list of alerts: {items!r}")
        for item in items:
            labels = {str(k): str(v) for k, v in item.get("labels", {}).items()}
            alerts.append(Alert(name=labels.get("alertname", ""), status=item.get("status", key), labels=labels))
    return status, tuple(alerts)


def _parse_slack(body: dict[str, Any], group_by: tuple[str, ...]) -> tuple[str, tuple[Alert, ...]]:
    """Status and alert name from the default title ``[FIRING:n] <group label values> (<common values>)``.

    Slack's payload carries label values only, the group's sorted by label name: the alert's name is found by
    its position among the sorted ``group_by`` labels.
    """
    attachments = body.get("attachments") or [{}]
    title = attachments[0].get("title", "")
    match = _SLACK_TITLE.match(title)
    if match is None:
        return "unknown", ()
    status = "firing" if match.group(1) == "FIRING" else "resolved"
    values = match.group(3).split(" (", 1)[0].split(" ")
    labels = dict(zip(sorted(group_by), values, strict=False))
    name = labels.get("alertname", "")
    return status, (Alert(name=name, status=status, labels=labels),) if name else ()


def _parse_webhook(body: dict[str, Any]) -> tuple[str, tuple[Alert, ...]]:
    alerts = tuple(
        Alert(name=a["labels"].get("alertname", ""), status=a["status"], labels=dict(a["labels"]))
        for a in body.get("alerts", [])
    )
    return body.get("status", "unknown"), alerts


class RecordingReceiver:
    """A threaded HTTP server on 127.0.0.1 that records every notification, by receiver."""

    def __init__(self, *, group_by: tuple[str, ...]) -> None:
        self.group_by = group_by
        self._lock = threading.Lock()
        self._notifications: list[Notification] = []
        self.errors: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # the method name http.server dispatches to
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                receiver._record(self.path, raw)
                kind = receiver_kind(self.path.lstrip("/"))
                if kind == "slack":
                    self._answer(200, b"ok", "text/plain")
                elif kind == "pagerduty":
                    self._answer(202, b'{"status":"success","message":"Event processed"}', "application/json")
                else:
                    self._answer(200, b"{}", "application/json")

            def _answer(self, code: int, body: bytes, content_type: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="receiver", daemon=True)

    def url(self, receiver: str) -> str:
        receiver_kind(receiver)
        return f"http://{LOOPBACK}:{self.port}/{receiver}"

    def _record(self, path: str, raw: bytes) -> None:
        """Parse and keep one notification; anything unparseable is kept as an error the tests assert on."""
        received = time.time()
        receiver = path.lstrip("/")
        try:
            kind = receiver_kind(receiver)
            body = json.loads(raw)
            if kind == "pagerduty":
                status, alerts = _parse_pagerduty(body)
            elif kind == "slack":
                status, alerts = _parse_slack(body, self.group_by)
            else:
                status, alerts = _parse_webhook(body)
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            self.errors.append(f"{path}: {error!r}: {raw[:300]!r}")
            return
        with self._lock:
            self._notifications.append(
                Notification(receiver=receiver, received_at=received, status=status, alerts=alerts, body=body)
            )

    def notifications(
        self, receiver: str | None = None, *, alert: str | None = None, since: float = 0.0
    ) -> list[Notification]:
        """Notifications received since ``since`` (wall clock), optionally of one receiver or one alert name."""
        with self._lock:
            found = list(self._notifications)
        return [
            n for n in found
            if n.received_at >= since
            and (receiver is None or n.receiver == receiver)
            and (alert is None or alert in n.names())
        ]

    def describe(self, since: float = 0.0) -> str:
        """Every notification since ``since``, one line each, for failure messages."""
        lines = [
            f"  {n.receiver:16} {n.status:8} {sorted((a.name, a.status) for a in n.alerts)}"
            for n in self.notifications(since=since)
        ]
        return "received:\n" + ("\n".join(lines) if lines else "  (nothing)")

    def wait_for(
        self, receiver: str, alert: str, status: str, *, since: float, timeout: float
    ) -> Notification:
        """The first notification to ``receiver`` since ``since`` in which ``alert`` has ``status``."""

        def found() -> Notification | None:
            for notification in self.notifications(receiver, alert=alert, since=since):
                if any(a.name == alert and a.status == status for a in notification.alerts):
                    return notification
            return None

        result = poll(
            f"{receiver} notified of {alert} {status}", found, timeout=timeout, interval=0.1,
            diagnose=lambda: self.describe(since),
        )
        assert isinstance(result, Notification)
        return result

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
        poll("receiver port released", lambda: port_is_free(self.port), timeout=10, interval=0.05)


@contextmanager
def recording_receiver(group_by: tuple[str, ...]) -> Iterator[RecordingReceiver]:
    receiver = RecordingReceiver(group_by=group_by)
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()
