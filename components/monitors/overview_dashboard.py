"""The Grafana model dashboard, one for every model that exports the metric contract, as code.

Built with grafana-foundation-sdk and declared once per program (not once per ``ModelMonitors``): its
``namespace`` and ``model`` variables select a model among all that export ``model_info``, so every model
the platform runs shares it. Three rows follow the three layers of ML observability: the interface (request
rate, error ratio, latency quantiles, SLO error budget left), the model (class mix, confidence, drift per
feature against its threshold, accuracy) and the infrastructure (CPU, memory against the limit, restarts,
replicas).

Interface and infrastructure series carry no model label; they are joined to the model through the scrape
target, ``on (namespace, pod)`` with ``model_info``, as the contract prescribes. Drift, accuracy and SLO
panels read the recordings of ``ModelMonitors``, whose names carry their logical windows: the dashboard is
built for the windows of the stack's configuration.

``model_dashboards.ModelDashboards`` declares it as a ConfigMap that Grafana's sidecar imports.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Final

from grafana_foundation_sdk.builders import common, dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import (
    LegendDisplayMode,
    LegendPlacement,
    StackingMode,
)
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DataSourceRef,
    Threshold,
    ThresholdsMode,
    VariableRefresh,
    VariableSort,
)
from model_service import contract

from components.monitors.cluster_metrics import (
    CONTAINER_CPU_USAGE_SECONDS,
    CONTAINER_MEMORY_WORKING_SET_BYTES,
    KUBE_DEPLOYMENT_SPEC_REPLICAS,
    KUBE_DEPLOYMENT_STATUS_REPLICAS_AVAILABLE,
    KUBE_POD_CONTAINER_RESOURCE_LIMITS,
    KUBE_POD_CONTAINER_STATUS_RESTARTS,
    NAMESPACE_WORKLOAD_POD,
)
from components.monitors.drift_rules import JS_SHORT_WINDOW, JS_THRESHOLD_SERIES, PSI_SHORT_WINDOW, PSI_THRESHOLD_SERIES
from components.monitors.model_rules import ACCURACY_FLOOR, ACCURACY_OVER_WINDOW, MEMORY_NEAR_LIMIT
from components.monitors.rule_model import Matcher, selector
from components.monitors.slo_rules import PERIOD_BUDGET_REMAINING

MODEL_DASHBOARD_TITLE: Final = "ML model overview"
DATASOURCE: Final = DataSourceRef(type_val="prometheus", uid="${datasource}")
NAMESPACE_VAR: Final = "$namespace"
MODEL_VAR: Final = "$model"
RATE: Final = "$__rate_interval"
TAGS: Final = ["ml-observability", "model"]


def slug(title: str) -> str:
    """``ML model overview`` → ``ml-model-overview``: the ConfigMap key and the source of the uid."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def dashboard_uid(title: str) -> str:
    """A uid that never changes while the title does not, so links and bookmarks survive every deploy.

    >>> dashboard_uid("ML model overview") == hashlib.md5(b"ml-model-overview").hexdigest()
    True
    """
    return hashlib.md5(slug(title).encode(), usedforsecurity=False).hexdigest()


# ---------------------------------------------------------------------------------------------------------
# Queries
# ---------------------------------------------------------------------------------------------------------


def _in_namespace(metric: str, *matchers: Matcher, **equal: str) -> str:
    return selector(metric, *matchers, namespace=NAMESPACE_VAR, **equal)


def _of_model(metric: str, *matchers: Matcher, **equal: str) -> str:
    return selector(metric, *matchers, namespace=NAMESPACE_VAR, model_name=MODEL_VAR, **equal)


MODEL_TARGETS: Final = f"group by (namespace, pod) ({_of_model(contract.MODEL_INFO.name)})"
"""The scrape targets that serve the selected model now (interface series are joined on them)."""
MODEL_PODS: Final = f"group by (namespace, pod) (last_over_time({_of_model(contract.MODEL_INFO.name)}[1h]))"
"""Pods that served the model within the hour: a crash-looping pod leaves the targets but still matters."""


def _join(expression: str, pods: str = MODEL_TARGETS) -> str:
    return f"{expression} * on (namespace, pod) group_left () {pods}"


def _predict_rate(*matchers: Matcher) -> str:
    requests = _in_namespace(contract.HTTP_REQUESTS.name, *matchers, route=contract.ROUTE_PREDICT)
    return f"sum({_join(f'rate({requests}[{RATE}])')})"


def _latency_quantile(quantile: float) -> str:
    buckets = _in_namespace(f"{contract.HTTP_REQUEST_DURATION.name}_bucket", route=contract.ROUTE_PREDICT)
    return f"histogram_quantile({quantile}, sum by (le) ({_join(f'rate({buckets}[{RATE}])')}))"


