"""Object-level diff of a Helm chart rendered with two value sets, as Markdown for a pull request comment.

A ``helm.v3.Release``'s preview shows only its ``values`` changing; what a reviewer needs is which Deployments,
rules and dashboards that change really touches. This renders the chart (``helm template``) with the base's
values and with the head's, keys every object by apiVersion/kind/namespace/name, and reports the objects
added, removed and changed, with a unified diff per changed object.

Two sources of values:

* ``values``: two values files and a chart folder, for any chart;
* ``program``: two checkouts of this project (base and head of a pull request) and a stack. Each checkout's
  program runs under its own Pulumi mocks (``tests/harness.py``, in a child Python so the two never share
  state), and every ``kubernetes:helm.sh/v3:Release`` it declares gives the chart reference, release name,
  namespace and values, exactly as the program passes them to the engine.

What the output never shows: the values of Secrets (each becomes a marker that is equal on both sides only
when the value is), and fields that differ between two renders of the same values (the chart's random
passwords and the checksums derived from them), which are noise, not change.

Usage:
    python scripts/chart_diff.py values --chart DIR --base-values A.yaml --head-values B.yaml [--release NAME]
        [--namespace NS] [--kube-version 1.34.0] [--output FILE]
    python scripts/chart_diff.py program --base-root DIR --head-root DIR --stack local
        [--charts-dir DIR ...] [--pull-into DIR] [--output FILE]
Exit status: 0 with or without differences, 2 when a chart cannot be rendered or a program cannot be run.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
RELEASE_TYPE = "kubernetes:helm.sh/v3:Release"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # the Pulumi SDK's marker of a value not known until apply
UNSTABLE = "<differs on every render>"
DEFAULT_KUBE_VERSION = "1.34.0"
COMMENT_LIMIT = 60_000  # GitHub refuses comments over 65,536 characters; leave room for the heading

ObjectKey = tuple[str, str, str, str]
"""(apiVersion, kind, namespace, name): what identifies an object in a cluster."""


class ChartDiffError(Exception):
    """A chart that cannot be found or rendered, or a program that cannot be run: the diff cannot be trusted."""


# -------------------------------------------------------------------------------------------------------------
# what to render
# -------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChartSource:
    """A chart as a Release names it: a folder, or a name and version in a repository or OCI registry."""

    chart: str
    version: str | None = None
    repo: str | None = None

    @property
    def name(self) -> str:
        return self.chart.rstrip("/").rsplit("/", 1)[-1]

    def label(self) -> str:
        return f"{self.name} {self.version}" if self.version else self.name


@dataclass(frozen=True)
class ReleaseSpec:
    """One Helm release: everything ``helm template`` needs besides the chart's files."""

    source: ChartSource
    release: str
    namespace: str
    values: Mapping[str, Any]
    kube_version: str = DEFAULT_KUBE_VERSION


@dataclass
class ObjectChange:
    """One object whose rendering differs between base and head."""

    key: ObjectKey
    change: str  # "added", "removed" or "changed"
    diff: str = ""


@dataclass
class ReleaseDiff:
    """The object-level difference of one release between base and head."""

    title: str
    base_count: int
    head_count: int
    changes: list[ObjectChange] = field(default_factory=list)
    note: str = ""

    def keys(self, change: str) -> set[ObjectKey]:
        return {c.key for c in self.changes if c.change == change}


# -------------------------------------------------------------------------------------------------------------
# rendering
# -------------------------------------------------------------------------------------------------------------


def find_helm() -> str:
    """The helm to run: ``$HELM``, else the pinned build of scripts/install-tools.sh, else ``helm`` on PATH.

    The pinned build comes first so that the diff renders with the same helm the tests use.
    """
    explicit = os.environ.get("HELM")
    if explicit:
        return explicit
    versions = _tool_versions()
    tools = Path(os.environ.get("ML_OBS_TOOLS_DIR", Path.home() / ".cache" / "ml-observability" / "tools"))
    pinned = tools / f"helm-{versions.get('HELM_VERSION', '')}" / "bin" / "helm"
    if pinned.is_file() and os.access(pinned, os.X_OK):
        return str(pinned)
    found = shutil.which("helm")
    if found is None:
        raise ChartDiffError("helm not found: set HELM, run scripts/install-tools.sh helm, or put helm on PATH")
    return found


