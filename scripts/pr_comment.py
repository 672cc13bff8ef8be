"""Put a Markdown section into a pull request's comment for one stack, replacing the one a previous run put.

The preview job's reviewer should read one comment per stack: Pulumi's preview, then the rendered-chart diff
below it. pulumi/actions writes its comment (``#### :tropical_drink: `preview` on <project>/<stack>`` and a
``<summary>Pulumi report</summary>``) and rewrites it on each run; this script then appends the section
between its own markers. When there is no such comment (the preview failed before commenting, or its format
changed) or the two would not fit in one comment, the section goes into a comment of its own, found again by
its marker on the next run.

Usage: python scripts/pr_comment.py --repo OWNER/NAME --pr N --stack STACK --file SECTION.md
    [--project ml-observability]
Environment: GITHUB_TOKEN (pull-requests: write), GITHUB_API_URL (set by GitHub Actions).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

GITHUB_LIMIT = 65_536
START, END = "<!-- chart-diff:start -->", "<!-- chart-diff:end -->"
PULUMI_SUMMARY = "<summary>Pulumi report</summary>"


def pulumi_heading(project: str, stack: str, command: str = "preview") -> str:
    """The first line pulumi/actions gives its comment (src/libs/pr.ts), by which it finds it again."""
    return f"#### :tropical_drink: `{command}` on {project}/{stack}"


def own_marker(stack: str) -> str:
    return f"<!-- chart-diff:{stack} -->"


def with_section(body: str, section: str) -> str:
    """``body`` with the marked section replaced by ``section`` (or appended when it has none)."""
    block = f"{START}\n{section.strip()}\n{END}"
    if START in body and END in body:
        before, _, rest = body.partition(START)
        _, _, after = rest.partition(END)
        return f"{before}{block}{after}"
    return f"{body.rstrip()}\n\n{block}\n"


def plan(comments: Sequence[dict[str, Any]], project: str, stack: str, section: str) -> tuple[int | None, str]:
    """Which comment to write (``None``: a new one) and its whole new body."""
    heading = pulumi_heading(project, stack)
    for comment in comments:
        body = str(comment.get("body") or "")
        if body.startswith(heading) and PULUMI_SUMMARY in body:
            merged = with_section(body, section)
            if len(merged) < GITHUB_LIMIT:
                return int(comment["id"]), merged
            break
    own = f"{own_marker(stack)}\n{section.strip()}\n"
    for comment in comments:
        if str(comment.get("body") or "").startswith(own_marker(stack)):
            return int(comment["id"]), own
    return None, own


class GitHub:
    """The three REST calls this needs, with the token of the workflow run."""

    def __init__(self, api: str, repo: str, token: str) -> None:
        self.base = f"{api.rstrip('/')}/repos/{repo}"
        self.token = token

    def _call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(
            self.base + path,
            method=method,
            data=json.dumps(payload).encode() if payload is not None else None,
            headers={
                "Authorization": f"Bearer {self.token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
                "Content-Type": "application/json",
            },
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def comments(self, pr: int) -> Iterator[dict[str, Any]]:
        page = 1
        while True:
            batch = self._call("GET", f"/issues/{pr}/comments?per_page=100&page={page}")
            yield from batch
            if len(batch) < 100:
                return
            page += 1

    def write(self, pr: int, comment_id: int | None, body: str) -> dict[str, Any]:
        if comment_id is None:
            result: dict[str, Any] = self._call("POST", f"/issues/{pr}/comments", {"body": body})
        else:
            result = self._call("PATCH", f"/issues/comments/{comment_id}", {"body": body})
        return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--repo", required=True, help="owner/name")
    parser.add_argument("--pr", type=int, required=True, help="pull request number")
    parser.add_argument("--stack", required=True, help="the stack-name given to pulumi/actions")
    parser.add_argument("--project", default="ml-observability")
    parser.add_argument("--file", type=Path, required=True, help="the Markdown section")
    args = parser.parse_args(argv)
    token = os.environ.get("GITHUB_TOKEN")
    if not token:
        print("pr_comment: GITHUB_TOKEN is not set", file=sys.stderr)
        return 2
    github = GitHub(os.environ.get("GITHUB_API_URL", "https://api.github.com"), args.repo, token)
    comment_id, body = plan(list(github.comments(args.pr)), args.project, args.stack, args.file.read_text())
    written = github.write(args.pr, comment_id, body)
    print(f"pr_comment: {'updated' if comment_id else 'created'} {written.get('html_url', '')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
