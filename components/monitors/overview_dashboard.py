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

from grafana_foundation_sdk.builders import common, dashboard, stat
from grafana_foundation_sdk.models.common import (
    StackingMode,
)
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    Threshold,
    ThresholdsMode,
    VariableOption,
    VariableRefresh,
    VariableSort,
)
from model_service import contract

from components.contracts import CLUSTER_LABEL, SLO_STORE_LABEL
from components.monitors.canary_dashboard import CANARY_ROW, canary_panels
from components.monitors.cluster_metrics import (
    CONTAINER_CPU_USAGE_SECONDS,
    CONTAINER_MEMORY_WORKING_SET_BYTES,
    KUBE_DEPLOYMENT_SPEC_REPLICAS,
    KUBE_DEPLOYMENT_STATUS_REPLICAS_AVAILABLE,
    KUBE_POD_CONTAINER_RESOURCE_LIMITS,
    NAMESPACE_WORKLOAD_POD,
)
from components.monitors.dashboard_ids import dashboard_uid
from components.monitors.dashboard_panels import (
    ALL_VALUE,
    DATASOURCE,
    IN_CLUSTERS,
    POD,
    RATE,
    by_cluster,
    in_namespace,
    legend,
    of_model,
    query,
    threshold_lines,
    timeseries_panel,
)
from components.monitors.data_quality_rules import ISSUE_RATIO_OVER_WINDOW, ISSUE_RATIO_THRESHOLD
from components.monitors.distribution_panels import (
    DISTRIBUTIONS_ROW,
    distribution_panels,
    quality_panels,
    window_variable,
)
from components.monitors.drift_rules import JS_SHORT_WINDOW, JS_THRESHOLD_SERIES, PSI_SHORT_WINDOW, PSI_THRESHOLD_SERIES
from components.monitors.model_rules import ACCURACY_FLOOR, ACCURACY_OVER_WINDOW, CONTAINER_RESTARTS, MEMORY_NEAR_LIMIT
from components.monitors.rule_model import Matcher, by, selector
from components.monitors.slo_rules import PERIOD_BUDGET_REMAINING

MODEL_DASHBOARD_TITLE: Final = "ML model overview"
TAGS: Final = ["ml-observability", "model"]


# ---------------------------------------------------------------------------------------------------------
# Queries
# ---------------------------------------------------------------------------------------------------------


MODEL_TARGETS: Final = f"group {by_cluster('namespace', 'pod')} ({of_model(contract.MODEL_INFO.name)})"
"""The scrape targets that serve the selected model now (interface series are joined on them)."""
MODEL_PODS: Final = f"group {by_cluster('namespace', 'pod')} (last_over_time({of_model(contract.MODEL_INFO.name)}[1h]))"
"""Pods that served the model within the hour: a crash-looping pod leaves the targets but still matters."""


def _join(expression: str, pods: str = MODEL_TARGETS) -> str:
    return f"{expression} * on {POD} group_left () {pods}"


def _predict_rate(*matchers: Matcher) -> str:
    requests = in_namespace(contract.HTTP_REQUESTS.name, *matchers, route=contract.ROUTE_PREDICT)
    return f"sum {by_cluster()} ({_join(f'rate({requests}[{RATE}])')})"


def _latency_quantile(quantile: float) -> str:
    buckets = in_namespace(f"{contract.HTTP_REQUEST_DURATION.name}_bucket", route=contract.ROUTE_PREDICT)
    return f"histogram_quantile({quantile}, sum {by_cluster('le')} ({_join(f'rate({buckets}[{RATE}])')}))"


def _workload_replicas(metric: str) -> str:
    owners = in_namespace(NAMESPACE_WORKLOAD_POD, workload_type="deployment")
    deployments = f'label_replace({_join(owners, MODEL_PODS)}, "deployment", "$1", "workload", "(.*)")'
    return (
        f"max {by_cluster('deployment')} ({in_namespace(metric)} * on {by((CLUSTER_LABEL, 'namespace', 'deployment'))} "
        f"group_left () group {by_cluster('namespace', 'deployment')} ({deployments}))"
    )


