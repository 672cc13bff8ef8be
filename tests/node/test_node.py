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
import threading
import time
from typing import Any

import pytest
from model_service import contract

from components.contracts import Severity
from components.model.config import SAMPLE_MODEL_NAME
from components.model.deployment import MODEL_SERVICE_UID
from components.monitoring.alertmanager import NULL_RECEIVER, receiver_name, severity_receivers
from components.monitoring.config import AlertingConfig
from components.monitoring.values import ALERTMANAGER_PORT, PROMETHEUS_PORT
from components.monitors.cluster_metrics import (
    CONTAINER_MEMORY_WORKING_SET_BYTES,
    KUBE_POD_CONTAINER_RESOURCE_LIMITS,
)
from components.monitors.data_quality_rules import INPUT_QUALITY_ALERT
from components.monitors.drift_rules import FEATURE_DRIFT_ALERT
from components.monitors.model_dashboards import config_map_name
from components.monitors.model_rules import MEMORY_ALERT, MEMORY_NEAR_LIMIT, RESTARTS_ALERT
from components.monitors.model_slos import AVAILABILITY_ALERT, LATENCY_ALERT
from components.monitors.overview_dashboard import MODEL_DASHBOARD_TITLE
from components.monitors.prediction_rules import STALE_ALERT
from components.monitors.rule_model import parse_duration
from tests.e2e.dashboard import expand, queries_by_row, query_variables
from tests.e2e.stack import model_target_labels
from tests.node.conftest import TIMINGS
from tests.node.deployment import Deployment, stack_section
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


def test_a_model_older_than_its_maximum_age_fires_model_stale(deployment: Deployment) -> None:
    """The model image is built reproducibly (``SOURCE_DATE_EPOCH`` in ``scripts/install-node.sh``), so its model
    counts as trained on that fixed date, months before today and past the stack's maximum age: ``ModelStale``
    fires from the training time the service exports, with the model's age in days as its value."""
    api, am = prometheus(deployment), alertmanager(deployment)
    namespace, job = model_scope(deployment)
    max_age = stack_section("models")[SAMPLE_MODEL_NAME]["monitors"]["maxModelAge"]
    limit_seconds = parse_duration(max_age) / 1000
    trained = poll("the model's training time in Prometheus", lambda: api.value(
        f'max({contract.MODEL_TRAINED_TIMESTAMP.name}{{namespace="{namespace}", job="{job}"}})'),
        timeout=READY_TIMEOUT, interval=1)
    assert isinstance(trained, float) and time.time() - trained > limit_seconds, (trained, limit_seconds)

    stale = poll(f"{STALE_ALERT} active in Alertmanager", lambda: [
        a for a in model_alerts(deployment, am) if a["labels"]["alertname"] == STALE_ALERT],
        timeout=READY_TIMEOUT, interval=1, diagnose=lambda: json.dumps(api.alerts(), indent=1)[:4000])
    assert isinstance(stale, list) and len(stale) == 1, stale
    labels = stale[0]["labels"]
    assert (labels["severity"], labels["namespace"], labels["job"], labels["model_name"]) == (
        "warning", namespace, job, SAMPLE_MODEL_NAME), labels
    assert {r["name"] for r in stale[0]["receivers"]} == routed_receivers(Severity.WARNING)
    [firing] = [a for a in api.alerts() if a["labels"]["alertname"] == STALE_ALERT and a["state"] == "firing"]
    assert float(firing["value"]) == pytest.approx((time.time() - trained) / 86_400, abs=0.01), firing


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
# 4. the workload's own alerts, from the kubelet's and kube-state-metrics' series
# ---------------------------------------------------------------------------------------------------------


def routed_receivers(severity: Severity) -> set[str]:
    """The receivers the stack's alerting section routes ``severity`` to (the null receiver when none is set)."""
    reached = severity_receivers(AlertingConfig.model_validate(stack_section("alerting")))[severity]
    return {receiver_name(r) for r in reached} or {NULL_RECEIVER}


SLO_ALERTS = frozenset({AVAILABILITY_ALERT, LATENCY_ALERT})
BACKGROUND_ALERTS = frozenset({(FEATURE_DRIFT_ALERT, DRIFTED_FEATURE), (INPUT_QUALITY_ALERT, DRIFTED_FEATURE),
                               (STALE_ALERT, None)})
