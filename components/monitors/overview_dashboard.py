"""The Grafana model dashboard, one for every model that exports the metric contract, as code.

Built with grafana-foundation-sdk and declared once per program (not once per ``ModelMonitors``): its
``namespace`` and ``model`` variables select a model among all that export ``model_info``, so every model
the platform runs shares it. A ``cluster`` variable comes first, so that the same dashboard reads a store that
holds several clusters' series (Thanos, Mimir, a managed Prometheus): every series a cluster's Prometheus sends
carries its ``cluster`` external label, and the recordings keep it. Three rows follow the three layers of ML
observability: the interface (request rate, error ratio, latency quantiles, SLO error budget left), the model
(class mix, confidence, drift per feature against its threshold, accuracy) and the infrastructure (CPU, memory
against the limit, restarts, replicas).

Interface and infrastructure series carry no model label; they are joined to the model through the scrape
target, ``on (cluster, namespace, pod)`` with ``model_info``, as the contract prescribes. Drift, accuracy and SLO
panels read the recordings of ``ModelMonitors``, whose names carry their logical windows: the dashboard is
built for the windows of the stack's configuration.

Across clusters: every selector also matches ``cluster=~"$cluster"``, every join and aggregation keeps
``cluster`` (two clusters' pods, namespaces and deployments may share names and must never be matched with each
other or summed together), and every legend shows ``{{cluster}}``; the SLO budget's also shows ``slo_store``,
the store that computed it (the cluster's Prometheus, or a store that keeps the whole period). The variable is
multi-select with All, whose value is ``.*`` rather than the alternation of the options, so that a Prometheus
queried directly still works: external labels are only added to what it sends (remote write, federation,
alerts), its own series have no ``cluster`` label, ``label_values`` offers no cluster, and All still selects
them, since PromQL matches a missing label as the empty string and ``.*`` matches that.

``model_dashboards.ModelDashboards`` declares it as a ConfigMap that Grafana's sidecar imports.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from grafana_foundation_sdk.builders import common, dashboard, prometheus, stat, timeseries
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
    VariableOption,
    VariableRefresh,
    VariableSort,
)
from model_service import contract

from components.contracts import CLUSTER_LABEL, SLO_STORE_LABEL
from components.monitors.cluster_metrics import (
    CONTAINER_CPU_USAGE_SECONDS,
    CONTAINER_MEMORY_WORKING_SET_BYTES,
    KUBE_DEPLOYMENT_SPEC_REPLICAS,
    KUBE_DEPLOYMENT_STATUS_REPLICAS_AVAILABLE,
    KUBE_POD_CONTAINER_RESOURCE_LIMITS,
    NAMESPACE_WORKLOAD_POD,
)
from components.monitors.dashboard_ids import dashboard_uid
from components.monitors.data_quality_rules import ISSUE_RATIO_OVER_WINDOW, ISSUE_RATIO_THRESHOLD
from components.monitors.drift_rules import JS_SHORT_WINDOW, JS_THRESHOLD_SERIES, PSI_SHORT_WINDOW, PSI_THRESHOLD_SERIES
from components.monitors.model_rules import ACCURACY_FLOOR, ACCURACY_OVER_WINDOW, CONTAINER_RESTARTS, MEMORY_NEAR_LIMIT
from components.monitors.rule_model import Matcher, by, selector
from components.monitors.slo_rules import PERIOD_BUDGET_REMAINING

MODEL_DASHBOARD_TITLE: Final = "ML model overview"
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
TAGS: Final = ["ml-observability", "model"]


# ---------------------------------------------------------------------------------------------------------
# Queries
# ---------------------------------------------------------------------------------------------------------


def _in_namespace(metric: str, *matchers: Matcher, **equal: str) -> str:
    """``metric`` in the selected clusters and namespace."""
    return selector(metric, IN_CLUSTERS, *matchers, namespace=NAMESPACE_VAR, **equal)


def _of_model(metric: str, *matchers: Matcher, **equal: str) -> str:
    """``metric`` of the selected model, in the selected clusters and namespace."""
    return _in_namespace(metric, *matchers, model_name=MODEL_VAR, **equal)


def _by(*labels: str) -> str:
    """A grouping that keeps the cluster: ``by (cluster, …)``."""
    return f"by {by((CLUSTER_LABEL, *labels))}"


def _legend(text: str) -> str:
    """A legend with the cluster, so that two clusters' series are told apart (empty without the label)."""
    return f"{text} {{{{{CLUSTER_LABEL}}}}}"


