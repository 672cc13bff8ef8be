"""Which requests get an injected fault: an exact share of them, spread evenly, never a random draw.

A random choice makes the error ratio of every SLO window a binomial draw: a window of a few hundred
requests then lands on either side of a burn-rate threshold by chance, and an alert set between two
thresholds fires or not from one run to the next. Spread evenly, every run of ``n`` consecutive requests
holds the configured share of ``n`` to within one request, so the ratio any window sees is the one
configured.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Final

MAX_DENOMINATOR: Final = 10_000
"""Ratios are kept to four decimal places (0.0225 exactly, 1/3 as 3333/10000): finer than any SLO budget."""


class EvenSpread:
    """Says for each request in turn whether it is one of the chosen ``ratio`` of all requests.

    Integer credit, not float: 0.1 added ten times is less than 1 in floating point, which would choose the
    eleventh request instead of the tenth and drift further with every round.
    """

    def __init__(self, ratio: float) -> None:
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"ratio must be between 0 and 1, got {ratio}")
        share = Fraction(ratio).limit_denominator(MAX_DENOMINATOR)
        self._numerator, self._denominator = share.numerator, share.denominator
        self._credit = 0

    def chosen(self) -> bool:
        """Whether the next request is one of the chosen."""
        self._credit += self._numerator
        if self._credit >= self._denominator:
            self._credit -= self._denominator
            return True
        return False
