"""How long the program takes to evaluate, and how much memory, under Pulumi mocks.

Two tables: the real program per stack file, and the real program on the local stack with 1, 10, 50 and 200
models declared in its ``models`` section (a third of them external, the rest deployed with the sample image, in
four namespaces, with two teams; target: linear growth, under 10 s at 200). Each measurement runs in a fresh
Python process, so that peak memory (the child's maximum resident set) is the program's own and imports are paid
every time, as they are on every ``pulumi preview``. Prints medians with the range over the repetitions, and
ratios: each stack to the fastest, and the cost of an added model between model counts (constant when growth is
linear).

    .venv/bin/python benchmarks/program_scale.py [--repeat 3] [--models 1 10 50 200]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_CHILD = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
start = time.perf_counter()
from tests.harness import run_program
from pathlib import Path
run = run_program(Path({stack_file!r}), overrides=json.loads({overrides!r}), record_inputs=False)
elapsed = time.perf_counter() - start
peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"seconds": elapsed, "peak_mib": peak_kib / 1024, "resources": len(run.resources)}}))
"""


TEAMS = ("fraud", "growth")


def fleet(count: int) -> dict[str, object]:
    """``count`` models as a platform would declare them: every third external, the others deployed from the
    sample image into one of four namespaces, alternately owned by two teams."""
    models: dict[str, object] = {}
    for index in range(count):
        name = f"model-{index:03d}"
        team = TEAMS[index % len(TEAMS)]
        if index % 3 == 2:
            models[name] = {"team": team, "external": {
                "namespace": f"team-{team}", "selector": {"app.kubernetes.io/name": name}, "port": "http-metrics"}}
        else:
            models[name] = {"team": team, "namespace": f"models-{index % 4}"}
    return {"models": models, "alerting": {"teams": {team: {} for team in TEAMS}}}


_FLOOR = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
start = time.perf_counter()
import pulumi_kubernetes as k8s
from tests.harness import run_function
def program():
    for index in range({count}):
        k8s.core.v1.ConfigMap(f"floor-{{index}}", metadata={{"name": f"floor-{{index}}"}}, data={{"k": "v"}})
run = run_function(program)
print(json.dumps({{"seconds": time.perf_counter() - start, "resources": len(run.resources)}}))
"""


def sdk_floor(count: int) -> float:
    """Seconds the SDK and its mocks take to register ``count`` trivial resources in a fresh process: the floor
    under any program that declares that many, whatever it computes."""
    completed = subprocess.run([sys.executable, "-c", _FLOOR.format(root=str(ROOT), count=count)],
                               capture_output=True, text=True, check=True, cwd=ROOT)
    return float(json.loads(completed.stdout.strip().splitlines()[-1])["seconds"])


def measure(stack_file: Path, overrides: dict[str, object] | None = None) -> dict[str, float]:
    """One evaluation of the program with ``stack_file``'s config (top-level keys replaced), in a child process."""
    completed = subprocess.run(
        [sys.executable, "-c", _CHILD.format(root=str(ROOT), stack_file=str(stack_file),
                                             overrides=json.dumps(overrides or {}))],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env=dict(os.environ),
    )
    result: dict[str, float] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="evaluations per stack (default 3)")
    parser.add_argument("--models", type=int, nargs="+", default=[1, 10, 50, 200],
                        help="model counts (default 1 10 50 200)")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    from tests.harness import stack_files, stack_name

    rows = []
    for stack_file in stack_files():
        samples = [measure(stack_file) for _ in range(args.repeat)]
        seconds = [s["seconds"] for s in samples]
        peaks = [s["peak_mib"] for s in samples]
        rows.append((stack_name(stack_file), int(samples[0]["resources"]), seconds, peaks))

    fastest = min(statistics.median(r[2]) for r in rows)
    print(f"program evaluation under mocks, {args.repeat} runs per stack, fresh process each (imports included)")
    print(f"{'stack':<10} {'resources':>9} {'wall s (median, min-max)':>26} {'x fastest':>9} {'peak MiB (median)':>18}")
    for name, resources, seconds, peaks in rows:
        median = statistics.median(seconds)
        print(
            f"{name:<10} {resources:>9} {median:>10.2f} ({min(seconds):.2f}-{max(seconds):.2f}){'':>6}"
            f" {median / fastest:>8.2f}x {statistics.median(peaks):>18.1f}"
        )

    local = ROOT / "stacks" / "Pulumi.local.yaml"
    print()
    print(f"local stack with N models in its config (2/3 deployed, 1/3 external, two teams), {args.repeat} runs each")
    print(
        f"{'models':>6} {'resources':>9} {'wall s (median, min-max)':>26} {'s per added model':>18}"
        f" {'peak MiB':>9}"
    )
    previous: tuple[int, float] | None = None
    marginal: list[float] = []
    for count in args.models:
        samples = [measure(local, fleet(count)) for _ in range(args.repeat)]
        seconds = [s["seconds"] for s in samples]
        median = statistics.median(seconds)
        added = ""
        if previous is not None:
            marginal.append((median - previous[1]) / (count - previous[0]))
            added = f"{marginal[-1]:.3f}"
        previous = (count, median)
        print(
            f"{count:>6} {int(samples[0]['resources']):>9} {median:>10.2f} ({min(seconds):.2f}-{max(seconds):.2f})"
            f"{'':>6} {added:>18} {statistics.median([s['peak_mib'] for s in samples]):>9.1f}"
        )
    if len(marginal) > 1:
        print(f"linearity: cost of an added model, last step / first step = {marginal[-1] / marginal[0]:.2f}x")
    if previous is not None:
        resources = int(samples[0]["resources"])
        floor = statistics.median(sdk_floor(resources) for _ in range(args.repeat))
        print(f"SDK floor: {resources} trivial resources register in {floor:.2f} s under the same mocks; the "
              f"{previous[0]}-model program takes {previous[1] / floor:.2f}x that")


if __name__ == "__main__":
    main()
