#!/usr/bin/env python3
"""Preflight for a stack: each prerequisite on one line, found or missing, with its version and, when missing or
too old, the command that installs it. Exits 1 when a required one is missing, before anything is created.

Run by ``make doctor`` and first by ``make up``, ``make preview`` and ``make destroy``::

    python3 scripts/doctor.py --stack local

Standard library only: it runs before the virtualenv exists. The minimum and pinned versions come from
``scripts/tool-versions.env`` (stated there once); the cluster's kind and the port Grafana is mapped to come from
the stack file, read line by line (no YAML parser before the virtualenv).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VERSIONS_FILE = ROOT / "scripts" / "tool-versions.env"
STACKS_DIR = ROOT / "stacks"
MIN_PYTHON = (3, 11)
MIN_FREE_DISK_GIB = 10
"""What a kind node, the chart's images and the model image take in Docker, with room for Prometheus' volume."""


def versions() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in VERSIONS_FILE.read_text().splitlines()
             if line and not line.startswith("#") and "=" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def version_tuple(text: str) -> tuple[int, ...]:
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    return tuple(int(part) for part in match.groups(default="0")) if match else ()


@dataclass(frozen=True)
class Check:
    """One prerequisite's verdict: ``ok``, and what to print."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True

    def line(self) -> str:
        mark = "ok  " if self.ok else ("MISS" if self.required else "note")
        text = f"{mark} {self.name:24} {self.detail}"
        return text + (f"\n     {'':24} fix: {self.fix}" if self.fix and not self.ok else "")


