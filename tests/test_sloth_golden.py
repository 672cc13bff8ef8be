"""The SLO rules against Sloth's own output for the same SLOs: Sloth is the golden file.

Every SLO the program generates for a model (``components/monitors/model_slos.py``) is written as a Sloth
``prometheus/v1`` spec (service, objective, the same error and total queries, the alert's name, labels and summary)
and run through the pinned ``sloth generate``, with Sloth's built-in windows for the period (the SRE Workbook's, as
``google-30d.yaml`` and ``google-28d.yaml`` ship them). The project's rules must then equal Sloth's, expression by
expression (compared as parsed PromQL, not as text), record name by record name; what the project deliberately
does differently is normalised by ``Normalised`` below, one documented difference at a time:

* the SLI's denominator is ``(total > 0)``: an idle window records nothing instead of NaN (``slo_rules``);
* every selector of a recording also matches the SLO's labels (namespace, job, model_name), and every join is also
  ``on`` them and on ``cluster``, so that the rules answer per model and per cluster where Sloth's answer per SLO;
* the period's recordings are a group of their own (evaluated where a whole period is kept) and say which store
  they read (``slo_store``); a store holding several clusters' series also selects the cluster;
* thresholds are one rounded number (``0.0144``), where Sloth writes ``(14.4 * 0.0009999999999999432)``, and the
  factors are rounded to four decimals (28 days: 0.9333 where Sloth multiplies by 0.93333…);
* alerts carry the SLO's identity and the model's routing labels as static labels, and ``summary``,
  ``description`` and ``runbook_url`` where Sloth writes ``summary`` and ``title``;
* the period's SLI is named and labelled with the period as configured (``ratio_rate28d``, ``sloth_window="28d"``),
  where Sloth prints it as Prometheus prints durations, in weeks when it is whole weeks (``ratio_rate4w``);
* ``sloth_slo_info`` says ``sloth_mode="ml-observability"`` and no ``sloth_version``;
* rendered durations follow the monitors' time scale (names keep the logical window): ranges are divided by it
  before comparing.

A changed window, factor, objective or record name, or a changed SLI expression, fails the comparison.
"""

from __future__ import annotations

import operator
import re
import subprocess
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from model_service import contract

from components.contracts import CLUSTER_LABEL, MODEL_LABEL, SLO_STORE_LABEL
from components.monitors.config import ModelMonitorsConfig
from components.monitors.model_monitors import slo_settings
from components.monitors.model_slos import model_slos
from components.monitors.rule_model import AlertingRule, RecordingRule, RuleGroup, format_duration, parse_duration
from components.monitors.slo_rules import (
    SLO_INFO,
    SLOTH_ID,
    SLOTH_SERVICE,
    SLOTH_SEVERITY,
    SLOTH_SLO,
    SLOTH_WINDOW,
    WORKBOOK_WINDOWS,
    Slo,
    error_budget,
    group_names,
)
from tests.monitor_rules import MODEL, NAMESPACE, args_for, groups_for, monitors_config
from tests.tools import require_tool, tool_versions

pytestmark = pytest.mark.tools

CONFIGS = {
    "defaults": monitors_config(),
    "28d-and-a-tight-objective": monitors_config(
        sloPeriod="28d", availabilityObjectivePercent=99.9,
        latencySlos=[{"thresholdSeconds": 0.25, "objectivePercent": 99.0}]),
    "time-scale-0.01": monitors_config(timeScale=0.01),
}
SLOTH_SEVERITIES = {"page": "critical", "ticket": "warning"}
"""Sloth's two alerts, labelled with the project's severities as a Sloth user would (``page_alert.labels``)."""


def project_slos(config: ModelMonitorsConfig) -> tuple[Slo, ...]:
    """The SLO specs the program generates the sample model's rules from (``model_monitors.rule_groups``)."""
    job = args_for(config).job_name
    scope = {"namespace": NAMESPACE, "job": job}
    return model_slos(slo_settings(config), service=job, scope=scope,
                      labels={**scope, contract.LABEL_MODEL_NAME: MODEL})


