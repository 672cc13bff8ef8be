"""The ServiceMonitor-to-scrape-configuration translation the end-to-end suite relies on.

The end-to-end scenarios prove that the translation of the program's own objects scrapes the service; these
tests pin what the translation does with each field, and that what it does not know is refused rather than
dropped, so a monitor that grows a field fails here before it silently changes what the suite proves.
"""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import program_run
from tests.e2e.scrape_config import LocalPod, ServiceEndpoints, sanitize, scrape_jobs
from tests.tools import require_tool

STACK_FILE = Path(__file__).resolve().parents[2] / "stacks" / "Pulumi.local.yaml"
SERVICE_MONITOR = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"


def declared() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The program's ServiceMonitor, the Service it selects and the Deployment behind it (copies)."""
    run = program_run(STACK_FILE)
    monitor = run.one(SERVICE_MONITOR).inputs
    service = run.one("kubernetes:core/v1:Service").inputs
    deployment = run.one("kubernetes:apps/v1:Deployment").inputs
    return copy.deepcopy(monitor), copy.deepcopy(service), copy.deepcopy(deployment)


def rule(job: dict[str, Any], **match: Any) -> list[dict[str, Any]]:
    return [r for r in job["relabel_configs"] if all(r.get(k) == v for k, v in match.items())]


def test_one_job_per_endpoint_named_and_timed_as_the_operator_does() -> None:
    monitor, _, _ = declared()
    (job,) = scrape_jobs(monitor, "/sd.json")
    endpoint = monitor["spec"]["endpoints"][0]
    metadata = monitor["metadata"]
    assert job["job_name"] == f"serviceMonitor/{metadata['namespace']}/{metadata['name']}/0"
    assert (job["scrape_interval"], job["scrape_timeout"], job["metrics_path"], job["scheme"]) == (
        endpoint["interval"], endpoint["scrapeTimeout"], endpoint["path"], endpoint["scheme"]
    )
    assert job["honor_labels"] is False
    assert job["file_sd_configs"] == [{"files": ["/sd.json"], "refresh_interval": "1s"}]


def test_relabelings_select_the_service_and_port_then_set_the_target_labels() -> None:
    monitor, _, _ = declared()
    (job,) = scrape_jobs(monitor, "/sd.json")
    for key, value in monitor["spec"]["selector"]["matchLabels"].items():
        sources = [f"__meta_kubernetes_service_label_{sanitize(key)}",
                   f"__meta_kubernetes_service_labelpresent_{sanitize(key)}"]
        assert rule(job, action="keep", source_labels=sources)[0]["regex"] == f"({value});true"
    port = monitor["spec"]["endpoints"][0]["port"]
    assert rule(job, action="keep", source_labels=["__meta_kubernetes_endpoint_port_name"])[0]["regex"] == port
    targets = [r["target_label"] for r in job["relabel_configs"] if "target_label" in r]
    for label in ("namespace", "service", "pod", "container", "job", "endpoint"):
        assert label in targets
    # The ServiceMonitor's own relabeling comes after the operator's job rule, so the rules' job wins.
    jobs = [r for r in job["relabel_configs"] if r.get("target_label") == "job"]
    assert jobs[0]["source_labels"] == ["__meta_kubernetes_service_name"]
    assert jobs[-1] == {"target_label": "job", "replacement": monitor["spec"]["endpoints"][0]["relabelings"][0][
        "replacement"], "action": "replace"}


def test_match_expressions_become_keep_and_drop_rules() -> None:
    monitor, _, _ = declared()
    monitor["spec"]["selector"] = {"matchExpressions": [
        {"key": "tier", "operator": "In", "values": ["a", "b"]},
        {"key": "legacy", "operator": "DoesNotExist"},
    ]}
    (job,) = scrape_jobs(monitor, "/sd.json")
    assert rule(job, action="keep", regex="(a|b);true")[0]["source_labels"][0] == "__meta_kubernetes_service_label_tier"
    assert rule(job, action="drop", regex="true")[0]["source_labels"] == [
        "__meta_kubernetes_service_labelpresent_legacy"
    ]


@pytest.mark.parametrize(
    ("where", "field"),
    [("endpoint", "tlsConfig"), ("endpoint", "bearerTokenSecret"), ("spec", "sampleLimit")],
)
def test_fields_the_translation_does_not_know_are_refused(where: str, field: str) -> None:
    monitor, _, _ = declared()
    target = monitor["spec"]["endpoints"][0] if where == "endpoint" else monitor["spec"]
    target[field] = {"x": "y"}
    with pytest.raises(ValueError, match=field):
        scrape_jobs(monitor, "/sd.json")


def test_endpoints_are_the_pods_the_service_selects_at_their_container_port() -> None:
    _, service, deployment = declared()
    pods = [LocalPod(name="model-abc-00001", port=41001), LocalPod(name="model-abc-00002", port=41002, ready=False)]
    groups = ServiceEndpoints(service=service, deployment=deployment).target_groups(pods)
    assert [g["targets"] for g in groups] == [["127.0.0.1:41001"], ["127.0.0.1:41002"]]
    labels = groups[1]["labels"]
    assert labels["__meta_kubernetes_namespace"] == service["metadata"]["namespace"]
    assert labels["__meta_kubernetes_service_name"] == service["metadata"]["name"]
    assert labels["__meta_kubernetes_endpoint_port_name"] == service["spec"]["ports"][0]["name"]
    assert labels["__meta_kubernetes_endpoint_ready"] == "false"  # listed, as Kubernetes SD lists not-ready
    assert labels["__meta_kubernetes_pod_name"] == "model-abc-00002"
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert labels["__meta_kubernetes_pod_container_name"] == container["name"]
    assert labels["__meta_kubernetes_pod_container_port_number"] == str(int(container["ports"][0]["containerPort"]))
    for key, value in service["metadata"]["labels"].items():
        assert labels[f"__meta_kubernetes_service_label_{sanitize(key)}"] == value


def test_a_service_that_selects_no_pod_has_no_endpoints() -> None:
    _, service, deployment = declared()
    service["spec"]["selector"] = {"app.kubernetes.io/name": "something-else"}
    assert ServiceEndpoints(service=service, deployment=deployment).target_groups([LocalPod("p", 1)]) == []


def test_a_target_port_no_container_port_has_is_refused() -> None:
    _, service, deployment = declared()
    service["spec"]["ports"][0]["targetPort"] = "metrics"
    with pytest.raises(ValueError, match="targetPort 'metrics'"):
        ServiceEndpoints(service=service, deployment=deployment).target_groups([LocalPod("p", 1)])


@pytest.mark.tools
def test_prometheus_accepts_the_configuration(tmp_path: Path) -> None:
    monitor, service, deployment = declared()
    sd_file = tmp_path / "endpoints.json"
    sd_file.write_text(json.dumps(ServiceEndpoints(service=service, deployment=deployment).target_groups(
        [LocalPod(name="model-abc-00001", port=41001)])))
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump({"scrape_configs": scrape_jobs(monitor, str(sd_file))}))
    result = subprocess.run([str(require_tool("promtool")), "check", "config", str(config)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
