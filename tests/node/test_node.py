"""The product on a real Kubernetes node: ``pulumi up`` of the ``existing`` stack, then what a user meets first.

Nothing here is emulated: the pods are started by the kubelet from images built from source, under the
program's own security contexts, probes and resources; the Prometheus Operator generates Prometheus' scrape
configuration and rules from the program's ServiceMonitor and PrometheusRule; the traffic goes through the
model's Service (kube-proxy) and the alerts through the cluster's Alertmanager. The scenarios run in order on
one deployment (``conftest.deployment``); the last one destroys it, and the node's own teardown then checks
that the machine is as it was.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from components.model.deployment import MODEL_SERVICE_UID
from components.monitoring.values import ALERTMANAGER_PORT, PROMETHEUS_PORT
from components.monitors.drift_rules import FEATURE_DRIFT_ALERT
from components.monitors.model_dashboards import config_map_name
from components.monitors.overview_dashboard import MODEL_DASHBOARD_TITLE
from tests.e2e.dashboard import expand, queries_by_row, query_variables
from tests.e2e.stack import model_target_labels
from tests.node.conftest import TIMINGS
from tests.node.deployment import Deployment
from tests.processes import poll
from tests.prometheus_api import AlertmanagerApi, PrometheusApi
from tests.traffic import Traffic, drifted

pytestmark = pytest.mark.node

DRIFTED_FEATURE = "f6"
"""A pure-noise feature of the sample: shifting it moves no prediction, so only its own alert may fire."""
DRIFT_SIGMAS = 3.0
READY_TIMEOUT = 300


# ---------------------------------------------------------------------------------------------------------
# what the program declared, and the servers it runs
# ---------------------------------------------------------------------------------------------------------


def model_deployment(deployment: Deployment) -> dict[str, Any]:
    [declared] = deployment.declared("Deployment")
    return declared


def service_monitor(deployment: Deployment) -> dict[str, Any]:
    [declared] = deployment.declared("ServiceMonitor")
    return declared


def prometheus_rule(deployment: Deployment) -> dict[str, Any]:
    [declared] = deployment.declared("PrometheusRule")
    return declared


def model_scope(deployment: Deployment) -> tuple[str, str]:
    """(namespace, job) every model series carries: the ServiceMonitor's namespace and the job it sets."""
    monitor = service_monitor(deployment)
    jobs = [r["replacement"] for e in monitor["spec"]["endpoints"] for r in e.get("relabelings", [])
            if r.get("targetLabel") == "job"]
    return monitor["metadata"]["namespace"], jobs[-1]


def prometheus(deployment: Deployment) -> PrometheusApi:
    return PrometheusApi(deployment.node.service_url(
        deployment.monitoring_namespace, deployment.names.prometheus_service, PROMETHEUS_PORT))


def alertmanager(deployment: Deployment) -> AlertmanagerApi:
    return AlertmanagerApi(deployment.node.service_url(
        deployment.monitoring_namespace, deployment.names.alertmanager_service, ALERTMANAGER_PORT))


def ready(pod: dict[str, Any]) -> bool:
    return pod["status"].get("phase") == "Running" and any(
        c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))


def model_pods(deployment: Deployment) -> list[dict[str, Any]]:
    declared = model_deployment(deployment)
    selector = ",".join(f"{k}={v}" for k, v in declared["spec"]["selector"]["matchLabels"].items())
    return [p for p in deployment.node.pods(declared["metadata"]["namespace"], selector)
            if p["metadata"].get("deletionTimestamp") is None]


def exec_in(deployment: Deployment, pod: dict[str, Any], code: str) -> str:
    """Python run inside the pod's container: what the container itself can see and do."""
    result = deployment.node.kubectl(
        "exec", "-n", pod["metadata"]["namespace"], pod["metadata"]["name"], "--", "python", "-c", code)
    return result.stdout.strip()


# ---------------------------------------------------------------------------------------------------------
# 1. every pod starts
# ---------------------------------------------------------------------------------------------------------


def full_reference(image: str) -> str:
    """An image reference as containerd names it (``ml-model-service:tag`` is ``docker.io/library/…``)."""
    first = image.split("/", 1)[0]
    if "/" not in image:
        return f"docker.io/library/{image}"
    return image if "." in first or ":" in first or first == "localhost" else f"docker.io/{image}"


