"""The model dashboard's canary row: the stable and the canary version side by side, per track.

Every panel reads the per-track recordings of ``canary_rules`` (each over the model's comparison window, its
window as a label), joined to the selected model through its scrape job (``model_info``'s ``job``), with the
overview's selectors, groupings and legends, so that the same rules across clusters hold here. Without a canary
the panels show the stable track alone (the prediction mix's distance at 0), which is why they have a row of their
own: the interface and model rows show data for every model, these only tell something during a canary.
"""

from __future__ import annotations

from typing import Final

from grafana_foundation_sdk.builders import timeseries
from model_service import contract

from components.contracts import CLUSTER_LABEL, TRACK_SERIES_LABEL
from components.monitors.canary_rules import ACCURACY, ERROR_RATIO, LATENCY, PREDICTION_JS_DISTANCE, PREDICTION_SHARE
from components.monitors.dashboard_panels import by_cluster, in_namespace, legend, of_model, timeseries_panel
from components.monitors.rule_model import by

CANARY_ROW: Final = "Canary against stable"
SERVICE: Final = by((CLUSTER_LABEL, "namespace", "job"))
TRACK: Final = f"{{{{{TRACK_SERIES_LABEL}}}}}"
"""A legend's track."""


def of_model_job(record: str) -> str:
    """A per-track recording of the selected model: its series carry the scrape job, not the model's name."""
    jobs = f"group {by_cluster('namespace', 'job')} ({of_model(contract.MODEL_INFO.name)})"
    return f"{in_namespace(record)} * on {SERVICE} group_left () {jobs}"


def canary_panels() -> list[timeseries.Panel]:
    """Error ratio, latency, accuracy and prediction mix of each track, over the model's comparison window."""
    return [
        timeseries_panel(
            "Error ratio by track (/predict)",
            "Share of each version's prediction requests answered 5xx, over the comparison window (in the legend).",
            "percentunit",
            [(of_model_job(ERROR_RATIO), legend(f"{TRACK} ({{{{window}}}})"))],
        ),
        timeseries_panel(
            "Latency by track (/predict)",
            "The compared latency quantile of each version's prediction requests, over the comparison window.",
            "s",
            [(of_model_job(LATENCY), legend(f"{TRACK} p{{{{quantile}}}} ({{{{window}}}})"))],
        ),
        timeseries_panel(
            "Accuracy by track",
            "Share of each version's scored feedback that was right, whichever pod scored it, over the comparison "
            "window.",
            "percentunit",
            [(of_model_job(ACCURACY), legend(f"{TRACK} ({{{{window}}}})"))],
        ),
        timeseries_panel(
            "Predicted class share by track",
            "Each version's shares of predicted classes over the comparison window, side by side.",
            "percentunit",
            [(of_model_job(PREDICTION_SHARE), legend(f"{TRACK} {{{{class}}}}"))],
        ),
        timeseries_panel(
            "Prediction mix: JS distance to stable",
            "Jensen-Shannon distance (base 2) between each version's class shares and the stable version's over the "
            "comparison window: 0 for the stable itself.",
            "none",
            [(of_model_job(PREDICTION_JS_DISTANCE), legend(f"{TRACK} ({{{{window}}}})"))],
        ),
    ]
