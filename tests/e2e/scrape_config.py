"""The Prometheus scrape configuration a ServiceMonitor becomes, for Service endpoints that are local processes.

The program's ServiceMonitor and Service (and the Deployment whose pods back the Service) are translated the
way the Prometheus Operator (v0.93, ``serviceDiscoveryRole: Endpoints``, the chart's default) translates them,
so that the end-to-end suite proves the objects the program declares, not a configuration written by hand:

* One scrape job per ServiceMonitor endpoint, named ``serviceMonitor/<namespace>/<name>/<index>``, with the
  endpoint's ``interval``, ``scrapeTimeout``, ``path``, ``scheme``, ``params``, ``honorLabels`` and
  ``honorTimestamps``; its ``metricRelabelings`` become ``metric_relabel_configs``.
* The operator's ``relabel_configs``, in its order: remember the job name; **keep** only Services whose labels
  satisfy the ServiceMonitor's ``selector`` (``matchLabels`` and ``matchExpressions``, on
  ``__meta_kubernetes_service_label_*``/``labelpresent_*``); **keep** only the endpoint port named by
  ``port`` (or the container port given by ``targetPort``); set ``namespace``, ``service``, ``pod`` and
  ``container`` from the discovery's meta labels; drop finished pods; copy ``targetLabels`` and
  ``podTargetLabels``; set ``job`` to the Service's name, or to its ``jobLabel`` label; set ``endpoint`` to
  the port's name; then the endpoint's own ``relabelings``; then the single shard's ``hashmod``/``keep``.
  Prometheus itself evaluates these rules, so a selector that misses the Service, or a port name the Service
  lacks, leaves the job without targets here exactly as in a cluster.
* Kubernetes service discovery is replaced by a ``file_sd_configs`` file that holds, per endpoint address,
  the meta labels Kubernetes SD (role ``endpoints``) would attach: the namespace, the Service's name and
  labels, the endpoint port's name and protocol, readiness, and the backing pod's name, labels, phase and
  container. Its addresses are those of the Service's endpoints: one per pod the Service's ``selector``
  matches, at the local port that stands for the pod's container port (resolved from the Service port's
  ``targetPort`` by name or number against the Deployment's container ports). A pod that is not ready stays
  listed with ``__meta_kubernetes_endpoint_ready="false"``, as Kubernetes SD lists not-ready addresses.
  Updating that file is how a rolling update or a crashed pod reaches Prometheus, as an Endpoints change
  would. The namespaces the ServiceMonitor's ``namespaceSelector`` names (discovery's ``namespaces`` in the
  operator's output) become one more ``keep`` on ``__meta_kubernetes_namespace``.

Anything of a ServiceMonitor endpoint this translation does not know (TLS, authorisation, proxies, …) is an
error rather than silently dropped, so a monitor that grows such a field fails here first.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.e2e.processes import LOOPBACK

SUPPORTED_ENDPOINT_FIELDS = frozenset(
    {
        "port", "targetPort", "path", "scheme", "interval", "scrapeTimeout", "params", "honorLabels",
        "honorTimestamps", "relabelings", "metricRelabelings",
    }
)
SUPPORTED_SPEC_FIELDS = frozenset(
    {"selector", "namespaceSelector", "endpoints", "jobLabel", "targetLabels", "podTargetLabels"}
)
_RELABEL_KEYS = {
    "sourceLabels": "source_labels",
    "separator": "separator",
    "targetLabel": "target_label",
    "regex": "regex",
    "modulus": "modulus",
    "replacement": "replacement",
    "action": "action",
}


def sanitize(name: str) -> str:
    """A Kubernetes label key as Prometheus' Kubernetes SD spells it in meta labels
    (``app.kubernetes.io/name`` → ``app_kubernetes_io_name``)."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def _relabel(rule: Mapping[str, Any]) -> dict[str, Any]:
    """A ServiceMonitor relabeling (camelCase, any-case action) as Prometheus reads it."""
    unknown = set(rule) - set(_RELABEL_KEYS)
    if unknown:
        raise ValueError(f"relabeling with fields this translation does not know: {sorted(unknown)}")
    translated = {_RELABEL_KEYS[key]: value for key, value in rule.items()}
    if "action" in translated:
        translated["action"] = str(translated["action"]).lower()
    if "modulus" in translated:
        translated["modulus"] = int(translated["modulus"])
    return translated


