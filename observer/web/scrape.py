"""``GET /metrics``: the exposition, rendered off the event loop."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Callable

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import gzip_accepted
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from observer.metrics.exposition import GZIP_LEVEL, Exposition
from observer.metrics.scrapes import Scrapes


class MetricsEndpoint:
    """prometheus-client's exposition, rendered off the event loop from per-series caches.

    prometheus-client's own ASGI app renders on the event loop: at 10,000 series that is
    170-280 ms during which no webhook is answered. The rendering runs in a worker thread
    instead, with prometheus-client's own content negotiation (OpenMetrics when asked, gzip
    when accepted, ``name[]`` to restrict), and reformats only the series that changed since
    the last scrape (observer.metrics.exposition), so the thread holds the GIL for milliseconds.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        before: Callable[[], object] = lambda: None,
        scrapes: Scrapes | None = None,
        fallen_back: Callable[[], object] = lambda: None,
    ) -> None:
        self._exposition = Exposition(registry, fallen_back)
        # A stopping server waits for a scrape that starts after the last count.
        self._scrapes = scrapes if scrapes is not None else Scrapes()
        # Brings series that follow a file (team ownership) up to date before each scrape.
        self._before = before
        # One rendering at a time: concurrent scrapes would only share one core's worth of GIL
        # and hold a thread each.
        self._rendering = asyncio.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        self._scrapes.started()
        self._before()
        names = request.query_params.getlist("name[]")
        async with self._rendering:
            body, headers = await asyncio.to_thread(
                _render,
                self._exposition,
                ",".join(request.headers.getlist("accept")),
                ",".join(request.headers.getlist("accept-encoding")),
                names,
            )
        await Response(body, headers=headers)(scope, receive, send)


def _render(
    exposition: Exposition, accept: str, accept_encoding: str, names: list[str]
) -> tuple[bytes, dict[str, str]]:
    body, content_type = exposition.render(accept, names)
    headers = {"Content-Type": content_type}
    if gzip_accepted(accept_encoding):
        # zlib lets go of the GIL while it compresses, so this does not slow the event loop.
        body = gzip.compress(body, compresslevel=GZIP_LEVEL)
        headers["Content-Encoding"] = "gzip"
    return body, headers
