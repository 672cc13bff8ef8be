"""Where an alert's runbook lives: one Markdown page per alert, named after it, in this repository.

Every alert's ``runbook_url`` is built by :func:`runbook_url` alone, so a moved repository or a renamed
branch is one setting (``model.monitors.runbookBaseUrl``), and a test can check that every URL an alert
carries points at a page that exists.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

RUNBOOK_DIR: Final = Path(__file__).resolve().parents[2] / "runbooks"
"""The repository folder that holds one ``<AlertName>.md`` per alert."""

DEFAULT_RUNBOOK_BASE_URL: Final = "https://github.com/ml-observability/ml-observability/blob/main/runbooks"
"""Where the runbooks are published; a fork sets ``model.monitors.runbookBaseUrl`` to its own copy."""

RUNBOOK_SECTIONS: Final = ("Meaning", "Impact", "Diagnosis", "Mitigation")
"""The sections every runbook page has, in this order (the prometheus-operator runbooks' layout)."""


def runbook_url(alert: str, base_url: str) -> str:
    """The URL of ``alert``'s runbook page under ``base_url`` (the ``runbooks/`` folder as served).

    >>> runbook_url("ModelTargetDown", "https://git.example.com/ml-observability/blob/main/runbooks/")
    'https://git.example.com/ml-observability/blob/main/runbooks/ModelTargetDown.md'
    """
    return f"{base_url.rstrip('/')}/{alert}.md"


def runbook_path(alert: str) -> Path:
    """The file in this repository that :func:`runbook_url` points at."""
    return RUNBOOK_DIR / f"{alert}.md"
