"""A canary beside the stable version: two Deployments behind one Service, told apart by their pods' track.

The program runs under mocks with a canary configured; assertions are made on the recorded objects: each
Deployment selects its own track's pods and never the other's, the Service (and the NetworkPolicy) selects both,
each PodDisruptionBudget exactly its Deployment's pods, both pods are the same pod but for the image and the track,
and the ServiceMonitor copies the track onto every series.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml
from model_service import contract as model_contract

from components.config.loader import validate_settings
from components.config.source import RawSetting
from components.contracts import PROJECT, TRACK_CANARY, TRACK_LABEL, TRACK_SERIES_LABEL, TRACK_STABLE
from components.model.config import SAMPLE_MODEL_NAME
from components.monitors.model_rules import WORKLOAD_PODS
from components.render import render
from tests.e2e.stack import model_target_labels
from tests.harness import STACKS_DIR, ProgramRun, load_stack_file, plain
from tests.k8s_validation import builtin_errors, selector_matches
from tests.test_model_config import EXISTING, FRAUD_SERVICE, KIND, problems
from tests.test_model_deployment import ModelObjects, run_with_models

STABLE_IMAGE = "registry.example.com/ml/ml-model-service:2.0.0"
CANARY_IMAGE = "registry.example.com/ml/ml-model-service:2.1.0"
SERVICE_MONITOR = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"
PROMETHEUS_RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
VERSIONS = ["2.0.0", "2.1.0"]
"""The two versions' model_version, as their model_info would report them."""


MODELS = {SAMPLE_MODEL_NAME: {
    "image": STABLE_IMAGE, "replicas": 3, "autoscaling": {"enabled": True, "maxReplicas": 5},
    "canary": {"image": CANARY_IMAGE, "replicas": 1}, "acceptedVersions": VERSIONS,
}}


@pytest.fixture(scope="module")
def run() -> ProgramRun:
    return run_with_models("local", MODELS)


@pytest.fixture(scope="module")
def model(run: ProgramRun) -> ModelObjects:
    return ModelObjects(run)


def by_track(model: ModelObjects, kind: str) -> dict[str, dict[str, Any]]:
    """The model's objects of ``kind`` by the track of the pods they select."""
    found = {}
    for obj in model.all(kind):
        name = obj["metadata"]["name"]
        found[TRACK_CANARY if name == f"{model.name}-canary" else TRACK_STABLE] = obj
    assert len(found) == len(model.all(kind)), f"{kind}s with unexpected names"
    return found


def pod_labels(deployment: dict[str, Any]) -> dict[str, str]:
    return dict(deployment["spec"]["template"]["metadata"]["labels"])


