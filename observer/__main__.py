"""``observer``: read the settings, then serve until SIGTERM or Ctrl+C; or send a demo history."""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import signal
import sys
import time
from types import FrameType

import uvicorn
from pydantic import ValidationError

from observer import __version__
from observer.app import create_app
from observer.metrics.scrapes import Scrapes, final_scrape
from observer.ops import logs
from observer.ops.shutdown import Shutdown
from observer.ops.startup import StartError, listen, summary, warnings
from observer.settings import Settings, describe_error
from observer.state.file import SnapshotError

DESCRIPTION = """\
DORA metrics from forges, pagers and CI pipelines, for Prometheus.

Without a command, serve HTTP on HOST:PORT. Settings are environment variables (WEBHOOK_SECRET
is required; see the README for the others)."""

# Allocations (less deallocations) of containers between two collections of the youngest
# generation (700 by default).
YOUNG_COLLECTION_THRESHOLD = 10_000
# The part of SHUTDOWN_TIMEOUT the wait for a final scrape may take, work whose counts it must
# carry included; the rest is left to requests in flight and queued enrichment.
FINAL_SCRAPE_SHARE = 0.75
# The part of that wait the work may take (lead time waiting in process memory): the rest is
# left for the scrape to come.
FINISH_WORK_SHARE = 0.5

# Lines a shell runs as they are, one after the other (tests/test_cli.py runs them).
EPILOG = """\
examples:
  export WEBHOOK_SECRET=$(openssl rand -hex 32)
  observer &                               # serve HTTP on port 8080, in the background
  observer demo http://127.0.0.1:8080      # send it a few weeks of example history"""


class _Server(uvicorn.Server):
    """uvicorn's server, which at the stop signal keeps serving until the final scrape.

    uvicorn stops listening as soon as ``should_exit`` is set; here the first signal only starts
    the shutdown (``/readyz`` fails from then on), and a task does the work whose counts the
    final scrape must carry, then sets ``should_exit`` once a scrape has started after the last
    count, or once the wait's share of the budget is spent. A second signal stops at once.
    ``handle_exit`` is uvicorn's public hook for the stop signals; ``started``, ``should_exit``
    and the config's ``timeout_graceful_shutdown`` are public too.
    """

    def __init__(self, config: uvicorn.Config, shutdown: Shutdown, scrapes: Scrapes) -> None:
        super().__init__(config)
        self._shutdown = shutdown
        self._scrapes = scrapes
        self._waiting: asyncio.Task[None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        loop = _running_loop()
        if self._shutdown.begun or not self.started or loop is None:
            # A second signal, or one before the server is up: stop waiting, stop now.
            self._shutdown.begin()
            self.config.timeout_graceful_shutdown = math.ceil(self._shutdown.remaining())
            super().handle_exit(sig, frame)
            return
        self._shutdown.begin()
        # A signal handler runs between two bytecodes of whatever the loop was doing: it only
        # schedules the wait, which the loop starts once it is back in control.
        loop.call_soon_threadsafe(self._start_waiting)

    def _start_waiting(self) -> None:
        self._waiting = asyncio.create_task(self._wait_then_exit())

    async def _wait_then_exit(self) -> None:
        try:
            wait = self._shutdown.remaining() * FINAL_SCRAPE_SHARE
            end = time.monotonic() + wait
            if await self._shutdown.finish_work(wait * FINISH_WORK_SHARE):
                # What it observed is a count the final scrape must carry.
                self._scrapes.counted()
            await final_scrape(self._scrapes, max(end - time.monotonic(), 0.0))
        finally:
            # uvicorn reads it when it stops: requests in flight get what is left.
            self.config.timeout_graceful_shutdown = math.ceil(self._shutdown.remaining())
            self.should_exit = True


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


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
        from observer.cli import demo

        return demo.main(args.url, days=args.days, seed=args.seed, pause=args.pause)
    return serve()


def serve() -> int:
    try:
        settings = Settings()
    except ValidationError as error:
        sys.stderr.write(f"observer: {describe_error(error)}\n")
        return 2
    # The log listener lives as long as serving: its stop writes the lines still queued.
    with logs.writing(settings.log_level, log_format=settings.log_format):
        return _serve(settings)


def _serve(settings: Settings) -> int:
    try:
        sock = listen(settings.host, settings.port)
    except StartError as error:
        sys.stderr.write(f"observer: {error}\n")
        return 1
    shutdown = Shutdown(settings.shutdown_timeout)
    scrapes = Scrapes()
    try:
        app = create_app(settings, shutdown=shutdown, scrapes=scrapes)
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
    # What start-up built lives as long as the process: frozen, it is left out of the
    # collector's full passes, which would otherwise walk all of it during request handling.
    gc.collect()
    gc.freeze()
    # A 100 KB push allocates thousands of containers, nearly all freed by their reference
    # counts; at the default 700 the youngest generation was collected a few times a delivery,
    # and the survivors moved on to be walked again. A pass at this size takes about a
    # millisecond.
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *gc.get_threshold()[1:])
    _Server(config, shutdown, scrapes).run(sockets=[sock])
    return 0


def _stopped(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


if __name__ == "__main__":
    sys.exit(main())
