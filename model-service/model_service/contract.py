"""The metric contract of a model service: names, labels, bin semantics and monitoring defaults.

This module is the single place where the service and the monitoring that watches it (recording rules,
alerts, dashboards, the deployment's environment) agree on what is exported. It is standard-library only
so that infrastructure code can import it without installing numpy, scikit-learn or prometheus-client:
any model service, in any language, that exports these series gets the same SLO, accuracy and drift
monitoring.

Conventions, and why:

* Names follow Prometheus conventions: base units (seconds, bytes, ratios), ``_total`` on counters, no
  colons (those are reserved for recording rules). Every series the service owns starts with ``model_``,
  so a team's existing HTTP instrumentation (for example ``http_requests_total`` with different labels)
  cannot be mistaken for this contract.
* Series that describe the model carry ``model_name`` and ``model_version`` (the convention MLServer,
  KServe and Seldon share), so two versions running side by side during a rollout stay apart. Interface
  (HTTP) series describe the server process and do not; join them with :data:`MODEL_INFO` when needed.
* Label values are bounded: route templates, HTTP methods and codes, class names, feature names and bin
  identifiers. No ids, raw values or paths of unmatched requests ever become label values.

Drift inputs
------------
For every input feature, and for the prediction (as the pseudo-feature :data:`PREDICTION_FEATURE`), the
service counts live values per bin in :data:`DRIFT_BIN_OBSERVATIONS` and exports the training data's
share of each bin in :data:`DRIFT_BIN_REFERENCE_RATIO`. Both carry the labels :data:`DRIFT_JOIN_LABELS`,
and a bin's identifier is the same string in both, so Prometheus computes, over any window and summed
across replicas, the window's share per bin and from it PSI and Jensen-Shannon distance against the
reference (see :data:`PSI_THRESHOLD` and :data:`JS_DISTANCE_THRESHOLD` for the formulas).

Bin semantics for a numeric feature: training quantiles give ``n - 1`` increasing interior edges
``e_1 < ... < e_{n-1}`` (duplicates dropped, so a feature with ties may have fewer bins). Bin ``i`` holds
``e_i <= x < e_{i+1}`` with ``e_0 = -inf`` and ``e_n = +inf``: a value equal to an edge belongs to the bin
above it, values below the first edge go to the first bin and values above the last edge to the last bin,
so every finite value lands in exactly one bin and the bins cover the whole line. Bins are labelled by
:func:`bin_label` of their zero-based index. For a categorical output (the predicted class of a
classifier) there is one bin per class and the bin label is the class name.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

# --------------------------------------------------------------------------------------------------------
# Label names
# --------------------------------------------------------------------------------------------------------

LABEL_MODEL_NAME: Final = "model_name"
"""Name of the served model; on every model-layer series so one Prometheus can watch many models."""

LABEL_MODEL_VERSION: Final = "model_version"
"""Version of the served model; keeps a canary and the stable version apart in every model-layer ratio."""

LABEL_ROUTE: Final = "route"
"""Route template of an HTTP request (one of :data:`ROUTES` or :data:`ROUTE_UNMATCHED`), never a raw path."""

LABEL_METHOD: Final = "method"
"""HTTP method, one of :data:`HTTP_METHODS` or ``"other"``, so a scanner cannot create new series."""

LABEL_CODE: Final = "code"
"""HTTP status code as a decimal string (``"200"``, ``"422"``); named as the Go client names it."""

LABEL_CLASS: Final = "class"
"""Predicted class on :data:`PREDICTIONS`."""

LABEL_PREDICTED_CLASS: Final = "predicted_class"
"""Class the model predicted, on :data:`FEEDBACK`; with :data:`LABEL_ACTUAL_CLASS` it forms a confusion
matrix."""

LABEL_ACTUAL_CLASS: Final = "actual_class"
"""Ground-truth class reported by feedback, on :data:`FEEDBACK`."""

LABEL_OUTCOME: Final = "outcome"
"""``"correct"`` or ``"incorrect"`` on :data:`FEEDBACK`: PromQL cannot compare two labels, so the service
spells out whether predicted and actual class agree and accuracy becomes a plain ratio of two sums."""

LABEL_REASON: Final = "reason"
"""Why a request or a feedback item was rejected; values are closed sets defined below."""

LABEL_FEATURE: Final = "feature"
"""Input feature name, or :data:`PREDICTION_FEATURE` for the model output, on the drift series."""

LABEL_BIN: Final = "bin"
"""Bin identifier on the drift series: :func:`bin_label` of the index for numeric features, the class name
for a categorical output. Rules must treat it as opaque and only join on it."""

LABEL_KIND: Final = "kind"
"""Kind of injected fault (:data:`FAULT_KINDS`) on :data:`FAULT_INJECTIONS`, and kind of input problem
(:data:`INPUT_QUALITY_KINDS`) on :data:`INPUT_QUALITY_ISSUES`."""

MODEL_LABELS: Final[tuple[str, str]] = (LABEL_MODEL_NAME, LABEL_MODEL_VERSION)
"""The labels that identify a model; aggregate model-layer series ``by`` at least these."""

DRIFT_JOIN_LABELS: Final[tuple[str, str, str, str]] = (
    LABEL_MODEL_NAME,
    LABEL_MODEL_VERSION,
    LABEL_FEATURE,
    LABEL_BIN,
)
"""Labels on which live bin counts and reference shares are joined (``on(...)``) in drift rules.
Aggregate the counters with ``sum by`` these (replicas add up) and the reference gauges with
``max by`` these (every replica of one version exports the same constants)."""

DRIFT_GROUP_LABELS: Final[tuple[str, str, str]] = (LABEL_MODEL_NAME, LABEL_MODEL_VERSION, LABEL_FEATURE)
"""Labels of one drift statistic: PSI and JS distance are computed per model version and feature."""

# --------------------------------------------------------------------------------------------------------
# Label values
# --------------------------------------------------------------------------------------------------------

SAMPLE_FEATURE_NAMES: Final[tuple[str, ...]] = tuple(f"f{i}" for i in range(8))
"""The sample model's input features, in order (``model_service.data`` generates them): what the drift
settings of its load generator may name."""
PREDICTION_FEATURE: Final = "prediction"
"""Value of :data:`LABEL_FEATURE` for the model output, so prediction drift uses the same rules as input
drift. A model whose inputs include a feature of this name is rejected at load time."""

ROUTE_PREDICT: Final = "/predict"
"""Inference route; the latency and availability SLOs are defined on it."""

ROUTE_FEEDBACK: Final = "/feedback"
"""Ground-truth route: scores earlier predictions for the accuracy counters."""

ROUTE_HEALTHZ: Final = "/healthz"
"""Liveness: the process serves HTTP. Use for the liveness probe."""

ROUTE_READYZ: Final = "/readyz"
"""Readiness: the model is loaded and predictions can be served. Use for the readiness probe."""

ROUTE_METRICS: Final = "/metrics"
"""Prometheus exposition on the same port as the API (no separate metrics port to wire)."""

ROUTE_DRIFT: Final = "/drift"
"""Debug view of in-process PSI and JS distance since start; for people, not for alerting."""

ROUTE_OPENAPI: Final = "/openapi.json"
"""The API's OpenAPI 3.1 document, built from the loaded model's validators (``model_service.openapi``)."""

ROUTES: Final[tuple[str, ...]] = (
    ROUTE_PREDICT,
    ROUTE_FEEDBACK,
    ROUTE_HEALTHZ,
    ROUTE_READYZ,
    ROUTE_METRICS,
    ROUTE_DRIFT,
    ROUTE_OPENAPI,
)
"""Every value :data:`LABEL_ROUTE` can take besides :data:`ROUTE_UNMATCHED`."""

SIZE_ROUTES: Final[tuple[str, ...]] = (ROUTE_PREDICT, ROUTE_FEEDBACK)
"""Routes whose request and response sizes are observed: the ones that carry model payloads. Probes
and scrapes have empty or constant bodies, and 20 size series per route would buy nothing for them."""

ROUTE_UNMATCHED: Final = "unmatched"
"""Route label for any path that is not in :data:`ROUTES` (scanners, typos): bounded, unlike raw paths."""

HTTP_METHODS: Final[tuple[str, ...]] = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
"""Methods kept verbatim in :data:`LABEL_METHOD`; anything else is counted as ``"other"``."""

HTTP_METHOD_OTHER: Final = "other"
"""Method label for non-standard methods."""

OUTCOME_CORRECT: Final = "correct"
"""Outcome label of feedback whose actual class equals the predicted class."""

OUTCOME_INCORRECT: Final = "incorrect"
"""Outcome label of feedback whose actual class differs from the predicted class."""

REQUEST_REJECTION_REASONS: Final[tuple[str, ...]] = (
    "invalid_json",
    "invalid_body",
    "missing_field",
    "unexpected_field",
    "invalid_value",
    "body_too_large",
    "batch_too_large",
)
"""Values of :data:`LABEL_REASON` on :data:`INVALID_REQUESTS`: why a request body was refused (422 or
413). One count per refused request, with the reason of its first error; the response body names every
offending field. A spike in ``missing_field`` or ``unexpected_field`` is the signature of a client whose
feature schema no longer matches the model."""

FEEDBACK_REJECTION_REASONS: Final[tuple[str, ...]] = (
    "malformed_id",
    "bad_signature",
    "expired",
    "other_model",
    "unknown_class",
)
"""Values of :data:`LABEL_REASON` on :data:`FEEDBACK_REJECTED`, one count per refused feedback item:
an id that does not parse; one whose signature does not verify (tampered, or signed with another key);
one older than the configured maximum age; one issued by another model name or version; an actual class
the model does not know."""

FAULT_KINDS: Final[tuple[str, ...]] = ("error", "latency")
"""Values of :data:`LABEL_KIND` on :data:`FAULT_INJECTIONS`: injected 5xx answers and injected delay."""

QUALITY_MISSING: Final = "missing"
"""A record without the feature's key (the request is refused with 422)."""
QUALITY_NULL: Final = "null"
"""The feature's value is JSON ``null`` (refused with 422)."""
QUALITY_NON_FINITE: Final = "non_finite"
"""The value is NaN or an infinity, as a JSON literal (``NaN``, ``Infinity``, ``1e999``) or as a string that
reads as one (``"NaN"``, ``"inf"``); refused with 422."""
QUALITY_OUT_OF_RANGE: Final = "out_of_range"
"""A finite value below the smallest or above the largest value the feature had in training. The record is
served (the model extrapolates) and counted."""