def test_two_deployments_with_disjoint_selectors(model: ModelObjects):
    deployments = by_track(model, "Deployment")
    assert set(deployments) == {TRACK_STABLE, TRACK_CANARY}
    stable, canary = deployments[TRACK_STABLE], deployments[TRACK_CANARY]
    assert pod_labels(stable)[TRACK_LABEL] == TRACK_STABLE and pod_labels(canary)[TRACK_LABEL] == TRACK_CANARY
    for own, other in ((stable, canary), (canary, stable)):
        assert selector_matches(own["spec"]["selector"], pod_labels(own))
        assert not selector_matches(own["spec"]["selector"], pod_labels(other)), (
            f"{own['metadata']['name']} selects the pods of {other['metadata']['name']}")
    # A pod of a Deployment declared before tracks existed (no track label) stays the stable's to adopt.
    untracked = {k: v for k, v in pod_labels(stable).items() if k != TRACK_LABEL}
    assert selector_matches(stable["spec"]["selector"], untracked)
    assert not selector_matches(canary["spec"]["selector"], untracked)
    assert canary["spec"]["replicas"] == 1
    assert "replicas" not in stable["spec"], "the stable's autoscaler owns its replica count"
    [hpa] = model.all("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == stable["metadata"]["name"], "the canary is never autoscaled"


def test_one_service_and_network_policy_select_both_tracks(model: ModelObjects):
    [service] = model.all("Service")
    [policy] = model.all("NetworkPolicy")
    for deployment in by_track(model, "Deployment").values():
        assert selector_matches({"matchLabels": service["spec"]["selector"]}, pod_labels(deployment))
        assert selector_matches(policy["spec"]["podSelector"], pod_labels(deployment))


def test_each_disruption_budget_selects_its_own_deployments_pods_only(model: ModelObjects):
    deployments, budgets = by_track(model, "Deployment"), by_track(model, "PodDisruptionBudget")
    assert set(budgets) == set(deployments)
    for track, budget in budgets.items():
        assert budget["spec"]["maxUnavailable"] == 1
        for other_track, deployment in deployments.items():
            # The eviction API refuses a pod that two budgets select: each pod must have exactly one.
            assert selector_matches(budget["spec"]["selector"], pod_labels(deployment)) == (track == other_track)


def test_the_canary_is_the_same_pod_but_for_its_image(model: ModelObjects):
    deployments = by_track(model, "Deployment")
    specs = {track: copy.deepcopy(d["spec"]["template"]["spec"]) for track, d in deployments.items()}
    images = {track: spec["containers"][0].pop("image") for track, spec in specs.items()}
    assert images == {TRACK_STABLE: STABLE_IMAGE, TRACK_CANARY: CANARY_IMAGE}
    assert specs[TRACK_CANARY] == specs[TRACK_STABLE], "hardening, probes, resources and settings must be identical"
    container = specs[TRACK_CANARY]["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert container["readinessProbe"] and container["livenessProbe"]
    strategies = {track: d["spec"]["strategy"] for track, d in deployments.items()}
    assert strategies[TRACK_CANARY] == strategies[TRACK_STABLE]
    labels = {track: {k: v for k, v in pod_labels(d).items() if k != TRACK_LABEL} for track, d in deployments.items()}
    assert labels[TRACK_CANARY] == labels[TRACK_STABLE]


def test_pods_of_both_tracks_score_the_ids_of_both_versions(model: ModelObjects):
    for deployment in by_track(model, "Deployment").values():
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env[model_contract.ENV_ACCEPTED_VERSIONS] == ",".join(VERSIONS)


def test_every_object_passes_the_clusters_kubernetes_schema(model: ModelObjects):
    version = str(model.run.outputs["kubernetesVersion"])
    assert [p for obj in model.children if obj.typ.startswith("kubernetes:")
            for p in builtin_errors(plain(obj.inputs), version)] == []


def test_every_series_of_a_pod_carries_its_track(run: ProgramRun, model: ModelObjects):
    [monitor] = [plain(r.inputs) for r in run.by_type(SERVICE_MONITOR)]
    assert monitor["spec"]["podTargetLabels"] == [TRACK_LABEL]
    [service] = model.all("Service")
    for track, deployment in by_track(model, "Deployment").items():
        labels = model_target_labels(monitor, service, deployment, "pod-0")
        assert labels[TRACK_SERIES_LABEL] == track


def test_without_a_canary_nothing_changes_but_the_track_label():
    model = ModelObjects(run_with_models("local", {SAMPLE_MODEL_NAME: {"image": STABLE_IMAGE}}))
    [deployment] = model.all("Deployment")
    assert pod_labels(deployment)[TRACK_LABEL] == TRACK_STABLE
    assert [b["metadata"]["name"] for b in model.all("PodDisruptionBudget")] == [model.name]


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"external": FRAUD_SERVICE, "canary": {"image": CANARY_IMAGE}},
         "ml-observability:models.churn: a canary is a Deployment this stack declares beside the model's own, "
         f"which an external model does not have (got canary.image {CANARY_IMAGE!r} beside external); remove "
         "canary"),
        ({"canary": {"image": "registry.example.com/ml/ml-model-service"}},
         "ml-observability:models.churn.canary.image: image 'registry.example.com/ml/ml-model-service' is not "
         "pinned: give it a version tag other than 'latest' or a digest"),
        ({"canary": {"image": "registry.example.com/ml/ml-model-service:latest"}}, "is not pinned"),
        ({"canary": {"image": CANARY_IMAGE}},
         "ml-observability:models.churn: with a canary, the Service sends a prediction's feedback to a pod of either "
         "version, which refuses the other version's ids unless acceptedVersions lists both (got acceptedVersions "
         "[]); set the stable's and the canary's model versions"),
        ({"acceptedVersions": ["1", "2", "3", "4", "5"]},
         "ml-observability:models.churn.acceptedVersions: Tuple should have at most 4 items after validation, not 5"),
        ({"acceptedVersions": ["1.0.0", "not a version"]}, "models.churn.acceptedVersions[1]: String should match"),
        ({"canary": {"image": CANARY_IMAGE, "replicas": 0}, "acceptedVersions": VERSIONS},
         "ml-observability:models.churn.canary.replicas: Input should be greater than or equal to 1 (got 0)"),
        ({"canary": {"replicas": 1}}, "ml-observability:models.churn.canary.image: required setting is missing"),
        ({"monitors": {"canary": {"maxAccuracyDrop": 1.5}}},
         "ml-observability:models.churn.monitors.canary.maxAccuracyDrop: Input should be less than 1 (got 1.5)"),
        ({"monitors": {"canary": {"minRequests": 0}}},
         "ml-observability:models.churn.monitors.canary.minRequests: Input should be greater than or equal to 1 "
         "(got 0)"),
        ({"monitors": {"canary": {"maxErrors": 0.1}}},
         "ml-observability:models.churn.monitors.canary.maxErrors: unknown setting (got 0.1); remove it or correct "
         "its name; allowed here: window, maxErrorRatioIncrease"),
        ({"image": CANARY_IMAGE, "canary": {"image": CANARY_IMAGE}, "acceptedVersions": VERSIONS},
         f"the canary runs the stable version's image (got canary.image {CANARY_IMAGE!r}, the same as image)"),
    ],
    ids=["external", "no-tag", "latest", "no-versions", "too-many-versions", "bad-version", "no-replicas", "no-image",
         "margin-too-large", "no-volume-guard", "unknown-margin", "same-image"],
)
def test_a_wrong_canary_is_refused_naming_the_setting_and_the_fix(settings: dict[str, Any], expected: str):
    found = problems(KIND if "external" not in settings else EXISTING, {"churn": settings})
    assert any(expected in problem for problem in found), found


