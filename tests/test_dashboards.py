"""The model dashboard: one for every model, stable uid, three rows, the variables that pick a model (and the
clusters, when a store holds several), and the ConfigMap Grafana's sidecar imports."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import promql_parser
import pulumi
import pytest

from components.contracts import CLUSTER_LABEL, SLO_STORE_LABEL, DashboardContract
from components.monitors.dashboard_ids import dashboard_json, dashboard_uid
from components.monitors.model_dashboards import ModelDashboards, ModelDashboardsArgs
from components.monitors.overview_dashboard import (
    ALL_VALUE,
    MODEL_DASHBOARD_TITLE,
    dashboard_expressions,
    model_dashboard,
)
from components.monitors.runbooks import RUNBOOKS_DASHBOARD_TITLE, runbooks_dashboard
from components.monitors.slo_rules import PERIOD_BUDGET_REMAINING
from tests.harness import run_function

CONTRACT = DashboardContract(label="grafana_dashboard", label_value="1", namespaces=("monitoring",))


def document() -> dict[str, Any]:
    return json.loads(dashboard_json(model_dashboard()))  # type: ignore[no-any-return]


def rows(doc: dict[str, Any]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    current = None
    for panel in doc["panels"]:
        if panel["type"] == "row":
            current = panel["title"]
            grouped[current] = []
        else:
            assert current is not None, f"panel {panel['title']} before any row"
            grouped[current].append(panel["title"])
    return grouped


def test_uid_is_derived_from_the_name_and_stable():
    doc = document()
    assert doc["title"] == MODEL_DASHBOARD_TITLE
    assert doc["uid"] == hashlib.md5(b"ml-model-overview").hexdigest() == dashboard_uid(MODEL_DASHBOARD_TITLE)
    assert dashboard_json(model_dashboard()) == dashboard_json(model_dashboard())


def test_interface_model_and_infrastructure_rows():
    assert rows(document()) == {
        "Interface": ["Request rate", "Error ratio (/predict)", "Latency quantiles (/predict)",
                      "SLO error budget left"],
        "Model": ["Predictions by class", "Predicted class share", "Confidence quantiles",
                  "Feature drift: PSI over the short window", "Feature drift: JS distance over the short window",
                  "Accuracy", "Input data quality", "Recall per class", "Precision per class", "Mean confidence",
                  "Model age"],
        "Distributions": ["Input distributions: live against training", "Predicted class mix against training"],
        "Infrastructure": ["CPU", "Memory against the limit", "Restarts (last hour)", "Replicas"],
        "Canary against stable": ["Error ratio by track (/predict)", "Latency by track (/predict)",
                                  "Accuracy by track", "Predicted class share by track",
                                  "Prediction mix: JS distance to stable"],
    }


def test_variables_pick_any_model_that_exports_the_contract():
    doc = document()
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    assert list(variables) == ["datasource", "cluster", "namespace", "model", "drift_window"]
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert variables["namespace"]["query"] == 'label_values(model_info{cluster=~"$cluster"}, namespace)'
    assert variables["model"]["query"] == (
        'label_values(model_info{cluster=~"$cluster", namespace="$namespace"}, model_name)'
    )
    for panel in doc["panels"]:
        for target in panel.get("targets", []):
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            # Every query is narrowed to the selected clusters and namespace, and, through model_info, to the model.
            assert 'cluster=~"$cluster"' in target["expr"], target["expr"]
            assert 'namespace="$namespace"' in target["expr"], target["expr"]
            assert 'model_name="$model"' in target["expr"], target["expr"]


def test_the_panels_read_each_models_own_windows_and_thresholds_from_its_recordings():
    # One dashboard for every model: no window, threshold or ratio of any stack is written into it; each model's
    # come with its series (the window as a label, the thresholds as recordings).
    expressions = dashboard_expressions(document())
    assert any(e.startswith("model_feature:drift_psi:short_window{") for e in expressions)
    assert any(e.startswith("model_feature:drift_js_distance:short_window{") for e in expressions)
    assert any(e.startswith("model_feature:drift_psi:threshold{") for e in expressions)
    assert any(e.startswith("model:feedback_accuracy:ratio_window{") for e in expressions)
    assert any("model:container_memory_near_limit:threshold{" in e for e in expressions)
    assert not [e for e in expressions if re.search(r":(ratio)?[0-9]+[smhdw]\b", e)], "a window in a series name"
    legends = [t["legendFormat"] for p in document()["panels"] for t in p.get("targets", [])]
    assert "{{feature}} {{model_version}} ({{window}}) {{cluster}}" in legends


# ---------------------------------------------------------------------------------------------------------
# Across clusters: one store, several clusters' series
# ---------------------------------------------------------------------------------------------------------

IN_CLUSTERS = f'{CLUSTER_LABEL}=~"${CLUSTER_LABEL}"'


def targets(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(panel["title"], target) for panel in doc["panels"] for target in panel.get("targets", [])]


def cluster_violations(expression: str) -> list[str]:
    """What in ``expression`` mixes clusters: a selector without ``cluster=~"$cluster"``, an aggregation that
    drops ``cluster`` or a join (``on``) that ignores it."""
    violations: list[str] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            matchers = [(m.name, str(m.op), m.value) for m in node.matchers.matchers]
            if (CLUSTER_LABEL, "MatchOp.Re", f"${CLUSTER_LABEL}") not in matchers:
                violations.append(f"selector without the cluster matcher: {node}")
        elif isinstance(node, promql_parser.AggregateExpr):
            modifier = node.modifier
            if modifier is None or modifier.type != promql_parser.AggModifierType.By or (
                CLUSTER_LABEL not in modifier.labels
            ):
                violations.append(f"aggregation not by cluster: {node}")
        elif isinstance(node, promql_parser.BinaryExpr) and node.modifier and node.modifier.matching:
            matching = node.modifier.matching
            if matching.type == promql_parser.LabelModifierType.Include and CLUSTER_LABEL not in matching.labels:
                violations.append(f"join not on cluster: {node}")

    promql_parser.walk(promql_parser.parse(expression.replace("$__rate_interval", "5m")), visit)
    return violations


def test_the_cluster_variable_comes_first_and_includes_all():
    variables = [v for v in document()["templating"]["list"] if v["type"] == "query"]
    cluster = variables[0]
    assert cluster["name"] == CLUSTER_LABEL
    assert cluster["query"] == f"label_values(model_info, {CLUSTER_LABEL})"
    assert cluster["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    # All is `.*`, not the alternation of what label_values found: a Prometheus without external labels offers
    # no cluster, and `.*` still selects its series.
    assert cluster["multi"] is True and cluster["includeAll"] is True and cluster["allValue"] == ALL_VALUE == ".*"
    assert cluster["current"]["value"] == "$__all"
    assert cluster["refresh"] == 2 and cluster["sort"] == 1  # on time range change, alphabetical
    # The variables after it offer only what the selected clusters hold.
    assert all(IN_CLUSTERS in v["query"] for v in variables[1:]), [v["query"] for v in variables[1:]]


def test_every_query_selects_joins_and_aggregates_by_cluster():
    doc = document()
    expressions = [target["expr"] for _, target in targets(doc)]
    assert len(expressions) >= 20 and len(expressions) == len(set(dashboard_expressions(doc)) - {
        v["query"] for v in doc["templating"]["list"] if v["type"] == "query"})
    assert {e: cluster_violations(e) for e in expressions if cluster_violations(e)} == {}
    assert all(IN_CLUSTERS in e for e in expressions)


@pytest.mark.parametrize("expression", [
    'sum by (namespace) (up{cluster=~"$cluster", namespace="$namespace"})',
    'up{namespace="$namespace"}',
    'up{cluster="$cluster"}',
    'sum(up{cluster=~"$cluster"})',
    'a{cluster=~"$cluster"} * on (namespace, pod) group_left () b{cluster=~"$cluster"}',
    'a{cluster=~"$cluster"} / ignoring (class) group_left () b',
])
def test_the_cluster_check_has_teeth(expression: str):
    assert cluster_violations(expression)


def test_every_legend_tells_the_clusters_apart():
    legends = {title: target["legendFormat"] for title, target in targets(document())}
    assert {t: legend for t, legend in legends.items() if f"{{{{{CLUSTER_LABEL}}}}}" not in legend} == {}


def test_the_budget_panel_shows_the_store_that_computed_it():
    # Both the cluster's Prometheus and a store keeping the whole period may record the budget: the legend says
    # which store each series comes from.
    [(title, target)] = [(t, target) for t, target in targets(document()) if PERIOD_BUDGET_REMAINING in target["expr"]]
    assert title == "SLO error budget left"
    assert f"{{{{{SLO_STORE_LABEL}}}}}" in target["legendFormat"] and "{{cluster}}" in target["legendFormat"]
    assert "{{sloth_slo}}" in target["legendFormat"]


def test_the_dashboard_is_a_configmap_for_grafanas_sidecar():
    captured: dict[str, Any] = {}

    def program() -> None:
        dashboards = ModelDashboards(
            "dashboards", ModelDashboardsArgs(namespace="monitoring", contract=CONTRACT)
        )
        captured["titles"], captured["uids"] = dashboards.titles, dashboards.uids

    run = run_function(program)
    component = run.one(ModelDashboards.TYPE)
    config_maps = {c.name: c for c in run.children_of(component.urn)}
    assert set(config_maps) == {"dashboards-dashboard-ml-model-overview", "dashboards-dashboard-ml-model-runbooks"}
    for config_map in config_maps.values():
        assert config_map.typ == "kubernetes:core/v1:ConfigMap"
        metadata = config_map.inputs["metadata"]
        assert metadata["namespace"] == "monitoring"
        assert metadata["labels"]["grafana_dashboard"] == "1"
        assert metadata["annotations"] == {"grafana_folder": "ML models"}
    overview = config_maps["dashboards-dashboard-ml-model-overview"]
    assert json.loads(overview.inputs["data"]["ml-model-overview.json"]) == document()
    runbooks_map = config_maps["dashboards-dashboard-ml-model-runbooks"]
    runbooks = json.loads(runbooks_map.inputs["data"]["ml-model-runbooks.json"])
    assert runbooks == json.loads(dashboard_json(runbooks_dashboard()))
    assert captured == {"titles": [MODEL_DASHBOARD_TITLE, RUNBOOKS_DASHBOARD_TITLE],
                        "uids": [dashboard_uid(MODEL_DASHBOARD_TITLE), dashboard_uid(RUNBOOKS_DASHBOARD_TITLE)]}


def test_a_namespace_the_sidecar_does_not_search_is_refused():
    with pytest.raises(pulumi.RunError, match="namespace 'models' is not searched by Grafana's dashboard sidecar"):
        ModelDashboards("dashboards", ModelDashboardsArgs(namespace="models", contract=CONTRACT))


def test_the_distributions_read_each_models_counts_over_the_window_role_the_variable_picks():
    from components.monitors.distribution_panels import DISTRIBUTIONS_ROW, WINDOW_VARIABLE
    from components.monitors.distribution_rules import WINDOW_ROLES, observations_by_bin_in
    from components.monitors.rule_model import RecordingRule
    from tests.monitor_rules import every_alert_config, groups_for

    doc = document()
    [variable] = [v for v in doc["templating"]["list"] if v["name"] == WINDOW_VARIABLE]
    assert variable["type"] == "custom"
    assert [o["value"] for o in variable["options"]] == list(WINDOW_ROLES)
    assert variable["current"]["value"] in WINDOW_ROLES
    # Every role the variable offers is recorded by every model's rules, with the model's own window as a label.
    recordings = {r.record: r for g in groups_for(every_alert_config()) for r in g.rules
                  if isinstance(r, RecordingRule)}
    assert {role: recordings[observations_by_bin_in(role)].labels["window"] for role in WINDOW_ROLES} == {
        "short_window": "1h", "long_window": "6h"}
    panels = [p for p in doc["panels"] if p["type"] == "barchart"]
    assert [p["title"] for p in panels] == rows(doc)[DISTRIBUTIONS_ROW]
    for panel in panels:
        live, training = (t["expr"] for t in panel["targets"])
        assert f'__name__="{observations_by_bin_in("short_window").rsplit(":", 1)[0]}:${WINDOW_VARIABLE}"' in live
        assert training.startswith("label_join(\nmax by (cluster, model_version, feature, bin) "
                                   "(model_feature_bin:drift_reference_ratio:max{")
        assert all(t["instant"] and t["format"] == "table" for t in panel["targets"])
        assert [t["id"] for t in panel["transformations"]] == ["merge", "organize"]
    # The quality panels read the recordings of the class, confidence and age rules, and the contract's timestamp.
    expressions = dashboard_expressions(doc)
    for name in ("model_class:feedback_recall:ratio_window{", "model_class:feedback_recall:floor{",
                 "model_class:feedback_precision:ratio_window{", "model:prediction_confidence:mean_window{",
                 "model:prediction_confidence:floor{"):
        assert any(e.startswith(name) and name[:-1] in recordings for e in expressions), name
    assert any(e.startswith("time() - max by (cluster, model_version) (model_trained_timestamp_seconds{")
               for e in expressions)
