"""Drift bins: the reference distribution, per-batch binning, live counts and PSI / Jensen-Shannon.

The bin semantics are the contract's (:mod:`model_service.contract`): interior edges from training
quantiles, bin ``i`` holding ``e_i <= x < e_{i+1}``, open-ended outer bins. This module implements them
with numpy for whole batches, keeps the live counts in one array (so a request costs one vectorised
comparison and one addition, whatever the number of features), and computes the statistics a person
reads on ``/drift``. Prometheus computes the same statistics from the exported counts for alerting.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy.spatial.distance import jensenshannon

from model_service import contract
from model_service.batching import UpdateQueue

SHARE_SUM_TOLERANCE = 1e-9
"""Reference shares are stored as floats; they must sum to 1 up to rounding."""


class FeatureReference(BaseModel):
    """Training distribution of one numeric feature: interior bin edges and the share of each bin."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    edges: tuple[float, ...] = Field(
        description="Strictly increasing interior edges; len(shares) - 1 of them."
    )
    shares: tuple[float, ...] = Field(min_length=1, max_length=contract.MAX_DRIFT_BIN_COUNT)
    minimum: float | None = Field(
        default=None,
        allow_inf_nan=False,
        description="Smallest training value: a live value below it is out of range. None in artifacts "
        "written before the range was recorded, whose values are then never out of range.",
    )
    maximum: float | None = Field(
        default=None,
        allow_inf_nan=False,
        description="Largest training value: a live value above it is out of range.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> FeatureReference:
        if len(self.shares) != len(self.edges) + 1:
            raise ValueError(
                f"feature {self.name!r}: {len(self.edges)} edges need {len(self.edges) + 1} shares"
            )
        if any(b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)):
            raise ValueError(f"feature {self.name!r}: edges must be strictly increasing")
        if (self.minimum is None) != (self.maximum is None):
            raise ValueError(f"feature {self.name!r}: give both minimum and maximum, or neither")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError(
                f"feature {self.name!r}: minimum {self.minimum!r} is above maximum {self.maximum!r}"
            )
        _check_shares(self.name, self.shares)
        return self

    @property
    def bin_labels(self) -> tuple[str, ...]:
        """Values of the ``bin`` label, in bin order."""
        return tuple(contract.bin_label(i) for i in range(len(self.shares)))


class PredictionReference(BaseModel):
    """Training distribution of the predicted class: one bin per class, labelled by the class name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    classes: tuple[str, ...] = Field(min_length=2)
    shares: tuple[float, ...]

    @model_validator(mode="after")
    def _consistent(self) -> PredictionReference:
        if len(self.shares) != len(self.classes):
            raise ValueError("prediction reference: one share per class is required")
        _check_shares(contract.PREDICTION_FEATURE, self.shares)
        return self

    @property
    def bin_labels(self) -> tuple[str, ...]:
        """Values of the ``bin`` label, in class order."""
        return self.classes


def _check_shares(name: str, shares: Sequence[float]) -> None:
    if any(not 0.0 <= s <= 1.0 for s in shares):
        raise ValueError(f"{name!r}: shares must lie in [0, 1]")
    if abs(sum(shares) - 1.0) > SHARE_SUM_TOLERANCE:
        raise ValueError(f"{name!r}: shares must sum to 1, got {sum(shares)!r}")


def quantile_edges(
    values: ArrayLike, bin_count: int = contract.DEFAULT_DRIFT_BIN_COUNT
) -> NDArray[np.float64]:
    """Return the interior edges that cut ``values`` into ``bin_count`` equally populated bins.

    Duplicate quantiles (a feature with many ties) are dropped, so such a feature gets fewer bins rather
    than empty ones whose reference share would be zero.
    """
    if not 2 <= bin_count <= contract.MAX_DRIFT_BIN_COUNT:
        raise ValueError(f"bin_count must be in [2, {contract.MAX_DRIFT_BIN_COUNT}], got {bin_count}")
    probabilities = np.arange(1, bin_count) / bin_count
    return np.unique(np.quantile(np.asarray(values, dtype=np.float64), probabilities))


def bin_indices(edges: ArrayLike, values: ArrayLike) -> NDArray[np.intp]:
    """Return the bin of each value under the contract's semantics (an edge belongs to the bin above)."""
    return np.searchsorted(
        np.asarray(edges, dtype=np.float64), np.asarray(values, dtype=np.float64), side="right"
    )


