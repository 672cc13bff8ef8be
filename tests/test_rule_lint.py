"""Every rule file the program declares, linted: promtool's own linter, and the checks pint would make offline.

pint (github.com/cloudflare/pint) is not available to this project's builds: the Go module proxy refuses it
(``go list -m -versions github.com/cloudflare/pint``: "reading https://proxy.golang.org/github.com/cloudflare/pint/
@v/list: 403 Forbidden / This module version is not available."). Its offline checks are written here instead, over
the rule files of every stack under ``stacks/`` and ``tests/fixtures/`` (the PrometheusRules of the models' monitors
and of the stores' rulers, an Azure Monitor workspace's rule group, an Amazon Managed Prometheus rule namespace), as
the program declares them under mocks:

* ``promql/rate``: ``rate()``, ``irate()``, ``increase()`` and ``deriv()`` read at least two scrape intervals of
  the series they read (the model's ServiceMonitor's interval for the model's job, else Prometheus' own);
* ``alerts/for``: an alert that fires at once reads only windows (a range function) or recordings, never an
  instant sample, which one bad scrape would page for;
* ``alerts/comparison``: an alert compares (or asks for ``absent()``), else it fires whenever its series exist;
* ``alerts/annotation``: ``summary``, ``description`` and an absolute ``runbook_url``, a ``severity`` of the
  project's vocabulary;
* ``promql/aggregate`` and ``alerts/template``: the labels Alertmanager groups and inhibits by (its rendered
  configuration's ``group_by`` and ``equal``) and every ``$labels.x`` an annotation shows reach the alert, through
  the expression or as a static label; every alert states ``severity`` and its model (``model``, ``model_name``),
  and a label the routes match on (``team``) is on all of a model's alerts or none;
* ``rule/name``: a recording's name is ``level:metric:operations``;
* ``promql/series`` (offline): a series named like a recording (with a colon) is recorded by one of the stack's
  rules.

What each check would flag is shown on a rule written to break it (the ``*_has_teeth`` tests).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from model_service import contract

from components.contracts import MODEL_LABEL, SEVERITY_LABEL, Severity
from components.monitors.rule_model import dump_yaml, parse_duration
from components.monitors.slo_rules import SLO_INFO
from tests.conftest import program_run
from tests.harness import FIXTURES_DIR, ProgramRun, stack_files, stack_name
from tests.tools import require_tool

PROMETHEUS_RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
AZURE_RULE_GROUP = "azure-native:alertsmanagement:PrometheusRuleGroup"
AMP_RULE_NAMESPACE = "aws:amp/ruleGroupNamespace:RuleGroupNamespace"
SERVICE_MONITOR = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
PROMETHEUS_DEFAULT_SCRAPE_INTERVAL = "30s"
"""The operator's scrape interval when the chart's values set none."""
RATE_FUNCTIONS = frozenset({"rate", "irate", "increase", "deriv"})
RANGE_FUNCTIONS = frozenset({*RATE_FUNCTIONS, "delta", "idelta", "resets", "changes", "predict_linear",
                             "avg_over_time", "min_over_time", "max_over_time", "sum_over_time", "count_over_time",
                             "quantile_over_time", "stddev_over_time", "last_over_time", "present_over_time"})
RECORD_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*:[a-zA-Z0-9_]+:[a-zA-Z0-9_]+")
RECORD_NAME_EXCEPTIONS = frozenset({SLO_INFO})
"""Sloth's info series keeps Sloth's name, so that Sloth's dashboards find the SLOs (``slo_rules``)."""
COMPARISONS = frozenset({">", "<", ">=", "<=", "==", "!="})

LINTED_STACKS = [*stack_files(), *sorted(FIXTURES_DIR.glob("Pulumi.*.yaml"))]
"""Every stack file of the project and of the tests' fixtures (the policy-violation one included: its rules are
ordinary, only its chart values break a policy)."""


# ---------------------------------------------------------------------------------------------------------
# What the program declares
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleFile:
    name: str
    groups: list[dict[str, Any]]

    def rules(self) -> Iterator[dict[str, Any]]:
        for group in self.groups:
            yield from group["rules"]


