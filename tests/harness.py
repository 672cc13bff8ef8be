"""Runs the real ``__main__.py`` under Pulumi mocks, with a real stack file's config, and records the graph.

Every registration is kept with its URN, parent, provider and inputs (camelCase, as the engine sees them),
so that tests assert on the resource graph after the whole program has run, never inside an early ``apply``
(where they would see a partial graph or be skipped on unknowns). Mocks fill in only what a provider would
compute (ids, kubeconfigs, release status); they stand in for the clouds, never for the program.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import runpy
import secrets
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from google.protobuf import json_format
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime.proto import resource_pb2

from components.contracts import PROJECT
from components.render import replace_secure

ROOT = Path(__file__).resolve().parents[1]
STACKS_DIR = ROOT / "stacks"
FAKE_KUBECONFIG = yaml.safe_dump(
    {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "mock", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "contexts": [{"name": "mock", "context": {"cluster": "mock", "user": "mock"}}],
        "current-context": "mock",
        "users": [{"name": "mock", "user": {"token": "mock"}}],
    }
)


def stack_files() -> list[Path]:
    """Every stack file of the project: a new one is tested without editing the tests."""
    return sorted(STACKS_DIR.glob("Pulumi.*.yaml"))


FIXTURES_DIR = ROOT / "tests" / "fixtures"
FLEET_STACK = FIXTURES_DIR / "Pulumi.fleet.yaml"
"""A stack of three models (two deployed, one external) owned by two teams, with receivers for both: the
per-stack tests run on it as on the real stack files, so that nothing assumes one model."""
STORE_STACKS = sorted(FIXTURES_DIR.glob("Pulumi.stores-*.yaml"))
"""Stacks that write to every kind of store from every kind of cloud (and a cluster of your own): the per-stack
tests run on them too, so that every store's resources, values and credentials are checked as the stacks' are."""
SECRET = "<secret>"
"""The key that marks a secret in recorded inputs and outputs: ``{SECRET: value}`` (a key no object of the program
uses, unlike ``secret``, which the Prometheus CRD's secret references are made of)."""
SECRET_TEST_VALUE = "https://secret.test.invalid/value"
"""What a value set with --secret reads as under the harness (which cannot decrypt it): a URL, so that it fits
webhook URLs as well as keys and passwords."""


def stack_files_under_test() -> list[Path]:
    """The real stack files, the fleet's, and the stores'."""
    return [*stack_files(), FLEET_STACK, *STORE_STACKS]


def stack_name(stack_file: Path) -> str:
    return stack_file.name.removeprefix("Pulumi.").removesuffix(".yaml")


def load_stack_file(stack_file: Path) -> tuple[dict[str, str], list[str]]:
    """The config map as the CLI passes it to a program: full keys, JSON for maps and lists, strings otherwise.

    Values set with ``--secret`` cannot be decrypted without the CLI, so each becomes a recognisable test value
    and its key is reported as secret, as the engine would.
    """
    document = yaml.safe_load(stack_file.read_text()) or {}
    config: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in (document.get("config") or {}).items():
        if ":" not in key:
            key = f"{PROJECT}:{key}"
        value, secret = replace_secure(value, SECRET_TEST_VALUE)
        if secret:
            secret_keys.append(key)
        config[key] = _to_config_string(value)
    return config, secret_keys


def plain(value: Any) -> Any:
    """Recorded values as the API server (or ``pulumi stack output --show-secrets``) sees them: the ``{SECRET: v}``
    markers unwrapped."""
    if isinstance(value, dict):
        if set(value) == {SECRET}:
            return plain(value[SECRET])
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def _to_config_string(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass
class Registration:
    """One resource as the engine would see it."""

    urn: str
    typ: str
    name: str
    parent: str
    provider: str
    custom: bool
    inputs: dict[str, Any]
    dependencies: list[str]
    protect: bool
    additional_secret_outputs: list[str]


@dataclass
class ProgramRun:
    """The graph one run of the program declared, and its stack outputs."""

    stack: str
    resources: list[Registration]
    outputs: dict[str, Any] = field(default_factory=dict)
    invokes: list[str] = field(default_factory=list)

    def by_type(self, typ: str) -> list[Registration]:
        return [r for r in self.resources if r.typ == typ]

    def one(self, typ: str) -> Registration:
        found = self.by_type(typ)
        assert len(found) == 1, f"expected one {typ}, found {[r.name for r in found]}"
        return found[0]

    def by_urn(self, urn: str) -> Registration:
        return next(r for r in self.resources if r.urn == urn)

    def kubernetes_objects(self) -> list[Registration]:
        return [r for r in self.resources if r.custom and r.typ.startswith("kubernetes:")]

    def children_of(self, urn: str) -> list[Registration]:
        return [r for r in self.resources if r.parent == urn]

    def ancestors(self, registration: Registration) -> Iterator[Registration]:
        parent = registration.parent
        while parent:
            found = [r for r in self.resources if r.urn == parent]
            if not found:
                return
            yield found[0]
            parent = found[0].parent


MOCK_AZURE_MANAGED_GROUP = (
    "/subscriptions/00000000-0000-0000-0000-000000000003/resourceGroups/MA_mock_westeurope_managed"
)

# Outputs a provider computes and the program reads, by resource type.
ComputedOutputs = Callable[[pulumi_mocks.MockResourceArgs], dict[str, Any]]
COMPUTED_OUTPUTS: dict[str, ComputedOutputs] = {
    "command:local:Command": lambda args: {"stdout": FAKE_KUBECONFIG, "stderr": ""},
    "eks:index:Cluster": lambda args: {
        "kubeconfigJson": json.dumps(yaml.safe_load(FAKE_KUBECONFIG)),
        "oidcProviderArn": "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE",
        "oidcIssuer": "oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE",
    },
    "gcp:container/cluster:Cluster": lambda args: {
        "name": args.name,
        "endpoint": "203.0.113.10",
        "masterAuth": {"clusterCaCertificate": base64.b64encode(b"mock-ca").decode()},
    },
    "azure-native:containerservice:ManagedCluster": lambda args: {
        "name": args.name,
        "identityProfile": {"kubeletidentity": {"objectId": "00000000-0000-0000-0000-00000000c0de"}},
        "oidcIssuerProfile": {"enabled": True,
                              "issuerURL": "https://westeurope.oic.prod-aks.azure.com/tenant/00000000-0000/"},
    },
    # Metric stores (tests/fixtures/Pulumi.stores-*.yaml).
    "aws:amp/workspace:Workspace": lambda args: {
        "arn": f"arn:aws:aps:eu-west-1:123456789012:workspace/ws-{args.name}",
        "prometheusEndpoint": f"https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-{args.name}/",
    },
    "azure-native:monitor:AzureMonitorWorkspace": lambda args: {
        "name": args.inputs.get("azureMonitorWorkspaceName", args.name),
        "defaultIngestionSettings": {
            "dataCollectionRuleResourceId": f"{MOCK_AZURE_MANAGED_GROUP}/providers/Microsoft.Insights/"
                                            "dataCollectionRules/mock-dcr",
            "dataCollectionEndpointResourceId": f"{MOCK_AZURE_MANAGED_GROUP}/providers/Microsoft.Insights/"
                                                "dataCollectionEndpoints/mock-dce",
        },
        "metrics": {"internalId": "mock",
                    "prometheusQueryEndpoint": "https://mock.westeurope.prometheus.monitor.azure.com"},
    },
    "azure-native:managedidentity:UserAssignedIdentity": lambda args: {
        "name": args.inputs.get("resourceName", args.name),
        "clientId": "00000000-0000-0000-0000-0000000c11e7",
        "principalId": "00000000-0000-0000-0000-00000000a11c",
        "tenantId": "00000000-0000-0000-0000-000000000004",
    },
    "azure-native:resources:ResourceGroup": lambda args: {"name": args.inputs.get("resourceGroupName", args.name)},
    "gcp:serviceaccount/account:Account": lambda args: {
        "email": f"{args.inputs['accountId']}@mock.iam",
        "name": f"projects/{args.inputs.get('project', '-')}/serviceAccounts/{args.inputs['accountId']}@mock.iam",
    },
    "aws:iam/role:Role": lambda args: {"arn": f"arn:aws:iam::123456789012:role/{args.name}", "name": args.name},
    "random:index/randomPassword:RandomPassword": lambda args: {"result": secrets.token_urlsafe(24)},
    "random:index/randomBytes:RandomBytes": lambda args: {
        "base64": base64.b64encode(b"\x01" * int(args.inputs["length"])).decode(),
        "hex": "01" * int(args.inputs["length"]),
    },
    "random:index/randomString:RandomString": lambda args: {"result": "a" * int(args.inputs["length"])},
    # Registries and pushed images (the model's image on cloud and existing clusters).
    "docker-build:index:Image": lambda args: {
        "ref": f"{args.inputs['tags'][0]}@sha256:{'0' * 64}",
        "digest": f"sha256:{'0' * 64}",
    },
    "aws:ecr/repository:Repository": lambda args: {
        "repositoryUrl": f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/{args.inputs['name']}",
        "registryId": "123456789012",
    },
    "azure-native:containerregistry:Registry": lambda args: {
        "name": args.inputs["registryName"],
        "loginServer": f"{args.inputs['registryName']}.azurecr.io",
    },
    "kubernetes:helm.sh/v3:Release": lambda args: {
        "status": {
            "name": args.inputs.get("name", args.name),
            "namespace": args.inputs.get("namespace", "default"),
            "chart": args.inputs.get("chart"),
            "version": args.inputs.get("version"),
            "status": "deployed",
            "revision": 1,
        }
    },
}
INVOKE_RESULTS: dict[str, Callable[[pulumi_mocks.MockCallArgs], dict[str, Any]]] = {
    "azure-native:containerservice:listManagedClusterAdminCredentials": lambda args: {
        "kubeconfigs": [{"name": "clusterAdmin", "value": base64.b64encode(FAKE_KUBECONFIG.encode()).decode()}]
    },
    "gcp:organizations/getClientConfig:getClientConfig": lambda args: {
        "project": "mock-project",
        "region": "",
        "accessToken": "mock-access-token",
    },
    "aws:ecr/getAuthorizationToken:getAuthorizationToken": lambda args: {
        "userName": "AWS",
        "password": "mock-ecr-password",
        "proxyEndpoint": "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com",
    },
    "azure-native:containerregistry:listRegistryCredentials": lambda args: {
        "username": args.args.get("registryName", "mock"),
        "passwords": [{"name": "password", "value": "mock-acr-password"}],
    },
    "azure-native:monitor:getDataCollectionRule": lambda args: {"immutableId": "dcr-00000000mock"},
    "azure-native:monitor:getDataCollectionEndpoint": lambda args: {
        "metricsIngestion": {"endpoint": "https://mock-dce.westeurope-1.metrics.ingest.monitor.azure.com"},
    },
    "azure-native:authorization:getClientConfig": lambda args: {
        "clientId": "00000000-0000-0000-0000-000000000001",
        "objectId": "00000000-0000-0000-0000-000000000002",
        "subscriptionId": "00000000-0000-0000-0000-000000000003",
        "tenantId": "00000000-0000-0000-0000-000000000004",
    },
}


class _Mocks(pulumi_mocks.Mocks):
    def __init__(self, run: ProgramRun) -> None:
        self.run = run

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        computed = COMPUTED_OUTPUTS.get(args.typ)
        # A custom resource echoes its inputs as outputs, as most providers do; a (remote) component does not,
        # and echoing one of its resource-reference inputs would make the SDK try to read that resource back.
        state = (dict(args.inputs) if args.custom else {}) | (computed(args) if computed else {})
        return f"{args.name}-id", state

    def call(self, args: pulumi_mocks.MockCallArgs) -> dict[str, Any]:
        self.run.invokes.append(args.token)
        result = INVOKE_RESULTS.get(args.token)
        if result is None:
            raise AssertionError(f"the program invoked {args.token}, which the test harness does not answer")
        return result(args)


class _RecordingMonitor(pulumi_mocks.MockMonitor):
    """The SDK's mock monitor, also keeping what it drops: parent, dependencies, options and stack outputs."""

    def __init__(self, mocks: _Mocks, *, record_inputs: bool = True) -> None:
        super().__init__(mocks)
        self.run = mocks.run
        self.record_inputs = record_inputs

    def GetDeploymentInfo(self, request: Any) -> Any:  # gRPC method name
        # Without resource references, a resource passed as an input (a Cluster given to a ManagedNodeGroup)
        # travels as its URN; as a reference the SDK would read it back through getResource on the monitor's
        # thread, which deadlocks once a second program has run in the same process.
        info = super().GetDeploymentInfo(request)
        features = [f for f in info.supportedFeatures if f != resource_pb2.RESOURCE_MONITOR_FEATURE_RESOURCE_REFERENCES]
        return resource_pb2.DeploymentInfo(supportedFeatures=features)

    def RegisterResource(self, request: Any) -> Any:  # gRPC method name
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            self.run.resources.append(
                Registration(
                    urn=response.urn,
                    typ=request.type,
                    name=request.name,
                    parent=request.parent,
                    provider=request.provider,
                    custom=request.custom,
                    inputs=_plain(json_format.MessageToDict(request.object)) if self.record_inputs else {},
                    dependencies=list(request.dependencies),
                    protect=bool(request.protect),
                    additional_secret_outputs=list(request.additionalSecretOutputs),
                )
            )
        return response


SECRET_SIGNATURE = rpc._special_secret_sig
RESOURCE_SIGNATURE = rpc._special_resource_sig


def _plain(value: Any) -> Any:
    """Wire properties as plain data: secrets unwrapped into ``{SECRET: value}``, resource references as URNs.

    The SDK's own deserializer would read a referenced resource back through ``getResource``, which deadlocks
    on the mock monitor's thread; a test only needs to know which resource was referenced.
    """
    if isinstance(value, dict):
        signature = value.get(rpc._special_sig_key)
        if signature == SECRET_SIGNATURE:
            return {SECRET: _plain(value.get("value"))}
        if signature == RESOURCE_SIGNATURE:
            return value["urn"]
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def run_program(
    stack_file: Path, overrides: dict[str, Any] | None = None, program: Path = ROOT / "__main__.py",
    *, record_inputs: bool = True,
) -> ProgramRun:
    """Run ``__main__.py`` once with ``stack_file``'s config (``overrides`` replaces top-level keys).

    ``record_inputs=False`` keeps the registrations without their inputs: what a benchmark of the program itself
    wants, the recording being the tests' own cost, not a user's.
    """
    stack = stack_name(stack_file)
    config, secret_keys = load_stack_file(stack_file)
    for key, value in (overrides or {}).items():
        value, secret = replace_secure(value, SECRET_TEST_VALUE)  # {"secure": …} as in a stack file
        config[f"{PROJECT}:{key}"] = _to_config_string(value)
        if secret:
            secret_keys.append(f"{PROJECT}:{key}")
    return run_with_config(stack, config, secret_keys, program, record_inputs=record_inputs)


@contextlib.contextmanager
def user_home_with_kubeconfig() -> Iterator[Path]:
    """A home folder holding ``~/.kube/config``, as a user of the ``existing`` stack has.

    The ``existing`` cluster reads the kubeconfig file named in its config when the program runs; tests must
    not depend on the kubeconfig of whoever runs them, nor leak it into recorded inputs.
    """
    previous = os.environ.get("HOME")
    with tempfile.TemporaryDirectory() as home:
        (Path(home) / ".kube").mkdir()
        (Path(home) / ".kube" / "config").write_text(FAKE_KUBECONFIG)
        os.environ["HOME"] = home
        try:
            yield Path(home)
        finally:
            if previous is None:
                del os.environ["HOME"]
            else:
                os.environ["HOME"] = previous


def run_with_config(
    stack: str, config: dict[str, str], secret_keys: list[str] | None = None, program_file: Path = ROOT / "__main__.py",
    *, record_inputs: bool = True,
) -> ProgramRun:
    run = ProgramRun(stack=stack, resources=[])
    mocks = _Mocks(run)
    pulumi.runtime.set_all_config(config, secret_keys or [])
    monitor = _RecordingMonitor(mocks, record_inputs=record_inputs)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)

    def program() -> Any:
        exported: dict[str, Any] = {}
        export = pulumi.export

        def record(name: str, value: Any) -> None:
            exported[name] = value
            export(name, value)

        pulumi.export = record  # mocks never register the stack's outputs: collect them as they are exported
        try:
            runpy.run_path(str(program_file), run_name="__main__")
        finally:
            pulumi.export = export

        async def resolve_outputs() -> None:
            for name, value in exported.items():
                output = pulumi.Output.from_input(value)
                resolved = await output.future(with_unknowns=True)
                run.outputs[name] = {SECRET: resolved} if await output.is_secret() else resolved

        return resolve_outputs()

    with user_home_with_kubeconfig():
        pulumi.runtime.test(program)()
    assert run.resources, "the program registered nothing: mocks were installed too late"
    return run


def run_function(program: Callable[[], Any], *, stack: str = "test") -> ProgramRun:
    """Run ``program``, any function that declares resources, under the same recording mocks as the program.

    For component tests that give a component explicit args instead of a stack file, so that they do not
    depend on how ``__main__.py`` wires it.
    """
    run = ProgramRun(stack=stack, resources=[])
    mocks = _Mocks(run)
    pulumi.runtime.set_all_config({}, [])
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False, monitor=_RecordingMonitor(mocks))
    pulumi.runtime.test(program)()
    assert run.resources, "the function registered nothing"
    return run
