"""The preview job's comment step: the chart diff lands under Pulumi's preview, once, and is replaced on re-runs.

The end-to-end tests run the script against a local stand-in for GitHub's REST API that keeps comments in
memory and answers the three calls the script makes, with GitHub's pagination.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlparse

import pytest

from scripts import pr_comment
from tests.tools import ROOT

PROJECT, STACK = "ml-observability", "local"
PULUMI_BODY = (
    f"{pr_comment.pulumi_heading(PROJECT, STACK)}\n\n<details>\n{pr_comment.PULUMI_SUMMARY}\n<pre>\n"
    "Previewing update (local)\n + 3 to create\n</pre>\n</details>"
)


def test_a_section_is_appended_then_replaced_never_repeated():
    once = pr_comment.with_section(PULUMI_BODY, "## Rendered chart diff\n\nfirst")
    assert once.startswith(PULUMI_BODY) and once.count(pr_comment.START) == 1 and "first" in once
    twice = pr_comment.with_section(once, "## Rendered chart diff\n\nsecond")
    assert twice.count(pr_comment.START) == 1 and "second" in twice and "first" not in twice
    assert twice.startswith(pr_comment.pulumi_heading(PROJECT, STACK)) and pr_comment.PULUMI_SUMMARY in twice, (
        "pulumi/actions must still recognise its comment, or it would post a new one on the next run"
    )


def test_the_section_goes_into_the_stacks_own_pulumi_comment():
    comments = [
        {"id": 1, "body": PULUMI_BODY.replace(f"/{STACK}", "/eks")},
        {"id": 2, "body": PULUMI_BODY},
    ]
    assert pr_comment.plan(comments, PROJECT, STACK, "diff")[0] == 2


def test_without_a_pulumi_comment_or_room_in_it_the_section_has_its_own_comment():
    assert pr_comment.plan([], PROJECT, STACK, "diff") == (None, f"{pr_comment.own_marker(STACK)}\ndiff\n")
    own = {"id": 7, "body": f"{pr_comment.own_marker(STACK)}\nold"}
    huge = {"id": 3, "body": PULUMI_BODY + "x" * 65_400}
    expected = (7, f"{pr_comment.own_marker(STACK)}\nnew diff\n")
    assert pr_comment.plan([huge, own], PROJECT, STACK, "new diff") == expected


class FakeGitHub(BaseHTTPRequestHandler):
    comments: ClassVar[dict[int, dict[str, Any]]] = {}
    requests: ClassVar[list[tuple[str, str, str]]] = []

    def _reply(self, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _authorised(self) -> bool:
        if self.headers.get("Authorization") != "Bearer test-token":
            self._reply(401, {"message": "Bad credentials"})
            return False
        return True

    def do_GET(self) -> None:
        url = urlparse(self.path)
        self.requests.append(("GET", url.path, ""))
        if not self._authorised():
            return
        query = parse_qs(url.query)
        page, size = int(query["page"][0]), int(query["per_page"][0])
        listed = [self.comments[k] for k in sorted(self.comments)]
        self._reply(200, listed[(page - 1) * size : page * size])

    def _body(self) -> str:
        return str(json.loads(self.rfile.read(int(self.headers["Content-Length"])))["body"])

    def do_POST(self) -> None:
        self.requests.append(("POST", self.path, ""))
        if not self._authorised():
            return
        new_id = max(self.comments, default=0) + 1
        self.comments[new_id] = {"id": new_id, "body": self._body(), "html_url": f"https://example/c/{new_id}"}
        self._reply(201, self.comments[new_id])

    def do_PATCH(self) -> None:
        comment_id = int(self.path.rsplit("/", 1)[1])
        self.requests.append(("PATCH", self.path, ""))
        if not self._authorised():
            return
        self.comments[comment_id]["body"] = self._body()
        self._reply(200, self.comments[comment_id])

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def github() -> Iterator[str]:
    FakeGitHub.comments = {i: {"id": i, "body": f"review remark {i}"} for i in range(1, 131)}
    FakeGitHub.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeGitHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def post(api: str, section: Path, token: str = "test-token") -> subprocess.CompletedProcess[str]:
    env = {"GITHUB_TOKEN": token, "GITHUB_API_URL": api, "PATH": "/usr/bin:/bin"}
    command = [sys.executable, str(ROOT / "scripts" / "pr_comment.py"), "--repo", "acme/ml-observability",
               "--pr", "12", "--stack", STACK, "--file", str(section)]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False)


def test_the_script_edits_the_pulumi_comment_found_past_the_first_page(github: str, tmp_path: Path):
    FakeGitHub.comments[131] = {"id": 131, "body": PULUMI_BODY}
    section = tmp_path / "diff.md"
    section.write_text("## Rendered chart diff: local\n\nfirst run\n")
    done = post(github, section)
    assert done.returncode == 0, done.stderr
    assert [r[:2] for r in FakeGitHub.requests] == [
        ("GET", "/repos/acme/ml-observability/issues/12/comments"),
        ("GET", "/repos/acme/ml-observability/issues/12/comments"),
        ("PATCH", "/repos/acme/ml-observability/issues/comments/131"),
    ]
    assert "first run" in FakeGitHub.comments[131]["body"]

    section.write_text("## Rendered chart diff: local\n\nsecond run\n")
    assert post(github, section).returncode == 0
    body = FakeGitHub.comments[131]["body"]
    assert "second run" in body and "first run" not in body and body.startswith(PULUMI_BODY)
    assert len(FakeGitHub.comments) == 131, "no comment was added"


def test_the_script_creates_then_reuses_its_own_comment_without_a_preview_comment(github: str, tmp_path: Path):
    section = tmp_path / "diff.md"
    section.write_text("## Rendered chart diff: local\n\nno preview comment\n")
    assert post(github, section).returncode == 0
    assert post(github, section).returncode == 0
    own = [c for c in FakeGitHub.comments.values() if c["body"].startswith(pr_comment.own_marker(STACK))]
    assert len(own) == 1 and "no preview comment" in own[0]["body"]


def test_the_script_fails_without_a_usable_token(github: str, tmp_path: Path):
    section = tmp_path / "diff.md"
    section.write_text("x")
    refused = post(github, section, token="wrong")
    assert refused.returncode != 0 and "401" in refused.stderr
    missing = post(github, section, token="")
    assert missing.returncode == 2 and "GITHUB_TOKEN is not set" in missing.stderr
