"""Bounded state: the exposed series are exactly what the contract predicts, whatever the traffic."""

from __future__ import annotations

import string
from typing import Any

import numpy as np
from service_helpers import record, samples
from starlette.testclient import TestClient

from model_service import contract, data
from model_service.artifact import ArtifactMetadata
from model_service.metrics import new_registry

NAMES = data.FEATURE_NAMES


def runtime_series() -> int:
    """Series of the process, platform and GC collectors, which come on top of the contract."""
    return sum(len(family.samples) for family in new_registry().collect())


def send_varied_traffic(client: TestClient, seed: int) -> set[tuple[str, str, int]]:
    """Send many requests with distinct inputs; return the (route, method, code) triples to expect."""
    rng = np.random.default_rng(seed)
    expected: set[tuple[str, str, int]] = set()

    def post(path: str, body: Any, code: int) -> Any:
        response = client.post(path, json=body)
        assert response.status_code == code, response.text
        expected.add((path, "POST", code))
        return response

    predictions = []
    for _ in range(60):
        size = int(rng.integers(1, 40))
        # Distinct values every time, spread far beyond the training range.
        rows = rng.normal(0, 10, (size, len(NAMES))) * rng.choice([1e-3, 1, 1e3])
        response = post("/predict", {"records": [record(r, NAMES) for r in rows.tolist()]}, 200)
        predictions.extend(response.json()["predictions"])
    good = dict.fromkeys(NAMES, 0.0)
    for field in rng.choice(list(NAMES), 5):
        post("/predict", {"records": [{k: v for k, v in good.items() if k != field}]}, 422)
        post("/predict", {"records": [good | {f"x_{rng.integers(1e9)}": 1.0}]}, 422)
        post("/predict", {"records": [good | {str(field): "x"}]}, 422)
    post("/predict", {"records": [good] * 300}, 413)
    response = client.post("/predict", content=b"{" + bytes(rng.integers(97, 122, 50).tolist()))
    assert response.status_code == 422
    for prediction in predictions[:50]:
        post(
            "/feedback",
            {"feedback": [{"prediction_id": prediction["id"], "actual_class": prediction["class"]}]},
            200,
        )
    for token in ("garbage", predictions[0]["id"][:-3] + "AAA"):
        post("/feedback", {"feedback": [{"prediction_id": token, "actual_class": "class_0"}]}, 422)
    post("/feedback", {"feedback": [{"prediction_id": predictions[1]["id"], "actual_class": "class_7"}]}, 422)
    # Scanners: random paths and methods must not create series of their own.
    for _ in range(200):
        path = "/" + "".join(rng.choice(list(string.ascii_lowercase), 12))
        assert client.get(path).status_code == 404
    expected.add((contract.ROUTE_UNMATCHED, "GET", 404))
    for method in ("PROPFIND", "BREW", "DELETE"):
        assert client.request(method, "/predict").status_code == 405
        expected.add(("/predict", method if method in contract.HTTP_METHODS else "other", 405))
    for route in ("/healthz", "/readyz", "/drift"):
        assert client.get(route).status_code == 200
        expected.add((route, "GET", 200))
    return expected


def expected_series(metadata: ArtifactMetadata, triples: set[tuple[str, str, int]], reasons: int) -> int:
    routes = {route for route, _, _ in triples} | {contract.ROUTE_METRICS}
    duration = contract.histogram_series_count(
        contract.latency_buckets(contract.DEFAULT_LATENCY_SLO_THRESHOLDS_SECONDS)
    )
    sizes = 2 * contract.histogram_series_count(contract.SIZE_BUCKETS_BYTES)
    interface = (
        len(triples | {(contract.ROUTE_METRICS, "GET", 200)})  # model_http_requests_total
        + len(routes) * duration
        + len(routes & set(contract.SIZE_ROUTES)) * sizes
        + 1  # model_http_requests_in_flight
        + reasons  # model_invalid_requests_total, one per (route, reason) seen
    )
    model = contract.model_series_count(
        len(metadata.feature_names), len(metadata.classes), metadata.drift_bin_count
    )
    return interface + model + runtime_series()


def test_series_are_exactly_what_the_contract_predicts_and_stay_flat(
    client: TestClient, metadata: ArtifactMetadata
) -> None:
    triples = send_varied_traffic(client, seed=1)
    client.get("/metrics")  # so the scrape below also sees /metrics' own 200 series
    first = samples(client)
    reasons = {
        ("/predict", "missing_field"),
        ("/predict", "unexpected_field"),
        ("/predict", "invalid_value"),
        ("/predict", "batch_too_large"),
        ("/predict", "invalid_json"),
    }
    assert {
        (dict(labels)["route"], dict(labels)["reason"])
        for (name, labels) in first
        if name == "model_invalid_requests_total"
    } == reasons
    assert len(first) == expected_series(metadata, triples, len(reasons))
    assert len(first) < 500, "series budget per replica"

    state = client.app.state.service
    sizes = (
        len(state.interface._answers),
        len(state.runtime.metrics.drift.snapshot()),
        len(list(state.registry.collect())),
    )
    # A second round with other random inputs: the same series, and no internal structure grew.
    assert send_varied_traffic(client, seed=2) == triples
    second = samples(client)
    assert set(second) == set(first)
    assert sizes == (
        len(state.interface._answers),
        len(state.runtime.metrics.drift.snapshot()),
        len(list(state.registry.collect())),
    )


def test_model_series_exist_before_any_traffic(client: TestClient, metadata: ArtifactMetadata) -> None:
    scraped = samples(client)
    model_families = {spec.name for spec in contract.MODEL_METRICS}
    model_samples = [
        name
        for name, _ in scraped
        if name in model_families
        or name.removesuffix("_bucket").removesuffix("_sum").removesuffix("_count") in model_families
    ]
    assert len(model_samples) == contract.model_series_count(
        len(metadata.feature_names), len(metadata.classes), metadata.drift_bin_count
    )
