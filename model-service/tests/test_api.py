"""The HTTP API: valid and invalid predict bodies, the feedback flow, probes and fault injection."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from service_helpers import SIGNING_KEY, record, samples, value
from starlette.testclient import TestClient

from model_service import contract, data
from model_service.artifact import ArtifactMetadata
from model_service.feedback import PredictionIdCodec

NAMES = data.FEATURE_NAMES


def holdout_records(count: int, seed: int = 0) -> tuple[list[dict[str, float]], np.ndarray]:
    dataset = data.load_dataset()
    index = np.random.default_rng(seed).choice(len(dataset.x_holdout), count, replace=False)
    rows = dataset.x_holdout[index]
    return [record(row.tolist(), NAMES) for row in rows], rows


def test_valid_batch_returns_one_prediction_per_record_with_ids(
    client: TestClient, metadata: ArtifactMetadata
) -> None:
    records, rows = holdout_records(5)
    response = client.post("/predict", json={"records": records})
    assert response.status_code == 200
    body = response.json()
    assert body["model_name"] == metadata.model_name
    assert body["model_version"] == metadata.model_version
    predictions = body["predictions"]
    assert len(predictions) == 5
    assert len({p["id"] for p in predictions}) == 5
    # The service returns what the trained estimator predicts for these rows.
    from model_service.artifact import load_artifact

    probabilities = load_artifact(client.app.state.service.settings.artifact_dir).predict_proba(rows)
    assert [p["class"] for p in predictions] == [metadata.classes[i] for i in probabilities.argmax(axis=1)]
    assert [p["confidence"] for p in predictions] == pytest.approx(probabilities.max(axis=1).tolist())


def test_integer_values_are_numbers(client: TestClient) -> None:
    response = client.post("/predict", json={"records": [dict.fromkeys(NAMES, 1)]})
    assert response.status_code == 200


def _one_record(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = dict.fromkeys(NAMES, 0.5)
    for key, new in changes.items():
        if new is _DROP:
            del base[key]
        else:
            base[key] = new
    return base


_DROP = object()


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({"records": [_one_record(f3=_DROP)]}, "records[0].f3", "missing_field"),
        ({"records": [_one_record(color=1.0)]}, "records[0].color", "unexpected_field"),
        ({"records": [_one_record(f2="1.5")]}, "records[0].f2", "invalid_value"),
        ({"records": [_one_record(f2=True)]}, "records[0].f2", "invalid_value"),
        ({"records": [_one_record(f2=None)]}, "records[0].f2", "invalid_value"),
        ({"records": [_one_record(f2=[1.0])]}, "records[0].f2", "invalid_value"),
        ({"records": [_one_record(), _one_record(f7=_DROP)]}, "records[1].f7", "missing_field"),
        ({"records": []}, "records", "invalid_body"),
        ({"records": {"f0": 1}}, "records", "invalid_body"),
        ({"rows": [_one_record()]}, "records", "missing_field"),
        ({"records": [_one_record()], "extra": 1}, "extra", "unexpected_field"),
        ([_one_record()], "body", "invalid_body"),
    ],
    ids=[
        "missing",
        "extra",
        "string",
        "boolean",
        "null",
        "array",
        "missing-in-second-record",
        "empty-batch",
        "records-not-a-list",
        "no-records-key",
        "extra-top-level",
        "top-level-array",
    ],
)
def test_invalid_body_is_422_naming_the_field(client: TestClient, body: Any, field: str, reason: str) -> None:
    response = client.post("/predict", json=body)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail[0]["field"] == field
    assert detail[0]["type"] == reason
    scraped = samples(client)
    assert value(scraped, "model_invalid_requests_total", route="/predict", reason=reason) == 1
    assert value(scraped, "model_http_requests_total", route="/predict", method="POST", code="422") == 1


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
def test_non_finite_numbers_are_422(client: TestClient, literal: bytes) -> None:
    fields = b",".join(f'"{name}": 0.5'.encode() for name in NAMES[1:])
    response = client.post("/predict", content=b'{"records": [{"f0": ' + literal + b", " + fields + b"}]}")
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "records[0].f0"
    assert response.json()["detail"][0]["type"] == "invalid_value"


def test_invalid_json_is_422(client: TestClient) -> None:
    response = client.post("/predict", content=b'{"records": [', headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "invalid_json"
    assert response.json()["detail"][0]["field"] == "body"


def test_every_problem_is_listed(client: TestClient) -> None:
    response = client.post("/predict", json={"records": [_one_record(f0=_DROP, f1="x", bogus=2)]})
    assert response.status_code == 422
    reported = {(d["field"], d["type"]) for d in response.json()["detail"]}
    assert reported == {
        ("records[0].f0", "missing_field"),
        ("records[0].f1", "invalid_value"),
        ("records[0].bogus", "unexpected_field"),
    }


def test_batch_over_the_limit_is_413_naming_records(make_client: Callable[..., TestClient]) -> None:
    client = make_client(max_batch_size=4)
    assert client.post("/predict", json={"records": [_one_record()] * 4}).status_code == 200
    response = client.post("/predict", json={"records": [_one_record()] * 5})
    assert response.status_code == 413
    assert response.json()["detail"][0]["field"] == "records"
    assert response.json()["detail"][0]["type"] == "batch_too_large"
    assert (
        value(samples(client), "model_invalid_requests_total", route="/predict", reason="batch_too_large")
        == 1
    )


def test_body_over_the_limit_is_413_declared_or_streamed(make_client: Callable[..., TestClient]) -> None:
    client = make_client(max_body_bytes=2048)
    big = b'{"records": [' + b" " * 4096 + b"]}"
    declared = client.post("/predict", content=big)
    assert declared.status_code == 413
    assert declared.json()["detail"][0]["field"] == "body"

    def chunks() -> Any:
        # A generator body is sent chunked, without Content-Length: the limit must hold while streaming.
        for _ in range(8):
            yield b" " * 512

    streamed = client.post("/predict", content=chunks())
    assert streamed.status_code == 413
    assert (
        value(samples(client), "model_invalid_requests_total", route="/predict", reason="body_too_large") == 2
    )


def test_service_keeps_serving_after_bad_input(client: TestClient) -> None:
    for body in (b"{", b"[]", b'{"records": "x"}', b"\xff\xfe"):
        assert client.post("/predict", content=body).status_code == 422
    assert client.post("/predict", json={"records": [_one_record()]}).status_code == 200


def test_unknown_path_and_method(client: TestClient) -> None:
    assert client.get("/predict").status_code == 405
    assert client.get("/admin/../etc").status_code == 404
    scraped = samples(client)
    assert value(scraped, "model_http_requests_total", route="/predict", method="GET", code="405") == 1
    assert value(scraped, "model_http_requests_total", route="unmatched", method="GET", code="404") == 1


# --- feedback -----------------------------------------------------------------------------------------


def _predict(client: TestClient, count: int = 3) -> list[dict[str, Any]]:
    records, _ = holdout_records(count, seed=7)
    response = client.post("/predict", json={"records": records})
    assert response.status_code == 200
    return list(response.json()["predictions"])


def test_feedback_scores_earlier_predictions(client: TestClient, metadata: ArtifactMetadata) -> None:
    predictions = _predict(client, 3)
    wrong = next(c for c in metadata.classes if c != predictions[2]["class"])
    items = [
        {"prediction_id": predictions[0]["id"], "actual_class": predictions[0]["class"]},
        {"prediction_id": predictions[1]["id"], "actual_class": predictions[1]["class"]},
        {"prediction_id": predictions[2]["id"], "actual_class": wrong},
    ]
    response = client.post("/feedback", json={"feedback": items})
    assert response.status_code == 200
    assert response.json() == {"accepted": 3, "correct": 2}
    scraped = samples(client)
    labels = {"model_name": metadata.model_name, "model_version": metadata.model_version}
    expected: dict[tuple[str, str], int] = {}
    for prediction, item in zip(predictions, items, strict=True):
        key = (prediction["class"], item["actual_class"])
        expected[key] = expected.get(key, 0) + 1
    for predicted in metadata.classes:
        for actual in metadata.classes:
            outcome = "correct" if predicted == actual else "incorrect"
            exported = value(
                scraped,
                "model_feedback_total",
                **labels,
                predicted_class=predicted,
                actual_class=actual,
                outcome=outcome,
            )
            assert exported == expected.get((predicted, actual), 0)


def test_feedback_is_scored_by_another_replica_with_the_same_key(
    make_client: Callable[..., TestClient],
) -> None:
    issuing, scoring = make_client(), make_client()
    prediction = _predict(issuing, 1)[0]
    item = {"prediction_id": prediction["id"], "actual_class": prediction["class"]}
    assert scoring.post("/feedback", json={"feedback": [item]}).json() == {"accepted": 1, "correct": 1}


def _rejected(client: TestClient, item: dict[str, str]) -> dict[str, Any]:
    response = client.post("/feedback", json={"feedback": [item]})
    assert response.status_code == 422
    return dict(response.json()["detail"][0])


def _rejection_count(client: TestClient, metadata: ArtifactMetadata, reason: str) -> float:
    return value(
        samples(client),
        "model_feedback_rejected_total",
        model_name=metadata.model_name,
        model_version=metadata.model_version,
        reason=reason,
    )


def test_tampered_id_is_rejected_and_counted(client: TestClient, metadata: ArtifactMetadata) -> None:
    prediction = _predict(client, 1)[0]
    token = prediction["id"]
    # Flip one character of the signed payload (the predicted class byte sits near the start).
    tampered = token[:2] + ("A" if token[2] != "A" else "B") + token[3:]
    detail = _rejected(client, {"prediction_id": tampered, "actual_class": prediction["class"]})
    assert detail == {
        "loc": ["feedback", 0, "prediction_id"],
        "field": "feedback[0].prediction_id",
        "msg": detail["msg"],
        "type": "bad_signature",
    }
    assert _rejection_count(client, metadata, "bad_signature") == 1


def test_id_signed_with_another_key_is_rejected(
    make_client: Callable[..., TestClient], metadata: ArtifactMetadata
) -> None:
    other = make_client(feedback_signing_key="a-completely-different-key")
    prediction = _predict(other, 1)[0]
    client = make_client()
    detail = _rejected(client, {"prediction_id": prediction["id"], "actual_class": prediction["class"]})
    assert detail["type"] == "bad_signature"


@pytest.mark.parametrize("token", ["", "not base64 !", "QUJD", "A" * 300])
def test_malformed_id_is_rejected(client: TestClient, metadata: ArtifactMetadata, token: str) -> None:
    response = client.post(
        "/feedback", json={"feedback": [{"prediction_id": token, "actual_class": "class_0"}]}
    )
    assert response.status_code == 422
    detail = response.json()["detail"][0]
    assert detail["field"] == "feedback[0].prediction_id"
    if token and len(token) <= 256:
        assert detail["type"] == "malformed_id"
        assert _rejection_count(client, metadata, "malformed_id") == 1
    else:
        # Empty and overlong ids fail schema validation before any decoding.
        assert detail["type"] == "invalid_value"


def test_expired_id_is_rejected(client: TestClient, metadata: ArtifactMetadata) -> None:
    runtime = client.app.state.service.runtime
    max_age_ms = client.app.state.service.settings.feedback_max_age_seconds * 1000
    old = runtime.codec.issue([0], time.time_ns() // 1_000_000 - max_age_ms - 1000)[0]
    detail = _rejected(client, {"prediction_id": old, "actual_class": "class_0"})
    assert detail["type"] == "expired"
    assert _rejection_count(client, metadata, "expired") == 1
    fresh = runtime.codec.issue([0], time.time_ns() // 1_000_000 - max_age_ms + 60_000)[0]
    assert client.post(
        "/feedback", json={"feedback": [{"prediction_id": fresh, "actual_class": "class_0"}]}
    ).json() == {
        "accepted": 1,
        "correct": 1,
    }


def test_id_from_another_model_version_is_rejected(client: TestClient, metadata: ArtifactMetadata) -> None:
    # What a replica of the previous version, sharing the key, would have issued during a rollout.
    previous = PredictionIdCodec(
        SIGNING_KEY.encode(), metadata.model_name, "0.9.0", len(metadata.classes), 3600
    )
    token = previous.issue([1], time.time_ns() // 1_000_000)[0]
    detail = _rejected(client, {"prediction_id": token, "actual_class": "class_1"})
    assert detail["type"] == "other_model"
    assert "'0.9.0'" in detail["msg"]
    assert _rejection_count(client, metadata, "other_model") == 1


def test_unknown_actual_class_is_rejected(client: TestClient, metadata: ArtifactMetadata) -> None:
    prediction = _predict(client, 1)[0]
    detail = _rejected(client, {"prediction_id": prediction["id"], "actual_class": "class_9"})
    assert detail["field"] == "feedback[0].actual_class"
    assert detail["type"] == "unknown_class"
    assert _rejection_count(client, metadata, "unknown_class") == 1


def test_feedback_batch_is_all_or_nothing(client: TestClient, metadata: ArtifactMetadata) -> None:
    prediction = _predict(client, 1)[0]
    good = {"prediction_id": prediction["id"], "actual_class": prediction["class"]}
    bad = {"prediction_id": "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo", "actual_class": "class_0"}
    response = client.post("/feedback", json={"feedback": [good, bad]})
    assert response.status_code == 422
    assert [d["field"] for d in response.json()["detail"]] == ["feedback[1].prediction_id"]
    scraped = samples(client)
    scored = sum(v for (name, _), v in scraped.items() if name == "model_feedback_total")
    assert scored == 0
    assert client.post("/feedback", json={"feedback": [good]}).json() == {"accepted": 1, "correct": 1}


def test_feedback_body_validation(client: TestClient) -> None:
    response = client.post("/feedback", json={"feedback": [{"prediction_id": "x"}]})
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "feedback[0].actual_class"
    assert (
        value(samples(client), "model_invalid_requests_total", route="/feedback", reason="missing_field") == 1
    )


# --- probes -------------------------------------------------------------------------------------------


def test_readiness_before_and_after_the_model_loads(make_client: Callable[..., TestClient]) -> None:
    client = make_client(load="manual")
    assert client.get("/healthz").status_code == 200
    not_ready = client.get("/readyz")
    assert not_ready.status_code == 503
    assert not_ready.json()["detail"][0]["type"] == "model_not_ready"
    assert client.post("/predict", json={"records": [_one_record()]}).status_code == 503
    assert "model_info" not in client.get("/metrics").text

    client.app.state.service.load()

    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert client.post("/predict", json={"records": [_one_record()]}).status_code == 200
    assert "model_info{" in client.get("/metrics").text


def test_background_load_turns_ready(make_client: Callable[..., TestClient]) -> None:
    with make_client(load="background") as client:
        deadline = time.monotonic() + 20
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "model did not load in the background"
            time.sleep(0.05)
        assert client.post("/predict", json={"records": [_one_record()]}).status_code == 200


def test_failed_load_fails_readiness_and_liveness(
    make_client: Callable[..., TestClient], tmp_path: Any
) -> None:
    client = make_client(artifact_dir=tmp_path / "missing")
    readyz = client.get("/readyz")
    assert readyz.status_code == 503
    assert "metadata.json is missing" in readyz.json()["detail"][0]["msg"]
    assert client.get("/healthz").status_code == 503


def test_tampered_artifact_is_refused(
    make_client: Callable[..., TestClient], artifact_dir: Any, tmp_path: Any
) -> None:
    import shutil

    copy = tmp_path / "artifact"
    shutil.copytree(artifact_dir, copy)
    with (copy / "model.joblib").open("ab") as handle:
        handle.write(b"\0")
    client = make_client(artifact_dir=copy)
    assert client.get("/readyz").status_code == 503
    assert "SHA-256" in client.get("/readyz").json()["detail"][0]["msg"]


# --- fault injection ----------------------------------------------------------------------------------


def test_fault_injection_is_off_by_default(client: TestClient) -> None:
    for _ in range(20):
        assert client.post("/predict", json={"records": [_one_record()]}).status_code == 200
    assert "model_fault_injections_total" not in client.get("/metrics").text


def test_injected_errors_and_latency_burn_the_slo(make_client: Callable[..., TestClient]) -> None:
    client = make_client(fault_error_ratio=1.0, fault_extra_latency_seconds=0.12)
    response = client.post("/predict", json={"records": [_one_record()]})
    assert response.status_code == 500
    assert response.json()["detail"][0]["type"] == "injected_fault"
    scraped = samples(client)
    assert value(scraped, "model_fault_injections_total", kind="error") == 1
    assert value(scraped, "model_fault_injections_total", kind="latency") == 1
    assert value(scraped, "model_http_requests_total", route="/predict", method="POST", code="500") == 1
    # The delayed request lands above the 0.1 s SLO bucket.
    assert value(scraped, "model_http_request_duration_seconds_bucket", route="/predict", le="0.1") == 0
    assert value(scraped, "model_http_request_duration_seconds_bucket", route="/predict", le="0.25") == 1


@pytest.mark.parametrize("ratio", [0.5, 0.1, 0.0225, 1 / 3])
def test_a_partial_error_ratio_holds_in_every_run_of_consecutive_requests(
    make_client: Callable[..., TestClient], ratio: float
) -> None:
    client = make_client(fault_error_ratio=ratio)
    record = {"records": [_one_record()]}
    failed = [client.post("/predict", json=record).status_code == 500 for _ in range(400)]
    assert sum(failed) == pytest.approx(400 * ratio, abs=1)
    # Any window of consecutive requests, as an SLO window sees them, holds the share to within one request.
    for size in (9, 40, 133):
        for start in range(0, len(failed) - size):
            assert abs(sum(failed[start : start + size]) - size * ratio) <= 1, (size, start)
    scraped = samples(client)
    assert value(scraped, "model_fault_injections_total", kind="error") == sum(failed)


def test_id_codec_rejects_other_versions() -> None:
    key = b"k" * 32
    old = PredictionIdCodec(key, "m", "1.0.0", 3, 3600)
    new = PredictionIdCodec(key, "m", "2.0.0", 3, 3600)
    other_name = PredictionIdCodec(key, "n", "1.0.0", 3, 3600)
    now = time.time_ns() // 1_000_000
    token = old.issue([2], now)[0]
    assert old.verify(token, now).class_index == 2
    with pytest.raises(ValueError, match="model version '1.0.0'") as error:
        new.verify(token, now)
    assert getattr(error.value, "reason") == "other_model"  # noqa: B009
    with pytest.raises(ValueError) as error:
        other_name.verify(token, now)
    assert getattr(error.value, "reason") == "bad_signature"  # noqa: B009


def test_contract_routes_are_served(client: TestClient) -> None:
    for route in (
        contract.ROUTE_HEALTHZ,
        contract.ROUTE_READYZ,
        contract.ROUTE_METRICS,
        contract.ROUTE_DRIFT,
    ):
        assert client.get(route).status_code == 200
