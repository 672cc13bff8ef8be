"""Remote write to distributed stores (``monitoring.remoteWrite``) and high availability, checked end to end.

A store touches four places at once, and a mistake in any of them fails silently at run time rather than at
``pulumi up``: the configuration's cross-field rules (which store works from which cloud, whether Prometheus may
keep less than the SLO period), the cloud identity the stack creates for Prometheus (an IAM role, a workload
identity, a Google service account: each must trust Prometheus' service account and nothing else), the chart's
values (remote-write entries, external labels, the service account and pods Prometheus runs as), and the one
Secret that holds the stores' credentials. What goes wrong is quiet: a series written twice or not at all, a
credential inside the Helm release (where every preview prints it and the release history keeps it), a role any
pod may assume, an error budget computed over a week instead of thirty days.

The runs are those of the stack files in ``tests/fixtures/Pulumi.stores-*.yaml`` (one per cloud, and a cluster of
your own) and ``stacks/``, under the harness's mocks; expectations are derived from what those files say (names,
URLs, credentials, retention) and from the mocks' documented outputs, not copied from the program's output.

1. configuration errors: each names the key path, the value and the fix;
2. credentials and remote-write entries, per store fixture;
3. the cloud identities: AMP on EKS, Azure Monitor on AKS, Managed Service for Prometheus on GKE;
4. high availability per environment;
5. Thanos Ruler evaluating the SLO period from a store of your own.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pulumi_kubernetes as k8s
import pytest
import yaml
from model_service import contract

from components.config.loader import ConfigError, validate_settings
from components.config.source import RawSetting
from components.config.stack import StackConfig
from components.contracts import CLUSTER_LABEL, ENVIRONMENT_LABEL, LOCAL_STORE, PROJECT, RULE_EVALUATOR_LABEL
from components.monitoring.stores import BasicAuth, MetricsStore, RemoteWriteEndpoint
from components.monitoring.stores.config import GMP_PROMETHEUS_IMAGE, STORE_MODELS
from components.monitoring.stores.remote_write import secret_data
from components.monitors import drift_rules
from components.monitors.cluster_metrics import CLUSTER_SERIES
from components.monitors.config import ModelMonitorsConfig
from components.monitors.model_monitors import DERIVABLE_RECORDINGS, MODEL_RECORDINGS
from components.monitors.rule_model import parse_duration
from components.monitors.slo_rules import PERIOD_GROUP_PREFIX, WORKBOOK_WINDOWS
from tests.chart_render import monitoring_release, program_run_with, release_values, render_release
from tests.conftest import program_run
from tests.harness import (
    COMPUTED_OUTPUTS,
    INVOKE_RESULTS,
    SECRET,
    SECRET_TEST_VALUE,
    STORE_STACKS,
    ProgramRun,
    Registration,
    load_stack_file,
    run_function,
    run_program,
    stack_files,
    stack_name,
)
from tests.k8s_validation import selector_matches
from tests.monitor_rules import chart_metrics_script

STORE_FILES = {stack_name(f): f for f in STORE_STACKS}
CLOUDS = ("eks", "aks", "gke")
"""Clusters the stack builds for production: high availability is on there unless the stack file says otherwise
(and their nodes carry zones); on kind and on a cluster of your own it is off unless asked for."""
CLOUD_STORE_HOME = {"amp": "eks", "azureMonitor": "aks", "gmp": "gke"}
"""The one cluster kind each managed store works from: its identity is that cloud's."""
PROMETHEUS_RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
MONITORING_STACK = "mlobs:monitoring:MonitoringStack"
SAMPLE_MODEL = "synthetic-classifier"
TOKEN = secrets.token_hex(12)
"""A credential generated for this test run: it must never appear in an error message."""


# --- reading stack files and runs ----------------------------------------------------------------------------


def section(stack_file: Path, name: str) -> dict[str, Any]:
    """A top-level section of a stack file as the program receives it (secure values are SECRET_TEST_VALUE)."""
    config, _ = load_stack_file(stack_file)
    raw = config.get(f"{PROJECT}:{name}")
    return json.loads(raw) if raw else {}


def stores_of(stack_file: Path) -> list[dict[str, Any]]:
    return list(section(stack_file, "monitoring").get("remoteWrite") or [])


def values_of(run: ProgramRun) -> dict[str, Any]:
    return release_values(monitoring_release(run))


def prometheus_spec(run: ProgramRun) -> dict[str, Any]:
    return dict(values_of(run)["prometheus"]["prometheusSpec"])


def entries_of(run: ProgramRun) -> dict[str, dict[str, Any]]:
    """Prometheus' remote-write entries by store name."""
    return {entry["name"]: entry for entry in prometheus_spec(run).get("additionalRemoteWrite", [])}


def store_run(stack: str) -> ProgramRun:
    return program_run(STORE_FILES[stack])


_OVERRIDE_RUNS: dict[str, ProgramRun] = {}


def store_run_with(stack: str, monitoring: dict[str, Any]) -> ProgramRun:
    """A store fixture's run with its ``monitoring`` section replaced (cached per arguments)."""
    key = json.dumps([stack, monitoring], sort_keys=True)
    if key not in _OVERRIDE_RUNS:
        _OVERRIDE_RUNS[key] = run_program(STORE_FILES[stack], {"monitoring": monitoring})
    return _OVERRIDE_RUNS[key]


def children(run: ProgramRun, component_type: str, typ: str) -> list[Registration]:
    return [r for r in run.children_of(run.one(component_type).urn) if r.typ == typ]


def remote_write_secret(run: ProgramRun) -> Registration | None:
    """The MonitoringStack's Secret of the stores' credentials, if it declared one."""
    secrets_ = children(run, MONITORING_STACK, "kubernetes:core/v1:Secret")
    found = [s for s in secrets_ if s.name.endswith("-remote-write")]
    assert len(found) <= 1, [s.name for s in found]
    return found[0] if found else None


