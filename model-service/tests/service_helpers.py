"""Helpers for the service tests: scrape and index ``/metrics``, build records, run a real server."""

from __future__ import annotations

from contextlib import AbstractContextManager

from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.testclient import TestClient

from model_service.serve import serve_in_background

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


def running_server(app: Starlette) -> AbstractContextManager[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 in a thread; the context yields its base URL."""
    return serve_in_background(app)
