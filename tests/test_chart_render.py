"""What the pinned kube-prometheus-stack chart really renders with the values each stack gives its Release.

Every assertion is on ``helm template`` output (see ``tests/chart_render.py``): the Prometheus object's
selectors against the exported discovery contract, the chart's own ServiceMonitors still selected, Grafana's
credentials and dashboard sidecar, control-plane monitors per platform, Services behind the exported URLs, and
every object against the API of the stack's Kubernetes version or its CRD's schema.
"""

from __future__ import annotations

import base64
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from components.contracts import GRAFANA_NODE_PORT
from tests.chart_render import RenderedChart, every_option_run, monitoring_release, render_release
from tests.harness import ROOT, SECRET, ProgramRun
from tests.k8s_validation import (
    builtin_errors,
    custom_resource_errors,
    is_custom_resource,
    namespace_selected,
    selector_matches,
)

MONITOR_SELECTORS = ("serviceMonitor", "podMonitor", "rule", "probe", "scrapeConfig")
CONTROL_PLANE_MONITORS = ("kube-controller-manager", "kube-scheduler", "kube-etcd", "kube-proxy")
SAMPLE_NAMESPACES = ("models", "kube-system", "team-fraud-detection")
"""Namespaces a monitor may live in: the sample model's, a system one, and any team's."""


@pytest.fixture
def rendered(stack_run: ProgramRun) -> RenderedChart:
    return render_release(stack_run)


def prometheus(chart: RenderedChart) -> dict[str, Any]:
    return chart.one("Prometheus")["spec"]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def grafana_deployment(chart: RenderedChart) -> dict[str, Any]:
    (deployment,) = [
        d for d in chart.of_kind("Deployment") if d["metadata"]["labels"].get("app.kubernetes.io/name") == "grafana"
    ]
    return deployment


def service_for(chart: RenderedChart, url_or_name: str) -> dict[str, Any]:
    """The rendered Service a ``http://<service>.<namespace>.svc:<port>`` URL (or a bare name) points at."""
    host = urlparse(url_or_name).hostname or url_or_name
    name, _, rest = host.partition(".")
    if rest:
        assert rest == f"{chart.namespace}.svc", f"{url_or_name} is not in the release namespace"
    return chart.one("Service", name)


# --- discovery ---------------------------------------------------------------------------------------------


def test_prometheus_selects_what_the_discovery_contract_says(stack_run: ProgramRun, rendered: RenderedChart):
    spec = prometheus(rendered)
    contract = stack_run.outputs["monitorLabels"]
    monitor_labels = {**contract, "app.kubernetes.io/name": "some-model"}  # a monitor carries other labels too
    for kind in MONITOR_SELECTORS:
        assert selector_matches(spec.get(f"{kind}Selector"), monitor_labels), f"{kind}Selector misses {contract}"
        assert not selector_matches(spec.get(f"{kind}Selector"), {"app.kubernetes.io/name": "some-model"}), (
            f"{kind}Selector selects objects without the contract's labels"
        )
    for kind in ("serviceMonitor", "podMonitor", "rule", "probe"):
        for namespace in (rendered.namespace, *SAMPLE_NAMESPACES):
            assert namespace_selected(
                spec.get(f"{kind}NamespaceSelector"), namespace, prometheus_namespace=rendered.namespace
            ), f"{kind}NamespaceSelector does not watch {namespace}"


def test_every_monitor_and_rule_of_the_chart_is_still_selected(rendered: RenderedChart):
    spec = prometheus(rendered)
    monitors = rendered.of_kind("ServiceMonitor")
    rules = rendered.of_kind("PrometheusRule")
    assert len(monitors) >= 9 and len(rules) >= 20, "the chart rendered fewer monitors or rules than it ships"
    selected = (("serviceMonitor", monitors), ("rule", rules), ("podMonitor", rendered.of_kind("PodMonitor")))
    for kind, objects in selected:
        for obj in objects:
            name = obj["metadata"]["name"]
            assert selector_matches(spec.get(f"{kind}Selector"), obj["metadata"].get("labels", {})), name
            assert namespace_selected(
                spec.get(f"{kind}NamespaceSelector"),
                obj["metadata"].get("namespace", rendered.namespace),
                prometheus_namespace=rendered.namespace,
            ), name


