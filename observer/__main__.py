"""``observer``: read the settings, then serve until SIGTERM."""

from __future__ import annotations

import math
import signal
import sys
from types import FrameType

import uvicorn
from pydantic import ValidationError

from observer import logs
from observer.app import create_app
from observer.settings import Settings, describe_error
from observer.shutdown import Shutdown


class _Server(uvicorn.Server):
    """uvicorn's server, telling the application when the stop signal arrived."""

    def __init__(self, config: uvicorn.Config, shutdown: Shutdown) -> None:
        super().__init__(config)
        self._shutdown = shutdown

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._shutdown.begin()
        super().handle_exit(sig, frame)


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
    shutdown = Shutdown(settings.shutdown_timeout)
    config = uvicorn.Config(
        create_app(settings, shutdown=shutdown),
        host=settings.host,
        port=settings.port,
        log_config=None,
        log_level=settings.log_level,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=math.ceil(settings.shutdown_timeout),
    )
    _Server(config, shutdown).run()
    return 0


def _stopped(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


if __name__ == "__main__":
    sys.exit(main())