def test_every_image_the_pods_ask_for_was_built_here(deployment: Deployment) -> None:
    # Nothing can be pulled on this node: a reference the chart or the program renders differently from the
    # one scripts/install-node.sh tags (a flavour suffix, a registry) would leave its pod in ImagePullBackOff.
    node = deployment.node
    namespaces = (deployment.monitoring_namespace, model_deployment(deployment)["metadata"]["namespace"])
    wanted = {full_reference(c["image"]) for ns in namespaces for p in node.pods(ns)
              for c in p["spec"].get("initContainers", []) + p["spec"]["containers"]}
    built = {image.ref for image in node.images} | {deployment.image.ref}
    assert wanted <= built, f"not built by scripts/install-node.sh: {sorted(wanted - built)}; built: {sorted(built)}"


RELEASE_COMPONENTS = ("prometheus-operator", "kube-state-metrics", "prometheus-node-exporter", "prometheus",
                      "alertmanager")
"""What runs in the monitoring namespace, by ``app.kubernetes.io/name`` (the operator's pod has the release's
name before it); Grafana is off on this node."""


def component(pod: dict[str, Any]) -> str:
    name = pod["metadata"].get("labels", {}).get("app.kubernetes.io/name", "")
    return next((c for c in RELEASE_COMPONENTS if name == c or name.endswith(f"-{c}")), name)


def test_every_pod_of_the_release_and_the_model_becomes_ready(deployment: Deployment) -> None:
    node = deployment.node
    namespaces = (deployment.monitoring_namespace, model_deployment(deployment)["metadata"]["namespace"])

    def waiting() -> list[str]:
        pods = [p for ns in namespaces for p in node.pods(ns)]
        running = {component(p) for p in pods if p["metadata"]["namespace"] == deployment.monitoring_namespace}
        missing = [f"no pod of {c}" for c in RELEASE_COMPONENTS if c not in running]
        return missing + [f"{p['metadata']['namespace']}/{p['metadata']['name']} not ready" for p in pods
                          if not ready(p)]

    started = time.monotonic()
    # Prometheus and Alertmanager are StatefulSets the operator creates after the release: they are awaited too.
    poll("every pod Ready", lambda: not waiting(), timeout=READY_TIMEOUT, interval=1,
         diagnose=lambda: "\n".join(waiting()) + "\n" + node.describe())
    TIMINGS["pulumi up done to every pod Ready (s)"] = time.monotonic() - started
    monitoring = node.pods(deployment.monitoring_namespace)
    assert sorted(component(p) for p in monitoring) == sorted(RELEASE_COMPONENTS), [
        p["metadata"]["name"] for p in monitoring]
    assert len(model_pods(deployment)) == model_deployment(deployment)["spec"]["replicas"]


def test_the_model_runs_the_image_built_from_its_dockerfile_as_its_non_root_user(deployment: Deployment) -> None:
    pods = model_pods(deployment)
    assert len(pods) == model_deployment(deployment)["spec"]["replicas"], [p["metadata"]["name"] for p in pods]
    for pod in pods:
        [status] = pod["status"]["containerStatuses"]
        assert full_reference(status["image"]) == deployment.image.ref, status["image"]
        assert status["restartCount"] == 0, f"the model's container restarted: {status}"
    pod = pods[0]
    assert exec_in(deployment, pod, "import os; print(os.getuid(), os.getgid())") == (
        f"{MODEL_SERVICE_UID} {MODEL_SERVICE_UID}")
    # The root filesystem is read-only and no capability is left, as the Deployment asks.
    assert exec_in(deployment, pod, "\n".join([
        "try:",
        "    open('/opt/model/probe', 'w')",
        "except OSError as error:",
        "    print(error.strerror)",
    ])) == "Read-only file system"
    effective = exec_in(deployment, pod, "print([l for l in open('/proc/self/status') if l.startswith('CapEff')][0])")
    assert int(effective.split()[1], 16) == 0, effective


# ---------------------------------------------------------------------------------------------------------
# 2. the operator's configuration scrapes the model and loads its rules
# ---------------------------------------------------------------------------------------------------------


