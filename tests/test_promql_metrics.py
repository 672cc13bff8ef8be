"""Every PromQL expression of the model's rules and dashboard parses, and reads only series that exist.

"Exist" means: the sample service exports them (its real ``/metrics`` after traffic on every route), the
monitoring stack produces them (``scripts/kube-prometheus-stack-metrics.txt``, generated from the rendered
chart by ``scripts/chart_metrics.py``), or the monitors' own rules record them. A renamed metric in the
service's contract, a typo in a rule, or a kube-state-metrics series the chart does not scrape fails here,
not silently in production.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from model_service import contract

from components.contracts import CLUSTER_LABEL
from components.monitors.config import ModelMonitorsConfig
from components.monitors.dashboard_ids import dashboard_json
from components.monitors.distribution_panels import WINDOW_VARIABLE
from components.monitors.distribution_rules import WINDOW_ROLES
from components.monitors.overview_dashboard import ALL_VALUE, dashboard_expressions, model_dashboard
from components.monitors.rule_model import RecordingRule, RuleGroup
from tests.monitor_rules import MODEL, NAMESPACE, chart_metrics_script, groups_for
from tests.rule_testing import check_rules, write_rules
from tests.sample_service import sample_run

ROOT = Path(__file__).resolve().parents[1]



def rule_groups_under_test() -> tuple[RuleGroup, ...]:
    config = ModelMonitorsConfig.model_validate({"drift": {"features": {"f6": {"psiThreshold": 0.3}}},
                                                 "confidence": {"floor": 0.7}, "maxModelAge": "30d"})
    return groups_for(config)


def dashboard_queries() -> list[str]:
    document = json.loads(dashboard_json(model_dashboard()))
    values = {CLUSTER_LABEL: ALL_VALUE, "namespace": NAMESPACE, "model": MODEL, "__rate_interval": "5m",
              "datasource": "prometheus"}
    queries = []
    for expression in dashboard_expressions(document):
        # The drift window variable picks a recording by its name: each of its values names one.
        for role in WINDOW_ROLES if f"${WINDOW_VARIABLE}" in expression else WINDOW_ROLES[:1]:
            picked = {**values, WINDOW_VARIABLE: role}
            query = re.sub(r"\$\{?([A-Za-z_]\w*)\}?", lambda m, picked=picked: picked[m.group(1)], expression)
            label_values = re.fullmatch(r"label_values\((.*), *\w+\)", query)
            queries.append(label_values.group(1) if label_values else query)
    return queries


def rule_expressions() -> list[str]:
    return [rule.expr for group in rule_groups_under_test() for rule in group.rules]


def recorded_names() -> set[str]:
    return {rule.record for group in rule_groups_under_test() for rule in group.rules
            if isinstance(rule, RecordingRule)}


@pytest.mark.tools
def test_every_dashboard_query_parses_with_promtool(tmp_path: Path):
    queries = dashboard_queries()
    assert len(queries) >= 20
    group = RuleGroup(
        name="dashboard-queries",
        rules=tuple(RecordingRule(record=f"dashboard:query_{i}:check", expr=q) for i, q in enumerate(queries)),
    )
    assert "SUCCESS" in check_rules(write_rules(tmp_path, [group]))
    assert "SUCCESS" in check_rules(write_rules(tmp_path, rule_groups_under_test(), "model-rules.yaml"))


def test_every_metric_is_exported_by_the_service_or_produced_by_the_stack():
    script = chart_metrics_script()
    service = sample_run().full.names
    stack = script.read_list()
    recorded = recorded_names()
    used: dict[str, set[str]] = {}
    for source, expressions in (("rules", rule_expressions()), ("dashboard", dashboard_queries())):
        for expression in expressions:
            for name in script.metric_names(expression):
                used.setdefault(name, set()).add(source)
    unknown = {name: sources for name, sources in used.items() if name not in service | stack | recorded}
    assert not unknown, f"series that neither the sample service nor the stack nor the rules produce: {unknown}"
    # The check has teeth: the three sources each provide some of what is used.
    assert used.keys() & service and used.keys() & stack and used.keys() & recorded
    assert {f"{contract.HTTP_REQUEST_DURATION.name}_bucket", contract.DRIFT_BIN_OBSERVATIONS.name,
            contract.FEEDBACK.name, contract.MODEL_INFO.name} <= used.keys()


def test_label_values_the_rules_select_are_exported():
    """The latency SLOs' ``le`` bounds, the route and the outcome exist in the service's exposition."""
    scrape = sample_run().full
    buckets = {labels["le"] for labels, _ in scrape.series(f"{contract.HTTP_REQUEST_DURATION.name}_bucket")
               if labels["route"] == contract.ROUTE_PREDICT}
    text = "\n".join(rule_expressions())
    selected = set(re.findall(r'le="([^"]+)"', text))
    assert selected == {contract.format_le(t) for t in ModelMonitorsConfig().latency_thresholds_seconds}
    assert selected <= buckets
    outcomes = {labels[contract.LABEL_OUTCOME] for labels, _ in scrape.series(contract.FEEDBACK.name)}
    assert contract.OUTCOME_CORRECT in outcomes and f'outcome="{contract.OUTCOME_CORRECT}"' in text
    routes = {labels[contract.LABEL_ROUTE] for labels, _ in scrape.series(contract.HTTP_REQUESTS.name)}
    assert contract.ROUTE_PREDICT in routes and f'route="{contract.ROUTE_PREDICT}"' in text


@pytest.mark.tools
def test_the_committed_chart_metric_list_is_current():
    from tests.tools import require_tool, upstream_dir, which_or_unavailable

    require_tool("helm")
    upstream_dir()
    which_or_unavailable("go", "install Go (scripts/install-tools.sh needs it too)")
    script = chart_metrics_script()
    assert script.generate() == script.OUTPUT.read_text(), "run: python scripts/chart_metrics.py"


def test_every_cluster_series_the_monitors_name_is_one_the_chart_produces():
    # The rules and the dashboard share these names (components/monitors/cluster_metrics.py): a chart upgrade that
    # renamed one would leave both silently empty.
    from components.monitors.cluster_metrics import CLUSTER_SERIES

    missing = set(CLUSTER_SERIES) - chart_metrics_script().read_list()
    assert not missing, f"not produced by the pinned chart: {sorted(missing)}"
