"""Every alert links a runbook in this repository, and every runbook has the four sections in order."""

from __future__ import annotations

import re

from components.monitors.config import ModelMonitorsConfig
from components.monitors.rule_model import alert_names
from components.monitors.runbooks import RUNBOOK_DIR, RUNBOOK_SECTIONS, runbook_path, runbook_url
from tests.monitor_rules import groups_for


def test_every_alert_links_its_runbook():
    config = ModelMonitorsConfig.model_validate({"runbookBaseUrl": "https://git.example.com/ml/-/blob/main/runbooks/"})
    groups = groups_for(config)
    for group in groups:
        for alert in group.alerts:
            assert alert.runbook_url == f"https://git.example.com/ml/-/blob/main/runbooks/{alert.alert}.md"
            assert alert.runbook_url == runbook_url(alert.alert, config.runbook_base_url)
            assert runbook_path(alert.alert).is_file(), f"no runbook for {alert.alert}"
    assert {p.stem for p in RUNBOOK_DIR.glob("*.md")} == set(alert_names(groups)), "a runbook without an alert"


def test_runbooks_have_meaning_impact_diagnosis_mitigation():
    for page in sorted(RUNBOOK_DIR.glob("*.md")):
        text = page.read_text()
        assert text.startswith(f"# {page.stem}\n"), page.name
        headings = re.findall(r"^## (.+)$", text, flags=re.MULTILINE)
        assert tuple(headings) == RUNBOOK_SECTIONS, f"{page.name}: {headings}"
        for section in re.split(r"^## .+$", text, flags=re.MULTILINE)[1:]:
            assert len(section.strip()) > 80, f"{page.name}: a section is nearly empty"
        for link in re.findall(r"\]\(([A-Za-z]+\.md)\)", text):
            assert (RUNBOOK_DIR / link).is_file(), f"{page.name} links {link}, which does not exist"
