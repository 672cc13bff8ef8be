"""The policy pack, policy by policy: a resource that passes, one that violates, and what the message says.

Policies get their arguments the way the pack's analyzer builds them (``deserialize_properties`` then the
unknown-checking proxy), so a test exercises the same access paths as a real preview. The last tests feed
every registration the real program makes for each stack file to every policy: the project passes its own
rules.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import pulumi
import pytest
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc
from pulumi_policy import PolicyCustomTimeouts, PolicyResourceOptions, ResourceValidationArgs
from pulumi_policy.deserialize import SPECIAL_SECRET_SIG, SPECIAL_SIG_KEY, deserialize_properties
from pulumi_policy.policy import _NotApplicableError
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError, unknown_checking_proxy

from components.contracts import PROJECT
from policy import policies
from tests.harness import ROOT, SECRET, ProgramRun, Registration, load_stack_file, stack_files_under_test, stack_name

POLICIES = {policy.name: policy for policy in policies.build_policies()}
NOT_APPLICABLE = "not applicable"


def wire(value: Any) -> Any:
    """The harness's ``{SECRET: v}`` back into the engine's wire form of a secret."""
    if isinstance(value, dict):
        if set(value) == {SECRET}:
            return {SPECIAL_SIG_KEY: SPECIAL_SECRET_SIG, "value": wire(value[SECRET])}
        return {key: wire(item) for key, item in value.items()}
    if isinstance(value, list):
        return [wire(item) for item in value]
    return value


def resource_args(typ: str, props: dict[str, Any], name: str = "subject", protect: bool = False,
                  config: dict[str, Any] | None = None) -> ResourceValidationArgs:
    options = PolicyResourceOptions(
        protect=protect, ignore_changes=[], delete_before_replace=None, aliases=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0), additional_secret_outputs=[], parent=None,
    )
    proxied = unknown_checking_proxy(deserialize_properties(wire(props)))
    return ResourceValidationArgs(typ, proxied, f"urn:pulumi:test::{PROJECT}::{typ}::{name}", name, options, None,
                                  config)


def violations(policy: str, args: ResourceValidationArgs) -> list[str] | str:
    """The messages ``policy`` reports for ``args``, or ``NOT_APPLICABLE``."""
    messages: list[str] = []
    try:
        result = POLICIES[policy].validate(args, lambda message, urn=None: messages.append(message))
    except _NotApplicableError:
        return NOT_APPLICABLE
    assert result is None, "validators are synchronous"
    return messages


# -------------------------------------------------------------------------------------------------------------
# workloads
# -------------------------------------------------------------------------------------------------------------

DEPLOYMENT = "kubernetes:apps/v1:Deployment"


def deployment(container: dict[str, Any] | None = None, pod: dict[str, Any] | None = None) -> dict[str, Any]:
    good_container = {
        "name": "server",
        "image": "registry.example.com/model-service:3f2a9c81d0b4",
        "resources": {"requests": {"cpu": "200m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
        "securityContext": {"allowPrivilegeEscalation": False},
    }
    pod_spec = {"securityContext": {"runAsNonRoot": True, "runAsUser": 10001.0}, "containers": [good_container]}
    pod_spec.update(pod or {})
    good_container.update(container or {})
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "synthetic-classifier", "namespace": "models"},
        "spec": {"template": {"spec": pod_spec}},
    }


def test_a_well_formed_deployment_passes_every_workload_policy():
    args = resource_args(DEPLOYMENT, deployment(), name="model")
    for policy in ("containers-have-resources", "containers-run-as-non-root", "images-are-pinned"):
        assert violations(policy, args) == [], policy


@pytest.mark.parametrize("missing", ["requests.cpu", "requests.memory", "limits.memory"])
def test_a_container_without_a_request_or_memory_limit_is_reported(missing: str):
    props = deployment()
    resources = props["spec"]["template"]["spec"]["containers"][0]["resources"]
    section, key = missing.split(".")
    del resources[section][key]
    [message] = violations("containers-have-resources", resource_args(DEPLOYMENT, props, name="model"))
    assert message.startswith("kubernetes:apps/v1:Deployment 'model' (object models/synthetic-classifier): ")
    assert f"containers[name=server] has no resources.{missing}" in message
    assert "Set them in the container spec" in message


def test_init_containers_and_cronjobs_are_checked_too():
    job = {"spec": {"jobTemplate": {"spec": {"template": {"spec": {
        "securityContext": {"runAsNonRoot": True},
        "initContainers": [{"name": "migrate", "image": "busybox:1.37"}],
        "containers": [deployment()["spec"]["template"]["spec"]["containers"][0]],
    }}}}}}
    [message] = violations("containers-have-resources", resource_args("kubernetes:batch/v1:CronJob", job))
    assert "initContainers[name=migrate] has no resources.requests.cpu" in message


@pytest.mark.parametrize(
    "pod, container, problem",
    [
        ({"securityContext": {}}, {}, "may run as root"),
        ({"securityContext": {"runAsNonRoot": False}}, {}, "sets runAsNonRoot: false"),
        ({}, {"securityContext": {"runAsUser": 0}}, "runs as UID 0"),
    ],
    ids=["unset", "false", "uid-0"],
)
def test_a_container_that_may_run_as_root_is_reported(pod: dict[str, Any], container: dict[str, Any], problem: str):
    args = resource_args(DEPLOYMENT, deployment(container, pod), name="model")
    [message] = violations("containers-run-as-non-root", args)
    assert message.startswith("kubernetes:apps/v1:Deployment 'model'")
    assert problem in message and "runAsNonRoot: true" in message


def test_a_non_zero_uid_alone_counts_as_non_root():
    args = resource_args(DEPLOYMENT, deployment(pod={"securityContext": {"runAsUser": 1000}}))
    assert violations("containers-run-as-non-root", args) == []


@pytest.mark.parametrize(
    "image, problem",
    [
        ("registry.example.com/model-service:latest", "uses the ':latest' tag"),
        ("registry.example.com:5000/model-service", "has no tag"),
        ("nginx", "has no tag"),
    ],
)
def test_latest_or_untagged_images_are_reported(image: str, problem: str):
    [message] = violations("images-are-pinned", resource_args(DEPLOYMENT, deployment({"image": image}), name="model"))
    assert message.startswith("kubernetes:apps/v1:Deployment 'model'")
    assert f"image '{image}' {problem}" in message and "Pin it to a version tag" in message


@pytest.mark.parametrize(
    "image",
    ["registry.example.com:5000/model-service:1.4.2", f"ghcr.io/x/y@sha256:{'a' * 64}", f"y:latest@sha256:{'b' * 64}"],
)
def test_tagged_or_digest_pinned_images_pass(image: str):
    assert violations("images-are-pinned", resource_args(DEPLOYMENT, deployment({"image": image}))) == []


def test_an_image_unknown_during_preview_defers_to_the_engine():
    """The image of a build not yet run is unknown at preview: the analyzer reports it as 'can't run' itself."""
    args = resource_args(DEPLOYMENT, deployment({"image": UNKNOWN_STRING_VALUE}))
    with pytest.raises(UnknownValueError):
        violations("images-are-pinned", args)


