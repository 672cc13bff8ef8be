"""Where an alert's runbook lives: one Markdown page per alert, named after it, in this repository's ``runbooks/``,
served by the stack's own Grafana unless the platform publishes them elsewhere.

An alert is read in Grafana, in Alertmanager, or in a receiver that links back: a runbook URL must open from there
on every stack, including a new local one. So the pages are a dashboard of the stack's Grafana (``ML model
runbooks``, one text panel per alert, the page's Markdown verbatim), and each alert's ``runbook_url`` opens its
panel; ``alerting.runbookBaseUrl`` points the links at a copy published elsewhere instead (a wiki, the platform's
repository), which a stack whose notifications leave the cluster without a Grafana reachable from outside must
set. Every URL is built by :class:`RunbookLinks` alone, and a test checks that each opens its alert's page.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlencode

from grafana_foundation_sdk.builders import dashboard, text
from grafana_foundation_sdk.models.dashboard import GridPos
from grafana_foundation_sdk.models.text import TextMode

from components.monitors.dashboard_ids import dashboard_uid, slug

RUNBOOK_DIR: Final = Path(__file__).resolve().parents[2] / "runbooks"
"""The repository folder that holds one ``<AlertName>.md`` per alert."""

RUNBOOK_SECTIONS: Final = ("Meaning", "Impact", "Diagnosis", "Mitigation")
"""The sections every runbook page has, in this order (the prometheus-operator runbooks' layout)."""

RUNBOOKS_DASHBOARD_TITLE: Final = "ML model runbooks"
LOCAL_GRAFANA_URL: Final = "http://localhost:3000"
"""Where Grafana opens on kind (its host port) and behind the README's port-forward elsewhere."""
PANEL_HEIGHT: Final = 24


def runbook_path(alert: str) -> Path:
    """The page of ``alert`` in this repository."""
    return RUNBOOK_DIR / f"{alert}.md"


@functools.cache
def runbook_alerts() -> tuple[str, ...]:
    """Every alert that has a page, in the runbook dashboard's order (its panel ids are their positions + 1).

    Read once: every alert of every model asks for its link, and the folder does not change during a run."""
    return tuple(sorted(path.stem for path in RUNBOOK_DIR.glob("*.md")))


def runbooks_dashboard(title: str = RUNBOOKS_DASHBOARD_TITLE) -> dashboard.Dashboard:
    """One Markdown text panel per runbook page, full width, in alert order."""
    board = (
        dashboard.Dashboard(title)
        .uid(dashboard_uid(title))
        .tags(["ml-observability", "runbooks"])
        .editable()
    )
    for index, alert in enumerate(runbook_alerts()):
        board = board.with_panel(
            text.Panel()
            .id(index + 1)
            .title(alert)
            .mode(TextMode.MARKDOWN)
            .content(runbook_path(alert).read_text())
            .grid_pos(GridPos(h=PANEL_HEIGHT, w=24, x=0, y=index * PANEL_HEIGHT))
        )
    return board


@dataclass(frozen=True, kw_only=True)
class RunbookLinks:
    """How an alert's ``runbook_url`` is made: the page published under ``base_url`` when it is set, else its
    panel on the runbook dashboard of the Grafana at ``grafana_url``."""

    grafana_url: str = LOCAL_GRAFANA_URL
    """The stack's Grafana as a person opens it (``MonitoringStack.grafana_browser_url``)."""
    base_url: str | None = None
    """URL of a published copy of ``runbooks/`` (``alerting.runbookBaseUrl``)."""

    def url(self, alert: str) -> str:
        """``alert``'s runbook.

        >>> RunbookLinks(base_url="https://git.example.com/ml/-/blob/main/runbooks/").url("ModelTargetDown")
        'https://git.example.com/ml/-/blob/main/runbooks/ModelTargetDown.md'
        """
        if self.base_url is not None:
            return f"{self.base_url.rstrip('/')}/{alert}.md"
        alerts = runbook_alerts()
        if alert not in alerts:
            raise ValueError(f"no runbook page for {alert}: add runbooks/{alert}.md")
        query = urlencode({"viewPanel": alerts.index(alert) + 1})
        title = RUNBOOKS_DASHBOARD_TITLE
        return f"{self.grafana_url.rstrip('/')}/d/{dashboard_uid(title)}/{slug(title)}?{query}"