INPUT_QUALITY_KINDS: Final[tuple[str, ...]] = (
    QUALITY_MISSING,
    QUALITY_NULL,
    QUALITY_NON_FINITE,
    QUALITY_OUT_OF_RANGE,
)
"""Values of :data:`LABEL_KIND` on :data:`INPUT_QUALITY_ISSUES`, every one exported per feature from load time
on."""

# --------------------------------------------------------------------------------------------------------
# Metric names
# --------------------------------------------------------------------------------------------------------

MetricType = Literal["counter", "gauge", "histogram", "info"]


@dataclass(frozen=True, kw_only=True)
class MetricSpec:
    """One metric family of the contract, as a rule or dashboard needs to address it.

    ``name`` is the series name as scraped (counters include ``_total``; histograms are addressed through
    ``name + "_bucket"``, ``"_sum"`` and ``"_count"``); ``labels`` are exactly the labels the service sets,
    before Prometheus adds its target labels (``job``, ``namespace``, ``pod``, ``instance``).
    """

    name: str
    """Exposed name (with ``_total`` for counters, without the histogram suffixes)."""
    type: MetricType
    """Prometheus metric type."""
    labels: tuple[str, ...]
    """Label names set by the service, in a stable order."""
    help: str
    """HELP text; also the documentation of the series in the service README."""
    model_layer: bool
    """True for series that describe the model (they carry :data:`MODEL_LABELS`); False for the interface."""

    @property
    def family(self) -> str:
        """Name as prometheus-client constructors and OpenMetrics families take it: without ``_total``
        for a counter and without ``_info`` for an info metric (the library appends the suffix)."""
        if self.type == "counter":
            return self.name.removesuffix("_total")
        if self.type == "info":
            return self.name.removesuffix("_info")
        return self.name


