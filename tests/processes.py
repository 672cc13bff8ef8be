"""Local server processes that can never outlive the test that started them, nor leave a port bound.

Each process runs in its own session (so its process group holds it and anything it forks), dies with the
Python process that started it (``PR_SET_PDEATHSIG`` on Linux: even a killed pytest leaves nothing behind),
logs to a file that a failure message can quote, and is stopped with SIGTERM, then SIGKILL after a grace
period. Ports come from the OS on 127.0.0.1 and are checked free again after a stop.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import httpx
from model_service.serve import LOOPBACK

_PR_SET_PDEATHSIG = 1


def port_is_free(port: int) -> bool:
    """Whether nothing listens on ``port``: a bind with SO_REUSEADDR fails only on a live listener, not on
    the TIME_WAIT leftovers of connections that a stopped server had."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
            sock.listen(1)
        except OSError:
            return False
    return True


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGKILL it when the process that started it dies."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def poll(
    what: str,
    check: Callable[[], object],
    *,
    timeout: float,
    interval: float = 0.2,
    diagnose: Callable[[], str] | None = None,
) -> object:
    """Call ``check`` until it returns something truthy, and return that; fail after ``timeout`` seconds.

    The deadline bounds every wait of the suite; the failure message says what was awaited and, through
    ``diagnose``, what the system looked like instead.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = check()
            if result:
                return result
        except (httpx.HTTPError, OSError) as error:  # a server not yet (or no longer) answering
            last_error = error
        if time.monotonic() >= deadline:
            details = diagnose() if diagnose is not None else ""
            error_text = f"; last error: {last_error!r}" if last_error is not None else ""
            raise TimeoutError(f"{what}: not reached within {timeout:.1f}s{error_text}\n{details}".rstrip())
        time.sleep(interval)


class ManagedProcess:
    """One server process: started in its own process group, stopped (and its port checked) on ``stop``."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_dir: Path,
        ports: Sequence[int],
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = [str(a) for a in argv]
        self.ports = tuple(ports)
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.log_path = log_dir / f"{name}.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._starts = 0

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        if self.running():
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        for port in self.ports:
            if not port_is_free(port):
                raise RuntimeError(f"{self.name}: port {port} is already bound by another process")
        self._starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n--- start {self._starts}: {' '.join(self.argv)}\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # only the test's main thread starts processes
            )

    def stop(self, *, sig: signal.Signals = signal.SIGTERM, grace: float = 15.0) -> int | None:
        """Send ``sig`` to the process group, SIGKILL it after ``grace`` seconds; return the exit code.

        Waits until every port of the process is free again, so that a restart on the same port cannot race
        the old listener.
        """
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        # The leader is gone; anything else left in its group goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        poll(f"{self.name}'s ports {self.ports} released", lambda: all(port_is_free(p) for p in self.ports),
             timeout=10, interval=0.05)
        return process.returncode

    def kill(self) -> None:
        """SIGKILL, as the OOM killer or a crash would end it: no graceful shutdown."""
        self.stop(sig=signal.SIGKILL, grace=5)

    def exited_early(self) -> str | None:
        """A message with the log's tail if the process died on its own, else None."""
        if self._process is None or self._process.poll() is None:
            return None
        return f"{self.name} exited with code {self._process.returncode}:\n{self.log_tail()}"

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def wait_http_ok(process: ManagedProcess, url: str, *, timeout: float) -> None:
    """Wait until ``url`` answers 200, failing at once with the log if the process exits meanwhile."""

    def ready() -> bool:
        if (message := process.exited_early()) is not None:
            raise RuntimeError(message)
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    poll(f"{process.name} ready at {url}", ready, timeout=timeout, interval=0.05, diagnose=process.log_tail)
