"""The first ``make up`` leaves the tree clean: the encryptionsalt Pulumi writes into the local stack's file, for
the passphrase ``make up`` generated, is filtered out of what git sees; any real change to the file still shows."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A repository holding the project's .gitattributes, its salt script and stack files, committed."""
    if shutil.which("git") is None:
        pytest.fail("git is needed: the project is a git repository")
    repo = tmp_path / "repo"
    (repo / "stacks").mkdir(parents=True)
    (repo / "scripts").mkdir()
    shutil.copy(ROOT / ".gitattributes", repo / ".gitattributes")
    shutil.copy(ROOT / "scripts" / "stack-file-clean.sh", repo / "scripts" / "stack-file-clean.sh")
    for stack in (ROOT / "stacks").glob("Pulumi.*.yaml"):
        shutil.copy(stack, repo / "stacks" / stack.name)
    git(repo, "init", "-q")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "checkout")
    return repo


def salt(stack_file: Path) -> None:
    """What `pulumi stack init` with the passphrase provider appends to the stack's file."""
    with stack_file.open("a") as file:
        file.write("encryptionsalt: v1:Zm9vYmFy:v1:cXV1eA==:YmF6cXV1eGNvcmdlZ3JhdWx0\n")


def after_stack_select(repo: Path, stack: str) -> None:
    """What ``make up`` runs once ``pulumi stack select --create`` has written the stack's file."""
    subprocess.run(["bash", "scripts/stack-file-clean.sh", stack], cwd=repo, check=True, capture_output=True)


def test_the_local_stacks_salt_leaves_the_tree_clean(checkout: Path):
    salt(checkout / "stacks" / "Pulumi.local.yaml")
    after_stack_select(checkout, "local")
    assert "encryptionsalt" in (checkout / "stacks" / "Pulumi.local.yaml").read_text()
    assert git(checkout, "status", "--porcelain") == ""
    assert git(checkout, "diff", "--cached") == "", "nothing is staged"


def test_a_real_change_to_the_local_stack_still_shows(checkout: Path):
    stack = checkout / "stacks" / "Pulumi.local.yaml"
    salt(stack)
    stack.write_text(stack.read_text().replace("workers: 0", "workers: 1"))
    after_stack_select(checkout, "local")
    assert git(checkout, "status", "--porcelain") == " M stacks/Pulumi.local.yaml\n", "a change is not staged"
    assert "encryptionsalt" not in git(checkout, "diff"), "the salt never reaches a commit"


def test_a_stack_file_pulumi_has_just_created_is_left_unstaged(checkout: Path):
    created = checkout / "stacks" / "Pulumi.dev.yaml"
    salt(created)
    after_stack_select(checkout, "dev")
    assert git(checkout, "status", "--porcelain") == "?? stacks/Pulumi.dev.yaml\n"


def test_a_shared_stacks_salt_is_kept_as_pulumi_recommends(checkout: Path):
    salt(checkout / "stacks" / "Pulumi.eks.yaml")
    after_stack_select(checkout, "eks")
    assert git(checkout, "status", "--porcelain") == " M stacks/Pulumi.eks.yaml\n"


def test_make_up_keeps_the_salt_out_right_after_pulumi_writes_it():
    recipe = (ROOT / "Makefile").read_text().split("\nup:", 1)[1].split("\n\n", 1)[0].splitlines()
    select = next(i for i, line in enumerate(recipe) if "pulumi stack select --create" in line)
    assert recipe[select + 1].strip() == "bash scripts/stack-file-clean.sh $(STACK)"