def test_the_operator_scrapes_the_model_through_its_servicemonitor_and_loads_its_rules(
    deployment: Deployment,
) -> None:
    api = prometheus(deployment)
    namespace, job = model_scope(deployment)
    monitor = service_monitor(deployment)
    pool = f"serviceMonitor/{namespace}/{monitor['metadata']['name']}/0"

    def model_targets() -> list[dict[str, Any]]:
        return [t for t in api.targets()["activeTargets"] if t["scrapePool"] == pool and t["health"] == "up"]

    pods = {p["metadata"]["name"] for p in model_pods(deployment)}
    poll(f"the operator's scrape pool {pool} up for every model pod",
         lambda: {t["labels"]["pod"] for t in model_targets()} == pods, timeout=180, interval=1,
         diagnose=lambda: json.dumps(api.targets(), indent=1)[:4000])
    # The labels the end-to-end suite gives its targets (tests/e2e) are the ones the real operator generates.
    [service] = deployment.declared("Service")
    for target in model_targets():
        labels = {k: v for k, v in target["labels"].items() if k != "instance"}
        assert labels == model_target_labels(monitor, service, model_deployment(deployment), labels["pod"])
        assert (labels["job"], labels["namespace"]) == (job, namespace)
    assert api.value(f'sum(up{{namespace="{namespace}", job="{job}"}})') == float(len(pods))

    expected = {group["name"] for group in prometheus_rule(deployment)["spec"]["groups"]}
    poll("the model's rule groups loaded", lambda: expected <= {g["name"] for g in api.rules()}, timeout=120,
         interval=1, diagnose=lambda: str(sorted(g["name"] for g in api.rules())))


def test_the_admission_webhook_refuses_a_broken_rule(deployment: Deployment) -> None:
    namespace, _ = model_scope(deployment)
    broken = {
        "apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
        "metadata": {"name": "broken-rule", "namespace": namespace},
        "spec": {"groups": [{"name": "broken", "rules": [{"record": "broken:rate", "expr": "rate(up[5m]"}]}]},
    }
    completed = deployment.node.kubectl("apply", "-f", "-", check=False, input_text=json.dumps(broken))
    assert completed.returncode != 0, "the operator's webhook accepted a rule that does not parse"
    # Only the operator parses PromQL (the CRD's schema sees a string): this refusal is its webhook's.
    assert "could not parse expression" in completed.stderr, completed.stderr
    assert "unclosed left parenthesis" in completed.stderr, completed.stderr


# ---------------------------------------------------------------------------------------------------------
# 3. traffic through the Service: recordings, a drift alert in Alertmanager, a pod replaced under it
# ---------------------------------------------------------------------------------------------------------


def model_url(deployment: Deployment) -> str:
    declared = model_deployment(deployment)
    [service] = deployment.declared("Service")
    port = service["spec"]["ports"][0]["port"]
    return deployment.node.service_url(declared["metadata"]["namespace"], service["metadata"]["name"], port)


def drift_alerts(am: AlertmanagerApi) -> list[dict[str, Any]]:
    return [a for a in am.alerts() if a["labels"].get("alertname") == FEATURE_DRIFT_ALERT
            and a["status"]["state"] == "active" and a["labels"].get("feature") == DRIFTED_FEATURE]


def test_drifted_traffic_fires_the_drift_alert_in_the_clusters_alertmanager(deployment: Deployment) -> None:
    api, am = prometheus(deployment), alertmanager(deployment)
    namespace, job = model_scope(deployment)
    scope = f'namespace="{namespace}", job="{job}"'
    traffic = Traffic(model_url(deployment))
    deployment.traffic = traffic
    traffic.start()

    # Healthy traffic first: the recording rules of every layer have values, and no drift alert fires.
    recordings = sorted({rule["record"] for group in prometheus_rule(deployment)["spec"]["groups"]
                         for rule in group["rules"] if "record" in rule})

    def missing() -> list[str]:
        return [name for name in recordings if not api.query(f"{name}{{{scope}}}")]

    poll("every recording rule of the model has a value", lambda: not missing(), timeout=300, interval=2,
         diagnose=lambda: "no value yet: " + ", ".join(missing()))
    assert drift_alerts(am) == []
    assert api.query(f'model_feature:drift_psi:1h{{{scope}, feature="{DRIFTED_FEATURE}"}}')

    onset = traffic.onset(traffic.set_profile(drifted(DRIFTED_FEATURE, DRIFT_SIGMAS)))
    fired = poll(f"{FEATURE_DRIFT_ALERT} active in Alertmanager", lambda: drift_alerts(am), timeout=300,
                 interval=0.5, diagnose=lambda: json.dumps(api.alerts(), indent=1)[:4000])
    TIMINGS["drifted traffic to the alert in Alertmanager (s)"] = time.time() - onset
    assert isinstance(fired, list)
    assert {a["labels"]["severity"] for a in fired} == {"warning"}
    assert all(a["labels"]["namespace"] == namespace and a["labels"]["job"] == job for a in fired)
    assert traffic.errors == [], traffic.errors


