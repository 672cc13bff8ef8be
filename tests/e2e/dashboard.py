"""The dashboard's queries as Grafana would send them: by row, with its variables replaced.

Grafana, not Prometheus, expands ``$cluster``, ``$namespace``, ``$model`` and ``$__rate_interval`` (four scrape
intervals of the data source, at least), and resolves ``label_values(<selector>, <label>)`` variables through
Prometheus' label-values API. The suite does the same, so it runs the very expressions the dashboard holds.

A variable that includes All (``cluster``) stays at All unless a test picks a value: it expands to the
variable's ``allValue`` (``.*``), as Grafana sends it. The suite's Prometheus has no external labels, so its
series carry no ``cluster`` label, the variable offers no value, and All is the only choice that selects them
(PromQL matches a missing label as the empty string, which ``.*`` matches). Such a variable is therefore not
among the ``query_variables`` a test must pick one offered value of.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from components.contracts import CLUSTER_LABEL
from components.monitors.dashboard_ids import slug
from components.monitors.overview_dashboard import ALL_VALUE, MODEL_DASHBOARD_TITLE
from components.monitors.rule_model import format_duration, parse_duration

LABEL_VALUES = re.compile(r"^label_values\((?P<match>.+),\s*(?P<label>[A-Za-z_][A-Za-z0-9_]*)\)$")
"""Grafana's ``label_values(<selector>, <label>)`` variable query."""
OVERVIEW_CONFIG_MAP: Final = f"model-dashboards-dashboard-{slug(MODEL_DASHBOARD_TITLE)}"
"""Resource name of the overview dashboard's ConfigMap, as ``__main__.py`` names its ``ModelDashboards``."""
UNPICKED: Final[Mapping[str, str]] = {CLUSTER_LABEL: ALL_VALUE}
"""What each variable that includes All expands to when a test picks no value: its All value."""
VARIABLE = re.compile(r"\$(?:\{(?P<braced>[A-Za-z_]\w*)\}|(?P<name>[A-Za-z_]\w*))")
"""A dashboard variable in an expression (``$name`` or ``${name}``); ``$1`` of ``label_replace`` is none."""


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


def all_values(dashboard: Mapping[str, Any]) -> dict[str, str]:
    """``{name: allValue}`` of each query variable that includes All (and so need not be picked)."""
    return {v["name"]: v.get("allValue", "") for v in dashboard["templating"]["list"]
            if v["type"] == "query" and v.get("includeAll")}


def query_variables(dashboard: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """``(name, selector, label)`` of each ``label_values`` variable a test picks one value of, in the order
    Grafana resolves them. Variables that include All are left out: ``expand`` sets them to All (``UNPICKED``),
    which the dashboard must declare as the same value."""
    defaults = all_values(dashboard)
    if defaults != UNPICKED:
        raise ValueError(f"variables with All {defaults} differ from what expand sets them to: {dict(UNPICKED)}")
    variables = []
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query" or variable["name"] in defaults:
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
    """``expr`` with the dashboard's variables and, given the scrape interval, ``$__rate_interval`` replaced.

    A variable that includes All and is not in ``values`` becomes its All value (``UNPICKED``); any other
    variable left in the expression is an error, rather than a query that silently selects nothing.

    >>> expand('up{cluster=~"$cluster", namespace="$namespace"}', {"namespace": "models"})
    'up{cluster=~".*", namespace="models"}'
    """
    if scrape_interval is not None:
        expr = expr.replace("$__rate_interval", rate_interval(scrape_interval))
    chosen = {**UNPICKED, **values}
    missing: set[str] = set()

    def value(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("name")
        if name in chosen:
            return chosen[name]
        if not name.startswith("__"):  # Grafana's own ($__rate_interval without a scrape interval) stay
            missing.add(name)
        return match.group(0)

    expanded = VARIABLE.sub(value, expr)
    if missing:
        raise ValueError(f"no value for the variables {sorted(missing)} of {expr!r}")
    return expanded
