"""A small Dockerfile reader for the tests: instructions grouped by build stage.

Enough for this project's Dockerfile (line continuations, comments, ``KEY=VALUE`` ENV forms, JSON
CMD); not a general parser.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

DOCKERFILE = Path(__file__).resolve().parents[1] / "Dockerfile"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def arguments(self, keyword: str) -> list[str]:
        return [args for key, args in self.instructions if key == keyword]

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for args in self.arguments("ENV"):
            for item in shlex.split(args):
                key, _, value = item.partition("=")
                values[key] = value
        return values

    def cmd(self) -> list[str]:
        return list(json.loads(self.arguments("CMD")[-1]))


def instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """Instructions as (KEYWORD, arguments), continuation lines joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    result = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        result.append((keyword.upper(), re.sub(r"\s+", " ", args).strip()))
    return result


def global_args(path: Path = DOCKERFILE) -> dict[str, str]:
    """The ``ARG NAME=default`` lines before the first FROM: what a FROM line may name as ``${NAME}``."""
    defaults: dict[str, str] = {}
    for keyword, args in instructions(path):
        if keyword == "FROM":
            break
        if keyword == "ARG":
            name, _, default = args.partition("=")
            defaults[name] = default
    return defaults


def stages(path: Path = DOCKERFILE, build_args: dict[str, str] | None = None) -> list[Stage]:
    """Build stages in order, each base with the global ARGs resolved (defaults, or ``build_args``)."""
    arguments = global_args(path) | (build_args or {})
    result: list[Stage] = []
    for keyword, args in instructions(path):
        if keyword == "FROM":
            parts = args.split()
            base = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: arguments[m.group(1) or m.group(2)], parts[0])
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            result.append(Stage(base=base, name=name))
        elif result:
            result[-1].instructions.append((keyword, args))
    return result
