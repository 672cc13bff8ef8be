"""Prometheus rules as typed values, serialised once, and the durations they are written with.

Rules are built as objects and turned into the ``spec.groups`` of a PrometheusRule (or a promtool rule
file) by one function, never spliced together as YAML text: a builder cannot forget an annotation, put a
severity outside the project's vocabulary, or write a duration the time scale did not pass through.

Durations have two faces. The *logical* one (``"1h"``) names recording rules, ``sloth_window`` labels
and runbooks, and never changes. The *rendered* one is the logical duration multiplied by the time scale
(``"36s"`` at 0.01), and is what Prometheus evaluates: ranges, ``for``, scrape and evaluation intervals.
A fast end-to-end run therefore keeps every name while every clock runs faster.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import yaml

from components.contracts import SEVERITY_LABEL, Severity

_UNITS_MS: tuple[tuple[str, int], ...] = (
    ("y", 365 * 86_400_000),
    ("w", 7 * 86_400_000),
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1000),
    ("ms", 1),
)
_DURATION = re.compile(r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$")


@functools.lru_cache(maxsize=1024)  # a fleet's rules parse the same few windows tens of thousands of times
def parse_duration(text: str) -> int:
    """Milliseconds of a Prometheus duration (``"1h30m"``, ``"300ms"``), as Prometheus' own parser reads it.

    >>> parse_duration("1h30m"), parse_duration("5m"), parse_duration("300ms")
    (5400000, 300000, 300)
    """
    match = _DURATION.match(text)
    if not text or match is None or not any(match.groups()):
        raise ValueError(f"not a Prometheus duration: {text!r} (examples: 30s, 5m, 1h30m, 3d)")
    return sum(int(value) * unit for value, (_, unit) in zip(match.groups(), _UNITS_MS, strict=True) if value)


_WHOLE_ONLY: Final = frozenset({"y", "w"})
"""Units Prometheus prints only when the whole duration is a multiple of them (``30d``, not ``4w2d``)."""


@functools.lru_cache(maxsize=1024)
def format_duration(milliseconds: int) -> str:
    """Render milliseconds the way Prometheus prints durations (``model.Duration.String``): largest units first,
    no zero parts, years and weeks only when the duration is whole years or weeks.

    >>> format_duration(5_400_000), format_duration(36_000), format_duration(300), format_duration(864_000)
    ('1h30m', '36s', '300ms', '14m24s')
    >>> format_duration(30 * 86_400_000), format_duration(28 * 86_400_000), format_duration(366 * 86_400_000)
    ('30d', '4w', '366d')
    """
    if milliseconds <= 0:
        raise ValueError(f"a duration must be positive, got {milliseconds} ms")
    parts = []
    rest = milliseconds
    for unit, size in _UNITS_MS:
        if unit in _WHOLE_ONLY and rest % size:
            continue
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


@dataclass(frozen=True)
class TimeScale:
    """Multiplies every rendered duration; names keep the logical one.

    Rendered durations are rounded to whole milliseconds (Prometheus' resolution), so a scale never
    produces a duration Prometheus cannot parse.
    """

    factor: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.factor) and 0 < self.factor <= 1):
            raise ValueError(f"time scale must be in (0, 1], got {self.factor!r}")

    def milliseconds(self, logical: str) -> int:
        """Rendered length of ``logical`` in milliseconds."""
        scaled = round(parse_duration(logical) * self.factor)
        if scaled < 1:
            raise ValueError(f"{logical} at time scale {self.factor} is shorter than a millisecond")
        return scaled

    def seconds(self, logical: str) -> float:
        """Rendered length of ``logical`` in seconds (for tests and timing arithmetic)."""
        return self.milliseconds(logical) / 1000

    def render(self, logical: str) -> str:
        """The duration Prometheus evaluates for ``logical``.

        >>> TimeScale(0.01).render("1h"), TimeScale(1.0).render("1h")
        ('36s', '1h')
        """
        return format_duration(self.milliseconds(logical))


WINDOW_LABEL = "window"
"""Label of a recording that copies a statistic of a model's own window under a name without it (``…:short_window``):
the logical window (``30m``), whatever the time scale. A dashboard of several models, each with its windows, reads
those copies."""


def quote(value: str) -> str:
    """A PromQL string literal (double quotes, backslash escapes), safe for any label value."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


@dataclass(frozen=True)
class Matcher:
    """One label matcher of a selector."""

    label: str
    value: str
    op: str = "="

    def __post_init__(self) -> None:
        if self.op not in ("=", "!=", "=~", "!~"):
            raise ValueError(f"unknown matcher operator {self.op!r}")

    def render(self) -> str:
        return f"{self.label}{self.op}{quote(self.value)}"


def re2_escape(value: str) -> str:
    """``value`` as a literal inside a regex matcher (``feature!~"a\\.b|c"``): RE2's metacharacters escaped."""
    return "".join("\\" + char if char in r"\.+*?()|[]{}^$" else char for char in value)


def selector(metric: str, *matchers: Matcher, **equal: str) -> str:
    """``metric{label="value", …}``: matchers first, then equality matchers from keyword arguments.

    >>> selector("up", namespace="models", job="churn")
    'up{namespace="models", job="churn"}'
    """
    rendered = [m.render() for m in matchers] + [Matcher(k, v).render() for k, v in equal.items()]
    return f"{metric}{{{', '.join(rendered)}}}" if rendered else metric


def by(labels: Iterable[str]) -> str:
    """A grouping clause's label list: ``(a, b)``."""
    return "(" + ", ".join(labels) + ")"


@dataclass(frozen=True, kw_only=True)
class RecordingRule:
    """A recording rule: ``record`` follows ``level:metric:operations``."""

    record: str
    expr: str
    labels: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        rule: dict[str, object] = {"record": self.record, "expr": self.expr}
        if self.labels:
            rule["labels"] = dict(self.labels)
        return rule


@dataclass(frozen=True, kw_only=True)
class AlertingRule:
    """An alert with the annotations every alert of the project carries."""

    alert: str
    expr: str
    severity: Severity
    summary: str
    """A static headline: the same for every instance of the alert."""
    description: str
    """Templated per instance; includes ``{{ $value }}`` and the labels that say where to look."""
    runbook_url: str
    for_: str | None = None
    """Rendered duration the condition must hold before the alert fires (None: at once)."""
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Z][A-Za-z0-9]+", self.alert):
            raise ValueError(f"alert names are CamelCase, got {self.alert!r}")
        if "{{ $value" not in self.description:
            raise ValueError(f"the description of {self.alert} must show the value ({{{{ $value }}}})")
        if SEVERITY_LABEL in self.labels:
            raise ValueError(f"{self.alert}: give the severity as `severity`, not as a label")

    def to_dict(self) -> dict[str, object]:
        rule: dict[str, object] = {"alert": self.alert, "expr": self.expr}
        if self.for_ is not None:
            rule["for"] = self.for_
        rule["labels"] = {SEVERITY_LABEL: self.severity.value, **self.labels}
        rule["annotations"] = {
            "summary": self.summary,
            "description": self.description,
            "runbook_url": self.runbook_url,
        }
        return rule