def test_a_deleted_model_pod_is_replaced_scraped_again_and_the_alert_stays(deployment: Deployment) -> None:
    api, am = prometheus(deployment), alertmanager(deployment)
    namespace, job = model_scope(deployment)
    before = model_pods(deployment)
    old = before[0]
    assert drift_alerts(am), "the drift alert must be active before the pod goes"
    started = time.monotonic()
    deployment.node.kubectl("delete", "pod", "-n", namespace, old["metadata"]["name"], "--wait=false")

    samples: list[bool] = []

    def replaced_and_scraped() -> str | None:
        samples.append(bool(drift_alerts(am)))
        known = {p["metadata"]["name"] for p in before}
        replacements = [p for p in model_pods(deployment) if p["metadata"]["name"] not in known and ready(p)]
        if not replacements:
            return None
        name = replacements[0]["metadata"]["name"]
        up = api.query(f'up{{namespace="{namespace}", job="{job}", pod="{name}"}} == 1')
        return name if up else None

    new = poll("the model's pod replaced and scraped", replaced_and_scraped, timeout=READY_TIMEOUT, interval=1,
               diagnose=deployment.node.describe)
    TIMINGS["pod deleted to its replacement scraped (s)"] = time.monotonic() - started
    assert new != old["metadata"]["name"]
    # The alert never left Alertmanager: while the pod was replaced, and once the new one is scraped.
    samples.append(bool(drift_alerts(am)))
    assert all(samples), f"the drift alert was missing from Alertmanager in {samples.count(False)} of {len(samples)}"


# ---------------------------------------------------------------------------------------------------------
# 4. the dashboard's queries, as Grafana sends them, against this Prometheus
# ---------------------------------------------------------------------------------------------------------


def test_every_dashboard_query_returns_data_from_the_clusters_prometheus(deployment: Deployment) -> None:
    api = prometheus(deployment)
    namespace, job = model_scope(deployment)
    [config_map] = [c for c in deployment.declared("ConfigMap")
                    if c["metadata"]["name"] == config_map_name(MODEL_DASHBOARD_TITLE)]
    dashboard = json.loads(next(iter(config_map["data"].values())))
    values: dict[str, str] = {}
    for name, match, label in query_variables(dashboard):
        found = api.label_values(label, expand(match, values))
        expected = namespace if name == "namespace" else job
        assert expected in found, f"dashboard variable {name} offers {found}, not {expected}"
        values[name] = expected
    queries = [(title, expand(expr, values, "30s"))
               for title, expr in queries_by_row(dashboard, {"Interface", "Model", "Infrastructure"})]
    assert len(queries) >= 14, queries

    def empty() -> list[str]:
        return [f"{title}: {expr}" for title, expr in queries if not api.query(expr)]

    poll("every query of the dashboard returns data", lambda: not empty(), timeout=120, interval=2,
         diagnose=lambda: "no data:\n" + "\n".join(empty()))


# ---------------------------------------------------------------------------------------------------------
# 5. destroy
# ---------------------------------------------------------------------------------------------------------


def test_destroy_removes_everything_but_the_charts_crds(deployment: Deployment) -> None:
    if deployment.traffic is not None:
        deployment.traffic.stop()
    deployment.destroy()
    leftovers = deployment.node.plane.all_objects() - deployment.baseline
    unexpected = sorted(item for item in leftovers if not is_crd_leftover(deployment, item))
    assert not unexpected, f"destroy left objects behind: {unexpected}"
    assert any(kind == "CustomResourceDefinition" for _, kind, _, _ in leftovers), "Helm keeps the CRDs"
    running = deployment.node.kubectl("get", "pods", "-A", "-o", "name").stdout.split()
    assert running == [], f"pods still on the node after destroy: {running}"


def is_crd_leftover(deployment: Deployment, item: tuple[str, str, str, str]) -> bool:
    """A ``monitoring.coreos.com`` CRD, or the local APIService the API server registers for each of its
    versions (removed by the server with the CRD)."""
    _, kind, _, name = item
    if kind == "CustomResourceDefinition":
        return name.endswith(".monitoring.coreos.com")
    return kind == "APIService" and name.endswith(".monitoring.coreos.com")