def workload_recordings(run: ProgramRun) -> dict[str, str]:
    """The workloads whose pods the model's restart and memory alerts watch, with the expression finding them."""
    [rule] = [plain(r.inputs) for r in run.by_type(PROMETHEUS_RULE)]
    return {r["labels"]["workload"]: r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]
            if r.get("record") == WORKLOAD_PODS}


def test_the_canary_pods_restarts_and_memory_are_watched_too(run: ProgramRun, model: ModelObjects):
    deployments = by_track(model, "Deployment")
    watched = workload_recordings(run)
    assert set(watched) == {d["metadata"]["name"] for d in deployments.values()}
    assert f'owner_name="{deployments[TRACK_CANARY]["metadata"]["name"]}"' in watched[f"{model.name}-canary"]
    without = ModelObjects(run_with_models("local", {SAMPLE_MODEL_NAME: {"image": STABLE_IMAGE}}))
    assert set(workload_recordings(without.run)) == {model.name}


def test_make_render_writes_the_canary_rules_the_program_declares(run: ProgramRun):
    settings = {key.split(":", 1)[1]: RawSetting(json.loads(value) if value[:1] in "{[" else value, False)
                for key, value in load_stack_file(STACKS_DIR / "Pulumi.local.yaml")[0].items()
                if key.startswith(f"{PROJECT}:")}
    settings["models"] = RawSetting(MODELS, False)
    files = render(validate_settings(settings, stack="local")).files
    [rule] = [plain(r.inputs) for r in run.by_type(PROMETHEUS_RULE)]
    assert yaml.safe_load(files[f"{SAMPLE_MODEL_NAME}/prometheus-rule.yaml"])["spec"] == rule["spec"]
