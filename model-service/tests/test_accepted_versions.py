"""Feedback across versions: a replica scores the ids of every version it accepts, each under its version.

During a canary the Service sends a prediction's feedback to a replica of either version; both share the
signing key. The ids name the version that predicted, so feedback is counted under that version wherever it
lands, and the ids of a version no replica accepts are refused with the contract's reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from pydantic import ValidationError
from service_helpers import SIGNING_KEY, samples, series, value
from starlette.testclient import TestClient

from model_service import contract
from model_service.artifact import ArtifactMetadata
from model_service.feedback import PredictionIdCodec
from model_service.settings import Settings

CANARY = "1.1.0"
"""The other version, whose replicas share the key (the sample's own is the artifact's)."""


def codec_of(metadata: ArtifactMetadata, version: str) -> PredictionIdCodec:
    """What a replica of ``version`` issues ids with."""
    return PredictionIdCodec(SIGNING_KEY.encode(), metadata.model_name, version, len(metadata.classes), 3600)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def feedback_counts(client: TestClient) -> dict[tuple[str, str, str], float]:
    """``model_feedback_total`` by (version, predicted, actual)."""
    return {
        (labels["model_version"], labels["predicted_class"], labels["actual_class"]): count
        for labels, count in (
            (dict(key), count) for key, count in series(samples(client), "model_feedback_total").items()
        )
    }


def test_an_id_of_another_accepted_version_is_scored_under_that_version(
    make_client: Callable[..., TestClient], metadata: ArtifactMetadata
) -> None:
    client = make_client(accepted_versions=(CANARY,))
    first, second = metadata.classes[0], metadata.classes[1]
    [canary_id] = codec_of(metadata, CANARY).issue([0], now_ms())
    [own_id] = codec_of(metadata, metadata.model_version).issue([1], now_ms())
    response = client.post(
        "/feedback",
        json={
            "feedback": [
                {"prediction_id": canary_id, "actual_class": second},
                {"prediction_id": own_id, "actual_class": second},
            ]
        },
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 2, "correct": 1}
    counts = feedback_counts(client)
    assert counts[(CANARY, first, second)] == 1, "scored under the version that predicted"
    assert counts[(metadata.model_version, second, second)] == 1
    assert sum(counts.values()) == 2, f"each item counted once, under one version: {counts}"
    scraped = samples(client)
    assert (
        value(
            scraped,
            "model_feedback_total",
            model_name=metadata.model_name,
            model_version=CANARY,
            predicted_class=first,
            actual_class=second,
            outcome=contract.OUTCOME_INCORRECT,
        )
        == 1
    )


def test_an_id_of_a_version_not_accepted_is_refused_with_its_reason(
    make_client: Callable[..., TestClient], metadata: ArtifactMetadata
) -> None:
    client = make_client(accepted_versions=(CANARY,))
    [retired] = codec_of(metadata, "0.9.0").issue([0], now_ms())
    response = client.post(
        "/feedback", json={"feedback": [{"prediction_id": retired, "actual_class": "class_0"}]}
    )
    assert response.status_code == 422
    [detail] = response.json()["detail"]
    assert detail["type"] == "other_model"
    assert "'0.9.0'" in detail["msg"] and f"'{CANARY}'" in detail["msg"], detail["msg"]
    scraped = samples(client)
    assert (
        value(
            scraped,
            "model_feedback_rejected_total",
            model_name=metadata.model_name,
            model_version=metadata.model_version,
            reason="other_model",
        )
        == 1
    )
    assert sum(feedback_counts(client).values()) == 0
    assert "0.9.0" not in {version for version, _, _ in feedback_counts(client)}


def test_the_series_count_is_fixed_by_the_accepted_versions(
    make_client: Callable[..., TestClient], metadata: ArtifactMetadata
) -> None:
    client = make_client(accepted_versions=(metadata.model_version, CANARY))
    model_families = {spec.name for spec in contract.MODEL_METRICS}

    def model_series() -> set[tuple[str, frozenset[tuple[str, str]]]]:
        return {
            key
            for key in samples(client)
            if key[0] in model_families
            or key[0].removesuffix("_bucket").removesuffix("_sum").removesuffix("_count") in model_families
        }

    before = model_series()
    assert len(before) == contract.model_series_count(
        len(metadata.feature_names), len(metadata.classes), metadata.drift_bin_count, versions=2
    )
    # Feedback of both versions and of retired ones: no series appears, none of them names a retired version.
    for version in (CANARY, metadata.model_version, "0.8.0", "0.9.0"):
        for class_index in range(len(metadata.classes)):
            [token] = codec_of(metadata, version).issue([class_index], now_ms())
            client.post("/feedback", json={"feedback": [{"prediction_id": token, "actual_class": "class_0"}]})
    assert model_series() == before
    assert {version for version, _, _ in feedback_counts(client)} == {metadata.model_version, CANARY}


def test_settings_read_the_list_from_the_environment_and_bound_it(
    monkeypatch: pytest.MonkeyPatch, make_settings: Callable[..., Settings]
) -> None:
    monkeypatch.setenv(contract.ENV_ACCEPTED_VERSIONS, " 1.0.0, 1.1.0 ,1.0.0")
    assert make_settings().accepted_versions == ("1.0.0", "1.1.0")
    with pytest.raises(ValidationError, match="at most 4 versions, got 5"):
        make_settings(accepted_versions="1,2,3,4,5")
    with pytest.raises(ValidationError, match="is not a model version"):
        make_settings(accepted_versions="1.0.0,no spaces")
    assert contract.scored_versions("1.1.0", ("1.0.0", "1.1.0")) == ("1.1.0", "1.0.0")
    with pytest.raises(
        ValueError, match=f"{contract.ENV_ACCEPTED_VERSIONS} with this replica's own version '5'"
    ):
        contract.scored_versions("5", ("1", "2", "3", "4"))


def test_a_replica_whose_list_leaves_no_room_for_its_own_version_is_not_ready(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(accepted_versions=("0.1.0", "0.2.0", "0.3.0", "0.4.0"))
    response = client.get(contract.ROUTE_READYZ)
    assert response.status_code == 503
    assert contract.ENV_ACCEPTED_VERSIONS in response.text