def feature_reference(
    name: str, values: ArrayLike, bin_count: int = contract.DEFAULT_DRIFT_BIN_COUNT
) -> FeatureReference:
    """Build the reference of one feature from its training values."""
    array = np.asarray(values, dtype=np.float64)
    edges = quantile_edges(array, bin_count)
    counts = np.bincount(bin_indices(edges, array), minlength=len(edges) + 1)
    return FeatureReference(
        name=name,
        edges=tuple(edges.tolist()),
        shares=_normalised(counts),
        minimum=float(array.min()),
        maximum=float(array.max()),
    )


def prediction_reference(classes: Sequence[str], predicted: ArrayLike) -> PredictionReference:
    """Build the reference of the prediction from the classes the model predicts on its training data."""
    index = {c: i for i, c in enumerate(classes)}
    codes = np.fromiter((index[str(c)] for c in np.asarray(predicted)), dtype=np.intp)
    counts = np.bincount(codes, minlength=len(classes))
    return PredictionReference(classes=tuple(classes), shares=_normalised(counts))


def _normalised(counts: NDArray[np.integer]) -> tuple[float, ...]:
    shares = counts / counts.sum()
    # Put the rounding remainder on the largest bin so the stored shares sum to exactly 1.
    shares[int(np.argmax(shares))] += 1.0 - shares.sum()
    return tuple(float(s) for s in shares)


def psi(counts: ArrayLike, reference: ArrayLike, epsilon: float = contract.PSI_EPSILON) -> float:
    """Population stability index of live ``counts`` against reference shares, as the contract defines it.

    Both distributions are clamped below at ``epsilon`` (not renormalised), exactly as the PromQL rules
    do with ``clamp_min``, so this value and Prometheus' agree. NaN when there are no observations.
    """
    observed = np.asarray(counts, dtype=np.float64)
    total = observed.sum()
    if total == 0:
        return float("nan")
    q = np.maximum(observed / total, epsilon)
    p = np.maximum(np.asarray(reference, dtype=np.float64), epsilon)
    return float(np.sum((q - p) * np.log(q / p)))


def js_distance(counts: ArrayLike, reference: ArrayLike) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) of live ``counts`` against reference shares."""
    observed = np.asarray(counts, dtype=np.float64)
    if observed.sum() == 0:
        return float("nan")
    return float(jensenshannon(observed, np.asarray(reference, dtype=np.float64), base=2))


@dataclass(frozen=True)
class DriftStatistic:
    """Drift of one feature (or of the prediction) over the counts since the process started."""

    feature: str
    observations: int
    psi: float
    js_distance: float

    @property
    def enough_volume(self) -> bool:
        """Whether the count reaches the contract's minimum volume, below which the numbers are noise."""
        return self.observations >= contract.DRIFT_MIN_WINDOW_OBSERVATIONS

    @property
    def drifted(self) -> bool:
        """Whether either statistic reaches its contract threshold with enough volume."""
        return self.enough_volume and (
            self.psi >= contract.PSI_THRESHOLD or self.js_distance >= contract.JS_DISTANCE_THRESHOLD
        )