def secret_references(value: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every SecretKeySelector (``{name, key}``) in a part of the values, with its path."""
    if isinstance(value, dict):
        if set(value) == {"name", "key"}:
            yield path, value
            return
        for key, item in value.items():
            yield from secret_references(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from secret_references(item, f"{path}[{index}]")


def service_account_subject(run: ProgramRun) -> tuple[str, str, str]:
    """``(namespace, service account, subject)`` of Prometheus, as the release declares them."""
    namespace = str(monitoring_release(run).inputs["namespace"])
    account = values_of(run)["prometheus"]["serviceAccount"]["name"]
    return namespace, account, f"system:serviceaccount:{namespace}:{account}"


def mocked(typ: str, **inputs: Any) -> dict[str, Any]:
    """What the harness's mock provider computes for a resource of ``typ`` (its documented outputs)."""
    return COMPUTED_OUTPUTS[typ](SimpleNamespace(name="mock", inputs=inputs))  # type: ignore[arg-type]


def rule_groups(run: ProgramRun) -> dict[str, list[dict[str, Any]]]:
    """Every rule group the run declares, wherever it is evaluated, by where: a PrometheusRule's name, an AMP
    rule groups namespace, or an Azure Monitor rule group (whose rules are one group)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for rule in run.by_type(PROMETHEUS_RULE):
        found[rule.name] = list(rule.inputs["spec"]["groups"])
    for namespace in run.by_type("aws:amp/ruleGroupNamespace:RuleGroupNamespace"):
        found[namespace.name] = list(yaml.safe_load(namespace.inputs["data"])["groups"])
    for group in run.by_type("azure-native:alertsmanagement:PrometheusRuleGroup"):
        rules = [{**r, "expr": r["expression"]} for r in group.inputs["rules"]]
        found[group.name] = [{"name": group.inputs["ruleGroupName"], "rules": rules}]
    return found


def records(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [rule for group in groups for rule in group["rules"] if "record" in rule]



# =============================================================================================================
# 1. Configuration errors
# =============================================================================================================

CLUSTERS: dict[str, dict[str, Any]] = {
    "kind": {"kind": "kind"},
    "existing": {"kind": "existing", "context": "prod", "kubernetesVersion": "1.34",
                 "registry": {"address": "localhost:5001/mlobs"}},
    "eks": {"kind": "eks", "region": "eu-west-1"},
    "aks": {"kind": "aks", "location": "westeurope"},
    "gke": {"kind": "gke", "location": "europe-west1-b"},
}
GENERIC = {"name": "thanos", "kind": "generic", "url": "https://receive.example.com/api/v1/receive"}
QUERY_URL = "http://thanos-query.thanos.svc:9090"
STORE_OF_KIND: dict[str, dict[str, Any]] = {
    "generic": GENERIC,
    "amp": {"name": "amp", "kind": "amp"},
    "azureMonitor": {"name": "azure", "kind": "azureMonitor"},
    "gmp": {"name": "gmp", "kind": "gmp"},
}
RETENTION_KEY = "monitoring.prometheus.retention"
SLO_PERIOD = ModelMonitorsConfig().slo_period
LONGEST_BURN_WINDOW = max((window.long for window in WORKBOOK_WINDOWS), key=parse_duration)
WEEK = "7d"
"""A retention between the alerts' longest window and the SLO period: what the cloud fixtures keep."""


def validate(monitoring: dict[str, Any], *, cluster: str = "kind", secret: bool = False,
             **sections: Any) -> StackConfig:
    raw = {"cluster": CLUSTERS[cluster], "monitoring": monitoring, **sections}
    settings = {key: RawSetting(value, secret and key == "monitoring") for key, value in raw.items()}
    return validate_settings(settings, stack="test")


def problems(monitoring: dict[str, Any], *, cluster: str = "kind", secret: bool = False, **sections: Any) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        validate(monitoring, cluster=cluster, secret=secret, **sections)
    return raised.value.problems


def at(path: str) -> str:
    """The start of a problem about ``path``."""
    return f"{PROJECT}:{path}: "


def test_the_retentions_under_test_sit_between_the_alert_windows_and_the_period():
    assert parse_duration(LONGEST_BURN_WINDOW) < parse_duration(WEEK) < parse_duration(SLO_PERIOD)
    assert SLO_PERIOD == "30d"


def test_an_unknown_store_kind_lists_the_kinds():
    [problem] = problems({"remoteWrite": [GENERIC, {"name": "prom", "kind": "prometheus"}]})
    assert problem == (f"{at('monitoring.remoteWrite[1].kind')}unknown kind (got 'prometheus'); set "
                       f"monitoring.remoteWrite[1].kind to one of {', '.join(STORE_MODELS)}")


def test_a_generic_store_needs_its_url():
    [problem] = problems({"remoteWrite": [{"name": "thanos", "kind": "generic"}]})
    assert problem.startswith(f"{at('monitoring.remoteWrite[0].url')}required setting is missing; ")
    assert "pulumi config set --path 'monitoring.remoteWrite[0].url' <value> (for example 'https://" in problem


@pytest.mark.parametrize("field", ["url", "queryUrl"])
@pytest.mark.parametrize("url", ["ftp://receive.example.com/api/v1/receive", "receive.example.com:19291",
                                 "https://receive.example.com/api v1"])
def test_a_generic_stores_urls_must_be_http(field: str, url: str):
    [problem] = problems({"remoteWrite": [GENERIC | {field: url}]})
    path = f"monitoring.remoteWrite[0].{field}"
    assert problem.startswith(at(path))
    assert f"(got {url!r})" in problem
    assert f"pulumi config set --path '{path}' <value>" in problem


def test_basic_auth_and_bearer_token_are_alternatives():
    store = GENERIC | {"basicAuth": {"username": "prometheus", "password": TOKEN}, "bearerToken": TOKEN}
    [problem] = problems({"remoteWrite": [store]}, secret=True)
    assert problem == (f"{at('monitoring.remoteWrite[0]')}basicAuth and bearerToken are alternatives (got both); "
                       "keep one; correct those settings in monitoring.remoteWrite[0]")
    assert TOKEN not in problem


@pytest.mark.parametrize(("credential", "path"), [
    ({"bearerToken": TOKEN}, "bearerToken"),
    ({"basicAuth": {"username": "prometheus", "password": TOKEN}}, "basicAuth.password"),
], ids=["bearerToken", "basicAuth"])
def test_a_store_credential_typed_in_clear_is_refused_without_being_echoed(credential: dict[str, Any], path: str):
    [problem] = problems({"remoteWrite": [GENERIC | credential]})
    key = f"monitoring.remoteWrite[0].{path}"
    assert problem.startswith(f"{at(key)}credential stored in plain text; ")
    assert f"pulumi config set --secret --path '{key}' <value>" in problem
    assert TOKEN not in problem
    # Encrypted (`pulumi config set --secret`), the same setting is accepted.
    assert validate({"remoteWrite": [GENERIC | credential]}, secret=True).monitoring.remote_write


@pytest.mark.parametrize("field", ["regex", "replacement", "separator"])
def test_a_relabel_rule_must_not_hold_a_go_template(field: str):
    template = "{{ .Values.team }}"
    rules = [{"sourceLabels": ["__name__"], "regex": "apiserver_.*_bucket", "action": "drop"},
             {"sourceLabels": ["team"], "targetLabel": "owner", "action": "replace", field: template}]
    [problem] = problems({"remoteWrite": [GENERIC | {"writeRelabel": rules}]})
    path = f"monitoring.remoteWrite[0].writeRelabel[1].{field}"
    assert problem.startswith(f"{at(path)}must not contain '{{{{' (got {template!r})")
    assert "escape the braces" in problem and problem.endswith(f"correct those settings in {path}")


def test_an_escaped_brace_in_a_relabel_regex_is_accepted():
    rule = {"sourceLabels": ["path"], "regex": r"/api/\{\{id\}\}", "action": "drop"}
    [store] = validate({"remoteWrite": [GENERIC | {"writeRelabel": [rule]}]}).monitoring.remote_write
    assert store.write_relabel[0].regex == r"/api/\{\{id\}\}"  # type: ignore[union-attr]


@pytest.mark.parametrize(("change", "field"), [
    ({"headers": {"X-Source": "{{ .Release.Name }}"}}, "headers.X-Source"),
    ({"url": "https://receive.example.com/{{.Release.Name}}/api/v1/receive"}, "url"),
    ({"tls": {"serverName": "{{ .Release.Name }}"}}, "tls.serverName"),
])
def test_a_generic_stores_settings_must_not_hold_a_go_template(change: dict[str, Any], field: str):
    # Thanos Ruler's remoteWrite repeats the store's entry and the chart passes it through `tpl`: a header would
    # reach the ruler rendered ('kube-prometheus-stack') and Prometheus verbatim, or break the render.
    [problem] = problems({"remoteWrite": [GENERIC | {"queryUrl": QUERY_URL} | change]})
    assert problem.startswith(f"{at('monitoring.remoteWrite[0]')}must not contain '{{{{' (got it in {field})")
    assert problem.endswith("correct those settings in monitoring.remoteWrite[0]")


@pytest.mark.parametrize("label", ["prometheus", "prometheus_replica", "__replica__"])
def test_labels_the_operator_and_the_stores_deduplication_own_are_refused(label: str):
    # The operator's `prometheus` (namespace/name) and `prometheus_replica` (the pod), and the HA tracker's
    # `__replica__` (AMP, Mimir, Cortex): overriding them would merge or split the replicas' series.
    [problem] = problems({"prometheus": {"externalLabels": {"region": "eu-west-1", label: "x"}}})
    path = "monitoring.prometheus.externalLabels"
    assert problem == (f"{at(path)}{label} belong to the operator and the stores' deduplication (got them in "
                       f"externalLabels); remove them; correct those settings in {path}")


@pytest.mark.parametrize(("labels", "message"), [
    ({"region": ""}, "an empty value removes nothing and adds nothing (got region)"),
    ({"region": "{{ .Values.region }}"}, "may not contain '{{' (got it in region)"),
])
def test_external_label_values_are_checked(labels: dict[str, str], message: str):
    [problem] = problems({"prometheus": {"externalLabels": labels}})
    assert problem.startswith(at("monitoring.prometheus.externalLabels")) and message in problem


def test_cluster_and_environment_are_not_reserved_they_override_the_stacks_own():
    labels = {CLUSTER_LABEL: "prod-eu-1", ENVIRONMENT_LABEL: "production", "region": "eu-west-1"}
    config = validate({"prometheus": {"externalLabels": labels}})
    assert config.monitoring.prometheus.external_labels == labels


def test_store_names_are_unique():
    [problem] = problems({"remoteWrite": [GENERIC, GENERIC | {"url": "https://mimir.example.com/api/v1/push"}]})
    assert problem == (f"{at('monitoring.remoteWrite[1]')}name 'thanos' is taken by remoteWrite[0]; each store "
                       "needs its own name")


@pytest.mark.parametrize(("store", "cluster"), [
    (store, cluster) for store, home in CLOUD_STORE_HOME.items() for cluster in CLUSTERS if cluster != home
])
def test_a_cloud_store_works_from_its_own_cloud_only(store: str, cluster: str):
    found = [p for p in problems({"remoteWrite": [STORE_OF_KIND[store]]}, cluster=cluster)
             if p.startswith(at("monitoring.remoteWrite[0]"))]
    assert found == [
        f"{at('monitoring.remoteWrite[0]')}{store} stores work from {CLOUD_STORE_HOME[store]} clusters only (got "
        f"cluster.kind {cluster}): use a generic store with its remote-write URL"
    ]


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_the_stores_each_cluster_may_write_to(cluster: str):
    kinds = ["generic", *(store for store, home in CLOUD_STORE_HOME.items() if home == cluster)]
    config = validate({"remoteWrite": [STORE_OF_KIND[kind] for kind in kinds]}, cluster=cluster)
    assert [store.kind for store in config.monitoring.remote_write] == kinds


def test_one_store_per_cloud_identity():
    [problem] = problems({"remoteWrite": [{"name": "amp", "kind": "amp"}, {"name": "amp-dr", "kind": "amp"}]},
                         cluster="eks")
    assert problem.startswith(f"{at('monitoring.remoteWrite[1]')}a second amp store (remoteWrite[0] is one): ")
    assert problem.endswith("keep one")


@pytest.mark.parametrize(("cluster", "stores"), [
    ("kind", []),
    ("kind", [GENERIC]),  # writes, but has no query API to evaluate anything with
    ("gke", [STORE_OF_KIND["gmp"]]),  # self-deployed collection runs no rule evaluator
], ids=["no store", "generic without queryUrl", "gmp"])
def test_a_retention_shorter_than_the_slo_period_needs_a_store_that_evaluates_the_period(
    cluster: str, stores: list[dict[str, Any]]
):
    [problem] = problems({"prometheus": {"retention": WEEK}, "remoteWrite": stores}, cluster=cluster)
    assert problem.startswith(f"{at(RETENTION_KEY)}{WEEK} is shorter than {SLO_PERIOD}, the SLO period of "
                              f"models.{SAMPLE_MODEL}, over which its error budget is read")
    assert f"pulumi config set --path '{RETENTION_KEY}' {SLO_PERIOD}" in problem
    assert "add a monitoring.remoteWrite store that holds the data and evaluates the period's rules" in problem
    assert ("the remoteWrite stores cannot evaluate rules" in problem) == bool(stores)


@pytest.mark.parametrize(("cluster", "stores", "evaluator"), [
    ("kind", [GENERIC | {"queryUrl": QUERY_URL}], "thanos"),
    ("existing", [GENERIC, {**GENERIC, "name": "mimir", "queryUrl": QUERY_URL}], "mimir"),
    ("eks", [STORE_OF_KIND["amp"]], "amp"),
    ("aks", [STORE_OF_KIND["azureMonitor"]], "azure"),
    ("gke", [STORE_OF_KIND["gmp"], GENERIC | {"queryUrl": QUERY_URL}], "thanos"),
], ids=["generic with queryUrl", "the first store that can", "amp", "azureMonitor", "gmp beside thanos"])
def test_the_same_retention_is_accepted_with_a_store_that_evaluates_the_period(
    cluster: str, stores: list[dict[str, Any]], evaluator: str
):
    config = validate({"prometheus": {"retention": WEEK}, "remoteWrite": stores}, cluster=cluster)
    assert config.period_store is not None and config.period_store.name == evaluator
    assert config.period_evaluated_by_store(config.models[SAMPLE_MODEL])


def test_a_model_whose_period_fits_the_retention_needs_no_store():
    models = {SAMPLE_MODEL: {"monitors": {"sloPeriod": WEEK}}}
    config = validate({"prometheus": {"retention": WEEK}}, models=models)
    assert not config.period_evaluated_by_store(config.models[SAMPLE_MODEL])


def test_a_retention_shorter_than_an_alert_window_is_refused_even_with_a_store():
    stores = [GENERIC | {"queryUrl": QUERY_URL}]
    [problem] = problems({"prometheus": {"retention": "2d"}, "remoteWrite": stores})
    assert problem == (
        f"{at(RETENTION_KEY)}2d is shorter than {LONGEST_BURN_WINDOW}, the SLO alerts' longest burn-rate window "
        f"({LONGEST_BURN_WINDOW}) of models.{SAMPLE_MODEL}.monitors, which alerts read from this Prometheus "
        f"whatever store holds the data; raise it: pulumi config set --path '{RETENTION_KEY}' {LONGEST_BURN_WINDOW}"
    )


def test_the_longest_alert_window_of_any_model_counts():
    models = {"churn": {"monitors": {"drift": {"longWindow": "10d"}}}, "fraud": {}}
    [problem] = problems({"prometheus": {"retention": WEEK}, "remoteWrite": [GENERIC | {"queryUrl": QUERY_URL}]},
                         models=models)
    assert problem.startswith(f"{at(RETENTION_KEY)}{WEEK} is shorter than 10d, drift.longWindow of "
                              "models.churn.monitors")
    assert problem.endswith(f"pulumi config set --path '{RETENTION_KEY}' 10d")


# =============================================================================================================
# 2. Credentials and remote-write entries, per store fixture
# =============================================================================================================


@pytest.fixture(params=STORE_STACKS, ids=stack_name)
def stores_file(request: pytest.FixtureRequest) -> Path:
    return Path(request.param)


def test_the_store_fixtures_cover_every_kind_and_mode():
    """The per-fixture tests below prove something only if the fixtures exercise every branch."""
    stores = [store for stack_file in STORE_STACKS for store in stores_of(stack_file)]
    assert {store["kind"] for store in stores} == set(STORE_MODELS)
    assert {section(f, "cluster")["kind"] for f in STORE_STACKS} == {*CLOUDS, "existing"}
    assert any(store.get("send") == "recordings" for store in stores)
    assert any("basicAuth" in store for store in stores) and any("bearerToken" in store for store in stores)
    assert any((store.get("tls") or {}).get("caCertificate") for store in stores)
    assert any("queryUrl" in store for store in stores)


def test_no_credential_reaches_the_release(stores_file: Path):
    run = program_run(stores_file)
    release = monitoring_release(run)
    values_of(run)  # fails if any part of the values is secret: Pulumi would then hide all of them
    text = json.dumps(release.inputs)
    assert SECRET_TEST_VALUE not in text
    assert SECRET not in text
    for store in stores_of(stores_file):
        certificate = (store.get("tls") or {}).get("caCertificate")
        if certificate:  # not secret, but it lives in the Secret the entry refers to, not in the values
            body = certificate.splitlines()[1]
            assert body not in text


def test_the_remote_write_secret_holds_exactly_the_credentials_the_entries_refer_to(stores_file: Path):
    run = program_run(stores_file)
    entries = entries_of(run)
    expected: list[tuple[dict[str, Any], str]] = []  # (the entry's reference, the value the Secret must hold)
    for store in stores_of(stores_file):
        entry = entries.get(store["name"], {})
        if auth := store.get("basicAuth"):
            expected += [(entry["basicAuth"]["username"], auth["username"]),
                         (entry["basicAuth"]["password"], auth["password"])]
        if "bearerToken" in store:
            assert entry["authorization"]["type"] == "Bearer"
            expected.append((entry["authorization"]["credentials"], store["bearerToken"]))
        if certificate := (store.get("tls") or {}).get("caCertificate"):
            expected.append((entry["tlsConfig"]["ca"]["secret"], certificate))
    secret = remote_write_secret(run)
    values = values_of(run)
    if not expected:
        assert secret is None
        assert list(secret_references(values["prometheus"]["prometheusSpec"].get("additionalRemoteWrite"))) == []
        return
    assert secret is not None
    data = secret.inputs["stringData"]
    assert set(data) == {SECRET}, "the Secret's stringData must reach the engine as a secret"
    assert data[SECRET] == {reference["key"]: value for reference, value in expected}
    if "secure:" in stores_file.read_text():
        assert SECRET_TEST_VALUE in data[SECRET].values()
    # Every reference anywhere in the values (Prometheus' entries, Thanos Ruler's) names that Secret and a key
    # it holds, and the release waits for it, in its namespace.
    name = secret.inputs["metadata"]["name"]
    references = list(secret_references(values["prometheus"]["prometheusSpec"]["additionalRemoteWrite"]))
    references += list(secret_references(values.get("thanosRuler", {})))
    assert len(references) >= len(expected)
    assert {(r["name"], r["key"] in data[SECRET]) for _, r in references} == {(name, True)}
    release = monitoring_release(run)
    assert secret.urn in release.dependencies
    assert secret.inputs["metadata"]["namespace"] == release.inputs["namespace"]


def test_the_secrets_data_marks_every_credential_secret():
    certificate = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    store = MetricsStore(name="thanos", kind="generic", remote_write=RemoteWriteEndpoint(
        url="https://receive.example.com/api/v1/receive", basic_auth=BasicAuth(username="prometheus", password=TOKEN),
        bearer_token=TOKEN, ca_certificate=certificate,
    ))

    def program() -> None:  # a ConfigMap, whose data the provider does not make secret by itself
        k8s.core.v1.ConfigMap("probe", data=secret_data([store]))

    data = run_function(program).one("kubernetes:core/v1:ConfigMap").inputs["data"]
    secret_values = {key: value[SECRET] for key, value in data.items() if isinstance(value, dict)}
    assert sorted(secret_values.values()) == sorted(["prometheus", TOKEN, TOKEN])
    assert certificate in data.values(), "the CA is no secret and stays readable"


def test_the_entries_are_the_configured_stores_in_order(stores_file: Path):
    stores = stores_of(stores_file)
    entries = prometheus_spec(program_run(stores_file)).get("additionalRemoteWrite", [])
    # A gmp store is no remote write: Prometheus exports to it by itself.
    assert [entry["name"] for entry in entries] == [store["name"] for store in stores if store["kind"] != "gmp"]
    by_name = {entry["name"]: entry for entry in entries}
    for store in stores:
        if store["kind"] != "generic":
            continue
        entry = by_name[store["name"]]
        assert entry["url"] == store["url"]
        tenant = {store.get("tenantHeader", "THANOS-TENANT"): store["tenant"]} if "tenant" in store else {}
        assert entry.get("headers", {}) == {**store.get("headers", {}), **tenant}
        assert entry.get("queueConfig", {}) == store.get("queue", {})
        tls = store.get("tls") or {}
        if "serverName" in tls:
            assert entry["tlsConfig"]["serverName"] == tls["serverName"]


@pytest.mark.parametrize(("stack_file", "store"), [
    (f, s["name"]) for f in STORE_STACKS for s in stores_of(f) if s.get("send") == "recordings" and s["kind"] != "gmp"
], ids=lambda value: stack_name(value) if isinstance(value, Path) else value)
def test_a_recordings_only_store_gets_the_models_recordings_and_nothing_else(stack_file: Path, store: str):
    run = program_run(stack_file)
    rules = entries_of(run)[store]["writeRelabelConfigs"]
    assert rules[0] == {"sourceLabels": ["__name__"], "regex": MODEL_RECORDINGS, "action": "keep"}
    assert rules[1] == {"sourceLabels": ["__name__"], "regex": DERIVABLE_RECORDINGS, "action": "drop"}
    # Relabel regexes are anchored: every series the model's rules record, wherever evaluated, passes whole...
    recorded = {rule["record"] for groups in rule_groups(run).values() for rule in records(groups)}
    assert len(recorded) >= 10
    assert {name for name in recorded if not re.fullmatch(MODEL_RECORDINGS, name)} == set()
    # ...and no raw series: neither the service's own, nor the cluster's, nor a scrape's.
    raw = {"up", "scrape_samples_scraped", *CLUSTER_SERIES}
    raw |= {f"{m.name}{suffix}" for m in contract.ALL_METRICS for suffix in ("", "_bucket", "_count", "_sum")}
    assert "model_predictions_total" in raw
    assert {name for name in raw if re.fullmatch(MODEL_RECORDINGS, name)} == set()


@pytest.mark.parametrize("stack", ["stores-eks", "stores-aks", "stores-gke"])
def test_the_period_rules_read_only_what_a_recordings_only_store_receives(stack: str):
    """A store that evaluates the SLO period may be sent the recordings only: its rules must need nothing else."""
    metric_names = chart_metrics_script().metric_names
    groups = [g for where, groups in rule_groups(store_run(stack)).items() if where.endswith("-period-rules")
              for g in groups]
    read = {name for group in groups for rule in group["rules"] for name in metric_names(rule["expr"])}
    assert read, "the run has no period rules"
    assert {name for name in read if not re.fullmatch(MODEL_RECORDINGS, name)} == set()
    assert {name for name in read if re.fullmatch(DERIVABLE_RECORDINGS, name)} == set()


def test_a_recordings_only_store_can_still_compute_the_fleets_drift():
    """The per-bin shares left out are the intermediate ones: the global PSI reads only what the store gets."""
    metric_names = chart_metrics_script().metric_names
    run = program_run(STORE_FILES["stores-eks"])
    recorded = {rule["record"] for groups in rule_groups(run).values() for rule in records(groups)}
    derivable = {name for name in recorded if re.fullmatch(DERIVABLE_RECORDINGS, name)}
    windows = {name.rsplit(":", 1)[1] for name in recorded if name.startswith("model_feature:drift_psi:")} - {
        "threshold", "short_window", "long_window"}
    assert derivable == {f(w) for w in windows for f in (drift_rules.bin_ratio, drift_rules.js_mixture)}
    for window in windows:
        read = metric_names(drift_rules.psi_across_clusters(window, job="churn"))
        assert read and all(re.fullmatch(MODEL_RECORDINGS, n) and not re.fullmatch(DERIVABLE_RECORDINGS, n)
                            for n in read), read


def expected_replica_rules(store: dict[str, Any], replicas: int) -> list[dict[str, Any]] | None:
    """How each kind of store deduplicates a replicated Prometheus (``None``: the first replica sends alone)."""
    label = {"generic": store.get("replicaLabel", "prometheus_replica"), "amp": "__replica__",
             "azureMonitor": None}[store["kind"]]
    if label == "prometheus_replica":  # Thanos deduplicates on the operator's own label
        return []
    drop = {"regex": "prometheus_replica", "action": "labeldrop"}
    if label is None:
        return [*([{"sourceLabels": ["prometheus_replica"], "action": "keep"}] if replicas > 1 else []), drop]
    return [{"sourceLabels": ["prometheus_replica"], "targetLabel": label, "action": "replace"}, drop]


def test_each_store_deduplicates_the_replicas_its_own_way(stores_file: Path):
    run = program_run(stores_file)
    spec = prometheus_spec(run)
    replicas = int(spec["replicas"])
    first_pod = f"prometheus-{values_of(run)['fullnameOverride']}-prometheus-0"
    entries = entries_of(run)
    for store in stores_of(stores_file):
        if store["kind"] == "gmp":
            continue
        rules = list(entries[store["name"]].get("writeRelabelConfigs", []))
        if store.get("send") == "recordings":
            rules = rules[2:]
        own = store.get("writeRelabel", [])
        assert rules[len(rules) - len(own):] == own, "the store's own rules run last"
        stack_rules = rules[:len(rules) - len(own)]
        for rule in stack_rules:
            if rule["action"] == "keep":  # the first replica's pod name, and no other
                regex = rule.pop("regex")
                assert re.fullmatch(regex, first_pod)
                assert not re.fullmatch(regex, first_pod[:-1] + "1")
                assert not re.fullmatch(regex, first_pod[:-1] + "10")
        assert stack_rules == expected_replica_rules(store, replicas), store["name"]


def test_external_labels_name_the_cluster_and_the_environment(stores_file: Path):
    run = program_run(stores_file)
    configured = section(stores_file, "monitoring").get("prometheus", {}).get("externalLabels", {})
    expected = {CLUSTER_LABEL: run.outputs["clusterName"], ENVIRONMENT_LABEL: run.stack} | configured
    assert prometheus_spec(run)["externalLabels"] == expected


def test_every_user_of_the_cluster_label_follows_the_external_label(stores_file: Path):
    """The store's rules select this cluster by the label its series carry: an override must reach them too."""
    run = program_run(stores_file)
    spec = prometheus_spec(run)
    cluster = spec["externalLabels"][CLUSTER_LABEL]
    matcher = f'{CLUSTER_LABEL}="{cluster}"'
    for where, groups in rule_groups(run).items():
        if where.endswith("-period-rules"):  # evaluated by a store, which holds other clusters' series too
            assert all(matcher in rule["expr"] for group in groups for rule in group["rules"]), where
    for group in run.by_type("azure-native:alertsmanagement:PrometheusRuleGroup"):
        assert group.inputs["clusterName"] == cluster
    args = {arg["name"]: arg["value"] for arg in spec.get("additionalArgs", [])}
    if "export.label.cluster" in args:
        assert args["export.label.cluster"] == cluster


def test_an_overridden_cluster_label_reaches_the_store_rules():
    monitoring = section(STORE_FILES["stores-gke"], "monitoring")
    monitoring["prometheus"] = {**monitoring.get("prometheus", {}), "externalLabels": {CLUSTER_LABEL: "prod-eu-1"}}
    run = store_run_with("stores-gke", monitoring)
    args = {arg["name"]: arg["value"] for arg in prometheus_spec(run)["additionalArgs"]}
    assert args["export.label.cluster"] == "prod-eu-1"
    [period] = [r for r in run.by_type(PROMETHEUS_RULE) if r.name.endswith("-period-rules")]
    assert all('cluster="prod-eu-1"' in rule["expr"] for rule in records(period.inputs["spec"]["groups"]))


# =============================================================================================================
# 3. Cloud identities
# =============================================================================================================

# --- Amazon Managed Service for Prometheus (EKS) -------------------------------------------------------------


def amp_children(run: ProgramRun, typ: str) -> list[Registration]:
    return children(run, "mlobs:stores:AmpStore", typ)


def test_the_amp_role_trusts_prometheus_service_account_only():
    run = store_run("stores-eks")
    [role] = amp_children(run, "aws:iam/role:Role")
    [statement] = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    cluster = mocked("eks:index:Cluster")
    issuer = cluster["oidcIssuer"]
    assert statement["Effect"] == "Allow"
    assert statement["Principal"] == {"Federated": cluster["oidcProviderArn"]}
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Condition"] == {"StringEquals": {
        f"{issuer}:sub": service_account_subject(run)[2],
        f"{issuer}:aud": "sts.amazonaws.com",
    }}


