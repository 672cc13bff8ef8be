"""The dashboard's queries as Grafana would send them: by row, with its variables replaced.

Grafana, not Prometheus, expands ``$namespace``, ``$model`` and ``$__rate_interval`` (four scrape intervals of
the data source, at least), and resolves ``label_values(<selector>, <label>)`` variables through Prometheus'
label-values API. The suite does the same, so it runs the very expressions the dashboard holds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from components.monitors.rule_model import format_duration, parse_duration

LABEL_VALUES = re.compile(r"^label_values\((?P<match>.+),\s*(?P<label>[A-Za-z_][A-Za-z0-9_]*)\)$")
"""Grafana's ``label_values(<selector>, <label>)`` variable query."""


def queries_by_row(dashboard: Mapping[str, Any], rows: set[str]) -> list[tuple[str, str]]:
    """``(panel title, expression)`` of every panel target under the rows named ``rows``, in order."""
    queries, row = [], None
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            row = panel["title"]
            continue
        if row in rows:
            queries += [(panel["title"], target["expr"]) for target in panel.get("targets", []) if "expr" in target]
    return queries


def query_variables(dashboard: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """``(name, selector, label)`` of each ``label_values`` variable, in the order Grafana resolves them."""
    variables = []
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = LABEL_VALUES.match(variable["query"])
        if match is None:
            raise ValueError(f"variable {variable['name']}: not a label_values query: {variable['query']!r}")
        variables.append((variable["name"], match.group("match"), match.group("label")))
    return variables


def rate_interval(scrape_interval: str) -> str:
    """``$__rate_interval`` for a data source scraped every ``scrape_interval`` (Grafana: four intervals)."""
    return format_duration(4 * parse_duration(scrape_interval))


def expand(expr: str, values: Mapping[str, str], scrape_interval: str | None = None) -> str:
    """``expr`` with the dashboard's variables and, given the scrape interval, ``$__rate_interval`` replaced."""
    if scrape_interval is not None:
        expr = expr.replace("$__rate_interval", rate_interval(scrape_interval))
    for name, value in values.items():
        expr = expr.replace(f"${name}", value)
    return expr
