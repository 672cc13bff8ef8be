"""Drift rules: PSI and JS distance recorded by promtool equal numpy/scipy on the same counts, and the drift
alerts fire only when both windows, with enough volume, exceed the feature's threshold.

Expected values and times come from numpy/scipy applied to the window shares that Prometheus 3's
``increase()`` gives on the same input series (tests/promsim.py), never from the rules under test.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from model_service import contract
from scipy.spatial.distance import jensenshannon

from components.contracts import TRACK_CANARY, TRACK_SERIES_LABEL, TRACK_STABLE
from components.monitors.config import ModelMonitorsConfig
from components.monitors.drift_rules import FEATURE_DRIFT_ALERT, PREDICTION_DRIFT_ALERT, js_distance, psi
from components.monitors.rule_model import AlertingRule, RuleGroup, selector
from tests.monitor_rules import MINUTE, MODEL, NAMESPACE, groups_for
from tests.promsim import Series, increase
from tests.rule_testing import expected_alert, run_rule_tests, series_values
from tests.sample_service import sample_run

VERSION = "1.0.0"
TARGET = {"namespace": NAMESPACE, "job": MODEL, "pod": f"{MODEL}-0", "instance": "10.0.0.1:8080"}
MODEL_LABELS = {contract.LABEL_MODEL_NAME: MODEL, contract.LABEL_MODEL_VERSION: VERSION}
TOLERANCE = 1e-6


def numpy_psi(q: Sequence[float], p: Sequence[float]) -> float:
    qc = np.maximum(np.asarray(q, dtype=float), contract.PSI_EPSILON)
    pc = np.maximum(np.asarray(p, dtype=float), contract.PSI_EPSILON)
    return float(np.sum((qc - pc) * np.log(qc / pc)))


def scipy_js(q: Sequence[float], p: Sequence[float]) -> float:
    return float(jensenshannon(np.asarray(p, dtype=float), np.asarray(q, dtype=float), base=2))


def drift_group(config: ModelMonitorsConfig) -> tuple[RuleGroup, ...]:
    return tuple(g for g in groups_for(config) if g.name.endswith("-drift"))


def bins_of(feature: str, count: int) -> list[str]:
    if feature == contract.PREDICTION_FEATURE:
        return [f"class_{i}" for i in range(count)]
    return [contract.bin_label(i) for i in range(count)]


def reference_series(feature: str, shares: Sequence[float], samples: int) -> list[dict[str, str]]:
    return [
        {
            "series": selector(contract.DRIFT_BIN_REFERENCE_RATIO.name, **TARGET, **MODEL_LABELS, feature=feature,
                               bin=b),
            "values": f"{share!r}x{samples - 1}",
        }
        for b, share in zip(bins_of(feature, len(shares)), shares, strict=True)
    ]


def counter_series(feature: str, cumulative: Sequence[Sequence[float]]) -> list[dict[str, str]]:
    """``cumulative[i][b]`` is bin ``b``'s counter at sample ``i``."""
    bins = bins_of(feature, len(cumulative[0]))
    return [
        {
            "series": selector(contract.DRIFT_BIN_OBSERVATIONS.name, **TARGET, **MODEL_LABELS, feature=feature, bin=b),
            "values": series_values([row[j] for row in cumulative]),
        }
        for j, b in enumerate(bins)
    ]


def identity(feature: str, version: str = VERSION) -> str:
    labels = {"namespace": NAMESPACE, "job": MODEL, **MODEL_LABELS, contract.LABEL_MODEL_VERSION: version,
              "feature": feature}
    return "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def close_to(expr: str, value: float, eval_time: str, feature: str, version: str = VERSION) -> dict[str, Any]:
    """A promql_expr_test that passes when ``expr`` is within the tolerance of ``value``."""
    return {"expr": f"abs({expr} - {value!r}) < bool {TOLERANCE}", "eval_time": eval_time,
            "exp_samples": [{"labels": identity(feature, version), "value": 1}]}


# ---------------------------------------------------------------------------------------------------------
# PSI and JS distance against numpy and scipy
# ---------------------------------------------------------------------------------------------------------