MODEL_TARGETS: Final = f"group {_by('namespace', 'pod')} ({_of_model(contract.MODEL_INFO.name)})"
"""The scrape targets that serve the selected model now (interface series are joined on them)."""
MODEL_PODS: Final = f"group {_by('namespace', 'pod')} (last_over_time({_of_model(contract.MODEL_INFO.name)}[1h]))"
"""Pods that served the model within the hour: a crash-looping pod leaves the targets but still matters."""


def _join(expression: str, pods: str = MODEL_TARGETS) -> str:
    return f"{expression} * on {POD} group_left () {pods}"


def _predict_rate(*matchers: Matcher) -> str:
    requests = _in_namespace(contract.HTTP_REQUESTS.name, *matchers, route=contract.ROUTE_PREDICT)
    return f"sum {_by()} ({_join(f'rate({requests}[{RATE}])')})"


def _latency_quantile(quantile: float) -> str:
    buckets = _in_namespace(f"{contract.HTTP_REQUEST_DURATION.name}_bucket", route=contract.ROUTE_PREDICT)
    return f"histogram_quantile({quantile}, sum {_by('le')} ({_join(f'rate({buckets}[{RATE}])')}))"


def _workload_replicas(metric: str) -> str:
    owners = _in_namespace(NAMESPACE_WORKLOAD_POD, workload_type="deployment")
    deployments = f'label_replace({_join(owners, MODEL_PODS)}, "deployment", "$1", "workload", "(.*)")'
    return (
        f"max {_by('deployment')} ({_in_namespace(metric)} * on {by((CLUSTER_LABEL, 'namespace', 'deployment'))} "
        f"group_left () group {_by('namespace', 'deployment')} ({deployments}))"
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
                f"sum {_by('route', 'code')} ({_join(f'rate({_in_namespace(contract.HTTP_REQUESTS.name)}[{RATE}])')})",
                _legend("{{route}} {{code}}"),
            )],
        ),
        _timeseries(
            "Error ratio (/predict)", "Share of prediction requests answered with a 5xx status.", "percentunit",
            # No 5xx series exists until the first error: without the fallback a healthy service shows no data. The
            # fallback is 0 per cluster with traffic (not a single unlabelled 0), so a healthy cluster shows 0 too.
            [(f"({_predict_rate(Matcher(contract.LABEL_CODE, '5..', '=~'))} or 0 * {_predict_rate()}) / "
              f"{_predict_rate()}", _legend("5xx"))],
        ),
        _timeseries(
            "Latency quantiles (/predict)", "From the request's arrival to its last response byte.", "s",
            [(_latency_quantile(q), _legend(f"p{round(q * 100)}")) for q in (0.5, 0.9, 0.99)],
        ),
        stat.Panel()
        .title("SLO error budget left")
        .description("Share of each SLO's error budget not yet spent over its period (Sloth's recording), per "
                     "cluster and, in brackets, the store that computed it (the cluster's Prometheus or a store "
                     "that keeps the whole period).")
        .datasource(DATASOURCE)
        .unit("percentunit")
        .with_target(_query(_of_model(PERIOD_BUDGET_REMAINING),
                            _legend("{{sloth_slo}}") + f" ({{{{{SLO_STORE_LABEL}}}}})", "A"))
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
            [(f"sum {_by('class')} (rate({predictions}[{RATE}]))", _legend("{{class}}"))],
        ).stacking(common.StackingConfig().mode(StackingMode.NORMAL)),
        _timeseries(
            "Predicted class share", "The class mix over time: a moving mix is prediction drift.", "percentunit",
            [(f"sum {_by('class')} (rate({predictions}[{RATE}])) / ignoring (class) group_left () "
              f"sum {_by()} (rate({predictions}[{RATE}]))", _legend("{{class}}"))],
        ).stacking(common.StackingConfig().mode(StackingMode.PERCENT)),
        _timeseries(
            "Confidence quantiles", "Probability the model gives the class it predicts; falls before accuracy does.",
            "percentunit",
            [(f"histogram_quantile({q}, sum {_by('le')} (rate({confidence}[{RATE}])))", _legend(f"p{round(q * 100)}"))
             for q in (0.1, 0.5, 0.9)],
        ),
        _threshold_lines(
            _timeseries(
                "Feature drift: PSI over the short window",
                "Population Stability Index of each feature (and the prediction) against the training data over the "
                "model's short drift window (in the legend), with each feature's threshold dashed.",
                "none",
                [(_of_model(PSI_SHORT_WINDOW), _legend("{{feature}} {{model_version}} ({{window}})")),
                 (_of_model(PSI_THRESHOLD_SERIES), _legend("threshold {{feature}}"))],
            ),
            "threshold .*",
        ),
        _threshold_lines(
            _timeseries(
                "Feature drift: JS distance over the short window",
                "Jensen-Shannon distance (base 2) of each feature (and the prediction) against the training data over "
                "the model's short drift window (in the legend), with each feature's threshold dashed.",
                "none",
                [(_of_model(JS_SHORT_WINDOW), _legend("{{feature}} {{model_version}} ({{window}})")),
                 (_of_model(JS_THRESHOLD_SERIES), _legend("threshold {{feature}}"))],
            ),
            "threshold .*",
        ),
        _threshold_lines(
            _timeseries(
                "Accuracy", "Share of scored feedback that was right over the model's accuracy window (in the legend), "
                "and the floor.",
                "percentunit",
                [(_of_model(ACCURACY_OVER_WINDOW), _legend("{{model_version}} ({{window}})")),
                 (_of_model(ACCURACY_FLOOR), _legend("threshold {{model_version}}"))],
            ),
            "threshold .*",
        ),
        _threshold_lines(
            _timeseries(
                "Input data quality", "Share of the input records with a problem in one feature (missing, null, "
                "non-finite: refused; out of range of training: served) over the model's data-quality window (in the "
                "legend), per feature and kind, and the maximum share dashed.",
                "percentunit",
                [(_of_model(ISSUE_RATIO_OVER_WINDOW), _legend("{{feature}} {{kind}} {{model_version}} ({{window}})")),
                 (_of_model(ISSUE_RATIO_THRESHOLD), _legend("threshold {{model_version}}"))],
            ),
            "threshold .*",
        ),
    ]
    # Imported here: those panels are built with this module's helpers.
    from components.monitors.distribution_panels import (
        DISTRIBUTIONS_ROW,
        distribution_panels,
        quality_panels,
        window_variable,
    )

    model_row = [*model, *quality_panels()]
    cpu = _in_namespace(CONTAINER_CPU_USAGE_SECONDS, Matcher("container", "", "!="))
    memory = _in_namespace(CONTAINER_MEMORY_WORKING_SET_BYTES, Matcher("container", "", "!="))
    limits = _in_namespace(KUBE_POD_CONTAINER_RESOURCE_LIMITS, resource="memory")
    infrastructure = [
        _timeseries(
            "CPU", "CPU used by each pod of the model, in cores.", "short",
            [(f"sum {_by('pod')} ({_join(f'rate({cpu}[{RATE}])', MODEL_PODS)})", _legend("{{pod}}"))],
        ),
        _threshold_lines(
            _timeseries(
                "Memory against the limit",
                "Working set of each container over its memory limit, and the model's alert threshold dashed.",
                "percentunit",
                [(f"max {_by('pod', 'container')} ({_join(memory, MODEL_PODS)}) / on "
                  f"{by((CLUSTER_LABEL, 'pod', 'container'))} "
                  f"max {_by('pod', 'container')} ({_join(limits, MODEL_PODS)})", _legend("{{pod}} {{container}}")),
                 (f"max {_by()} ({_of_model(MEMORY_NEAR_LIMIT)})", _legend("threshold"))],
            ),
            # Grafana anchors the pattern: "threshold" alone would not match "threshold <cluster>".
            "threshold.*",
        ),
        _timeseries(
            "Restarts (last hour)", "Container restarts of the model's pods within the last hour.", "short",
            # The restart alert's own count over its window, as its rules record it.
            [(f"max {_by('pod', 'container')} ({_of_model(CONTAINER_RESTARTS)})", _legend("{{pod}} {{container}}"))],
        ),
        _timeseries(
            "Replicas", "Pods serving the model per version (scraped), and the Deployment's desired and available.",
            "short",
            [(f"count {_by('model_version')} ({_of_model(contract.MODEL_INFO.name)})",
              _legend("serving {{model_version}}")),
             (_workload_replicas(KUBE_DEPLOYMENT_SPEC_REPLICAS), _legend("desired {{deployment}}")),
             (_workload_replicas(KUBE_DEPLOYMENT_STATUS_REPLICAS_AVAILABLE), _legend("available {{deployment}}"))],
        ),
    ]

    builder = (
        dashboard.Dashboard(title)
        .uid(dashboard_uid(title))
        .description("One model's interface, model and infrastructure signals; pick the clusters (All: every "
                     "cluster's series, and those without a cluster label), the namespace and the model.")
        .tags(TAGS)
        .timezone("browser")
        .refresh("1m")
        .time("now-6h", "now")
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .editable()
        .with_variable(dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus"))
        .with_variable(
            # All is `.*`, not the alternation of the options: a Prometheus without external labels offers no
            # cluster, and `.*` still matches its series (a missing label is the empty string to PromQL).
            dashboard.QueryVariable(CLUSTER_LABEL)
            .label("Cluster")
            .datasource(DATASOURCE)
            .query(f"label_values({contract.MODEL_INFO.name}, {CLUSTER_LABEL})")
            .multi(True)
            .include_all(True)
            .all_value(ALL_VALUE)
            .current(VariableOption(selected=True, text="All", value="$__all"))
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(VariableSort.ALPHABETICAL_ASC)
        )
        .with_variable(
            dashboard.QueryVariable("namespace")
            .label("Namespace")
            .datasource(DATASOURCE)
            .query(f"label_values({selector(contract.MODEL_INFO.name, IN_CLUSTERS)}, namespace)")
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(VariableSort.ALPHABETICAL_ASC)
        )
        .with_variable(
            dashboard.QueryVariable("model")
            .label("Model")
            .datasource(DATASOURCE)
            .query(f"label_values({_in_namespace(contract.MODEL_INFO.name)}, {contract.LABEL_MODEL_NAME})")
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(VariableSort.ALPHABETICAL_ASC)
        )
    )
    infrastructure = [panel.span(6) for panel in infrastructure]
    builder = builder.with_variable(window_variable())
    # Its own row: its panels tell something only during a canary. Imported here, since that module builds on
    # this one's selectors and panels.
    from components.monitors.canary_dashboard import CANARY_ROW, canary_panels

    for row_title, panels in (("Interface", interface), ("Model", model_row),
                              (DISTRIBUTIONS_ROW, distribution_panels()), ("Infrastructure", infrastructure),
                              (CANARY_ROW, canary_panels())):
        builder = builder.with_row(dashboard.Row(row_title))
        for panel in panels:
            builder = builder.with_panel(panel)
    return builder


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
