"""The preflight (``scripts/doctor.py``, ``make doctor``) on a machine made of stubs: a PATH holding exactly the
tools a test gives it, each answering with the version the test chooses, so that every missing, too old or stopped
prerequisite is seen, named, and given the command that fixes it, and ``make up`` stops before anything."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from model_service.serve import free_port

ROOT = Path(__file__).resolve().parents[1]


def load_doctor() -> ModuleType:
    spec = importlib.util.spec_from_file_location("doctor", ROOT / "scripts" / "doctor.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["doctor"] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


doctor = load_doctor()
PINNED = doctor.versions()
ANSWERS = {
    "pulumi": f"echo v{PINNED['PULUMI_CLI_MIN_VERSION']}",
    "docker": "echo 27.3.1",
    "kind": f"echo 'kind {PINNED['KIND_VERSION']} go1.24.6 linux/amd64'",
    "kubectl": "echo 'clientVersion:'; echo '  gitVersion: v1.34.1'",
    "aws": "echo 'aws-cli/2.27.0 Python/3.13.2 Linux/6.8 exe/x86_64'",
    "az": "echo '2.75.0'",
    "gcloud": "echo 'Google Cloud SDK 530.0.0'",
    "gke-gcloud-auth-plugin": "echo 'Kubernetes v1.33.0-alpha+gke'",
}
"""Each stub's answer: what a current install prints for the version command the preflight runs."""


