"""The canary against its stable version under promtool: per-track recordings and ``ModelCanaryWorseThanStable``.

Each scenario feeds both tracks' pods with constant rates (every series labelled with its pod's track, as the
ServiceMonitor's ``podTargetLabels`` make it), so every window's figures are exact: each criterion made worse on
its own fires that criterion alone, equal tracks fire nothing, a canary under the volume guard fires nothing
however bad, and the recorded Jensen-Shannon distance of the class shares equals scipy's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from model_service import contract
from scipy.spatial.distance import jensenshannon

from components.contracts import TRACK_CANARY, TRACK_SERIES_LABEL, TRACK_STABLE
from components.monitors.canary_dashboard import CANARY_ROW, canary_panels
from components.monitors.canary_rules import CANARY_ALERT, CRITERION_LABEL, PREDICTION_JS_DISTANCE
from components.monitors.config import ModelMonitorsConfig
from components.monitors.dashboard_ids import dashboard_json
from components.monitors.model_monitors import rule_groups
from components.monitors.model_rules import RESTARTS_ALERT
from components.monitors.overview_dashboard import model_dashboard
from components.monitors.rule_model import WINDOW_LABEL, AlertingRule, RuleGroup, TimeScale, selector
from tests.e2e.dashboard import expand, queries_by_row
from tests.monitor_rules import MINUTE, MODEL, NAMESPACE, args_for, groups_for
from tests.rule_testing import expected_alert, run_rule_tests
from tests.test_model_rules import ownership

CONFIG = ModelMonitorsConfig()
SETTINGS = CONFIG.canary
WINDOW = SETTINGS.window
MINUTES = 90
CHECK_AT = 60
"""Minutes after the start at which alerts are checked: the window full, the ``for`` long elapsed."""
VERSIONS = {TRACK_STABLE: "1.0.0", TRACK_CANARY: "1.1.0"}
CLASSES = ("class_0", "class_1", "class_2")
BOUNDS = ("0.025", "0.05", "0.1", "0.25", "+Inf")
FAST = (0.5, 0.9, 1.0, 1.0, 1.0)
"""Cumulative shares of requests under each bound: p95 is 0.075 s."""
SLOW = (0.1, 0.3, 0.7, 1.0, 1.0)
"""p95 0.225 s: three times as slow."""
TOLERANCE = 1e-6
"""The distance is a square root: float noise of 1e-16 in the shares shows as 1e-8 in it."""


@dataclass(frozen=True)
class Track:
    """What one track's pods serve, per minute."""

    requests: float = 100.0
    errors: float = 0.5
    latency: tuple[float, ...] = FAST
    feedback_correct: float = 9.0
    feedback_incorrect: float = 1.0
    predictions: tuple[float, ...] = (60.0, 30.0, 10.0)


HEALTHY_CANARY = Track(requests=10.0, errors=0.05, predictions=(6.0, 3.0, 1.0))


def canary_groups() -> tuple[RuleGroup, ...]:
    return tuple(g for g in groups_for(CONFIG) if g.name.endswith("-canary"))


def alert_of(criterion: str) -> AlertingRule:
    [alert] = [a for g in canary_groups() for a in g.alerts
               if a.alert == CANARY_ALERT and a.labels[CRITERION_LABEL] == criterion]
    return alert


def counter(rate: float) -> str:
    return f"0+{rate!r}x{MINUTES}"


def pod(track: str) -> dict[str, str]:
    return {"namespace": NAMESPACE, "job": MODEL, "pod": f"{MODEL}-{track}-0", TRACK_SERIES_LABEL: track}


def model(track: str, version: str | None = None) -> dict[str, str]:
    return {**pod(track), "model_name": MODEL, "model_version": version or VERSIONS[track]}


