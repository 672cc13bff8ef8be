"""The model's rule groups for the sample service's namespace and job, as the rule tests render them."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

from model_service import contract

from components.contracts import DiscoveryContract
from components.monitors.config import ModelMonitorsConfig
from components.monitors.model_monitors import ModelMonitorsArgs, rule_groups
from components.monitors.rule_model import RuleGroup

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "models"
MODEL = "synthetic-classifier"
MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR


def monitors_config(**overrides: Any) -> ModelMonitorsConfig:
    """``model.monitors`` with camelCase overrides, validated as a stack file's would be."""
    return ModelMonitorsConfig.model_validate(overrides)


def every_alert_config() -> ModelMonitorsConfig:
    """The monitors with every optional alert set (a confidence floor, a maximum age): each alert, once."""
    return monitors_config(confidence={"floor": 0.7}, maxModelAge="30d")


def args_for(config: ModelMonitorsConfig) -> ModelMonitorsArgs:
    return ModelMonitorsArgs(
        settings=config,
        namespace=NAMESPACE,
        selector={"app.kubernetes.io/name": MODEL},
        port=contract.PORT_NAME,
        model_name=MODEL,
        workload=MODEL,
        discovery=DiscoveryContract(labels={"release": "monitoring"}),
    )


def groups_for(config: ModelMonitorsConfig) -> tuple[RuleGroup, ...]:
    """Every rule group of the sample model's PrometheusRule under ``config``."""
    return rule_groups(args_for(config), namespace=NAMESPACE, workload=MODEL)


def chart_metrics_script() -> ModuleType:
    """``scripts/chart_metrics.py``, whose ``metric_names`` parses PromQL (promql-parser) and ``read_list`` reads the
    chart's metric list."""
    spec = importlib.util.spec_from_file_location("chart_metrics", ROOT / "scripts" / "chart_metrics.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