def test_the_amp_role_may_only_remote_write_to_its_workspace():
    run = store_run("stores-eks")
    outputs = run.outputs["metricsStores"]["amp"]
    region = section(STORE_FILES["stores-eks"], "cluster")["region"]
    assert re.fullmatch(rf"arn:aws:aps:{region}:[0-9]{{12}}:workspace/ws-.+", outputs["workspaceArn"])
    [policy] = amp_children(run, "aws:iam/rolePolicy:RolePolicy")
    assert json.loads(policy.inputs["policy"])["Statement"] == [
        {"Effect": "Allow", "Action": ["aps:RemoteWrite"], "Resource": outputs["workspaceArn"]}
    ]
    role_name = policy.inputs["role"]
    assert outputs["roleArn"].endswith(f":role/{role_name}")
    attached = [r for r in run.resources if r.typ.startswith("aws:iam/") and r.inputs.get("role") == role_name]
    assert attached == [policy], "the role has one permission, nothing attached besides"


def test_prometheus_acts_as_the_amp_role_and_signs_with_sigv4():
    run = store_run("stores-eks")
    outputs = run.outputs["metricsStores"]["amp"]
    region = section(STORE_FILES["stores-eks"], "cluster")["region"]
    assert values_of(run)["prometheus"]["serviceAccount"]["annotations"] == {
        "eks.amazonaws.com/role-arn": outputs["roleArn"]
    }
    entry = entries_of(run)["amp"]
    assert entry["sigv4"] == {"region": region}, "no roleArn: Prometheus signs as its service account's own role"
    assert entry["url"] == outputs["remoteWriteUrl"]
    assert re.fullmatch(rf"https://aps-workspaces\.{region}\.amazonaws\.com/workspaces/[^/]+/api/v1/remote_write",
                        entry["url"])
    assert not {"basicAuth", "authorization", "azureAd"} & entry.keys()


