"""The GitHub workflows: linted by actionlint, valid against GitHub's schema, and wired the way CI needs.

actionlint (built from its Go module by scripts/install-tools.sh) checks expressions, contexts, job outputs,
matrix values, action inputs (of popular actions and of the local composite action) and runner labels.
check-jsonschema validates each file against the GitHub workflow and action schemas it bundles, offline. The
rest are the promises the README makes about these workflows, asserted on the files themselves.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness import stack_files, stack_name
from tests.tools import ROOT, require_tool, upstream_dir, which_or_unavailable

WORKFLOWS = ROOT / ".github" / "workflows"
ACTION = ROOT / ".github" / "actions" / "prepare-stack" / "action.yml"
WORKFLOW_FILES = sorted(WORKFLOWS.glob("*.yml"))


def load(path: Path) -> dict[Any, Any]:
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict)
    # YAML 1.1 reads the key `on` as True; GitHub reads it as "on".
    if True in document:
        document["on"] = document.pop(True)
    return document


def actionlint(cwd: Path, *files: Path) -> subprocess.CompletedProcess[str]:
    """actionlint without its shellcheck/pyflakes integrations, whose presence varies from machine to machine."""
    binary = require_tool("actionlint")
    command = [str(binary), "-no-color", "-shellcheck=", "-pyflakes=", *map(str, files)]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)


def check_jsonschema(schema: str, *files: Path) -> subprocess.CompletedProcess[str]:
    # The dev tools live beside the interpreter running the tests (.venv/bin), which need not be on PATH.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    binary = shutil.which("check-jsonschema", path=path) or which_or_unavailable(
        "check-jsonschema", "install the dev extra: .venv/bin/pip install -e '.[dev]'"
    )
    command = [binary, "--no-cache", "--builtin-schema", schema, *map(str, files)]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def test_the_three_workflows_and_the_composite_action_exist():
    assert {p.name for p in WORKFLOW_FILES} == {"test.yml", "preview.yml", "deploy.yml"}
    assert ACTION.is_file()


@pytest.mark.tools
def test_actionlint_finds_no_problem_in_any_workflow():
    result = actionlint(ROOT, *WORKFLOW_FILES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


@pytest.mark.tools
def test_actionlint_checks_the_pulumi_actions_inputs(tmp_path: Path):
    """actionlint 1.7.12 knows pulumi/actions' inputs up to v6; v7 changed only the action's Node runtime.

    Linting a copy that names v6 checks every ``with:`` key given to the action; a misspelt one must fail.
    """
    copy = tmp_path / ".github"
    shutil.copytree(ROOT / ".github", copy)
    for path in (copy / "workflows").glob("*.yml"):
        path.write_text(path.read_text().replace("pulumi/actions@v7", "pulumi/actions@v6"))
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    result = actionlint(tmp_path, *sorted((copy / "workflows").glob("*.yml")))
    assert result.returncode == 0, result.stdout

    preview = copy / "workflows" / "preview.yml"
    preview.write_text(preview.read_text().replace("policyPacks: policy", "policyPack: policy"))
    broken = actionlint(tmp_path, preview)
    assert broken.returncode == 1
    assert 'input "policyPack" is not defined in action "pulumi/actions@v6"' in broken.stdout


@pytest.mark.tools
def test_actionlint_checks_the_composite_actions_inputs(tmp_path: Path):
    copy = tmp_path / ".github"
    shutil.copytree(ROOT / ".github", copy)
    deploy = copy / "workflows" / "deploy.yml"
    deploy.write_text(deploy.read_text().replace("aws-role-arn:", "aws-role:"))
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    result = actionlint(tmp_path, deploy)
    assert result.returncode == 1
    assert 'input "aws-role" is not defined in action "Prepare a stack"' in result.stdout


def test_every_workflow_matches_githubs_workflow_schema():
    result = check_jsonschema("vendor.github-workflows", *WORKFLOW_FILES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok -- validation done" in result.stdout


def test_the_composite_action_matches_githubs_action_schema():
    result = check_jsonschema("vendor.github-actions", ACTION)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_rejects_a_job_without_a_runner(tmp_path: Path):
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  test:\n    steps:\n      - run: echo hi\n")
    result = check_jsonschema("vendor.github-workflows", broken)
    assert result.returncode == 1
    assert "runs-on" in result.stdout


# -------------------------------------------------------------------------------------------------------------
# what the workflows promise
# -------------------------------------------------------------------------------------------------------------


def steps(workflow: dict[str, Any], job: str) -> list[dict[str, Any]]:
    return list(workflow["jobs"][job]["steps"])


def uses(step_list: list[dict[str, Any]], action: str) -> list[dict[str, Any]]:
    return [s for s in step_list if str(s.get("uses", "")).split("@")[0] == action]


def all_uses() -> list[str]:
    found = []
    for path in [*WORKFLOW_FILES, ACTION]:
        found += re.findall(r"^\s*(?:-\s+)?uses:\s*(\S+)", path.read_text(), flags=re.MULTILINE)
    return found


def test_every_action_is_pinned_to_a_major_version_at_least():
    for reference in all_uses():
        if reference.startswith("./"):
            continue
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@(v[0-9]+(\.[0-9]+){0,2}|[0-9a-f]{40})", reference), reference


def test_tests_run_exactly_the_ci_entry_point_on_pushes_and_pull_requests():
    workflow = load(WORKFLOWS / "test.yml")
    assert set(workflow["on"]) == {"push", "pull_request"}
    runs = [s.get("run", "") for s in steps(workflow, "test") if s.get("if") != "always()"]
    # The last step that can fail is the project's CI entry point itself, as root for the local node's namespaces.
    assert runs[-1].startswith("sudo ") and runs[-1].endswith(" bash .ci/run"), runs[-1]
    setup_python = uses(steps(workflow, "test"), "actions/setup-python")
    assert setup_python and setup_python[0]["with"]["python-version"] == "3.11"
    assert uses(steps(workflow, "test"), "actions/setup-go")
    layout = next(s for s in steps(workflow, "test") if "fetch-upstream.sh" in s.get("run", ""))
    assert "ML_OBS_UPSTREAM_DIR" in layout["run"] and "ML_OBS_UPSTREAM_DIR" in workflow["jobs"]["test"]["env"]
    cache = uses(steps(workflow, "test"), "actions/cache")[0]["with"]
    assert cache["path"] == "~/.cache/ml-observability/tools" and "scripts/tool-versions.env" in cache["key"]


def test_previews_cover_every_stack_with_policies_comments_and_the_chart_diff():
    workflow = load(WORKFLOWS / "preview.yml")
    assert set(workflow["on"]) == {"pull_request"}
    assert workflow["permissions"] == {"contents": "read", "id-token": "write", "pull-requests": "write"}
    job = workflow["jobs"]["preview"]
    assert sorted(job["strategy"]["matrix"]["stack"]) == sorted(stack_name(f) for f in stack_files()), (
        "a stack file without a preview (or a preview without a stack file): update the matrix"
    )
    [preview] = uses(job["steps"], "pulumi/actions")
    assert preview["uses"] == "pulumi/actions@v7"
    options = preview["with"]
    assert options["command"] == "preview" and options["diff"] is True and options["comment-on-pr"] is True
    assert options["policyPacks"] == "policy" and (ROOT / options["policyPacks"] / "PulumiPolicy.yaml").is_file()
    assert options["cloud-url"] == "${{ vars.PULUMI_BACKEND_URL }}"
    names = [s.get("id") or s.get("name") or s.get("uses") for s in job["steps"]]
    diff_step = next(i for i, s in enumerate(job["steps"]) if "chart_diff.py program" in s.get("run", ""))
    comment_step = next(i for i, s in enumerate(job["steps"]) if "pr_comment.py" in s.get("run", ""))
    assert diff_step < names.index("preview") < comment_step
    assert str(job["steps"][comment_step]["if"]).startswith("always()"), "the diff is posted even if preview fails"
    base = next(s for s in uses(job["steps"], "actions/checkout") if s.get("with", {}).get("path") == ".base")
    assert base["with"]["ref"] == "${{ github.event.pull_request.base.sha }}"
    assert "--base-root .base" in job["steps"][diff_step]["run"]


def test_deploys_run_up_on_main_per_stack_behind_its_environment():
    workflow = load(WORKFLOWS / "deploy.yml")
    assert workflow["on"]["push"] == {"branches": ["main"]}
    assert "workflow_dispatch" in workflow["on"]
    assert workflow["permissions"] == {"contents": "read", "id-token": "write"}
    job = workflow["jobs"]["up"]
    assert job["environment"]["name"] == "${{ matrix.stack }}"
    assert job["concurrency"]["cancel-in-progress"] is False, "never cancel an update halfway"
    [up] = uses(job["steps"], "pulumi/actions")
    assert up["with"]["command"] == "up" and up["with"]["policyPacks"] == "policy"


def test_the_deploy_choice_accepts_only_a_json_list_of_stack_names(tmp_path: Path):
    """The choosing step's own script, run as the runner would run it."""
    run = load(WORKFLOWS / "deploy.yml")["jobs"]["choose"]["steps"][0]["run"]
    script = tmp_path / "choose.sh"
    script.write_text(run)

    def choose(requested: str, configured: str) -> subprocess.CompletedProcess[str]:
        output = tmp_path / "output"
        output.write_text("")
        env = {"PATH": os.environ["PATH"], "REQUESTED": requested, "CONFIGURED": configured,
               "GITHUB_OUTPUT": str(output)}
        done = subprocess.run(["bash", "-e", str(script)], env=env, capture_output=True, text=True, check=False)
        done.stdout = output.read_text()
        return done

    assert choose("", "").stdout == "stacks=[]\n"
    assert choose("", '["eks", "gke"]').stdout == 'stacks=["eks", "gke"]\n'
    assert choose('["aks"]', '["eks"]').stdout == 'stacks=["aks"]\n'
    refused = choose('["eks; rm -rf /"]', "")
    assert refused.returncode != 0 and "JSON list of stack names" in refused.stderr