def test_control_plane_monitors_on_kind_only(stack_run: ProgramRun, rendered: RenderedChart):
    monitors = {name.removeprefix(f"{rendered.release_name}-") for name in rendered.names("ServiceMonitor")}
    services = {name.removeprefix(f"{rendered.release_name}-") for name in rendered.names("Service")}
    present = {m for m in CONTROL_PLANE_MONITORS if m in monitors}
    if stack_run.outputs["clusterKind"] == "kind":
        assert present == set(CONTROL_PLANE_MONITORS)
        assert set(CONTROL_PLANE_MONITORS) <= services
    else:
        assert present == set(), "managed control planes (and existing without controlPlaneMetrics) expose none"
        assert not set(CONTROL_PLANE_MONITORS) & services
        alerts = {r["alert"] for rule in rendered.of_kind("PrometheusRule") for g in rule["spec"]["groups"]
                  for r in g["rules"] if "alert" in r}
        assert not {"KubeControllerManagerDown", "KubeSchedulerDown", "KubeProxyDown"} & alerts, (
            "alerts on absent control-plane targets would fire forever"
        )


def test_the_kubelet_service_lives_in_the_monitoring_namespace(rendered: RenderedChart):
    # The operator creates it outside the release; in kube-system it would survive a destroy (and a node test
    # found it there). The kubelet ServiceMonitor must look where the operator puts it.
    operator = rendered.one("Deployment", f"{rendered.release_name}-operator")
    [container] = operator["spec"]["template"]["spec"]["containers"]
    assert f"--kubelet-service={rendered.namespace}/{rendered.release_name}-kubelet" in container["args"]
    kubelet = rendered.one("ServiceMonitor", f"{rendered.release_name}-kubelet")
    assert kubelet["spec"]["namespaceSelector"] == {"matchNames": [rendered.namespace]}
    assert not [o for o in rendered.objects if o["metadata"].get("namespace") == "kube-system"
                and o["kind"] != "Service"], "only the control-plane exporters' Services may go to kube-system"


# --- Grafana ------------------------------------------------------------------------------------------------


def test_grafana_reads_the_generated_secret_and_renders_no_password(stack_run: ProgramRun, rendered: RenderedChart):
    secret = next(
        r for r in stack_run.children_of(monitoring_release(stack_run).parent) if r.name.endswith("-grafana-admin")
    )
    keys = set(secret.inputs["stringData"][SECRET])
    containers = {c["name"]: c for c in grafana_deployment(rendered)["spec"]["template"]["spec"]["containers"]}
    env = env_of(containers["grafana"])
    for variable in ("GF_SECURITY_ADMIN_USER", "GF_SECURITY_ADMIN_PASSWORD"):
        reference = env[variable]["secretKeyRef"]
        assert reference["name"] == secret.inputs["metadata"]["name"], variable
        assert reference["key"] in keys, variable
    assert not [s for s in rendered.of_kind("Secret") if "admin-password" in (s.get("data") or {})], (
        "the chart generated a Grafana password of its own"
    )


def test_grafana_dashboard_sidecar_watches_the_contracts_label(stack_run: ProgramRun, rendered: RenderedChart):
    containers = grafana_deployment(rendered)["spec"]["template"]["spec"]["containers"]
    (sidecar,) = [c for c in containers if env_of(c).get("FOLDER") == "/tmp/dashboards"]
    env = env_of(sidecar)
    [(label, value)] = stack_run.outputs["dashboardLabels"].items()
    assert (env["LABEL"], env["LABEL_VALUE"]) == (label, value)
    assert env["NAMESPACE"] == "ALL"
    assert env["FOLDER_ANNOTATION"] == "grafana_folder"
    provider = yaml.safe_load(
        next(c for c in rendered.of_kind("ConfigMap") if c["metadata"]["name"].endswith("-config-dashboards"))["data"][
            "provider.yaml"
        ]
    )
    assert provider["providers"][0]["options"]["foldersFromFilesStructure"] is True
    chart_dashboards = [c for c in rendered.of_kind("ConfigMap") if label in c["metadata"].get("labels", {})]
    assert chart_dashboards and all(c["metadata"]["labels"][label] == value for c in chart_dashboards)