@dataclass(frozen=True)
class Stack:
    """A stack's rule files and what they are evaluated and routed with."""

    rule_files: list[RuleFile]
    scrape_intervals: Mapping[str, str]
    """The model's ServiceMonitor's interval, by the job it sets."""
    default_scrape_interval: str
    routing_labels: frozenset[str]
    """The labels Alertmanager groups and inhibits by (``alertname`` apart: every alert has it)."""
    matched_labels: frozenset[str]
    """The labels Alertmanager's routes and inhibitions match on (``alertname`` apart)."""


def matcher_label(matcher: str) -> str:
    """The label of an Alertmanager matcher in its string form (``team="fraud"``)."""
    return re.split(r"=~|!~|!=|=", matcher, maxsplit=1)[0].strip()


def route_matchers(route: Mapping[str, Any]) -> Iterator[str]:
    for matcher in route.get("matchers", []):
        yield matcher_label(matcher)
    for child in route.get("routes", []):
        yield from route_matchers(child)


def declared(run: ProgramRun) -> Stack:
    files = [RuleFile(f"{r.inputs['metadata']['namespace']}-{r.inputs['metadata']['name']}",
                      r.inputs["spec"]["groups"]) for r in run.by_type(PROMETHEUS_RULE)]
    # An Azure Monitor workspace evaluates its rule group itself: the same rules, under Azure's field names.
    files += [RuleFile(r.name, [{"name": r.inputs["ruleGroupName"], "rules": [
        {"record": rule["record"], "expr": rule["expression"], "labels": rule.get("labels", {})}
        for rule in r.inputs["rules"]]}]) for r in run.by_type(AZURE_RULE_GROUP)]
    # Amazon Managed Service for Prometheus takes a rule file as it is, as text.
    files += [RuleFile(r.name, yaml.safe_load(r.inputs["data"])["groups"]) for r in run.by_type(AMP_RULE_NAMESPACE)]
    intervals = {}
    for monitor in run.by_type(SERVICE_MONITOR):
        for endpoint in monitor.inputs["spec"]["endpoints"]:
            jobs = [r["replacement"] for r in endpoint.get("relabelings", []) if r.get("targetLabel") == "job"]
            intervals.update(dict.fromkeys(jobs, endpoint["interval"]))
    [release] = [r for r in run.by_type(HELM_RELEASE) if "alertmanager" in r.inputs.get("values", {})]
    values = release.inputs["values"]
    default = values["prometheus"]["prometheusSpec"].get("scrapeInterval") or PROMETHEUS_DEFAULT_SCRAPE_INTERVAL
    config = values["alertmanager"]["config"]
    routing = set(config["route"]["group_by"]) | {label for rule in config.get("inhibit_rules", [])
                                                  for label in rule.get("equal", [])}
    matched = set(route_matchers(config["route"])) | {
        matcher_label(matcher) for rule in config.get("inhibit_rules", [])
        for matcher in (*rule.get("source_matchers", []), *rule.get("target_matchers", []))}
    return Stack(files, intervals, default, frozenset(routing - {"alertname"}), frozenset(matched - {"alertname"}))


@pytest.fixture(params=LINTED_STACKS, ids=stack_name)
def stack(request: pytest.FixtureRequest) -> Stack:
    found = declared(program_run(request.param))
    assert found.rule_files, f"{request.param.name} declares no rules"
    return found


# ---------------------------------------------------------------------------------------------------------
# PromQL helpers
# ---------------------------------------------------------------------------------------------------------


def nodes(expr: str) -> list[Any]:
    found: list[Any] = []
    promql_parser.walk(promql_parser.parse(expr), found.append)
    return found


ALL = None
"""Output labels: all those of the input series (a selector's, kept by functions and filters)."""
Labels = frozenset[str] | None


def is_scalar(node: Any) -> bool:
    """Whether ``node`` is a scalar (``2``, ``time()``, ``scalar(x)``, ``time() - 60``): the other side of a binary
    operation keeps its labels."""
    if isinstance(node, promql_parser.NumberLiteral):
        return True
    if isinstance(node, promql_parser.ParenExpr):
        return is_scalar(node.expr)
    if isinstance(node, promql_parser.Call):
        return node.func.name in ("time", "scalar", "pi")
    if isinstance(node, promql_parser.BinaryExpr):
        return is_scalar(node.lhs) and is_scalar(node.rhs)
    return False