# --- Azure Monitor (AKS) ---------------------------------------------------------------------------------------


def azure_children(run: ProgramRun, typ: str) -> list[Registration]:
    return children(run, "mlobs:stores:AzureMonitorStore", typ)


def test_the_azure_identity_federates_with_prometheus_service_account_only():
    run = store_run("stores-aks")
    [identity] = azure_children(run, "azure-native:managedidentity:UserAssignedIdentity")
    [federation] = azure_children(run, "azure-native:managedidentity:FederatedIdentityCredential")
    assert federation.inputs["resourceName"] == identity.inputs["resourceName"]
    assert federation.inputs["resourceGroupName"] == identity.inputs["resourceGroupName"]
    assert federation.inputs["subject"] == service_account_subject(run)[2]
    assert federation.inputs["audiences"] == ["api://AzureADTokenExchange"]
    issuer = mocked("azure-native:containerservice:ManagedCluster")["oidcIssuerProfile"]["issuerURL"]
    assert federation.inputs["issuer"] == issuer
    [cluster] = run.by_type("azure-native:containerservice:ManagedCluster")
    assert cluster.inputs["oidcIssuerProfile"] == {"enabled": True}
    assert cluster.inputs["securityProfile"] == {"workloadIdentity": {"enabled": True}}


def test_the_azure_identity_may_only_publish_metrics_to_the_workspaces_rule():
    run = store_run("stores-aks")
    identity = mocked("azure-native:managedidentity:UserAssignedIdentity")
    rule = mocked("azure-native:monitor:AzureMonitorWorkspace")["defaultIngestionSettings"]
    [assignment] = azure_children(run, "azure-native:authorization:RoleAssignment")
    # Monitoring Metrics Publisher, a built-in role with the same id in every tenant.
    assert assignment.inputs["roleDefinitionId"].endswith(
        "/providers/Microsoft.Authorization/roleDefinitions/3913510d-42f4-4e42-8a64-420c390055eb"
    )
    assert assignment.inputs["principalId"] == identity["principalId"]
    assert assignment.inputs["principalType"] == "ServicePrincipal"
    assert assignment.inputs["scope"] == rule["dataCollectionRuleResourceId"]
    granted = [r for r in run.by_type("azure-native:authorization:RoleAssignment")
               if r.inputs.get("principalId") == identity["principalId"]]
    assert granted == [assignment]


