"""Stack configuration: every real stack file is valid, and every kind of mistake is reported clearly.

Each rule is tested through ``validate_settings`` (what the program calls with the engine's config map) and
the message is asserted to name the stack file, the full key, the value received and a fix.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.clusters.config import CLUSTER_MODELS, EksClusterConfig, KindClusterConfig
from components.config.loader import ConfigError, validate_settings
from components.config.source import RawSetting
from components.config.stack import StackConfig
from tests.harness import load_stack_file, stack_files, stack_name


def validate(settings: dict[str, Any], secret: tuple[str, ...] = (), stack: str = "dev") -> StackConfig:
    return validate_settings({k: RawSetting(v, k in secret) for k, v in settings.items()}, stack=stack)


def problems(settings: dict[str, Any], secret: tuple[str, ...] = (), stack: str = "dev") -> list[str]:
    with pytest.raises(ConfigError) as raised:
        validate(settings, secret, stack)
    message = str(raised.value)
    assert message.startswith(f"stacks/Pulumi.{stack}.yaml: {len(raised.value.problems)} invalid setting")
    return raised.value.problems


@pytest.mark.parametrize("stack_file", stack_files(), ids=stack_name)
def test_every_stack_file_is_valid(stack_file):
    config, _ = load_stack_file(stack_file)
    settings = {
        key.split(":", 1)[1]: RawSetting(json.loads(value), False)
        for key, value in config.items()
        if key.startswith("ml-observability:")
    }
    parsed = validate_settings(settings, stack=stack_name(stack_file))
    assert parsed.cluster.kind in CLUSTER_MODELS


def test_every_cluster_kind_has_a_stack_file():
    kinds = set()
    for stack_file in stack_files():
        config, _ = load_stack_file(stack_file)
        kinds.add(json.loads(config["ml-observability:cluster"])["kind"])
    assert kinds == set(CLUSTER_MODELS)


def test_defaults_come_from_the_models():
    config = validate({"cluster": {"kind": "kind"}})
    assert isinstance(config.cluster, KindClusterConfig)
    assert config.cluster.workers == 0
    assert config.cluster.grafana_host_port == 3000
    assert config.cluster.kubernetes_version == "1.34.0"  # derived from the pinned node image


def test_bad_value_names_key_value_and_fix():
    [problem] = problems({"cluster": {"kind": "kind", "workers": 9}})
    assert problem.startswith("ml-observability:cluster.workers: ")
    assert "less than or equal to 4" in problem
    assert "(got 9)" in problem
    assert "pulumi config set --path 'cluster.workers' <value>" in problem


def test_missing_required_key_says_how_to_set_it():
    [problem] = problems({"cluster": {"kind": "eks"}})
    assert problem == (
        "ml-observability:cluster.region: required setting is missing; "
        "set it: pulumi config set --path 'cluster.region' <value> (for example 'eu-west-1')"
    )


def test_missing_cluster_section_is_reported():
    [problem] = problems({})
    assert problem.startswith("ml-observability:cluster: required setting is missing")


def test_unknown_top_level_key_is_an_error():
    [problem] = problems({"cluster": {"kind": "kind"}, "monitorng": {"x": 1}})
    assert problem.startswith("ml-observability:monitorng: unknown setting (got {'x': 1});")
    assert "cluster, monitoring, alerting, model" in problem


def test_unknown_nested_key_lists_the_allowed_ones():
    [problem] = problems({"cluster": {"kind": "kind", "wokers": 1}})
    assert problem.startswith("ml-observability:cluster.wokers: unknown setting (got 1);")
    assert "allowed here: kind, name, nodeImage, workers, grafanaHostPort" in problem


def test_field_of_another_kind_is_rejected():
    [problem] = problems({"cluster": {"kind": "kind", "region": "eu-west-1"}})
    assert problem.startswith("ml-observability:cluster.region: unknown setting (got 'eu-west-1');")


def test_snake_case_spelling_is_rejected():
    [problem] = problems({"cluster": {"kind": "kind", "grafana_host_port": 3001}})
    assert problem.startswith("ml-observability:cluster.grafana_host_port: unknown setting")


def test_unknown_cluster_kind_lists_the_kinds():
    [problem] = problems({"cluster": {"kind": "k3s"}})
    assert problem == (
        "ml-observability:cluster.kind: unknown kind (got 'k3s'); "
        "set cluster.kind to one of kind, existing, eks, aks, gke"
    )


def test_cross_field_rule_names_the_fields():
    [problem] = problems({"cluster": {"kind": "aks", "location": "westeurope", "nodeCount": 9, "maxNodes": 4}})
    assert problem.startswith("ml-observability:cluster: nodeCount must lie between minNodes and maxNodes")
    assert "nodeCount=9" in problem and "maxNodes=4" in problem


def test_every_problem_is_reported_at_once():
    found = problems(
        {"cluster": {"kind": "eks", "nodeCount": 0, "vpcId": "x", "subnetIds": ["subnet-1", 3]}, "extra": 1}
    )
    keys = [problem.split(": ", 1)[0] for problem in found]
    assert keys == [
        "ml-observability:extra",
        "ml-observability:cluster.nodeCount",
        "ml-observability:cluster.region",
        "ml-observability:cluster.vpcId",
        "ml-observability:cluster.subnetIds[1]",
    ]


def test_secret_values_are_never_echoed():
    found = problems({"cluster": {"kind": "kind"}, "alerting": {"webhookUrl": "https://hooks.example/t0k3n"}},
                     secret=("alerting",))
    assert found, "expected an error for the secret section"
    assert all("t0k3n" not in problem for problem in found)
    assert any("(got [secret])" in problem for problem in found)


def test_config_is_immutable():
    config = validate({"cluster": {"kind": "eks", "region": "eu-west-1"}})
    assert isinstance(config.cluster, EksClusterConfig)
    with pytest.raises(ValueError):
        config.cluster.region = "us-east-1"  # type: ignore[misc]
