"""tests/promsim.py against the Prometheus it models: the same series, the same instants, the same answers.

The rule tests trust promsim to say when an alert must fire; that trust holds only while promsim computes what
Prometheus computes. Here a few counters are written as OpenMetrics, turned into TSDB blocks by ``promtool tsdb
create-blocks-from openmetrics`` and served by the pinned ``prometheus``; ``increase()``, ``rate()`` and a
``sum`` of ``increase()`` are asked of it as range queries whose steps fall between samples as well as on
them, and every value (and every absence) must equal promsim's. The series are chosen for the branches of
``extrapolatedRate``: counter resets, a gap longer than the extrapolation threshold, a series that starts late,
a counter near zero (extrapolation stopped at its zero point) and one far from it, other sample intervals.
"""

from __future__ import annotations

import math
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pytest
from model_service.serve import free_port

from components.monitors.rule_model import format_duration
from tests.processes import LOOPBACK, ManagedProcess, wait_http_ok
from tests.prometheus_api import PrometheusApi
from tests.promsim import Series, increase, rate, summed_increase
from tests.tools import require_tool

pytestmark = pytest.mark.tools

T0_MS = 1_750_000_000_000
"""Time 0 of every promsim series, as a Unix time in milliseconds (any past instant: the blocks need one)."""
METRIC = "promsim_requests"
"""An OpenMetrics counter family; its samples are ``promsim_requests_total``."""
RELATIVE_TOLERANCE = 1e-12
"""Both compute in float64 in the same order of operations: only the last bits may differ."""


@dataclass(frozen=True)
class Case:
    name: str
    series: Series


def counting(start: float, step: float, count: int) -> list[float | None]:
    return [start + step * i for i in range(count)]


CASES = (
    Case("steady", Series(counting(0, 10, 40), 15_000)),
    # Far from zero: extrapolation to the window's start is never cut at the zero point.
    Case("far-from-zero", Series(counting(1000, 7, 40), 15_000)),
    # Near zero and steep: a window starting before the first sample extrapolates only to the counter's zero.
    Case("near-zero", Series(counting(3, 50, 40), 15_000)),
    # A reset to a value below the last one, then another to zero, with fractional increments.
    Case("resets", Series([*counting(0, 10, 12), *counting(4, 10, 12), *counting(0, 2.5, 16)], 15_000)),
    # A run of missing scrapes longer than 1.1 average intervals: ends of a window in it extrapolate by half one.
    Case("gap", Series([*counting(0, 3, 15), *([None] * 8), *counting(60, 3, 17)], 15_000)),
    # Appears late and disappears early: windows with one sample, none, and the series' two edges.
    Case("late-and-short", Series([*([None] * 12), *counting(20, 4, 10), *([None] * 18)], 15_000)),
    Case("every-10s", Series(counting(5, 1.5, 60), 10_000)),
    Case("every-30s", Series([*counting(0, 30, 10), *counting(2, 30, 10)], 30_000)),
)
RANGES_MS = (60_000, 150_000, 300_000)
STEP_MS = 7_300
"""Range-query step: not a divisor of any sample interval, so instants fall on samples and between them."""


def openmetrics(cases: Sequence[Case]) -> str:
    lines = [f"# TYPE {METRIC} counter"]
    for case in cases:
        for index, value in enumerate(case.series.values):
            if value is not None:
                timestamp = (T0_MS + index * case.series.interval_ms) / 1000
                lines.append(f'{METRIC}_total{{case="{case.name}"}} {value!r} {timestamp:.3f}')
    return "\n".join([*lines, "# EOF", ""])


