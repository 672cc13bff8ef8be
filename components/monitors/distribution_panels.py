"""Panels of the model dashboard beyond overall accuracy: quality per class, mean confidence, age, and the live
distributions against the training ones.

The quality panels join the Model row and read each model's recordings (their window a label, their floors
recorded series), as the other panels of that row do. The distributions get a row of their own: for every input
feature, each bin's share of the live values next to its share of the training data, and the predicted classes'
mix next to the training mix, over the drift window the ``drift_window`` variable picks. That variable names a
window's role (short or long), not a duration, so that the one dashboard serves models whose windows differ: each
model records its windows' per-bin counts under the role (``distribution_rules``), with the duration as a label.

Bar charts need one row per bin with both shares: each query is an instant table, the two tables are merged on
their labels, and the bars are labelled by feature and bin.
"""

from __future__ import annotations

from typing import Final

from grafana_foundation_sdk.builders import barchart, common, dashboard, prometheus, stat
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models.common import LegendDisplayMode, LegendPlacement, VizOrientation
from grafana_foundation_sdk.models.dashboard import DataTransformerConfig, Panel, VariableOption
from grafana_foundation_sdk.models.prometheus import PromQueryFormat
from model_service import contract

from components.contracts import CLUSTER_LABEL
from components.monitors.class_quality_rules import PRECISION_OVER_WINDOW, RECALL_FLOOR, RECALL_OVER_WINDOW
from components.monitors.dashboard_panels import (
    DATASOURCE,
    by_cluster,
    legend,
    of_model,
    threshold_lines,
    timeseries_panel,
)
from components.monitors.distribution_rules import LONG_WINDOW_ROLE, OBSERVATIONS_BY_BIN_IN, SHORT_WINDOW_ROLE
from components.monitors.drift_rules import REFERENCE
from components.monitors.prediction_rules import CONFIDENCE_FLOOR, CONFIDENCE_OVER_WINDOW
from components.monitors.rule_model import Matcher

DISTRIBUTIONS_ROW: Final = "Distributions"
WINDOW_VARIABLE: Final = "drift_window"
SLOT_LABEL: Final = "slot"
"""Label a distribution query adds: the bar's name (``f3 07``: feature and bin)."""
LIVE: Final = "live"
TRAINING: Final = "training"


def window_variable() -> dashboard.CustomVariable:
    """The drift window the distributions are drawn over, by role; the bars' legend shows its duration."""
    options = [("short drift window", SHORT_WINDOW_ROLE), ("long drift window", LONG_WINDOW_ROLE)]
    return (
        dashboard.CustomVariable(WINDOW_VARIABLE)
        .label("Drift window")
        .values(",".join(f"{text} : {value}" for text, value in options))
        .options([VariableOption(selected=index == 0, text=text, value=value)
                  for index, (text, value) in enumerate(options)])
        .current(VariableOption(selected=True, text=options[0][0], value=options[0][1]))
    )


def quality_panels() -> list[cogbuilder.Builder[Panel]]:
    """Recall and precision per class, mean confidence against its floor, and the model's age."""
    return [
        threshold_lines(
            timeseries_panel(
                "Recall per class",
                "Of the feedback of each actual class, the share predicted right over the model's accuracy window (in "
                "the legend), with each class's floor dashed.",
                "percentunit",
                [(of_model(RECALL_OVER_WINDOW), legend("{{actual_class}} {{model_version}} ({{window}})")),
                 (of_model(RECALL_FLOOR), legend("threshold {{actual_class}}"))],
            ),
            "threshold .*",
        ),
        timeseries_panel(
            "Precision per class",
            "Of the feedback predicted as each class, the share that was right over the model's accuracy window.",
            "percentunit",
            [(of_model(PRECISION_OVER_WINDOW), legend("{{predicted_class}} {{model_version}} ({{window}})"))],
        ),
        threshold_lines(
            timeseries_panel(
                "Mean confidence",
                "Mean probability the model gives the class it predicts, over its confidence window (in the legend), "
                "and the floor dashed.",
                "percentunit",
                [(of_model(CONFIDENCE_OVER_WINDOW), legend("{{model_version}} ({{window}})")),
                 (of_model(CONFIDENCE_FLOOR), legend("threshold {{model_version}}"))],
            ),
            "threshold .*",
        ),
        stat.Panel()
        .title("Model age")
        .description("Time since each served version was trained (the training time the model reports).")
        .datasource(DATASOURCE)
        .unit("s")
        .with_target(
            prometheus.Dataquery()
            .expr(f"time() - max {by_cluster('model_version')} ({of_model(contract.MODEL_TRAINED_TIMESTAMP.name)})")
            .legend_format(legend("{{model_version}}"))
            .ref_id("A")
            .datasource(DATASOURCE)
        )
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .height(8)
        .span(8),
    ]