def sloth_spec(slos: tuple[Slo, ...]) -> dict[str, Any]:
    [service] = {slo.service for slo in slos}
    [labels] = [dict(s) for s in {tuple(slo.labels.items()) for slo in slos}]
    return {
        "version": "prometheus/v1",
        "service": service,
        "labels": labels,
        "slos": [
            {
                "name": slo.name,
                "objective": slo.objective_percent,
                "sli": {"events": {"error_query": slo.error_query, "total_query": slo.total_query}},
                "alerting": {
                    "name": slo.alert,
                    "labels": {"category": slo.category},
                    "annotations": {"summary": slo.summary},
                    "page_alert": {"labels": {"severity": SLOTH_SEVERITIES["page"]}},
                    "ticket_alert": {"labels": {"severity": SLOTH_SEVERITIES["ticket"]}},
                },
            }
            for slo in slos
        ],
    }


def sloth_generate(spec: dict[str, Any], period: str, folder: Path) -> list[dict[str, Any]]:
    source, out = folder / "slos.yaml", folder / "sloth-rules.yaml"
    source.write_text(yaml.safe_dump(spec, sort_keys=False))
    result = subprocess.run(
        [require_tool("sloth"), "generate", "--input", source, "--out", out, "--default-slo-period", period],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, f"sloth generate {source} failed:\n{result.stdout}\n{result.stderr}"
    return list(yaml.safe_load(out.read_text())["groups"])


# ---------------------------------------------------------------------------------------------------------
# Expressions as comparable shapes
# ---------------------------------------------------------------------------------------------------------

COMPARISONS = {">", "<", ">=", "<=", "==", "!="}
ARITHMETIC = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}


@dataclass(frozen=True)
class Normalised:
    """How one SLO's expressions are reduced to what both generators must agree on.

    ``extra_labels`` are the labels the project adds to selectors and joins (the SLO's own labels, ``cluster``);
    ``scale`` divides every range; ``mask_thresholds`` replaces the number an alert compares with (compared
    separately, with the project's rounding)."""

    extra_labels: frozenset[str]
    scale: float = 1.0
    mask_thresholds: bool = False
    renamed: tuple[tuple[str, str], ...] = ()
    """Series names replaced by Sloth's (``sloth_record``)."""

    def sloths(self) -> Normalised:
        """The same normalisation for Sloth's expressions, which know no time scale and Sloth's own names."""
        return Normalised(self.extra_labels, 1.0, self.mask_thresholds)

    def shape(self, expr: str) -> Any:
        return self._shape(promql_parser.parse(expr))

    def _labels(self, labels: list[str]) -> tuple[str, ...]:
        return tuple(sorted(set(labels) - self.extra_labels))

    def _shape(self, node: Any) -> Any:
        if isinstance(node, promql_parser.ParenExpr):
            return self._shape(node.expr)
        if isinstance(node, promql_parser.NumberLiteral):
            return float(f"{node.val:.9g}")  # 14.4 * 0.0009999999999999432 and 0.0144 are one number
        if isinstance(node, promql_parser.VectorSelector):
            matchers = sorted((m.name, str(m.op), m.value) for m in node.matchers.matchers
                              if m.name not in self.extra_labels)
            return ("selector", dict(self.renamed).get(node.name, node.name), tuple(matchers))
        if isinstance(node, promql_parser.MatrixSelector):
            range_ms = round(node.range / timedelta(milliseconds=1) / self.scale)
            return ("range", self._shape(node.vector_selector), range_ms)
        if isinstance(node, promql_parser.Call):
            return ("call", node.func.name, tuple(self._shape(a) for a in node.args))
        if isinstance(node, promql_parser.AggregateExpr):
            modifier = node.modifier
            grouping = (str(modifier.type), self._labels(modifier.labels)) if modifier is not None else None
            return ("aggregate", str(node.op), grouping, self._shape(node.expr))
        if isinstance(node, promql_parser.BinaryExpr):
            lhs, rhs = self._shape(node.lhs), self._shape(node.rhs)
            if isinstance(lhs, float) and isinstance(rhs, float):  # constant folding: vector(1-0.999)
                return float(f"{ARITHMETIC[str(node.op)](lhs, rhs):.9g}")
            if self.mask_thresholds and str(node.op) in COMPARISONS and isinstance(rhs, float):
                rhs = "threshold"
            matching = None
            if node.modifier is not None and node.modifier.matching is not None:
                matching = (str(node.modifier.matching.type), self._labels(node.modifier.matching.labels),
                            str(node.modifier.card))
            return ("binary", str(node.op), matching, lhs, rhs)
        raise AssertionError(f"no shape for {type(node).__name__}: {node}")


# ---------------------------------------------------------------------------------------------------------
# The comparison
# ---------------------------------------------------------------------------------------------------------