# Interface layer -----------------------------------------------------------------------------------------

HTTP_REQUESTS: Final = MetricSpec(
    name="model_http_requests_total",
    type="counter",
    labels=(LABEL_ROUTE, LABEL_METHOD, LABEL_CODE),
    help="HTTP requests answered, by route template, method and status code.",
    model_layer=False,
)
"""Availability SLI: ``code=~"5.."`` over all, on ``route="/predict"``. Fault-injected errors count here."""

HTTP_REQUEST_DURATION: Final = MetricSpec(
    name="model_http_request_duration_seconds",
    type="histogram",
    labels=(LABEL_ROUTE,),
    help="Time from receiving an HTTP request to sending the last byte of its response, by route template.",
    model_layer=False,
)
"""Latency SLI. Its buckets always include every configured latency SLO threshold (see
:func:`latency_buckets`), so ``le="<threshold>"`` divided by ``_count`` is the exact share of fast
requests. Labelled by route only: status codes would multiply the bucket series for little gain."""

HTTP_REQUESTS_IN_FLIGHT: Final = MetricSpec(
    name="model_http_requests_in_flight",
    type="gauge",
    labels=(),
    help="HTTP requests being processed right now.",
    model_layer=False,
)
"""Saturation signal: with one worker per pod, a growing value means requests queue in the event loop."""