def input_series(tracks: Mapping[str, Track]) -> list[dict[str, str]]:
    """Every series both tracks' pods export. Feedback for the canary's predictions is scored by the stable's pod
    (the Service sent it there): it must still count as the canary's."""
    route = {"route": contract.ROUTE_PREDICT, "method": "POST"}
    series: list[dict[str, str]] = []
    for track, served in tracks.items():
        series += [
            {"series": selector(contract.HTTP_REQUESTS.name, **pod(track), **route, code="200"),
             "values": counter(served.requests - served.errors)},
            {"series": selector(contract.HTTP_REQUESTS.name, **pod(track), **route, code="500"),
             "values": counter(served.errors)},
            {"series": selector(contract.MODEL_INFO.name, **model(track)), "values": f"1x{MINUTES}"},
        ]
        for bound, share in zip(BOUNDS, served.latency, strict=True):
            series.append({"series": selector(f"{contract.HTTP_REQUEST_DURATION.name}_bucket", **pod(track), **route,
                                              le=bound), "values": counter(served.requests * share)})
        for name, rate in zip(CLASSES, served.predictions, strict=True):
            series.append({"series": selector(contract.PREDICTIONS.name, **model(track), **{"class": name}),
                           "values": counter(rate)})
        scorer = TRACK_STABLE
        for outcome, actual, rate in (("correct", "class_0", served.feedback_correct),
                                      ("incorrect", "class_1", served.feedback_incorrect)):
            series.append({
                "series": selector(contract.FEEDBACK.name, **model(scorer, VERSIONS[track]), predicted_class="class_0",
                                   actual_class=actual, outcome=outcome),
                "values": counter(rate),
            })
    return series


def feedback_of(track: Track) -> float:
    return track.feedback_correct + track.feedback_incorrect


def accuracy_of(track: Track) -> float:
    return track.feedback_correct / feedback_of(track)


def in_window(per_minute: float) -> float:
    """What a constant rate adds up to over the comparison window."""
    return per_minute * TimeScale().milliseconds(WINDOW) / MINUTE


def quantile(q: float, cumulative: Sequence[float]) -> float:
    """``histogram_quantile`` of cumulative shares under ``BOUNDS``: linear within the bucket the rank falls in."""
    bounds = [float(b) for b in BOUNDS]
    rank = q * cumulative[-1]
    index = next(i for i, count in enumerate(cumulative) if count >= rank)
    lower, below = (0.0, 0.0) if index == 0 else (bounds[index - 1], cumulative[index - 1])
    return lower + (bounds[index] - lower) * (rank - below) / (cumulative[index] - below)


def shares(predictions: Sequence[float]) -> np.ndarray:
    values = np.asarray(predictions, dtype=float)
    return values / values.sum()


def scipy_js(canary: Sequence[float], stable: Sequence[float]) -> float:
    return float(jensenshannon(shares(canary), shares(stable), base=2))


def expected(criterion: str, tracks: Mapping[str, Track]) -> dict[str, Any]:
    """The one alert ``criterion`` should raise, with the value its description shows."""
    stable, canary = tracks[TRACK_STABLE], tracks[TRACK_CANARY]
    labels = {"namespace": NAMESPACE, "job": MODEL}
    if criterion == "error_ratio":
        value = canary.errors / canary.requests - stable.errors / stable.requests
    elif criterion == "latency":
        value = quantile(SETTINGS.latency_quantile, canary.latency) / quantile(SETTINGS.latency_quantile,
                                                                               stable.latency)
    elif criterion == "accuracy":
        value = accuracy_of(stable) - accuracy_of(canary)
    else:
        value = scipy_js(canary.predictions, stable.predictions)
        labels |= {TRACK_SERIES_LABEL: TRACK_CANARY, WINDOW_LABEL: WINDOW}
    return expected_alert(alert_of(criterion), labels, value)


def js_close_to(track: str, value: float) -> dict[str, Any]:
    series = selector(PREDICTION_JS_DISTANCE, **{TRACK_SERIES_LABEL: track})
    labels = f'job="{MODEL}", namespace="{NAMESPACE}", {TRACK_SERIES_LABEL}="{track}", {WINDOW_LABEL}="{WINDOW}"'
    return {"expr": f"abs({series} - {value!r}) < bool {TOLERANCE}", "eval_time": f"{CHECK_AT}m",
            "exp_samples": [{"labels": "{" + labels + "}", "value": 1}]}


