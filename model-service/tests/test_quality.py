"""Input quality: each problem is counted for the feature and kind it is, refused records still get their 4xx,
out-of-range records are served, and the record counter is the exact denominator."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pytest
from pydantic import ValidationError
from service_helpers import samples, series, value
from starlette.testclient import TestClient

from model_service import contract, data
from model_service.artifact import ArtifactMetadata
from model_service.drift import FeatureReference

NAMES = data.FEATURE_NAMES
GOOD = dict.fromkeys(NAMES, 0.0)


def issues(client: TestClient, metadata: ArtifactMetadata) -> dict[tuple[str, str], float]:
    """Every (feature, kind) of the issue counter with its value."""
    found = {}
    for labels, sample in series(samples(client), contract.INPUT_QUALITY_ISSUES.name).items():
        as_dict = dict(labels)
        model = (as_dict["model_name"], as_dict["model_version"])
        assert model == (metadata.model_name, metadata.model_version)
        found[(as_dict["feature"], as_dict["kind"])] = sample
    return found


def records(client: TestClient, metadata: ArtifactMetadata) -> float:
    return value(
        samples(client), contract.INPUT_RECORDS.name,
        model_name=metadata.model_name, model_version=metadata.model_version,
    )


def post(client: TestClient, body: bytes | dict[str, object]) -> int:
    if isinstance(body, bytes):
        return client.post("/predict", content=body, headers={"content-type": "application/json"}).status_code
    return client.post("/predict", json=body).status_code


def test_every_feature_and_kind_exists_at_zero_before_any_traffic(
    client: TestClient, metadata: ArtifactMetadata
) -> None:
    assert issues(client, metadata) == {
        (feature, kind): 0.0 for feature in metadata.feature_names for kind in contract.INPUT_QUALITY_KINDS
    }
    assert records(client, metadata) == 0.0


def test_the_artifact_records_each_features_training_range(metadata: ArtifactMetadata) -> None:
    x_train = data.load_dataset().x_train
    for column, feature in enumerate(metadata.features):
        assert (feature.minimum, feature.maximum) == (x_train[:, column].min(), x_train[:, column].max())
        assert feature.minimum is not None and feature.maximum is not None
        assert feature.minimum < feature.edges[0] and feature.edges[-1] < feature.maximum


def test_each_refused_problem_is_counted_for_its_feature_and_kind(
    client: TestClient, metadata: ArtifactMetadata
) -> None:
    missing = {k: v for k, v in GOOD.items() if k != "f2"}
    bodies: list[tuple[bytes | dict[str, object], str, str]] = [
        ({"records": [missing]}, "f2", contract.QUALITY_MISSING),
        ({"records": [GOOD | {"f3": None}]}, "f3", contract.QUALITY_NULL),
        (b'{"records": [' + json.dumps(GOOD).replace('"f4": 0.0', '"f4": NaN').encode() + b"]}", "f4",
         contract.QUALITY_NON_FINITE),
        (b'{"records": [' + json.dumps(GOOD).replace('"f1": 0.0', '"f1": -Infinity').encode() + b"]}", "f1",
         contract.QUALITY_NON_FINITE),
        (b'{"records": [' + json.dumps(GOOD).replace('"f0": 0.0', '"f0": 1e999').encode() + b"]}", "f0",
         contract.QUALITY_NON_FINITE),
        ({"records": [GOOD | {"f5": "NaN"}]}, "f5", contract.QUALITY_NON_FINITE),
        ({"records": [GOOD | {"f7": "inf"}]}, "f7", contract.QUALITY_NON_FINITE),
    ]
    expected = dict.fromkeys(issues(client, metadata), 0.0)
    for body, feature, kind in bodies:
        assert post(client, body) == 422, (body, feature, kind)
        expected[(feature, kind)] += 1
        assert issues(client, metadata) == expected, (feature, kind)
    assert records(client, metadata) == len(bodies)
    # Refused as before, with the reason of the first error.
    scraped = samples(client)
    assert value(scraped, contract.INVALID_REQUESTS.name, route="/predict", reason="missing_field") == 1
    assert value(scraped, contract.INVALID_REQUESTS.name, route="/predict", reason="invalid_value") == 6
    # And the service keeps serving.
    assert post(client, {"records": [GOOD]}) == 200
    assert records(client, metadata) == len(bodies) + 1


def test_a_batch_counts_every_record_and_every_problem_of_each(
    client: TestClient, metadata: ArtifactMetadata
) -> None:
    batch = [
        GOOD,
        {k: v for k, v in GOOD.items() if k not in ("f0", "f6")},  # two features missing
        GOOD | {"f0": None},
        GOOD | {"f0": None, "f6": "abc"},  # a non-numeric string is malformed, not a quality kind
        GOOD | {"f6": True},
    ]
    assert post(client, {"records": batch}) == 422
    counted = {key: n for key, n in issues(client, metadata).items() if n}
    assert counted == {
        ("f0", contract.QUALITY_MISSING): 1,
        ("f6", contract.QUALITY_MISSING): 1,
        ("f0", contract.QUALITY_NULL): 2,
    }
    assert records(client, metadata) == len(batch)


def test_bodies_refused_as_a_whole_examine_no_record(client: TestClient, metadata: ArtifactMetadata) -> None:
    for body, status in (
        (b"{", 422),
        (b'{"records": []}', 422),
        (b'[{"f0": null}]', 422),
        (json.dumps({"records": [GOOD | {"f0": None}] * 300}).encode(), 413),
    ):
        assert post(client, body) == status, body
    assert records(client, metadata) == 0
    assert not any(issues(client, metadata).values())


def test_out_of_range_records_are_served_and_counted_per_feature(
    client: TestClient, metadata: ArtifactMetadata
) -> None:
    ranges = {f.name: (f.minimum, f.maximum) for f in metadata.features}
    low6, high6 = ranges["f6"]
    _, high2 = ranges["f2"]
    assert low6 is not None and high6 is not None and high2 is not None
    rows = [
        GOOD | {"f6": high6 + 1.0},
        GOOD | {"f6": low6 - 0.001, "f2": high2 * 2},
        GOOD | {"f6": high6, "f2": high2},  # the bounds themselves are in range
        GOOD,
    ]
    # One record at a time and the same records as one batch: the same counts twice over.
    for row in rows:
        assert post(client, {"records": [row]}) == 200
    response = client.post("/predict", json={"records": rows})
    assert response.status_code == 200 and len(response.json()["predictions"]) == len(rows)
    counted = {key: n for key, n in issues(client, metadata).items() if n}
    assert counted == {("f6", contract.QUALITY_OUT_OF_RANGE): 4, ("f2", contract.QUALITY_OUT_OF_RANGE): 2}
    assert records(client, metadata) == 2 * len(rows)


def test_counts_of_a_large_random_batch_equal_numpy_on_the_same_values(
    client: TestClient, metadata: ArtifactMetadata
) -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(0, 4, (200, len(NAMES)))
    low = np.array([f.minimum for f in metadata.features])
    high = np.array([f.maximum for f in metadata.features])
    expected = np.count_nonzero((x < low) | (x > high), axis=0)
    assert expected.sum() > 0
    assert post(client, {"records": [dict(zip(NAMES, row, strict=True)) for row in x.tolist()]}) == 200
    counted = issues(client, metadata)
    assert [counted[(name, contract.QUALITY_OUT_OF_RANGE)] for name in NAMES] == expected.tolist()


def test_an_artifact_without_ranges_counts_nothing_out_of_range() -> None:
    reference = FeatureReference(name="x", edges=(0.0,), shares=(0.5, 0.5))
    assert (reference.minimum, reference.maximum) == (None, None)
    with pytest.raises(ValidationError, match="give both minimum and maximum"):
        FeatureReference(name="x", edges=(0.0,), shares=(0.5, 0.5), minimum=-1.0)
    with pytest.raises(ValidationError, match="minimum 2.0 is above maximum 1.0"):
        FeatureReference(name="x", edges=(0.0,), shares=(0.5, 0.5), minimum=2.0, maximum=1.0)


def test_input_quality_and_all_instrumentation_can_be_switched_off(
    make_client: Callable[..., TestClient],
) -> None:
    body = {"records": [GOOD | {"f6": 1e6}]}
    without_quality = make_client(input_quality_metrics_enabled=False)
    assert post(without_quality, body) == 200
    text = without_quality.get("/metrics").text
    assert contract.INPUT_QUALITY_ISSUES.family not in text and contract.INPUT_RECORDS.family not in text
    assert "model_drift_bin_observations_total{" in text

    bare = make_client(instrumentation_enabled=False)
    assert post(bare, body) == 200
    assert post(bare, {"records": [GOOD | {"f6": None}]}) == 422
    scraped = samples(bare)
    for spec in (
        contract.HTTP_REQUESTS,
        contract.INVALID_REQUESTS,
        contract.PREDICTIONS,
        contract.INPUT_RECORDS,
        contract.INPUT_QUALITY_ISSUES,
        contract.DRIFT_BIN_OBSERVATIONS,
    ):
        assert series(scraped, spec.name) == {}, spec.name
    assert series(scraped, contract.MODEL_INFO.name), "the model's constant series stay"


def test_doctests_pass() -> None:
    import doctest

    from model_service import quality

    failures, attempted = doctest.testmod(quality, raise_on_error=False)
    assert attempted >= 3
    assert failures == 0
