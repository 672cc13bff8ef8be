"""Traffic generator for demos and end-to-end tests: ``python -m model_service.loadgen``.

It sends ``/predict`` requests at a fixed rate (open loop: request ``i`` is due at ``i / rate`` seconds,
whether or not earlier ones have answered, so a slow server shows up as latency instead of silently
lowering the load) for a duration or a number of requests. Rows are drawn from the held-out half of the
training data set, so undrifted traffic matches the reference distribution. On top of that it can

* drift chosen features: shift them by a number of training standard deviations or scale them around
  the training mean, suddenly or ramping up over time;
* put a share of one feature's values outside its training range, as a broken client or a unit change would;
* replace a share of requests with malformed ones (missing, unexpected or non-numeric fields, bad JSON,
  empty and oversized batches), each of which the service must refuse with a 4xx;
* send ground truth to ``/feedback`` for a share of the predictions, either the rows' true labels or
  labels chosen so that the model's measured accuracy is a given number.

Use it from Python with :func:`run` (or :func:`run_load` inside an event loop) and a :class:`LoadConfig`;
both return a :class:`LoadReport`.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import numpy as np

from model_service import data

MALFORMED_KINDS: tuple[str, ...] = (
    "missing_field",
    "unexpected_field",
    "non_numeric",
    "non_finite",
    "invalid_json",
    "empty_batch",
    "batch_too_large",
)
"""Malformed requests, sent in rotation; the first four are 422 with the field named, the last 413."""

EXPECTED_STATUS: Mapping[str, int] = {kind: 422 for kind in MALFORMED_KINDS} | {"batch_too_large": 413}
"""Status the service must answer for each malformed kind."""


@dataclass(frozen=True, kw_only=True)
class DriftSpec:
    """How to distort rows: per-feature shift (in training standard deviations) and scale factors."""

    shift: Mapping[str, float] = field(default_factory=dict)
    """Feature name to shift, in training standard deviations (1.0 moves the mean by one sigma)."""
    scale: Mapping[str, float] = field(default_factory=dict)
    """Feature name to factor applied to the distance from the training mean (2.0 doubles the spread)."""
    onset: Literal["sudden", "gradual"] = "sudden"
    """Sudden: full drift from ``start_seconds`` on. Gradual: ramps linearly from none to full."""
    start_seconds: float = 0.0
    """Seconds into the run at which drift begins."""
    ramp_seconds: float | None = None
    """Gradual onset only: seconds from start to full drift (default: the rest of the run)."""

    def strength(self, elapsed: float, duration: float) -> float:
        """Share of the full drift applied at ``elapsed`` seconds, in [0, 1]."""
        if elapsed < self.start_seconds:
            return 0.0
        if self.onset == "sudden":
            return 1.0
        ramp = (
            self.ramp_seconds if self.ramp_seconds is not None else max(duration - self.start_seconds, 1e-9)
        )
        return min(1.0, (elapsed - self.start_seconds) / ramp)


@dataclass(frozen=True, kw_only=True)
class LoadConfig:
    """One traffic run; the defaults send undrifted, well-formed traffic without feedback."""

    url: str = "http://127.0.0.1:8080"
    rate: float = 10.0
    """``/predict`` requests per second (feedback requests come on top)."""
    duration: float = 10.0
    """Seconds to send for."""
    max_requests: int | None = None
    """Stop after this many ``/predict`` requests even if time is left."""
    batch_size: int = 1
    """Records per ``/predict`` request."""
    drift: DriftSpec | None = None
    out_of_range: Mapping[str, float] = field(default_factory=dict)
    """Feature name to the share of records whose value is replaced by one outside the feature's training
    range, half one training standard deviation above its largest value and half as far below its smallest:
    the feature's outermost drift bins each gain about half the share, so a small share barely moves its
    drift."""
    malformed_ratio: float = 0.0
    """Share of ``/predict`` requests replaced by a malformed one."""
    feedback_ratio: float = 0.0
    """Share of returned predictions that get feedback."""
    feedback_accuracy: float | None = None
    """None: report each row's true label. A number: report the predicted class with this probability
    and another class otherwise, so the accuracy Prometheus computes converges to it."""
    feedback_relabel: Mapping[str, str] = field(default_factory=dict)
    """With true labels: report class ``B`` as the actual class of every row whose true class is ``A``
    (``{A: B}``), as a labelling pipeline that confuses two classes would; the model's recall of ``B``
    falls."""
    server_max_batch_size: int = 256
    """The service's ``MODEL_MAX_BATCH_SIZE``; a ``batch_too_large`` request sends one record more."""
    seed: int = 0
    concurrency: int = 64
    """Most requests in flight; what happens to a due request beyond it is :attr:`when_saturated`."""
    when_saturated: Literal["skip", "wait"] = "skip"
    """``skip``: drop a request that is due while ``concurrency`` are in flight and count it, so the
    offered rate stays fixed and a slow server shows as skips. ``wait``: send it as soon as one answers,
    late, so every request is sent whatever the machine's load (exact counts in tests depend on it)."""
    timeout_seconds: float = 10.0
    wait_ready_seconds: float = 10.0
    """Poll ``/readyz`` for up to this long before sending; 0 to start at once."""
    keep_rows: bool = False
    """Keep every successfully predicted row in the report (tests compare them with the drift counts)."""
    heartbeat_file: str | None = None
    """A file touched when the run starts and every ``HEARTBEAT_SECONDS`` while it sends: a liveness probe
    reads its age, so that a generator stuck without sending is restarted."""

    def __post_init__(self) -> None:
        checks = {
            "rate": self.rate > 0,
            "duration": self.duration > 0,
            "batch_size": self.batch_size >= 1,
            "malformed_ratio": 0 <= self.malformed_ratio <= 1,
            "feedback_ratio": 0 <= self.feedback_ratio <= 1,
            "feedback_accuracy": self.feedback_accuracy is None or 0 <= self.feedback_accuracy <= 1,
            "concurrency": self.concurrency >= 1,
            "when_saturated": self.when_saturated in ("skip", "wait"),
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"invalid {name}: {getattr(self, name)!r}")
        relabelled = set(self.feedback_relabel) | set(self.feedback_relabel.values())
        if relabelled - set(data.CLASS_NAMES):
            unknown_classes = sorted(relabelled - set(data.CLASS_NAMES))
            raise ValueError(
                f"invalid feedback_relabel: unknown classes {unknown_classes}; "
                f"expected some of {list(data.CLASS_NAMES)}"
            )
        if self.feedback_relabel and self.feedback_accuracy is not None:
            raise ValueError(
                "invalid feedback_relabel: it changes true labels, give it without feedback_accuracy"
            )
        for name, share in self.out_of_range.items():
            if name not in data.FEATURE_NAMES or not 0 <= share <= 1:
                raise ValueError(
                    f"invalid out_of_range: {name}={share!r}; expected some of {list(data.FEATURE_NAMES)}, "
                    "each with a share in [0, 1]"
                )
        if self.drift is not None:
            unknown = (set(self.drift.shift) | set(self.drift.scale)) - set(data.FEATURE_NAMES)
            if unknown:
                raise ValueError(
                    f"unknown features {sorted(unknown)}; expected some of {list(data.FEATURE_NAMES)}"
                )


