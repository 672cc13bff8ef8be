"""The model dashboard: one for every model, stable uid, three rows, the variables that pick a model, and the
ConfigMap Grafana's sidecar imports."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import pulumi
import pytest

from components.contracts import DashboardContract
from components.monitors.model_dashboards import ModelDashboards, ModelDashboardsArgs
from components.monitors.overview_dashboard import (
    MODEL_DASHBOARD_TITLE,
    dashboard_expressions,
    dashboard_json,
    dashboard_uid,
    model_dashboard,
)
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
                  "Accuracy"],
        "Infrastructure": ["CPU", "Memory against the limit", "Restarts (last hour)", "Replicas"],
    }


def test_variables_pick_any_model_that_exports_the_contract():
    doc = document()
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    assert list(variables) == ["datasource", "namespace", "model"]
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert variables["namespace"]["query"] == "label_values(model_info, namespace)"
    assert variables["model"]["query"] == 'label_values(model_info{namespace="$namespace"}, model_name)'
    for panel in doc["panels"]:
        for target in panel.get("targets", []):
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            # Every query is narrowed to the selected namespace, and, through model_info, to the model.
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
    assert "{{feature}} {{model_version}} ({{window}})" in legends


def test_the_dashboard_is_a_configmap_for_grafanas_sidecar():
    captured: dict[str, Any] = {}

    def program() -> None:
        dashboards = ModelDashboards(
            "dashboards", ModelDashboardsArgs(namespace="monitoring", contract=CONTRACT)
        )
        captured["titles"], captured["uids"] = dashboards.titles, dashboards.uids

    run = run_function(program)
    component = run.one(ModelDashboards.TYPE)
    (config_map,) = run.children_of(component.urn)
    assert config_map.typ == "kubernetes:core/v1:ConfigMap"
    assert config_map.name == "dashboards-dashboard-ml-model-overview"
    metadata = config_map.inputs["metadata"]
    assert metadata["namespace"] == "monitoring"
    assert metadata["labels"]["grafana_dashboard"] == "1"
    assert metadata["annotations"] == {"grafana_folder": "ML models"}
    assert json.loads(config_map.inputs["data"]["ml-model-overview.json"]) == document()
    assert captured == {"titles": [MODEL_DASHBOARD_TITLE], "uids": [dashboard_uid(MODEL_DASHBOARD_TITLE)]}


def test_a_namespace_the_sidecar_does_not_search_is_refused():
    with pytest.raises(pulumi.RunError, match="namespace 'models' is not searched by Grafana's dashboard sidecar"):
        ModelDashboards("dashboards", ModelDashboardsArgs(namespace="models", contract=CONTRACT))
