"""Each drift window's per-bin counts under the window's role (short or long), for the dashboard's distributions.

The drift rules name their recordings after the logical window (``…:increase1h``), which differs from model to
model; the one dashboard of every model picks a role instead (its ``drift_window`` variable), and reads the copies
recorded here, each labelled with its window. Counts rather than shares are copied: they are what a store that
takes only the recordings receives anyway (``drift_rules.observations_by_bin``), so the distributions can be
drawn from it too, shares being one division away.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from components.monitors.drift_rules import observations_by_bin
from components.monitors.rule_model import WINDOW_LABEL, RecordingRule, RuleGroup, selector

SHORT_WINDOW_ROLE: Final = "short_window"
LONG_WINDOW_ROLE: Final = "long_window"
WINDOW_ROLES: Final = (SHORT_WINDOW_ROLE, LONG_WINDOW_ROLE)
"""The values of the dashboard's window variable: the short drift window's role, then the long one's."""
OBSERVATIONS_BY_BIN_IN: Final = "model_feature_bin:drift_observations:"
"""The per-bin counts of a window by role are this name followed by the role."""


def observations_by_bin_in(role: str) -> str:
    """The per-bin counts of the drift window playing ``role``.

    >>> observations_by_bin_in("short_window")
    'model_feature_bin:drift_observations:short_window'
    """
    if role not in WINDOW_ROLES:
        raise ValueError(f"a drift window is {' or '.join(WINDOW_ROLES)}, not {role!r}")
    return f"{OBSERVATIONS_BY_BIN_IN}{role}"


def distribution_rule_group(
    windows: tuple[str, str], *, name: str, scope: Mapping[str, str], interval: str | None = None
) -> RuleGroup:
    """Copies of the per-bin counts of the short and the long drift window (``windows``), by role, each with its
    logical window as a label."""
    return RuleGroup(
        name=name,
        interval=interval,
        rules=tuple(
            RecordingRule(
                record=observations_by_bin_in(role),
                expr=selector(observations_by_bin(window), **scope),
                labels={WINDOW_LABEL: window},
            )
            for role, window in zip(WINDOW_ROLES, windows, strict=True)
        ),
    )