def _tool_versions() -> dict[str, str]:
    path = ROOT / "scripts" / "tool-versions.env"
    if not path.is_file():
        return {}
    pairs = (line.partition("=") for line in path.read_text().splitlines() if line.strip() and line[0] != "#")
    return {key.strip(): value.strip() for key, _, value in pairs}


def render(helm: str, chart_dir: Path, spec: ReleaseSpec) -> list[dict[str, Any]]:
    """The chart's objects as ``helm template`` renders them for this release (hooks included, tests not).

    ``--kube-version`` is explicit because a helm built from source believes it talks to Kubernetes 1.20, and
    charts gate objects on the version.
    """
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as values_file:
        yaml.safe_dump(dict(spec.values), values_file)
    try:
        command = [
            helm, "template", spec.release, str(chart_dir),
            "--namespace", spec.namespace,
            "--kube-version", spec.kube_version,
            "--skip-tests",
            "--values", values_file.name,
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    finally:
        os.unlink(values_file.name)
    if result.returncode != 0:
        raise ChartDiffError(f"helm template {spec.source.label()} failed: {result.stderr.strip()}")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # ten times faster on a chart of this size
    return [doc for doc in yaml.load_all(result.stdout, Loader=loader) if isinstance(doc, dict)]


def index_objects(documents: Iterable[Mapping[str, Any]]) -> dict[ObjectKey, dict[str, Any]]:
    """Objects by apiVersion/kind/namespace/name; a key seen twice keeps both, the second as ``name#2``."""
    objects: dict[ObjectKey, dict[str, Any]] = {}
    for document in documents:
        metadata = document.get("metadata") or {}
        key: ObjectKey = (
            str(document.get("apiVersion", "")),
            str(document.get("kind", "")),
            str(metadata.get("namespace") or ""),
            str(metadata.get("name", "")),
        )
        unique, count = key, 1
        while unique in objects:
            count += 1
            unique = (*key[:3], f"{key[3]}#{count}")
        objects[unique] = dict(document)
    return objects


class Redactor:
    """Replaces Secret values by markers equal only for equal values, meaningless outside this run.

    A keyed hash (a fresh key per run) rather than a plain one: a plain hash of a short password can be
    reversed by guessing, and this output goes into a pull request comment.
    """

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)

    def marker(self, value: Any) -> str:
        digest = hmac.new(self._key, json.dumps(value, sort_keys=True).encode(), hashlib.sha256).hexdigest()
        return f"<redacted {digest[:10]}>"

    def redact(self, obj: dict[str, Any]) -> dict[str, Any]:
        if obj.get("kind") != "Secret" or str(obj.get("apiVersion")) != "v1":
            return obj
        redacted = dict(obj)
        for field_name in ("data", "stringData"):
            data = obj.get(field_name)
            if isinstance(data, Mapping):
                redacted[field_name] = {key: self.marker(value) for key, value in data.items()}
        return redacted


