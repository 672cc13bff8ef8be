"""The rules a change must respect before it reaches a cluster, as CrossGuard resource policies.

They judge what the program declares (the inputs the engine sees at preview), so a violation shows up on the
pull request's preview instead of as a pod that is OOM-killed, an image that changed under a tag, a Grafana
with the chart's well-known password, a monitor Prometheus silently ignores, or a cluster deleted by a stray
``pulumi destroy``. Every message names the resource (type and name) and says how to fix it.

Importable without starting anything: ``PolicyPack``'s constructor serves forever, so it is built only in
this folder's ``__main__.py``; tests call each policy's ``validate`` directly.

The pack stands on its own (``pulumi policy publish`` ships this folder alone, with ``requirements.txt``), so
it imports nothing of the program: the few names it shares with it (the project's config namespace, the
``release`` label the chart's Prometheus selects monitors by, the default release name) are written here, and
``tests/test_policies.py`` checks each against the program's own definition.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pulumi
from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

PACK_NAME = "ml-observability"
PROJECT = "ml-observability"
"""The program's project name: the namespace of its config keys (``ml-observability:monitoring``)."""
RELEASE_LABEL = "release"
"""The label kube-prometheus-stack's Prometheus selects monitors and rules by, valued with the release's name."""
DEFAULT_RELEASE_NAME = "kube-prometheus-stack"
"""The program's release name when the stack sets no ``monitoring.releaseName``."""

# Pod-bearing kinds and where their pod spec sits: the chart's own pods are hidden inside the Helm release,
# but every workload the program declares itself is one of these.
POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "kubernetes:core/v1:Pod": ("spec",),
    "kubernetes:apps/v1:Deployment": ("spec", "template", "spec"),
    "kubernetes:apps/v1:StatefulSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:DaemonSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:ReplicaSet": ("spec", "template", "spec"),
    "kubernetes:batch/v1:Job": ("spec", "template", "spec"),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
HELM_TYPES = ("kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart")
# Objects the Prometheus operator selects by label: one without the selector's labels is skipped silently.
MONITOR_TYPES = (
    "kubernetes:monitoring.coreos.com/v1:ServiceMonitor",
    "kubernetes:monitoring.coreos.com/v1:PodMonitor",
    "kubernetes:monitoring.coreos.com/v1:PrometheusRule",
    "kubernetes:monitoring.coreos.com/v1:Probe",
)
# The cloud clusters of the project's stacks; aws:eks/cluster:Cluster is the EKS control plane the eks
# component creates, which a policy sees when the component itself is not analysed.
CLOUD_CLUSTER_TYPES = (
    "eks:index:Cluster",
    "aws:eks/cluster:Cluster",
    "azure-native:containerservice:ManagedCluster",
    "gcp:container/cluster:Cluster",
)
EXACT_VERSION = re.compile(r"^v?[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")


def stack_release_name() -> str | None:
    """The stack's ``monitoring.releaseName``, when the engine passed the stack's config to the pack.

    The CLI hands a policy pack the stack's configuration in ``PULUMI_CONFIG`` (``constructEnv`` in pulumi's
    analyzer plugin), which pulumi-policy loads into the runtime's config.
    """
    raw = pulumi.runtime.get_config(f"{PROJECT}:monitoring")
    try:
        monitoring = json.loads(raw) if raw else None
    except ValueError:
        return None
    name = monitoring.get("releaseName") if isinstance(monitoring, dict) else None
    return name if isinstance(name, str) and name else None


def discovery_labels(release_name: str | None = None) -> dict[str, str]:
    """The labels Prometheus selects monitors and rules by for a release (the program's discovery contract, which
    a test compares with this)."""
    return {RELEASE_LABEL: release_name or stack_release_name() or DEFAULT_RELEASE_NAME}


# -------------------------------------------------------------------------------------------------------------
# helpers
# -------------------------------------------------------------------------------------------------------------


def _get(value: Any, *path: str) -> Any:
    """The value at ``path`` in nested mappings, or ``None`` where any step is missing."""
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _items(value: Any) -> list[Any]:
    """A list input, or nothing: a missing list and an empty one mean the same to these rules."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        return list(value)
    return []


def describe(args: ResourceValidationArgs) -> str:
    """``<type> '<name>'``, with the Kubernetes object's or Helm release's name when it differs: a subject."""
    subject = f"{args.resource_type} '{args.name}'"
    if args.resource_type in HELM_TYPES:
        noun, object_name, namespace = "release", _get(args.props, "name"), _get(args.props, "namespace")
    else:
        noun, object_name, namespace = "object", _get(args.props, "metadata", "name"), _get(
            args.props, "metadata", "namespace"
        )
    if isinstance(object_name, str) and object_name and object_name != args.name:
        subject += f" ({noun} {namespace + '/' if isinstance(namespace, str) and namespace else ''}{object_name})"
    return subject


def containers(args: ResourceValidationArgs) -> Iterator[tuple[str, Mapping[str, Any], Mapping[str, Any]]]:
    """Every container and init container of a workload, with its path for messages and its pod spec."""
    path = POD_SPEC_PATHS.get(args.resource_type)
    if path is None:
        return
    pod = _get(args.props, *path)
    if not isinstance(pod, Mapping):
        return
    for field in ("initContainers", "containers"):
        for container in _items(pod.get(field)):
            if isinstance(container, Mapping):
                yield f"{'.'.join(path)}.{field}[name={container.get('name', '?')}]", container, pod


def chart_name(props: Mapping[str, Any]) -> str:
    """The chart's bare name whatever the reference: ``repo/name``, ``oci://host/path/name``, ``name-1.2.3.tgz``."""
    chart = str(props.get("chart") or "")
    name = chart.rstrip("/").rsplit("/", 1)[-1]
    if name.endswith(".tgz"):
        name = re.sub(r"-v?[0-9]+\.[0-9]+\.[0-9]+.*$", "", name.removesuffix(".tgz"))
    return name