# -------------------------------------------------------------------------------------------------------------
# Helm releases
# -------------------------------------------------------------------------------------------------------------

RELEASE = "kubernetes:helm.sh/v3:Release"


def release(version: str | None = "88.5.3", values: dict[str, Any] | None = None,
            chart: str = "kube-prometheus-stack") -> dict[str, Any]:
    props: dict[str, Any] = {
        "chart": chart,
        "repositoryOpts": {"repo": "https://prometheus-community.github.io/helm-charts"},
        "name": "kube-prometheus-stack",
        "namespace": "monitoring",
        "values": values if values is not None else {"grafana": {"admin": {"existingSecret": "kps-grafana-admin"}}},
    }
    if version is not None:
        props["version"] = version
    return props


def test_a_release_with_an_exact_chart_version_passes():
    assert violations("helm-charts-pin-a-version", resource_args(RELEASE, release("88.5.3"))) == []


@pytest.mark.parametrize("version", [None, "", "^88.0.0", "~88.5", ">=88.5.3", "88.x", "88"])
def test_a_release_without_an_exact_chart_version_is_reported(version: str | None):
    [message] = violations("helm-charts-pin-a-version", resource_args(RELEASE, release(version), name="kps"))
    assert message.startswith("kubernetes:helm.sh/v3:Release 'kps' (release monitoring/kube-prometheus-stack): ")
    assert "chart 'kube-prometheus-stack' has" in message and "Set version to one exact chart version" in message


def test_a_chart_from_a_local_folder_is_not_subject_to_a_version_pin():
    assert violations("helm-charts-pin-a-version", resource_args(RELEASE, release(None, chart="./charts/x"))) == (
        NOT_APPLICABLE
    )


def test_grafana_admin_password_from_an_existing_secret_passes():
    assert violations("grafana-admin-password-from-secret", resource_args(RELEASE, release())) == []


