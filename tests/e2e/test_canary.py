"""A canary beside the stable version: its pods behind the same Service and scrape job, every series labelled
with its track, and a canary that fails more than the stable version reaches the receiver as
``ModelCanaryWorseThanStable``.

The suite's servers (``Trio``) run the stable pod as in the other scenarios; the canary is a second service process
configured from the canary Deployment the program declares (its environment, its target labels), serving a model
of its own version (``1.1.0``, trained as the canary image's build would), with fault injection standing in for a
worse model (the suite runs one build of the service's code), and traffic of its own, as the Service would send it
a share.
"""

from __future__ import annotations

import dataclasses
import time

import pytest
from model_service import contract
from model_service.train import DEFAULT_MODEL_VERSION

from components.contracts import TRACK_CANARY, TRACK_SERIES_LABEL, TRACK_STABLE
from components.monitors.canary_rules import CANARY_ALERT, CRITERION_LABEL, ERROR_RATIO
from components.monitors.drift_rules import observations
from components.monitors.model_slos import AVAILABILITY_ALERT
from tests.e2e.conftest import STACK_FILE, TIMINGS
from tests.e2e.scenario import firing, scope
from tests.e2e.stack import Trio, declare, train_artifact
from tests.processes import poll
from tests.traffic import HEALTHY, Traffic

pytestmark = pytest.mark.e2e

STABLE_VERSION = DEFAULT_MODEL_VERSION

CANARY_VERSION = "1.1.0"
CANARY_IMAGE = f"registry.example.com/ml-team/ml-model-service:{CANARY_VERSION}"
"""The canary's image as the stack file would name it; locally its process runs the suite's build of the code."""
CANARY_ERROR_RATIO = 0.3
"""Share of the canary's predictions answered 500: far past the stable's (none) plus the margin."""
CANARY_TRAFFIC = dataclasses.replace(HEALTHY, rate=5)
"""A quarter of the stable's requests, as a canary with one replica beside more stable ones gets."""


def test_a_failing_canary_notifies_that_it_is_worse_than_stable(trio: Trio) -> None:
    model = trio.declared.model_name
    canary = declare(
        STACK_FILE, time_scale=trio.time_scale, workload=f"{model}-canary",
        settings={"canary": {"image": CANARY_IMAGE}, "acceptedVersions": [STABLE_VERSION, CANARY_VERSION]},
    )
    assert canary.deployment["spec"]["template"]["metadata"]["labels"]["track"] == TRACK_CANARY
    assert canary.job == trio.declared.job, "the canary's pods are targets of the same scrape job"

    started = time.time()
    model_dir = train_artifact(trio.workdir / f"model-{CANARY_VERSION}", version=CANARY_VERSION)
    pod = trio.add_pod(canary, {contract.ENV_FAULT_ERROR_RATIO: repr(CANARY_ERROR_RATIO),
                                contract.ENV_ARTIFACT_DIR: str(model_dir)})
    traffic = Traffic(pod.url)
    traffic.set_profile(CANARY_TRAFFIC)
    traffic.start()
    try:
        # Every series of either pod carries its track, as the operator's podTargetLabels make it, and its version.
        served = {(TRACK_STABLE, STABLE_VERSION), (TRACK_CANARY, CANARY_VERSION)}
        poll("model_info of both tracks, each with its version", lambda: versions_by_track(trio) == served,
             timeout=60, interval=0.5, diagnose=trio.diagnose)

        settings = trio.declared.monitors.canary
        deadline = trio.scale.seconds(settings.window) + trio.scale.seconds("10m") + 120
        posted = trio.receiver.wait_for("webhook", CANARY_ALERT, "firing", since=started, timeout=deadline)
        TIMINGS["failing canary started to its notification (s)"] = posted.received_at - started
        labels = [a.labels for a in posted.alerts if a.name == CANARY_ALERT and a.status == "firing"]
        assert any(a[CRITERION_LABEL] == "error_ratio" for a in labels), labels
        assert all(a["severity"] == "warning" and a["namespace"] == trio.declared.namespace
                   and a["job"] == trio.declared.job for a in labels), labels
        trio.receiver.wait_for("slack", CANARY_ALERT, "firing", since=started, timeout=30)

        # The recordings say why: the canary's error ratio far above the stable's, which answers every request.
        ratios = {r["metric"][TRACK_SERIES_LABEL]: float(r["value"][1])
                  for r in trio.prom.query(f"{ERROR_RATIO}{{{scope(trio)}}}")}
        assert ratios[TRACK_STABLE] == 0.0, ratios
        assert ratios[TRACK_CANARY] > settings.max_error_ratio_increase, ratios
        assert traffic.errors == [], traffic.errors

        # Nothing else but the service's availability SLO, which the canary's failures burn too: 30% of a fifth of
        # the requests is 6% of all of them, past the page's 3% over 6h and 30m. The canary's other criteria may
        # join its error ratio (its latency quantile against the stable's moves with the machine's load).
        others = [a for a in firing(trio) if a["alertname"] not in {CANARY_ALERT, AVAILABILITY_ALERT}]
        assert others == [], others

        # Feature drift is per version with no rule of the canary's: each version's drift recordings are its own.
        drift = trio.declared.monitors.drift
        drifted = f"count by ({contract.LABEL_MODEL_VERSION}) ({observations(drift.short_window)}{{{scope(trio)}}})"
        assert {r["metric"][contract.LABEL_MODEL_VERSION] for r in trio.prom.query(drifted)} == {
            STABLE_VERSION, CANARY_VERSION}
    finally:
        traffic.stop()


def versions_by_track(trio: Trio) -> set[tuple[str, str]]:
    """The (track, model version) pairs of the model's ``model_info`` series in Prometheus."""
    labels = f"{TRACK_SERIES_LABEL}, {contract.LABEL_MODEL_VERSION}"
    query = f"count by ({labels}) ({contract.MODEL_INFO.name}{{{scope(trio)}}})"
    return {(r["metric"].get(TRACK_SERIES_LABEL, ""), r["metric"][contract.LABEL_MODEL_VERSION])
            for r in trio.prom.query(query)}
