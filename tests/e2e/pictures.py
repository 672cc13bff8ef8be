"""Pictures of a drift, drawn from what Prometheus recorded (matplotlib): what ``make demo`` writes and the README
shows, and what the end-to-end drift scenario draws from the same run that asserts the alert.

Three PNGs, all from the model's own recordings and Prometheus' ``ALERTS`` series, over the scenario's time range:

- ``distribution.png``: the drifted feature's live share per bin over the short window, against its training
  reference, when the alert fired;
- ``drift.png``: PSI and JS distance over the short and long windows, their thresholds, and the moments the drift
  alert went pending, firing and resolved;
- ``burn-rates.png``: each SLO's current burn rate, with the fast-burn page factor.

Times on the axes are the run's own seconds: with a time scale, an hour of windows passes in ``3600 * scale`` s.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt
from model_service import contract

from components.monitors.drift_rules import (
    FEATURE_DRIFT_ALERT,
    JS_LONG_WINDOW,
    JS_SHORT_WINDOW,
    JS_THRESHOLD_SERIES,
    PSI_LONG_WINDOW,
    PSI_SHORT_WINDOW,
    PSI_THRESHOLD_SERIES,
    REFERENCE,
    bin_ratio,
)
from components.monitors.slo_rules import CURRENT_BURN_RATE, SLOTH_SLO, WORKBOOK_WINDOWS
from tests.prometheus_api import PrometheusApi

FAST_BURN = WORKBOOK_WINDOWS[0]
"""The fast-burn page condition of the SLO alerts (1h and 5m windows)."""
PICTURES = ("distribution.png", "drift.png", "burn-rates.png")


@dataclass(frozen=True)
class Scenario:
    """What to draw: the model's selector, the drifted feature, the run's time range and its windows."""

    selector: str
    """Matchers of the model's series, e.g. ``namespace="models", job="synthetic-classifier"``."""
    feature: str
    short_window: str
    period: str
    """The SLO period (``monitors.sloPeriod``), which the burn-rate factors are relative to."""
    start: float
    end: float
    step: float


def _series(api: PrometheusApi, expr: str, scenario: Scenario) -> list[tuple[dict[str, str], list[float], list[float]]]:
    """Each series of a range query, as (labels, seconds since the start, values)."""
    result = api.query_range(expr, scenario.start, scenario.end, scenario.step)
    return [(s["metric"], [float(t) - scenario.start for t, _ in s["values"]], [float(v) for _, v in s["values"]])
            for s in result]


def alert_moments(api: PrometheusApi, scenario: Scenario) -> dict[str, float]:
    """Seconds after the start at which the drift alert of the feature first went pending, then firing, and the
    first evaluation after its last firing sample (resolved), from Prometheus' ``ALERTS`` series."""
    moments: dict[str, float] = {}
    for state in ("pending", "firing"):
        expr = f'ALERTS{{alertname="{FEATURE_DRIFT_ALERT}", alertstate="{state}", feature="{scenario.feature}"}}'
        times = sorted(t for _, ts, _ in _series(api, expr, scenario) for t in ts)
        if times:
            moments[state] = times[0]
            if state == "firing" and times[-1] + 2 * scenario.step < scenario.end - scenario.start:
                moments["resolved"] = times[-1] + scenario.step
    return moments


def draw(api: PrometheusApi, scenario: Scenario, out_dir: Path) -> list[Path]:
    """Write the three pictures into ``out_dir``; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    moments = alert_moments(api, scenario)
    paths = [out_dir / name for name in PICTURES]
    _distribution(api, scenario, moments, paths[0])
    _drift(api, scenario, moments, paths[1])
    _burn_rates(api, scenario, paths[2])
    return paths


def _distribution(api: PrometheusApi, scenario: Scenario, moments: dict[str, float], path: Path) -> None:
    at = scenario.start + moments.get("firing", scenario.end - scenario.start)
    feature = f'{scenario.selector}, feature="{scenario.feature}"'
    live = {s["metric"][contract.LABEL_BIN]: float(s["value"][1])
            for s in api.query(f"{bin_ratio(scenario.short_window)}{{{feature}}}", at)}
    reference = {s["metric"][contract.LABEL_BIN]: float(s["value"][1])
                 for s in api.query(f"{REFERENCE}{{{feature}}}", at)}
    bins = sorted(reference)  # zero-padded bin labels sort as text (contract.bin_label)
    figure, axes = plt.subplots(figsize=(9, 4))
    positions = range(len(bins))
    axes.bar([p - 0.2 for p in positions], [reference[b] for b in bins], width=0.4, label="training reference")
    axes.bar([p + 0.2 for p in positions], [live.get(b, 0.0) for b in bins], width=0.4,
             label=f"live, last {scenario.short_window} (when the alert fired)")
    axes.set_xticks(list(positions), bins, rotation=45, ha="right")
    axes.set_ylabel("share of observations")
    axes.set_title(f"Feature {scenario.feature}: live distribution against training")
    axes.legend()
    _save(figure, path)


def _drift(api: PrometheusApi, scenario: Scenario, moments: dict[str, float], path: Path) -> None:
    feature = f'{scenario.selector}, feature="{scenario.feature}"'
    figure, (psi_axes, js_axes) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for axes, (short, long, threshold, name) in ((psi_axes, (PSI_SHORT_WINDOW, PSI_LONG_WINDOW, PSI_THRESHOLD_SERIES,
                                                             "PSI")),
                                                  (js_axes, (JS_SHORT_WINDOW, JS_LONG_WINDOW, JS_THRESHOLD_SERIES,
                                                             "JS distance"))):
        for record in (short, long):
            for labels, times, values in _series(api, f"{record}{{{feature}}}", scenario):
                axes.plot(times, values, label=f"{name}, {labels.get('window', record)} window")
        for _, times, values in _series(api, f"{threshold}{{{feature}}}", scenario):
            axes.plot(times, values, linestyle="--", color="black", label="threshold")
        for state, color in (("pending", "orange"), ("firing", "red"), ("resolved", "green")):
            if state in moments:
                axes.axvline(moments[state], color=color, linestyle=":", label=f"alert {state}")
        axes.set_ylabel(name)
        axes.legend(fontsize="small", loc="upper left")
    js_axes.set_xlabel("seconds")
    psi_axes.set_title(f"Drift of {scenario.feature} and its alert ({FEATURE_DRIFT_ALERT})")
    _save(figure, path)


def _burn_rates(api: PrometheusApi, scenario: Scenario, path: Path) -> None:
    figure, axes = plt.subplots(figsize=(9, 4))
    for labels, times, values in _series(api, f"{CURRENT_BURN_RATE}{{{scenario.selector}}}", scenario):
        axes.plot(times, values, label=labels.get(SLOTH_SLO, "?"))
    page = float(FAST_BURN.factor(scenario.period))
    axes.axhline(page, color="red", linestyle="--", label=f"page at {page:g}x ({FAST_BURN.long} and {FAST_BURN.short})")
    axes.axhline(1.0, color="black", linestyle=":", label="budget spent exactly over the period")
    axes.set_yscale("symlog", linthresh=1.0)
    axes.set_xlabel("seconds")
    axes.set_ylabel("burn rate")
    axes.set_title("SLO burn rates (healthy traffic stays far below the page)")
    axes.legend(fontsize="small")
    _save(figure, path)


def _save(figure: Any, path: Path) -> None:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