def run(tmp_path: Path, tracks: Mapping[str, Track], firing: Sequence[dict[str, Any]],
        checks: Sequence[dict[str, Any]] = ()) -> None:
    tests = [{
        "interval": "1m",
        "input_series": input_series(tracks),
        "alert_rule_test": [{"eval_time": f"{CHECK_AT}m", "alertname": CANARY_ALERT, "exp_alerts": list(firing)}],
        "promql_expr_test": list(checks),
    }]
    run_rule_tests(tmp_path, canary_groups(), tests, evaluation_interval_ms=MINUTE)


WORSE: dict[str, Track] = {
    "error_ratio": replace(HEALTHY_CANARY, errors=0.5),  # 5% of its requests fail, against 0.5%
    "latency": replace(HEALTHY_CANARY, latency=SLOW),
    "accuracy": replace(HEALTHY_CANARY, feedback_correct=6.0, feedback_incorrect=4.0),  # 60% right, against 90%
    "prediction_mix": replace(HEALTHY_CANARY, predictions=(2.0, 4.0, 4.0)),
}


def test_the_margins_separate_the_healthy_canary_from_each_worse_one():
    """The scenarios below mean what they say under the default margins (the rules are not what decides here)."""
    stable = Track()
    assert WORSE["error_ratio"].errors / 10 - stable.errors / 100 > SETTINGS.max_error_ratio_increase
    assert quantile(0.95, SLOW) / quantile(0.95, FAST) > 1 + SETTINGS.max_latency_increase_ratio
    assert accuracy_of(stable) - accuracy_of(WORSE["accuracy"]) > SETTINGS.max_accuracy_drop
    assert scipy_js(WORSE["prediction_mix"].predictions, stable.predictions) > SETTINGS.max_prediction_js_distance
    assert scipy_js(HEALTHY_CANARY.predictions, stable.predictions) == pytest.approx(0.0, abs=1e-12)
    assert in_window(HEALTHY_CANARY.requests) >= SETTINGS.min_requests
    assert in_window(feedback_of(HEALTHY_CANARY)) >= SETTINGS.min_feedback


@pytest.mark.tools
@pytest.mark.parametrize("criterion", list(WORSE))
def test_each_criterion_fires_alone(tmp_path: Path, criterion: str):
    tracks = {TRACK_STABLE: Track(), TRACK_CANARY: WORSE[criterion]}
    run(tmp_path, tracks, [expected(criterion, tracks)])


@pytest.mark.tools
def test_equal_tracks_fire_nothing_and_record_no_distance(tmp_path: Path):
    tracks = {TRACK_STABLE: Track(), TRACK_CANARY: HEALTHY_CANARY}
    run(tmp_path, tracks, [], [js_close_to(TRACK_CANARY, 0.0), js_close_to(TRACK_STABLE, 0.0)])


@pytest.mark.tools
def test_without_a_canary_the_stable_is_recorded_and_nothing_fires(tmp_path: Path):
    run(tmp_path, {TRACK_STABLE: Track()}, [], [js_close_to(TRACK_STABLE, 0.0)])


@pytest.mark.tools
def test_a_canary_under_the_volume_guard_fires_nothing_however_worse(tmp_path: Path):
    # 3 requests and 3 feedback items a minute: 90 and 90 in the window, under 100 each.
    canary = Track(requests=3.0, errors=1.0, latency=SLOW, feedback_correct=1.0, feedback_incorrect=2.0,
                   predictions=(1.0, 1.0, 1.0))
    assert in_window(canary.requests) < SETTINGS.min_requests and in_window(feedback_of(canary)) < SETTINGS.min_feedback
    run(tmp_path, {TRACK_STABLE: Track(), TRACK_CANARY: canary}, [])


