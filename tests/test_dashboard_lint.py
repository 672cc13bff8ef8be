"""Every dashboard the program declares, held to the rules of Grafana's dashboard-linter.

The linter (github.com/grafana/dashboard-linter) is not served by the module proxy this project builds from, so
its rules are written here, over each dashboard JSON in a ConfigMap that carries the Grafana sidecar's label, in
every stack under ``stacks/`` and the fleet's and the stores' fixtures, as the program declares them under mocks:

* ``template-datasource-rule``: a dashboard with queries has a ``datasource`` variable of type ``datasource`` for
  Prometheus; ``panel-datasource-rule`` and the targets': every panel and target with queries names it
  (``${datasource}``), never a data source's uid;
* ``target-promql-rule`` and ``template-label-promql-rule``: every target and every ``label_values`` variable
  parses as PromQL once Grafana's variables are replaced;
* ``target-rate-interval-rule``: ``rate()``, ``irate()`` and ``increase()`` read ``[$__rate_interval]``. A panel
  that deliberately shows a rule's own window reads the series that rule records (``…:ratio_window``,
  ``…:short_window``), which has no range at all; there is no exclusion list;
* ``template-job-rule``/``template-instance-rule`` and ``target-job-rule``/``target-instance-rule``, adapted. The
  linter wants ``job`` and ``instance`` variables and every selector to match them. The project's dashboards pick a
  model, not a scrape job: the model's targets are found by ``model_info``, and the kube-state-metrics and cAdvisor
  series of its pods carry neither its job nor an instance of it. So the variables required are the dashboard's
  own, ``cluster`` (multi-value, with All), ``namespace`` and ``model``, each a query on the ``datasource``
  variable; every selector of every target matches ``cluster=~"$cluster"`` and ``namespace="$namespace"`` (the
  labels every series has), and every target matches ``model_name="$model"`` in at least one selector, directly
  or in the ``model_info`` series it joins with. A dashboard without queries (the runbooks') has no variables
  to lint.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import promql_parser
import pytest
from model_service import contract

from components.contracts import CLUSTER_LABEL
from tests.conftest import program_run
from tests.e2e.dashboard import LABEL_VALUES, VARIABLE
from tests.harness import ProgramRun, stack_files_under_test, stack_name

CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
DATASOURCE = "datasource"
DATASOURCE_REF = {"type": "prometheus", "uid": f"${{{DATASOURCE}}}"}
RATE_FUNCTIONS = frozenset({"rate", "irate", "increase"})
RATE_INTERVAL = "$__rate_interval"
MODEL_VARIABLE = "model"
SELECTED = {  # label: (operator, variable) every selector must match
    CLUSTER_LABEL: ("=~", "cluster"),
    "namespace": ("=", "namespace"),
}
"""The adapted target-job/instance rule: the labels every series has, matched to the dashboard's variables."""
REQUIRED_VARIABLES = (CLUSTER_LABEL, "namespace", MODEL_VARIABLE)


