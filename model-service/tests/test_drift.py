"""Drift inputs: bin edges, reference shares, bin semantics, exported counts, and PSI / JS from them."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from service_helpers import record, samples, series
from starlette.testclient import TestClient

from model_service import contract, data
from model_service.artifact import ArtifactMetadata
from model_service.drift import DriftCounts, js_distance, psi

NAMES = data.FEATURE_NAMES


def exported_drift(client: TestClient) -> dict[str, dict[str, tuple[float, float]]]:
    """Scrape the drift series: feature -> bin label -> (live count, reference share)."""
    scraped = samples(client)
    counts = series(scraped, "model_drift_bin_observations_total")
    shares = series(scraped, "model_drift_bin_reference_ratio")
    assert set(counts) == set(shares), "every bin must export both a counter and a reference share"
    result: dict[str, dict[str, tuple[float, float]]] = {}
    for labels, count in counts.items():
        as_dict = dict(labels)
        result.setdefault(as_dict["feature"], {})[as_dict["bin"]] = (count, shares[labels])
    return result


def as_arrays(bins: dict[str, tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    ordered = [bins[label] for label in sorted(bins)]
    return np.array([c for c, _ in ordered]), np.array([s for _, s in ordered])


def send_rows(client: TestClient, rows: np.ndarray, batch: int = 100) -> list[str]:
    classes: list[str] = []
    for start in range(0, len(rows), batch):
        records = [record(row, NAMES) for row in rows[start : start + batch].tolist()]
        response = client.post("/predict", json={"records": records})
        assert response.status_code == 200
        classes.extend(p["class"] for p in response.json()["predictions"])
    return classes


def test_bin_edges_are_the_training_quantiles(metadata: ArtifactMetadata) -> None:
    train = data.load_dataset().x_train
    probabilities = np.arange(1, metadata.drift_bin_count) / metadata.drift_bin_count
    for column, feature in enumerate(metadata.features):
        assert feature.name == NAMES[column]
        np.testing.assert_array_equal(feature.edges, np.quantile(train[:, column], probabilities))


def test_reference_shares_are_the_training_histogram_and_sum_to_one(
    client: TestClient, metadata: ArtifactMetadata
) -> None:
    train = data.load_dataset().x_train
    for column, feature in enumerate(metadata.features):
        # np.histogram with open outer edges is an independent implementation of the bin semantics.
        counts, _ = np.histogram(train[:, column], bins=[-np.inf, *feature.edges, np.inf])
        np.testing.assert_allclose(feature.shares, counts / counts.sum(), rtol=0, atol=1e-12)
    exported = exported_drift(client)
    assert set(exported) == {*NAMES, contract.PREDICTION_FEATURE}
    for feature, bins in exported.items():
        _, shares = as_arrays(bins)
        assert shares.sum() == pytest.approx(1.0, abs=1e-12), feature
    # The prediction's reference is the class mix the model predicts on its training data.
    from model_service.artifact import load_artifact

    predicted = load_artifact(client.app.state.service.settings.artifact_dir).estimator.predict(train)
    expected = {c: float(np.mean(predicted == c)) for c in metadata.classes}
    prediction_bins = exported[contract.PREDICTION_FEATURE]
    assert set(prediction_bins) == set(metadata.classes)
    for name, share in expected.items():
        assert prediction_bins[name][1] == pytest.approx(share, abs=1e-12)


def test_values_on_below_and_above_the_edges_land_in_the_right_bin(
    client: TestClient, metadata: ArtifactMetadata
) -> None:
    edges = metadata.features[0].edges
    last = len(edges)  # index of the last bin
    cases = {
        "below the first edge": (edges[0] - 10.0, 0),
        "on the first edge": (edges[0], 1),
        "just below the first edge": (np.nextafter(edges[0], -np.inf), 0),
        "on an inner edge": (edges[4], 5),
        "on the last edge": (edges[-1], last),
        "just below the last edge": (np.nextafter(edges[-1], -np.inf), last - 1),
        "above the last edge": (edges[-1] + 1e6, last),
    }
    expected = np.zeros(last + 1)
    for value_, bin_ in cases.values():
        response = client.post("/predict", json={"records": [record([value_] + [0.0] * 7, NAMES)]})
        assert response.status_code == 200
        expected[bin_] += 1
        assert contract.bin_index(edges, float(value_)) == bin_
    counts, _ = as_arrays(exported_drift(client)["f0"])
    np.testing.assert_array_equal(counts, expected)


def test_counters_equal_a_numpy_histogram_of_what_was_sent(
    client: TestClient, metadata: ArtifactMetadata
) -> None:
    rng = np.random.default_rng(5)
    # Held-out rows, some stretched far outside the training range, in single rows and batches (the
    # service bins single rows and batches with different code paths).
    rows = data.load_dataset().x_holdout[rng.choice(50_000, 700, replace=False)] * rng.choice(
        [1, 3], (700, 1)
    )
    classes = send_rows(client, rows[:30], batch=1) + send_rows(client, rows[30:], batch=67)
    exported = exported_drift(client)
    for column, feature in enumerate(metadata.features):
        expected, _ = np.histogram(rows[:, column], bins=[-np.inf, *feature.edges, np.inf])
        counts, _ = as_arrays(exported[feature.name])
        np.testing.assert_array_equal(counts, expected, err_msg=feature.name)
    prediction = exported[contract.PREDICTION_FEATURE]
    for name in metadata.classes:
        assert prediction[name][0] == classes.count(name)


def stats_from_exported(client: TestClient) -> dict[str, tuple[float, float, float]]:
    """PSI, JS distance and volume per feature, computed with numpy/scipy from the scraped series."""
    result = {}
    for feature, bins in exported_drift(client).items():
        counts, shares = as_arrays(bins)
        q = np.maximum(counts / counts.sum(), contract.PSI_EPSILON)
        p = np.maximum(shares, contract.PSI_EPSILON)
        psi_value = float(np.sum((q - p) * np.log(q / p)))
        js_value = float(jensenshannon(counts / counts.sum(), shares, base=2))
        result[feature] = (psi_value, js_value, float(counts.sum()))
    return result


def test_undrifted_traffic_at_minimum_volume_stays_under_the_thresholds(client: TestClient) -> None:
    volume = contract.DRIFT_MIN_WINDOW_OBSERVATIONS
    holdout = data.load_dataset().x_holdout
    rows = holdout[np.random.default_rng(11).choice(len(holdout), volume, replace=False)]
    send_rows(client, rows)
    for feature, (psi_value, js_value, observed) in stats_from_exported(client).items():
        assert observed == volume
        assert psi_value < contract.PSI_THRESHOLD, feature
        assert js_value < contract.JS_DISTANCE_THRESHOLD, feature


@pytest.mark.parametrize(
    ("shifted", "prediction_drifts"),
    [
        # Noise features: the inputs drift, the model (which ignores them) predicts as before.
        ({"f6": 1.0, "f7": -1.0}, False),
        # An informative feature: the inputs drift and so does the class mix.
        ({"f4": 1.5}, True),
    ],
    ids=["noise-features", "informative-feature"],
)
def test_shifted_features_and_only_they_exceed_the_thresholds(
    make_client: Callable[..., TestClient], shifted: dict[str, float], prediction_drifts: bool
) -> None:
    client = make_client()
    dataset = data.load_dataset()
    std = dataset.x_train.std(axis=0)
    rows = dataset.x_holdout[
        np.random.default_rng(12).choice(50_000, contract.DRIFT_MIN_WINDOW_OBSERVATIONS, False)
    ]
    rows = rows.copy()
    for name, sigmas in shifted.items():
        rows[:, NAMES.index(name)] += sigmas * std[NAMES.index(name)]
    send_rows(client, rows)
    statistics = stats_from_exported(client)
    for feature, (psi_value, js_value, _) in statistics.items():
        if feature in shifted:
            assert psi_value >= contract.PSI_THRESHOLD, feature
            assert js_value >= contract.JS_DISTANCE_THRESHOLD, feature
        elif feature == contract.PREDICTION_FEATURE:
            drifted = psi_value >= contract.PSI_THRESHOLD or js_value >= contract.JS_DISTANCE_THRESHOLD
            assert drifted == prediction_drifts, (psi_value, js_value)
        else:
            assert psi_value < contract.PSI_THRESHOLD, feature
            assert js_value < contract.JS_DISTANCE_THRESHOLD, feature
    # The in-process view on /drift computes the same numbers from the same counts.
    shown = {f["feature"]: f for f in client.get("/drift").json()["features"]}
    for feature, (psi_value, js_value, observed) in statistics.items():
        assert shown[feature]["psi"] == pytest.approx(psi_value, abs=1e-6)
        assert shown[feature]["js_distance"] == pytest.approx(js_value, abs=1e-6)
        assert shown[feature]["drifted"] == (
            feature in shifted or (feature == "prediction" and prediction_drifts)
        )
        assert shown[feature]["observations"] == observed


def test_statistics_match_values_computed_outside_this_code() -> None:
    # Shares 0.55/0.25/0.125/0.075 against a uniform reference: PSI 0.534 and JS 0.30456508 were
    # computed with promtool from the PromQL rules and with scipy (see the facts on drift in PromQL).
    counts = np.array([55, 25, 12.5, 7.5]) * 40
    reference = np.full(4, 0.25)
    assert psi(counts, reference) == pytest.approx(0.534, abs=5e-4)
    assert js_distance(counts, reference) == pytest.approx(0.30456508260303977, abs=1e-12)
    assert np.isnan(psi(np.zeros(4), reference))


def test_empty_bin_contributes_a_finite_psi_term(metadata: ArtifactMetadata) -> None:
    counts = np.array([0, 10, 10, 10, 10, 10, 10, 10, 10, 10])
    value_ = psi(counts, np.full(10, 0.1))
    assert np.isfinite(value_)
    q = np.maximum(counts / counts.sum(), contract.PSI_EPSILON)
    assert value_ == pytest.approx(np.sum((q - 0.1) * np.log(q / 0.1)))


def test_batch_and_single_row_paths_count_alike(metadata: ArtifactMetadata) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(0, 3, (500, len(NAMES)))
    predicted = rng.integers(0, len(metadata.classes), 500)
    batched = DriftCounts(metadata.features, metadata.prediction)
    single = DriftCounts(metadata.features, metadata.prediction)
    batched.observe(x, predicted)
    for i in range(len(x)):
        single.observe(x[i : i + 1], predicted[i : i + 1])
    np.testing.assert_array_equal(batched.snapshot(), single.snapshot())
    assert batched.snapshot().sum() == 500 * (len(NAMES) + 1)


def test_reference_is_validated(metadata: ArtifactMetadata) -> None:
    from pydantic import ValidationError

    from model_service.drift import FeatureReference

    with pytest.raises(ValidationError, match="strictly increasing"):
        FeatureReference(name="x", edges=(1.0, 1.0), shares=(0.3, 0.3, 0.4))
    with pytest.raises(ValidationError, match="sum to 1"):
        FeatureReference(name="x", edges=(1.0,), shares=(0.3, 0.3))
    with pytest.raises(ValidationError, match="2 shares"):
        FeatureReference(name="x", edges=(1.0,), shares=(1.0,))
    doc = json.loads(metadata.model_dump_json())
    doc["feature_names"] = [*doc["feature_names"][:-1], contract.PREDICTION_FEATURE]
    doc["features"][-1]["name"] = contract.PREDICTION_FEATURE
    with pytest.raises(ValidationError, match="reserved"):
        ArtifactMetadata.model_validate(doc)