def test_grafana_admin_password_as_a_secret_output_still_passes():
    """The Secret's name may be an Output of the Secret resource: it arrives as a secret or plain string."""
    values = {"grafana": {"admin": {"existingSecret": {SECRET: "kps-grafana-admin"}}}}
    assert violations("grafana-admin-password-from-secret", resource_args(RELEASE, release(values=values))) == []


@pytest.mark.parametrize(
    "grafana, expected",
    [
        ({}, ["grafana.admin.existingSecret is not set"]),
        ({"adminPassword": "hunter2"}, ["values set grafana.adminPassword", "grafana.admin.existingSecret is not set"]),
        (
            {"admin": {"existingSecret": "s"}, "env": {"GF_SECURITY_ADMIN_PASSWORD": "x"}},
            ["values set grafana.env.GF_SECURITY_ADMIN_PASSWORD in plain text"],
        ),
    ],
    ids=["chart-generated", "plain-password", "plain-env"],
)
def test_a_grafana_password_not_from_a_secret_is_reported(grafana: dict[str, Any], expected: list[str]):
    args = resource_args(RELEASE, release(values={"grafana": grafana}), name="kps")
    messages = violations("grafana-admin-password-from-secret", args)
    assert isinstance(messages, list) and len(messages) == len(expected)
    for message, fragment in zip(messages, expected, strict=True):
        assert message.startswith("kubernetes:helm.sh/v3:Release 'kps'")
        assert fragment in message and "admin.existingSecret" in message
        assert "hunter2" not in message, "a message must never repeat the password"


def test_the_grafana_chart_itself_is_checked_at_its_top_level():
    args = resource_args(RELEASE, release(values={"adminPassword": "x"}, chart="grafana"))
    messages = violations("grafana-admin-password-from-secret", args)
    assert isinstance(messages, list) and any("values set adminPassword" in m for m in messages)


def test_releases_without_grafana_are_not_applicable():
    assert violations("grafana-admin-password-from-secret", resource_args(RELEASE, release(chart="loki"))) == (
        NOT_APPLICABLE
    )
    disabled = release(values={"grafana": {"enabled": False}})
    assert violations("grafana-admin-password-from-secret", resource_args(RELEASE, disabled)) == NOT_APPLICABLE


# -------------------------------------------------------------------------------------------------------------
# monitors
# -------------------------------------------------------------------------------------------------------------

SERVICE_MONITOR = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"
PROMETHEUS_RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"


def monitor(labels: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"name": "synthetic-classifier", "namespace": "models", "labels": labels}, "spec": {}}


@pytest.fixture
def no_stack_config():
    """No stack config in the runtime: the policy falls back on the default release's contract."""
    pulumi.runtime.set_all_config({}, [])


def test_the_names_the_pack_shares_with_the_program_are_the_programs(no_stack_config: None):
    # The pack carries its own copy of these (it is published alone); they must stay what the program uses.
    from components.contracts import PROJECT
    from components.monitoring.config import MonitoringConfig
    from components.monitoring.values import discovery_contract

    default = MonitoringConfig().release_name
    assert default == policies.DEFAULT_RELEASE_NAME
    assert policies.PROJECT == PROJECT
    assert policies.discovery_labels() == dict(discovery_contract(default).labels)
    assert policies.discovery_labels("kps") == dict(discovery_contract("kps").labels)


