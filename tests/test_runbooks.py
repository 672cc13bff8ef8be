"""Every alert links a runbook that opens: by default its panel on the runbook dashboard of the stack's own
Grafana, whose text is the page of runbooks/; or the page published under alerting.runbookBaseUrl. Every page has
the four sections in order, and a stack whose alerts leave the cluster must link somewhere that opens there."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest

from components.config.loader import ConfigError
from components.monitors.dashboard_ids import dashboard_json, dashboard_uid, slug
from components.monitors.rule_model import alert_names
from components.monitors.runbooks import (
    LOCAL_GRAFANA_URL,
    RUNBOOK_DIR,
    RUNBOOK_SECTIONS,
    RUNBOOKS_DASHBOARD_TITLE,
    RunbookLinks,
    runbook_path,
    runbooks_dashboard,
)
from tests.conftest import program_run
from tests.harness import FLEET_STACK, STACKS_DIR, ProgramRun, run_program
from tests.monitor_rules import every_alert_config, groups_for

PUBLISHED = "https://git.example.com/ml/-/blob/main/runbooks/"


def alerts_of(run: ProgramRun) -> list[dict[str, str]]:
    return [rule for r in run.by_type("kubernetes:monitoring.coreos.com/v1:PrometheusRule")
            for group in r.inputs["spec"]["groups"] for rule in group["rules"] if "alert" in rule]


def panel_opened(url: str) -> dict[str, object]:
    """The runbook dashboard's panel a Grafana URL opens (``/d/<uid>/<slug>?viewPanel=<id>``)."""
    parts = urlsplit(url)
    board = json.loads(dashboard_json(runbooks_dashboard()))
    assert parts.path == f"/d/{board['uid']}/{slug(board['title'])}", url
    [panel_id] = parse_qs(parts.query)["viewPanel"]
    [panel] = [p for p in board["panels"] if str(p["id"]) == panel_id]
    return dict(panel)


def test_every_alert_opens_its_page_on_the_stacks_grafana():
    alerts = alerts_of(program_run(STACKS_DIR / "Pulumi.local.yaml"))
    assert alerts
    for rule in alerts:
        url = rule["annotations"]["runbook_url"]
        assert url.startswith(f"{LOCAL_GRAFANA_URL}/d/{dashboard_uid(RUNBOOKS_DASHBOARD_TITLE)}/"), url
        panel = panel_opened(url)
        assert panel["title"] == rule["alert"]
        assert panel["options"]["mode"] == "markdown"
        assert panel["options"]["content"] == runbook_path(rule["alert"]).read_text()


def test_the_runbook_dashboard_ships_with_the_model_dashboards():
    run = program_run(STACKS_DIR / "Pulumi.local.yaml")
    shipped = [json.loads(next(iter(r.inputs["data"].values()))) for r in run.by_type("kubernetes:core/v1:ConfigMap")
               if r.name.startswith("model-dashboards-")]
    [board] = [b for b in shipped if b["title"] == RUNBOOKS_DASHBOARD_TITLE]
    assert {p["title"] for p in board["panels"]} == {p.stem for p in RUNBOOK_DIR.glob("*.md")}


def test_a_published_copy_replaces_the_dashboard_links():
    run = program_run(FLEET_STACK)  # its alerts go to receivers, and it publishes its runbooks
    for rule in alerts_of(run):
        assert rule["annotations"]["runbook_url"] == (
            "https://git.example.com/platform/ml-observability/-/blob/main/runbooks/" + f"{rule['alert']}.md")


def test_every_alert_has_a_page_and_every_page_an_alert():
    groups = groups_for(every_alert_config())
    links = RunbookLinks(base_url=PUBLISHED)
    for group in groups:
        for alert in group.alerts:
            assert links.url(alert.alert) == f"{PUBLISHED}{alert.alert}.md"
            assert runbook_path(alert.alert).is_file(), f"no runbook for {alert.alert}"
    assert {p.stem for p in RUNBOOK_DIR.glob("*.md")} == set(alert_names(groups)), "a runbook without an alert"
    with pytest.raises(ValueError, match=r"add runbooks/ModelNoSuchAlert\.md"):
        RunbookLinks().url("ModelNoSuchAlert")


def test_a_kind_cluster_on_another_port_links_there():
    run = run_program(STACKS_DIR / "Pulumi.local.yaml", overrides={
        "cluster": {"kind": "kind", "name": "mlobs-local", "workers": 0, "grafanaHostPort": 3300}})
    assert all(rule["annotations"]["runbook_url"].startswith("http://localhost:3300/d/") for rule in alerts_of(run))


def test_alerts_sent_away_need_links_that_open_there():
    slack = {"slack": {"webhookUrl": {"secure": "v1:slack-webhook"}}}
    with pytest.raises(ConfigError, match=r"alerting\.runbookBaseUrl: alerts go to receivers"):
        run_program(STACKS_DIR / "Pulumi.eks.yaml", overrides={"alerting": slack})
    ingress = {"enabled": True, "host": "grafana.example.com", "className": "nginx"}
    with_ingress = run_program(STACKS_DIR / "Pulumi.eks.yaml",
                               overrides={"alerting": slack, "monitoring": {"grafana": {"ingress": ingress}}})
    grafana = with_ingress.outputs["grafanaUrl"]
    assert "grafana.example.com" in grafana
    assert all(rule["annotations"]["runbook_url"].startswith(f"{grafana}/d/") for rule in alerts_of(with_ingress))


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
