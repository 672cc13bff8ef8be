"""The traffic generator against a real uvicorn server on 127.0.0.1, as the end-to-end tests use it."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from model_service import contract, data
from model_service.artifact import ArtifactMetadata
from model_service.loadgen import EXPECTED_STATUS, MALFORMED_KINDS, DriftSpec, LoadConfig, parse_args, run

# The service's reason for each malformed kind the generator sends.
REASONS = {
    "missing_field": "missing_field",
    "unexpected_field": "unexpected_field",
    "non_numeric": "invalid_value",
    "non_finite": "invalid_value",
    "invalid_json": "invalid_json",
    "empty_batch": "invalid_body",
    "batch_too_large": "batch_too_large",
}


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = httpx.get(f"{url}/metrics").text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(scraped: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in scraped.items() if n == name and set(labels.items()) <= set(ls))


def test_feedback_with_a_chosen_accuracy(server: str) -> None:
    report = run(
        LoadConfig(
            url=server,
            rate=200,
            duration=5,
            max_requests=400,
            feedback_ratio=1.0,
            feedback_accuracy=0.7,
            concurrency=256,
        )
    )
    assert report.statuses["predict:200"] == 400, report.summary()
    assert report.feedback_items == 400, report.summary()
    scraped = scrape(server)
    correct = total(scraped, "model_feedback_total", outcome="correct")
    scored = total(scraped, "model_feedback_total")
    assert scored == 400, report.summary()
    assert correct == report.feedback_correct, (correct, report.summary())
    # Binomial(400, 0.7) has a standard deviation of 0.023: 0.7 +- 0.1 is over 4 sigma.
    assert abs(correct / scored - 0.7) < 0.1, (correct, report.summary())


def test_feedback_with_true_labels_measures_the_model(server: str, metadata: ArtifactMetadata) -> None:
    report = run(
        LoadConfig(
            url=server,
            rate=200,
            duration=5,
            max_requests=250,
            batch_size=4,
            feedback_ratio=1.0,
            concurrency=256,
        )
    )
    scraped = scrape(server)
    accuracy = total(scraped, "model_feedback_total", outcome="correct") / total(
        scraped, "model_feedback_total"
    )
    assert report.feedback_items == 1000
    assert abs(accuracy - metadata.holdout_accuracy) < 0.04


def test_malformed_requests_are_refused_and_counted(server: str) -> None:
    report = run(
        LoadConfig(url=server, rate=200, duration=5, max_requests=140, malformed_ratio=1.0, concurrency=256)
    )
    assert report.unexpected == {}
    sent = {kind: report.requests[f"malformed:{kind}"] for kind in MALFORMED_KINDS}
    assert sum(sent.values()) == 140 and min(sent.values()) == 20
    scraped = scrape(server)
    for kind, count in sent.items():
        assert report.statuses[f"malformed:{kind}:{EXPECTED_STATUS[kind]}"] == count
    by_reason: dict[str, int] = {}
    for kind, count in sent.items():
        by_reason[REASONS[kind]] = by_reason.get(REASONS[kind], 0) + count
    for reason, count in by_reason.items():
        assert total(scraped, "model_invalid_requests_total", route="/predict", reason=reason) == count
    # The service still answers good requests afterwards.
    assert run(LoadConfig(url=server, rate=100, duration=1, max_requests=5)).statuses["predict:200"] == 5


def test_drifted_traffic_is_what_the_drift_counters_see(server: str, metadata: ArtifactMetadata) -> None:
    report = run(
        LoadConfig(
            url=server,
            rate=300,
            concurrency=256,
            duration=5,
            max_requests=400,
            batch_size=3,
            keep_rows=True,
            drift=DriftSpec(shift={"f2": 2.0}, scale={"f5": 3.0}),
        )
    )
    rows = report.rows()
    assert rows.shape == (1200, len(data.FEATURE_NAMES))
    train = data.load_dataset().x_train
    mean, std = train.mean(axis=0), train.std(axis=0)
    assert (rows[:, 2].mean() - mean[2]) / std[2] == pytest.approx(2.0, abs=0.15)
    assert rows[:, 5].std() / std[5] == pytest.approx(3.0, rel=0.1)
    assert rows[:, 0].mean() == pytest.approx(mean[0], abs=0.15 * std[0])
    scraped = scrape(server)
    for column, feature in enumerate(metadata.features):
        expected, _ = np.histogram(rows[:, column], bins=[-np.inf, *feature.edges, np.inf])
        exported = [
            total(
                scraped, "model_drift_bin_observations_total", feature=feature.name, bin=contract.bin_label(i)
            )
            for i in range(len(feature.shares))
        ]
        assert exported == expected.tolist(), feature.name


def test_gradual_drift_ramps_up() -> None:
    spec = DriftSpec(shift={"f0": 1.0}, onset="gradual", start_seconds=10, ramp_seconds=20)
    assert [spec.strength(t, 60) for t in (0, 9.9, 10, 20, 30, 50)] == [0.0, 0.0, 0.0, 0.5, 1.0, 1.0]
    sudden = DriftSpec(shift={"f0": 1.0}, start_seconds=5)
    assert [sudden.strength(t, 60) for t in (4.9, 5, 59)] == [0.0, 1.0, 1.0]
    assert DriftSpec(onset="gradual").strength(15, 60) == 0.25


def test_open_loop_rate_and_duration(server: str) -> None:
    report = run(LoadConfig(url=server, rate=50, duration=1.0))
    # Requests are due at i / rate for i < rate * duration.
    assert report.requests["predict"] == 50
    assert report.elapsed_seconds >= 0.98


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="unknown features"):
        LoadConfig(drift=DriftSpec(shift={"nope": 1.0}))
    with pytest.raises(ValueError, match="feedback_accuracy"):
        LoadConfig(feedback_accuracy=1.5)


def test_cli_modes_map_to_a_config() -> None:
    config, as_json = parse_args(
        ["--mode", "drift", "--mode", "feedback", "--feedback-accuracy", "0.6", "--json"]
    )
    assert as_json
    assert config.drift is not None and dict(config.drift.shift) == {"f0": 1.0}
    assert (config.feedback_ratio, config.feedback_accuracy, config.malformed_ratio) == (1.0, 0.6, 0.0)
    config, _ = parse_args(["--scale", "f3=2", "--drift-onset", "gradual", "--mode", "malformed"])
    assert (
        config.drift is not None
        and dict(config.drift.scale) == {"f3": 2.0}
        and config.drift.onset == "gradual"
    )
    assert config.malformed_ratio == 1.0


def test_cli_runs_against_the_service(server: str) -> None:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "model_service.loadgen",
            "--url",
            server,
            "--rate",
            "100",
            "--requests",
            "20",
            "--mode",
            "feedback",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    summary = json.loads(completed.stdout)
    assert summary["statuses"] == {"predict:200": 20, "feedback:200": 20}
    assert summary["feedback_items"] == 20


def test_cli_fails_when_nothing_answers() -> None:
    from service_helpers import free_port

    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "model_service.loadgen",
            "--url",
            f"http://127.0.0.1:{free_port()}",
            "--requests",
            "3",
            "--rate",
            "100",
            "--wait-ready",
            "0",
            "--timeout",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 1