def test_prometheus_pods_write_to_azure_monitor_as_the_identity():
    run = store_run("stores-aks")
    identity = mocked("azure-native:managedidentity:UserAssignedIdentity")
    assert run.outputs["metricsStores"]["azure"]["clientId"] == identity["clientId"]
    values = values_of(run)
    assert values["prometheus"]["serviceAccount"]["annotations"] == {
        "azure.workload.identity/client-id": identity["clientId"]
    }
    assert values["prometheus"]["prometheusSpec"]["podMetadata"] == {"labels": {"azure.workload.identity/use": "true"}}
    entry = entries_of(run)["azure"]
    assert entry["azureAd"] == {"cloud": "AzurePublic", "workloadIdentity": {
        "clientId": identity["clientId"], "tenantId": identity["tenantId"],
    }}
    immutable_id = INVOKE_RESULTS["azure-native:monitor:getDataCollectionRule"](None)["immutableId"]  # type: ignore[arg-type]
    assert f"/dataCollectionRules/{immutable_id}/streams/Microsoft-PrometheusMetrics/api/v1/write?" in entry["url"]
    assert not {"basicAuth", "authorization", "sigv4"} & entry.keys()


# --- Managed Service for Prometheus (GKE) ----------------------------------------------------------------------


def gmp_children(run: ProgramRun, typ: str) -> list[Registration]:
    return children(run, "mlobs:stores:GmpStore", typ)