@dataclass(frozen=True)
class Dashboard:
    stack: str
    name: str
    document: dict[str, Any]

    @property
    def variables(self) -> dict[str, dict[str, Any]]:
        return {v["name"]: v for v in self.document.get("templating", {}).get("list", [])}

    def panels(self) -> Iterator[dict[str, Any]]:
        for panel in self.document.get("panels", []):
            yield panel
            yield from panel.get("panels", [])  # a collapsed row holds its panels

    def targets(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for panel in self.panels():
            for target in panel.get("targets", []):
                yield panel.get("title", ""), target


def declared_dashboards(run: ProgramRun) -> list[Dashboard]:
    """Each dashboard JSON of a ConfigMap Grafana's sidecar imports (it carries the sidecar's label)."""
    dashboards = []
    for config_map in run.by_type(CONFIG_MAP):
        metadata = config_map.inputs["metadata"]
        if "grafana_dashboard" not in (metadata.get("labels") or {}):
            continue
        for key, text in config_map.inputs["data"].items():
            dashboards.append(Dashboard(run.stack, f"{metadata['name']}/{key}", json.loads(text)))
    return dashboards


def all_dashboards() -> list[Dashboard]:
    return [d for stack_file in stack_files_under_test() for d in declared_dashboards(program_run(stack_file))]


RATE_SENTINEL = timedelta(days=1, hours=2, minutes=3, seconds=4)
"""What ``$__rate_interval`` stands for while parsing: a range no dashboard writes by hand."""


def placeholder(name: str) -> str:
    """A value for ``$name`` that parses and can be told apart: a duration for Grafana's interval variables, a
    marked string for the dashboard's own."""
    if name == RATE_INTERVAL.removeprefix("$"):
        return "1d2h3m4s"
    return "5m" if name.startswith("__") else f"__var_{name}__"


def parse(expr: str) -> Any:
    return promql_parser.parse(VARIABLE.sub(lambda m: placeholder(m.group("braced") or m.group("name")), expr))


def nodes(expr: str) -> list[Any]:
    found: list[Any] = []
    promql_parser.walk(parse(expr), found.append)
    return found


def matchers_of(expr: str) -> list[set[tuple[str, str, str]]]:
    """Each selector's matchers as ``(label, operator, value)``, a variable's value as ``$name``."""
    return [{(m.name, OPERATORS[str(m.op)], re.sub(r"^__var_(\w+)__$", r"$\1", m.value))
             for m in node.matchers.matchers}
            for node in nodes(expr) if isinstance(node, promql_parser.VectorSelector)]


OPERATORS = {"MatchOp.Equal": "=", "MatchOp.NotEqual": "!=", "MatchOp.Re": "=~", "MatchOp.NotRe": "!~"}


# ---------------------------------------------------------------------------------------------------------
# The rules: each returns what it flags
# ---------------------------------------------------------------------------------------------------------


def has_queries(dashboard: Dashboard) -> bool:
    return any("expr" in target for _, target in dashboard.targets())


def template_datasource(dashboard: Dashboard) -> list[str]:
    if not has_queries(dashboard):
        return []
    variable = dashboard.variables.get(DATASOURCE)
    if variable is None:
        return ["no datasource variable"]
    if variable.get("type") != "datasource" or variable.get("query") != "prometheus":
        return [f"the datasource variable is not a Prometheus data source: {variable}"]
    return []


def datasource_use(dashboard: Dashboard) -> list[str]:
    problems = []
    for panel in dashboard.panels():
        if panel.get("targets") and panel.get("datasource") != DATASOURCE_REF:
            problems.append(f"panel {panel.get('title')!r}: datasource {panel.get('datasource')}")
    for title, target in dashboard.targets():
        if "expr" in target and target.get("datasource") != DATASOURCE_REF:
            problems.append(f"panel {title!r}, target {target.get('refId')}: datasource {target.get('datasource')}")
    for name, variable in dashboard.variables.items():
        if variable.get("type") == "query" and variable.get("datasource") != DATASOURCE_REF:
            problems.append(f"variable {name}: datasource {variable.get('datasource')}")
    return problems


def promql_problems(dashboard: Dashboard) -> list[str]:
    problems = []
    expressions = [(f"panel {t!r}", target["expr"]) for t, target in dashboard.targets() if "expr" in target]
    for name, variable in dashboard.variables.items():
        if variable.get("type") == "query":
            match = LABEL_VALUES.match(variable.get("query", ""))
            if match is None:
                problems.append(f"variable {name}: not a label_values query: {variable.get('query')!r}")
                continue
            expressions.append((f"variable {name}", match.group("match")))
    for where, expr in expressions:
        try:
            parse(expr)
        except Exception as error:  # promql_parser raises its own ValueError subclasses
            problems.append(f"{where}: does not parse: {error}")
    return problems


def rate_intervals(dashboard: Dashboard) -> list[str]:
    problems = []
    for title, target in dashboard.targets():
        if "expr" not in target:
            continue
        for node in nodes(target["expr"]):
            if isinstance(node, promql_parser.Call) and node.func.name in RATE_FUNCTIONS:
                matrix = node.args[0]
                if not isinstance(matrix, promql_parser.MatrixSelector) or matrix.range != RATE_SENTINEL:
                    problems.append(f"panel {title!r}: {node.func.name}() not over [{RATE_INTERVAL}]: {target['expr']}")
    return problems


def template_variables(dashboard: Dashboard) -> list[str]:
    if not has_queries(dashboard):
        return []
    problems = []
    for name in REQUIRED_VARIABLES:
        variable = dashboard.variables.get(name)
        if variable is None:
            problems.append(f"no {name} variable")
        elif variable.get("type") != "query":
            problems.append(f"variable {name} is a {variable.get('type')}, not a query")
    cluster = dashboard.variables.get(CLUSTER_LABEL, {})
    if cluster and not (cluster.get("multi") and cluster.get("includeAll")):
        problems.append("the cluster variable must allow several values and All")
    return problems


def target_selection(dashboard: Dashboard) -> list[str]:
    problems = []
    for title, target in dashboard.targets():
        if "expr" not in target:
            continue
        every = matchers_of(target["expr"])
        for label, (op, variable) in SELECTED.items():
            wanted = (label, op, f"${variable}")
            problems += [f"panel {title!r}: a selector without {label}{op}\"${variable}\": {sorted(m)}"
                         for m in every if wanted not in m]
        model = (contract.LABEL_MODEL_NAME, "=", f"${MODEL_VARIABLE}")
        if not any(model in matchers for matchers in every):
            problems.append(f"panel {title!r}: no selector matches {model[0]}=\"${MODEL_VARIABLE}\": {target['expr']}")
    return problems


RULES = (template_datasource, datasource_use, promql_problems, rate_intervals, template_variables, target_selection)


# ---------------------------------------------------------------------------------------------------------
# On every dashboard of every stack
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture(params=stack_files_under_test(), ids=stack_name)
def dashboards(request: pytest.FixtureRequest) -> list[Dashboard]:
    found = declared_dashboards(program_run(request.param))
    assert found and any(has_queries(d) for d in found), f"{request.param.name} declares no dashboard with queries"
    return found


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.__name__)
def test_every_dashboard_passes(dashboards: list[Dashboard], rule: Any):
    found = {d.name: problems for d in dashboards if (problems := rule(d))}
    assert found == {}