HTTP_REQUEST_SIZE: Final = MetricSpec(
    name="model_http_request_size_bytes",
    type="histogram",
    labels=(LABEL_ROUTE,),
    help="Size of HTTP request bodies received, by route template (model routes only).",
    model_layer=False,
)
"""Shows batch sizes in bytes and how close clients come to the body size limit; observed for the routes
in :data:`SIZE_ROUTES` only."""

HTTP_RESPONSE_SIZE: Final = MetricSpec(
    name="model_http_response_size_bytes",
    type="histogram",
    labels=(LABEL_ROUTE,),
    help="Size of HTTP response bodies sent, by route template (model routes only).",
    model_layer=False,
)
"""Response bytes of the routes in :data:`SIZE_ROUTES`."""

INVALID_REQUESTS: Final = MetricSpec(
    name="model_invalid_requests_total",
    type="counter",
    labels=(LABEL_ROUTE, LABEL_REASON),
    help="Requests refused because of their body (422 or 413), by route template and reason.",
    model_layer=False,
)
"""Client-side errors by cause (:data:`REQUEST_REJECTION_REASONS`), without naming fields in labels."""

FAULT_INJECTIONS: Final = MetricSpec(
    name="model_fault_injections_total",
    type="counter",
    labels=(LABEL_KIND,),
    help="Requests to /predict given an injected fault (demo and test only), by kind.",
    model_layer=False,
)
"""Exposed only when fault injection is configured, so a burning SLO in a demo can be told apart from a
real incident."""

# Model layer ---------------------------------------------------------------------------------------------

MODEL_INFO: Final = MetricSpec(
    name="model_info",
    type="info",
    labels=(LABEL_MODEL_NAME, LABEL_MODEL_VERSION),
    help="Model loaded by this replica; value is always 1.",
    model_layer=True,
)
"""Absent until the model is loaded. Count it to see which versions serve; join on the target labels
(``on(namespace, pod) group_left(model_name, model_version)``) to attach a model to interface series."""

MODEL_TRAINED_TIMESTAMP: Final = MetricSpec(
    name="model_trained_timestamp_seconds",
    type="gauge",
    labels=MODEL_LABELS,
    help="Unix time at which the loaded model was trained.",
    model_layer=True,
)
"""``time() - model_trained_timestamp_seconds`` is the model's age, for a "model is stale" alert."""

INFERENCE_DURATION: Final = MetricSpec(
    name="model_inference_duration_seconds",
    type="histogram",
    labels=MODEL_LABELS,
    help="Time the model spends computing predictions for one request's batch.",
    model_layer=True,
)
"""Separates model time from HTTP and validation time in the request latency."""