def test_the_google_account_may_only_write_metrics():
    run = store_run("stores-gke")
    outputs = run.outputs["metricsStores"]["gmp"]
    [account] = gmp_children(run, "gcp:serviceaccount/account:Account")
    assert outputs["serviceAccount"] == mocked("gcp:serviceaccount/account:Account", **account.inputs)["email"]
    granted = [r for r in run.by_type("gcp:projects/iAMMember:IAMMember")
               if r.inputs["member"] == f"serviceAccount:{outputs['serviceAccount']}"]
    assert [(r.inputs["role"], r.inputs["project"]) for r in granted] == [
        ("roles/monitoring.metricWriter", outputs["project"])
    ]


def test_prometheus_service_account_impersonates_the_google_account():
    account_outputs = COMPUTED_OUTPUTS["gcp:serviceaccount/account:Account"]
    run = run_program(STORE_FILES["stores-gke"])
    namespace, account_name, _ = service_account_subject(run)
    outputs = run.outputs["metricsStores"]["gmp"]
    [account] = gmp_children(run, "gcp:serviceaccount/account:Account")
    [binding] = gmp_children(run, "gcp:serviceaccount/iAMMember:IAMMember")
    [cluster] = run.by_type("gcp:container/cluster:Cluster")
    pool = cluster.inputs["workloadIdentityConfig"]["workloadPool"]
    assert pool == f"{outputs['project']}.svc.id.goog"
    assert binding.inputs["role"] == "roles/iam.workloadIdentityUser"
    assert binding.inputs["member"] == f"serviceAccount:{pool}[{namespace}/{account_name}]"
    assert binding.inputs["serviceAccountId"] == account_outputs(SimpleNamespace(inputs=account.inputs))["name"]
    assert account.urn in binding.dependencies, "the binding is on the Google account Prometheus acts as"
    assert values_of(run)["prometheus"]["serviceAccount"]["annotations"] == {
        "iam.gke.io/gcp-service-account": outputs["serviceAccount"]
    }


def test_prometheus_runs_googles_build_and_exports_this_clusters_labels():
    run = store_run("stores-gke")
    [gmp] = [s for s in stores_of(STORE_FILES["stores-gke"]) if s["kind"] == "gmp"]
    spec = prometheus_spec(run)
    image = spec["image"]
    assert f"{image['registry']}/{image['repository']}:{image['tag']}" == gmp.get("image", GMP_PROMETHEUS_IMAGE)
    assert image["registry"] == "gke.gcr.io"
    assert spec["version"] == image["tag"].split("-")[0] and spec["version"].startswith("v2.")
    args = {arg["name"]: arg["value"] for arg in spec["additionalArgs"]}
    assert args["export.label.project-id"] == run.outputs["metricsStores"]["gmp"]["project"]
    assert args["export.label.location"] == section(STORE_FILES["stores-gke"], "cluster")["location"]
    assert args["export.label.cluster"] == spec["externalLabels"][CLUSTER_LABEL]
    assert "export.match" not in args, "a store sent everything exports everything"


def test_a_gmp_image_names_its_registry():
    # The chart takes the registry apart from the repository: an image without one used to pass validation and
    # fail the program with "not enough values to unpack".
    image = "prometheus:v2.53.5-gmp.9"
    [problem] = problems({"remoteWrite": [{"name": "gmp", "kind": "gmp", "image": image}]}, cluster="gke")
    assert problem.startswith(at("monitoring.remoteWrite[0].image")) and f"(got {image!r})" in problem
    assert "pulumi config set --path 'monitoring.remoteWrite[0].image' <value>" in problem


