"""Prometheus 3's ``increase()`` and ``rate()`` on float counters, in Python, to predict when an alert must fire.

The rule tests run the real ``promtool``; this module only computes what they expect, independently of the
rules under test. It follows ``extrapolatedRate`` of prometheus/promql/functions.go (v0.314.0, Prometheus
3.14): the range is left-open, ``(t - range, t]``; the raw increase is corrected for counter resets; it is
extrapolated to the range's ends when the first or last sample lies within 1.1 average sample intervals of
them (else by half an interval), and never to before the counter's zero point. Start timestamps (created
timestamps) are not modelled: the test inputs carry none.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property
from itertools import pairwise


@dataclass(frozen=True)
class Series:
    """A series sampled every ``interval_ms`` from time 0; ``None`` is a missing sample."""

    values: Sequence[float | None]
    interval_ms: int

    @cached_property
    def _present(self) -> tuple[list[int], list[float], list[float]]:
        """Indices and values of the samples present, and the running sum of counter-reset corrections."""
        indices = [i for i, v in enumerate(self.values) if v is not None]
        values = [float(self.values[i]) for i in indices]  # type: ignore[arg-type]
        corrections = [0.0]
        for previous, current in pairwise(values):
            corrections.append(corrections[-1] + (previous if current < previous else 0.0))
        return indices, values, corrections

    def window(self, t_ms: int, range_ms: int) -> tuple[int, int] | None:
        """Positions (among present samples) of the first and last sample with ``t - range < ts <= t``."""
        indices, _, _ = self._present
        first = bisect_right(indices, (t_ms - range_ms) // self.interval_ms)
        last = bisect_right(indices, t_ms // self.interval_ms) - 1
        return (first, last) if first <= last else None


def increase(series: Series, t_ms: int, range_ms: int) -> float | None:
    """``increase(series[range])`` evaluated at ``t``; None where Prometheus returns nothing."""
    window = series.window(t_ms, range_ms)
    if window is None or window[0] == window[1]:
        return None
    indices, values, corrections = series._present
    first, last = window
    first_t, first_v = indices[first] * series.interval_ms, values[first]
    last_t, last_v = indices[last] * series.interval_ms, values[last]
    result = last_v - first_v + corrections[last] - corrections[first]
    duration_to_start = (first_t - (t_ms - range_ms)) / 1000
    duration_to_end = (t_ms - last_t) / 1000
    sampled = (last_t - first_t) / 1000
    average = sampled / (last - first)
    threshold = average * 1.1
    if duration_to_start >= threshold:
        duration_to_start = average / 2
    duration_to_zero = duration_to_start
    if result > 0 and first_v >= 0:
        duration_to_zero = sampled * (first_v / result)
    duration_to_start = min(duration_to_start, duration_to_zero)
    if duration_to_end >= threshold:
        duration_to_end = average / 2
    factor = (sampled + duration_to_start + duration_to_end) / sampled if sampled else 1.0
    return result * factor


def rate(series: Series, t_ms: int, range_ms: int) -> float | None:
    """``rate(series[range])`` at ``t``: the extrapolated increase per second of the range, as Prometheus divides it."""
    value = increase(series, t_ms, range_ms)
    return None if value is None else value / (range_ms / 1000)


def summed_increase(series: Sequence[Series], t_ms: int, range_ms: int) -> float | None:
    """``sum(increase(...))`` over several series; None when none of them has a value."""
    values = [v for v in (increase(s, t_ms, range_ms) for s in series) if v is not None]
    return sum(values) if values else None


def go_g(value: float) -> str:
    """A float as Go's text/template prints ``{{ $value }}``: ``%v``, the shortest digits, in exponent form
    when the exponent is below -4 or at least 6 (strconv's rule for the shortest ``g``)."""
    if value == 0:
        return "0"
    sign, digits, exponent = Decimal(repr(float(value))).normalize().as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits))
    point = len(digits) + exponent  # position of the decimal point in ``text``
    if point - 1 < -4 or point - 1 >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        body = f"{mantissa}e{'-' if point - 1 < 0 else '+'}{abs(point - 1):02d}"
    elif point <= 0:
        body = "0." + "0" * -point + text
    elif point >= len(text):
        body = text + "0" * (point - len(text))
    else:
        body = text[:point] + "." + text[point:]
    return ("-" if sign else "") + body


def humanize_percentage(value: float) -> str:
    """Prometheus' ``humanizePercentage`` template function: ``fmt.Sprintf("%.4g%%", v*100)``."""
    return f"{value * 100:.4g}%"