def differing_paths(first: Any, second: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Paths at which two renderings of one object differ (the deepest ones)."""
    if isinstance(first, Mapping) and isinstance(second, Mapping):
        for key in set(first) | set(second):
            if key not in first or key not in second:
                yield (*path, key)
            else:
                yield from differing_paths(first[key], second[key], (*path, key))
    elif isinstance(first, list) and isinstance(second, list) and len(first) == len(second):
        for index, (a, b) in enumerate(zip(first, second, strict=True)):
            yield from differing_paths(a, b, (*path, index))
    elif first != second:
        yield path


def _mask(value: Any, path: tuple[Any, ...]) -> Any:
    """``value`` with the field at ``path`` replaced by the marker of unstable fields (a copy)."""
    if not path:
        return UNSTABLE
    head, rest = path[0], path[1:]
    if isinstance(value, Mapping) and head in value:
        return {k: (_mask(v, rest) if k == head else v) for k, v in value.items()}
    if isinstance(value, list) and isinstance(head, int) and head < len(value):
        return [(_mask(v, rest) if i == head else v) for i, v in enumerate(value)]
    return value


_RENDERED: dict[str, tuple[dict[ObjectKey, Any], set[Any]]] = {}


def stable_objects(helm: str, chart_dir: Path, spec: ReleaseSpec) -> tuple[dict[ObjectKey, Any], set[Any]]:
    """Render twice; return the objects and the (key, path) pairs that differ between the two renders.

    Kept per process: the same chart and values render the same objects, up to the fields found unstable.
    """
    cache_key = json.dumps(
        [helm, str(chart_dir.resolve()), spec.release, spec.namespace, spec.kube_version, spec.values],
        sort_keys=True, default=str,
    )
    if cache_key not in _RENDERED:
        with ThreadPoolExecutor(max_workers=2) as pool:
            first, second = pool.map(lambda _: index_objects(render(helm, chart_dir, spec)), range(2))
        unstable = {
            (key, path)
            for key in set(first) & set(second)
            for path in differing_paths(first[key], second[key])
        }
        _RENDERED[cache_key] = (first, unstable)
    return _RENDERED[cache_key]


def yaml_text(obj: Any) -> str:
    return yaml.safe_dump(obj, sort_keys=True, default_flow_style=False, width=120)


def diff_objects(
    base: Mapping[ObjectKey, Any],
    head: Mapping[ObjectKey, Any],
    unstable: set[Any] | None = None,
    redactor: Redactor | None = None,
    title: str = "",
) -> ReleaseDiff:
    """Compare two indexed renderings; fields known to change on every render are masked on both sides."""
    redactor = redactor or Redactor()
    unstable = unstable or set()
    result = ReleaseDiff(title=title, base_count=len(base), head_count=len(head))
    for key in sorted(set(base) | set(head)):
        if key not in base:
            result.changes.append(ObjectChange(key, "added"))
        elif key not in head:
            result.changes.append(ObjectChange(key, "removed"))
        else:
            old, new = redactor.redact(base[key]), redactor.redact(head[key])
            for unstable_key, path in unstable:
                if unstable_key == key:
                    old, new = _mask(old, path), _mask(new, path)
            if old != new:
                name = "/".join(part for part in key[2:] if part)
                lines = difflib.unified_diff(
                    yaml_text(old).splitlines(), yaml_text(new).splitlines(),
                    f"base/{key[1]}/{name}", f"head/{key[1]}/{name}", lineterm="", n=3,
                )
                result.changes.append(ObjectChange(key, "changed", "\n".join(lines)))
    return result


def diff_release(helm: str, base: ReleaseSpec | None, head: ReleaseSpec | None,
                 base_chart: Path | None, head_chart: Path | None, title: str) -> ReleaseDiff:
    """Render a release on both sides (either may be absent: the release is new or gone) and compare."""
    base_objects: dict[ObjectKey, Any] = {}
    head_objects: dict[ObjectKey, Any] = {}
    unstable: set[Any] = set()
    if base is not None and base_chart is not None:
        base_objects, base_unstable = stable_objects(helm, base_chart, base)
        unstable |= base_unstable
    if head is not None and head_chart is not None:
        head_objects, head_unstable = stable_objects(helm, head_chart, head)
        unstable |= head_unstable
    return diff_objects(base_objects, head_objects, unstable, Redactor(), title)


# -------------------------------------------------------------------------------------------------------------
# Markdown
# -------------------------------------------------------------------------------------------------------------


def _object_label(key: ObjectKey) -> str:
    api_version, kind, namespace, name = key
    return f"{kind} `{namespace + '/' if namespace else ''}{name}` ({api_version})"


def to_markdown(diffs: Sequence[ReleaseDiff], heading: str, limit: int = COMMENT_LIMIT) -> str:
    """A comment a reviewer reads top-down: a count, a table of objects, then the diffs (folded)."""
    lines = [f"## {heading}", ""]
    if not diffs:
        lines.append("No Helm release on either side.")
    details: list[str] = []
    for diff in diffs:
        counts = {kind: len(diff.keys(kind)) for kind in ("changed", "added", "removed")}
        lines.append(f"### {diff.title}")
        if diff.note:
            lines += ["", diff.note]
        lines.append("")
        if not diff.changes:
            if diff.head_count:
                lines += [f"No rendered object changes ({diff.head_count} objects).", ""]
            continue
        lines.append(
            f"**{counts['changed']} changed, {counts['added']} added, {counts['removed']} removed** "
            f"(base {diff.base_count} objects, head {diff.head_count})."
        )
        lines += ["", "| change | object |", "| --- | --- |"]
        lines += [f"| {change.change} | {_object_label(change.key)} |" for change in diff.changes]
        lines.append("")
        for change in diff.changes:
            if change.change == "changed":
                details.append(
                    f"<details><summary>{diff.title}: {_object_label(change.key)}</summary>\n\n"
                    f"```diff\n{change.diff}\n```\n\n</details>\n"
                )
    text = "\n".join(lines)
    omitted = 0
    for block in details:
        if len(text) + len(block) + 200 > limit:
            omitted += 1
            continue
        text += "\n" + block
    if omitted:
        text += f"\n_{omitted} object diffs left out to fit the comment; the job's log has them all._\n"
    return text


def full_text(diffs: Sequence[ReleaseDiff]) -> str:
    """Every diff, unabridged, for a log."""
    return "\n".join(change.diff for diff in diffs for change in diff.changes if change.diff)


# -------------------------------------------------------------------------------------------------------------
# values from the program
# -------------------------------------------------------------------------------------------------------------

_CHILD = r"""
import json, sys
from pathlib import Path
root, stack = Path(sys.argv[1]), sys.argv[2]
sys.path.insert(0, str(root))
for name in [m for m in sys.modules if m == "components" or m.startswith(("components.", "tests."))]:
    del sys.modules[name]
from tests.harness import run_program
run = run_program(root / "stacks" / f"Pulumi.{stack}.yaml")
releases = [
    {"name": r.name, "inputs": r.inputs}
    for r in run.resources if r.typ == sys.argv[3]
]
print(json.dumps({"releases": releases, "outputs": run.outputs}, default=str))
"""


def program_releases(root: Path, stack: str) -> dict[str, ReleaseSpec]:
    """The Helm releases the program at ``root`` declares for ``stack``, by Pulumi resource name.

    A stack that does not exist at ``root`` (a stack added by the pull request) declares none.
    """
    if not (root / "stacks" / f"Pulumi.{stack}.yaml").is_file():
        return {}
    # The checkout's own service contract too (the program imports it), not the one installed in the environment.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join((str(root), str(root / "model-service"))))
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, str(root), stack, RELEASE_TYPE],
        capture_output=True, text=True, cwd=root, env=env, check=False,
    )
    if result.returncode != 0:
        raise ChartDiffError(f"the program at {root} failed under mocks for stack {stack}:\n{result.stderr[-4000:]}")
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    kube_version = _kube_version(payload.get("outputs", {}).get("kubernetesVersion"))
    return {item["name"]: release_spec(item["name"], item["inputs"], kube_version) for item in payload["releases"]}


def _kube_version(value: Any) -> str:
    """A full ``x.y.z`` for helm's ``--kube-version`` from what the program exports (``1.34`` or ``1.34.0``)."""
    if not isinstance(value, str) or not re.match(r"^v?1\.[0-9]+", value):
        return DEFAULT_KUBE_VERSION
    parts = value.lstrip("v").split(".")
    return ".".join([*parts, "0"][:3])


def release_spec(resource_name: str, inputs: Mapping[str, Any], kube_version: str) -> ReleaseSpec:
    """A ``ReleaseSpec`` from a Release's recorded (camelCase) inputs."""
    repository = inputs.get("repositoryOpts") or {}
    return ReleaseSpec(
        source=ChartSource(
            chart=str(inputs.get("chart", "")),
            version=str(inputs["version"]) if inputs.get("version") else None,
            repo=str(repository["repo"]) if repository.get("repo") else None,
        ),
        release=str(inputs.get("name") or resource_name),
        namespace=str(inputs.get("namespace") or "default"),
        values=plain_values(inputs.get("values") or {}),
        kube_version=kube_version,
    )


def plain_values(value: Any) -> Any:
    """Values as helm should see them: secrets and unknowns become placeholders, whole floats integers.

    The engine carries every number as a float, and a secret's value must not reach a rendered diff.
    """
    if isinstance(value, Mapping):
        if set(value) == {"secret"}:
            return "(secret)"
        return {key: plain_values(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain_values(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if value == UNKNOWN:
        return "(known after apply)"
    return value


# -------------------------------------------------------------------------------------------------------------
# finding charts
# -------------------------------------------------------------------------------------------------------------


@dataclass
class ChartLocator:
    """Where a release's chart is read from: a local folder, a folder of unpacked charts, or ``helm pull``."""

    helm: str
    search: Sequence[Path] = ()
    pull_into: Path | None = None

    def locate(self, source: ChartSource, root: Path) -> Path:
        if source.chart.startswith((".", "/")):
            return (root / source.chart).resolve()
        for folder in self.search:
            found = _find_unpacked(folder, source)
            if found is not None:
                return found
        if self.pull_into is None:
            raise ChartDiffError(
                f"chart {source.label()} not found under {', '.join(map(str, self.search)) or 'no folder'}; "
                "pass --charts-dir with an unpacked copy or --pull-into to download it"
            )
        return self._pull(source)

    def _pull(self, source: ChartSource) -> Path:
        assert self.pull_into is not None
        destination = self.pull_into / f"{source.name}-{source.version or 'latest'}"
        if (destination / source.name / "Chart.yaml").is_file():
            return destination / source.name
        command = [self.helm, "pull", source.chart, "--untar", "--untardir", str(destination)]
        if source.repo and not source.chart.startswith("oci://"):
            command += ["--repo", source.repo]
        if source.version:
            command += ["--version", source.version]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ChartDiffError(f"helm pull {source.label()} failed: {result.stderr.strip()}")
        return destination / source.name


def _find_unpacked(folder: Path, source: ChartSource) -> Path | None:
    """An unpacked chart of that name and version under ``folder`` (not inside another chart's ``charts/``)."""
    for chart_file in sorted(folder.glob("Chart.yaml")) + sorted(folder.glob("*/Chart.yaml")) + sorted(
        folder.glob("*/*/Chart.yaml")
    ):
        metadata = yaml.safe_load(chart_file.read_text()) or {}
        if metadata.get("name") == source.name and (
            source.version is None or str(metadata.get("version")) == source.version.lstrip("v")
        ):
            return chart_file.parent
    return None


def diff_programs(base_root: Path, head_root: Path, stack: str, locator: ChartLocator,
                  only: Iterable[str] = ()) -> list[ReleaseDiff]:
    """The rendered-chart diff of every Helm release the two checkouts declare for ``stack`` (or those named)."""
    base = program_releases(base_root, stack)
    head = program_releases(head_root, stack)
    wanted = set(only)
    diffs = []
    for name in sorted(set(base) | set(head)):
        if wanted and name not in wanted:
            continue
        old, new = base.get(name), head.get(name)
        shown = new or old
        assert shown is not None
        title = f"`{name}`: {shown.source.label()}, release `{shown.release}` in `{shown.namespace}`"
        note = ""
        if old is not None and new is not None and old.source != new.source:
            title = f"`{name}`: {old.source.label()} → {new.source.label()}, release `{new.release}`"
        if old is None:
            note = "New release: every object is added."
        elif new is None:
            note = "Release removed: every object is deleted."
        elif old == new:
            # Same chart, release, namespace, values and Kubernetes version: the same objects, without a render
            # (nor a download of a chart nobody changed).
            diffs.append(ReleaseDiff(title, 0, 0, note="Chart, values and release unchanged."))
            continue
        diff = diff_release(
            locator.helm,
            old,
            new,
            locator.locate(old.source, base_root) if old else None,
            locator.locate(new.source, head_root) if new else None,
            title,
        )
        diff.note = note
        diffs.append(diff)
    return diffs


# -------------------------------------------------------------------------------------------------------------
# command line
# -------------------------------------------------------------------------------------------------------------


def _load_values(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text()) if path.is_file() else None
    if path.is_file() and loaded is not None and not isinstance(loaded, dict):
        raise ChartDiffError(f"{path} is not a YAML mapping")
    return loaded or {}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)

    by_values = commands.add_parser("values", help="compare two values files for one chart folder")
    by_values.add_argument("--chart", type=Path, required=True, help="unpacked chart folder")
    by_values.add_argument("--base-values", type=Path, required=True, help="values of the base (may be absent)")
    by_values.add_argument("--head-values", type=Path, required=True, help="values of the head")
    by_values.add_argument("--release", default="release", help="release name (object names derive from it)")
    by_values.add_argument("--namespace", default="default")
    by_values.add_argument("--kube-version", default=DEFAULT_KUBE_VERSION)

    by_program = commands.add_parser("program", help="compare the Helm releases two checkouts declare")
    by_program.add_argument("--base-root", type=Path, required=True, help="checkout of the base branch")
    by_program.add_argument("--head-root", type=Path, default=ROOT, help="checkout of the head (default: this one)")
    by_program.add_argument("--stack", required=True, help="stack name (stacks/Pulumi.<stack>.yaml)")
    by_program.add_argument("--charts-dir", type=Path, action="append", default=[],
                            help="folder of unpacked charts to look in first (repeatable)")
    by_program.add_argument("--pull-into", type=Path, help="helm pull charts not found locally into this folder")
    by_program.add_argument("--only", action="append", default=[], metavar="RESOURCE",
                            help="only the Release of this Pulumi resource name (repeatable)")

    for sub in (by_values, by_program):
        sub.add_argument("--output", type=Path, help="write the Markdown here instead of standard output")
        sub.add_argument("--heading", default="Rendered chart diff", help="the Markdown's first heading")
    args = parser.parse_args(argv)

    try:
        helm = find_helm()
        if args.command == "values":
            spec = {
                "source": ChartSource(chart=str(args.chart)),
                "release": args.release,
                "namespace": args.namespace,
                "kube_version": args.kube_version,
            }
            base = ReleaseSpec(values=_load_values(args.base_values), **spec)
            head = ReleaseSpec(values=_load_values(args.head_values), **spec)
            title = f"{args.chart.name}, release `{args.release}` in `{args.namespace}`"
            diffs = [diff_release(helm, base, head, args.chart, args.chart, title)]
        else:
            locator = ChartLocator(helm, args.charts_dir, args.pull_into)
            diffs = diff_programs(args.base_root.resolve(), args.head_root.resolve(), args.stack, locator, args.only)
    except ChartDiffError as error:
        print(f"chart_diff: {error}", file=sys.stderr)
        return 2
    markdown = to_markdown(diffs, args.heading)
    if args.output:
        args.output.write_text(markdown)
        print(full_text(diffs))
    else:
        print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
