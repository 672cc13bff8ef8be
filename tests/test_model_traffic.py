"""The load generator beside a deployed sample model: on by default on kind only, as locked down as the model,
allowed through the model's NetworkPolicy, and started with a command the generator itself accepts."""

from __future__ import annotations

import shlex
from typing import Any

import pytest
from model_service.loadgen import parse_args

from components.config.loader import ConfigError
from components.contracts import selector_labels
from components.model.deployment import HEARTBEAT_FILE, TRAFFIC_ROUND_SECONDS, traffic_selector_labels
from tests.conftest import program_run
from tests.harness import FLEET_STACK, STACKS_DIR, ProgramRun, run_program

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
MODEL = "synthetic-classifier"


def generators(run: ProgramRun) -> dict[str, dict[str, Any]]:
    """The load generators' Deployments, by the model they load."""
    found = {}
    for resource in run.by_type(DEPLOYMENT):
        labels = resource.inputs["metadata"]["labels"]
        if labels.get("app.kubernetes.io/component") == "load-generator":
            found[labels["app.kubernetes.io/instance"]] = resource.inputs
    return found


def model_deployment(run: ProgramRun, model: str) -> dict[str, Any]:
    [found] = [r.inputs for r in run.by_type(DEPLOYMENT) if r.inputs["metadata"]["name"] == model]
    return found


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    [only] = deployment["spec"]["template"]["spec"]["containers"]
    return only


def test_kind_runs_one_for_each_model_of_the_sample_image_and_no_other():
    assert set(generators(program_run(STACKS_DIR / "Pulumi.local.yaml"))) == {MODEL}
    fleet = program_run(FLEET_STACK)
    sample_models = {r.inputs["metadata"]["name"] for r in fleet.by_type(DEPLOYMENT)
                     if container(r.inputs)["image"].startswith("ml-model-service:")
                     and r.inputs["metadata"]["labels"].get("app.kubernetes.io/component") == "model-server"}
    assert sample_models and set(generators(fleet)) == sample_models  # not the team's own image, not the external


@pytest.mark.parametrize("stack", ["existing", "eks", "aks", "gke"])
def test_other_clusters_run_none_unless_asked(stack: str):
    assert generators(program_run(STACKS_DIR / f"Pulumi.{stack}.yaml")) == {}
    asked = run_program(STACKS_DIR / f"Pulumi.{stack}.yaml",
                        overrides={"models": {MODEL: {"traffic": {"enabled": True}}}})
    assert set(generators(asked)) == {MODEL}


def test_the_generator_is_as_locked_down_as_the_model():
    run = program_run(STACKS_DIR / "Pulumi.local.yaml")
    generator, model = container(generators(run)[MODEL]), container(model_deployment(run, MODEL))
    assert generator["image"] == model["image"]
    assert generator["securityContext"] == model["securityContext"]
    assert generator["securityContext"]["readOnlyRootFilesystem"] is True
    assert generator["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    pod = generators(run)[MODEL]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["automountServiceAccountToken"] is False
    resources = generator["resources"]
    assert set(resources["requests"]) == {"cpu", "memory"} and set(resources["limits"]) == {"memory"}
    for probe in ("startupProbe", "livenessProbe"):
        assert HEARTBEAT_FILE in " ".join(generator[probe]["exec"]["command"])
    assert {"name": "tmp", "mountPath": "/tmp"} in generator["volumeMounts"]  # where the heartbeat is written


def test_its_command_is_one_the_generator_accepts():
    generator = container(generators(program_run(STACKS_DIR / "Pulumi.local.yaml"))[MODEL])
    shell, flag, loop, name, *arguments = generator["command"]
    assert [shell, flag, name] == ["/bin/sh", "-c", "loadgen"]
    assert shlex.split(loop)[:4] == ["while", ":;", "do", "python"]
    config, _ = parse_args(arguments)
    assert config.url == f"http://{MODEL}:8080" and config.duration == TRAFFIC_ROUND_SECONDS
    assert config.heartbeat_file == HEARTBEAT_FILE and config.drift is None and config.feedback_ratio > 0


def test_drifted_traffic_is_one_setting_away():
    drifted = {"models": {MODEL: {"traffic": {"drift": {"f6": 3}}}}}
    run = run_program(STACKS_DIR / "Pulumi.local.yaml", overrides=drifted)
    config, _ = parse_args(container(generators(run)[MODEL])["command"][4:])
    assert config.drift is not None and dict(config.drift.shift) == {"f6": 3.0}


def test_the_models_network_policy_lets_the_generator_in_and_its_service_does_not_select_it():
    run = program_run(STACKS_DIR / "Pulumi.local.yaml")
    [policy] = run.by_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
    peers = [peer for rule in policy.inputs["spec"]["ingress"] for peer in rule["from"]]
    assert {"podSelector": {"matchLabels": traffic_selector_labels(MODEL)}} in peers
    pod_labels = generators(run)[MODEL]["spec"]["template"]["metadata"]["labels"]
    assert traffic_selector_labels(MODEL).items() <= pod_labels.items()
    assert not selector_labels(MODEL, MODEL).items() <= pod_labels.items(), "the model's Service would route to it"


@pytest.mark.parametrize(("traffic", "model", "message"), [
    ({"drift": {"f9": 2}}, {}, "the sample model has no feature f9"),
    ({"enabled": True}, {"image": "registry.example.com/team/model:1.0.0"}, "traffic comes from the sample image"),
    ({"rate": 0}, {}, "models.synthetic-classifier.traffic.rate"),
])
def test_bad_traffic_settings_are_refused_with_the_key(traffic: dict[str, Any], model: dict[str, Any], message: str):
    with pytest.raises(ConfigError, match=message):
        run_program(STACKS_DIR / "Pulumi.local.yaml", overrides={"models": {MODEL: {**model, "traffic": traffic}}})