def end_ms(cases: Sequence[Case]) -> int:
    """Past the last sample of every series by more than the longest range: every window empties again."""
    return max(len(c.series.values) * c.series.interval_ms for c in cases) + max(RANGES_MS) + STEP_MS


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusApi]:
    promtool, server = require_tool("promtool"), require_tool("prometheus")
    folder = tmp_path_factory.mktemp("promsim-prometheus")
    source, data = folder / "series.om.txt", folder / "data"
    source.write_text(openmetrics(CASES))
    created = subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", "--quiet", source, data],
                             capture_output=True, text=True, timeout=120, check=False)
    assert created.returncode == 0, f"promtool could not create blocks:\n{created.stdout}\n{created.stderr}"
    config = folder / "prometheus.yaml"
    config.write_text("global: {}\n")
    port = free_port()
    process = ManagedProcess(
        "prometheus",
        [server, f"--config.file={config}", f"--storage.tsdb.path={data}",
         f"--web.listen-address={LOOPBACK}:{port}", "--log.level=warn"],
        log_dir=folder, ports=[port],
    )
    process.start()
    api = PrometheusApi(f"http://{LOOPBACK}:{port}")
    try:
        wait_http_ok(process, f"http://{LOOPBACK}:{port}/-/ready", timeout=60)
        yield api
    finally:
        api.close()
        process.stop()


def prometheus_values(api: PrometheusApi, expr: str, by_case: bool) -> dict[tuple[str, int], float]:
    """``expr`` at every step from time 0 to the end, by (case, time relative to time 0)."""
    start, end = T0_MS / 1000, (T0_MS + end_ms(CASES)) / 1000
    values: dict[tuple[str, int], float] = {}
    for result in api.query_range(expr, start, end, STEP_MS / 1000):
        case = result["metric"]["case"] if by_case else "sum"
        for timestamp, value in result["values"]:
            values[(case, round(float(timestamp) * 1000) - T0_MS)] = float(value)
    return values


def instants() -> range:
    return range(0, end_ms(CASES) + 1, STEP_MS)


def differences(expected: dict[tuple[str, int], float], got: dict[tuple[str, int], float]) -> list[str]:
    found = []
    for key in sorted(expected.keys() | got.keys()):
        want, have = expected.get(key), got.get(key)
        if want is None or have is None or not math.isclose(want, have, rel_tol=RELATIVE_TOLERANCE, abs_tol=1e-12):
            found.append(f"{key[0]} at {format_duration(key[1]) if key[1] else '0s'}: promsim {want}, "
                         f"prometheus {have}")
    return found


@pytest.mark.parametrize("range_ms", RANGES_MS, ids=format_duration)
def test_increase_and_rate_equal_prometheus(prometheus: PrometheusApi, range_ms: int):
    window = format_duration(range_ms)
    for function, model in (("increase", increase), ("rate", rate)):
        expected = {(case.name, t): value for case in CASES for t in instants()
                    if (value := model(case.series, t, range_ms)) is not None}
        got = prometheus_values(prometheus, f"{function}({METRIC}_total[{window}])", by_case=True)
        assert len(expected) > 100, "the cases give too few values to compare"
        found = differences(expected, got)
        assert not found, f"{function}() over {window}: {len(found)} differences:\n" + "\n".join(found[:40])


@pytest.mark.parametrize("range_ms", RANGES_MS, ids=format_duration)
def test_summed_increase_equals_prometheus(prometheus: PrometheusApi, range_ms: int):
    expected = {("sum", t): value for t in instants()
                if (value := summed_increase([c.series for c in CASES], t, range_ms)) is not None}
    got = prometheus_values(prometheus, f"sum(increase({METRIC}_total[{format_duration(range_ms)}]))", by_case=False)
    found = differences(expected, got)
    assert not found, f"sum(increase()): {len(found)} differences:\n" + "\n".join(found[:40])


def test_the_comparison_has_teeth():
    # A value off in its ninth digit, or present on one side only, is a difference.
    assert differences({("a", 0): 1.0}, {("a", 0): 1.000000001})
    assert differences({("a", 0): 1.0}, {})
    assert differences({}, {("a", 0): 1.0})
    assert not differences({("a", 0): 0.1 + 0.2}, {("a", 0): 0.3})