PREDICTIONS: Final = MetricSpec(
    name="model_predictions_total",
    type="counter",
    labels=(LABEL_MODEL_NAME, LABEL_MODEL_VERSION, LABEL_CLASS),
    help="Predictions returned (one per record), by predicted class.",
    model_layer=True,
)
"""Prediction volume and class mix; every class of the model is exported from load time on, at zero."""

PREDICTION_CONFIDENCE: Final = MetricSpec(
    name="model_prediction_confidence_ratio",
    type="histogram",
    labels=MODEL_LABELS,
    help="Probability the model gives to the class it predicts, one observation per record.",
    model_layer=True,
)
"""A falling median confidence often precedes a measurable accuracy drop, before feedback arrives."""

FEEDBACK: Final = MetricSpec(
    name="model_feedback_total",
    type="counter",
    labels=(LABEL_MODEL_NAME, LABEL_MODEL_VERSION, LABEL_PREDICTED_CLASS, LABEL_ACTUAL_CLASS, LABEL_OUTCOME),
    help="Scored feedback items: a confusion matrix of predicted against actual class, with the outcome.",
    model_layer=True,
)
"""Accuracy over any window is ``sum(increase(...{outcome="correct"}[w])) / sum(increase(...[w]))``;
precision and recall per class come from the matrix. All class pairs are exported from load time on."""

FEEDBACK_REJECTED: Final = MetricSpec(
    name="model_feedback_rejected_total",
    type="counter",
    labels=(LABEL_MODEL_NAME, LABEL_MODEL_VERSION, LABEL_REASON),
    help="Feedback items refused, by reason.",
    model_layer=True,
)
"""Reasons are :data:`FEEDBACK_REJECTION_REASONS`, all exported from load time on."""

DRIFT_BIN_OBSERVATIONS: Final = MetricSpec(
    name="model_drift_bin_observations_total",
    type="counter",
    labels=DRIFT_JOIN_LABELS,
    help="Live values per drift bin, for every input feature and for the prediction.",
    model_layer=True,
)
"""One increment per record and feature. Every bin is exported from load time on, at zero, so a bin
that receives nothing still takes part in the window's shares."""

DRIFT_BIN_REFERENCE_RATIO: Final = MetricSpec(
    name="model_drift_bin_reference_ratio",
    type="gauge",
    labels=DRIFT_JOIN_LABELS,
    help="Share of the training data in each drift bin (constant per model version; sums to 1 per feature).",
    model_layer=True,
)
"""The reference distribution, exported so rules need no per-model constants."""

INPUT_RECORDS: Final = MetricSpec(
    name="model_input_records_total",
    type="counter",
    labels=MODEL_LABELS,
    help="Records of /predict bodies examined feature by feature, served or refused.",
    model_layer=True,
)
"""The denominator of the input-quality ratios: every record of a body that is a JSON object whose ``records``
list is within the batch limit, whether its request was served or refused. Records of bodies refused as a
whole (invalid JSON, empty or oversized batch) are not examined and not counted."""

INPUT_QUALITY_ISSUES: Final = MetricSpec(
    name="model_input_quality_issues_total",
    type="counter",
    labels=(LABEL_MODEL_NAME, LABEL_MODEL_VERSION, LABEL_FEATURE, LABEL_KIND),
    help="Records with a data-quality problem in one input feature, by feature and kind of problem.",
    model_layer=True,
)
"""One increment per record and feature with a problem (:data:`INPUT_QUALITY_KINDS`). ``missing``, ``null``
and ``non_finite`` records are refused (and their request counted in :data:`INVALID_REQUESTS`);
``out_of_range`` records are served. Divided by :data:`INPUT_RECORDS`, it gives the share of each problem per
feature over any window. Every (feature, kind) pair is exported from load time on, at zero."""

INTERFACE_METRICS: Final[tuple[MetricSpec, ...]] = (
    HTTP_REQUESTS,
    HTTP_REQUEST_DURATION,
    HTTP_REQUESTS_IN_FLIGHT,
    HTTP_REQUEST_SIZE,
    HTTP_RESPONSE_SIZE,
    INVALID_REQUESTS,
    FAULT_INJECTIONS,
)
"""Every interface-layer family the service may expose."""