def test_cloud_credentials_come_from_oidc_never_from_stored_keys():
    action = ACTION.read_text()
    assert "aws-actions/configure-aws-credentials@" in action and "role-to-assume:" in action
    assert "ARM_USE_OIDC=true" in action
    assert "google-github-actions/auth@" in action and "workload_identity_provider:" in action
    assert "install_components: gke-gcloud-auth-plugin" in action
    everything = action + "".join(p.read_text() for p in WORKFLOW_FILES)
    for stored_key in ("aws-secret-access-key", "AWS_SECRET_ACCESS_KEY", "ARM_CLIENT_SECRET", "credentials_json"):
        assert stored_key not in everything
    for workflow in ("preview.yml", "deploy.yml"):
        assert load(WORKFLOWS / workflow)["permissions"]["id-token"] == "write"


# -------------------------------------------------------------------------------------------------------------
# the chart layout step of test.yml
# -------------------------------------------------------------------------------------------------------------


@pytest.mark.tools
def test_fetch_upstream_lays_out_what_the_tests_read(tmp_path: Path):
    """From a package shaped like the repository's (dependencies as archives) to ../shared/upstream's layout."""
    helm = str(require_tool("helm"))
    reference = upstream_dir()
    source = tmp_path / "src" / "kube-prometheus-stack"
    shutil.copytree(reference / "charts" / "kube-prometheus-stack", source)
    for dependency in ("grafana", "kube-state-metrics", "prometheus-node-exporter", "prometheus-windows-exporter"):
        subprocess.run([helm, "package", str(source / "charts" / dependency), "-d", str(source / "charts")],
                       check=True, capture_output=True)
        shutil.rmtree(source / "charts" / dependency)
    subprocess.run([helm, "package", str(source), "-d", str(tmp_path)], check=True, capture_output=True)
    [package] = tmp_path.glob("kube-prometheus-stack-*.tgz")

    destination = tmp_path / "upstream"
    done = subprocess.run(["bash", str(ROOT / "scripts" / "fetch-upstream.sh"), str(destination), str(package)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr

    data = f"kube-prometheus-stack-{package.name.removeprefix('kube-prometheus-stack-').removesuffix('.tgz')}"
    expected = sorted(p.relative_to(reference / data) for p in (reference / data).rglob("*.yaml"))
    laid_out = sorted(p.relative_to(destination / data) for p in (destination / data).rglob("*.yaml"))
    assert laid_out == expected
    for relative in expected:
        assert (destination / data / relative).read_bytes() == (reference / data / relative).read_bytes(), relative
    charts = sorted(p.parent.name for p in (destination / "charts").rglob("Chart.yaml"))
    assert charts == sorted(p.parent.name for p in (reference / "charts").rglob("Chart.yaml"))
    assert not list((destination / "charts").rglob("*.tgz")), "dependencies are unpacked, as the tests read them"