@dataclass
class LoadReport:
    """What a run sent and what came back."""

    requests: collections.Counter[str] = field(default_factory=collections.Counter)
    """Requests sent by kind: ``predict``, ``feedback`` and ``malformed:<kind>``."""
    statuses: collections.Counter[str] = field(default_factory=collections.Counter)
    """Responses by ``<kind>:<status>``; ``<kind>:error`` for transport errors and timeouts."""
    unexpected: collections.Counter[str] = field(default_factory=collections.Counter)
    """Malformed kinds answered with another status than :data:`EXPECTED_STATUS` says."""
    skipped: int = 0
    predictions: int = 0
    predicted_classes: collections.Counter[str] = field(default_factory=collections.Counter)
    feedback_items: int = 0
    feedback_correct: int = 0
    sent_rows: list[np.ndarray] = field(default_factory=list)
    """Rows of successful predictions as sent (after drift), if :attr:`LoadConfig.keep_rows`."""
    latencies_seconds: list[float] = field(default_factory=list)
    """``/predict`` latency measured from the time each request was due (includes client delay)."""
    elapsed_seconds: float = 0.0

    def quantile(self, q: float) -> float:
        """Latency quantile in seconds (NaN without successful requests)."""
        return float(np.quantile(self.latencies_seconds, q)) if self.latencies_seconds else float("nan")

    def rows(self) -> np.ndarray:
        """All rows of successful predictions as one matrix, in feature order."""
        if not self.sent_rows:
            return np.empty((0, len(data.FEATURE_NAMES)))
        return np.vstack(self.sent_rows)

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "elapsed_seconds": round(self.elapsed_seconds, 3),
            "requests": dict(self.requests),
            "statuses": dict(self.statuses),
            "unexpected_statuses": dict(self.unexpected),
            "skipped_over_concurrency": self.skipped,
            "predictions": self.predictions,
            "predicted_classes": dict(self.predicted_classes),
            "feedback_items": self.feedback_items,
            "feedback_correct": self.feedback_correct,
            "latency_p50_ms": round(self.quantile(0.5) * 1000, 3),
            "latency_p99_ms": round(self.quantile(0.99) * 1000, 3),
        }