"""What fires while the later scenarios run: the drift scenario's alerts, since its traffic goes on (the drift of its
feature, and that feature's input quality: a shift of three standard deviations takes about 14% of its values past
the training range), and the model's age (``test_a_model_older_than_its_maximum_age_fires_model_stale``)."""


def model_alerts(deployment: Deployment, am: AlertmanagerApi) -> list[dict[str, Any]]:
    """The active alerts in Alertmanager that the model's own PrometheusRule declares (not the chart's rules),
    its SLO burn alerts aside: on this node the model shares two cores with a control plane, a monitoring stack
    and the tests, so how fast it answers depends on the machine's load, which no assertion here may."""
    names = {rule["alert"] for group in prometheus_rule(deployment)["spec"]["groups"] for rule in group["rules"]
             if "alert" in rule} - SLO_ALERTS
    return [a for a in am.alerts() if a["labels"].get("alertname") in names and a["status"]["state"] == "active"]


def wait_model_alert(deployment: Deployment, am: AlertmanagerApi, name: str, pod: str) -> dict[str, Any]:
    found = poll(f"{name} for pod {pod} active in Alertmanager",
                 lambda: [a for a in model_alerts(deployment, am)
                          if a["labels"]["alertname"] == name and a["labels"].get("pod") == pod],
                 timeout=READY_TIMEOUT, interval=1,
                 diagnose=lambda: json.dumps(prometheus(deployment).alerts(), indent=1)[:4000])
    assert isinstance(found, list)
    return found[0]


def model_container(deployment: Deployment, pod: dict[str, Any]) -> dict[str, Any]:
    """The model container's status, as the kubelet reports it now."""
    namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
    current = deployment.node.kubectl_json("get", "pod", "-n", namespace, name)
    [status] = current["status"]["containerStatuses"]
    return dict(status)


MEMORY_HOLDER_PID = "/tmp/memory-holder.pid"
MEMORY_HOLDER = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
open(PID_FILE, "w").write(str(os.getpid()))
V1 = "/sys/fs/cgroup/memory/"
usage_file, stat_file, inactive_key = (
    (V1 + "memory.usage_in_bytes", V1 + "memory.stat", "total_inactive_file") if os.path.isdir(V1)
    else ("/sys/fs/cgroup/memory.current", "/sys/fs/cgroup/memory.stat", "inactive_file"))

def working_set():
    inactive = next(int(line.split()[1]) for line in open(stat_file) if line.split()[0] == inactive_key)
    return int(open(usage_file).read()) - inactive

held = []
while working_set() < TARGET:
    held.append(b"\\x01" * min(4 << 20, TARGET - working_set()))