def test_grafana_service_type_and_port_per_environment(stack_run: ProgramRun, rendered: RenderedChart):
    outputs = stack_run.outputs
    if outputs["clusterKind"] == "kind":
        service = service_for(rendered, f"{rendered.release_name}-grafana")
        assert service["spec"]["type"] == "NodePort"
        [port] = service["spec"]["ports"]
        assert port["nodePort"] == GRAFANA_NODE_PORT and port["port"] == 80
    else:
        command = outputs["grafanaPortForward"]
        match = re.fullmatch(r"kubectl --namespace (\S+) port-forward service/(\S+) 3000:(\d+)", command)
        assert match is not None, command
        assert match.group(1) == rendered.namespace
        service = service_for(rendered, match.group(2))
        assert service["spec"].get("type", "ClusterIP") == "ClusterIP"
        assert [p["port"] for p in service["spec"]["ports"]] == [int(match.group(3))]


def test_exported_urls_point_at_rendered_services(stack_run: ProgramRun, rendered: RenderedChart):
    for output in ("prometheusUrl", "alertmanagerUrl"):
        url = stack_run.outputs[output]
        service = service_for(rendered, url)
        assert urlparse(url).port in [p["port"] for p in service["spec"]["ports"]], output


# --- Alertmanager and Prometheus ---------------------------------------------------------------------------


def test_alertmanager_gets_exactly_the_rendered_config_and_mounts_the_receivers_secret(
    stack_run: ProgramRun, rendered: RenderedChart
):
    values = rendered.values["alertmanager"]
    crname = rendered.one("Alertmanager")["metadata"]["name"]
    secret = rendered.one("Secret", f"alertmanager-{crname}")
    config = yaml.safe_load(base64.b64decode(secret["data"]["alertmanager.yaml"]))
    assert config == values["config"], "Helm merged the chart's defaults into the configuration"
    assert rendered.one("Alertmanager")["spec"]["secrets"] == values["alertmanagerSpec"]["secrets"]


def test_prometheus_storage_and_retention(stack_run: ProgramRun, rendered: RenderedChart):
    spec = prometheus(rendered)
    claim = spec["storage"]["volumeClaimTemplate"]["spec"]
    assert claim.get("storageClassName") == stack_run.outputs.get("defaultStorageClass")
    assert spec["retention"] and spec["retentionSize"]


# --- schemas ------------------------------------------------------------------------------------------------


def validation_errors(chart: RenderedChart) -> Iterator[str]:
    for obj in chart.objects:
        if is_custom_resource(obj):
            yield from custom_resource_errors(obj)
        else:
            yield from builtin_errors(obj, chart.kubernetes_version)


def test_every_rendered_object_is_valid_for_the_stacks_kubernetes_version(rendered: RenderedChart):
    kinds = {o["kind"] for o in rendered.objects}
    assert {"Prometheus", "Alertmanager", "ServiceMonitor", "PrometheusRule"} <= kinds
    assert list(validation_errors(rendered)) == []


@pytest.mark.parametrize("stack", ["aks", "local"])
def test_every_option_renders_valid_objects(stack: str):
    run = every_option_run(stack)
    chart = render_release(run)
    assert list(validation_errors(chart)) == []
    ingress = chart.one("Ingress")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"secretName": "grafana-tls", "hosts": ["grafana.example.com"]}]
    webhooks = chart.of_kind("MutatingWebhookConfiguration") + chart.of_kind("ValidatingWebhookConfiguration")
    annotated = {(w["metadata"].get("annotations") or {}).get("admissions.enforcer/disabled") for w in webhooks}
    assert annotated == ({"true"} if stack == "aks" else {None})