UNIFORM4 = [0.25, 0.25, 0.25, 0.25]
CASES: dict[str, tuple[list[int], list[float]]] = {
    # The worked example: shares 0.55/0.25/0.125/0.075 against a uniform reference (PSI 0.534, JS 0.3046).
    "f0": ([5500, 2500, 1250, 750], UNIFORM4),
    # Empty live bins: clamped at the contract's epsilons, finite PSI.
    "f1": ([0, 0, 4000, 6000, 0, 0, 0, 0, 0, 0], [0.1] * 10),
    # A reference bin the training data never reached.
    "f2": ([100, 200, 300, 400], [0.0, 0.2, 0.3, 0.5]),
    # The prediction: class bins.
    contract.PREDICTION_FEATURE: ([3300, 3100, 3600], [0.31, 0.35, 0.34]),
}


def random_cases(rng: np.random.Generator, count: int) -> dict[str, tuple[list[int], list[float]]]:
    cases = {}
    for i in range(count):
        reference = rng.dirichlet(np.ones(10))
        live = rng.dirichlet(np.ones(10) * rng.uniform(0.3, 5))
        counts = rng.multinomial(int(rng.integers(1000, 50_000)), live)
        cases[f"r{i}"] = ([int(c) for c in counts], [float(x) for x in reference])
    return cases


@pytest.mark.tools
def test_psi_and_js_recordings_equal_numpy_and_scipy(tmp_path: Path):
    cases = {**CASES, **random_cases(np.random.default_rng(20260501), 6)}
    # Every counter sits at a large value, then jumps by the case's counts between minutes 30 and 31: both
    # windows hold the jump and every bin's increase is extrapolated alike, so the shares are exact.
    samples, jump = 7 * 60, 30
    base = 1_000_000
    series: list[dict[str, str]] = []
    checks = []
    for feature, (counts, reference) in cases.items():
        cumulative = [[base + (c if i > jump else 0) for c in counts] for i in range(samples)]
        series += counter_series(feature, cumulative) + reference_series(feature, reference, samples)
        q = [c / sum(counts) for c in counts]
        expected_psi, expected_js = numpy_psi(q, reference), scipy_js(q, reference)
        for window in ("1h", "6h"):
            checks.append(close_to(f"{psi(window)}{identity(feature)}", expected_psi, "1h", feature))
            checks.append(close_to(f"{js_distance(window)}{identity(feature)}", expected_js, "1h", feature))
    assert numpy_psi(*[[c / 10000 for c in CASES["f0"][0]], UNIFORM4]) == pytest.approx(0.534, abs=5e-4)
    assert scipy_js([c / 10000 for c in CASES["f0"][0]], UNIFORM4) == pytest.approx(0.30456508260303977)
    tests = [{"interval": "1m", "input_series": series, "promql_expr_test": checks}]
    run_rule_tests(tmp_path, drift_group(ModelMonitorsConfig()), tests, evaluation_interval_ms=MINUTE)


# ---------------------------------------------------------------------------------------------------------
# Drift alerts
# ---------------------------------------------------------------------------------------------------------

REFERENCE = [0.1] * 10
HEALTHY = [100] * 10  # per minute: exactly the reference shares, 1,000 observations
SHIFTED = [10, 10, 20, 30, 50, 80, 120, 180, 220, 280]  # the same volume, moved to the upper bins


@dataclass(frozen=True)
class FeatureTraffic:
    """Per-minute bin counts of one feature: ``counts(minute)`` for minute ``i`` (between samples)."""

    counts: Callable[[int], Sequence[int]]
    reference: Sequence[float] = tuple(REFERENCE)

    def cumulative(self, minutes: int) -> list[list[float]]:
        rows = [[0.0] * len(self.reference)]
        for minute in range(1, minutes + 1):
            rows.append([a + b for a, b in zip(rows[-1], self.counts(minute), strict=True)])
        return rows