# ---------------------------------------------------------------------------------------------------------
# Each rule flags the dashboard written to break it
# ---------------------------------------------------------------------------------------------------------

GOOD_EXPR = ('sum by (cluster) (rate(model_predictions_total{cluster=~"$cluster", namespace="$namespace", '
             'model_name="$model"}[$__rate_interval]))')


def dashboard(expr: str = GOOD_EXPR, **changes: Any) -> Dashboard:
    variable = {"type": "query", "datasource": DATASOURCE_REF}
    document: dict[str, Any] = {
        "templating": {"list": [
            {"name": DATASOURCE, "type": "datasource", "query": "prometheus"},
            {**variable, "name": "cluster", "query": "label_values(model_info, cluster)", "multi": True,
             "includeAll": True},
            {**variable, "name": "namespace", "query": 'label_values(model_info{cluster=~"$cluster"}, namespace)'},
            {**variable, "name": "model",
             "query": 'label_values(model_info{cluster=~"$cluster", namespace="$namespace"}, model_name)'},
        ]},
        "panels": [{"type": "timeseries", "title": "p", "datasource": DATASOURCE_REF,
                    "targets": [{"refId": "A", "expr": expr, "datasource": DATASOURCE_REF}]}],
    }
    document.update(changes)
    return Dashboard("test", "d", document)


def test_a_good_dashboard_passes_every_rule():
    assert {rule.__name__: rule(dashboard()) for rule in RULES if rule(dashboard())} == {}


def test_template_datasource_has_teeth():
    variables = dashboard().document["templating"]["list"]
    assert template_datasource(dashboard(templating={"list": variables[1:]}))
    assert template_datasource(dashboard(templating={"list": [{**variables[0], "query": "loki"}, *variables[1:]]}))


def test_datasource_use_has_teeth():
    hard_coded = {"type": "prometheus", "uid": "P1809F7CD0C75ACF3"}
    panel = dashboard().document["panels"][0]
    assert datasource_use(dashboard(panels=[{**panel, "datasource": hard_coded}]))
    assert datasource_use(dashboard(panels=[{**panel, "targets": [{**panel["targets"][0], "datasource": None}]}]))


def test_promql_problems_has_teeth():
    assert promql_problems(dashboard("sum(rate(x{cluster=~\"$cluster\"}[$__rate_interval])"))
    variables = dashboard().document["templating"]["list"]
    assert promql_problems(dashboard(templating={"list": [*variables[:3], {**variables[3], "query": "models()"}]}))


@pytest.mark.parametrize("window", ["5m", "1h", "$__interval"])
def test_rate_intervals_has_teeth(window: str):
    assert rate_intervals(dashboard(GOOD_EXPR.replace("$__rate_interval", window)))
    assert rate_intervals(dashboard(GOOD_EXPR.replace("rate(", "increase(").replace("$__rate_interval", window)))


def test_a_rules_own_window_is_read_from_its_recording():
    recorded = 'model:feedback_accuracy:ratio_window{cluster=~"$cluster", namespace="$namespace", model_name="$model"}'
    assert rate_intervals(dashboard(recorded)) == []
    assert rate_intervals(dashboard('max_over_time(x{cluster=~"$cluster"}[1h])')) == []  # not a rate


def test_template_variables_has_teeth():
    variables = dashboard().document["templating"]["list"]
    assert template_variables(dashboard(templating={"list": variables[:3]}))
    assert template_variables(dashboard(templating={"list": [variables[0], {**variables[1], "multi": False},
                                                             *variables[2:]]}))


@pytest.mark.parametrize("expr", [
    'sum(rate(model_predictions_total{namespace="$namespace", model_name="$model"}[$__rate_interval]))',
    'sum(rate(model_predictions_total{cluster=~"$cluster", model_name="$model"}[$__rate_interval]))',
    'sum(rate(model_predictions_total{cluster=~"$cluster", namespace="$namespace"}[$__rate_interval]))',
    'x{cluster=~"$cluster", namespace="$namespace", model_name="$model"} * on (pod) group_left () y',
    'x{cluster="$cluster", namespace="$namespace", model_name="$model"}',
    'x{cluster=~"$cluster", namespace="models", model_name="$model"}',
])
def test_target_selection_has_teeth(expr: str):
    assert target_selection(dashboard(expr))


def test_a_join_with_model_info_selects_the_model():
    joined = ('sum by (cluster, pod) (rate(container_cpu_usage_seconds_total{cluster=~"$cluster", '
              'namespace="$namespace"}[$__rate_interval]) * on (cluster, namespace, pod) group_left () '
              'group by (cluster, namespace, pod) (model_info{cluster=~"$cluster", namespace="$namespace", '
              'model_name="$model"}))')
    assert target_selection(dashboard(joined)) == []


def test_every_stack_is_linted():
    assert len({d.stack for d in all_dashboards()}) == len(stack_files_under_test())
