"""The ASGI application: routes, and the lifespan that owns what lives as long as the process."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette

from observer import logs
from observer.metrics import Metrics
from observer.recorder import Recorder
from observer.routes import Endpoints
from observer.settings import Settings


def create_app(settings: Settings, registry: CollectorRegistry | None = None) -> Starlette:
    """The service; each call has its own registry unless one is given, so tests stay apart."""
    metrics = Metrics(registry if registry is not None else CollectorRegistry())
    recorder = Recorder(settings, metrics)
    endpoints = Endpoints(settings, recorder)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if not settings.enrichment_enabled:
            logs.event("lead-time enrichment is off: GITHUB_TOKEN is not set")
        endpoints.ready = True
        try:
            yield
        finally:
            endpoints.ready = False

    app = Starlette(routes=endpoints.routes(), lifespan=lifespan)
    app.state.metrics = metrics
    app.state.recorder = recorder
    return app