def simulate_drift(
    traffic: Mapping[str, FeatureTraffic], minutes: int, thresholds: Mapping[str, tuple[float, float]],
    short: int, long: int, min_volume: int, hold: int,
) -> dict[int, dict[tuple[str, str], float]]:
    """Firing drift alerts per minute: (feature, statistic) -> the short window's value."""
    condition: dict[int, dict[tuple[str, str], float]] = {}
    for feature, spec in traffic.items():
        rows = spec.cumulative(minutes)
        series = [Series([row[b] for row in rows], MINUTE) for b in range(len(spec.reference))]
        for minute in range(minutes + 1):
            values = {}
            for window in (short, long):
                increases = [increase(s, minute * MINUTE, window) for s in series]
                if any(i is None for i in increases) or sum(increases) <= 0:  # type: ignore[arg-type]
                    break
                total = sum(increases)  # type: ignore[arg-type]
                q = [i / total for i in increases]  # type: ignore[operator]
                values[window] = (total, numpy_psi(q, spec.reference), scipy_js(q, spec.reference))
            if len(values) < 2 or min(v[0] for v in values.values()) < min_volume:
                continue
            for statistic, position in (("psi", 1), ("js_distance", 2)):
                limit = thresholds[feature][position - 1]
                if values[short][position] > limit and values[long][position] > limit:
                    condition.setdefault(minute, {})[(feature, statistic)] = values[short][position]
    firing: dict[int, dict[tuple[str, str], float]] = {}
    for minute in condition:
        for key, value in condition[minute].items():
            if all(key in condition.get(m, {}) for m in range(minute - hold, minute + 1)):
                firing.setdefault(minute, {})[key] = value
    return firing


def drift_alert(groups: tuple[RuleGroup, ...], alert: str, statistic: str) -> AlertingRule:
    return next(a for g in groups for a in g.alerts if a.alert == alert and a.labels["statistic"] == statistic)


def alert_cases(
    groups: tuple[RuleGroup, ...], firing: Mapping[int, Mapping[tuple[str, str], float]], minutes: Sequence[int],
) -> list[dict[str, Any]]:
    cases = []
    for minute in minutes:
        for alert in (FEATURE_DRIFT_ALERT, PREDICTION_DRIFT_ALERT):
            expected = [
                expected_alert(
                    drift_alert(groups, alert, statistic),
                    {"namespace": NAMESPACE, "job": MODEL, **MODEL_LABELS, "feature": feature},
                    value,
                )
                for (feature, statistic), value in sorted(firing.get(minute, {}).items())
                if (feature == contract.PREDICTION_FEATURE) == (alert == PREDICTION_DRIFT_ALERT)
            ]
            cases.append({"eval_time": f"{minute}m", "alertname": alert, "exp_alerts": expected})
    return cases


def run_drift_scenario(
    tmp_path: Path, config: ModelMonitorsConfig, traffic: Mapping[str, FeatureTraffic], minutes: int,
    check_at: Callable[[dict[int, dict[tuple[str, str], float]]], Sequence[int]],
) -> dict[int, dict[tuple[str, str], float]]:
    drift = config.drift
    thresholds = {
        feature: (
            (drift.features[feature].psi_threshold or drift.psi_threshold) if feature in drift.features
            else drift.psi_threshold,
            (drift.features[feature].js_distance_threshold or drift.js_distance_threshold)
            if feature in drift.features else drift.js_distance_threshold,
        )
        for feature in traffic
    }
    firing = simulate_drift(traffic, minutes, thresholds, 60 * MINUTE, 6 * 60 * MINUTE,
                            drift.min_window_observations, hold=10)
    groups = drift_group(config)
    series = []
    for feature, spec in traffic.items():
        series += counter_series(feature, spec.cumulative(minutes))
        series += reference_series(feature, spec.reference, minutes + 1)
    tests = [{"interval": "1m", "input_series": series, "alert_rule_test": alert_cases(groups, firing,
                                                                                      check_at(firing))}]
    run_rule_tests(tmp_path, groups, tests, evaluation_interval_ms=MINUTE)
    return firing


def first_firing(firing: Mapping[int, Mapping[tuple[str, str], float]], key: tuple[str, str]) -> int:
    return min(m for m, fired in firing.items() if key in fired)