def test_a_mirrored_gmp_image_keeps_its_whole_repository():
    mirror = "europe-docker.pkg.dev/platform/mirror/prometheus-engine/prometheus:v2.53.5-gmp.9"
    monitoring = section(STORE_FILES["stores-gke"], "monitoring")
    monitoring["remoteWrite"] = [s | {"image": mirror} if s["kind"] == "gmp" else s for s in monitoring["remoteWrite"]]
    spec = prometheus_spec(store_run_with("stores-gke", monitoring))
    assert spec["image"] == {"registry": "europe-docker.pkg.dev", "repository": "platform/mirror/prometheus-engine/"
                             "prometheus", "tag": "v2.53.5-gmp.9"}
    assert spec["version"] == "v2.53.5"


def test_a_recordings_only_gmp_store_exports_only_the_recordings():
    monitoring = section(STORE_FILES["stores-gke"], "monitoring")
    monitoring["remoteWrite"] = [s | {"send": "recordings"} if s["kind"] == "gmp" else s
                                 for s in monitoring["remoteWrite"]]
    args = prometheus_spec(store_run_with("stores-gke", monitoring))["additionalArgs"]
    assert [a["value"] for a in args if a["name"] == "export.match"] == [
        f'{{__name__=~"{MODEL_RECORDINGS}", __name__!~"{DERIVABLE_RECORDINGS}"}}'
    ]