@pytest.mark.tools
def test_the_recorded_js_distance_equals_scipys(tmp_path: Path):
    canary = replace(HEALTHY_CANARY, predictions=(1.0, 2.0, 7.0))
    distance = scipy_js(canary.predictions, Track().predictions)
    assert 0.1 < distance < 1
    tracks = {TRACK_STABLE: Track(), TRACK_CANARY: canary}
    run(tmp_path, tracks, [expected("prediction_mix", tracks)],
        [js_close_to(TRACK_CANARY, distance), js_close_to(TRACK_STABLE, 0.0)])


@pytest.mark.tools
def test_the_dashboards_canary_row_shows_both_tracks_of_the_selected_model(tmp_path: Path):
    """The row's queries, as Grafana sends them for this model, find each track's recording; for another model of
    the namespace, nothing."""
    document = json.loads(dashboard_json(model_dashboard()))
    queries = queries_by_row(document, {CANARY_ROW})
    assert [title for title, _ in queries] == [panel.build().title for panel in canary_panels()]
    per_track = {"Predicted class share by track": len(CLASSES)}
    checks = [
        {"expr": f"count by ({TRACK_SERIES_LABEL}) ({expand(expr, {'namespace': NAMESPACE, 'model': MODEL})})",
         "eval_time": f"{CHECK_AT}m",
         "exp_samples": [{"labels": f'{{{TRACK_SERIES_LABEL}="{track}"}}', "value": per_track.get(title, 1)}
                         for track in (TRACK_CANARY, TRACK_STABLE)]}
        for title, expr in queries
    ]
    checks += [{"expr": expand(expr, {"namespace": NAMESPACE, "model": "another-model"}), "eval_time": f"{CHECK_AT}m",
                "exp_samples": []} for _, expr in queries]
    tracks = {TRACK_STABLE: Track(), TRACK_CANARY: HEALTHY_CANARY}
    tests = [{"interval": "1m", "input_series": input_series(tracks), "promql_expr_test": checks}]
    run_rule_tests(tmp_path, canary_groups(), tests, evaluation_interval_ms=MINUTE)


@pytest.mark.tools
@pytest.mark.parametrize("watched", [True, False], ids=["with-the-canary-workload", "without"])
def test_a_restarting_canary_pod_fires_the_restart_alert_once_its_deployment_is_watched(tmp_path: Path,
                                                                                        watched: bool):
    canary_workload = f"{MODEL}-canary"
    groups = rule_groups(args_for(CONFIG), namespace=NAMESPACE, workload=MODEL,
                         canary_workload=canary_workload if watched else None)
    rules = tuple(g for g in groups if g.name.endswith("-resources"))
    [alert] = [a for g in rules for a in g.alerts if a.alert == RESTARTS_ALERT]
    canary_pod, stable_pod = f"{canary_workload}-6b7c8d9f5-ccccc", f"{MODEL}-5d8f7c9b6-aaaaa"
    ksm = {"job": "kube-state-metrics", "namespace": NAMESPACE, "uid": "u", "container": "model"}
    labels = {"namespace": NAMESPACE, "pod": canary_pod, "container": "model", "model_name": MODEL}
    tests = [{
        "interval": "1m",
        "input_series": [
            # Restarts just before minutes 30 and 40: two within the hour from minute 40 on.
            {"series": selector("kube_pod_container_status_restarts_total", **ksm, pod=canary_pod),
             "values": "0x29 1x9 2x40"},
            {"series": selector("kube_pod_container_status_restarts_total", **ksm, pod=stable_pod),
             "values": "0x79"},
            *ownership({canary_pod: canary_workload, stable_pod: MODEL}),
        ],
        "alert_rule_test": [
            {"eval_time": "39m", "alertname": RESTARTS_ALERT, "exp_alerts": []},
            {"eval_time": "40m", "alertname": RESTARTS_ALERT,
             "exp_alerts": [expected_alert(alert, labels, 2)] if watched else []},
        ],
    }]
    run_rule_tests(tmp_path, rules, tests, evaluation_interval_ms=MINUTE)
