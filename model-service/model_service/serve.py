"""Run the service: ``python -m model_service.serve``.

One uvicorn worker per process (scale with replicas), so metrics need no multiprocess mode and the
process collector keeps working. uvloop and httptools are used because they are in the ``serve`` extra;
uvicorn falls back to asyncio and h11 without them.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Sequence

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
