"""Run the service: ``python -m model_service.serve``.

One uvicorn worker per process (scale with replicas), so metrics need no multiprocess mode and the
process collector keeps working. uvloop and httptools are used because they are in the ``serve`` extra;
uvicorn falls back to asyncio and h11 without them.
"""

from __future__ import annotations

import logging
import math
import socket
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import uvicorn
from pydantic import ValidationError

from model_service.app import create_app
from model_service.settings import Settings, describe_error


def main(argv: Sequence[str] | None = None) -> int:
    """Validate the configuration, build the app and serve until SIGTERM or SIGINT."""
    if argv if argv is not None else sys.argv[1:]:
        print(
            "usage: python -m model_service.serve (configured by MODEL_* environment variables)",
            file=sys.stderr,
        )
        return 2
    try:
        settings = Settings()
    except ValidationError as error:
        print(describe_error(error), file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        workers=1,
        loop="auto",
        http="auto",
        access_log=settings.access_log,
        log_level=settings.log_level,
        server_header=False,
        # uvicorn takes whole seconds; rounding up never cuts the configured time short.
        timeout_graceful_shutdown=math.ceil(settings.shutdown_timeout_seconds),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """A port the OS considers free on ``host`` (the caller binds it soon after)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_in_background(app: Any, *, start_timeout: float = 20.0) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port, in a thread of this process; yield its base URL.

    For tests and benchmarks that talk to the real app over HTTP without a second process; the server stops
    when the block ends.
    """
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host=LOOPBACK, port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"uvicorn did not start on {LOOPBACK}:{port} within {start_timeout} s")
        time.sleep(0.02)
    try:
        yield f"http://{LOOPBACK}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
