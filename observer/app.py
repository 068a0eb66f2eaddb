"""The ASGI application: routes, and the lifespan that owns what lives as long as the process."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette

from observer import logs
from observer.enrichment import Enricher, Worker
from observer.github import GitHubClient, create_http_client
from observer.github_auth import token_source
from observer.knowledge import Knowledge
from observer.leadtime import LeadTime
from observer.metrics import Metrics
from observer.recorder import Recorder
from observer.routes import Endpoints
from observer.settings import Settings
from observer.shutdown import Shutdown


def create_app(
    settings: Settings,
    registry: CollectorRegistry | None = None,
    *,
    github_transport: httpx.AsyncBaseTransport | None = None,
    shutdown: Shutdown | None = None,
) -> Starlette:
    """The service; each call has its own registry unless one is given, so tests stay apart."""
    metrics = Metrics(registry if registry is not None else CollectorRegistry())
    # Started by the server at the stop signal; without one, the budget starts at shutdown.
    stopping = shutdown if shutdown is not None else Shutdown(settings.shutdown_timeout)
    recorder = Recorder(settings, metrics)
    endpoints = Endpoints(settings, recorder)
    knowledge = Knowledge(settings.cache_size)
    lead_time = LeadTime(
        knowledge,
        None,
        metrics,
        capacity=settings.dedup_capacity,
        compare_max_pages=settings.compare_max_pages,
    )
    worker = Worker(
        lead_time.enrich,
        metrics,
        queue_size=settings.enrichment_queue_size,
        concurrency=settings.enrichment_concurrency,
    )
    recorder.listener = Enricher(knowledge, lead_time, worker)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            if settings.enrichment_enabled:
                http = await stack.enter_async_context(
                    create_http_client(settings, transport=github_transport)
                )
                auth = token_source(settings, http)
                assert auth is not None  # enrichment is enabled only with a way to authenticate
                lead_time.client = GitHubClient(
                    http,
                    metrics,
                    auth,
                    max_retries=settings.github_max_retries,
                    max_rate_limit_wait=settings.github_max_rate_limit_wait,
                )
                logs.event(
                    "lead-time enrichment is on", github_api_url=str(settings.github_api_url)
                )
            else:
                logs.event(
                    "lead-time enrichment from the GitHub API is off: GITHUB_TOKEN is not set; "
                    "deployments that list their commits still get lead times"
                )
            worker.start()
            endpoints.ready = True
            try:
                yield
            finally:
                endpoints.ready = False
                stopping.begin()
                await worker.stop(stopping.remaining())
                lead_time.client = None

    app = Starlette(routes=endpoints.routes(), lifespan=lifespan)
    app.state.metrics = metrics
    app.state.recorder = recorder
    app.state.worker = worker
    return app