def model_dashboard(title: str = MODEL_DASHBOARD_TITLE) -> dashboard.Dashboard:
    """The model dashboard's builder: the same for every stack and every model (each model's windows and
    thresholds come with its recordings)."""
    interface = [
        timeseries_panel(
            "Request rate", "Requests answered per second, by route and status code.", "reqps",
            [(
                f"sum {by_cluster('route', 'code')} "
                f"({_join(f'rate({in_namespace(contract.HTTP_REQUESTS.name)}[{RATE}])')})",
                legend("{{route}} {{code}}"),
            )],
        ),
        timeseries_panel(
            "Error ratio (/predict)", "Share of prediction requests answered with a 5xx status.", "percentunit",
            # No 5xx series exists until the first error: without the fallback a healthy service shows no data. The
            # fallback is 0 per cluster with traffic (not a single unlabelled 0), so a healthy cluster shows 0 too.
            [(f"({_predict_rate(Matcher(contract.LABEL_CODE, '5..', '=~'))} or 0 * {_predict_rate()}) / "
              f"{_predict_rate()}", legend("5xx"))],
        ),
        timeseries_panel(
            "Latency quantiles (/predict)", "From the request's arrival to its last response byte.", "s",
            [(_latency_quantile(q), legend(f"p{round(q * 100)}")) for q in (0.5, 0.9, 0.99)],
        ),
        stat.Panel()
        .title("SLO error budget left")
        .description("Share of each SLO's error budget not yet spent over its period (Sloth's recording), per "
                     "cluster and, in brackets, the store that computed it (the cluster's Prometheus or a store "
                     "that keeps the whole period).")
        .datasource(DATASOURCE)
        .unit("percentunit")
        .with_target(query(of_model(PERIOD_BUDGET_REMAINING),
                            legend("{{sloth_slo}}") + f" ({{{{{SLO_STORE_LABEL}}}}})", "A"))
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
    predictions = of_model(contract.PREDICTIONS.name)
    confidence = of_model(f"{contract.PREDICTION_CONFIDENCE.name}_bucket")
    model = [
        timeseries_panel(
            "Predictions by class", "Predictions returned per second, one per record, by predicted class.", "ops",
            [(f"sum {by_cluster('class')} (rate({predictions}[{RATE}]))", legend("{{class}}"))],
        ).stacking(common.StackingConfig().mode(StackingMode.NORMAL)),
        timeseries_panel(
            "Predicted class share", "The class mix over time: a moving mix is prediction drift.", "percentunit",
            [(f"sum {by_cluster('class')} (rate({predictions}[{RATE}])) / ignoring (class) group_left () "
              f"sum {by_cluster()} (rate({predictions}[{RATE}]))", legend("{{class}}"))],
        ).stacking(common.StackingConfig().mode(StackingMode.PERCENT)),
        timeseries_panel(
            "Confidence quantiles", "Probability the model gives the class it predicts; falls before accuracy does.",
            "percentunit",
            [(f"histogram_quantile({q}, sum {by_cluster('le')} (rate({confidence}[{RATE}])))",
              legend(f"p{round(q * 100)}")) for q in (0.1, 0.5, 0.9)],
        ),
        threshold_lines(
            timeseries_panel(
                "Feature drift: PSI over the short window",
                "Population Stability Index of each feature (and the prediction) against the training data over the "
                "model's short drift window (in the legend), with each feature's threshold dashed.",
                "none",
                [(of_model(PSI_SHORT_WINDOW), legend("{{feature}} {{model_version}} ({{window}})")),
                 (of_model(PSI_THRESHOLD_SERIES), legend("threshold {{feature}}"))],
            ),
            "threshold .*",
        ),
        threshold_lines(
            timeseries_panel(
                "Feature drift: JS distance over the short window",
                "Jensen-Shannon distance (base 2) of each feature (and the prediction) against the training data over "
                "the model's short drift window (in the legend), with each feature's threshold dashed.",
                "none",
                [(of_model(JS_SHORT_WINDOW), legend("{{feature}} {{model_version}} ({{window}})")),
                 (of_model(JS_THRESHOLD_SERIES), legend("threshold {{feature}}"))],
            ),
            "threshold .*",
        ),
        threshold_lines(
            timeseries_panel(
                "Accuracy", "Share of scored feedback that was right over the model's accuracy window (in the legend), "
                "and the floor.",
                "percentunit",
                [(of_model(ACCURACY_OVER_WINDOW), legend("{{model_version}} ({{window}})")),
                 (of_model(ACCURACY_FLOOR), legend("threshold {{model_version}}"))],
            ),
            "threshold .*",
        ),
        threshold_lines(
            timeseries_panel(
                "Input data quality", "Share of the input records with a problem in one feature (missing, null, "
                "non-finite: refused; out of range of training: served) over the model's data-quality window (in the "
                "legend), per feature and kind, and the maximum share dashed.",
                "percentunit",
                [(of_model(ISSUE_RATIO_OVER_WINDOW), legend("{{feature}} {{kind}} {{model_version}} ({{window}})")),
                 (of_model(ISSUE_RATIO_THRESHOLD), legend("threshold {{model_version}}"))],
            ),
            "threshold .*",
        ),
    ]
    model_row = [*model, *quality_panels()]
    cpu = in_namespace(CONTAINER_CPU_USAGE_SECONDS, Matcher("container", "", "!="))
    memory = in_namespace(CONTAINER_MEMORY_WORKING_SET_BYTES, Matcher("container", "", "!="))
    limits = in_namespace(KUBE_POD_CONTAINER_RESOURCE_LIMITS, resource="memory")
    infrastructure = [
        timeseries_panel(
            "CPU", "CPU used by each pod of the model, in cores.", "short",
            [(f"sum {by_cluster('pod')} ({_join(f'rate({cpu}[{RATE}])', MODEL_PODS)})", legend("{{pod}}"))],
        ),
        threshold_lines(
            timeseries_panel(
                "Memory against the limit",
                "Working set of each container over its memory limit, and the model's alert threshold dashed.",
                "percentunit",
                [(f"max {by_cluster('pod', 'container')} ({_join(memory, MODEL_PODS)}) / on "
                  f"{by((CLUSTER_LABEL, 'pod', 'container'))} "
                  f"max {by_cluster('pod', 'container')} ({_join(limits, MODEL_PODS)})",
                  legend("{{pod}} {{container}}")),
                 (f"max {by_cluster()} ({of_model(MEMORY_NEAR_LIMIT)})", legend("threshold"))],
            ),
            # Grafana anchors the pattern: "threshold" alone would not match "threshold <cluster>".
            "threshold.*",
        ),
        timeseries_panel(
            "Restarts (last hour)", "Container restarts of the model's pods within the last hour.", "short",
            # The restart alert's own count over its window, as its rules record it.
            [(f"max {by_cluster('pod', 'container')} ({of_model(CONTAINER_RESTARTS)})",
              legend("{{pod}} {{container}}"))],
        ),
        timeseries_panel(
            "Replicas", "Pods serving the model per version (scraped), and the Deployment's desired and available.",
            "short",
            [(f"count {by_cluster('model_version')} ({of_model(contract.MODEL_INFO.name)})",
              legend("serving {{model_version}}")),
             (_workload_replicas(KUBE_DEPLOYMENT_SPEC_REPLICAS), legend("desired {{deployment}}")),
             (_workload_replicas(KUBE_DEPLOYMENT_STATUS_REPLICAS_AVAILABLE), legend("available {{deployment}}"))],
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
            .query(f"label_values({in_namespace(contract.MODEL_INFO.name)}, {contract.LABEL_MODEL_NAME})")
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(VariableSort.ALPHABETICAL_ASC)
        )
    )
    infrastructure = [panel.span(6) for panel in infrastructure]
    builder = builder.with_variable(window_variable())
    # The canary's row comes last: its panels tell something only during a canary.
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