def output_labels(node: Any) -> Labels:
    """The labels every series of ``node``'s result is sure to carry; ``ALL`` for whatever its series have.

    Follows Prometheus' rules for aggregations (``by``/``without``), one-to-one joins (``on`` keeps only its
    labels, ``ignoring`` drops its), ``group_left``/``group_right`` (the many side's labels), set operators
    (``and``/``unless`` the left side's, ``or`` only what both sides have), and ``absent()`` (its selector's
    equality matchers)."""
    if isinstance(node, (promql_parser.ParenExpr, promql_parser.UnaryExpr, promql_parser.SubqueryExpr)):
        return output_labels(node.expr)
    if isinstance(node, (promql_parser.VectorSelector, promql_parser.MatrixSelector)):
        return ALL
    if isinstance(node, (promql_parser.NumberLiteral, promql_parser.StringLiteral)):
        return frozenset()
    if isinstance(node, promql_parser.AggregateExpr):
        modifier = node.modifier
        if str(node.op) in ("topk", "bottomk", "limitk", "limit_ratio"):
            return output_labels(node.expr)
        if modifier is None:
            return frozenset()
        inner = output_labels(node.expr)
        if modifier.type == promql_parser.AggModifierType.By:
            return frozenset(modifier.labels) if inner is ALL else inner & frozenset(modifier.labels)
        return ALL if inner is ALL else inner - frozenset(modifier.labels)
    if isinstance(node, promql_parser.Call):
        name = node.func.name
        if name in ("absent", "absent_over_time"):
            [argument] = node.args
            selector = argument.vector_selector if isinstance(argument, promql_parser.MatrixSelector) else argument
            if isinstance(selector, promql_parser.VectorSelector):
                return frozenset(m.name for m in selector.matchers.matchers if str(m.op) == "MatchOp.Equal")
            return frozenset()
        if name in ("vector", "time", "scalar", "pi"):
            return frozenset()
        if name in ("label_replace", "label_join"):
            inner = output_labels(node.args[0])
            target = node.args[1].val
            return ALL if inner is ALL else inner | {target}
        vectors = [output_labels(a) for a in node.args if not isinstance(a, (promql_parser.NumberLiteral,
                                                                                 promql_parser.StringLiteral))]
        return vectors[0] if vectors else frozenset()
    if isinstance(node, promql_parser.BinaryExpr):
        lhs, rhs = output_labels(node.lhs), output_labels(node.rhs)
        op = str(node.op)
        if is_scalar(node.lhs):
            return rhs
        if is_scalar(node.rhs):
            return lhs
        modifier = node.modifier
        matching = modifier.matching if modifier is not None else None
        card = str(modifier.card) if modifier is not None else "VectorMatchCardinality.OneToOne"
        if op in ("and", "unless"):
            return lhs
        if op == "or":
            return ALL if lhs is ALL and rhs is ALL else (lhs if rhs is ALL else rhs if lhs is ALL else lhs & rhs)
        if card.endswith("ManyToOne"):
            return lhs if lhs is ALL else lhs | frozenset(modifier.group_labels if modifier else ())
        if card.endswith("OneToMany"):
            return rhs if rhs is ALL else rhs | frozenset(modifier.group_labels if modifier else ())
        if matching is not None and matching.type == promql_parser.LabelModifierType.Include:
            kept = frozenset(matching.labels)
            return kept if lhs is ALL else lhs & kept
        if matching is not None:
            return ALL if lhs is ALL else lhs - frozenset(matching.labels)
        return lhs
    raise AssertionError(f"no label rule for {type(node).__name__}: {node}")


def label_sure(expr: str, label: str) -> bool:
    found = output_labels(promql_parser.parse(expr))
    return found is ALL or label in found


# ---------------------------------------------------------------------------------------------------------
# The checks: each returns what it flags, one line per problem
# ---------------------------------------------------------------------------------------------------------


def short_rate_windows(rule: dict[str, Any], stack: Stack) -> list[str]:
    problems = []
    for node in nodes(rule["expr"]):
        if isinstance(node, promql_parser.Call) and node.func.name in RATE_FUNCTIONS:
            matrix = node.args[0]
            if not isinstance(matrix, promql_parser.MatrixSelector):
                continue  # a subquery: its step, not a scrape interval, spaces the points
            jobs = [m.value for m in matrix.vector_selector.matchers.matchers
                    if m.name == "job" and str(m.op) == "MatchOp.Equal"]
            interval = next((stack.scrape_intervals[j] for j in jobs if j in stack.scrape_intervals),
                            stack.default_scrape_interval)
            window_ms = round(matrix.range / timedelta(milliseconds=1))
            if window_ms < 2 * parse_duration(interval):
                problems.append(f"{node.func.name}() over {window_ms} ms reads fewer than two scrapes "
                                f"(every {interval}): {matrix}")
    return problems