def _selector_rules(selector: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The operator's keep/drop rules for a label selector on the Service's labels."""
    unknown = set(selector) - {"matchLabels", "matchExpressions"}
    if unknown:
        raise ValueError(f"selector fields this translation does not know: {sorted(unknown)}")
    rules: list[dict[str, Any]] = []
    for key, value in sorted((selector.get("matchLabels") or {}).items()):
        rules.append({
            "action": "keep",
            "source_labels": [f"__meta_kubernetes_service_label_{sanitize(key)}",
                              f"__meta_kubernetes_service_labelpresent_{sanitize(key)}"],
            "regex": f"({value});true",
        })
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        label = f"__meta_kubernetes_service_label_{sanitize(key)}"
        present = f"__meta_kubernetes_service_labelpresent_{sanitize(key)}"
        if operator in ("In", "NotIn"):
            rules.append({
                "action": "keep" if operator == "In" else "drop",
                "source_labels": [label, present],
                "regex": f"({'|'.join(values)});true",
            })
        elif operator in ("Exists", "DoesNotExist"):
            rules.append({
                "action": "keep" if operator == "Exists" else "drop",
                "source_labels": [present],
                "regex": "true",
            })
        else:
            raise ValueError(f"unknown selector operator {operator!r}")
    return rules


def _selected_namespaces(monitor: Mapping[str, Any]) -> list[str] | None:
    """Namespaces the operator restricts discovery to: ``matchNames``, none for ``any``, else its own."""
    selector = monitor["spec"].get("namespaceSelector") or {}
    if selector.get("any"):
        return None
    return list(selector.get("matchNames") or [monitor["metadata"]["namespace"]])


def scrape_jobs(monitor: Mapping[str, Any], sd_file: str) -> list[dict[str, Any]]:
    """The scrape jobs of one ServiceMonitor (its manifest: ``metadata`` and camelCase ``spec``)."""
    spec = monitor["spec"]
    unknown_spec = set(spec) - SUPPORTED_SPEC_FIELDS
    if unknown_spec:
        raise ValueError(f"ServiceMonitor spec fields this translation does not know: {sorted(unknown_spec)}")
    namespace = monitor["metadata"]["namespace"]
    name = monitor["metadata"]["name"]
    jobs = []
    for index, endpoint in enumerate(spec["endpoints"]):
        unknown = set(endpoint) - SUPPORTED_ENDPOINT_FIELDS
        if unknown:
            raise ValueError(f"ServiceMonitor endpoint fields this translation does not know: {sorted(unknown)}")
        relabel: list[dict[str, Any]] = [
            {"source_labels": ["job"], "target_label": "__tmp_prometheus_job_name"},
        ]
        namespaces = _selected_namespaces(monitor)
        if namespaces is not None:  # what kubernetes_sd_configs' namespaces.names does at discovery
            relabel.append({
                "action": "keep",
                "source_labels": ["__meta_kubernetes_namespace"],
                "regex": "|".join(re.escape(n) for n in namespaces),
            })
        relabel += _selector_rules(spec.get("selector") or {})
        port, target_port = endpoint.get("port"), endpoint.get("targetPort")
        if port:
            relabel.append({"action": "keep", "source_labels": ["__meta_kubernetes_endpoint_port_name"],
                            "regex": port})
        elif target_port is not None:
            meta = "number" if isinstance(target_port, (int, float)) else "name"
            relabel.append({"action": "keep", "source_labels": [f"__meta_kubernetes_pod_container_port_{meta}"],
                            "regex": str(int(target_port)) if meta == "number" else target_port})
        relabel += [
            {"source_labels": ["__meta_kubernetes_endpoint_address_target_kind",
                               "__meta_kubernetes_endpoint_address_target_name"],
             "separator": ";", "regex": "Node;(.*)", "replacement": "${1}", "target_label": "node"},
            {"source_labels": ["__meta_kubernetes_endpoint_address_target_kind",
                               "__meta_kubernetes_endpoint_address_target_name"],
             "separator": ";", "regex": "Pod;(.*)", "replacement": "${1}", "target_label": "pod"},
            {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
            {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "service"},
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
            {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
            {"action": "drop", "source_labels": ["__meta_kubernetes_pod_phase"], "regex": "(Failed|Succeeded)"},
        ]
        for label in spec.get("targetLabels") or []:
            relabel.append({"source_labels": [f"__meta_kubernetes_service_label_{sanitize(label)}"],
                            "target_label": sanitize(label), "regex": "(.+)", "replacement": "${1}"})
        for label in spec.get("podTargetLabels") or []:
            relabel.append({"source_labels": [f"__meta_kubernetes_pod_label_{sanitize(label)}"],
                            "target_label": sanitize(label), "regex": "(.+)", "replacement": "${1}"})
        relabel.append({"source_labels": ["__meta_kubernetes_service_name"], "target_label": "job",
                        "replacement": "${1}"})
        if spec.get("jobLabel"):
            relabel.append({"source_labels": [f"__meta_kubernetes_service_label_{sanitize(spec['jobLabel'])}"],
                            "target_label": "job", "regex": "(.+)", "replacement": "${1}"})
        if port:
            relabel.append({"target_label": "endpoint", "replacement": port})
        elif target_port is not None:
            relabel.append({"target_label": "endpoint", "replacement": str(target_port)})
        relabel += [_relabel(rule) for rule in endpoint.get("relabelings") or []]
        # One shard: the operator's hashmod/keep pair with $(SHARD) already substituted by its config reloader.
        relabel += [
            {"source_labels": ["__address__"], "target_label": "__tmp_hash", "modulus": 1, "action": "hashmod"},
            {"source_labels": ["__tmp_hash"], "regex": "0", "action": "keep"},
        ]
        job: dict[str, Any] = {
            "job_name": f"serviceMonitor/{namespace}/{name}/{index}",
            "honor_labels": bool(endpoint.get("honorLabels", False)),
            "file_sd_configs": [{"files": [sd_file], "refresh_interval": "1s"}],
        }
        if "honorTimestamps" in endpoint:
            job["honor_timestamps"] = bool(endpoint["honorTimestamps"])
        for source, target in (("interval", "scrape_interval"), ("scrapeTimeout", "scrape_timeout"),
                               ("path", "metrics_path"), ("scheme", "scheme")):
            if endpoint.get(source):
                job[target] = endpoint[source]
        if endpoint.get("params"):
            job["params"] = {key: list(values) for key, values in endpoint["params"].items()}
        job["relabel_configs"] = relabel
        if endpoint.get("metricRelabelings"):
            job["metric_relabel_configs"] = [_relabel(rule) for rule in endpoint["metricRelabelings"]]
        jobs.append(job)
    return jobs


@dataclass(frozen=True)
class LocalPod:
    """A running copy of the Deployment's pod: one local process, reached on 127.0.0.1 at ``port``."""

    name: str
    port: int
    """Local port that stands for the container's (only) port."""
    ready: bool = True


def pod_template_hash(deployment: Mapping[str, Any]) -> str:
    """A short hash of the pod template, as a ReplicaSet's name carries one: a changed template (new
    environment, say) makes new pod names, so a rolling update shows in the ``pod`` label as in a cluster."""
    template = repr(sorted(_flatten(deployment["spec"]["template"])))
    return hashlib.sha256(template.encode()).hexdigest()[:10]


def _flatten(value: Any, prefix: str = "") -> Iterable[tuple[str, str]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _flatten(item, f"{prefix}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _flatten(item, f"{prefix}[{index}]")
    else:
        yield prefix, repr(value)


def selector_matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """Whether a Service's equality selector picks pods with ``labels``."""
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


@dataclass(frozen=True)
class ServiceEndpoints:
    """The Service and the Deployment whose pods are its endpoints, as the program declares them."""

    service: Mapping[str, Any]
    deployment: Mapping[str, Any]
    extra_pod_labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def pod_labels(self) -> dict[str, str]:
        return {**self.deployment["spec"]["template"]["metadata"].get("labels", {}), **self.extra_pod_labels}

    @property
    def container(self) -> Mapping[str, Any]:
        containers = self.deployment["spec"]["template"]["spec"]["containers"]
        if len(containers) != 1:
            raise ValueError(f"one container per pod expected, the Deployment has {len(containers)}")
        return containers[0]

    def _container_port(self, target_port: Any) -> Mapping[str, Any]:
        """The container port a Service port's ``targetPort`` (name or number) resolves to."""
        for port in self.container.get("ports", []):
            if (isinstance(target_port, str) and port.get("name") == target_port) or (
                not isinstance(target_port, str) and int(port["containerPort"]) == int(target_port)
            ):
                return port
        raise ValueError(f"targetPort {target_port!r} names no port of container {self.container['name']!r}")

    def target_groups(self, pods: Sequence[LocalPod]) -> list[dict[str, Any]]:
        """The file_sd target groups Kubernetes SD (role ``endpoints``) would produce for this Service."""
        service = self.service
        metadata = service["metadata"]
        selector = service["spec"].get("selector") or {}
        if not selector_matches(selector, self.pod_labels):
            return []  # the Service selects none of the Deployment's pods: it has no endpoints
        common = {
            "__meta_kubernetes_namespace": metadata["namespace"],
            "__meta_kubernetes_endpoints_name": metadata["name"],
            "__meta_kubernetes_service_name": metadata["name"],
        }
        for key, value in (metadata.get("labels") or {}).items():
            common[f"__meta_kubernetes_service_label_{sanitize(key)}"] = value
            common[f"__meta_kubernetes_service_labelpresent_{sanitize(key)}"] = "true"
        for key, value in (metadata.get("annotations") or {}).items():
            common[f"__meta_kubernetes_service_annotation_{sanitize(key)}"] = value
            common[f"__meta_kubernetes_service_annotationpresent_{sanitize(key)}"] = "true"
        groups = []
        for service_port in service["spec"]["ports"]:
            container_port = self._container_port(service_port.get("targetPort", service_port["port"]))
            for pod in pods:
                labels = dict(common)
                labels.update({
                    "__meta_kubernetes_endpoint_ready": "true" if pod.ready else "false",
                    "__meta_kubernetes_endpoint_port_name": service_port.get("name", ""),
                    "__meta_kubernetes_endpoint_port_protocol": service_port.get("protocol", "TCP"),
                    "__meta_kubernetes_endpoint_address_target_kind": "Pod",
                    "__meta_kubernetes_endpoint_address_target_name": pod.name,
                    "__meta_kubernetes_pod_name": pod.name,
                    "__meta_kubernetes_pod_ip": LOOPBACK,
                    "__meta_kubernetes_pod_ready": "true" if pod.ready else "false",
                    "__meta_kubernetes_pod_phase": "Running",
                    "__meta_kubernetes_pod_container_name": self.container["name"],
                    "__meta_kubernetes_pod_container_port_name": container_port.get("name", ""),
                    "__meta_kubernetes_pod_container_port_number": str(int(container_port["containerPort"])),
                    "__meta_kubernetes_pod_container_port_protocol": container_port.get("protocol", "TCP"),
                    "__meta_kubernetes_pod_controller_kind": "ReplicaSet",
                    "__meta_kubernetes_pod_controller_name": pod.name.rsplit("-", 1)[0],
                })
                if service_port.get("appProtocol"):
                    labels["__meta_kubernetes_endpoint_port_app_protocol"] = service_port["appProtocol"]
                for key, value in self.pod_labels.items():
                    labels[f"__meta_kubernetes_pod_label_{sanitize(key)}"] = value
                    labels[f"__meta_kubernetes_pod_labelpresent_{sanitize(key)}"] = "true"
                groups.append({"targets": [f"{LOOPBACK}:{pod.port}"], "labels": labels})
        return groups