def test_replicas_elect_one_exporter_through_a_lease_they_may_hold():
    run = store_run("stores-gke")
    namespace, account_name, _ = service_account_subject(run)
    spec = prometheus_spec(run)
    assert spec["replicas"] > 1
    args = {arg["name"]: arg["value"] for arg in spec["additionalArgs"]}
    assert (args["export.ha.backend"], args["export.ha.kube.namespace"]) == ("kube", namespace)
    [role] = children(run, MONITORING_STACK, "kubernetes:rbac.authorization.k8s.io/v1:Role")
    [binding] = children(run, MONITORING_STACK, "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding")
    assert role.inputs["metadata"]["name"] == args["export.ha.kube.name"]
    assert role.inputs["metadata"]["namespace"] == namespace
    [rule] = role.inputs["rules"]
    assert (rule["apiGroups"], rule["resources"]) == (["coordination.k8s.io"], ["leases"])
    assert {"get", "create", "update"} <= set(rule["verbs"]) and "delete" not in rule["verbs"]
    assert binding.inputs["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                         "name": role.inputs["metadata"]["name"]}
    assert binding.inputs["subjects"] == [{"kind": "ServiceAccount", "name": account_name, "namespace": namespace}]


def test_a_single_replica_exports_without_a_lease():
    monitoring = section(STORE_FILES["stores-gke"], "monitoring")
    monitoring["prometheus"] = {**monitoring.get("prometheus", {}), "replicas": 1}
    run = store_run_with("stores-gke", monitoring)
    spec = prometheus_spec(run)
    assert spec["replicas"] == 1
    assert not [a for a in spec["additionalArgs"] if a["name"].startswith("export.ha.")]
    assert not children(run, MONITORING_STACK, "kubernetes:rbac.authorization.k8s.io/v1:Role")
    assert not children(run, MONITORING_STACK, "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding")


def test_the_chart_renders_the_identity_and_the_entries_as_given(stores_file: Path):
    run = program_run(stores_file)
    rendered = render_release(run)
    values = rendered.values
    prometheus = rendered.one("Prometheus")["spec"]
    account = values["prometheus"]["serviceAccount"]
    assert prometheus["serviceAccountName"] == account["name"]
    annotations = rendered.one("ServiceAccount", account["name"])["metadata"].get("annotations") or {}
    assert annotations == account["annotations"]
    assert prometheus.get("remoteWrite", []) == values["prometheus"]["prometheusSpec"].get("additionalRemoteWrite", [])
    assert prometheus.get("podMetadata") == values["prometheus"]["prometheusSpec"].get("podMetadata")
    if "image" in values["prometheus"]["prometheusSpec"]:
        assert prometheus["image"] == GMP_PROMETHEUS_IMAGE


# =============================================================================================================
# 4. High availability per environment
# =============================================================================================================


def assert_replicated(spec: dict[str, Any], budget: dict[str, Any], replicas: int, kind: str,
                      pods: dict[str, str]) -> None:
    assert spec["replicas"] == replicas
    if replicas == 1:  # a budget would block every drain, a spread has nothing to spread
        assert budget == {"enabled": False}
        assert "topologySpreadConstraints" not in spec
        return
    assert budget == {"enabled": True, "minAvailable": replicas - 1}
    spread = {constraint["topologyKey"]: constraint for constraint in spec["topologySpreadConstraints"]}
    assert set(spread) == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    assert spread["kubernetes.io/hostname"]["whenUnsatisfiable"] == "DoNotSchedule"
    # Required over zones only where every node has one: elsewhere a required spread would leave pods Pending.
    zones = "DoNotSchedule" if kind in CLOUDS else "ScheduleAnyway"
    assert spread["topology.kubernetes.io/zone"]["whenUnsatisfiable"] == zones
    for constraint in spread.values():
        assert constraint["maxSkew"] == 1
        assert constraint["labelSelector"] == {"matchLabels": pods}


def assert_high_availability(values: dict[str, Any], kind: str, prometheus: int, alertmanager: int) -> None:
    release = values["fullnameOverride"]
    # The labels the operator gives the pods of a Prometheus and of an Alertmanager.
    assert_replicated(values["prometheus"]["prometheusSpec"], values["prometheus"]["podDisruptionBudget"],
                      prometheus, kind, {"app.kubernetes.io/name": "prometheus",
                                         "operator.prometheus.io/name": f"{release}-prometheus"})
    assert_replicated(values["alertmanager"]["alertmanagerSpec"], values["alertmanager"]["podDisruptionBudget"],
                      alertmanager, kind, {"app.kubernetes.io/name": "alertmanager",
                                           "alertmanager": f"{release}-alertmanager"})


@pytest.mark.parametrize("stack_file", [*stack_files(), *STORE_STACKS], ids=stack_name)
def test_high_availability_per_environment(stack_file: Path):
    kind = section(stack_file, "cluster")["kind"]
    monitoring = section(stack_file, "monitoring")
    available = monitoring.get("highAvailability", kind in CLOUDS)
    prometheus = monitoring.get("prometheus", {}).get("replicas", 2 if available else 1)
    alertmanager = monitoring.get("alertmanager", {}).get("replicas", 3 if available else 1)
    assert_high_availability(values_of(program_run(stack_file)), kind, prometheus, alertmanager)


def test_the_environments_under_test_include_both_sides():
    sides = {(section(f, "cluster")["kind"] in CLOUDS, section(f, "monitoring").get("highAvailability"))
             for f in [*stack_files(), *STORE_STACKS]}
    assert {(True, None), (False, None), (False, True)} <= sides


@pytest.mark.parametrize(("stack", "monitoring", "kind", "prometheus", "alertmanager"), [
    ("gke", {"highAvailability": False}, "gke", 1, 1),
    ("local", {"highAvailability": True}, "kind", 2, 3),
    ("eks", {"prometheus": {"replicas": 3}, "alertmanager": {"replicas": 5}}, "eks", 3, 5),
    ("aks", {"highAvailability": False, "prometheus": {"replicas": 2}}, "aks", 2, 1),
], ids=["off on a cloud", "on locally", "replicas set", "replicas without highAvailability"])
def test_high_availability_and_replicas_follow_the_settings(
    stack: str, monitoring: dict[str, Any], kind: str, prometheus: int, alertmanager: int
):
    run = program_run_with(stack, {"monitoring": monitoring})
    assert run.outputs["clusterKind"] == kind
    assert_high_availability(values_of(run), kind, prometheus, alertmanager)


def test_the_chart_renders_the_budgets_for_the_spread_pods(stores_file: Path):
    rendered = render_release(program_run(stores_file))
    budgets = {b["metadata"]["name"]: b["spec"] for b in rendered.of_kind("PodDisruptionBudget")}
    for kind, spec_key in (("Prometheus", "prometheus"), ("Alertmanager", "alertmanager")):
        workload = rendered.one(kind)
        spec = workload["spec"]
        assert spec["replicas"] > 1
        budget = budgets[workload["metadata"]["name"]]
        assert budget["minAvailable"] == spec["replicas"] - 1
        for constraint in spec["topologySpreadConstraints"]:  # the spread and the budget count the same pods
            assert constraint["labelSelector"]["matchLabels"] == budget["selector"]["matchLabels"], spec_key


# =============================================================================================================
# 5. Thanos Ruler: a store of your own evaluates the SLO period
# =============================================================================================================


def period_store_of(stack_file: Path) -> dict[str, Any] | None:
    """The store that must evaluate the SLO period: none if Prometheus keeps a whole period, else the first
    that can (a generic store with a query API, amp, azureMonitor)."""
    retention = section(stack_file, "monitoring").get("prometheus", {}).get("retention", "30d")
    if parse_duration(retention) >= parse_duration(SLO_PERIOD):
        return None
    return next(s for s in stores_of(stack_file) if s["kind"] in ("amp", "azureMonitor") or "queryUrl" in s)


PERIOD_EVALUATOR_TYPES = {
    "generic": PROMETHEUS_RULE,
    "amp": "aws:amp/ruleGroupNamespace:RuleGroupNamespace",
    "azureMonitor": "azure-native:alertsmanagement:PrometheusRuleGroup",
}


def test_the_period_goes_to_the_store_that_keeps_it(stores_file: Path):
    run = program_run(stores_file)
    store = period_store_of(stores_file)
    groups = rule_groups(run)
    local = [g for name, gs in groups.items() if not name.endswith("-period-rules") for g in gs]
    period_local = [g for g in local if g["name"].startswith(PERIOD_GROUP_PREFIX)]
    assert ("thanosRuler" in values_of(run)) == (store is not None and store["kind"] == "generic")
    if store is None:  # Prometheus keeps the period and evaluates it, as the cluster's own store
        assert period_local
        assert {r["labels"]["slo_store"] for r in records(period_local)} == {LOCAL_STORE}
        assert not [name for name in groups if name.endswith("-period-rules")]
        return
    assert not period_local, "Prometheus must not evaluate what it does not keep"
    [evaluated] = [r for r in run.by_type(PERIOD_EVALUATOR_TYPES[store["kind"]]) if r.name.endswith("-period-rules")]
    moved = groups[evaluated.name]
    if store["kind"] != "azureMonitor":  # Azure Monitor's rules are one group, named after the resource
        assert all(g["name"].startswith(PERIOD_GROUP_PREFIX) for g in moved)
    assert records(moved) and {r["labels"]["slo_store"] for r in records(moved)} == {store["name"]}


def test_thanos_ruler_evaluates_against_the_stores_query_api():
    stack_file = STORE_FILES["stores-gke"]
    run = program_run(stack_file)
    store = period_store_of(stack_file)
    assert store is not None and store["kind"] == "generic"
    values = values_of(run)
    ruler = values["thanosRuler"]
    assert ruler["enabled"] is True
    spec = ruler["thanosRulerSpec"]
    assert spec["queryEndpoints"] == [store["queryUrl"]]
    assert spec["ruleSelectorNilUsesHelmValues"] is False
    assert spec["ruleSelector"] == {
        "matchLabels": {**run.outputs["monitorLabels"], RULE_EVALUATOR_LABEL: store["name"]}
    }
    assert spec["evaluationInterval"] == values["prometheus"]["prometheusSpec"]["evaluationInterval"]
    # It writes what it records back to the store, with the store's credentials.
    [entry] = spec["remoteWrite"]
    prometheus_entry = entries_of(run)[store["name"]]
    assert (entry["name"], entry["url"]) == (store["name"], store["url"])
    assert entry.get("authorization") == prometheus_entry.get("authorization")
    assert entry.get("headers") == prometheus_entry.get("headers")


def test_the_period_rules_are_the_rulers_and_prometheus_leaves_them_alone():
    run = store_run("stores-gke")
    store = period_store_of(STORE_FILES["stores-gke"])
    assert store is not None
    discovery = run.outputs["monitorLabels"]
    prometheus_selector = prometheus_spec(run)["ruleSelector"]
    assert prometheus_selector == {"matchLabels": discovery,
                                   "matchExpressions": [{"key": RULE_EVALUATOR_LABEL, "operator": "DoesNotExist"}]}
    ruler_selector = values_of(run)["thanosRuler"]["thanosRulerSpec"]["ruleSelector"]
    rules = run.by_type(PROMETHEUS_RULE)
    period = [r for r in rules if r.name.endswith("-period-rules")]
    local = [r for r in rules if r not in period]
    models = section(STORE_FILES["stores-gke"], "models") or {SAMPLE_MODEL: {}}  # unset: the sample model
    assert len(period) == len(local) == len(models)
    for rule in period:
        labels = rule.inputs["metadata"]["labels"]
        assert labels[RULE_EVALUATOR_LABEL] == store["name"] and discovery.items() <= labels.items()
        assert selector_matches(ruler_selector, labels) and not selector_matches(prometheus_selector, labels)
        groups = rule.inputs["spec"]["groups"]
        assert groups and all(g["name"].startswith(PERIOD_GROUP_PREFIX) for g in groups)
        assert {r["labels"]["slo_store"] for r in records(groups)} == {store["name"]}
    for rule in local:
        labels = rule.inputs["metadata"]["labels"]
        assert RULE_EVALUATOR_LABEL not in labels
        assert selector_matches(prometheus_selector, labels) and not selector_matches(ruler_selector, labels)
        assert not [g for g in rule.inputs["spec"]["groups"] if g["name"].startswith(PERIOD_GROUP_PREFIX)]


def test_the_chart_renders_the_ruler_and_prometheus_rule_selection():
    run = store_run("stores-gke")
    rendered = render_release(run)
    store = period_store_of(STORE_FILES["stores-gke"])
    assert store is not None
    ruler = rendered.one("ThanosRuler")["spec"]
    assert ruler["queryEndpoints"] == [store["queryUrl"]]
    assert ruler["ruleSelector"]["matchLabels"][RULE_EVALUATOR_LABEL] == store["name"]
    assert ruler["ruleNamespaceSelector"] == {}
    secret = remote_write_secret(run)
    assert secret is not None
    assert {r["name"] for _, r in secret_references(ruler["remoteWrite"])} == {secret.inputs["metadata"]["name"]}
    rule_selector = rendered.one("Prometheus")["spec"]["ruleSelector"]
    assert {"key": RULE_EVALUATOR_LABEL, "operator": "DoesNotExist"} in rule_selector["matchExpressions"]
