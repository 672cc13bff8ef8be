"""What every end-to-end scenario asks of the servers: scaled durations, the model's selector, the alerts that
fire in Prometheus and the alerts a notification carries."""

from __future__ import annotations

from typing import Any

from tests.e2e.receiver import Notification
from tests.e2e.stack import Trio
from tests.processes import poll


def seconds(trio: Trio, logical: str) -> float:
    """A duration of the monitors (``"10m"``) in the suite's compressed seconds."""
    return trio.scale.seconds(logical)


def scope(trio: Trio) -> str:
    """The matchers of the model's own series."""
    return f'namespace="{trio.declared.namespace}", job="{trio.declared.job}"'


def active(trio: Trio, name: str, state: str = "firing", **labels: str) -> list[dict[str, Any]]:
    """Prometheus' alerts named ``name`` in ``state`` whose labels include ``labels``."""
    return [
        a for a in trio.prom.alerts()
        if a["labels"].get("alertname") == name and a["state"] == state
        and all(a["labels"].get(k) == v for k, v in labels.items())
    ]


def firing(trio: Trio) -> list[dict[str, str]]:
    """The labels of every alert firing in Prometheus."""
    return [a["labels"] for a in trio.prom.alerts() if a["state"] == "firing"]


def wait_firing(trio: Trio, name: str, *, timeout: float, **labels: str) -> list[dict[str, Any]]:
    result = poll(f"{name} {labels} firing in Prometheus", lambda: active(trio, name, **labels), timeout=timeout,
                  interval=0.2, diagnose=trio.diagnose)
    assert isinstance(result, list)
    return result


def alerts_of(notification: Notification, name: str, status: str | None = None) -> list[dict[str, str]]:
    """The labels of the alerts named ``name`` (in ``status``) that ``notification`` carries."""
    return [a.labels for a in notification.alerts if a.name == name and (status is None or a.status == status)]
