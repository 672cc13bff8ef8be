"""The sample model service, trained, served on 127.0.0.1 and driven by its own traffic generator.

The monitors' tests check their expressions against what the real service exports, not against the
contract's description of it: a drift window of the service's healthy traffic at the contract's minimum
volume, and a scrape after traffic that touches every route and outcome. The service runs in-process (its
app under uvicorn in a thread, on an ephemeral loopback port) and is trained and driven once per session.
"""

from __future__ import annotations

import concurrent.futures
import functools
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from model_service import contract

from components.monitors.config import ModelMonitorsConfig

if TYPE_CHECKING:
    from model_service.loadgen import LoadConfig, LoadReport

SIGNING_KEY = "monitors-test-signing-key-0123456789"


@dataclass(frozen=True)
class Scrape:
    """One ``/metrics`` exposition: the text and its samples."""

    text: str
    samples: tuple[tuple[str, dict[str, str], float], ...]

    def series(self, name: str) -> list[tuple[dict[str, str], float]]:
        return [(labels, value) for sample, labels, value in self.samples if sample == name]

    @property
    def names(self) -> set[str]:
        return {name for name, _, _ in self.samples}


@dataclass(frozen=True)
class SampleRun:
    """What the session's run of the service produced."""

    artifact_dir: Path
    healthy: Scrape
    """After exactly ``contract.DRIFT_MIN_WINDOW_OBSERVATIONS`` undrifted records."""
    full: Scrape
    """After further traffic: feedback, malformed requests, probes and a scrape."""


def _parse(text: str) -> Scrape:
    from prometheus_client.parser import text_string_to_metric_families

    samples = tuple(
        (sample.name, dict(sample.labels), float(sample.value))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    )
    return Scrape(text=text, samples=samples)


@contextmanager
def _serving(artifact_dir: Path, thresholds: tuple[float, ...]) -> Iterator[str]:
    from model_service.app import create_app
    from model_service.serve import serve_in_background
    from model_service.settings import Settings
    from prometheus_client import CollectorRegistry

    settings = Settings(
        artifact_dir=artifact_dir,
        feedback_signing_key=SIGNING_KEY,  # type: ignore[arg-type]
        latency_slo_thresholds_seconds=thresholds,
    )
    with serve_in_background(create_app(settings, registry=CollectorRegistry(), load="now")) as url:
        yield url


def _in_thread(config: LoadConfig) -> LoadReport:
    """The traffic generator runs its own event loop (``asyncio.run``), which would leave the test thread
    without one; Pulumi's mock runs after it in the same session need theirs."""
    from model_service.loadgen import run

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run, config).result()


@functools.cache
def sample_run() -> SampleRun:
    """Train the sample model, serve it with the monitors' default latency thresholds, and drive it."""
    import httpx
    from model_service.loadgen import LoadConfig
    from model_service.train import train

    artifact_dir = Path(tempfile.mkdtemp(prefix="mlobs-sample-model-"))
    train(artifact_dir)
    thresholds = ModelMonitorsConfig().latency_thresholds_seconds
    batch = 10
    with _serving(artifact_dir, thresholds) as url:
        requests = contract.DRIFT_MIN_WINDOW_OBSERVATIONS // batch
        # `wait`: on a loaded machine a request due while the client is saturated is sent late, never skipped,
        # so the counts below are exact whatever the load.
        report = _in_thread(LoadConfig(url=url, rate=200, duration=30, max_requests=requests, batch_size=batch,
                                       seed=7, when_saturated="wait"))
        assert report.summary()["predictions"] == contract.DRIFT_MIN_WINDOW_OBSERVATIONS, report.summary()
        healthy = _parse(httpx.get(f"{url}{contract.ROUTE_METRICS}", timeout=10).text)
        _in_thread(LoadConfig(url=url, rate=100, duration=30, max_requests=60, batch_size=5, feedback_ratio=1.0,
                              malformed_ratio=0.2, seed=8, when_saturated="wait"))
        for route in (contract.ROUTE_HEALTHZ, contract.ROUTE_READYZ, contract.ROUTE_DRIFT, "/no-such-route"):
            httpx.get(f"{url}{route}", timeout=10)
        full = _parse(httpx.get(f"{url}{contract.ROUTE_METRICS}", timeout=10).text)
    return SampleRun(artifact_dir=artifact_dir, healthy=healthy, full=full)