time.sleep(SECONDS)
"""
"""Run inside the model's container, so in its memory cgroup: it grows its memory in steps, reading the
container's working set as cAdvisor computes it (usage less inactive page cache, from the cgroup's own files),
until that reaches ``TARGET`` bytes, then keeps it. What the kubelet reports about the container lags by a scrape,
so the holder, not the test, decides how much to take: the container reaches the target and never its limit."""


def hold_memory(deployment: Deployment, pod: dict[str, Any], target: int, seconds: float) -> threading.Thread:
    """The container's working set held at ``target`` bytes for ``seconds`` unless killed first: what a leak in
    the server looks like from outside."""
    code = f"PID_FILE = {MEMORY_HOLDER_PID!r}\nTARGET = {target}\nSECONDS = {seconds}\n{MEMORY_HOLDER}"
    thread = threading.Thread(target=exec_in, args=(deployment, pod, code), name="memory-holder", daemon=True)
    thread.start()
    return thread


def test_memory_held_near_the_limit_fires_the_memory_alert_and_nothing_else(deployment: Deployment) -> None:
    api, am = prometheus(deployment), alertmanager(deployment)
    namespace, job = model_scope(deployment)
    pod = next(p for p in model_pods(deployment) if ready(p))
    name = pod["metadata"]["name"]
    [container] = model_deployment(deployment)["spec"]["template"]["spec"]["containers"]
    # The limit as kube-state-metrics reports it, which is what the alert divides by; the pod may be the previous
    # scenario's replacement, which kube-state-metrics and the kubelet have not been scraped for yet.
    limit = poll("the model container's memory limit in Prometheus", lambda: api.value(
        f'max({KUBE_POD_CONTAINER_RESOURCE_LIMITS}{{namespace="{namespace}", pod="{name}", '
        f'container="{container["name"]}", resource="memory"}})'), timeout=READY_TIMEOUT, interval=1)
    assert isinstance(limit, float) and limit > 0, limit
    ratio = api.value(f'{MEMORY_NEAR_LIMIT}{{namespace="{namespace}", job="{job}"}}')
    assert ratio is not None and 0 < ratio < 1, ratio
    working_set = f'max({CONTAINER_MEMORY_WORKING_SET_BYTES}{{namespace="{namespace}", pod="{name}", ' \
                  f'container="{container["name"]}"}})'
    before = poll("the model container's working set in Prometheus", lambda: api.value(working_set),
                  timeout=READY_TIMEOUT, interval=1)
    assert isinstance(before, float) and before < ratio * limit, f"{before} bytes already over {ratio} of {limit}"
    restarts = model_container(deployment, pod)["restartCount"]

    # Halfway between the threshold and the limit: over the one, safely under the other (no OOM kill).
    target = int(limit * (ratio + (1 - ratio) / 2))
    started = time.monotonic()
    holder = hold_memory(deployment, pod, target, seconds=READY_TIMEOUT)
    try:
        alert = wait_model_alert(deployment, am, MEMORY_ALERT, name)
        TIMINGS["memory held to the memory alert in Alertmanager (s)"] = time.monotonic() - started
        labels = alert["labels"]
        assert (labels["severity"], labels["namespace"], labels["container"]) == (
            "warning", namespace, container["name"]), labels
        assert {r["name"] for r in alert["receivers"]} == routed_receivers(Severity.WARNING)
        peak = api.value(working_set)
        assert peak is not None and ratio * limit < peak < limit, (peak, ratio, limit)
        # Nothing else of the model's, the drift scenario's alerts aside, which still fire.
        others = {(a["labels"]["alertname"], a["labels"].get("feature")) for a in model_alerts(deployment, am)}
        assert others <= {(MEMORY_ALERT, None), *BACKGROUND_ALERTS}, others
    finally:
        exec_in(deployment, pod, f"import os, signal\nos.kill(int(open({MEMORY_HOLDER_PID!r}).read()), signal.SIGTERM)")
        holder.join(timeout=60)
    assert model_container(deployment, pod)["restartCount"] == restarts, "the container was killed by its limit"


def test_a_container_that_restarts_twice_fires_the_restarts_alert(deployment: Deployment) -> None:
    am = alertmanager(deployment)
    namespace, _ = model_scope(deployment)
    pod = next(p for p in model_pods(deployment) if ready(p))
    name = pod["metadata"]["name"]
    before = model_container(deployment, pod)["restartCount"]
    started = time.monotonic()
    for count in (1, 2):
        # SIGTERM to the server, PID 1 of its container: it drains and exits, and the kubelet starts it again.
        exec_in(deployment, pod, "import os, signal\nos.kill(1, signal.SIGTERM)")
        poll(f"the model's container restarted ({count}) and ready again",
             lambda count=count: (lambda s: s["restartCount"] >= before + count and s["ready"])(
                 model_container(deployment, pod)),
             timeout=READY_TIMEOUT, interval=1, diagnose=deployment.node.describe)
    restarted = time.monotonic()
    alert = wait_model_alert(deployment, am, RESTARTS_ALERT, name)
    TIMINGS["second restart to the restarts alert in Alertmanager (s)"] = time.monotonic() - restarted
    TIMINGS["two restarts, first kill to the alert (s)"] = time.monotonic() - started
    labels = alert["labels"]
    assert (labels["severity"], labels["namespace"], labels["pod"]) == ("warning", namespace, name), labels
    assert {r["name"] for r in alert["receivers"]} == routed_receivers(Severity.WARNING)
    # The memory alert of the previous scenario has resolved, and no other alert of the model's is active: the
    # target alerts need the pod down for longer than a restart takes.
    poll(f"{MEMORY_ALERT} resolved", lambda: not [a for a in model_alerts(deployment, am)
                                                  if a["labels"]["alertname"] == MEMORY_ALERT],
         timeout=READY_TIMEOUT, interval=1)
    others = {(a["labels"]["alertname"], a["labels"].get("feature")) for a in model_alerts(deployment, am)}
    assert others <= {(RESTARTS_ALERT, None), *BACKGROUND_ALERTS}, others


# ---------------------------------------------------------------------------------------------------------
# 5. the dashboard's queries, as Grafana sends them, against this Prometheus
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
# 6. destroy
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
