"""What every panel of the model dashboards is made of: the variables' matchers, selectors and groupings that keep
the cluster, legends that name it, and the time-series panel the rows share.

One place for them, so that the overview's rows, its distributions and its canary row select the same series the
same way (see ``overview_dashboard`` for why every selector carries ``cluster=~"$cluster"``).
"""

from __future__ import annotations

from typing import Final

from grafana_foundation_sdk.builders import common, prometheus, timeseries
from grafana_foundation_sdk.models.common import LegendDisplayMode, LegendPlacement
from grafana_foundation_sdk.models.dashboard import DataSourceRef, DynamicConfigValue

from components.contracts import CLUSTER_LABEL
from components.monitors.rule_model import Matcher, by, selector

DATASOURCE: Final = DataSourceRef(type_val="prometheus", uid="${datasource}")
CLUSTER_VAR: Final = f"${CLUSTER_LABEL}"
ALL_VALUE: Final = ".*"
"""The cluster variable's All: every series, those without a ``cluster`` label too (see the module's docstring)."""
NAMESPACE_VAR: Final = "$namespace"
MODEL_VAR: Final = "$model"
IN_CLUSTERS: Final = Matcher(CLUSTER_LABEL, CLUSTER_VAR, "=~")
"""``cluster=~"$cluster"``: the one matcher every selector of the dashboard carries (a regex, as the variable is
multi-select: Grafana expands several clusters to ``(a|b)`` and All to ``.*``)."""
POD: Final = by((CLUSTER_LABEL, "namespace", "pod"))
"""How a series is joined to the model's scrape targets: a pod's name is unique in its namespace and cluster only."""
RATE: Final = "$__rate_interval"


def in_namespace(metric: str, *matchers: Matcher, **equal: str) -> str:
    """``metric`` in the selected clusters and namespace."""
    return selector(metric, IN_CLUSTERS, *matchers, namespace=NAMESPACE_VAR, **equal)


def of_model(metric: str, *matchers: Matcher, **equal: str) -> str:
    """``metric`` of the selected model, in the selected clusters and namespace."""
    return in_namespace(metric, *matchers, model_name=MODEL_VAR, **equal)


def by_cluster(*labels: str) -> str:
    """A grouping that keeps the cluster: ``by (cluster, …)``."""
    return f"by {by((CLUSTER_LABEL, *labels))}"


def legend(text: str) -> str:
    """A legend with the cluster, so that two clusters' series are told apart (empty without the label)."""
    return f"{text} {{{{{CLUSTER_LABEL}}}}}"


def query(expr: str, legend: str, ref: str) -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DATASOURCE)


def timeseries_panel(title: str, description: str, unit: str, queries: list[tuple[str, str]]) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .line_width(1)
        .fill_opacity(10)
        .legend(common.VizLegendOptions().display_mode(LegendDisplayMode.TABLE).placement(LegendPlacement.BOTTOM).show_legend(True))
        .height(8)
        .span(8)
    )
    for index, (expr, legend) in enumerate(queries):
        panel = panel.with_target(query(expr, legend, chr(ord("A") + index)))
    return panel


def threshold_lines(panel: timeseries.Panel, pattern: str) -> timeseries.Panel:
    """Draw series whose name matches ``pattern`` as dashed threshold lines."""
    return panel.override_by_regexp(
        pattern,
        [
            DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}),
            DynamicConfigValue(id_val="custom.fillOpacity", value=0),
            DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": "red"}),
        ],
    )