def test_a_misspelt_field_fails_validation(rendered: RenderedChart):
    """The validators are strict: a field the API server would silently drop is an error here."""
    spec = dict(prometheus(rendered), retentionSzie="1d")
    prometheus_object = dict(rendered.one("Prometheus"), spec=spec)
    assert custom_resource_errors(prometheus_object)
    deployment = grafana_deployment(rendered)
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["replica"] = 1
    assert builtin_errors(broken, rendered.kubernetes_version)


# --- no literal password ---------------------------------------------------------------------------------


LEGACY_DEFAULT = "prom" + "-operator"
"""The Grafana password older charts defaulted to (spelt in two parts so that this file does not contain it)."""
CREDENTIAL_KEY = re.compile(r"(?i)(password|passwd|token|routingkey|webhookurl|apikey|secretkey)$")
PYTHON_LITERAL = re.compile(r"""(?i)\b\w*(password|passwd)["']?\s*[:=]\s*["'](?!\s*["'])[^"'{}<>$]+["']""")


def repository_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True,
        check=True,
    ).stdout.split()
    return [ROOT / name for name in listed if (ROOT / name).is_file()]


def _literal_credentials(document: Any, path: str = "") -> Iterator[str]:
    """Key paths holding a credential as plain text (an encrypted value is ``{secure: …}``)."""
    if isinstance(document, dict):
        for key, value in document.items():
            where = f"{path}.{key}" if path else str(key)
            if (
                CREDENTIAL_KEY.search(str(key))
                and isinstance(value, str | int)
                and str(value).strip()
                and not re.search(r"\$\{|\{\{|\$\(", str(value))  # a reference to a secret, not one
                and key != "id-token"  # a GitHub Actions permission (`id-token: write`), not a token
            ):
                yield where
            yield from _literal_credentials(value, where)
    elif isinstance(document, list):
        for index, item in enumerate(document):
            yield from _literal_credentials(item, f"{path}[{index}]")


def test_no_literal_password_in_the_repository():
    problems = []
    for path in repository_files():
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        relative = path.relative_to(ROOT)
        if LEGACY_DEFAULT in text:
            problems.append(f"{relative}: the chart's legacy default Grafana password")
        if path.suffix in (".yaml", ".yml"):
            try:
                documents = list(yaml.safe_load_all(text))
            except yaml.YAMLError:
                continue
            problems += [f"{relative}: {key}" for d in documents for key in _literal_credentials(d)]
        # Test suites hold made-up credentials on purpose (fixtures proving a check rejects them, mock outputs).
        if path.suffix == ".py" and "tests" not in relative.parts:
            problems += [f"{relative}: {m.group(0)}" for m in PYTHON_LITERAL.finditer(text)]
    assert problems == []


def test_no_password_in_the_values_or_the_rendered_chart(stack_run: ProgramRun, rendered: RenderedChart):
    password = stack_run.outputs["grafanaAdminPassword"][SECRET]
    values_text = yaml.safe_dump(rendered.values)
    assert password not in values_text and LEGACY_DEFAULT not in values_text
    assert "adminPassword" not in values_text
    rendered_text = yaml.safe_dump_all(rendered.objects)
    assert password not in rendered_text and LEGACY_DEFAULT not in rendered_text


def test_the_password_scan_catches_literals():
    stack_file = {"config": {"ml-observability:alerting": {"slack": {"webhookUrl": "https://hooks.example/x"}},
                             "ml-observability:model": {"registry": {"password": {"secure": "v1:abc"}}}}}
    assert list(_literal_credentials(stack_file)) == ["config.ml-observability:alerting.slack.webhookUrl"]
    assert PYTHON_LITERAL.search('Secret(string_data={"admin_password": "hunter2"})')
    assert PYTHON_LITERAL.search("grafana_password = 'hunter2'")
    assert not PYTHON_LITERAL.search('GRAFANA_ADMIN_PASSWORD_KEY = "admin-password"')
    assert not PYTHON_LITERAL.search("password=password.result")