MODEL_METRICS: Final[tuple[MetricSpec, ...]] = (
    MODEL_INFO,
    MODEL_TRAINED_TIMESTAMP,
    INFERENCE_DURATION,
    PREDICTIONS,
    PREDICTION_CONFIDENCE,
    FEEDBACK,
    FEEDBACK_REJECTED,
    DRIFT_BIN_OBSERVATIONS,
    DRIFT_BIN_REFERENCE_RATIO,
    INPUT_RECORDS,
    INPUT_QUALITY_ISSUES,
)
"""Every model-layer family the service exposes once the model is loaded."""

ALL_METRICS: Final[tuple[MetricSpec, ...]] = INTERFACE_METRICS + MODEL_METRICS
"""Every family of the contract (process and Python runtime collectors come on top, unchanged)."""

# --------------------------------------------------------------------------------------------------------
# Buckets and the latency SLO
# --------------------------------------------------------------------------------------------------------

DEFAULT_LATENCY_SLO_THRESHOLDS_SECONDS: Final[tuple[float, ...]] = (0.025, 0.1)
"""Default latency SLO thresholds for ``/predict``: a tight one (most requests) and a loose one (nearly
all). The service makes each configured threshold a bucket bound of :data:`HTTP_REQUEST_DURATION`."""

BASE_LATENCY_BUCKETS_SECONDS: Final[tuple[float, ...]] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)
"""Request-duration bounds before the SLO thresholds are merged in: millisecond resolution where a
small model answers, coarse beyond a second where only fault injection or overload lands."""

MAX_LATENCY_SLO_THRESHOLDS: Final = 4
"""At most this many thresholds, so the duration histogram stays within the series budget."""

INFERENCE_BUCKETS_SECONDS: Final[tuple[float, ...]] = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
)
"""Inference-duration bounds: 100 µs to 100 ms, the range of a small tabular model's batch."""

CONFIDENCE_BUCKETS: Final[tuple[float, ...]] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
"""Confidence bounds: deciles, plus 0.95 and 0.99 where a confident model's mass sits."""

SIZE_BUCKETS_BYTES: Final[tuple[float, ...]] = (256, 1024, 4096, 16384, 65536, 262144, 1048576)
"""Body-size bounds: powers of four from 256 B to the default 1 MiB body limit."""

# Settings a deployment gives the service, as environment variables (``model_service.settings``: ``MODEL_``
# and the field's name); a test checks that each names a setting.
ENV_HOST: Final = "MODEL_HOST"
ENV_PORT: Final = "MODEL_PORT"
ENV_ARTIFACT_DIR: Final = "MODEL_ARTIFACT_DIR"
ENV_FEEDBACK_SIGNING_KEY: Final = "MODEL_FEEDBACK_SIGNING_KEY"
ENV_LOG_LEVEL: Final = "MODEL_LOG_LEVEL"
ENV_SHUTDOWN_TIMEOUT_SECONDS: Final = "MODEL_SHUTDOWN_TIMEOUT_SECONDS"
ENV_FAULT_ERROR_RATIO: Final = "MODEL_FAULT_ERROR_RATIO"
ENV_FAULT_EXTRA_LATENCY_SECONDS: Final = "MODEL_FAULT_EXTRA_LATENCY_SECONDS"
ENV_FAULT_LATENCY_RATIO: Final = "MODEL_FAULT_LATENCY_RATIO"
NAME_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
"""What a model's name and version may be: a label value Prometheus and Kubernetes both accept."""
ENV_MODEL_NAME: Final = "MODEL_NAME"
"""Environment variable that sets the name the service reports (``model_name``), whatever its artifact
says."""
ENV_ACCEPTED_VERSIONS: Final = "MODEL_ACCEPTED_VERSIONS"
"""Environment variable listing (comma-separated) the model versions whose prediction ids the service
scores, its own always among them: during a canary or a rollout, feedback reaches a replica of either
version."""
MAX_ACCEPTED_VERSIONS: Final = 4
"""Most versions one replica scores feedback for, its own included: each adds a confusion matrix of
:data:`FEEDBACK` series."""
ENV_LATENCY_SLO_THRESHOLDS_SECONDS: Final = "MODEL_LATENCY_SLO_THRESHOLDS_SECONDS"
"""Environment variable that sets the service's SLO thresholds; render its value with
:func:`format_latency_thresholds` from the same numbers the SLO rules use, so the two cannot disagree."""