def _missing_quantity(value: Any) -> bool:
    return value is None or value == "" or str(value).strip() in ("0", "0.0")


# -------------------------------------------------------------------------------------------------------------
# the policies
# -------------------------------------------------------------------------------------------------------------


def _validate_resources(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """Without requests the scheduler packs pods blindly; without a memory limit one leak takes the node down."""
    if args.resource_type not in POD_SPEC_PATHS:
        return
    for where, container, _pod in containers(args):
        resources = container.get("resources")
        missing = [
            key
            for key in ("requests.cpu", "requests.memory", "limits.memory")
            if _missing_quantity(_get(resources, *key.split(".")))
        ]
        if missing:
            report(
                f"{describe(args)}: {where} has no {', '.join('resources.' + m for m in missing)}. "
                "Set them in the container spec (for example resources: {requests: {cpu: 100m, memory: 256Mi}, "
                "limits: {memory: 512Mi}}), sized from the container's observed usage.",
                None,
            )


def _validate_non_root(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """A process running as root in a container is one escape away from root on the node."""
    if args.resource_type not in POD_SPEC_PATHS:
        return
    for where, container, pod in containers(args):
        pod_context = pod.get("securityContext") or {}
        own_context = container.get("securityContext") or {}
        run_as_non_root = own_context.get("runAsNonRoot", pod_context.get("runAsNonRoot"))
        run_as_user = own_context.get("runAsUser", pod_context.get("runAsUser"))
        if run_as_user is not None and float(run_as_user) == 0:
            report(
                f"{describe(args)}: {where} runs as UID 0 (root). Set securityContext.runAsUser to a non-zero "
                "UID and securityContext.runAsNonRoot: true on the pod or the container.",
                None,
            )
        elif run_as_non_root is not True and run_as_user is None:
            reason = "sets runAsNonRoot: false" if run_as_non_root is False else "may run as root"
            report(
                f"{describe(args)}: {where} {reason}: neither the pod nor the container sets "
                "securityContext.runAsNonRoot: true or a non-zero runAsUser. Set runAsNonRoot: true (and runAsUser "
                "to the image's non-root UID if its USER is not numeric) in the pod's securityContext.",
                None,
            )


def image_problem(image: str) -> str | None:
    """Why an image reference is not reproducible, or ``None`` when it is pinned by tag or digest."""
    if "@sha256:" in image:
        return None
    last_segment = image.rsplit("/", 1)[-1]
    if ":" not in last_segment:
        return "has no tag, so it means ':latest'"
    if last_segment.rsplit(":", 1)[-1] == "latest":
        return "uses the ':latest' tag"
    return None


def _validate_image(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """``latest`` moves: a rollback, a new node or a restart may run different code than the one reviewed."""
    if args.resource_type not in POD_SPEC_PATHS:
        return
    for where, container, _pod in containers(args):
        image = container.get("image")
        if not isinstance(image, str) or not image:
            report(f"{describe(args)}: {where} has no image. Set image to a tagged reference.", None)
            continue
        problem = image_problem(image)
        if problem is not None:
            report(
                f"{describe(args)}: {where} image '{image}' {problem}. Pin it to a version tag "
                "(registry/name:1.2.3) or a digest (registry/name@sha256:...).",
                None,
            )


def _validate_chart_version(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """An unpinned chart upgrades itself on the next ``pulumi up``, unreviewed, CRDs and all."""
    if args.resource_type not in HELM_TYPES:
        return
    chart = str(args.props.get("chart") or "")
    if chart.startswith((".", "/", "file://")):
        args.not_applicable("a chart from a local folder is versioned with the repository")
    if re.search(r"-v?[0-9]+\.[0-9]+\.[0-9]+[^/]*\.tgz$", chart):
        return  # a URL of one packaged version
    version = args.props.get("version")
    if not isinstance(version, str) or not EXACT_VERSION.match(version):
        got = f"version '{version}'" if version else "no version"
        report(
            f"{describe(args)}: chart '{chart}' has {got}, so the next update may install a different chart. "
            "Set version to one exact chart version (for example '88.5.3') and change it in a reviewed commit.",
            None,
        )


def _validate_grafana_password(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """A password in the values is stored in the Helm release and the state; without an existing Secret the chart
    makes up its own, which nobody holds and which the chart's Secret may change under Grafana."""
    if args.resource_type not in HELM_TYPES:
        return
    name = chart_name(args.props)
    values = args.props.get("values") or {}
    if name == "kube-prometheus-stack":
        grafana, prefix = values.get("grafana") or {}, "grafana."
        if grafana.get("enabled") is False:
            args.not_applicable("Grafana is disabled in this release")
    elif name == "grafana":
        grafana, prefix = values, ""
    else:
        args.not_applicable(f"chart '{name}' deploys no Grafana")
        return
    if grafana.get("adminPassword"):
        report(
            f"{describe(args)}: values set {prefix}adminPassword, which puts the password in the release's values "
            f"(stored in the Helm release and the Pulumi state). Remove it and set {prefix}admin.existingSecret to "
            "a Kubernetes Secret holding admin-user and admin-password.",
            None,
        )
    if _get(grafana, "env", "GF_SECURITY_ADMIN_PASSWORD"):
        report(
            f"{describe(args)}: values set {prefix}env.GF_SECURITY_ADMIN_PASSWORD in plain text. Remove it and set "
            f"{prefix}admin.existingSecret to a Kubernetes Secret holding admin-user and admin-password.",
            None,
        )
    existing = _get(grafana, "admin", "existingSecret")
    if not isinstance(existing, str) or not existing.strip():
        report(
            f"{describe(args)}: {prefix}admin.existingSecret is not set, so Grafana's admin password comes from "
            "the chart (its values or a password it generates). Create a Secret with "
            f"admin-user and admin-password (e.g. from pulumi_random) and name it in {prefix}admin.existingSecret.",
            None,
        )


def _validate_discovery_labels(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """Prometheus loads only the monitors and rules its selectors match, and says nothing about the others."""
    if args.resource_type not in MONITOR_TYPES:
        return
    configured = args.get_config().get("labels")
    expected: Mapping[str, Any] = configured if isinstance(configured, Mapping) else discovery_labels()
    labels = _get(args.props, "metadata", "labels") or {}
    wrong = {key: value for key, value in expected.items() if labels.get(key) != value}
    if wrong:
        have = {key: labels.get(key) for key in wrong}
        report(
            f"{describe(args)}: metadata.labels lack the labels Prometheus selects by: expected {dict(wrong)}, "
            f"found {have}. Add them to metadata.labels (take them from the monitoring stack's discovery contract, "
            "never retyped), or the object is never loaded.",
            None,
        )


def _validate_cluster_protected(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """Deleting a cloud cluster deletes every volume, metric and dashboard on it: it must take two steps."""
    if args.resource_type not in CLOUD_CLUSTER_TYPES:
        return
    if not args.opts.protect:
        report(
            f"{describe(args)} is not protected, so `pulumi destroy` or a replacement deletes it at once. Set "
            f"{PROJECT}:cluster.protect: true in the stack file (the default), or pass "
            "ResourceOptions(protect=True); unprotect deliberately before deleting a cluster.",
            None,
        )


def _policy(name: str, description: str, validate: Callable[[ResourceValidationArgs, ReportViolation], None],
            config_schema: PolicyConfigSchema | None = None) -> ResourceValidationPolicy:
    return ResourceValidationPolicy(
        name=name,
        description=description,
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=config_schema,
    )


def build_policies() -> list[ResourceValidationPolicy]:
    """Every policy of the pack, each mandatory (a pack config may lower one per stack)."""
    return [
        _policy(
            "containers-have-resources",
            "Containers request CPU and memory and limit memory.",
            _validate_resources,
        ),
        _policy(
            "containers-run-as-non-root",
            "Containers run as a non-root user (runAsNonRoot or a non-zero runAsUser).",
            _validate_non_root,
        ),
        _policy(
            "images-are-pinned",
            "Container images carry a version tag or a digest, never 'latest' or no tag.",
            _validate_image,
        ),
        _policy(
            "helm-charts-pin-a-version",
            "Helm releases and charts name one exact chart version.",
            _validate_chart_version,
        ),
        _policy(
            "grafana-admin-password-from-secret",
            "Grafana's admin password comes from an existing Kubernetes Secret, never from chart values.",
            _validate_grafana_password,
        ),
        _policy(
            "monitors-carry-discovery-labels",
            "ServiceMonitors, PodMonitors, Probes and PrometheusRules carry the labels Prometheus selects by.",
            _validate_discovery_labels,
            PolicyConfigSchema(
                properties={
                    "labels": {
                        "type": "object",
                        "additionalProperties": {"type": "string"},
                        # No "default": the CLI would fill it in and hide the stack's own release name.
                        "description": "Labels every monitor and rule must carry. Unset: the monitoring stack's "
                        "discovery contract for the stack's monitoring.releaseName (release: <name>).",
                    }
                }
            ),
        ),
        _policy(
            "cloud-clusters-are-protected",
            "EKS, AKS and GKE clusters are protected from deletion.",
            _validate_cluster_protected,
        ),
    ]
