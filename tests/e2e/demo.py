"""``make demo``: watch a drift alert go from pending to firing to resolved, on this machine, without Kubernetes.

Starts the same servers as the end-to-end suite (the sample model service, Prometheus and Alertmanager,
configured from the program), sends normal traffic, then traffic with one feature drifted, then normal traffic
again, and prints every change it sees: alert states in Prometheus, alerts in Alertmanager, notifications the
receivers get; at the end it draws the drift (``tests/e2e/pictures.py``) into ``--pictures``. The Prometheus
built from its Go module serves its HTTP API but no web UI, so the API is what the demo reads (and what the
printed URLs offer while ``--hold`` keeps the servers up).

    python -m tests.e2e.demo [--time-scale 0.02] [--feature f6] [--sigmas 3] [--hold] [--pictures DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from components.monitors.drift_rules import FEATURE_DRIFT_ALERT
from tests.e2e.pictures import Scenario, draw
from tests.e2e.stack import Trio, running_trio
from tests.harness import STACKS_DIR
from tests.traffic import HEALTHY, drifted

HIDDEN_LABELS = {"alertname", "namespace", "job", "model_name", "model_version"}
"""Labels every alert of the model carries: left out of the printed names."""


def describe(labels: dict[str, str]) -> str:
    shown = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k not in HIDDEN_LABELS)
    return labels.get("alertname", "?") + (f"{{{shown}}}" if shown else "")


class Watcher:
    """Polls Prometheus, Alertmanager and the receiver; prints what changed since the last look."""

    def __init__(self, trio: Trio, started: float) -> None:
        self.trio = trio
        self.started = started
        self.prometheus: dict[str, str] = {}
        self.alertmanager: dict[str, str] = {}
        self.seen_notifications = 0

    def say(self, source: str, message: str) -> None:
        print(f"{time.time() - self.started:7.1f}s  {source:<13} {message}", flush=True)

    def look(self) -> None:
        current = {describe(a["labels"]): a["state"] for a in self.trio.prom.alerts()}
        for name in sorted(set(current) | set(self.prometheus)):
            before, now = self.prometheus.get(name, "inactive"), current.get(name, "inactive")
            if before != now:
                self.say("Prometheus", f"{name}: {before} -> {now}")
        self.prometheus = current
        managed = {describe(a["labels"]): a["status"]["state"] for a in self.trio.am.alerts()}
        for name in sorted(set(managed) | set(self.alertmanager)):
            before, now = self.alertmanager.get(name, "none"), managed.get(name, "resolved")
            if before != now:
                self.say("Alertmanager", f"{name}: {now}")
        self.alertmanager = managed
        notifications = self.trio.receiver.notifications()
        for notification in notifications[self.seen_notifications:]:
            alerts = ", ".join(f"{describe(a.labels)} {a.status}" for a in notification.alerts)
            self.say(f"-> {notification.receiver}", f"{notification.status}: {alerts}")
        self.seen_notifications = len(notifications)

    def until(self, what: str, done: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise SystemExit(f"demo: {what} did not happen within {timeout:.0f}s")
            self.look()
            time.sleep(0.5)
        self.look()


def run_demo(time_scale: float, feature: str, sigmas: float, hold: bool, pictures: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="ml-obs-demo-") as folder, \
            running_trio(STACKS_DIR / "Pulumi.local.yaml", Path(folder), time_scale=time_scale) as trio:
        started = time.time()
        watcher = Watcher(trio, started)
        scale = trio.scale
        print(f"Prometheus API:   {trio.prom.base_url}/api/v1/alerts  (rules: /api/v1/rules)")
        print(f"Alertmanager API: {trio.am.base_url}/api/v2/alerts")
        print(f"Model service:    {trio.pods[-1].url}/drift  (logs: {folder}/logs)")
        print(f"Time scale {time_scale}: an hour of the monitors' windows passes in {scale.seconds('1h'):.0f} s.\n")

        normal = scale.seconds("10m")
        watcher.say("traffic", f"normal traffic for {normal:.0f} s")
        watcher.until("normal traffic", lambda: time.time() - started > normal, timeout=normal + 5)

        trio.traffic.set_profile(drifted(feature, sigmas))
        watcher.say("traffic", f"feature {feature} shifted by {sigmas} standard deviations")
        drift_started = time.time()

        def notified(status: str, since: float) -> bool:
            """A webhook notification of the drift alert's group, all of it in ``status``."""
            return any(
                n.status == status and FEATURE_DRIFT_ALERT in n.names()
                for n in trio.receiver.notifications("webhook", since=since)
            )

        window = scale.seconds(trio.declared.monitors.drift.short_window)
        watcher.until("the drift alert's notification", lambda: notified("firing", drift_started),
                      timeout=window + scale.seconds("10m") + 60)
        watcher.say("traffic", f"notified {time.time() - drift_started:.1f} s after the drift began; back to normal")
        trio.traffic.set_profile(HEALTHY)
        back = time.time()
        watcher.until("the resolved notification", lambda: notified("resolved", back), timeout=2 * window + 60)
        watcher.say("demo", f"resolved {time.time() - back:.1f} s after the traffic went back to normal")
        scenario = Scenario(
            selector=f'namespace="{trio.declared.namespace}", job="{trio.declared.job}"', feature=feature,
            short_window=trio.declared.monitors.drift.short_window,
            period=trio.declared.monitors.slo_period, start=started, end=time.time(),
            step=scale.seconds(trio.declared.monitors.evaluation_interval),
        )
        for path in draw(trio.prom, scenario, pictures):
            watcher.say("picture", str(path))
        if hold:
            print("\nServers stay up until Ctrl-C.")
            try:
                while True:
                    watcher.look()
                    time.sleep(1)
            except KeyboardInterrupt:
                pass


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.e2e.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--time-scale", type=float, default=0.02,
                        help="the monitors' timeScale (0.02: an hour of windows in 72 s)")
    parser.add_argument("--feature", default="f6", help="feature to drift (f0..f7)")
    parser.add_argument("--sigmas", type=float, default=3.0, help="shift, in training standard deviations")
    parser.add_argument("--hold", action="store_true", help="keep the servers up until Ctrl-C at the end")
    parser.add_argument("--pictures", type=Path, default=Path(".state/demo"),
                        help="folder for the PNGs drawn at the end (the README's are in docs/images)")
    args = parser.parse_args(argv)
    run_demo(args.time_scale, args.feature, args.sigmas, args.hold, args.pictures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