def _workload_replicas(metric: str) -> str:
    owners = _in_namespace(NAMESPACE_WORKLOAD_POD, workload_type="deployment")
    deployments = f'label_replace({_join(owners, MODEL_PODS)}, "deployment", "$1", "workload", "(.*)")'
    return (
        f"max by (deployment) ({_in_namespace(metric)} * on (namespace, deployment) group_left () "
        f"group by (namespace, deployment) ({deployments}))"
    )


def _query(expr: str, legend: str, ref: str) -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DATASOURCE)


def _timeseries(title: str, description: str, unit: str, queries: list[tuple[str, str]]) -> timeseries.Panel:
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
        panel = panel.with_target(_query(expr, legend, chr(ord("A") + index)))
    return panel


def _threshold_lines(panel: timeseries.Panel, pattern: str) -> timeseries.Panel:
    """Draw series whose name matches ``pattern`` as dashed threshold lines."""
    from grafana_foundation_sdk.models.dashboard import DynamicConfigValue

    return panel.override_by_regexp(
        pattern,
        [
            DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}),
            DynamicConfigValue(id_val="custom.fillOpacity", value=0),
            DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": "red"}),
        ],
    )


def model_dashboard(title: str = MODEL_DASHBOARD_TITLE) -> dashboard.Dashboard:
    """The model dashboard's builder: the same for every stack and every model (each model's windows and
    thresholds come with its recordings)."""
    interface = [
        _timeseries(
            "Request rate", "Requests answered per second, by route and status code.", "reqps",
            [(
                f"sum by (route, code) ({_join(f'rate({_in_namespace(contract.HTTP_REQUESTS.name)}[{RATE}])')})",
                "{{route}} {{code}}",
            )],
        ),
        _timeseries(
            "Error ratio (/predict)", "Share of prediction requests answered with a 5xx status.", "percentunit",
            # No 5xx series exists until the first error: without the fallback a healthy service shows no data.
            [(f"({_predict_rate(Matcher(contract.LABEL_CODE, '5..', '=~'))} or vector(0)) / {_predict_rate()}",
              "5xx")],
        ),
        _timeseries(
            "Latency quantiles (/predict)", "From the request's arrival to its last response byte.", "s",
            [(_latency_quantile(q), f"p{round(q * 100)}") for q in (0.5, 0.9, 0.99)],
        ),
        stat.Panel()
        .title("SLO error budget left")
        .description("Share of each SLO's error budget not yet spent over its period (Sloth's recording).")
        .datasource(DATASOURCE)
        .unit("percentunit")
        .with_target(_query(_of_model(PERIOD_BUDGET_REMAINING), "{{sloth_slo}}", "A"))
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .thresholds(
            dashboard.ThresholdsConfig()
            .mode(ThresholdsMode.ABSOLUTE)
            .steps([Threshold(value=None, color="red"), Threshold(value=0.25, color="orange"),
                    Threshold(value=0.5, color="green")])
        )
        .height(8)
        .span(24),
    ]
    predictions = _of_model(contract.PREDICTIONS.name)
    confidence = _of_model(f"{contract.PREDICTION_CONFIDENCE.name}_bucket")
    model = [
        _timeseries(
            "Predictions by class", "Predictions returned per second, one per record, by predicted class.", "ops",
            [(f"sum by (class) (rate({predictions}[{RATE}]))", "{{class}}")],
        ).stacking(common.StackingConfig().mode(StackingMode.NORMAL)),
        _timeseries(
            "Predicted class share", "The class mix over time: a moving mix is prediction drift.", "percentunit",
            [(f"sum by (class) (rate({predictions}[{RATE}])) / ignoring (class) group_left () "
              f"sum(rate({predictions}[{RATE}]))", "{{class}}")],
        ).stacking(common.StackingConfig().mode(StackingMode.PERCENT)),
        _timeseries(
            "Confidence quantiles", "Probability the model gives the class it predicts; falls before accuracy does.",
            "percentunit",
            [(f"histogram_quantile({q}, sum by (le) (rate({confidence}[{RATE}])))", f"p{round(q * 100)}")
             for q in (0.1, 0.5, 0.9)],
        ),
        _threshold_lines(
            _timeseries(
                "Feature drift: PSI over the short window",
                "Population Stability Index of each feature (and the prediction) against the training data over the "
                "model's short drift window (in the legend), with each feature's threshold dashed.",
                "none",
                [(_of_model(PSI_SHORT_WINDOW), "{{feature}} {{model_version}} ({{window}})"),
                 (_of_model(PSI_THRESHOLD_SERIES), "threshold {{feature}}")],
            ),
            "threshold .*",
        ),
        _threshold_lines(
            _timeseries(
                "Feature drift: JS distance over the short window",
                "Jensen-Shannon distance (base 2) of each feature (and the prediction) against the training data over "
                "the model's short drift window (in the legend), with each feature's threshold dashed.",
                "none",
                [(_of_model(JS_SHORT_WINDOW), "{{feature}} {{model_version}} ({{window}})"),
                 (_of_model(JS_THRESHOLD_SERIES), "threshold {{feature}}")],
            ),
            "threshold .*",
        ),
        _threshold_lines(
            _timeseries(
                "Accuracy", "Share of scored feedback that was right over the model's accuracy window (in the legend), "
                "and the floor.",
                "percentunit",
                [(_of_model(ACCURACY_OVER_WINDOW), "{{model_version}} ({{window}})"),
                 (_of_model(ACCURACY_FLOOR), "threshold {{model_version}}")],
            ),
            "threshold .*",
        ),
    ]
    cpu = _in_namespace(CONTAINER_CPU_USAGE_SECONDS, Matcher("container", "", "!="))
    memory = _in_namespace(CONTAINER_MEMORY_WORKING_SET_BYTES, Matcher("container", "", "!="))
    limits = _in_namespace(KUBE_POD_CONTAINER_RESOURCE_LIMITS, resource="memory")
    restarts = _in_namespace(KUBE_POD_CONTAINER_STATUS_RESTARTS)
    infrastructure = [
        _timeseries(
            "CPU", "CPU used by each pod of the model, in cores.", "short",
            [(f"sum by (pod) ({_join(f'rate({cpu}[{RATE}])', MODEL_PODS)})", "{{pod}}")],
        ),
        _threshold_lines(
            _timeseries(
                "Memory against the limit",
                "Working set of each container over its memory limit, and the model's alert threshold dashed.",
                "percentunit",
                [(f"max by (pod, container) ({_join(memory, MODEL_PODS)}) / on (pod, container) "
                  f"max by (pod, container) ({_join(limits, MODEL_PODS)})", "{{pod}} {{container}}"),
                 (f"max({_of_model(MEMORY_NEAR_LIMIT)})", "threshold")],
            ),
            "threshold",
        ),
        _timeseries(
            "Restarts (last hour)", "Container restarts of the model's pods within the last hour.", "short",
            [(f"max by (pod, container) ({_join(f'increase({restarts}[1h])', MODEL_PODS)})",
              "{{pod}} {{container}}")],
        ),
        _timeseries(
            "Replicas", "Pods serving the model per version (scraped), and the Deployment's desired and available.",
            "short",
            [(f"count by (model_version) ({_of_model(contract.MODEL_INFO.name)})", "serving {{model_version}}"),
             (_workload_replicas(KUBE_DEPLOYMENT_SPEC_REPLICAS), "desired {{deployment}}"),
             (_workload_replicas(KUBE_DEPLOYMENT_STATUS_REPLICAS_AVAILABLE), "available {{deployment}}")],
        ),
    ]

    builder = (
        dashboard.Dashboard(title)
        .uid(dashboard_uid(title))
        .description("One model's interface, model and infrastructure signals; pick the namespace and model.")
        .tags(TAGS)
        .timezone("browser")
        .refresh("1m")
        .time("now-6h", "now")
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .editable()
        .with_variable(dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus"))
        .with_variable(
            dashboard.QueryVariable("namespace")
            .label("Namespace")
            .datasource(DATASOURCE)
            .query(f"label_values({contract.MODEL_INFO.name}, namespace)")
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(VariableSort.ALPHABETICAL_ASC)
        )
        .with_variable(
            dashboard.QueryVariable("model")
            .label("Model")
            .datasource(DATASOURCE)
            .query(f'label_values({contract.MODEL_INFO.name}{{namespace="{NAMESPACE_VAR}"}}, '
                   f"{contract.LABEL_MODEL_NAME})")
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(VariableSort.ALPHABETICAL_ASC)
        )
    )
    infrastructure = [panel.span(6) for panel in infrastructure]
    for row_title, panels in (("Interface", interface), ("Model", model), ("Infrastructure", infrastructure)):
        builder = builder.with_row(dashboard.Row(row_title))
        for panel in panels:
            builder = builder.with_panel(panel)
    return builder


def dashboard_json(builder: dashboard.Dashboard) -> str:
    """The dashboard as Grafana imports it (stable key order, so an unchanged dashboard makes no diff)."""
    return json.dumps(json.loads(JSONEncoder(sort_keys=True).encode(builder.build())), indent=2, sort_keys=True)


def dashboard_expressions(document: Mapping[str, object]) -> list[str]:
    """Every PromQL expression of a dashboard's JSON: panel targets and query variables."""
    expressions = []
    for panel in document.get("panels", []):  # type: ignore[attr-defined]
        for target in panel.get("targets", []):
            if "expr" in target:
                expressions.append(target["expr"])
    for variable in document.get("templating", {}).get("list", []):  # type: ignore[attr-defined]
        query = variable.get("query")
        if variable.get("type") == "query" and isinstance(query, str):
            expressions.append(query)
    return expressions
