"""After known traffic, the exposed series equal what was sent: counts, histogram buckets, labels."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable

import numpy as np
import pytest
from service_helpers import record, samples, series, value
from starlette.testclient import TestClient

from model_service import contract, data
from model_service.artifact import ArtifactMetadata


def cumulative(values: list[float], bounds: tuple[float, ...]) -> dict[str, float]:
    """Expected ``le`` buckets of a classic histogram holding ``values`` (bounds are inclusive)."""
    array = np.asarray(values, dtype=float)
    result = {contract.format_le(b): float(np.count_nonzero(array <= b)) for b in bounds}
    result["+Inf"] = float(len(array))
    return result


def buckets(scraped: dict, name: str, **labels: str) -> dict[str, float]:
    found = {}
    for label_set, sample in series(scraped, f"{name}_bucket").items():
        as_dict = dict(label_set)
        le = as_dict.pop("le")
        if as_dict == labels:
            found[le] = sample
    return found


@pytest.fixture(scope="module")
def traffic() -> list[list[dict[str, float]]]:
    """Twelve predict bodies of 1 to 6 held-out records."""
    dataset = data.load_dataset()
    rng = np.random.default_rng(42)
    bodies = []
    for size in [1, 2, 3, 4, 5, 6, 1, 1, 2, 3, 5, 1]:
        rows = dataset.x_holdout[rng.choice(len(dataset.x_holdout), size, replace=False)]
        bodies.append([record(row.tolist(), data.FEATURE_NAMES) for row in rows])
    return bodies


def test_exposed_values_equal_the_traffic_sent(
    client: TestClient, metadata: ArtifactMetadata, traffic: list[list[dict[str, float]]]
) -> None:
    request_sizes: list[float] = []
    response_sizes: list[float] = []
    classes: list[str] = []
    confidences: list[float] = []
    for records in traffic:
        body = json.dumps({"records": records}).encode()
        response = client.post("/predict", content=body, headers={"content-type": "application/json"})
        assert response.status_code == 200
        request_sizes.append(len(body))
        response_sizes.append(len(response.content))
        classes.extend(p["class"] for p in response.json()["predictions"])
        confidences.extend(p["confidence"] for p in response.json()["predictions"])
    bad = b'{"records": []}'
    assert client.post("/predict", content=bad).status_code == 422
    request_sizes.append(len(bad))

    scraped = samples(client)
    model = {"model_name": metadata.model_name, "model_version": metadata.model_version}

    # Interface: requests by route, method and code; sizes bucketed exactly.
    assert value(scraped, "model_http_requests_total", route="/predict", method="POST", code="200") == len(
        traffic
    )
    assert value(scraped, "model_http_requests_total", route="/predict", method="POST", code="422") == 1
    assert value(scraped, "model_http_request_duration_seconds_count", route="/predict") == len(traffic) + 1
    assert buckets(scraped, "model_http_request_size_bytes", route="/predict") == cumulative(
        request_sizes, contract.SIZE_BUCKETS_BYTES
    )
    assert value(scraped, "model_http_request_size_bytes_sum", route="/predict") == sum(request_sizes)
    error_body = len(client.post("/predict", content=bad).content)
    assert buckets(scraped, "model_http_response_size_bytes", route="/predict") == cumulative(
        [*response_sizes, error_body], contract.SIZE_BUCKETS_BYTES
    )
    assert value(scraped, "model_http_requests_in_flight") == 1  # the scrape itself is in flight

    # Model: predictions by class, confidence histogram, inference count, info.
    by_class = Counter(classes)
    for name in metadata.classes:
        assert value(scraped, "model_predictions_total", **model, **{"class": name}) == by_class[name]
    assert buckets(scraped, "model_prediction_confidence_ratio", **model) == cumulative(
        confidences, contract.CONFIDENCE_BUCKETS
    )
    assert value(scraped, "model_prediction_confidence_ratio_sum", **model) == pytest.approx(sum(confidences))
    assert value(scraped, "model_inference_duration_seconds_count", **model) == len(traffic)
    assert value(scraped, "model_info", **model) == 1
    assert value(scraped, "model_trained_timestamp_seconds", **model) == metadata.trained_at.timestamp()


def test_latency_buckets_include_the_configured_slo_thresholds(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(latency_slo_thresholds_seconds=(0.02, 0.3))
    assert (
        client.post("/predict", json={"records": [dict.fromkeys(data.FEATURE_NAMES, 0.0)]}).status_code == 200
    )
    exposed = set(buckets(samples(client), "model_http_request_duration_seconds", route="/predict"))
    assert {"0.02", "0.3"} <= exposed
    assert exposed == {contract.format_le(b) for b in contract.latency_buckets((0.02, 0.3))} | {"+Inf"}


def test_thresholds_from_the_environment(monkeypatch: pytest.MonkeyPatch, artifact_dir: object) -> None:
    from model_service.app import create_app
    from model_service.settings import Settings

    monkeypatch.setenv(
        contract.ENV_LATENCY_SLO_THRESHOLDS_SECONDS, contract.format_latency_thresholds([0.015, 0.075])
    )
    monkeypatch.setenv("MODEL_ARTIFACT_DIR", str(artifact_dir))
    with TestClient(create_app(Settings(), load="now")) as client:
        client.get("/healthz")
        exposed = set(buckets(samples(client), "model_http_request_duration_seconds", route="/healthz"))
    assert {"0.015", "0.075"} <= exposed


def test_no_created_series_and_contract_types(client: TestClient) -> None:
    client.post("/predict", json={"records": [dict.fromkeys(data.FEATURE_NAMES, 0.0)]})
    client.post("/feedback", json={"feedback": [{"prediction_id": "x", "actual_class": "class_0"}]})
    text = client.get("/metrics").text
    assert "_created" not in text
    declared = {line.split()[2]: line.split()[3] for line in text.splitlines() if line.startswith("# TYPE ")}
    for spec in contract.ALL_METRICS:
        if spec is contract.FAULT_INJECTIONS:
            continue  # only exposed when fault injection is configured
        assert spec.name in declared, f"{spec.name} is not exposed"
        # The text format has no "info" type: prometheus-client exposes info metrics as gauges.
        assert declared[spec.name] == ("gauge" if spec.type == "info" else spec.type)


def test_exposed_label_names_match_the_contract(client: TestClient) -> None:
    client.post("/predict", json={"records": [dict.fromkeys(data.FEATURE_NAMES, 0.0)]})
    client.post("/predict", content=b"{")
    scraped = samples(client)
    for spec in contract.ALL_METRICS:
        names = [spec.name] if spec.type != "histogram" else [f"{spec.name}_count", f"{spec.name}_sum"]
        for name in names:
            for labels in series(scraped, name):
                assert tuple(sorted(k for k, _ in labels)) == tuple(sorted(spec.labels)), name


def test_model_metrics_can_be_switched_off(make_client: Callable[..., TestClient]) -> None:
    client = make_client(model_metrics_enabled=False)
    assert (
        client.post("/predict", json={"records": [dict.fromkeys(data.FEATURE_NAMES, 0.0)]}).status_code == 200
    )
    text = client.get("/metrics").text
    assert "model_drift_bin_observations_total" not in text
    assert "model_predictions_total" not in text
    assert "model_info{" in text
    assert client.get("/drift").status_code == 404


def test_openmetrics_exposition_when_the_scraper_asks(client: TestClient) -> None:
    client.post("/predict", json={"records": [dict.fromkeys(data.FEATURE_NAMES, 0.0)]})
    response = client.get("/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"})
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")
    assert "_created" not in response.text
    assert "# TYPE model_drift_bin_observations counter" in response.text


def test_a_deployment_names_the_model_it_reports(make_client: Callable[..., TestClient]) -> None:
    # One image deployed under two names must report two models, in the metrics and in the prediction ids.
    client = make_client(name="fraud-scorer")
    answer = client.post("/predict", json={"records": [dict.fromkeys(data.FEATURE_NAMES, 0.0)]}).json()
    assert answer["model_name"] == "fraud-scorer"
    info = series(samples(client), contract.MODEL_INFO.name)
    assert [dict(labels)["model_name"] for labels in info] == ["fraud-scorer"]
    prediction = answer["predictions"][0]
    feedback = {"feedback": [{"prediction_id": prediction["id"], "actual_class": prediction["class"]}]}
    scored = client.post("/feedback", json=feedback)
    assert (scored.status_code, scored.json()["accepted"]) == (200, 1), scored.text
