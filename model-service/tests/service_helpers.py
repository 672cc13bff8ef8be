"""Helpers for the service tests: scrape and index ``/metrics``, build records, run a real server."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.testclient import TestClient

SIGNING_KEY = "test-signing-key-0123456789"
"""Shared by the test apps, so an id issued by one test app verifies on another, as across replicas."""

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(client: TestClient) -> Samples:
    """Scrape ``/metrics`` and index every sample by name and label set."""
    response = client.get("/metrics")
    assert response.status_code == 200
    result = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            result[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return result


def value(scraped: Samples, name: str, **labels: str) -> float:
    """One sample's value; fails if the series is absent."""
    key = (name, frozenset(labels.items()))
    assert key in scraped, f"series {name}{labels} not exposed"
    return scraped[key]


def series(scraped: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    """All samples of one series name, by label set."""
    return {labels: v for (sample_name, labels), v in scraped.items() if sample_name == name}


def record(values: list[float] | tuple[float, ...], names: tuple[str, ...]) -> dict[str, float]:
    return dict(zip(names, (float(v) for v in values), strict=True))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_server(app: Starlette) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 in a thread; yield its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