@pytest.mark.tools
def test_drift_in_both_windows_fires_naming_the_feature(tmp_path: Path):
    onset = 6 * 60  # six healthy hours fill the long window
    traffic = {
        "f0": FeatureTraffic(lambda m: HEALTHY if m <= onset else SHIFTED),
        "f1": FeatureTraffic(lambda m: HEALTHY),
        contract.PREDICTION_FEATURE: FeatureTraffic(lambda m: [400, 300, 300] if m <= onset else [100, 200, 700],
                                                    reference=(0.4, 0.3, 0.3)),
    }
    marks: dict[str, int] = {}

    def check_at(firing: dict[int, dict[tuple[str, str], float]]) -> list[int]:
        marks["psi"] = first_firing(firing, ("f0", "psi"))
        marks["js"] = first_firing(firing, ("f0", "js_distance"))
        marks["prediction"] = first_firing(firing, (contract.PREDICTION_FEATURE, "psi"))
        return sorted({onset, *(m - 1 for m in marks.values()), *marks.values(), onset + 4 * 60})

    firing = run_drift_scenario(tmp_path, ModelMonitorsConfig(), traffic, onset + 4 * 60, check_at)
    assert not any(feature == "f1" for fired in firing.values() for feature, _ in fired)
    # The long window must fill with a share of shifted traffic before it crosses: JS distance, about linear
    # in that share, within two hours; PSI, about quadratic, within four.
    assert 10 < marks["js"] - onset < 2 * 60 and marks["js"] < marks["psi"] < onset + 4 * 60