def latency_buckets(
    thresholds: Iterable[float] = DEFAULT_LATENCY_SLO_THRESHOLDS_SECONDS,
) -> tuple[float, ...]:
    """Return the request-duration bucket bounds: the base bounds merged with every SLO threshold.

    >>> latency_buckets([0.02])[:6]
    (0.001, 0.0025, 0.005, 0.01, 0.02, 0.025)
    """
    values = tuple(thresholds)
    for value in values:
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"latency SLO threshold must be a positive number of seconds, got {value!r}")
    return tuple(sorted(set(BASE_LATENCY_BUCKETS_SECONDS) | set(values)))


def format_latency_thresholds(thresholds: Iterable[float]) -> str:
    """Render thresholds as the value of :data:`ENV_LATENCY_SLO_THRESHOLDS_SECONDS`.

    >>> format_latency_thresholds([0.025, 0.1])
    '0.025,0.1'
    """
    return ",".join(repr(float(value)) for value in thresholds)


def format_le(bound: float) -> str:
    """Render a bucket bound as prometheus-client writes the ``le`` label, for exact selectors in rules.

    Like Go's Prometheus clients, it switches to exponent notation from 10**7 on (prometheus-client's
    ``floatToGoString``), so selectors must not be built with ``str()``.

    >>> format_le(0.1), format_le(1.0), format_le(1048576), format_le(float("inf"))
    ('0.1', '1.0', '1.048576e+06', '+Inf')
    """
    value = float(bound)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = repr(value)
    dot = text.find(".")
    if value > 0 and dot > 6:
        mantissa = f"{text[0]}.{text[1:dot]}{text[dot + 1 :]}".rstrip("0.")
        return f"{mantissa}e+{dot - 1:02d}"
    return text


# --------------------------------------------------------------------------------------------------------
# Drift defaults
# --------------------------------------------------------------------------------------------------------

DEFAULT_DRIFT_BIN_COUNT: Final = 10
"""Bins per numeric feature (training deciles). Ten bins keep the sampling noise of PSI and JS low at the
minimum volume while still resolving shifts of about 0.25 standard deviations, at 2 series per bin."""

MAX_DRIFT_BIN_COUNT: Final = 100
"""Upper bound on bins per feature; also fixes the width of :func:`bin_label`."""

PSI_THRESHOLD: Final = 0.2
"""PSI at or above which a feature counts as drifted (credit-scoring convention: < 0.1 stable,
0.1-0.25 moderate). PSI = sum over bins of (q - p) * ln(q / p), q the window's share and p the
reference share, both clamped below at :data:`PSI_EPSILON`."""

PSI_EPSILON: Final = 1e-4
"""Floor applied to both shares before PSI, so an empty bin contributes a large but finite term."""

JS_DISTANCE_THRESHOLD: Final = 0.1
"""Jensen-Shannon distance (base-2 logarithm, so in [0, 1]) at or above which a feature counts as
drifted; the default of Evidently and NannyML. JS = sqrt((KL(q || m) + KL(p || m)) / 2), m = (p + q) / 2,
as :func:`scipy.spatial.distance.jensenshannon` computes with ``base=2``."""

JS_EPSILON: Final = 1e-12
"""Floor applied to shares before JS in PromQL, only to keep 0 * log(0) from becoming NaN."""

DRIFT_MIN_WINDOW_OBSERVATIONS: Final = 1000
"""Minimum observations of a feature in a window before its drift statistic may alert. With 10 bins the
JS distance of undrifted traffic is about 0.04 at 1,000 observations but nears the 0.1 threshold below
a few hundred, so smaller windows would page on sampling noise."""

DEFAULT_DRIFT_WINDOW: Final = "1h"
"""Suggested PromQL range for drift rules: at 1 request/s it reaches the minimum volume in 17 minutes."""


