"""The ASGI application: routes, and the lifespan that builds and owns what lives as long as it.

The object graph is built whole in the lifespan, once it has what it needs (the state store's
connection, the GitHub API's HTTP client), and handed to the endpoints as lifespan state.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

import httpx
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.middleware import Middleware

from observer.forges.github.auth import AppInstallationToken, AppJwt, TokenSource, token_source
from observer.forges.github.client import GitHubClient, create_http_client
from observer.forges.gitlab import client as gitlab
from observer.leadtime.changes import LeadTime
from observer.leadtime.enrichment import Deployments, Enrichment
from observer.leadtime.failures import ChangeFailures
from observer.leadtime.forges import Forge, Forges, GitHubForge, PushesSeen
from observer.leadtime.gitlab import GitLabForge
from observer.leadtime.knowledge import Knowledge
from observer.metrics.definitions import Metrics
from observer.metrics.labels import LabelPolicy
from observer.metrics.scrapes import Scrapes
from observer.ops import logs
from observer.ops.shutdown import Shutdown
from observer.recorder import Recorder
from observer.settings import Settings
from observer.sources.adapter import Adapter
from observer.sources.github.redeliver import Hook, Redelivery, hook_path
from observer.sources.table import ADAPTERS
from observer.state import Store, StoreUnavailable, open_store
from observer.state.doubt import Ledger
from observer.state.snapshot import SnapshotConflict, SnapshotStore
from observer.teams import first_review
from observer.teams.activity import Activity
from observer.web.asgi import CountErrors
from observer.web.pipeline import Services
from observer.web.routes import Endpoints


def create_app(
    settings: Settings,
    registry: CollectorRegistry | None = None,
    *,
    github_transport: httpx.AsyncBaseTransport | None = None,
    gitlab_transport: httpx.AsyncBaseTransport | None = None,
    shutdown: Shutdown | None = None,
    scrapes: Scrapes | None = None,
    sources: Sequence[Callable[[Settings], Adapter]] = ADAPTERS,
) -> Starlette:
    """The service; each call has its own registry unless one is given, so tests stay apart.

    A file or bucket store loads its snapshot here, so that an unreadable one stops the start
    (``SnapshotError``) before anything listens.
    """
    metrics = Metrics(registry if registry is not None else CollectorRegistry())
    # Started by the server at the stop signal; without one, the budget starts at shutdown.
    stopping = shutdown if shutdown is not None else Shutdown(settings.shutdown_timeout)
    store = open_store(settings)
    # Teams are read here, so that a broken TEAMS_FILE stops the start.
    activity = Activity(settings, metrics, store)
    endpoints = Endpoints(
        settings,
        metrics,
        activity.teams.refresh,
        [build(settings) for build in sources],
        stopping=stopping,
        scrapes=scrapes if scrapes is not None else Scrapes(),
    )
    labels = LabelPolicy(
        settings.repositories, settings.max_repositories, settings.max_environments, metrics
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Services]]:
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(store.close)
            knowledge = Knowledge(store)
            github = await _github(settings, metrics, stack, github_transport)
            pushes = PushesSeen(knowledge, metrics)
            forges = Forges(
                github=_github_forge(settings, metrics, knowledge, github, pushes),
                gitlab=await _gitlab_forge(
                    settings, metrics, knowledge, stack, gitlab_transport, pushes
                ),
                pushes=pushes,
            )
            lead_time = LeadTime(knowledge, forges, store, metrics)
            ledger = Ledger(store, dropped=metrics.state_in_doubt_dropped.inc)
            metrics.state_in_doubt.set_function(lambda: ledger.in_doubt)
            enrichment = Enrichment(
                store,
                lead_time,
                labels,
                metrics,
                concurrency=settings.enrichment_concurrency,
                settle=settings.settle_seconds,
                ledger=ledger,
                jobs={first_review.PREFIX: activity.first_reviews.decide},
                change_failures=ChangeFailures(metrics, knowledge),
            )
            activity.first_reviews.wake = enrichment.wake
            recorder = Recorder(
                metrics,
                store,
                labels,
                knowledge,
                Deployments(metrics, settle=settings.settle_seconds, wake=enrichment.wake),
                production=settings.production_environments,
                incident_label=settings.incident_label,
                max_clock_skew=settings.max_clock_skew,
                activity=activity,
                ledger=ledger,
            )
            saver = _start_saving(store, settings.state_save_interval, metrics)
            logs.event("state store", mode=store.mode)
            await _check_store(store)
            resolver = asyncio.create_task(ledger.run())
            enrichment.start()
            app.state.enrichment = enrichment
            if store.mode == "memory":
                # Lost with the process otherwise: done at the signal, for the final scrape.
                stopping.before_final_scrape(enrichment.finish_waiting)
            redelivery = _redelivery(settings, metrics, store, github)
            endpoints.ready = True
            if redelivery is not None:
                redelivery.start()
            try:
                yield {"services": Services(recorder, store)}
            finally:
                endpoints.ready = False
                stopping.begin()
                if redelivery is not None:
                    await redelivery.stop()
                await enrichment.stop(stopping.remaining(), finish_waiting=store.mode == "memory")
                resolver.cancel()
                await asyncio.gather(resolver, return_exceptions=True)
                await ledger.stop(stopping.remaining())
                if saver is not None:
                    saver.cancel()
                    await asyncio.gather(saver, return_exceptions=True)
                if isinstance(store, SnapshotStore):
                    await _save(store, metrics)

    return Starlette(
        routes=endpoints.routes(),
        middleware=[Middleware(CountErrors, errors=metrics.unexpected_errors)],
        lifespan=lifespan,
    )


@dataclass(frozen=True, slots=True)
class _GitHub:
    http: httpx.AsyncClient
    auth: TokenSource
    client: GitHubClient


async def _github(
    settings: Settings,
    metrics: Metrics,
    stack: contextlib.AsyncExitStack,
    transport: httpx.AsyncBaseTransport | None,
) -> _GitHub | None:
    if not settings.enrichment_enabled:
        return None
    http = await stack.enter_async_context(create_http_client(settings, transport=transport))
    auth = token_source(settings, http)
    assert auth is not None  # enrichment is enabled only with a way to authenticate
    return _GitHub(http, auth, _client(settings, metrics, http, auth))


def _client(
    settings: Settings, metrics: Metrics, http: httpx.AsyncClient, auth: TokenSource
) -> GitHubClient:
    return GitHubClient(
        http,
        metrics,
        auth,
        max_retries=settings.github_max_retries,
        max_rate_limit_wait=settings.github_max_rate_limit_wait,
    )


def _github_forge(
    settings: Settings,
    metrics: Metrics,
    knowledge: Knowledge,
    github: _GitHub | None,
    pushes: PushesSeen,
) -> Forge:
    if github is None:
        logs.event(
            "lead time from the GitHub API is off: GITHUB_TOKEN is not set; deployments get "
            "lead times from the commits they list or from the pushes seen"
        )
        return pushes
    logs.event("lead-time enrichment is on", github_api_url=str(settings.github_api_url))
    return GitHubForge(github.client, knowledge, metrics, max_pages=settings.compare_max_pages)


async def _gitlab_forge(
    settings: Settings,
    metrics: Metrics,
    knowledge: Knowledge,
    stack: contextlib.AsyncExitStack,
    transport: httpx.AsyncBaseTransport | None,
    pushes: PushesSeen,
) -> Forge:
    """GitLab's API for GitLab's deployments when GITLAB_TOKEN is set, else the pushes seen."""
    if settings.gitlab_token is None:
        return pushes
    http = await stack.enter_async_context(gitlab.create_http_client(settings, transport))
    client = gitlab.GitLabClient(
        http,
        metrics,
        max_retries=settings.github_max_retries,
        max_rate_limit_wait=settings.github_max_rate_limit_wait,
    )
    logs.event("lead time from the GitLab API is on", gitlab_url=str(settings.gitlab_url))
    return GitLabForge(client, knowledge, metrics)


def _redelivery(
    settings: Settings, metrics: Metrics, store: Store, github: _GitHub | None
) -> Redelivery | None:
    if not settings.redeliver_hooks or github is None:
        return None
    hooks = []
    for name in settings.redeliver_hooks:
        client = github.client
        if name == "app":
            # Settings allow 'app' only with a GitHub App, whose own hook takes its JWT.
            assert isinstance(github.auth, AppInstallationToken)
            client = _client(settings, metrics, github.http, AppJwt(github.auth))
        hooks.append(Hook(name, hook_path(name), client))
    logs.event(
        "missed-delivery recovery is on",
        hooks=list(settings.redeliver_hooks),
        interval=settings.redeliver_interval,
    )
    return Redelivery(hooks, store, metrics, interval=settings.redeliver_interval)


async def _check_store(store: Store) -> None:
    """One clear line when the store cannot be reached at start; the service starts anyway.

    Until it can, every delivery and event to be counted is answered 503 and counts nothing,
    and /readyz says so.
    """
    try:
        await store.ping()
    except StoreUnavailable as error:
        logs.warning(
            "state store cannot be reached: every delivery and event will be answered 503 "
            "until it can",
            mode=store.mode,
            detail=str(error),
        )


def _start_saving(store: Store, interval: float, metrics: Metrics) -> asyncio.Task[None] | None:
    # The one place that decides which stores save snapshots: a file's and a bucket's.
    if not isinstance(store, SnapshotStore):
        return None

    async def save_every() -> None:
        while True:
            await asyncio.sleep(interval)
            saving = asyncio.create_task(_save(store, metrics))
            try:
                await asyncio.shield(saving)
            except asyncio.CancelledError:
                # Stopping: the snapshot in hand lands before the final one, never after it
                # (two writes at once with one version would refuse each other in a bucket).
                await saving
                raise

    return asyncio.create_task(save_every())


async def _save(store: SnapshotStore, metrics: Metrics) -> None:
    """One snapshot; a failed one is counted, reported, and retried at the next interval."""
    try:
        # Taken on the loop, which is the only writer of the state; written in a thread.
        data = store.snapshot()
        await asyncio.to_thread(store.write, data)
    except SnapshotConflict as error:
        # Another replica owns the snapshot: this one stops saving and reports not ready.
        metrics.state_errors.inc()
        logs.warning(str(error))
    except Exception as error:  # a full disk, a network error, a bug: the snapshots go on
        metrics.state_errors.inc()
        logs.warning(
            "state snapshot not written",
            path=store.location,
            error=type(error).__name__,
            detail=str(error),
        )