class Machine:
    """A PATH of stub tools and a stacks folder; ``doctor`` runs against them in this process."""

    def __init__(self, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.bin = folder / "bin"
        self.bin.mkdir()
        self.stacks = folder / "stacks"
        self.stacks.mkdir()
        self.grafana_port = free_port()
        monkeypatch.setenv("PATH", str(self.bin))
        monkeypatch.setattr(doctor, "STACKS_DIR", self.stacks)
        monkeypatch.setattr(doctor, "MIN_FREE_DISK_GIB", 0)
        for stack in ("local", "eks", "aks", "gke", "existing"):
            real = (ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text()
            (self.stacks / f"Pulumi.{stack}.yaml").write_text(
                real.replace("grafanaHostPort: 3000", f"grafanaHostPort: {self.grafana_port}"))
        for tool, answer in ANSWERS.items():
            self.give(tool, answer)

    def give(self, tool: str, script: str) -> None:
        path = self.bin / tool
        path.write_text(f"#!/bin/sh\n{script}\n")
        path.chmod(0o755)

    def take(self, tool: str) -> None:
        (self.bin / tool).unlink()

    def run(self, *args: str) -> tuple[int, list[str]]:
        lines: list[str] = []
        code = doctor.main(list(args), out=lambda text: lines.extend(text.splitlines()))
        return code, lines


@pytest.fixture
def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Machine]:
    yield Machine(tmp_path, monkeypatch)


def verdict(lines: list[str], name: str) -> tuple[str, str]:
    """The mark (``ok``, ``MISS``, ``note``) of ``name``'s line, and its fix line ('' without one)."""
    for index, line in enumerate(lines):
        mark, _, rest = line.partition(" ")
        if rest.strip().startswith(name + " ") or rest.strip() == name:
            following = lines[index + 1].strip() if index + 1 < len(lines) else ""
            return mark, following.removeprefix("fix: ") if following.startswith("fix:") else ""
    raise AssertionError(f"no line for {name} in:\n" + "\n".join(lines))


def test_with_every_prerequisite_the_local_stack_passes(machine: Machine):
    code, lines = machine.run("--stack", "local")
    assert code == 0, "\n".join(lines)
    for name in ("python", "pulumi CLI", "docker", "kind", "kubectl", f"port {machine.grafana_port} (Grafana)",
                 "free disk"):
        assert verdict(lines, name)[0] == "ok", lines
    assert lines[-1] == "all prerequisites found."


@pytest.mark.parametrize(("tool", "name", "fix"), [
    ("pulumi", "pulumi CLI", f"https://get.pulumi.com | sh -s -- --version {PINNED['PULUMI_CLI_MIN_VERSION']}"),
    ("docker", "docker", "https://docs.docker.com/engine/install/"),
    ("kind", "kind", f"go install sigs.k8s.io/kind@{PINNED['KIND_VERSION']}"),
])
def test_a_missing_tool_fails_with_the_command_that_installs_it(machine: Machine, tool: str, name: str, fix: str):
    machine.take(tool)
    code, lines = machine.run("--stack", "local")
    assert code == 1
    mark, said = verdict(lines, name)
    assert mark == "MISS" and fix in said, lines
    assert lines[-1] == f"missing: {name}; nothing was created."


def test_without_docker_it_points_at_the_demo_that_needs_no_cluster(machine: Machine):
    machine.take("docker")
    assert "`make demo` runs the monitors on this machine without a cluster" in verdict(
        machine.run("--stack", "local")[1], "docker")[1]


def test_a_docker_whose_engine_is_stopped_is_told_apart_from_a_missing_one(machine: Machine):
    machine.give("docker", "echo 'Cannot connect to the Docker daemon' >&2; exit 1")
    code, lines = machine.run("--stack", "local")
    assert code == 1
    assert "engine does not answer" in next(line for line in lines if line.startswith("MISS docker"))
    assert "systemctl start docker" in verdict(lines, "docker")[1]


def test_a_pulumi_cli_older_than_the_minimum_is_refused(machine: Machine):
    machine.give("pulumi", "echo v3.100.0")
    code, lines = machine.run("--stack", "local")
    assert code == 1
    assert f"v3.100.0, need {PINNED['PULUMI_CLI_MIN_VERSION']} or newer" in next(
        line for line in lines if "pulumi CLI" in line)


def test_kind_must_be_the_pinned_release_its_node_image_belongs_to(machine: Machine):
    machine.give("kind", "echo 'kind v0.29.0 go1.24.2 linux/amd64'")
    code, lines = machine.run("--stack", "local")
    assert code == 1 and verdict(lines, "kind")[0] == "MISS"
    assert f"v0.29.0, need {PINNED['KIND_VERSION']}" in next(line for line in lines if line.startswith("MISS kind"))


def test_a_busy_grafana_port_fails_with_how_to_move_it(machine: Machine):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", machine.grafana_port))
        busy.listen()
        code, lines = machine.run("--stack", "local")
    assert code == 1
    mark, fix = verdict(lines, f"port {machine.grafana_port} (Grafana)")
    assert mark == "MISS" and "cluster.grafanaHostPort" in fix


def test_too_little_disk_fails(machine: Machine, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(doctor, "MIN_FREE_DISK_GIB", 10**6)
    code, lines = machine.run("--stack", "local")
    assert code == 1 and verdict(lines, "free disk")[0] == "MISS"


@pytest.mark.parametrize(("stack", "cli"), [("eks", "aws"), ("aks", "az"), ("gke", "gcloud"),
                                            ("gke", "gke-gcloud-auth-plugin")])
def test_a_cloud_stack_needs_its_cloud_cli_to_create_but_not_to_preview(machine: Machine, stack: str, cli: str):
    machine.take(cli)
    code, lines = machine.run("--stack", stack)
    assert code == 1 and verdict(lines, cli)[0] == "MISS", lines
    assert verdict(lines, cli)[1], "a missing cloud CLI comes with how to install it"
    code, lines = machine.run("--stack", stack, "--for", "preview")
    assert code == 0 and verdict(lines, cli)[0] == "note", lines


def test_docker_and_kind_are_not_needed_to_preview_the_local_stack(machine: Machine):
    machine.take("docker")
    machine.take("kind")
    code, lines = machine.run("--stack", "local", "--for", "preview")
    assert code == 0, lines
    assert not any(f"port {machine.grafana_port}" in line for line in lines), "a preview binds no port"


@pytest.mark.parametrize(("stack", "extra"), [("local", ""), ("existing", ""), ("eks", "aws"), ("aks", "azure"),
                                              ("gke", "gcp")])
def test_each_stack_names_the_python_extra_make_up_installs(machine: Machine, stack: str, extra: str):
    code, lines = machine.run("--stack", stack, "--print-extra")
    assert code == 0 and lines == ([extra] if extra else [])
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert not extra or f"\n{extra} = [" in pyproject, f"pyproject.toml has no extra {extra!r}"


def test_an_unknown_stack_lists_the_stacks_there_are(machine: Machine):
    with pytest.raises(SystemExit, match="the stacks are aks, eks, existing, gke, local"):
        machine.run("--stack", "staging")


def test_make_up_runs_the_preflight_before_anything_else():
    make = shutil.which("make")
    if make is None:
        pytest.fail("make is not installed; the Makefile is the README's entry point")
    # As a person runs it: not as a sub-make of `make test`, which would announce its directory.
    environment = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    planned = subprocess.run([make, "--no-print-directory", "-n", "-B", "up", "STACK=local",
                              f"PYTHON={sys.executable}"], cwd=ROOT, env=environment,
                             capture_output=True, text=True, check=True).stdout.splitlines()
    assert planned[0] == f"{sys.executable} scripts/doctor.py --stack local --for up", planned[:3]
    assert planned[-1].startswith("pulumi up"), planned[-3:]


def test_the_readmes_prerequisites_state_the_same_versions_as_the_preflight():
    table = (ROOT / "README.md").read_text().split("## Prerequisites", 1)[1].split("\n## ", 1)[0]
    assert f"| Pulumi CLI | {PINNED['PULUMI_CLI_MIN_VERSION']} or newer" in table
    assert f"| kind | {PINNED['KIND_VERSION']} (`go install sigs.k8s.io/kind@{PINNED['KIND_VERSION']}`)" in table
    assert f"| Python | {'.'.join(map(str, doctor.MIN_PYTHON))} or newer" in table
