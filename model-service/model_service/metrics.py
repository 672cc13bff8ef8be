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


class InterfaceMetrics:
    """HTTP-level instruments: requests, duration, in-flight, sizes, refused bodies, injected faults."""

    def __init__(
        self,
        registry: CollectorRegistry,
        latency_slo_thresholds: Sequence[float],
        fault_injection: bool,
    ) -> None:
        spec = contract.HTTP_REQUESTS
        self._requests = Counter(spec.family, spec.help, spec.labels, registry=registry)
        spec = contract.HTTP_REQUEST_DURATION
        self.duration_buckets = contract.latency_buckets(latency_slo_thresholds)
        self._duration = Histogram(
            spec.family, spec.help, spec.labels, buckets=self.duration_buckets, registry=registry
        )
        spec = contract.HTTP_REQUESTS_IN_FLIGHT
        self.in_flight = Gauge(spec.family, spec.help, registry=registry)
        spec = contract.HTTP_REQUEST_SIZE
        self._request_size = Histogram(
            spec.family, spec.help, spec.labels, buckets=contract.SIZE_BUCKETS_BYTES, registry=registry
        )
        spec = contract.HTTP_RESPONSE_SIZE
        self._response_size = Histogram(
            spec.family, spec.help, spec.labels, buckets=contract.SIZE_BUCKETS_BYTES, registry=registry
        )
        spec = contract.INVALID_REQUESTS
        self._invalid = Counter(spec.family, spec.help, spec.labels, registry=registry)
        self.faults: dict[str, Counter] = {}
        if fault_injection:
            spec = contract.FAULT_INJECTIONS
            faults = Counter(spec.family, spec.help, spec.labels, registry=registry)
            self.faults = {kind: faults.labels(kind) for kind in contract.FAULT_KINDS}
        # Children are created on first use and kept; the key space is bounded by the contract's routes,
        # methods and the status codes the app emits.
        self._request_children: dict[tuple[str, str, int], Counter] = {}
        self._route_children: dict[str, tuple[Histogram, Histogram | None, Histogram | None]] = {}
        self._size_routes = frozenset(contract.SIZE_ROUTES)
        self._lock = threading.Lock()

    def observe_request(
        self, route: str, method: str, code: int, seconds: float, request_bytes: int, response_bytes: int
    ) -> None:
        """Record one answered request."""
        key = (route, method, code)
        counter = self._request_children.get(key)
        histograms = self._route_children.get(route)
        if counter is None or histograms is None:
            with self._lock:
                counter = self._request_children.setdefault(
                    key, self._requests.labels(route, method, str(code))
                )
                sized = route in self._size_routes
                histograms = self._route_children.setdefault(
                    route,
                    (
                        self._duration.labels(route),
                        self._request_size.labels(route) if sized else None,
                        self._response_size.labels(route) if sized else None,
                    ),
                )
        counter.inc()
        duration, request_size, response_size = histograms
        duration.observe(seconds)
        if request_size is not None and response_size is not None:
            request_size.observe(request_bytes)
            response_size.observe(response_bytes)

    def invalid_request(self, route: str, reason: str) -> None:
        """Record a request refused because of its body."""
        self._invalid.labels(route, reason).inc()


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
        self._inference = Histogram(
            spec.family, spec.help, spec.labels, buckets=contract.INFERENCE_BUCKETS_SECONDS, registry=registry
        ).labels(name, version)
        spec = contract.PREDICTIONS
        predictions = Counter(spec.family, spec.help, spec.labels, registry=registry)
        self._predictions = [predictions.labels(name, version, c) for c in classes]
        spec = contract.PREDICTION_CONFIDENCE
        self._confidence = Histogram(
            spec.family, spec.help, spec.labels, buckets=contract.CONFIDENCE_BUCKETS, registry=registry
        ).labels(name, version)
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
        self._inference.observe(inference_seconds)
        if len(class_indices) == 1:
            self._predictions[int(class_indices[0])].inc()
        else:
            for index, count in enumerate(
                np.bincount(class_indices, minlength=len(self._predictions)).tolist()
            ):
                if count:
                    self._predictions[index].inc(count)
        for value in confidence.tolist():
            self._confidence.observe(value)
        assert self.drift is not None
        self.drift.observe(x, class_indices)

    def feedback(self, predicted: int, actual: int, version: str | None = None) -> None:
        """Record one scored feedback item, under the version that predicted (default: this replica's)."""
        self._feedback[version if version is not None else self._version][predicted][actual].inc()

    def feedback_rejected(self, reason: str) -> None:
        """Record one refused feedback item."""
        self._rejected[reason].inc()