@pytest.mark.tools
def test_a_short_burst_or_a_past_drift_does_not_fire(tmp_path: Path):
    onset = 6 * 60
    burst = (onset, onset + 25)  # 25 drifted minutes: the short window crosses, the long one never does
    lasting = (onset + 2 * 60, onset + 6 * 60)  # four drifted hours, then healthy again
    traffic = {
        "f0": FeatureTraffic(lambda m: SHIFTED if burst[0] < m <= burst[1] else HEALTHY),
        "f2": FeatureTraffic(lambda m: SHIFTED if lasting[0] < m <= lasting[1] else HEALTHY),
        # Shifted from the start, at 6 observations a minute: 360 an hour, under the guard.
        "f3": FeatureTraffic(lambda m: [c // 100 for c in SHIFTED]),
    }
    short_psi = {}

    def check_at(firing: dict[int, dict[tuple[str, str], float]]) -> list[int]:
        fired_f2 = [m for m, fired in firing.items() if ("f2", "psi") in fired]
        short_psi["end"] = max(fired_f2)
        return sorted({burst[1], burst[1] + 30, lasting[0] + 90, short_psi["end"], short_psi["end"] + 1,
                       lasting[1] + 90, lasting[1] + 3 * 60})

    minutes = lasting[1] + 3 * 60
    firing = run_drift_scenario(tmp_path, ModelMonitorsConfig(), traffic, minutes, check_at)
    assert not any(f in ("f0", "f3") for fired in firing.values() for f, _ in fired)
    # The past drift resolves about an hour after it ends, while its long window still exceeds the threshold.
    assert 0 < short_psi["end"] - lasting[1] <= 75
    long_psi = _window_psi(traffic["f2"], minutes, short_psi["end"] + 1, 6 * 60)
    assert long_psi > contract.PSI_THRESHOLD


def _window_psi(traffic: FeatureTraffic, minutes: int, at: int, window_minutes: int) -> float:
    cumulative = traffic.cumulative(minutes)
    increases = [increase(Series([row[b] for row in cumulative], MINUTE), at * MINUTE, window_minutes * MINUTE)
                 for b in range(len(traffic.reference))]
    total = sum(i for i in increases if i is not None)
    return numpy_psi([i / total for i in increases if i is not None], traffic.reference)


@pytest.mark.tools
def test_per_feature_thresholds_override_the_defaults(tmp_path: Path):
    onset = 6 * 60
    config = ModelMonitorsConfig.model_validate(
        {"drift": {"features": {"f6": {"psiThreshold": 5.0, "jsDistanceThreshold": 0.9}}}}
    )
    traffic = {name: FeatureTraffic(lambda m: HEALTHY if m <= onset else SHIFTED) for name in ("f5", "f6")}

    def check_at(firing: dict[int, dict[tuple[str, str], float]]) -> list[int]:
        return [first_firing(firing, ("f5", "js_distance")), onset + 3 * 60]

    firing = run_drift_scenario(tmp_path, config, traffic, onset + 3 * 60, check_at)
    assert not any(f == "f6" for fired in firing.values() for f, _ in fired)


# ---------------------------------------------------------------------------------------------------------
# The sample service's own healthy traffic
# ---------------------------------------------------------------------------------------------------------


def test_healthy_sample_traffic_at_the_minimum_volume_stays_under_the_thresholds():
    """Two hundred windows of held-out rows at the minimum volume, binned as the service bins them."""
    from model_service.artifact import load_artifact
    from model_service.data import load_dataset
    from model_service.drift import bin_indices

    artifact = load_artifact(sample_run().artifact_dir)
    metadata = artifact.metadata
    holdout = load_dataset().x_holdout
    predicted = np.asarray(metadata.classes)[np.argmax(artifact.predict_proba(holdout), axis=1)]
    rng = np.random.default_rng(11)
    size = contract.DRIFT_MIN_WINDOW_OBSERVATIONS
    config = ModelMonitorsConfig()
    worst = {"psi": 0.0, "js": 0.0}
    for _ in range(200):
        rows = rng.choice(len(holdout), size=size, replace=False)
        windows: list[tuple[np.ndarray, Sequence[float]]] = []
        for column, reference in enumerate(metadata.features):
            bins = bin_indices(reference.edges, holdout[rows, column])
            windows.append((np.bincount(bins, minlength=len(reference.shares)), reference.shares))
        classes = [metadata.prediction.classes.index(c) for c in predicted[rows]]
        windows.append((np.bincount(classes, minlength=len(metadata.classes)), metadata.prediction.shares))
        for counts, shares in windows:
            q = counts / counts.sum()
            worst["psi"] = max(worst["psi"], numpy_psi(q, shares))
            worst["js"] = max(worst["js"], scipy_js(q, shares))
    assert worst["psi"] < config.drift.psi_threshold / 2, worst
    assert worst["js"] < config.drift.js_distance_threshold, worst


@pytest.mark.tools
def test_the_services_healthy_window_records_low_drift_and_no_alert(tmp_path: Path):
    """The counters the real service exported after 1,000 undrifted records, through the rules."""
    scrape = sample_run().healthy
    counts: dict[str, dict[str, float]] = {}
    for labels, value in scrape.series(contract.DRIFT_BIN_OBSERVATIONS.name):
        counts.setdefault(labels["feature"], {})[labels["bin"]] = value
    reference: dict[str, dict[str, float]] = {}
    for labels, value in scrape.series(contract.DRIFT_BIN_REFERENCE_RATIO.name):
        reference.setdefault(labels["feature"], {})[labels["bin"]] = value
    version = next(labels for labels, _ in scrape.series(contract.MODEL_INFO.name))[contract.LABEL_MODEL_VERSION]
    assert version == VERSION and set(counts) == set(reference)
    # The scrape at 6h; the same counters were zero for the six hours before (a window of exactly them).
    samples, jump = 7 * 60, 6 * 60
    series, checks = [], []
    for feature, by_bin in sorted(counts.items()):
        bins = sorted(by_bin)
        assert sum(by_bin.values()) == contract.DRIFT_MIN_WINDOW_OBSERVATIONS
        for b in bins:
            target = {**TARGET, **MODEL_LABELS, "feature": feature, "bin": b}
            values = [1.0e6 + (by_bin[b] if i > jump else 0) for i in range(samples)]
            series.append({"series": selector(contract.DRIFT_BIN_OBSERVATIONS.name, **target),
                           "values": series_values(values)})
            series.append({"series": selector(contract.DRIFT_BIN_REFERENCE_RATIO.name, **target),
                           "values": f"{reference[feature][b]!r}x{samples - 1}"})
        q = [by_bin[b] / contract.DRIFT_MIN_WINDOW_OBSERVATIONS for b in bins]
        p = [reference[feature][b] for b in bins]
        expected_psi, expected_js = numpy_psi(q, p), scipy_js(q, p)
        assert expected_psi < contract.PSI_THRESHOLD and expected_js < contract.JS_DISTANCE_THRESHOLD, feature
        assert not math.isclose(expected_psi, 0.0)
        checks.append(close_to(f"{psi('1h')}{identity(feature)}", expected_psi, "6h30m", feature))
        checks.append(close_to(f"{js_distance('1h')}{identity(feature)}", expected_js, "6h30m", feature))
    alerts = [{"eval_time": t, "alertname": a, "exp_alerts": []}
              for t in ("6h30m", "7h") for a in (FEATURE_DRIFT_ALERT, PREDICTION_DRIFT_ALERT)]
    tests = [{"interval": "1m", "input_series": series, "promql_expr_test": checks, "alert_rule_test": alerts}]
    run_rule_tests(tmp_path, drift_group(ModelMonitorsConfig()), tests, evaluation_interval_ms=MINUTE)


@pytest.mark.tools
def test_a_canarys_version_drifts_on_its_own(tmp_path: Path):
    """A canary serves its own version beside the stable one, in the same job. The drift rules group by version
    (the contract's drift labels), so feature drift per version needs no rule of the canary group: the canary's
    drifted inputs give its version its own PSI, JS distance and alert, and the stable version's stay at 0."""
    minutes = 7 * 60
    served = {VERSION: (TRACK_STABLE, HEALTHY), "1.1.0": (TRACK_CANARY, SHIFTED)}
    series: list[dict[str, str]] = []
    for version, (track, per_minute) in served.items():
        labels = {**TARGET, "pod": f"{MODEL}-{track}-0", TRACK_SERIES_LABEL: track, **MODEL_LABELS,
                  contract.LABEL_MODEL_VERSION: version, "feature": "f0"}
        for index, (count, share) in enumerate(zip(per_minute, REFERENCE, strict=True)):
            bin_labels = {**labels, contract.LABEL_BIN: contract.bin_label(index)}
            series.append({"series": selector(contract.DRIFT_BIN_OBSERVATIONS.name, **bin_labels),
                           "values": f"0+{count}x{minutes}"})
            series.append({"series": selector(contract.DRIFT_BIN_REFERENCE_RATIO.name, **bin_labels),
                           "values": f"{share!r}x{minutes}"})
    shifted = [count / sum(SHIFTED) for count in SHIFTED]
    expected = {VERSION: (0.0, 0.0), "1.1.0": (numpy_psi(shifted, REFERENCE), scipy_js(shifted, REFERENCE))}
    at = f"{minutes - 10}m"
    checks = [
        close_to(f"{statistic(window)}{identity('f0', version)}", value, at, "f0", version)
        for version, values in expected.items()
        for statistic, value in zip((psi, js_distance), values, strict=True)
        for window in ("1h", "6h")
    ]
    groups = drift_group(ModelMonitorsConfig())
    canary = {"namespace": NAMESPACE, "job": MODEL, **MODEL_LABELS, contract.LABEL_MODEL_VERSION: "1.1.0",
              "feature": "f0"}
    firing = [expected_alert(drift_alert(groups, FEATURE_DRIFT_ALERT, statistic), canary, value)
              for statistic, value in zip(("psi", "js_distance"), expected["1.1.0"], strict=True)]
    assert min(expected["1.1.0"]) > max(ModelMonitorsConfig().drift.psi_threshold,
                                        ModelMonitorsConfig().drift.js_distance_threshold)
    tests = [{"interval": "1m", "input_series": series, "promql_expr_test": checks,
              "alert_rule_test": [{"eval_time": at, "alertname": FEATURE_DRIFT_ALERT, "exp_alerts": firing}]}]
    run_rule_tests(tmp_path, groups, tests, evaluation_interval_ms=MINUTE)