class _Traffic:
    """Builds request bodies from the held-out data, applying drift and malformations."""

    def __init__(self, config: LoadConfig) -> None:
        dataset = data.load_dataset()
        self.config = config
        self.names = data.FEATURE_NAMES
        self.x = dataset.x_holdout
        self.y = dataset.y_holdout
        self.mean = dataset.x_train.mean(axis=0)
        self.std = dataset.x_train.std(axis=0)
        self.rng = np.random.default_rng(config.seed)
        self.malformed_turn = 0
        drift = config.drift or DriftSpec()
        columns = {name: i for i, name in enumerate(self.names)}
        self.shift = np.zeros(len(self.names))
        self.scale = np.ones(len(self.names))
        for name, sigmas in drift.shift.items():
            self.shift[columns[name]] = sigmas * self.std[columns[name]]
        for name, factor in drift.scale.items():
            self.scale[columns[name]] = factor
        self.out_of_range = [(columns[name], share) for name, share in config.out_of_range.items() if share]
        self.low = dataset.x_train.min(axis=0) - self.std
        self.high = dataset.x_train.max(axis=0) + self.std

    def rows(self, elapsed: float) -> tuple[np.ndarray, np.ndarray]:
        index = self.rng.integers(0, len(self.x), self.config.batch_size)
        rows = self.x[index]
        labels = self.y[index]
        if self.config.drift is not None:
            strength = self.config.drift.strength(elapsed, self.config.duration)
            if strength > 0:
                scale = 1.0 + (self.scale - 1.0) * strength
                rows = self.mean + (rows - self.mean) * scale + self.shift * strength
        for column, share in self.out_of_range:
            chosen = self.rng.random(len(rows)) < share
            above = self.rng.random(len(rows)) < 0.5
            rows[chosen & above, column] = self.high[column]
            rows[chosen & ~above, column] = self.low[column]
        return rows, labels

    def records(self, rows: np.ndarray) -> list[dict[str, float]]:
        return [dict(zip(self.names, row, strict=True)) for row in rows.tolist()]

    def malformed(self) -> tuple[str, bytes]:
        kind = MALFORMED_KINDS[self.malformed_turn % len(MALFORMED_KINDS)]
        self.malformed_turn += 1
        record: dict[str, Any] = self.records(self.rows(0.0)[0][:1])[0]
        target = self.names[int(self.rng.integers(0, len(self.names)))]
        if kind == "missing_field":
            del record[target]
        elif kind == "unexpected_field":
            record["unexpected"] = 1.0
        elif kind == "non_numeric":
            record[target] = "not-a-number"
        elif kind == "non_finite":
            return kind, json.dumps({"records": [record | {target: float("nan")}]}).encode()
        elif kind == "invalid_json":
            return kind, b'{"records": [' + json.dumps(record).encode()
        elif kind == "empty_batch":
            return kind, b'{"records": []}'
        elif kind == "batch_too_large":
            return kind, json.dumps({"records": [record] * (self.config.server_max_batch_size + 1)}).encode()
        return kind, json.dumps({"records": [record]}).encode()

    def feedback_items(self, predictions: list[dict[str, Any]], labels: np.ndarray) -> list[dict[str, str]]:
        items = []
        for prediction, label in zip(predictions, labels.tolist(), strict=True):
            if self.rng.random() >= self.config.feedback_ratio:
                continue
            predicted = prediction["class"]
            if self.config.feedback_accuracy is None:
                actual = self.config.feedback_relabel.get(label, label)
            elif self.rng.random() < self.config.feedback_accuracy:
                actual = predicted
            else:
                others = [c for c in data.CLASS_NAMES if c != predicted]
                actual = others[int(self.rng.integers(0, len(others)))]
            items.append({"prediction_id": prediction["id"], "actual_class": actual})
        return items