def bin_label(index: int) -> str:
    """Return the :data:`LABEL_BIN` value of a numeric bin: its index, zero-padded so it sorts as text.

    >>> bin_label(0), bin_label(9)
    ('00', '09')
    """
    if not 0 <= index < MAX_DRIFT_BIN_COUNT:
        raise ValueError(f"bin index must be in [0, {MAX_DRIFT_BIN_COUNT}), got {index}")
    return f"{index:02d}"


def bin_index(edges: Sequence[float], value: float) -> int:
    """Return the index of the bin that holds ``value``, given the interior edges (reference version).

    The service does the same with numpy for whole batches; this pure version pins the semantics for
    any other implementation of the contract.

    >>> edges = [-1.0, 0.0, 1.0]
    >>> [bin_index(edges, v) for v in (-5.0, -1.0, -0.5, 0.0, 1.0, 7.0)]
    [0, 1, 1, 2, 3, 3]
    """
    return bisect_right(edges, value)


def drift_series_count(
    n_features: int, n_prediction_bins: int, bin_count: int = DEFAULT_DRIFT_BIN_COUNT
) -> int:
    """Return how many drift series (counters plus reference gauges) one replica exposes.

    Assumes every numeric feature has ``bin_count`` bins (no tied edges).

    >>> drift_series_count(8, 3)
    166
    """
    return 2 * (n_features * bin_count + n_prediction_bins)


def histogram_series_count(bounds: Sequence[float]) -> int:
    """Return the series of one histogram child: a bucket per bound, ``+Inf``, ``_sum`` and ``_count``.

    >>> histogram_series_count(INFERENCE_BUCKETS_SECONDS)
    13
    """
    return len(bounds) + 3


def scored_versions(own: str, accepted: Iterable[str] = ()) -> tuple[str, ...]:
    """The versions a replica of version ``own`` scores feedback for: its own first, then ``accepted`` (from
    :data:`ENV_ACCEPTED_VERSIONS`) once each; more than :data:`MAX_ACCEPTED_VERSIONS` is refused.

    >>> scored_versions("1.1.0", ["1.0.0", "1.1.0"])
    ('1.1.0', '1.0.0')
    """
    versions = tuple(dict.fromkeys((own, *accepted)))
    if len(versions) > MAX_ACCEPTED_VERSIONS:
        raise ValueError(
            f"{ENV_ACCEPTED_VERSIONS} with this replica's own version {own!r} makes {len(versions)} "
            f"versions ({', '.join(versions)}), more than {MAX_ACCEPTED_VERSIONS}: list only the versions "
            "that serve now"
        )
    return versions


def model_series_count(
    n_features: int,
    classes: int,
    bin_count: int = DEFAULT_DRIFT_BIN_COUNT,
    versions: int = 1,
) -> int:
    """Return how many model-layer series one replica exposes once its classifier is loaded.

    This is constant: it does not grow with traffic, because every label set is created at load time. Feedback
    has a confusion matrix per scored version (``versions``, :func:`scored_versions`).

    >>> model_series_count(8, 3)
    245
    """
    return (
        1  # model_info
        + 1  # model_trained_timestamp_seconds
        + histogram_series_count(INFERENCE_BUCKETS_SECONDS)
        + classes  # model_predictions_total
        + histogram_series_count(CONFIDENCE_BUCKETS)
        + versions * classes * classes  # model_feedback_total (outcome follows from the class pair)
        + len(FEEDBACK_REJECTION_REASONS)
        + drift_series_count(n_features, classes, bin_count)
        + input_quality_series_count(n_features)
    )


def input_quality_series_count(n_features: int) -> int:
    """Return the input-quality series of one replica: the record counter and one issue counter per feature
    and kind.

    >>> input_quality_series_count(8)
    33
    """
    return 1 + n_features * len(INPUT_QUALITY_KINDS)


# --------------------------------------------------------------------------------------------------------
# Where the service listens
# --------------------------------------------------------------------------------------------------------

DEFAULT_PORT: Final = 8080
"""Port of the API, the probes and ``/metrics`` (``MODEL_PORT``)."""

PORT_NAME: Final = "http"
"""Suggested container/Service port name; one port serves the API and the metrics."""