def sloth_duration(logical: str) -> str:
    """A period as Sloth prints it (Prometheus' ``model.Duration``): whole weeks as weeks, else days.

    >>> sloth_duration("28d"), sloth_duration("30d")
    ('4w', '30d')
    """
    return format_duration(parse_duration(logical))


def sloth_record(record: str, period: str) -> str:
    """The project's record name as Sloth names it: only the period's SLI differs (``sloth_duration``)."""
    return record.replace(f"ratio_rate{period}", f"ratio_rate{sloth_duration(period)}") if record.endswith(
        f"ratio_rate{period}") else record


def rules_by_name(groups: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for group in groups:
        for rule in group["rules"]:
            found[rule.get("record") or rule["alert"]].append(rule)
    return found


def project_groups(config: ModelMonitorsConfig, slo: Slo) -> list[RuleGroup]:
    names = group_names(slo)
    return [g for g in groups_for(config) if g.name in names]


def split_sli(expr: str) -> tuple[str, str]:
    """The error and total queries of the project's SLI, ``(error)\\n/\\n(total > 0)`` (the ``> 0`` removed)."""
    error, total = expr.split("\n/\n")
    assert total.endswith(" > 0)"), total
    return error, total.removesuffix(" > 0)") + ")"


def burn_rate_conditions(expr: str, sloth: bool) -> list[tuple[str, str, Decimal]]:
    """(short window, long window, threshold) of each ``(short and long)`` branch of a burn-rate alert; Sloth's
    threshold is its factor (rounded as the project rounds factors) times its error budget."""
    if sloth:
        found = re.findall(r"ratio_rate(\w+)\{[^}]*\} > \(([\d.]+) \* ([\d.e-]+)\)", expr)
        values = [(w, rounded_factor(f) * Decimal(b)) for w, f, b in found]
    else:
        values = [(w, Decimal(t)) for w, t in re.findall(r"ratio_rate(\w+)\{[^}]*\} > ([\d.]+)\)", expr)]
    assert values and len(values) % 2 == 0, expr
    branches = []
    for (short, limit), (long, same) in zip(values[::2], values[1::2], strict=True):
        assert limit == same, f"a branch compares its two windows with different thresholds: {expr}"
        branches.append((short, long, limit.quantize(Decimal("1E-9"))))
    return branches


def rounded_factor(text: str) -> Decimal:
    return Decimal(text).quantize(Decimal("0.0001"), ROUND_HALF_EVEN).normalize()


def sloth_factors(expr: str) -> list[Decimal]:
    """The burn-rate factor of each branch of a Sloth alert (each appears twice: short and long window)."""
    return [rounded_factor(f) for _, f in re.findall(r"ratio_rate(\w+)\{[^}]*\} > \(([\d.]+) \*", expr)][::2]


@pytest.fixture(params=list(CONFIGS), scope="module")
def case(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[
        ModelMonitorsConfig, tuple[Slo, ...], list[dict[str, Any]]]:
    config = CONFIGS[request.param]
    slos = project_slos(config)
    return config, slos, sloth_generate(sloth_spec(slos), config.slo_period, tmp_path_factory.mktemp("sloth"))


def test_every_slo_has_sloths_groups_and_record_names_one_to_one(case: Any):
    config, slos, sloth_groups = case
    assert len(slos) == 1 + len(config.latency_slos)
    sloth_names = {g["name"] for g in sloth_groups}
    for slo in slos:
        sli, meta, period, alerts = (g.to_dict() for g in project_groups(config, slo))
        # Sloth's SLI and meta groups hold the period's recordings; the project evaluates them in a group apart.
        mine = {
            sli["name"]: [r["record"] for r in sli["rules"]] + [
                sloth_record(period["rules"][0]["record"], config.slo_period)],
            meta["name"]: [r["record"] for r in meta["rules"]] + [r["record"] for r in period["rules"][1:]],
            alerts["name"]: [r["alert"] for r in alerts["rules"]],
        }
        theirs = {g["name"]: [r.get("record") or r["alert"] for r in g["rules"]]
                  for g in sloth_groups if g["name"] in mine}
        assert set(mine) <= sloth_names
        assert {k: sorted(v) for k, v in mine.items()} == {k: sorted(v) for k, v in theirs.items()}


def test_recordings_equal_sloths(case: Any):
    config, slos, sloth_groups = case
    scale = config.time_scale
    for slo in slos:
        extra = frozenset({*slo.labels, CLUSTER_LABEL})
        period_sli = f"slo:sli_error:ratio_rate{config.slo_period}"
        normalised = Normalised(extra, scale, renamed=((period_sli, sloth_record(period_sli, config.slo_period)),))
        sloths = normalised.sloths()
        theirs = rules_by_name([g for g in sloth_groups if g["name"].endswith(f"-{slo.id}")])
        groups = project_groups(config, slo)
        sli_group = groups[0]
        mine = [r for g in groups for r in g.rules if isinstance(r, RecordingRule)]
        for rule in mine:
            [their] = theirs[sloth_record(rule.record, config.slo_period)]
            expr = rule.expr
            if rule in sli_group.rules:
                error, total = split_sli(expr)
                their_error, their_total = their["expr"].strip().split("\n/\n")
                assert normalised.shape(error) == sloths.shape(their_error), rule.record
                assert normalised.shape(total) == sloths.shape(their_total), rule.record
            else:
                assert normalised.shape(expr) == sloths.shape(their["expr"]), (
                    f"{slo.id} {rule.record}:\n{expr}\n--- sloth:\n{their['expr']}")
            # The same labels, but the store a period's recording read and Sloth's own stamp on its info series.
            labels = {k: v for k, v in rule.labels.items() if k != SLO_STORE_LABEL}
            if labels.get(SLOTH_WINDOW) == config.slo_period:
                labels[SLOTH_WINDOW] = sloth_duration(config.slo_period)
            their_labels = dict(their.get("labels", {}))
            if rule.record == SLO_INFO:
                assert (labels.pop("sloth_mode"), their_labels.pop("sloth_mode")) == ("ml-observability",
                                                                                      "cli-gen-prom")
                assert their_labels.pop("sloth_version") == tool_versions()["SLOTH_VERSION"]
            assert labels == their_labels, rule.record


def test_objective_and_error_budget_equal_sloths(case: Any):
    config, slos, sloth_groups = case
    for slo in slos:
        theirs = rules_by_name([g for g in sloth_groups if g["name"].endswith(f"-{slo.id}")])
        objective = Normalised(frozenset()).shape(theirs["slo:objective:ratio"][0]["expr"])
        budget = Normalised(frozenset()).shape(theirs["slo:error_budget:ratio"][0]["expr"])
        assert objective == ("call", "vector", (float(Decimal(str(slo.objective_percent)) / 100),))
        assert budget == ("call", "vector", (float(error_budget(slo.objective_percent)),))
        days = int(config.slo_period.removesuffix("d"))
        assert Normalised(frozenset()).shape(theirs["slo:time_period:days"][0]["expr"]) == ("call", "vector",
                                                                                            (float(days),))


def test_burn_rate_alerts_equal_sloths(case: Any):
    config, slos, sloth_groups = case
    routing = {MODEL_LABEL: MODEL}
    for slo in slos:
        theirs = rules_by_name([g for g in sloth_groups if g["name"].endswith(f"-{slo.id}")])[slo.alert]
        mine = [a for g in project_groups(config, slo) for a in g.alerts]
        assert [a.labels[SLOTH_SEVERITY] for a in mine] == [t["labels"][SLOTH_SEVERITY] for t in theirs]
        normalised = Normalised(frozenset({*slo.labels, CLUSTER_LABEL}), config.time_scale, mask_thresholds=True)
        for alert, their in zip(mine, theirs, strict=True):
            assert isinstance(alert, AlertingRule)
            severity = alert.labels[SLOTH_SEVERITY]
            # The windows and the and/or structure, as parsed PromQL.
            assert normalised.shape(alert.expr) == normalised.sloths().shape(their["expr"]), (
                f"{slo.id} {severity}:\n{alert.expr}\n--- sloth:\n{their['expr']}")
            # The windows paired and the thresholds, each Sloth factor rounded as the project rounds it.
            assert burn_rate_conditions(alert.expr, sloth=False) == burn_rate_conditions(their["expr"], sloth=True)
            assert sloth_factors(their["expr"]) == [
                w.factor(config.slo_period) for w in WORKBOOK_WINDOWS if w.severity == severity]
            assert alert.for_ is None and "for" not in their
            # Labels: Sloth's, plus the identity and routing labels the project states on every alert.
            labels = alert.to_dict()["labels"]
            assert isinstance(labels, dict)
            static = {**slo.labels, SLOTH_ID: slo.id, SLOTH_SERVICE: slo.service, SLOTH_SLO: slo.name, **routing}
            assert {k: v for k, v in labels.items() if k not in static} == their["labels"]
            assert alert.summary == their["annotations"]["summary"]
