"""What remote write costs per model: series, samples and bytes a second sent to a store, everything against the
models' recordings only (``monitoring.remoteWrite[].send``), and how far the queue lags.

One Prometheus 3.14 (the chart's), configured from the program's own values for the ``local`` stack with two
``generic`` targets on the same Thanos Receive (v0.42, from the tools cache), one sending everything the model's
scrape and rules produce and one only its recordings (``MODEL_RECORDINGS`` less ``DERIVABLE_RECORDINGS``), scrapes
the sample service under steady traffic and evaluates the model's rules. Time runs compressed by ``--time-scale``
(the scrape and evaluation intervals with it), so the measured rates are converted back to the stack's real 30 s
interval: a sample a scrape is a sample a scrape, whatever the interval. Counters come from Prometheus' own
``prometheus_remote_storage_*`` metrics over the measured span; the lag is ``highest_timestamp -
highest_sent_timestamp``, sampled every second.

Only the model's own series are counted: in a cluster the same Prometheus also sends node-exporter,
kube-state-metrics and cAdvisor series (with ``send: all``), which depend on the cluster, not on the models.

    .venv/bin/python benchmarks/remote_write.py [--seconds 120] [--time-scale 0.03]

Needs ``prometheus`` and ``thanos`` in the tools cache (``bash scripts/install-tools.sh prometheus thanos``).
It never asserts: read the figures and the ratios.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "model-service")]

from components.monitoring.stores.gmp import RECORDINGS_SELECTOR  # noqa: E402
from components.monitors.rule_model import parse_duration  # noqa: E402
from tests.e2e.global_view import GlobalView  # noqa: E402
from tests.e2e.stack import train_artifact  # noqa: E402
from tests.traffic import HEALTHY  # noqa: E402

SENDS = ("all", "recordings")
REAL_INTERVAL_SECONDS = 30.0
"""The stack's scrape and evaluation interval (``monitoring.prometheus.scrapeInterval``, 30 s)."""
SECONDS_PER_MONTH = 30 * 86400


def counters(view: GlobalView) -> dict[str, tuple[float, float]]:
    """Samples and bytes sent so far, by target."""
    [api] = view.clusters["bench"].apis
    found: dict[str, tuple[float, float]] = {}
    for send in SENDS:
        name = f"thanos-{send}"
        samples = api.own_metric("prometheus_remote_storage_samples_total", remote_name=name)
        sent_bytes = api.own_metric("prometheus_remote_storage_bytes_total", remote_name=name)
        found[send] = (samples, sent_bytes)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="measured span (after a warm-up)")
    parser.add_argument("--time-scale", type=float, default=0.03)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="mlobs-remote-write-") as folder:
        view = GlobalView(workdir=Path(folder), receiver=None, time_scale=args.time_scale, sends=SENDS)
        (view.workdir / "logs").mkdir()
        try:
            receive_url = view.start_thanos()
            servers = view.start_cluster("bench", False, receive_url, train_artifact(view.workdir / "model"), [])
            view.load_rules_and_start_traffic(servers, [], HEALTHY)
            [api] = servers.apis
            interval = parse_duration(servers.declared.service_monitor["spec"]["endpoints"][0]["interval"]) / 1000
            # Warm-up: every rule evaluated with traffic, the windows' first increases recorded.
            time.sleep(20 * interval)
            # This Prometheus scrapes the model alone: all its series are the model's scrape and recordings.
            series = {"all": api.value('count({__name__=~".+"})') or 0.0,
                      "recordings": api.value(f'count({RECORDINGS_SELECTOR})') or 0.0}
            before, started = counters(view), time.monotonic()
            lags: dict[str, list[float]] = {send: [] for send in SENDS}
            while time.monotonic() - started < args.seconds:
                for send in SENDS:
                    name = f"thanos-{send}"
                    lags[send].append(
                        api.own_metric("prometheus_remote_storage_queue_highest_timestamp_seconds", remote_name=name)
                        - api.own_metric("prometheus_remote_storage_queue_highest_sent_timestamp_seconds",
                                         remote_name=name))
                time.sleep(1.0)
            after, elapsed = counters(view), time.monotonic() - started
        finally:
            leftovers = view.close()
    # Per real second: what was sent in ``elapsed`` compressed seconds covers elapsed / interval scrapes, each
    # of which takes REAL_INTERVAL_SECONDS at the stack's real interval.
    to_real = interval / REAL_INTERVAL_SECONDS
    print(f"remote write per model: one sample service at {HEALTHY.rate:.0f} requests/s, {elapsed:.0f} s measured "
          f"at time scale {args.time_scale} (scrape interval {interval:.2f} s, {REAL_INTERVAL_SECONDS:.0f} s real)")
    print(f"{'send':12} {'series':>7} {'samples/s':>10} {'bytes/s':>9} {'B/sample':>9} {'samples/month':>14} "
          f"{'GB/month':>9} {'lag p50':>8} {'lag max':>8}  (lag: compressed seconds)")
    figures: dict[str, tuple[float, float]] = {}
    for send in SENDS:
        samples = (after[send][0] - before[send][0]) / elapsed * to_real
        sent = (after[send][1] - before[send][1]) / elapsed * to_real
        figures[send] = (samples, sent)
        lag = lags[send] or [float("nan")]
        print(f"{send:12} {series[send]:7.0f} {samples:10.1f} {sent:9.0f} {sent / samples:9.2f} "
              f"{samples * SECONDS_PER_MONTH:14.3g} {sent * SECONDS_PER_MONTH / 1e9:9.2f} "
              f"{statistics.median(lag):7.2f}s {max(lag):7.2f}s")
    print("\nextrapolated (linear in models: each model's series are its own):")
    for models in (1, 10, 100, 1000):
        line = "  ".join(f"{send}: {figures[send][0] * models:9.0f} samples/s, "
                         f"{figures[send][1] * models * 8 / 1e6:7.2f} Mbit/s" for send in SENDS)
        print(f"{models:5} models  {line}")
    ratio = figures["all"][0] / figures["recordings"][0]
    print(f"\nratio all / recordings: {ratio:.1f}x samples, {figures['all'][1] / figures['recordings'][1]:.1f}x bytes")
    print(f"lag: newest sample appended minus newest sent, each second; the scrape interval is {interval:.2f} s")
    if leftovers:
        print(f"after stopping the servers: {leftovers}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