def run(argv: Sequence[str]) -> tuple[int, str]:
    """Exit code and output of a short command; 127 when it is not on PATH."""
    if shutil.which(argv[0]) is None:
        return 127, ""
    try:
        result = subprocess.run(list(argv), capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return 126, str(error)
    return result.returncode, (result.stdout + result.stderr).strip()


def stack_facts(stack: str) -> tuple[str, int | None]:
    """The stack's cluster kind and, on kind, the host port Grafana is mapped to (default 3000)."""
    path = STACKS_DIR / f"Pulumi.{stack}.yaml"
    if not path.exists():
        stacks = ", ".join(p.stem.removeprefix("Pulumi.") for p in sorted(STACKS_DIR.glob("Pulumi.*.yaml")))
        raise SystemExit(f"no stack file {path.name} in {STACKS_DIR}: the stacks are {stacks}")
    kind, port, in_cluster = None, None, False
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("#"):
            continue
        if re.match(r"^  [\w:-]+:", line):
            in_cluster = line.strip() == "ml-observability:cluster:"
        elif in_cluster and (match := re.match(r"^    kind:\s*(\S+)", line)):
            kind = match.group(1)
        elif in_cluster and (match := re.match(r"^    grafanaHostPort:\s*(\d+)", line)):
            port = int(match.group(1))
    if kind is None:
        raise SystemExit(f"{path} names no cluster.kind")
    return kind, (port or 3000) if kind == "kind" else None


# --- the checks ----------------------------------------------------------------------------------------------


def check_python() -> Check:
    found = ".".join(map(str, sys.version_info[:3]))
    ok = sys.version_info[:2] >= MIN_PYTHON
    need = ".".join(map(str, MIN_PYTHON))
    return Check("python", ok, f"{found} ({sys.executable})" if ok else f"{found}, need {need} or newer",
                 "install Python 3.11 or newer (https://www.python.org/downloads/) and run make with PYTHON=python3.11")


def check_pulumi(pinned: dict[str, str]) -> Check:
    minimum = pinned["PULUMI_CLI_MIN_VERSION"]
    fix = f"curl -fsSL https://get.pulumi.com | sh -s -- --version {minimum}   (then open a new shell)"
    code, out = run(["pulumi", "version"])
    if code == 127:
        return Check("pulumi CLI", False, "not found", fix)
    ok = version_tuple(out) >= version_tuple(minimum)
    return Check("pulumi CLI", ok, out if ok else f"{out}, need {minimum} or newer", fix)


def check_docker() -> Check:
    install = ("install Docker Engine (https://docs.docker.com/engine/install/) or Docker Desktop; without Docker, "
               "`make demo` runs the monitors on this machine without a cluster")
    code, out = run(["docker", "version", "--format", "{{.Server.Version}}"])
    if code == 127:
        return Check("docker", False, "not found", install)
    if code != 0 or not out:
        return Check("docker", False, "installed, but the engine does not answer",
                     "start it (Docker Desktop, or: sudo systemctl start docker) and check `docker info`; without "
                     "Docker, `make demo` runs the monitors on this machine without a cluster")
    return Check("docker", True, f"engine {out.splitlines()[-1]}")


def check_kind(pinned: dict[str, str]) -> Check:
    version = pinned["KIND_VERSION"]
    fix = f"go install sigs.k8s.io/kind@{version}   (or the release binary of {version}, https://kind.sigs.k8s.io)"
    code, out = run(["kind", "version"])
    if code == 127:
        return Check("kind", False, "not found", fix)
    found = re.search(r"v\d+\.\d+\.\d+", out)
    ok = found is not None and found.group(0) == version
    seen = found.group(0) if found else (out or "unknown version")
    return Check("kind", ok, seen if ok else f"{seen}, need {version}", fix)


def check_kubectl() -> Check:
    code, out = run(["kubectl", "version", "--client", "-o", "yaml"])
    found = re.search(r"gitVersion:\s*(\S+)", out)
    return Check("kubectl", code == 0, found.group(1) if code == 0 and found else "not found",
                 "https://kubernetes.io/docs/tasks/tools/#kubectl (any version within one minor of the cluster)",
                 required=False)


CLOUD_CLIS: dict[str, list[tuple[str, list[str], str]]] = {
    "eks": [("aws", ["aws", "--version"], "https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html")],
    "aks": [("az", ["az", "version", "-o", "tsv"], "https://learn.microsoft.com/cli/azure/install-azure-cli")],
    "gke": [("gcloud", ["gcloud", "--version"], "https://cloud.google.com/sdk/docs/install"),
            ("gke-gcloud-auth-plugin", ["gke-gcloud-auth-plugin", "--version"],
             "gcloud components install gke-gcloud-auth-plugin")],
}
CLOUD_EXTRAS = {"eks": ("aws", "pulumi_eks"), "aks": ("azure", "pulumi_azure_native"), "gke": ("gcp", "pulumi_gcp")}


def check_cloud_clis(kind: str) -> list[Check]:
    checks = []
    for name, argv, fix in CLOUD_CLIS.get(kind, []):
        code, out = run(argv)
        checks.append(Check(name, code == 0, out.splitlines()[0] if code == 0 and out else "not found", fix))
    return checks


def check_cloud_extra(kind: str, venv_python: Path) -> Check | None:
    if kind not in CLOUD_EXTRAS:
        return None
    extra, module = CLOUD_EXTRAS[kind]
    if venv_python.exists():
        code, _ = run([str(venv_python), "-c", f"import {module}"])
        installed = code == 0
    else:
        installed = importlib.util.find_spec(module) is not None
    return Check(f"python extra [{extra}]", installed,
                 "installed" if installed else "not installed yet: make up installs it",
                 f".venv/bin/pip install -e '.[{extra}]'", required=False)


def check_port(port: int) -> Check:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as probe:
        try:
            probe.bind(("127.0.0.1", port))
            free = True
        except OSError:
            free = False
    return Check(f"port {port} (Grafana)", free, "free" if free else "in use",
                 f"stop what listens there (lsof -i :{port}), or map Grafana elsewhere: "
                 "pulumi config set --path 'cluster.grafanaHostPort' 3300")


def check_disk(path: Path) -> Check:
    free_gib = shutil.disk_usage(path).free / 2**30
    ok = free_gib >= MIN_FREE_DISK_GIB
    return Check("free disk", ok, f"{free_gib:.0f} GiB free" + ("" if ok else f", need {MIN_FREE_DISK_GIB} GiB"),
                 "free space for Docker's images (docker system prune) or move Docker's data root")


def checks_for(kind: str, port: int | None, command: str) -> list[Check]:
    """What ``command`` (``up``, ``preview`` or ``destroy``) needs for a stack of ``kind``: a preview creates
    nothing, so the cluster's own tools are notes there; only ``up`` needs the port and the disk."""
    pinned = versions()
    creates = command in ("up", "destroy")
    found: list[Check | None] = [check_python(), check_pulumi(pinned)]
    if kind == "kind":
        found += [_required(check_docker(), creates), _required(check_kind(pinned), creates)]
    found.append(check_kubectl())
    found += [_required(c, creates) for c in check_cloud_clis(kind)]
    found.append(check_cloud_extra(kind, ROOT / ".venv" / "bin" / "python"))
    if command == "up" and port is not None:
        found.append(check_port(port))
    if command == "up" and kind == "kind":
        docker_root = Path("/var/lib/docker")
        found.append(check_disk(docker_root if docker_root.exists() else ROOT))
    return [c for c in found if c is not None]


def _required(check: Check, required: bool) -> Check:
    return check if required else dataclasses.replace(check, required=False)


def main(argv: Sequence[str] | None = None, out: Callable[[str], None] = print) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default=os.environ.get("STACK", "local"))
    parser.add_argument("--for", dest="command", choices=("up", "preview", "destroy"), default="up",
                        help="what is about to run (default: up, which needs everything)")
    parser.add_argument("--print-extra", action="store_true",
                        help="print the Python extra the stack's cloud needs (nothing for kind and existing)")
    args = parser.parse_args(argv)
    kind, port = stack_facts(args.stack)
    if args.print_extra:
        out(CLOUD_EXTRAS[kind][0] if kind in CLOUD_EXTRAS else "")
        return 0
    out(f"prerequisites of `make {args.command}` for stack {args.stack} (cluster kind {kind}):")
    checks = checks_for(kind, port, args.command)
    for check in checks:
        out(check.line())
    missing = [c.name for c in checks if c.required and not c.ok]
    if missing:
        out(f"missing: {', '.join(missing)}; nothing was created.")
        return 1
    out("all prerequisites found.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
