"""Runs the real ``pulumi`` CLI on the project, offline, in a throwaway project folder and file backend.

The folder holds a generated Pulumi.yaml (same project name and runtime, the program being
``tests/engine/program/__main__.py``, which runs ``__main__.py``) with a ``plugins:`` block naming where each provider
binary is, and the stack file: the real ``stacks/Pulumi.<stack>.yaml`` config plus the test's overrides. The
engine finds nothing on its own: plugin acquisition and the update check are off, the state and Pulumi home
are in the folder, and secrets use a passphrase from the environment.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from components.contracts import PROJECT
from tests.tools import ROOT, require_tool

ENGINE_DIR = Path(__file__).resolve().parent
STAND_IN = ENGINE_DIR / "stand_in_provider.py"
# Every engine run is bounded: a hung plugin or program fails the test instead of the CI job.
COMMAND_TIMEOUT_SECONDS = 600


def stand_in_plugin(folder: Path, package: str) -> Path:
    """A ``pulumi-resource-<package>`` executable around tests/engine/stand_in_provider.py, in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / f"pulumi-resource-{package}"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{STAND_IN}" {package} "$@"\n')
    script.chmod(0o755)
    return folder


@dataclass
class EngineProject:
    """One throwaway project folder, its state backend and the environment every CLI call runs with."""

    workdir: Path
    stack: str
    stack_file: Path
    env: dict[str, str] = field(default_factory=dict)
    timings: list[tuple[str, float]] = field(default_factory=list)
    wrap: Callable[[Sequence[str], Path], list[str]] = lambda argv, cwd: list(argv)
    """Turns each CLI command and its folder into the command that runs: as is, or entered into a local node's
    namespaces (``NodeNamespace.command``)."""

    @classmethod
    def create(
        cls,
        workdir: Path,
        stack: str,
        overrides: dict[str, Any],
        extra_env: dict[str, str] | None = None,
        stack_file: Path | None = None,
        wrap: Callable[[Sequence[str], Path], list[str]] = lambda argv, cwd: list(argv),
    ) -> EngineProject:
        """A project for ``stack``, configured from ``stack_file`` (default: the real ``stacks/`` file)."""
        pulumi_bin = require_tool("pulumi").parent
        kubernetes_bin = require_tool("pulumi-resource-kubernetes").parent
        stand_ins = workdir / "stand-in-plugins"
        for package in ("random", "command"):
            stand_in_plugin(stand_ins / package, package)
        home = workdir / "home"
        (home / ".kube").mkdir(parents=True)
        project = {
            "name": PROJECT,
            "runtime": {"name": "python", "options": {"virtualenv": str(Path(sys.prefix))}},
            "main": os.path.relpath(ENGINE_DIR / "program", workdir / "project"),
            "plugins": {
                "providers": [
                    {"name": "kubernetes", "path": str(kubernetes_bin)},
                    {"name": "random", "path": str(stand_ins / "random")},
                    {"name": "command", "path": str(stand_ins / "command")},
                ]
            },
        }
        (workdir / "project").mkdir()
        (workdir / "project" / "Pulumi.yaml").write_text(yaml.safe_dump(project, sort_keys=False))
        (workdir / "state").mkdir()
        env = {
            "PATH": f"{pulumi_bin}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin",
            "HOME": str(home),
            "PULUMI_HOME": str(workdir / "pulumi-home"),
            "PULUMI_BACKEND_URL": f"file://{workdir / 'state'}",
            "PULUMI_CONFIG_PASSPHRASE": secrets.token_urlsafe(24),
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "PULUMI_IGNORE_AMBIENT_PLUGINS": "true",
            "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK": "true",
            "PULUMI_DIY_BACKEND_NO_LEGACY_WARNING": "true",
            "PULUMI_COPILOT": "false",
            "NO_COLOR": "1",
            "ML_OBS_UPSTREAM_DIR": os.environ.get("ML_OBS_UPSTREAM_DIR", ""),
        } | (extra_env or {})
        stack_file = stack_file or ROOT / "stacks" / f"Pulumi.{stack}.yaml"
        engine = cls(workdir=workdir, stack=stack, stack_file=stack_file, env=env, wrap=wrap)
        engine.run("stack", "init", stack)
        engine.write_stack_config(overrides)
        return engine

    def write_stack_config(self, overrides: dict[str, Any]) -> None:
        """The real stack file's config, top-level keys of ``overrides`` replaced, into the project's stack file.

        ``stack init`` wrote the passphrase's salt there; it is kept.
        """
        real = yaml.safe_load(self.stack_file.read_text())
        path = self.workdir / "project" / f"Pulumi.{self.stack}.yaml"
        stack_file = yaml.safe_load(path.read_text()) or {}
        config = dict(real.get("config") or {})
        for key, value in overrides.items():
            config[f"{PROJECT}:{key}"] = value
        stack_file["config"] = config
        path.write_text(yaml.safe_dump(stack_file, sort_keys=False))

    def run(self, *args: str, check: bool = True, timeout: float = COMMAND_TIMEOUT_SECONDS,
            diagnose: Callable[[], str] | None = None) -> subprocess.CompletedProcess[str]:
        """``pulumi <args>`` in the project folder; a failure or a timeout shows the CLI's whole output (and, with
        ``diagnose``, what the cluster looked like)."""
        start = time.monotonic()
        try:
            result = subprocess.run(
                self.wrap(["pulumi", *args, "--non-interactive"], self.workdir / "project"),
                cwd=self.workdir / "project",
                env=self.env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as expired:
            output = expired.stdout.decode(errors="replace") if isinstance(expired.stdout, bytes) else ""
            details = diagnose() if diagnose is not None else ""
            raise AssertionError(
                f"pulumi {' '.join(args)} still running after {timeout:.0f}s\n--- stdout\n{output[-20000:]}\n{details}"
            ) from None
        self.timings.append((" ".join(args[:2]), round(time.monotonic() - start, 1)))
        if check and result.returncode != 0:
            details = diagnose() if diagnose is not None else ""
            raise AssertionError(
                f"pulumi {' '.join(args)} exited {result.returncode}\n--- stdout\n{result.stdout[-20000:]}"
                f"\n--- stderr\n{result.stderr[-20000:]}\n{details}"
            )
        return result

    def set_secret(self, key: str, value: str) -> None:
        """``pulumi config set --secret --path``: a secret as a user sets it, encrypted in the stack file."""
        self.run("config", "set", "--secret", "--path", "--stack", self.stack, f"{PROJECT}:{key}", value)

    def preview_json(self, *args: str) -> dict[str, Any]:
        result = self.run("preview", "--json", "--stack", self.stack, *args)
        return json.loads(result.stdout)

    def stack_resources(self) -> list[dict[str, Any]]:
        """The resources the state holds after an update (``pulumi stack export``)."""
        exported = json.loads(self.run("stack", "export", "--stack", self.stack).stdout)
        return list(exported["deployment"].get("resources") or [])


def is_program_resource(typ: str, name: str) -> bool:
    """Resources the program declares: not the stack itself nor the providers the engine adds on its own."""
    return typ != "pulumi:pulumi:Stack" and not (typ.startswith("pulumi:providers:") and name.startswith("default"))


def planned(preview: dict[str, Any]) -> Counter[tuple[str, str]]:
    """(type, name) of every resource a ``pulumi preview --json`` plans, the way the mock harness records them."""
    found: Counter[tuple[str, str]] = Counter()
    for step in preview.get("steps") or []:
        urn = step["urn"]
        typ, name = urn.split("::")[2].split("$")[-1], urn.split("::")[3]
        if is_program_resource(typ, name):
            found[(typ, name)] += 1
    return found
