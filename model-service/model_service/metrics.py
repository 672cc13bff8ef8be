"""Prometheus instruments of the service, named and labelled as :mod:`model_service.contract` says.

Everything is registered in a registry owned by the app (not the global default), so tests and
benchmarks can run several apps in one process. Label children are bound once and kept: a request
then costs a few counter increments and histogram observations and no label lookups, and the set of
series is fixed by the model and the routes, never by the traffic.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from model_service import contract
from model_service.artifact import ArtifactMetadata
from model_service.batching import BatchedInstruments
from model_service.drift import DriftCollector, DriftCounts

# `_created` series double the count of every counter and histogram child and no rule here uses them.
disable_created_metrics()  # type: ignore[no-untyped-call]


def new_registry() -> CollectorRegistry:
    """A registry with the process, platform and garbage-collector collectors the default one has."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


_AnswerInstruments = tuple[Counter, Histogram, Histogram | None, Histogram | None]
"""The children one (route, method, code) answer touches: its request counter, and its route's duration and,
for the routes whose sizes are measured, request and response size histograms."""

Answer = tuple[str, str, int, float, int, int]
"""One answered request as the middleware queues it: route, method, status code, seconds, request and response
bytes."""


class InterfaceMetrics:
    """HTTP-level instruments: requests, duration, in-flight, sizes, refused bodies, injected faults.

    Every request of the service passes here, so its path is kept short: an answered request's counter and
    histograms are updated in batches (:mod:`model_service.batching`), the children an answer touches are
    looked up once, as one tuple, and the in-flight gauge reads a plain count when scraped instead of taking
    a lock twice per request (requests are counted on the event loop's thread; the scrape only reads the
    number).
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        latency_slo_thresholds: Sequence[float],
        fault_injection: bool,
    ) -> None:
        spec = contract.HTTP_REQUESTS
        self._requests = Counter(spec.family, spec.help, spec.labels, registry=None)
        spec = contract.HTTP_REQUEST_DURATION
        self.duration_buckets = contract.latency_buckets(latency_slo_thresholds)
        self._duration = Histogram(
            spec.family, spec.help, spec.labels, buckets=self.duration_buckets, registry=None
        )
        spec = contract.HTTP_REQUEST_SIZE
        self._request_size = Histogram(
            spec.family, spec.help, spec.labels, buckets=contract.SIZE_BUCKETS_BYTES, registry=None
        )
        spec = contract.HTTP_RESPONSE_SIZE
        self._response_size = Histogram(
            spec.family, spec.help, spec.labels, buckets=contract.SIZE_BUCKETS_BYTES, registry=None
        )
        self._answered = BatchedInstruments[Answer](
            registry, (self._requests, self._duration, self._request_size, self._response_size), self._apply
        )
        spec = contract.HTTP_REQUESTS_IN_FLIGHT
        self.in_flight = 0
        """Requests being answered now: the middleware adds and removes them, the gauge reads the count."""
        Gauge(spec.family, spec.help, registry=registry).set_function(lambda: self.in_flight)
        spec = contract.INVALID_REQUESTS
        self._invalid = Counter(spec.family, spec.help, spec.labels, registry=registry)
        self.faults: dict[str, Counter] = {}
        if fault_injection:
            spec = contract.FAULT_INJECTIONS
            faults = Counter(spec.family, spec.help, spec.labels, registry=registry)
            self.faults = {kind: faults.labels(kind) for kind in contract.FAULT_KINDS}
        # Children are created on first use and kept; the key space is bounded by the contract's routes,
        # methods and the status codes the app emits.
        self._answers: dict[tuple[str, str, int], _AnswerInstruments] = {}
        self._size_routes = frozenset(contract.SIZE_ROUTES)
        self._lock = threading.Lock()

    def observe_request(self, answer: Answer) -> None:
        """Record one answered request."""
        self._answered.record(answer)

    def _apply(self, answers: list[Answer]) -> None:
        for route, method, code, seconds, request_bytes, response_bytes in answers:
            instruments = self._answers.get((route, method, code))
            if instruments is None:
                instruments = self._new_answer(route, method, code)
            counter, duration, request_size, response_size = instruments
            counter.inc()
            duration.observe(seconds)
            if request_size is not None and response_size is not None:
                request_size.observe(request_bytes)
                response_size.observe(response_bytes)

    def _new_answer(self, route: str, method: str, code: int) -> _AnswerInstruments:
        sized = route in self._size_routes
        with self._lock:
            return self._answers.setdefault(
                (route, method, code),
                (
                    self._requests.labels(route, method, str(code)),
                    self._duration.labels(route),
                    self._request_size.labels(route) if sized else None,
                    self._response_size.labels(route) if sized else None,
                ),
            )

    def invalid_request(self, route: str, reason: str) -> None:
        """Record a request refused because of its body."""
        self._invalid.labels(route, reason).inc()


Batch = tuple[float, list[float]]
"""One served batch as queued: the inference's seconds and each record's confidence."""


class ModelMetrics:
    """Model-level instruments for one loaded model; every label set exists from construction on."""

    def __init__(
        self,
        registry: CollectorRegistry,
        metadata: ArtifactMetadata,
        *,
        prediction_metrics: bool = True,
        scored_versions: Sequence[str] = (),
    ) -> None:
        name, version = metadata.model_name, metadata.model_version
        classes = metadata.classes
        spec = contract.MODEL_INFO
        Info(spec.family, spec.help, registry=registry).info({"model_name": name, "model_version": version})
        spec = contract.MODEL_TRAINED_TIMESTAMP
        Gauge(spec.family, spec.help, spec.labels, registry=registry).labels(name, version).set(
            metadata.trained_at.timestamp()
        )
        spec = contract.FEEDBACK
        feedback = Counter(spec.family, spec.help, spec.labels, registry=registry)
        # A confusion matrix per version this replica scores ids of (its own, and the accepted ones), all
        # created now: feedback counts under the version that predicted, and the series stay a fixed set.
        self._feedback = {
            scored: [
                [
                    feedback.labels(
                        name,
                        scored,
                        predicted,
                        actual,
                        contract.OUTCOME_CORRECT if predicted == actual else contract.OUTCOME_INCORRECT,
                    )
                    for actual in classes
                ]
                for predicted in classes
            ]
            for scored in contract.scored_versions(version, scored_versions)
        }
        self._version = version
        spec = contract.FEEDBACK_REJECTED
        rejected = Counter(spec.family, spec.help, spec.labels, registry=registry)
        self._rejected = {
            reason: rejected.labels(name, version, reason) for reason in contract.FEEDBACK_REJECTION_REASONS
        }
        self.prediction_metrics = prediction_metrics
        self.drift: DriftCounts | None = None
        if not prediction_metrics:
            return
        spec = contract.INFERENCE_DURATION
        inference = Histogram(
            spec.family, spec.help, spec.labels, buckets=contract.INFERENCE_BUCKETS_SECONDS, registry=None
        )
        spec = contract.PREDICTION_CONFIDENCE
        confidence = Histogram(
            spec.family, spec.help, spec.labels, buckets=contract.CONFIDENCE_BUCKETS, registry=None
        )
        self._inference = inference.labels(name, version)
        self._confidence = confidence.labels(name, version)
        self._batches = BatchedInstruments[Batch](registry, (inference, confidence), self._apply)
        # The drift bins count the predicted classes too; their collector also exports them as the predictions
        # counter (model_predictions_total), so a record's class is counted once.
        self.drift = DriftCounts(metadata.features, metadata.prediction)
        registry.register(DriftCollector(self.drift, name, version))

    def observe_predictions(
        self,
        x: NDArray[np.float64],
        class_indices: NDArray[np.intp],
        confidence: NDArray[np.float64],
        inference_seconds: float,
    ) -> None:
        """Record one batch of predictions: inference time, classes, confidences and drift bins."""
        if not self.prediction_metrics:
            return
        self._batches.record((inference_seconds, confidence.tolist()))
        assert self.drift is not None
        self.drift.observe(x, class_indices)

    def _apply(self, batches: list[Batch]) -> None:
        inference, confidence = self._inference, self._confidence
        for inference_seconds, confidences in batches:
            inference.observe(inference_seconds)
            for value in confidences:
                confidence.observe(value)

    def feedback(self, predicted: int, actual: int, version: str | None = None) -> None:
        """Record one scored feedback item, under the version that predicted (default: this replica's)."""
        self._feedback[version if version is not None else self._version][predicted][actual].inc()

    def feedback_rejected(self, reason: str) -> None:
        """Record one refused feedback item."""
        self._rejected[reason].inc()
