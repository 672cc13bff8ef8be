#!/usr/bin/env python3
"""Throughput and latency of the sample model service's ``/predict``, against MLServer; prints figures.

Run from the repository root with the service's development environment (it needs ``model_service``
with the ``serve`` extra, and ``wrk`` on the PATH, e.g. ``apt-get install -y wrk``)::

    model-service/.venv-dev/bin/python benchmarks/model_service_throughput.py

What it measures, in one run, on the same trained artifact, batch size 1, one inference process each:

* ``ours``: ``python -m model_service.serve`` with every metric on (drift bins and input quality included);
* ``ours-no-input-quality``: the same with ``MODEL_INPUT_QUALITY_METRICS_ENABLED=false`` (no input-quality
  counters; everything else stays);
* ``ours-interface-only``: the same with ``MODEL_MODEL_METRICS_ENABLED=false`` too (only the HTTP middleware's
  interface metrics stay), so that the variants nest and each step is one group of instruments;
* ``ours-no-instrumentation``: the same app with ``MODEL_INSTRUMENTATION_ENABLED=false``, which updates no
  instrument while ``/predict`` answers (no HTTP middleware, no model or input-quality metrics): the baseline
  every instrument's cost is measured against;
* ``mlserver-pw0``: MLServer + mlserver-sklearn with ``parallel_workers: 0`` (inference in the server
  process, like ours);
* ``mlserver-pw1``: MLServer with its default ``parallel_workers: 1`` (one separate inference worker).

MLServer is installed by this script into its own virtualenv under ``~/.cache/ml-observability/
bench-venvs`` (never into the repository), pinned to the scikit-learn and numpy versions of the service
so that it loads the same ``model.joblib``. Every server gets ``OPENBLAS_NUM_THREADS=1`` and
``OMP_NUM_THREADS=1`` (what the service's image sets) and has access logs off.

For each server and cycle: ``wrk -t2 -c8`` for the saturated figures (requests/s, p50, p99 from wrk's
latency distribution), then an open-loop client at a fixed rate (request ``i`` due at ``i / rate``;
latency measured from the due time, so queueing is not hidden), then resident memory of the server's
process tree and the number of series on its ``/metrics``. Servers are interleaved over several cycles
because the machine is shared and noisy; figures are medians with min-max.

What instrumentation costs is measured apart, since it is a few percent and the machine's speed drifts by more
than that over minutes: every variant of the service runs at once, and short saturated bursts go to each in
turn, round after round, so that each round compares them on the same machine; the cost is the median over the
rounds (with its interquartile range), in throughput and in the server's CPU time per request. The same
variants are also timed in process, without the HTTP server. Finally the service's series count is taken after
a realistic traffic mix and again after three times more traffic.

It never asserts: read the figures and the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from model_service.serve import free_port

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ml-observability"
VENVS = CACHE / "bench-venvs"
MLSERVER_REQUIREMENTS = (
    "mlserver==1.7.1",
    "mlserver-sklearn==1.7.1",
    # MLServer 1.7.1 fails to start with uvloop 0.23 ("no current event loop", SeldonIO/MLServer#2286).
    "uvloop==0.21.0",
)
SERVER_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
RECORD = {"f0": 0.12, "f1": 0.94, "f2": -0.31, "f3": 0.4, "f4": 1.5, "f5": 0.6, "f6": -0.7, "f7": 0.8}


# --------------------------------------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------------------------------------


@dataclass
class Server:
    """One server variant: how to start it and how to talk to it."""

    name: str
    command: list[str]
    env: dict[str, str]
    port: int
    ready_path: str
    predict_path: str
    body: bytes
    metrics_url: str
    cwd: Path
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, logs: Path) -> None:
        self.log = logs / f"{self.name}.log"
        handle = self.log.open("ab")
        # A session of its own, so stop() can end exactly this server and the workers it spawns.
        self.process = subprocess.Popen(
            self.command,
            cwd=self.cwd,
            env={**os.environ, **SERVER_ENV, **self.env},
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start; see {self.log}")
            try:
                if httpx.get(self.base + self.ready_path, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not ready after 120 s; see {self.log}")
            time.sleep(0.2)
        response = httpx.post(
            self.base + self.predict_path, content=self.body, headers={"content-type": "application/json"}
        )
        if response.status_code != 200:
            raise RuntimeError(
                f"{self.name} answered {response.status_code} to a predict request: {response.text[:300]}"
            )

    def stop(self) -> None:
        if self.process is None:
            return
        group = self.process.pid  # the session leader's pid is the group id
        try:
            os.killpg(group, signal.SIGTERM)
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(group, signal.SIGKILL)
            self.process.wait(timeout=10)
        except ProcessLookupError:
            pass
        self.process = None

    def _group(self) -> list[Path]:
        """``/proc`` entries of every process in the server's process group."""
        assert self.process is not None
        members = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[2]) == self.process.pid:
                    members.append(entry)
            except (OSError, ValueError, IndexError):
                continue
        return members

    def cpu_seconds(self) -> float:
        """User and system CPU time consumed so far by the server's processes.

        Throughput on a shared machine moves with whatever else runs; the CPU time the server spends per request
        moves much less, so it is the steadier measure of what instrumentation costs.
        """
        ticks = 0
        for entry in self._group():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
            except (OSError, ValueError, IndexError):
                continue
        return ticks / os.sysconf("SC_CLK_TCK")

    def rss_mib(self) -> float:
        """Resident memory of every process in the server's process group."""
        assert self.process is not None
        group = self.process.pid
        total_kib = 0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                pgrp = int(stat.rsplit(")", 1)[1].split()[2])
                if pgrp != group:
                    continue
                for line in (entry / "status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total_kib += int(line.split()[1])
            except (OSError, ValueError, IndexError):
                continue
        return total_kib / 1024

    def series(self) -> int:
        text = httpx.get(self.metrics_url, timeout=10).text
        return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


def ensure_mlserver_venv(python: str) -> Path:
    """Create (once) the virtualenv MLServer runs in, pinned to the service's scikit-learn and numpy."""
    import numpy
    import sklearn

    requirements = (
        *MLSERVER_REQUIREMENTS,
        f"scikit-learn=={sklearn.__version__}",
        f"numpy=={numpy.__version__}",
    )
    key = re.sub(r"[^a-z0-9.]+", "-", "-".join(sorted(requirements)).lower())[:120]
    target = VENVS / f"mlserver-{key}"
    marker = target / ".complete"
    if marker.exists():
        return target
    if target.exists():
        shutil.rmtree(target)
    VENVS.mkdir(parents=True, exist_ok=True)
    print(f"# installing MLServer into {target} (first run only)", flush=True)
    subprocess.run([python, "-m", "venv", str(target)], check=True)
    subprocess.run(
        [str(target / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", *requirements],
        check=True,
    )
    marker.write_text("\n".join(requirements) + "\n")
    return target


def mlserver_dir(root: Path, artifact: Path, name: str, version: str, workers: int) -> tuple[Path, int, int]:
    """Write an MLServer model folder (settings plus model settings) serving the artifact's estimator."""
    folder = root / f"mlserver-pw{workers}"
    folder.mkdir(parents=True, exist_ok=True)
    http_port, metrics_port = free_port(), free_port()
    settings = {
        "http_port": http_port,
        "grpc_port": free_port(),
        "metrics_port": metrics_port,
        "parallel_workers": workers,
        "debug": False,  # MLServer ties uvicorn's access log to debug
    }
    model_settings = {
        "name": name,
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": str(artifact / "model.joblib"), "version": version},
    }
    (folder / "settings.json").write_text(json.dumps(settings, indent=2))
    (folder / "model-settings.json").write_text(json.dumps(model_settings, indent=2))
    return folder, http_port, metrics_port


# --------------------------------------------------------------------------------------------------------
# Load
# --------------------------------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(f"unparsable wrk duration {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


@dataclass
class Saturated:
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    errors: int
    requests: int
    cpu_us: float = float("nan")
    """Server CPU time (user and system, every process of the server) per request answered during the run."""


def run_wrk(server: Server, seconds: float, connections: int, threads: int, script_dir: Path) -> Saturated:
    script = script_dir / f"{server.name}.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {json.dumps(server.body.decode())}\n"
    )
    completed = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "-s",
            str(script),
            server.base + server.predict_path,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    out = completed.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return Saturated(
        rps=rps,
        p50_ms=p50,
        p99_ms=p99,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        errors=sum(int(g) for g in errors.groups()) if errors else 0,
        requests=int(re.search(r"(\d+) requests in", out).group(1)),  # type: ignore[union-attr]
    )


@dataclass
class OpenLoop:
    sent: int
    ok: int
    failed: int
    p50_ms: float
    p99_ms: float
    achieved_rps: float


async def _open_loop(
    host: str, port: int, request: bytes, rate: float, seconds: float, max_connections: int
) -> OpenLoop:
    """Fixed-rate client over raw keep-alive HTTP/1.1 connections (minimal client-side overhead).

    Times come from ``perf_counter``: uvloop's ``loop.time()`` has millisecond resolution.
    """
    clock = time.perf_counter
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    opened = 0
    latencies: list[float] = []
    failed = 0
    total = int(rate * seconds)

    async def one(due: float) -> None:
        nonlocal opened, failed
        if idle:
            reader, writer = idle.pop()
        elif opened < max_connections:
            opened += 1
            reader, writer = await asyncio.open_connection(host, port)
        else:
            failed += 1  # would need more connections than allowed: count, never queue unboundedly
            return
        try:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
            await reader.readexactly(length)
        except (OSError, asyncio.IncompleteReadError, AttributeError, asyncio.LimitOverrunError):
            failed += 1
            writer.close()
            opened -= 1
            return
        if status == 200:
            latencies.append(clock() - due)
        else:
            failed += 1
        idle.append((reader, writer))

    started = clock() + 0.05
    tasks = []
    for i in range(total):
        due = started + i / rate
        delay = due - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(due)))
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
    elapsed = clock() - started
    for _, writer in idle:
        writer.close()
    ordered = sorted(latencies)

    def q(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000 if ordered else float("nan")

    return OpenLoop(
        sent=total,
        ok=len(ordered),
        failed=failed,
        p50_ms=q(0.5),
        p99_ms=q(0.99),
        achieved_rps=total / elapsed,
    )


def run_open_loop(server: Server, rate: float, seconds: float) -> OpenLoop:
    request = (
        f"POST {server.predict_path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(server.body)}\r\n\r\n"
    ).encode() + server.body
    try:
        import uvloop

        runner: Callable[..., Any] = uvloop.run
    except ImportError:
        runner = asyncio.run
    return runner(_open_loop("127.0.0.1", server.port, request, rate, seconds, max_connections=32))  # type: ignore[no-any-return]


# --------------------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------------------


@dataclass
class Results:
    saturated: dict[str, list[Saturated]] = field(default_factory=dict)
    open_loop: dict[str, list[OpenLoop]] = field(default_factory=dict)
    rss: dict[str, list[float]] = field(default_factory=dict)
    series: dict[str, list[int]] = field(default_factory=dict)


def spread(values: Sequence[float], digits: int = 1) -> str:
    return f"{statistics.median(values):.{digits}f} [{min(values):.{digits}f}-{max(values):.{digits}f}]"


def quartiles(values: Sequence[float], digits: int = 1) -> str:
    """Median and interquartile range: the middle half of the rounds, which one noisy round cannot move."""
    low, median, high = statistics.quantiles(values, n=4, method="inclusive")
    return f"{median:.{digits}f} [{low:.{digits}f} to {high:.{digits}f}]"


def paired_bursts(
    servers: list[Server], rounds: int, seconds: float, connections: int, threads: int, script_dir: Path,
    logs: Path,
) -> dict[str, list[Saturated]]:
    """Short saturated runs of every server in turn, round after round, all servers up for the whole phase.

    What instrumentation costs is a few percent, while this machine's speed drifts by tens of percent over
    minutes (other tenants of the host). Bursts seconds apart see the same machine, so each round gives one paired
    comparison, and the median over many rounds is what is reported.
    """
    for server in servers:
        server.start(logs)
    try:
        for server in servers:
            run_wrk(server, 3, connections, threads, script_dir)  # warm-up, discarded
        bursts: dict[str, list[Saturated]] = {server.name: [] for server in servers}
        for round_ in range(rounds):
            first = round_ % len(servers)
            for server in servers[first:] + servers[:first]:
                cpu_before = server.cpu_seconds()
                burst = run_wrk(server, seconds, connections, threads, script_dir)
                burst.cpu_us = (server.cpu_seconds() - cpu_before) / max(burst.requests, 1) * 1e6
                bursts[server.name].append(burst)
        return bursts
    finally:
        for server in servers:
            server.stop()


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


INSTRUMENTATION_VARIANTS: dict[str, dict[str, bool]] = {
    "ours": {},
    "ours-no-input-quality": {"input_quality_metrics_enabled": False},
    "ours-interface-only": {"input_quality_metrics_enabled": False, "model_metrics_enabled": False},
    "ours-no-instrumentation": {"instrumentation_enabled": False},
}
"""The service's variants as settings, for the in-process measurement (the servers get the same as variables)."""


def in_process_costs(artifact: Path, body: bytes, batches: int, per_batch: int) -> dict[str, float]:
    """CPU microseconds the app takes per ``/predict``, called in this process without HTTP: the minimum over
    batches.

    CPU time of this thread rather than wall time, and the minimum of many batches: the figure least disturbed by
    other work on a shared machine (a batch can only be slowed down, never sped up, by it). Without the HTTP
    server and the network the app's own time is smaller than a served request's, so the same instruments weigh
    more here than against a whole request.
    """
    from model_service.app import create_app
    from model_service.settings import Settings

    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/predict", "raw_path": b"/predict", "query_string": b"", "root_path": "",
             "headers": headers, "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    statuses: set[int] = set()

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.add(message["status"])

    async def measure(apps: dict[str, Any]) -> dict[str, float]:
        # Variants take turns batch by batch, so a change in the machine's load weighs on all of them alike.
        best = dict.fromkeys(apps, float("inf"))
        for _ in range(batches):
            for name, app in apps.items():
                started = time.thread_time()
                for _ in range(per_batch):
                    await app(dict(scope), receive, send)
                best[name] = min(best[name], (time.thread_time() - started) / per_batch)
        return {name: seconds * 1e6 for name, seconds in best.items()}

    apps = {
        name: create_app(Settings(artifact_dir=artifact, feedback_signing_key="benchmark-signing-key-0123",
                                  log_level="warning", **overrides), load="now")
        for name, overrides in INSTRUMENTATION_VARIANTS.items()
    }
    results = asyncio.run(measure(apps))
    if statuses != {200}:
        raise RuntimeError(f"in-process /predict answered {sorted(statuses)}")
    return results


def realistic_series(python: str, base: Server, logs: Path) -> list[str]:
    """Series and memory of the service after a realistic mix, and after three times more of it."""
    from model_service.loadgen import DriftSpec, LoadConfig, run

    lines = []
    base.start(logs)
    base.series()  # Prometheus scrapes from the start, so /metrics' own series are there from then on
    try:
        mix = dict(
            url=base.base,
            feedback_ratio=0.5,
            feedback_accuracy=0.85,
            malformed_ratio=0.05,
            drift=DriftSpec(shift={"f2": 1.0}, onset="gradual"),
            concurrency=256,
        )
        counts: list[int] = []
        for label, seconds in (("after 10 s at 200 req/s", 10.0), ("after 30 s more", 30.0)):
            report = run(LoadConfig(rate=200, duration=seconds, seed=len(counts), **mix))  # type: ignore[arg-type]
            for path in ("/healthz", "/readyz", "/drift", "/nope"):
                httpx.get(base.base + path)
            counts.append(base.series())
            lines.append(
                f"  {label}: {counts[-1]} series, RSS {base.rss_mib():.0f} MiB "
                f"({sum(report.requests.values())} requests: {dict(report.requests)})"
            )
        lines.append(f"  series flat as traffic grew: {'yes' if counts[0] == counts[1] else 'NO'}")
    finally:
        base.stop()
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--saturated-seconds", type=float, default=15.0)
    parser.add_argument("--open-loop-seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--skip-mlserver", action="store_true")
    parser.add_argument("--cost-rounds", type=int, default=20, help="paired rounds measuring instrumentation cost")
    parser.add_argument("--cost-burst-seconds", type=float, default=3.0)
    parser.add_argument("--in-process-batches", type=int, default=30)
    parser.add_argument("--in-process-requests", type=int, default=1000, help="requests per in-process batch")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        return 2

    import numpy
    import sklearn
    from model_service.train import train

    python = sys.executable
    work = Path(tempfile.mkdtemp(prefix="model-service-bench-", dir=CACHE if CACHE.exists() else None))
    logs = work / "logs"
    logs.mkdir()
    artifact = work / "model"
    metadata = train(artifact)
    ours_body = json.dumps({"records": [RECORD]}).encode()
    v2_body = json.dumps(
        {"inputs": [{"name": "input-0", "shape": [1, 8], "datatype": "FP64", "data": list(RECORD.values())}]}
    ).encode()

    def ours(name: str, extra: dict[str, str]) -> Server:
        port = free_port()
        env = {
            "MODEL_ARTIFACT_DIR": str(artifact),
            "MODEL_HOST": "127.0.0.1",
            "MODEL_PORT": str(port),
            "MODEL_LOG_LEVEL": "warning",
            "MODEL_FEEDBACK_SIGNING_KEY": "benchmark-signing-key-0123",
            **extra,
        }
        return Server(
            name,
            [python, "-m", "model_service.serve"],
            env,
            port,
            "/readyz",
            "/predict",
            ours_body,
            f"http://127.0.0.1:{port}/metrics",
            work,
        )

    servers = [
        ours("ours", {}),
        ours("ours-no-input-quality", {"MODEL_INPUT_QUALITY_METRICS_ENABLED": "false"}),
        ours(
            "ours-interface-only",
            {"MODEL_INPUT_QUALITY_METRICS_ENABLED": "false", "MODEL_MODEL_METRICS_ENABLED": "false"},
        ),
        ours("ours-no-instrumentation", {"MODEL_INSTRUMENTATION_ENABLED": "false"}),
    ]
    if not args.skip_mlserver:
        environment = ensure_mlserver_venv(python)
        for workers in (0, 1):
            folder, http_port, metrics_port = mlserver_dir(
                work, artifact, metadata.model_name, metadata.model_version, workers
            )
            servers.append(
                Server(
                    f"mlserver-pw{workers}",
                    [str(environment / "bin" / "mlserver"), "start", str(folder)],
                    {},
                    http_port,
                    f"/v2/models/{metadata.model_name}/ready",
                    f"/v2/models/{metadata.model_name}/infer",
                    v2_body,
                    f"http://127.0.0.1:{metrics_port}/metrics",
                    folder,
                )
            )

    started = time.time()
    versions = (
        f"Python {platform.python_version()}, scikit-learn {sklearn.__version__}, numpy {numpy.__version__}"
    )
    load = (
        f"wrk -t{args.wrk_threads} -c{args.connections} -d{args.saturated_seconds:g}s (saturated); "
        f"open loop {args.rate:g} req/s for {args.open_loop_seconds:g}s"
    )
    header = [
        "# model_service_throughput: /predict, batch size 1, one inference process per server",
        f"# date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; {os.cpu_count()} CPUs; {versions}",
        f"# load: {load}; {args.cycles} interleaved cycles; medians [min-max]",
        "# the load generators run on the same CPUs as the servers; other work shares this machine,",
        f"# so figures are noisy. Load average at start: {load_average()}",
    ]
    print("\n".join(header), flush=True)
    results = Results()
    for cycle in range(1, args.cycles + 1):
        # Each cycle starts with the next variant: whatever the machine does at a cycle's start (the previous
        # server's exit, a job that ends) weighs on every variant in turn rather than always on the first.
        first = (cycle - 1) % len(servers)
        for server in servers[first:] + servers[:first]:
            server.start(logs)
            try:
                run_wrk(server, 3, args.connections, args.wrk_threads, work)  # warm-up, discarded
                cpu_before = server.cpu_seconds()
                saturated = run_wrk(server, args.saturated_seconds, args.connections, args.wrk_threads, work)
                saturated.cpu_us = (server.cpu_seconds() - cpu_before) / max(saturated.requests, 1) * 1e6
                opened = run_open_loop(server, args.rate, args.open_loop_seconds)
                rss = server.rss_mib()
                series = server.series()
            finally:
                server.stop()
            results.saturated.setdefault(server.name, []).append(saturated)
            results.open_loop.setdefault(server.name, []).append(opened)
            results.rss.setdefault(server.name, []).append(rss)
            results.series.setdefault(server.name, []).append(series)
            problems = (
                f" | non-2xx {saturated.non_2xx}, socket errors {saturated.errors}"
                if saturated.non_2xx or saturated.errors
                else ""
            )
            print(
                f"# cycle {cycle} {server.name:<24} {saturated.rps:7.0f} req/s  {saturated.cpu_us:6.1f} us CPU/req  "
                f"p50 {saturated.p50_ms:5.2f} ms  p99 {saturated.p99_ms:6.2f} ms | "
                f"{args.rate:g} req/s: p50 {opened.p50_ms:5.2f} ms  p99 {opened.p99_ms:6.2f} ms "
                f"({opened.ok}/{opened.sent} ok) | RSS {rss:.0f} MiB | {series} series{problems}",
                flush=True,
            )

    print()
    print(
        f"{'server':<24}{'req/s saturated':>22}{'p50 sat (ms)':>20}{'p99 sat (ms)':>22}"
        f"{'p50 @' + format(args.rate, 'g') + ' (ms)':>20}{'p99 @' + format(args.rate, 'g') + ' (ms)':>22}"
        f"{'RSS (MiB)':>18}{'series':>9}{'CPU/req (us)':>24}"
    )
    for server in servers:
        sat = results.saturated[server.name]
        ol = results.open_loop[server.name]
        print(
            f"{server.name:<24}{spread([s.rps for s in sat], 0):>22}{spread([s.p50_ms for s in sat], 2):>20}"
            f"{spread([s.p99_ms for s in sat], 2):>22}{spread([o.p50_ms for o in ol], 2):>20}"
            f"{spread([o.p99_ms for o in ol], 2):>22}{spread(results.rss[server.name], 0):>18}"
            f"{statistics.median(results.series[server.name]):>9.0f}{spread([s.cpu_us for s in sat], 1):>24}"
        )

    def paired(a: str, b: str, metric: Callable[[int, str], float]) -> str:
        ratios = [metric(i, a) / metric(i, b) for i in range(args.cycles)]
        return spread(ratios, 2)

    def rps(i: int, name: str) -> float:
        return results.saturated[name][i].rps

    def p99_sat(i: int, name: str) -> float:
        return results.saturated[name][i].p99_ms

    def p99_open(i: int, name: str) -> float:
        return results.open_loop[name][i].p99_ms

    def row(label: str, value: str) -> None:
        print(f"  {label:<72}{value}")

    print()
    print("ratios (per cycle, median [min-max]):")
    row("p99 saturated, all / none", paired("ours", "ours-no-instrumentation", p99_sat))
    row(f"p99 at {args.rate:g} req/s, all / none", paired("ours", "ours-no-instrumentation", p99_open))
    for peer in ("mlserver-pw0", "mlserver-pw1"):
        if peer in results.saturated:
            target = "  (target >= 1.4)" if peer == "mlserver-pw0" else ""
            row(f"ours / {peer}: req/s saturated", paired("ours", peer, rps) + target)
            row(f"ours / {peer}: p99 saturated", paired("ours", peer, p99_sat))
            row(f"ours / {peer}: p99 at {args.rate:g} req/s", paired("ours", peer, p99_open))
    worst = max(o.p99_ms for o in results.open_loop["ours"])
    print(f"  ours p99 at {args.rate:g} req/s, worst cycle: {worst:.2f} ms  (target < 20 ms, aim < 5 ms)")
    instrumented = [server for server in servers if server.name in INSTRUMENTATION_VARIANTS]
    bursts = paired_bursts(instrumented, args.cost_rounds, args.cost_burst_seconds, args.connections,
                           args.wrk_threads, work, logs)

    def burst_cost(on: str, off: str, measure: Callable[[Saturated, Saturated], float]) -> str:
        return quartiles([measure(a, b) for a, b in zip(bursts[on], bursts[off], strict=True)]) + " %"

    def throughput(on: Saturated, off: Saturated) -> float:
        return 100 * (1 - on.rps / off.rps)

    def cpu(on: Saturated, off: Saturated) -> float:
        return 100 * (on.cpu_us / off.cpu_us - 1)

    print()
    print(f"instrumentation cost, from {args.cost_rounds} rounds of {args.cost_burst_seconds:g} s saturated bursts, "
          "every variant in turn")
    print("(median [interquartile range] over the rounds of the paired cost):")
    cost_steps = (
        ("all metrics, against none", "ours", "ours-no-instrumentation", "  (target < 10 %)"),
        ("the interface metrics, against none", "ours-interface-only", "ours-no-instrumentation", ""),
        ("the model metrics, against the interface metrics", "ours-no-input-quality", "ours-interface-only", ""),
        ("the input-quality counters, against all but them", "ours", "ours-no-input-quality", ""),
    )
    for label, on, off, target in cost_steps:
        row(f"{label}: throughput", burst_cost(on, off, throughput) + target)
        row(f"{label}: CPU per request", burst_cost(on, off, cpu) + target)
    for server in instrumented:
        runs = bursts[server.name]
        row(f"{server.name} in the bursts", f"{quartiles([r.rps for r in runs], 0)} req/s, "
            f"{quartiles([r.cpu_us for r in runs], 1)} us CPU/req")

    print()
    print(f"in-process /predict, the app alone (no HTTP server), min over {args.in_process_batches} batches of "
          f"{args.in_process_requests}:")
    costs = in_process_costs(artifact, ours_body, args.in_process_batches, args.in_process_requests)
    for name, micros in costs.items():
        extra = micros - costs["ours-no-instrumentation"]
        print(f"  {name:<24}{micros:8.1f} us per request  (+{extra:5.1f} us over no instrumentation)")
    served = statistics.median(burst.cpu_us for burst in bursts["ours-no-instrumentation"])
    steps = (
        ("every instrument", "ours", "ours-no-instrumentation"),
        ("the interface metrics (HTTP middleware)", "ours-interface-only", "ours-no-instrumentation"),
        ("the model metrics", "ours-no-input-quality", "ours-interface-only"),
        ("the input-quality counters", "ours", "ours-no-input-quality"),
    )
    print(f"  against the server's median CPU per request without instrumentation in the bursts ({served:.0f} us, "
          "HTTP included):")
    for label, on, off in steps:
        extra = costs[on] - costs[off]
        print(f"    {label:<44}{extra:6.1f} us  {100 * extra / served:5.1f} %")
    print()
    print("series exposed by one replica of the service (metrics on) after a realistic run")
    print("(predict with gradual drift, feedback on half the predictions, 5 % malformed, probes, scrapes):")
    for line in realistic_series(python, ours("ours-series", {}), logs):
        print(line)
    print("the same without the input-quality counters:")
    for line in realistic_series(
        python, ours("ours-series-no-input-quality", {"MODEL_INPUT_QUALITY_METRICS_ENABLED": "false"}), logs
    ):
        print(line)
    print()
    print(f"# load average at end: {load_average()}; wall time {time.time() - started:.0f} s; logs in {logs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