def instant_alert_without_for(rule: dict[str, Any]) -> list[str]:
    if "alert" not in rule or rule.get("for"):
        return []
    all_nodes = nodes(rule["expr"])
    # The walk visits a range's selector too: those read a window, not an instant sample.
    windowed = {str(n.vector_selector) for n in all_nodes if isinstance(n, promql_parser.MatrixSelector)}
    instant = [n for n in all_nodes if isinstance(n, promql_parser.VectorSelector)
               and ":" not in (n.name or "") and str(n) not in windowed]
    return [f"{rule['alert']} fires at once on an instant sample of {n}: give it a `for`" for n in instant]


def alert_without_comparison(rule: dict[str, Any]) -> list[str]:
    if "alert" not in rule:
        return []
    compares = any((isinstance(n, promql_parser.BinaryExpr) and str(n.op) in COMPARISONS
                    and not (n.modifier is not None and n.modifier.return_bool))
                   or (isinstance(n, promql_parser.Call) and n.func.name in ("absent", "absent_over_time"))
                   for n in nodes(rule["expr"]))
    return [] if compares else [f"{rule['alert']} compares nothing: it fires whenever its series exist"]


def annotation_problems(rule: dict[str, Any]) -> list[str]:
    if "alert" not in rule:
        return []
    annotations, labels = rule.get("annotations", {}), rule.get("labels", {})
    problems = [f"{rule['alert']}: no {key} annotation" for key in ("summary", "description", "runbook_url")
                if not str(annotations.get(key, "")).strip()]
    if annotations.get("runbook_url") and not re.match(r"https?://", annotations["runbook_url"]):
        problems.append(f"{rule['alert']}: runbook_url is not an absolute URL: {annotations['runbook_url']}")
    if labels.get(SEVERITY_LABEL) not in {s.value for s in Severity}:
        problems.append(f"{rule['alert']}: severity {labels.get(SEVERITY_LABEL)!r} is not one of "
                        f"{', '.join(s.value for s in Severity)}")
    return problems


def dropped_labels(rule: dict[str, Any], routing: frozenset[str]) -> list[str]:
    """Labels Alertmanager or an annotation needs that the alert's expression drops and no static label gives."""
    if "alert" not in rule:
        return []
    static = set(rule.get("labels", {}))
    shown = {m for text in rule.get("annotations", {}).values() for m in re.findall(r"\$labels\.(\w+)", text)}
    return [f"{rule['alert']}: `{label}` ({'routing' if label in routing else 'shown by an annotation'}) is "
            f"dropped by the expression and set by no static label"
            for label in sorted(routing | shown) if label not in static and not label_sure(rule["expr"], label)]


def routing_problems(rule_file: RuleFile, matched: frozenset[str]) -> list[str]:
    """Every alert of a model states the model (``model``, ``model_name``) and ``severity``, and a label the routes
    match on (``team``) on all of the model's alerts or on none, with one value: else some of its alerts would
    reach another team's receivers than the others."""
    alerts = [rule for rule in rule_file.rules() if "alert" in rule]
    problems = [f"{rule_file.name}: {rule['alert']} has no static `{label}`"
                for rule in alerts for label in (SEVERITY_LABEL, MODEL_LABEL)
                if label not in rule.get("labels", {})]
    problems += [f"{rule_file.name}: {rule['alert']} loses `{contract.LABEL_MODEL_NAME}`" for rule in alerts
                 if contract.LABEL_MODEL_NAME not in rule.get("labels", {})
                 and not label_sure(rule["expr"], contract.LABEL_MODEL_NAME)]
    for label in sorted(matched - {SEVERITY_LABEL}):
        values = {(rule["alert"], rule.get("labels", {}).get(label)) for rule in alerts}
        if len({value for _, value in values}) > 1:
            problems.append(f"{rule_file.name}: alerts disagree on `{label}`: {sorted(values, key=str)}")
    return problems


def bad_record_names(rule: dict[str, Any]) -> list[str]:
    record = rule.get("record")
    if record is None or record in RECORD_NAME_EXCEPTIONS or RECORD_NAME.fullmatch(record):
        return []
    return [f"recording {record} is not named level:metric:operations"]


