"""Running the generated rules through the real ``promtool``: rule files, unit-test files, input series.

Test files are generated from Python with the same time scale as the rules, so every interval and every
expected time is exact; they are written next to the rule file under the test's temporary folder (the
failure message names it, so a failing case can be rerun by hand with ``promtool test rules``).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from components.monitors.rule_model import AlertingRule, RuleGroup, TimeScale, dump_yaml, format_duration, to_spec
from tests.promsim import go_g, humanize_percentage
from tests.tools import require_tool


def promtool() -> Path:
    return require_tool("promtool")


def write_rules(directory: Path, groups: Sequence[RuleGroup], name: str = "rules.yaml") -> Path:
    path = directory / name
    path.write_text(dump_yaml(to_spec(groups)))
    return path


def check_rules(path: Path) -> str:
    """``promtool check rules`` (its linter included); fails the test with promtool's output."""
    result = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        pytest.fail(f"promtool check rules {path} failed:\n{result.stdout}\n{result.stderr}", pytrace=False)
    return result.stdout


def run_rule_tests(
    directory: Path,
    groups: Sequence[RuleGroup],
    tests: Sequence[Mapping[str, Any]],
    *,
    evaluation_interval_ms: int,
) -> None:
    """Write the rules and a unit-test file, and run ``promtool test rules`` on them.

    The groups are evaluated in the order given (``group_eval_order``), as in the PrometheusRule; without it
    promtool evaluates them in map order and a reader of another group's recording may see it one step late.
    """
    rules = write_rules(directory, groups)
    document = {
        "rule_files": [rules.name],
        "evaluation_interval": format_duration(evaluation_interval_ms),
        "group_eval_order": [group.name for group in groups],
        "tests": list(tests),
    }
    test_file = directory / "tests.yaml"
    test_file.write_text(dump_yaml(document))
    result = subprocess.run(
        [promtool(), "test", "rules", test_file.name], cwd=directory, capture_output=True, text=True, timeout=300
    )
    if result.returncode != 0:
        pytest.fail(
            f"promtool test rules {test_file} failed:\n{result.stdout[-12000:]}\n{result.stderr[-4000:]}",
            pytrace=False,
        )


def series_values(values: Sequence[float | None]) -> str:
    """promtool's expanding notation for a list of samples: runs of equal steps as ``a+bxn``, gaps as ``_``.

    >>> series_values([0, 1, 2, 3, None, None, 5, 5])
    '0+1x3 _x2 5+0x1'
    """
    parts: list[str] = []
    i = 0
    while i < len(values):
        value = values[i]
        if value is None:
            run = 1
            while i + run < len(values) and values[i + run] is None:
                run += 1
            parts.append("_" if run == 1 else f"_x{run}")
            i += run
            continue
        run = 0
        step = None
        while i + run + 1 < len(values) and values[i + run + 1] is not None:
            next_step = values[i + run + 1] - values[i + run]  # type: ignore[operator]
            if step is None:
                step = next_step
            elif next_step != step:
                break
            run += 1
        if run == 0:
            parts.append(_number(value))
        else:
            assert step is not None
            parts.append(f"{_number(value)}{'+' if step >= 0 else '-'}{_number(abs(step))}x{run}")
        i += run + 1
    return " ".join(parts)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def render_template(template: str, labels: Mapping[str, str], value: float) -> str:
    """Render the subset of Prometheus' alert templating the project's annotations use."""

    def substitute(match: re.Match[str]) -> str:
        expression = match.group(1).strip()
        if expression == "$value":
            return go_g(value)
        if expression == "$value | humanizePercentage":
            return humanize_percentage(value)
        printf = re.fullmatch(r'\$value \| printf "(%\.\df)"', expression)
        if printf:
            return printf.group(1) % value
        label = re.fullmatch(r"\$labels\.(\w+)", expression)
        if label:
            return labels.get(label.group(1), "")
        raise AssertionError(f"template expression not supported by the test renderer: {expression!r}")

    return re.sub(r"\{\{(.*?)\}\}", substitute, template)


def expected_alert(rule: AlertingRule, labels: Mapping[str, str], value: float) -> dict[str, Any]:
    """One ``exp_alerts`` entry: the series' labels plus the rule's, and the rendered annotations."""
    all_labels = {**labels, **rule.to_dict()["labels"]}  # type: ignore[dict-item]
    annotations = {
        "summary": render_template(rule.summary, all_labels, value),
        "description": render_template(rule.description, all_labels, value),
        "runbook_url": rule.runbook_url,
    }
    return {"exp_labels": all_labels, "exp_annotations": annotations}


def duration(scale: TimeScale, logical_ms: int) -> str:
    """A logical duration in milliseconds, scaled and rendered for a test file."""
    return format_duration(round(logical_ms * scale.factor))
