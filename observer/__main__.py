"""``observer``: read the settings, then serve until SIGTERM or Ctrl+C; or send a demo history."""

from __future__ import annotations

import argparse
import math
import signal
import sys
from types import FrameType

import uvicorn
from pydantic import ValidationError

from observer import __version__, logs
from observer.app import create_app
from observer.settings import Settings, describe_error
from observer.shutdown import Shutdown
from observer.startup import StartError, listen, summary, warnings
from observer.state.file import SnapshotError

DESCRIPTION = """\
DORA metrics from GitHub webhooks and CI pipelines, for Prometheus.

Without a command, serve HTTP on HOST:PORT. Settings are environment variables (WEBHOOK_SECRET
is required; see the README for the others)."""

EPILOG = """\
examples:
  WEBHOOK_SECRET=$(openssl rand -hex 32) observer
  observer demo http://127.0.0.1:8080     # send a few weeks of example history to it"""


class _Server(uvicorn.Server):
    """uvicorn's server, telling the application when the stop signal arrived."""

    def __init__(self, config: uvicorn.Config, shutdown: Shutdown) -> None:
        super().__init__(config)
        self._shutdown = shutdown

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._shutdown.begin()
        super().handle_exit(sig, frame)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="observer",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    root.add_argument("--version", action="version", version=f"observer {__version__}")
    commands = root.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("serve", help="serve HTTP (the default)")
    demo = commands.add_parser(
        "demo",
        help="send a realistic signed history to a running observer",
        description="Send a few weeks of signed example history (pushes, pull requests, "
        "deployments with failures and recoveries, incidents; several repositories) to a "
        "running observer, so that every metric has data. Signs with WEBHOOK_SECRET.",
    )
    demo.add_argument(
        "url", metavar="URL", help="the observer's base URL, e.g. http://127.0.0.1:8080"
    )
    demo.add_argument("--days", type=int, default=28, help="days of history, ending now (28)")
    demo.add_argument("--seed", type=int, default=7, help="seed of the pseudo-random history")
    demo.add_argument(
        "--pause",
        type=float,
        default=25.0,
        help="seconds between the two halves of the history, so that Prometheus scrapes the "
        "first before the second arrives and every rate() has data (25; 0 sends it at once)",
    )
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "demo":
        # Imported here: serving never needs the demo's code.
        from observer import demo

        return demo.main(args.url, days=args.days, seed=args.seed, pause=args.pause)
    return serve()


def serve() -> int:
    try:
        settings = Settings()
    except ValidationError as error:
        sys.stderr.write(f"observer: {describe_error(error)}\n")
        return 2
    logs.configure(settings.log_level)
    try:
        sock = listen(settings.host, settings.port)
    except StartError as error:
        sys.stderr.write(f"observer: {error}\n")
        return 1
    shutdown = Shutdown(settings.shutdown_timeout)
    try:
        app = create_app(settings, shutdown=shutdown)
    except SnapshotError as error:
        sock.close()
        sys.stderr.write(f"observer: {error}\n")
        return 2
    logs.event("observer starting", **summary(settings))
    for warning in warnings(settings):
        logs.warning(warning)
    # uvicorn shuts down gracefully on SIGTERM and SIGINT, then raises the signal again with the
    # handler found at start; these turn it into a clean exit status, without a traceback for
    # Ctrl+C.
    signal.signal(signal.SIGTERM, _stopped)
    signal.signal(signal.SIGINT, _stopped)
    config = uvicorn.Config(
        app,
        log_config=None,
        log_level=settings.log_level,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=math.ceil(settings.shutdown_timeout),
    )
    _Server(config, shutdown).run(sockets=[sock])
    return 0


def _stopped(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


if __name__ == "__main__":
    sys.exit(main())