Rule = RecordingRule | AlertingRule


@dataclass(frozen=True, kw_only=True)
class RuleGroup:
    """A rule group; rules of one group are evaluated in order, so recordings come before their readers."""

    name: str
    rules: tuple[Rule, ...]
    interval: str | None = None

    def to_dict(self) -> dict[str, object]:
        group: dict[str, object] = {"name": self.name}
        if self.interval is not None:
            group["interval"] = self.interval
        group["rules"] = [rule.to_dict() for rule in self.rules]
        return group

    @property
    def alerts(self) -> tuple[AlertingRule, ...]:
        return tuple(rule for rule in self.rules if isinstance(rule, AlertingRule))


def to_spec(groups: Iterable[RuleGroup]) -> dict[str, object]:
    """The ``spec`` of a PrometheusRule (also the content of a promtool rule file)."""
    groups = tuple(groups)
    names = [group.name for group in groups]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"rule group names must be unique within a PrometheusRule, repeated: {duplicates}")
    return {"groups": [group.to_dict() for group in groups]}


def alert_names(groups: Iterable[RuleGroup]) -> tuple[str, ...]:
    """Every distinct alert name, in order of first appearance."""
    seen: dict[str, None] = {}
    for group in groups:
        for alert in group.alerts:
            seen.setdefault(alert.alert, None)
    return tuple(seen)


class _RulesDumper(yaml.SafeDumper):
    """Writes multi-line expressions as literal blocks, so a rule file reads like a hand-written one."""


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_RulesDumper.add_representer(str, _str_representer)


def dump_yaml(document: Any) -> str:
    """YAML of a rule file or a promtool test file, keys in the order they were built."""
    return yaml.dump(document, Dumper=_RulesDumper, sort_keys=False, width=120, allow_unicode=True)
