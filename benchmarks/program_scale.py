"""How long the program takes to evaluate, and how much memory, per stack, under Pulumi mocks.

Each measurement runs in a fresh Python process, so that peak memory (the child's maximum resident set) is the
program's own and imports are paid every time, as they are on every `pulumi preview`. Prints the median and
the range over the repetitions, and each stack's time as a ratio to the fastest one.

    .venv/bin/python benchmarks/program_scale.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
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
run = run_program(Path({stack_file!r}))
elapsed = time.perf_counter() - start
peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"seconds": elapsed, "peak_mib": peak_kib / 1024, "resources": len(run.resources)}}))
"""


def measure(stack_file: Path) -> dict[str, float]:
    """One evaluation of the program with ``stack_file``'s config, in a child process."""
    completed = subprocess.run(
        [sys.executable, "-c", _CHILD.format(root=str(ROOT), stack_file=str(stack_file))],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    result: dict[str, float] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="evaluations per stack (default 3)")
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


if __name__ == "__main__":
    main()