def _instant(expr: str, legend: str, ref: str) -> prometheus.Dataquery:
    return (
        prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DATASOURCE)
        .instant().format(PromQueryFormat.TABLE)
    )


def _shares(feature: Matcher, slot: tuple[str, ...]) -> tuple[str, str]:
    """Live and training shares per bin of the features ``feature`` selects, each row labelled ``slot``."""
    labels = ("model_version", contract.LABEL_FEATURE, contract.LABEL_BIN)
    # The name holds the variable, so it is matched as a label: Grafana replaces the variable before PromQL parses.
    counts = of_model("", Matcher("__name__", f"{OBSERVATIONS_BY_BIN_IN}${WINDOW_VARIABLE}"), feature)
    # A window without observations has no live shares (rather than 0/0 = NaN bars): its total is kept only above 0.
    live = (
        f"sum {by_cluster(*labels)} ({counts})\n/ ignoring ({contract.LABEL_BIN}) group_left ()\n"
        f"(sum {by_cluster(*labels[:-1])} ({counts}) > 0)"
    )
    training = f"max {by_cluster(*labels)} ({of_model(REFERENCE, feature)})"
    slot_args = ", ".join(f'"{label}"' for label in slot)

    def labelled(expr: str) -> str:
        return f'label_join(\n{expr},\n"{SLOT_LABEL}", " ", {slot_args})'

    return labelled(live), labelled(training)


def _distribution(title: str, description: str, feature: Matcher, slot: tuple[str, ...]) -> barchart.Panel:
    live, training = _shares(feature, slot)
    shown = {"Value #A": LIVE, "Value #B": TRAINING}
    hidden = {name: True for name in ("Time", CLUSTER_LABEL, "model_version", contract.LABEL_FEATURE,
                                      contract.LABEL_BIN, "namespace", "job", "model_name")}
    return (
        barchart.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit("percentunit")
        .with_target(_instant(live, legend(LIVE), "A"))
        .with_target(_instant(training, legend(TRAINING), "B"))
        .with_transformation(DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(DataTransformerConfig(
            id_val="organize", options={"excludeByName": hidden, "renameByName": shown}))
        .x_field(SLOT_LABEL)
        .orientation(VizOrientation.HORIZONTAL if len(slot) == 1 else VizOrientation.VERTICAL)
        .x_tick_label_rotation(-45)
        .legend(common.VizLegendOptions().display_mode(LegendDisplayMode.LIST).placement(LegendPlacement.BOTTOM)
                .show_legend(True))
        .height(10)
    )


def distribution_panels() -> list[barchart.Panel]:
    """Every input feature's bins, and the predicted class mix, live against training."""
    return [
        _distribution(
            "Input distributions: live against training",
            "Each bin's share of the live values of each input feature over the selected drift window, next to its "
            "share of the training data: the bins behind a drift alert.",
            Matcher(contract.LABEL_FEATURE, contract.PREDICTION_FEATURE, "!="),
            (contract.LABEL_FEATURE, contract.LABEL_BIN),
        ).span(16),
        _distribution(
            "Predicted class mix against training",
            "Each class's share of the predictions over the selected drift window, next to its share of the "
            "training data's predictions.",
            Matcher(contract.LABEL_FEATURE, contract.PREDICTION_FEATURE),
            (contract.LABEL_BIN,),
        ).span(8),
    ]