def test_the_pack_runs_from_its_own_folder_alone(tmp_path: Path):
    # What `pulumi policy publish` ships: this folder, nothing of the program beside it. Its policies load from a
    # copy elsewhere, with only its requirements importable, and its requirements name what it imports.
    import ast
    import shutil
    import subprocess
    import sys

    copy = tmp_path / "pack"
    shutil.copytree(ROOT / "policy", copy, ignore=shutil.ignore_patterns("__pycache__"))
    # The project's virtualenv installs the program in editable mode: hide it (path entries and import hooks), and
    # prove it is hidden, before the pack is imported.
    probe = f"""
import importlib.util, sys
root = {str(ROOT)!r}
sys.path[:] = [p for p in sys.path if "site-packages" in p or not p.startswith(root)]
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
assert importlib.util.find_spec("components") is None, "the program is still importable"
import policies
print(len(policies.build_policies()))
"""
    result = subprocess.run([sys.executable, "-c", probe], cwd=copy, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) >= 7
    trees = [ast.parse(path.read_text()) for path in copy.glob("*.py")]
    imported = {alias.name.split(".")[0] for tree in trees for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for tree in trees for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    required = {line.split("==")[0].replace("-", "_") for line in (copy / "requirements.txt").read_text().splitlines()
                if line and not line.startswith("#")}
    third_party = imported - set(sys.stdlib_module_names) - {"policies", "__future__"}
    assert third_party <= required, f"imported but not in requirements.txt: {sorted(third_party - required)}"
    assert "components" not in imported


@pytest.mark.parametrize("typ", [SERVICE_MONITOR, PROMETHEUS_RULE])
def test_monitors_with_the_release_label_pass(typ: str, no_stack_config: None):
    labels = {"release": policies.DEFAULT_RELEASE_NAME, "app.kubernetes.io/name": "synthetic-classifier"}
    assert violations("monitors-carry-discovery-labels", resource_args(typ, monitor(labels))) == []


@pytest.mark.parametrize("typ", [SERVICE_MONITOR, PROMETHEUS_RULE])
def test_monitors_without_the_release_label_are_reported(typ: str, no_stack_config: None):
    args = resource_args(typ, monitor({"release": "another-release"}), name="model-monitor")
    [message] = violations("monitors-carry-discovery-labels", args)
    assert message.startswith(f"{typ} 'model-monitor' (object models/synthetic-classifier): ")
    assert f"expected {{'release': '{policies.DEFAULT_RELEASE_NAME}'}}" in message
    assert "found {'release': 'another-release'}" in message and "Add them to metadata.labels" in message


def test_the_stacks_release_name_sets_the_expected_label():
    pulumi.runtime.set_all_config({f"{PROJECT}:monitoring": '{"releaseName": "kps"}'}, [])
    try:
        right = resource_args(SERVICE_MONITOR, monitor({"release": "kps"}))
        assert violations("monitors-carry-discovery-labels", right) == []
        wrong = resource_args(SERVICE_MONITOR, monitor({"release": policies.DEFAULT_RELEASE_NAME}))
        assert len(violations("monitors-carry-discovery-labels", wrong)) == 1
    finally:
        pulumi.runtime.set_all_config({}, [])


def test_the_pack_config_overrides_the_expected_labels(no_stack_config: None):
    config = {"labels": {"prometheus": "platform"}}
    good = resource_args(PROMETHEUS_RULE, monitor({"prometheus": "platform"}), config=config)
    assert violations("monitors-carry-discovery-labels", good) == []
    bad = resource_args(PROMETHEUS_RULE, monitor({"release": policies.DEFAULT_RELEASE_NAME}), config=config)
    [message] = violations("monitors-carry-discovery-labels", bad)
    assert "expected {'prometheus': 'platform'}" in message


def test_the_labels_setting_has_no_schema_default_that_would_hide_the_stacks_release():
    """The CLI fills in schema defaults; a default here would pin every stack to the default release's label."""
    schema = POLICIES["monitors-carry-discovery-labels"].config_schema
    assert schema is not None and "default" not in schema.properties["labels"]


# -------------------------------------------------------------------------------------------------------------
# clusters
# -------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("typ", policies.CLOUD_CLUSTER_TYPES)
def test_protected_cloud_clusters_pass_and_unprotected_ones_are_reported(typ: str):
    assert violations("cloud-clusters-are-protected", resource_args(typ, {}, name="cluster", protect=True)) == []
    [message] = violations("cloud-clusters-are-protected", resource_args(typ, {}, name="cluster", protect=False))
    assert message.startswith(f"{typ} 'cluster' is not protected")
    assert f"{PROJECT}:cluster.protect: true" in message


def test_policies_ignore_resource_types_they_do_not_judge():
    other = resource_args("kubernetes:core/v1:ConfigMap", {"data": {"image": "nginx"}}, protect=False)
    for name in POLICIES:
        assert violations(name, other) == [], name


def test_every_policy_is_mandatory_and_described():
    assert len(POLICIES) == 7
    for policy in POLICIES.values():
        assert policy.enforcement_level is not None and policy.enforcement_level.value == "mandatory"
        assert policy.description.endswith(".")


# -------------------------------------------------------------------------------------------------------------
# the project's own stacks
# -------------------------------------------------------------------------------------------------------------


def registration_args(registration: Registration) -> ResourceValidationArgs:
    return resource_args(registration.typ, copy.deepcopy(registration.inputs), registration.name,
                         registration.protect)


def test_every_real_stack_passes_every_policy(stack_run: ProgramRun):
    stack_file = next(f for f in stack_files_under_test() if stack_name(f) == stack_run.stack)
    config, secret_keys = load_stack_file(stack_file)
    pulumi.runtime.set_all_config(config, secret_keys)
    judged: dict[str, int] = dict.fromkeys(POLICIES, 0)
    failures = []
    try:
        for registration in stack_run.resources:
            for name in POLICIES:
                result = violations(name, registration_args(registration))
                if result == NOT_APPLICABLE:
                    continue
                failures += result
                judged[name] += bool(_applies(name, registration.typ))
    finally:
        pulumi.runtime.set_all_config({}, [])
    assert failures == []
    # Every policy met at least one of the program's own resources, or this test would prove nothing for it.
    cloud = stack_run.outputs.get("clusterKind") in ("eks", "aks", "gke")
    unjudged = [name for name, count in judged.items() if count == 0]
    assert unjudged == ([] if cloud else ["cloud-clusters-are-protected"])


def _applies(policy: str, typ: str) -> bool:
    return {
        "containers-have-resources": typ in policies.POD_SPEC_PATHS,
        "containers-run-as-non-root": typ in policies.POD_SPEC_PATHS,
        "images-are-pinned": typ in policies.POD_SPEC_PATHS,
        "helm-charts-pin-a-version": typ in policies.HELM_TYPES,
        "grafana-admin-password-from-secret": typ in policies.HELM_TYPES,
        "monitors-carry-discovery-labels": typ in policies.MONITOR_TYPES,
        "cloud-clusters-are-protected": typ in policies.CLOUD_CLUSTER_TYPES,
    }[policy]


def test_the_cloud_stacks_clusters_are_judged_protected(stack_run: ProgramRun):
    clusters = [r for r in stack_run.resources if r.typ in policies.CLOUD_CLUSTER_TYPES]
    if stack_run.stack in ("eks", "aks", "gke"):
        assert clusters, f"stack {stack_run.stack} declares no cloud cluster the policy knows"
    for cluster in clusters:
        assert violations("cloud-clusters-are-protected", registration_args(cluster)) == []


# -------------------------------------------------------------------------------------------------------------
# the pack as the CLI starts it: its own process, the analyzer protocol
# -------------------------------------------------------------------------------------------------------------


def test_the_pack_starts_and_judges_resources_over_the_analyzer_protocol():
    """What the CLI does with ``--policy-pack policy``, short of the engine: start the pack, ask, analyze.

    The stack's config reaches the pack as the CLI passes it (``PULUMI_CONFIG``), so a stack's own release
    name sets the label its monitors must carry.
    """
    stack_config = {f"{PROJECT}:monitoring": json.dumps({"releaseName": "kps"})}
    env = dict(os.environ, PULUMI_CONFIG=json.dumps(stack_config))
    pack = subprocess.Popen([sys.executable, "-u", "-m", "pulumi.policy", "unused-engine-address", "."],
                            cwd=ROOT / "policy", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        port = int(pack.stdout.readline()) if pack.stdout else 0
        assert port > 0, pack.stderr.read() if pack.stderr else "no port"
        stub = analyzer_pb2_grpc.AnalyzerStub(grpc.insecure_channel(f"127.0.0.1:{port}"))

        info = stub.GetAnalyzerInfo(empty_pb2.Empty(), timeout=10)
        assert info.name == policies.PACK_NAME
        assert {p.name for p in info.policies} == set(POLICIES)
        assert {p.enforcementLevel for p in info.policies} == {analyzer_pb2.MANDATORY}

        def analyze(typ: str, props: dict[str, Any], protect: bool = False) -> dict[str, str]:
            struct = struct_pb2.Struct()
            json_format.ParseDict(props, struct)
            request = analyzer_pb2.AnalyzeRequest(
                type=typ, properties=struct, urn=f"urn:pulumi:local::{PROJECT}::{typ}::subject", name="subject",
                options=analyzer_pb2.AnalyzerResourceOptions(protect=protect),
            )
            return {d.policyName: d.message for d in stub.Analyze(request, timeout=10).diagnostics}

        assert analyze(SERVICE_MONITOR, monitor({"release": "kps"})) == {}
        assert set(analyze(SERVICE_MONITOR, monitor({"release": policies.DEFAULT_RELEASE_NAME}))) == {
            "monitors-carry-discovery-labels"
        }
        assert set(analyze(RELEASE, release(version=None, values={}))) == {
            "helm-charts-pin-a-version", "grafana-admin-password-from-secret"
        }
        unprotected = analyze("gcp:container/cluster:Cluster", {"name": "c"})
        assert "gcp:container/cluster:Cluster 'subject' is not protected" in unprotected["cloud-clusters-are-protected"]
        assert analyze("gcp:container/cluster:Cluster", {"name": "c"}, protect=True) == {}
    finally:
        pack.kill()
        pack.communicate(timeout=10)
