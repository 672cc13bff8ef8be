"""The traffic generator against a real uvicorn server on 127.0.0.1, as the end-to-end tests use it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from service_helpers import running_server

from model_service import contract, data
from model_service.app import create_app
from model_service.artifact import ArtifactMetadata
from model_service.loadgen import EXPECTED_STATUS, MALFORMED_KINDS, DriftSpec, LoadConfig, parse_args, run
from model_service.serve import free_port
from model_service.settings import Settings

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

# Tests that count exactly what the service saw send every request, late if the service is slow under
# the machine's load, instead of skipping those due while the client is saturated.
EVERY_REQUEST: dict[str, Any] = {"concurrency": 32, "when_saturated": "wait", "timeout_seconds": 120.0}


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
            **EVERY_REQUEST,
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
            **EVERY_REQUEST,
        )
    )
    scraped = scrape(server)
    accuracy = total(scraped, "model_feedback_total", outcome="correct") / total(
        scraped, "model_feedback_total"
    )
    assert report.feedback_items == 1000
    assert abs(accuracy - metadata.holdout_accuracy) < 0.04


def test_relabelled_feedback_reports_another_class_for_one_true_class(server: str) -> None:
    report = run(
        LoadConfig(
            url=server,
            rate=200,
            duration=5,
            max_requests=250,
            batch_size=4,
            feedback_ratio=1.0,
            feedback_relabel={"class_0": "class_1"},
            **EVERY_REQUEST,
        )
    )
    assert report.feedback_items == 1000, report.summary()
    scraped = scrape(server)
    # No feedback names class_0 any more: its rows are reported as class_1, whose recall falls.
    assert total(scraped, "model_feedback_total", actual_class="class_0") == 0
    as_1 = total(scraped, "model_feedback_total", actual_class="class_1")
    recall_1 = total(scraped, "model_feedback_total", actual_class="class_1", outcome="correct") / as_1
    recall_2 = total(scraped, "model_feedback_total", actual_class="class_2", outcome="correct") / total(
        scraped, "model_feedback_total", actual_class="class_2"
    )
    # About two thirds of the items name class_1 (its rows and class_0's); most of class_0's were predicted
    # class_0, so class_1's recall about halves, while class_2 keeps the model's own (about 0.92).
    assert 500 < as_1 < 800, as_1
    assert recall_1 < 0.6 < 0.8 < recall_2, (recall_1, recall_2)


def test_malformed_requests_are_refused_and_counted(server: str) -> None:
    report = run(
        LoadConfig(url=server, rate=200, duration=5, max_requests=140, malformed_ratio=1.0, **EVERY_REQUEST)
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
    after = run(LoadConfig(url=server, rate=100, duration=1, max_requests=5, **EVERY_REQUEST))
    assert after.statuses["predict:200"] == 5


def test_drifted_traffic_is_what_the_drift_counters_see(server: str, metadata: ArtifactMetadata) -> None:
    report = run(
        LoadConfig(
            url=server,
            rate=300,
            duration=5,
            max_requests=400,
            batch_size=3,
            keep_rows=True,
            drift=DriftSpec(shift={"f2": 2.0}, scale={"f5": 3.0}),
            **EVERY_REQUEST,
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
    report = run(LoadConfig(url=server, rate=50, duration=1.0, **EVERY_REQUEST))
    # Requests are due at i / rate for i < rate * duration.
    assert report.requests["predict"] == 50
    assert report.elapsed_seconds >= 0.98


@pytest.fixture
def slow_server(make_settings: Callable[..., Settings], request: pytest.FixtureRequest) -> Iterator[str]:
    """A server that answers every /predict after ``request.param`` seconds."""
    settings = make_settings(fault_extra_latency_seconds=request.param, fault_latency_ratio=1.0)
    with running_server(create_app(settings, load="background")) as url:
        yield url


@pytest.mark.parametrize("slow_server", [5.0], indirect=True)
def test_a_saturated_client_skips_due_requests_to_keep_the_rate(slow_server: str) -> None:
    # 8 requests due within 70 ms, 2 allowed in flight, each answered after 5 s: the first two are still
    # in flight when the last is due unless the client stalls for seconds, so the other six are skipped.
    # A client that is late sends nothing in between (it does not yield until a request is due), so a
    # loaded machine cannot change the count either.
    report = run(LoadConfig(url=slow_server, rate=100, max_requests=8, concurrency=2))
    assert (report.requests["predict"], report.skipped) == (2, 6), report.summary()


@pytest.mark.parametrize("slow_server", [0.3], indirect=True)
def test_a_saturated_client_can_wait_and_send_every_request(slow_server: str) -> None:
    report = run(LoadConfig(url=slow_server, rate=100, max_requests=8, concurrency=2, when_saturated="wait"))
    assert (report.statuses["predict:200"], report.skipped) == (8, 0), report.summary()
    # Four rounds of two, each at least 0.3 s: the requests really waited for a free slot.
    assert report.elapsed_seconds >= 4 * 0.3


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="unknown features"):
        LoadConfig(drift=DriftSpec(shift={"nope": 1.0}))
    with pytest.raises(ValueError, match="feedback_accuracy"):
        LoadConfig(feedback_accuracy=1.5)
    with pytest.raises(ValueError, match=r"unknown classes \['nope'\]"):
        LoadConfig(feedback_relabel={"class_0": "nope"})
    with pytest.raises(ValueError, match="without feedback_accuracy"):
        LoadConfig(feedback_relabel={"class_0": "class_1"}, feedback_accuracy=0.5)
    config, _ = parse_args(["--mode", "feedback", "--feedback-relabel", "class_0=class_1"])
    assert dict(config.feedback_relabel) == {"class_0": "class_1"}


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


def test_the_heartbeat_file_is_touched_while_traffic_is_sent(
    server: str, tmp_path: Any, monkeypatch: Any
) -> None:
    import time

    import model_service.loadgen as loadgen

    monkeypatch.setattr(loadgen, "HEARTBEAT_SECONDS", 0.2)
    heartbeat = tmp_path / "heartbeat"
    started = time.time()
    report = run(
        LoadConfig(url=server, rate=50, duration=1.5, wait_ready_seconds=0, heartbeat_file=str(heartbeat))
    )
    assert sum(report.requests.values()) > 0
    # Touched while sending, not only at the start: its last touch is within a beat of the end of sending.
    assert heartbeat.stat().st_mtime >= started + 1.5 - 0.2 - 0.1, heartbeat.stat().st_mtime - started


def test_the_command_line_takes_a_heartbeat_file() -> None:
    config, _ = parse_args(["--heartbeat-file", "/tmp/hb", "--duration", "3600"])
    assert config.heartbeat_file == "/tmp/hb" and config.duration == 3600


def test_out_of_range_values_are_what_the_input_quality_counters_see(
    server: str, metadata: ArtifactMetadata
) -> None:
    report = run(
        LoadConfig(
            url=server,
            rate=300,
            duration=5,
            max_requests=400,
            batch_size=3,
            keep_rows=True,
            out_of_range={"f6": 0.2},
            **EVERY_REQUEST,
        )
    )
    rows = report.rows()
    assert rows.shape == (1200, len(data.FEATURE_NAMES))
    low = np.array([f.minimum for f in metadata.features], dtype=float)
    high = np.array([f.maximum for f in metadata.features], dtype=float)
    above, below = rows > high, rows < low
    assert (above | below)[:, 6].mean() == pytest.approx(0.2, abs=0.05)
    assert above[:, 6].sum() == pytest.approx(below[:, 6].sum(), rel=0.4)
    scraped = scrape(server)
    assert total(scraped, contract.INPUT_RECORDS.name) == len(rows)
    for column, name in enumerate(data.FEATURE_NAMES):
        counted = total(
            scraped, contract.INPUT_QUALITY_ISSUES.name, feature=name, kind=contract.QUALITY_OUT_OF_RANGE
        )
        assert counted == (above | below)[:, column].sum(), name
    with pytest.raises(ValueError, match="invalid out_of_range"):
        LoadConfig(out_of_range={"f6": 1.5})
    with pytest.raises(ValueError, match="invalid out_of_range"):
        LoadConfig(out_of_range={"nope": 0.1})
    assert dict(parse_args(["--out-of-range", "f6=0.1"])[0].out_of_range) == {"f6": 0.1}
