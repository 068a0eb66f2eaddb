"""The service's routes: a receiving pipeline per source, /api/event, /metrics and health."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from observer import __version__
from observer.metrics.definitions import Metrics
from observer.metrics.scrapes import Scrapes
from observer.ops.shutdown import Shutdown
from observer.settings import Settings
from observer.sources.adapter import Adapter
from observer.state import StoreUnavailable
from observer.web.api_event import ApiEvent
from observer.web.asgi import Asgi
from observer.web.body import BodyBudget
from observer.web.openapi import openapi_document
from observer.web.pipeline import Pipeline, Services
from observer.web.scrape import MetricsEndpoint

READY_TIMEOUT = 2.0


def _services(request: Request) -> Services:
    services: Services = request.state.services
    return services


class Endpoints:
    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        before_scrape: Callable[[], object],
        adapters: Sequence[Adapter],
        *,
        stopping: Shutdown,
        scrapes: Scrapes,
    ) -> None:
        self._settings = settings
        self._stopping = stopping
        self._scrapes = scrapes
        self._metrics = metrics
        self._before_scrape = before_scrape
        self._adapters = adapters
        # Bodies held at once, across every endpoint that reads one.
        self._budget = BodyBudget(settings.max_buffered_bytes)
        self._openapi = openapi_document(settings.max_events_per_request)
        self.ready = False

    def routes(self) -> list[BaseRoute]:
        pipelines: list[BaseRoute] = [
            Route(
                adapter.path,
                Asgi(
                    Pipeline(
                        adapter,
                        self._metrics,
                        self._scrapes,
                        max_body_bytes=self._settings.max_body_bytes,
                        budget=self._budget,
                    )
                ),
                methods=["POST"],
            )
            for adapter in self._adapters
        ]
        return [
            Route("/", self.index, methods=["GET"]),
            *pipelines,
            Route(
                "/api/event",
                ApiEvent(self._settings, self._metrics, self._scrapes, self._budget).handle,
                methods=["POST"],
            ),
            Route(
                "/metrics",
                MetricsEndpoint(
                    self._metrics.registry,
                    self._before_scrape,
                    self._scrapes,
                    self._metrics.exposition_fallbacks.inc,
                ),
            ),
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/readyz", self.readyz, methods=["GET"]),
            Route("/openapi.json", self.openapi, methods=["GET"]),
        ]

    async def index(self, request: Request) -> Response:
        return HTMLResponse(_INDEX.format(version=__version__))

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        # From the stop signal on, so that a load balancer sends elsewhere while this replica
        # waits for its final scrape.
        if self._stopping.begun:
            return JSONResponse({"status": "stopping"}, status_code=503)
        if not self.ready:
            return JSONResponse({"status": "not ready"}, status_code=503)
        try:
            async with asyncio.timeout(READY_TIMEOUT):
                await _services(request).store.ping()
        except (StoreUnavailable, TimeoutError):
            self._metrics.state_up.set(0)
            return JSONResponse(
                {"status": "not ready", "detail": "the state store cannot be reached"},
                status_code=503,
            )
        self._metrics.state_up.set(1)
        return JSONResponse({"status": "ready"})

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(self._openapi)


_INDEX = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>observer</title></head>
<body>
<h1>observer {version}</h1>
<p>DORA metrics from forges, pagers and CI pipelines, for Prometheus.</p>
<ul>
<li><code>POST /webhook</code>: GitHub webhook deliveries (signed)</li>
<li><code>POST /gitlab</code>, <code>POST /alertmanager</code>, <code>POST /pagerduty</code>:
  GitLab, Alertmanager and PagerDuty deliveries</li>
<li><code>POST /api/event</code>: events pushed by pipelines
  (<a href="/openapi.json">OpenAPI</a>)</li>
<li><a href="/metrics"><code>GET /metrics</code></a>: Prometheus exposition</li>
<li><a href="/healthz"><code>GET /healthz</code></a>,
  <a href="/readyz"><code>GET /readyz</code></a></li>
</ul>
</body></html>
"""
