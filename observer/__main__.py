"""``observer``: read the settings, then serve until SIGTERM."""

from __future__ import annotations

import signal
import sys
from types import FrameType

import uvicorn
from pydantic import ValidationError

from observer import logs
from observer.app import create_app
from observer.settings import Settings, describe_error


def main() -> int:
    try:
        settings = Settings()
    except ValidationError as error:
        sys.stderr.write(f"observer: {describe_error(error)}\n")
        return 2
    logs.configure(settings.log_level)
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again with the handler
    # found at start; this one turns it into a clean exit status for the container runtime.
    signal.signal(signal.SIGTERM, _stopped)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        log_level=settings.log_level,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=int(settings.shutdown_timeout),
    )
    return 0


def _stopped(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


if __name__ == "__main__":
    sys.exit(main())
