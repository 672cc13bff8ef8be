"""Data quality of the model's inputs: per feature, records whose value is missing, null, non-finite or
outside the range the feature had in training.

A record with a missing, null or non-finite value cannot be served (the model needs every feature as a
finite number), so its request is refused as before; the problem is also counted per feature, read from the
validation errors the refusal already has, so that a client which stopped filling one feature shows as that
feature and not only as a rise of refused requests. A finite value outside the training range is served (the
model extrapolates) and counted: a few such values move no drift bin noticeably, since they fall in the
outermost bins, yet they are exactly the inputs on which the model was never tested.

Cost on a served request: a batch of a few records is queued and compared with the training bounds together
with the others (:mod:`model_service.batching`), in one numpy comparison, where on its own numpy's per-call
overhead would cost more than the comparison; a larger batch is compared at once. Counters are incremented
only for features that have a value outside the bounds. Refused requests pay a second parse of their body to
count their records, on the error path only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from prometheus_client import CollectorRegistry, Counter
from pydantic_core import ErrorDetails

from model_service import contract
from model_service.artifact import ArtifactMetadata
from model_service.batching import BatchedInstruments

RECORDS_FIELD = "records"
"""The key of a /predict body that holds the batch."""


def issue_kind(error: ErrorDetails) -> str | None:
    """The contract's kind of input problem a validation error of one feature is, or None if it is none of
    them (a non-numeric string or a boolean is a malformed request, not a data-quality problem of a feature).

    >>> issue_kind({"type": "missing", "loc": ("records", 0, "f1"), "msg": "", "input": {}})
    'missing'
    >>> issue_kind({"type": "float_type", "loc": ("records", 0, "f1"), "msg": "", "input": "-Infinity"})
    'non_finite'
    >>> issue_kind({"type": "float_type", "loc": ("records", 0, "f1"), "msg": "", "input": "abc"}) is None
    True
    """
    kind = error["type"]
    if kind == "missing":
        return contract.QUALITY_MISSING
    if kind == "finite_number":
        return contract.QUALITY_NON_FINITE
    if kind == "float_type":
        value = error.get("input")
        if value is None:
            return contract.QUALITY_NULL
        if isinstance(value, str):
            try:
                return None if math.isfinite(float(value)) else contract.QUALITY_NON_FINITE
            except ValueError:
                return None
    return None


def record_count(body: bytes, max_batch_size: int) -> int:
    """Records a refused body had, if it was examined record by record: a JSON object whose ``records`` list
    holds 1 to ``max_batch_size`` items; 0 for a body refused as a whole."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return 0
    records = document.get(RECORDS_FIELD) if isinstance(document, dict) else None
    if not isinstance(records, list) or not 1 <= len(records) <= max_batch_size:
        return 0
    return len(records)


class InputQualityMetrics:
    """The input-quality counters of one loaded model; every (feature, kind) child exists from the start."""

    def __init__(self, registry: CollectorRegistry, metadata: ArtifactMetadata, max_batch_size: int) -> None:
        name, version = metadata.model_name, metadata.model_version
        spec = contract.INPUT_RECORDS
        records = Counter(spec.family, spec.help, spec.labels, registry=None)
        self._records = records.labels(name, version)
        spec = contract.INPUT_QUALITY_ISSUES
        issues = Counter(spec.family, spec.help, spec.labels, registry=None)
        self._issues = {
            (feature, kind): issues.labels(name, version, feature, kind)
            for feature in metadata.feature_names
            for kind in contract.INPUT_QUALITY_KINDS
        }
        self._out_of_range: Sequence[Counter] = [
            self._issues[(feature, contract.QUALITY_OUT_OF_RANGE)] for feature in metadata.feature_names
        ]
        self._served = BatchedInstruments[NDArray[np.float64]](
            registry, (records, issues), self._count_served
        )
        # A feature of an artifact without a recorded range gets infinite bounds: no finite value is outside.
        self._low = np.array([-math.inf if f.minimum is None else f.minimum for f in metadata.features])
        self._high = np.array([math.inf if f.maximum is None else f.maximum for f in metadata.features])
        self._max_batch_size = max_batch_size

    def observe_accepted(self, x: NDArray[np.float64]) -> None:
        """Count a batch about to be served (finite values, one column per feature, in the model's order); it
        must not change afterwards, as a small batch is counted later."""
        self._served.record_rows(x, len(x))

    def _count_served(self, batches: list[NDArray[np.float64]]) -> None:
        x = np.concatenate(batches)
        self._records.inc(len(x))
        outside = (x < self._low) | (x > self._high)
        if not outside.any():
            return
        for column, count in enumerate(np.count_nonzero(outside, axis=0).tolist()):
            if count:
                self._out_of_range[column].inc(count)

    def observe_refused(self, body: bytes, errors: Sequence[ErrorDetails]) -> None:
        """Count a refused batch: its records, and each feature of a record that is missing, null or not
        finite."""
        records = record_count(body, self._max_batch_size)
        if not records:
            return
        self._records.inc(records)
        for error in errors:
            location = error["loc"]
            if len(location) != 3 or location[0] != RECORDS_FIELD or not isinstance(location[1], int):
                continue
            kind = issue_kind(error)
            child = self._issues.get((str(location[2]), kind)) if kind is not None else None
            if child is not None:
                child.inc()