async def _wait_ready(client: httpx.AsyncClient, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if (await client.get("/readyz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() >= deadline:
            raise RuntimeError(f"service at {client.base_url} not ready after {seconds} s")
        await asyncio.sleep(0.1)


HEARTBEAT_SECONDS = 5.0


def _heartbeat(path: str | None) -> Callable[[], None]:
    """Touch ``path`` now; return a function that touches it again once ``HEARTBEAT_SECONDS`` have passed."""
    if path is None:
        return lambda: None
    target = Path(path)
    target.touch()
    last = time.monotonic()

    def beat() -> None:
        nonlocal last
        if time.monotonic() - last >= HEARTBEAT_SECONDS:
            target.touch()
            last = time.monotonic()

    return beat


async def run_load(config: LoadConfig) -> LoadReport:
    """Send the traffic ``config`` describes and return what happened."""
    traffic = _Traffic(config)
    report = LoadReport()
    limits = httpx.Limits(max_connections=config.concurrency, max_keepalive_connections=config.concurrency)
    headers = {"content-type": "application/json"}
    beat = _heartbeat(config.heartbeat_file)
    async with httpx.AsyncClient(
        base_url=config.url, timeout=config.timeout_seconds, limits=limits
    ) as client:
        if config.wait_ready_seconds > 0:
            await _wait_ready(client, config.wait_ready_seconds)
        loop = asyncio.get_running_loop()
        started = loop.time()
        tasks: set[asyncio.Task[None]] = set()

        async def post(kind: str, path: str, body: bytes) -> httpx.Response | None:
            report.requests[kind] += 1
            try:
                response = await client.post(path, content=body, headers=headers)
            except httpx.HTTPError:
                report.statuses[f"{kind}:error"] += 1
                return None
            report.statuses[f"{kind}:{response.status_code}"] += 1
            return response

        async def one(due: float) -> None:
            if config.malformed_ratio > 0 and traffic.rng.random() < config.malformed_ratio:
                kind, body = traffic.malformed()
                response = await post(f"malformed:{kind}", "/predict", body)
                if response is not None and response.status_code != EXPECTED_STATUS[kind]:
                    report.unexpected[kind] += 1
                return
            rows, labels = traffic.rows(due - started)
            body = json.dumps({"records": traffic.records(rows)}).encode()
            response = await post("predict", "/predict", body)
            if response is None or response.status_code != 200:
                return
            report.latencies_seconds.append(loop.time() - due)
            predictions = response.json()["predictions"]
            report.predictions += len(predictions)
            report.predicted_classes.update(p["class"] for p in predictions)
            if config.keep_rows:
                report.sent_rows.append(rows)
            items = traffic.feedback_items(predictions, labels) if config.feedback_ratio > 0 else []
            if items:
                answer = await post("feedback", "/feedback", json.dumps({"feedback": items}).encode())
                if answer is not None and answer.status_code == 200:
                    report.feedback_items += answer.json()["accepted"]
                    report.feedback_correct += answer.json()["correct"]

        index = 0
        while config.max_requests is None or index < config.max_requests:
            due = started + index / config.rate
            if due - started >= config.duration:
                break
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            beat()
            index += 1
            # Tasks not yet finished, rather than a counter the tasks keep: a task created while the
            # loop is behind schedule has not started yet, and must count against the limit already.
            pending = {task for task in tasks if not task.done()}
            if len(pending) >= config.concurrency:
                if config.when_saturated == "skip":
                    report.skipped += 1
                    continue
                await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            task = asyncio.create_task(one(due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)
        report.elapsed_seconds = loop.time() - started
    return report


def run(config: LoadConfig) -> LoadReport:
    """Blocking form of :func:`run_load`, for scripts and tests outside an event loop."""
    return asyncio.run(run_load(config))


def _pairs(values: Sequence[str], option: str) -> dict[str, float]:
    result = {}
    for value in values:
        name, sep, number = value.partition("=")
        try:
            if not sep:
                raise ValueError
            result[name] = float(number)
        except ValueError:
            raise SystemExit(f"{option} expects FEATURE=NUMBER, got {value!r}") from None
    return result


def _relabels(values: Sequence[str]) -> dict[str, str]:
    result = {}
    for value in values:
        true, sep, reported = value.partition("=")
        if not (sep and true and reported):
            raise SystemExit(f"--feedback-relabel expects TRUE=REPORTED class names, got {value!r}")
        result[true] = reported
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m model_service.loadgen",
        description="Send predict (and feedback) traffic to the model service at a fixed rate.",
    )
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument(
        "--mode",
        action="append",
        choices=("normal", "drift", "malformed", "feedback"),
        default=[],
        help="presets, combinable: drift = --shift f0=1 unless shifts or scales are given; "
        "malformed = --malformed-ratio 1; feedback = --feedback-ratio 1 with true labels",
    )
    parser.add_argument("--rate", type=float, default=10.0, help="predict requests per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds")
    parser.add_argument("--requests", type=int, default=None, help="stop after this many predict requests")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--shift", action="append", default=[], metavar="FEATURE=SIGMAS")
    parser.add_argument("--scale", action="append", default=[], metavar="FEATURE=FACTOR")
    parser.add_argument("--drift-onset", choices=("sudden", "gradual"), default="sudden")
    parser.add_argument("--drift-start-seconds", type=float, default=0.0)
    parser.add_argument("--drift-ramp-seconds", type=float, default=None)
    parser.add_argument(
        "--out-of-range", action="append", default=[], metavar="FEATURE=SHARE",
        help="share of records whose FEATURE lies outside its training range (one sigma beyond it)",
    )
    parser.add_argument("--malformed-ratio", type=float, default=None)
    parser.add_argument("--feedback-ratio", type=float, default=None)
    parser.add_argument(
        "--feedback-accuracy", type=float, default=None, help="report labels so that accuracy is this (0..1)"
    )
    parser.add_argument(
        "--feedback-relabel", action="append", default=[], metavar="TRUE=REPORTED",
        help="with true labels, report class REPORTED for rows whose true class is TRUE",
    )
    parser.add_argument("--server-max-batch-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument(
        "--when-saturated",
        choices=("skip", "wait"),
        default="skip",
        help="a request due while --concurrency are in flight: skip it (fixed rate) or send it late",
    )
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument(
        "--wait-ready", type=float, default=10.0, help="seconds to wait for /readyz; 0 = no wait"
    )
    parser.add_argument(
        "--heartbeat-file", default=None,
        help=f"touch this file at the start and every {HEARTBEAT_SECONDS:.0f} s while sending",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> tuple[LoadConfig, bool]:
    """Turn command-line arguments into a :class:`LoadConfig` and whether to print JSON."""
    parser = _parser()
    args = parser.parse_args(argv)
    modes = set(args.mode)
    shift = _pairs(args.shift, "--shift")
    scale = _pairs(args.scale, "--scale")
    if "drift" in modes and not shift and not scale:
        shift = {data.FEATURE_NAMES[0]: 1.0}
    drift = None
    if shift or scale:
        drift = DriftSpec(
            shift=shift,
            scale=scale,
            onset=args.drift_onset,
            start_seconds=args.drift_start_seconds,
            ramp_seconds=args.drift_ramp_seconds,
        )
    malformed = (
        args.malformed_ratio if args.malformed_ratio is not None else (1.0 if "malformed" in modes else 0.0)
    )
    feedback = args.feedback_ratio
    if feedback is None:
        feedback = 1.0 if ("feedback" in modes or args.feedback_accuracy is not None) else 0.0
    try:
        config = LoadConfig(
            url=args.url,
            rate=args.rate,
            duration=args.duration,
            max_requests=args.requests,
            batch_size=args.batch_size,
            drift=drift,
            out_of_range=_pairs(args.out_of_range, "--out-of-range"),
            malformed_ratio=malformed,
            feedback_ratio=feedback,
            feedback_accuracy=args.feedback_accuracy,
            feedback_relabel=_relabels(args.feedback_relabel),
            server_max_batch_size=args.server_max_batch_size,
            seed=args.seed,
            concurrency=args.concurrency,
            when_saturated=args.when_saturated,
            timeout_seconds=args.timeout,
            wait_ready_seconds=args.wait_ready,
            heartbeat_file=args.heartbeat_file,
        )
    except ValueError as error:
        parser.error(str(error))
    return config, args.json


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; exits 1 if no request got an HTTP answer."""
    config, as_json = parse_args(argv)
    report = run(config)
    summary = report.summary()
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        for key, value in summary.items():
            print(f"{key}: {value}")
    answered = sum(count for key, count in report.statuses.items() if not key.endswith(":error"))
    return 0 if answered else 1


if __name__ == "__main__":
    raise SystemExit(main())