def unrecorded_series(rule: dict[str, Any], recorded: set[str]) -> list[str]:
    return [f"{rule.get('record') or rule['alert']} reads {node.name}, which no rule records"
            for node in nodes(rule["expr"])
            if isinstance(node, promql_parser.VectorSelector) and ":" in (node.name or "")
            and node.name not in recorded]


def problems(stack: Stack) -> list[str]:
    recorded = {rule["record"] for f in stack.rule_files for rule in f.rules() if "record" in rule}
    found = []
    for rule_file in stack.rule_files:
        found += routing_problems(rule_file, stack.matched_labels)
        for rule in rule_file.rules():
            found += [f"{rule_file.name}: {p}" for p in (
                *short_rate_windows(rule, stack), *instant_alert_without_for(rule), *alert_without_comparison(rule),
                *annotation_problems(rule), *dropped_labels(rule, stack.routing_labels), *bad_record_names(rule),
                *unrecorded_series(rule, recorded))]
    return found


# ---------------------------------------------------------------------------------------------------------
# On every stack
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.tools
def test_promtool_lints_every_rule_file_clean(stack: Stack, tmp_path: Path):
    paths = []
    for rule_file in stack.rule_files:
        path = tmp_path / f"{rule_file.name}.yaml"
        path.write_text(dump_yaml({"groups": rule_file.groups}))
        paths.append(path)
    result = subprocess.run([require_tool("promtool"), "check", "rules", "--lint=all", "--lint-fatal", *paths],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"promtool check rules --lint=all --lint-fatal:\n{result.stdout}\n{result.stderr}"


def test_what_pint_would_flag_offline(stack: Stack):
    rules = [rule for f in stack.rule_files for rule in f.rules()]
    assert any("alert" in r for r in rules) and any("record" in r for r in rules)
    assert problems(stack) == []


def test_the_stacks_are_the_ones_on_disk():
    # A new stack file or fixture is linted without editing this module.
    assert {p.name for p in LINTED_STACKS} >= {p.name for p in Path(FIXTURES_DIR).glob("Pulumi.*.yaml")}
    assert len(LINTED_STACKS) == len(stack_files()) + len(list(FIXTURES_DIR.glob("Pulumi.*.yaml")))


# ---------------------------------------------------------------------------------------------------------
# Each check flags the rule written to break it
# ---------------------------------------------------------------------------------------------------------

STACK = Stack(rule_files=[], scrape_intervals={"churn": "1m"}, default_scrape_interval="30s",
              routing_labels=frozenset({"namespace"}), matched_labels=frozenset({"severity", "team"}))


def alert(expr: str, **overrides: Any) -> dict[str, Any]:
    rule = {"alert": "ModelSomething", "expr": expr, "for": "5m",
            "labels": {"severity": "warning", "team": "fraud", "model": "churn", "model_name": "churn"},
            "annotations": {"summary": "s", "description": "{{ $value }} in {{ $labels.namespace }}",
                            "runbook_url": "https://runbooks.test/modelsomething"}}
    rule.update(overrides)
    return rule


def test_short_rate_windows_has_teeth():
    assert short_rate_windows({"record": "a:b:c", "expr": 'rate(x{job="churn"}[1m])'}, STACK)
    assert short_rate_windows({"record": "a:b:c", "expr": "sum(increase(x[45s]))"}, STACK)
    assert not short_rate_windows({"record": "a:b:c", "expr": 'rate(x{job="churn"}[2m])'}, STACK)
    assert not short_rate_windows({"record": "a:b:c", "expr": "increase(x[1m])"}, STACK)


def test_instant_alert_without_for_has_teeth():
    assert instant_alert_without_for(alert('up{job="churn"} == 0', **{"for": None}))
    assert instant_alert_without_for(alert("a:b:c > on (x) y", **{"for": None}))
    assert not instant_alert_without_for(alert('up{job="churn"} == 0'))
    assert not instant_alert_without_for(alert("a:b:c > 1 and max_over_time(x[1h]) > 2", **{"for": None}))


def test_alert_without_comparison_has_teeth():
    assert alert_without_comparison(alert("sum by (namespace) (x)"))
    assert alert_without_comparison(alert("x > bool 1"))
    assert not alert_without_comparison(alert("absent(x)"))
    assert not alert_without_comparison(alert("x > 1"))


@pytest.mark.parametrize("broken", [
    {"annotations": {"summary": "s", "description": "d {{ $value }}"}},
    {"annotations": {"summary": "", "description": "d", "runbook_url": "https://r.test/a"}},
    {"annotations": {"summary": "s", "description": "d", "runbook_url": "runbooks/a.md"}},
    {"labels": {"severity": "page"}},
    {"labels": {}},
])
def test_annotation_problems_has_teeth(broken: dict[str, Any]):
    assert annotation_problems(alert("x > 1", **broken))
    assert not annotation_problems(alert("x > 1"))


@pytest.mark.parametrize("expr", [
    "sum(x) > 1",
    "sum by (job) (x) > 1",
    "x / on (job) y > 1",
    'absent(up{job="churn"} == 1)',
    "sum by (namespace) (x) > 1 or sum by (job) (y) > 1",
    "vector(1) > 0",
])
def test_dropped_routing_labels_has_teeth(expr: str):
    assert dropped_labels(alert(expr), STACK.routing_labels)


@pytest.mark.parametrize("expr", [
    "x > 1",
    "sum by (namespace, job) (x) > 1",
    "sum without (pod) (x) > 1",
    "x / on (namespace, job) y > 1",
    "x * on (pod) group_left () y > 1",
    'absent(up{namespace="a", job="churn"})',
    "max(x) by (namespace) > 1 and on (namespace) y",
])
def test_kept_routing_labels_pass(expr: str):
    assert dropped_labels(alert(expr), STACK.routing_labels) == []


def test_a_label_an_annotation_shows_must_reach_the_alert():
    rule = alert("sum by (namespace) (x) > 1",
                 annotations={"summary": "s", "description": "{{ $value }} on {{ $labels.pod }}",
                              "runbook_url": "https://r.test/a"})
    assert dropped_labels(rule, frozenset()) == [
        "ModelSomething: `pod` (shown by an annotation) is dropped by the expression and set by no static label"]
    assert dropped_labels({**rule, "labels": {**rule["labels"], "pod": "all"}}, frozenset()) == []


def test_routing_problems_has_teeth():
    def problems_of(*rules: dict[str, Any]) -> list[str]:
        return routing_problems(RuleFile("f", [{"name": "g", "rules": list(rules)}]), STACK.matched_labels)

    labels = alert("x > 1")["labels"]
    assert problems_of(alert("x > 1"), alert("y > 1", labels={**labels, "team": "churn"}))
    assert problems_of(alert("x > 1"), alert("y > 1", labels={k: v for k, v in labels.items() if k != "team"}))
    assert problems_of(alert("x > 1", labels={k: v for k, v in labels.items() if k != "model"}))
    assert problems_of(alert("sum by (namespace) (x) > 1", labels={k: v for k, v in labels.items()
                                                                  if k != "model_name"}))
    assert not problems_of(alert("x > 1", labels={k: v for k, v in labels.items() if k != "model_name"}))
    assert not problems_of(alert("x > 1"), alert("y > 1"))


def test_the_routes_matchers_are_read_from_the_rendered_configuration():
    route = {"matchers": ['alertname=~"Watchdog"'], "routes": [
        {"matchers": ['team="fraud"'], "routes": [{"matchers": ['severity="critical"']}]}]}
    assert set(route_matchers(route)) == {"alertname", "team", "severity"}


@pytest.mark.parametrize("name", ["model_requests_rate5m", "model:requests", "a:b:c:d", "Model:x:y-z"])
def test_bad_record_names_has_teeth(name: str):
    assert bad_record_names({"record": name, "expr": "x"})


def test_good_record_names_pass():
    assert not bad_record_names({"record": "model:inference_requests:rate5m", "expr": "x"})
    assert not bad_record_names({"record": SLO_INFO, "expr": "vector(1)"})


def test_unrecorded_series_has_teeth():
    rule = {"record": "model:errors:ratio5m", "expr": "model:errors:rate5m / model:requests:rate5m"}
    assert unrecorded_series(rule, {"model:requests:rate5m"}) == [
        "model:errors:ratio5m reads model:errors:rate5m, which no rule records"]
    assert unrecorded_series(rule, {"model:requests:rate5m", "model:errors:rate5m"}) == []


def test_the_lint_reads_the_rules_as_yaml_round_trips_them():
    # promtool gets the groups exactly as the PrometheusRule holds them.
    groups = [{"name": "g", "rules": [alert("x > 1")]}]
    assert yaml.safe_load(dump_yaml({"groups": groups})) == {"groups": groups}