class DriftCounts:
    """Live per-bin counts for every feature and the prediction, in one flat array.

    Batches are binned in one vectorised numpy comparison. A batch of a few records is queued instead
    (:mod:`model_service.batching`) and binned with the others when the queue fills or a reader asks: on its
    own, numpy's per-call overhead and the cache misses of a served request would cost more than the
    counting. Memory is fixed at construction (one slot per bin, and a queue of at most ``APPLY_EVERY``
    small batches). :meth:`observe` is safe to call from several threads, and every reader sees every batch
    observed before it.
    """

    def __init__(self, features: Sequence[FeatureReference], prediction: PredictionReference) -> None:
        if not features:
            raise ValueError("at least one feature reference is required")
        self.features = tuple(features)
        self.prediction = prediction
        widths = [len(f.shares) for f in self.features] + [len(prediction.shares)]
        self._offsets = np.concatenate([[0], np.cumsum(widths)]).astype(np.intp)
        max_edges = max(len(f.edges) for f in self.features)
        # Pad every feature to the same number of edges with +inf: no finite value reaches a padded
        # edge, so a feature with fewer bins never counts into its neighbour's slots.
        self._edges = np.full((len(self.features), max_edges), np.inf)
        for row, feature in enumerate(self.features):
            self._edges[row, : len(feature.edges)] = feature.edges
        self._feature_offsets = self._offsets[:-2]
        self._prediction_offset = int(self._offsets[-2])
        self._size = int(self._offsets[-1])
        self._counts = np.zeros(self._size, dtype=np.int64)
        self._lock = threading.Lock()
        self._queue = UpdateQueue[tuple[NDArray[np.float64], NDArray[np.intp]]](self._count)

    @property
    def size(self) -> int:
        """Number of bins over all features and the prediction (one counter series each)."""
        return self._size

    def observe(self, x: NDArray[np.float64], predicted: NDArray[np.intp]) -> None:
        """Count a batch: ``x`` has one row per record and one column per feature, ``predicted`` the
        class index of each row. Values must be finite (the API rejects others before they get here);
        neither array may change afterwards, as a small batch is counted later."""
        self._queue.record_rows((x, predicted), len(x))

    def _count(self, batches: list[tuple[NDArray[np.float64], NDArray[np.intp]]]) -> None:
        x = np.concatenate([rows for rows, _ in batches])
        predicted = np.concatenate([classes for _, classes in batches])
        # A value's bin is the number of edges at or below it: bin i holds e_i <= x < e_{i+1}.
        bins = np.count_nonzero(x[:, :, None] >= self._edges[None, :, :], axis=2)
        slots = np.concatenate(((bins + self._feature_offsets).ravel(), predicted + self._prediction_offset))
        increments = np.bincount(slots, minlength=self._size)
        with self._lock:
            self._counts += increments

    def snapshot(self) -> NDArray[np.int64]:
        """Copy of the flat counts, in feature order then prediction, bins in order."""
        self._queue.apply_queued()
        with self._lock:
            return self._counts.copy()

    def per_signal(
        self, counts: NDArray[np.int64] | None = None
    ) -> Iterator[tuple[str, tuple[str, ...], NDArray[np.int64], tuple[float, ...]]]:
        """Yield ``(feature, bin labels, counts, reference shares)`` per feature, then the prediction."""
        flat = self.snapshot() if counts is None else counts
        signals: list[tuple[str, tuple[str, ...], tuple[float, ...]]] = [
            (f.name, f.bin_labels, f.shares) for f in self.features
        ]
        signals.append((contract.PREDICTION_FEATURE, self.prediction.bin_labels, self.prediction.shares))
        for (name, labels, shares), start, stop in zip(
            signals, self._offsets[:-1], self._offsets[1:], strict=True
        ):
            yield name, labels, flat[start:stop], shares

    def statistics(self) -> list[DriftStatistic]:
        """PSI and JS distance of the counts since start, for every feature and the prediction."""
        return [
            DriftStatistic(
                feature=name,
                observations=int(counts.sum()),
                psi=psi(counts, shares),
                js_distance=js_distance(counts, shares),
            )
            for name, _, counts, shares in self.per_signal()
        ]


class DriftCollector(Collector):
    """Exports :class:`DriftCounts` as the contract's bin counters and reference gauges, and its prediction
    bins as well as the contract's predictions counter.

    A custom collector rather than one ``Counter`` child per bin: the counts already live in one array,
    updated in bulk, and exposition turns them into samples only when scraped. The predicted class of every
    record is counted once, in the prediction's bins, and exported under both names: a second ``Counter`` for
    the same events would cost every request one more increment for no new information.
    """

    def __init__(self, counts: DriftCounts, model_name: str, model_version: str) -> None:
        self._counts = counts
        self._label_sets = [
            [model_name, model_version, name, label]
            for name, labels, _, _ in counts.per_signal(np.zeros(counts.size, dtype=np.int64))
            for label in labels
        ]
        self._reference = [
            share
            for _, _, _, shares in counts.per_signal(np.zeros(counts.size, dtype=np.int64))
            for share in shares
        ]
        classes = counts.prediction.classes
        self._prediction_label_sets = [[model_name, model_version, name] for name in classes]
        self._prediction_start = counts.size - len(classes)
        """The prediction's bins are the last ``len(classes)`` slots, in class order."""

    def _families(self) -> tuple[CounterMetricFamily, GaugeMetricFamily, CounterMetricFamily]:
        observed = contract.DRIFT_BIN_OBSERVATIONS
        reference = contract.DRIFT_BIN_REFERENCE_RATIO
        predictions = contract.PREDICTIONS
        return (
            CounterMetricFamily(observed.family, observed.help, labels=observed.labels),
            GaugeMetricFamily(reference.family, reference.help, labels=reference.labels),
            CounterMetricFamily(predictions.family, predictions.help, labels=predictions.labels),
        )

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        observed, reference, predictions = self._families()
        counts = self._counts.snapshot().tolist()
        for labels, count, share in zip(self._label_sets, counts, self._reference, strict=True):
            observed.add_metric(labels, count)
            reference.add_metric(labels, share)
        for labels, count in zip(self._prediction_label_sets, counts[self._prediction_start :], strict=True):
            predictions.add_metric(labels, count)
        yield observed
        yield reference
        yield predictions
