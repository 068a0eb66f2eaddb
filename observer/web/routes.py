"""The HTTP endpoints: thin, each turning a request into calls on the recorder."""

from __future__ import annotations

import asyncio
import gzip
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import gzip_accepted
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from observer import __version__
from observer.metrics.children import Children
from observer.metrics.definitions import Metrics
from observer.metrics.exposition import GZIP_LEVEL, Exposition
from observer.metrics.scrapes import Scrapes
from observer.ops import logs
from observer.ops.shutdown import Shutdown
from observer.recorder import Recorder
from observer.settings import Settings
from observer.sources.api_event import EVENT, apply, event_list
from observer.sources.github.events import HANDLERS, dispatch, prepare_json
from observer.sources.github.signature import verify
from observer.state import Store, StoreUnavailable
from observer.web.asgi import Asgi
from observer.web.body import (
    JSON,
    BodyBudget,
    BodyError,
    BodyTooLarge,
    decode_webhook,
    media_type,
    parse_json,
    read_body,
)
from observer.web.openapi import openapi_document
from observer.web.validation import describe

OTHER = "other"
WEBHOOK_PATH = "/webhook"
MAX_DELIVERY_ID = 128
# What a 503 asks the sender to wait: GitHub does not redeliver by itself, pipelines may retry.
RETRY_AFTER_SECONDS = 30
READY_TIMEOUT = 2.0
# A claimed event name is logged even when refused, so it is cut to a length a log line affords.
MAX_LOGGED_EVENT = 64
# Items of one /api/event request named in its log line; a long list is summarised by its length.
MAX_LOGGED_ITEMS = 20


# starlette's JSONResponse builds an encoder for every answer; this one gives the same bytes.
_COMPACT = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


class _Json(JSONResponse):
    def render(self, content: Any) -> bytes:
        return _COMPACT.encode(content).encode("utf-8")


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return _Json({"error": message, **extra}, status_code=status)


def _unavailable() -> JSONResponse:
    return _Json(
        {"error": "the state store cannot be reached; nothing was counted, send it again later"},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


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


@dataclass(frozen=True, slots=True)
class Services:
    """What the lifespan built for the endpoints to use."""

    recorder: Recorder
    store: Store


def _services(request: Request) -> Services:
    services: Services = request.state.services
    return services


class Endpoints:
    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        before_scrape: Callable[[], object],
        *,
        stopping: Shutdown,
        scrapes: Scrapes,
    ) -> None:
        self._settings = settings
        self._stopping = stopping
        self._scrapes = scrapes
        self._metrics = metrics
        self._before_scrape = before_scrape
        self._secrets = settings.webhook_secrets()
        self._api_token = (
            settings.api_token.get_secret_value().encode() if settings.api_token else None
        )
        self._budget = BodyBudget(settings.max_buffered_bytes)
        # labels() hashes and looks up its arguments under a lock on every call; the webhook's
        # children are bound once. Keys are a handled event or OTHER and a fixed result name,
        # so they are few.
        self._webhook_duration = metrics.request_duration.labels(endpoint="webhook")
        self._webhook_deliveries = Children(metrics.webhook_deliveries)
        self._events = event_list(settings.max_events_per_request)
        self._openapi = openapi_document(settings.max_events_per_request)
        self.ready = False

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/", self.index, methods=["GET"]),
            Route(WEBHOOK_PATH, Asgi(self.webhook), methods=["POST"]),
            Route("/api/event", self.api_event, methods=["POST"]),
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

    async def webhook(self, scope: Scope, receive: Receive) -> Response:
        started = time.perf_counter()
        headers = _headers(scope)
        delivery = headers.get("x-github-delivery")
        claimed_event = headers.get("x-github-event")
        event = OTHER
        repository: str | None = None

        def finish(response: Response, result: str, detail: str | None = None) -> Response:
            elapsed = time.perf_counter() - started
            self._webhook_deliveries(event, result).inc()
            self._scrapes.counted()
            self._webhook_duration.observe(elapsed)
            logs.request(
                response.status_code,
                "webhook delivery",
                delivery=(delivery or "")[:MAX_DELIVERY_ID],
                event=event,
                claimed_event=str(claimed_event or "")[:MAX_LOGGED_EVENT],
                repository=repository,
                result=result,
                status=response.status_code,
                detail=detail,
                duration_ms=round(elapsed * 1000, 3),
            )
            return response

        signature = headers.get("x-hub-signature-256")
        if signature is None:
            message = "missing X-Hub-Signature-256 header"
            return finish(_error(401, message), "unauthorized", message)
        try:
            body = await read_body(
                receive, headers.get("content-length"), self._settings.max_body_bytes, self._budget
            )
        except BodyError as error:
            refusal = "too_large" if isinstance(error, BodyTooLarge) else "busy"
            return finish(_error(error.status, str(error)), refusal, str(error))
        if not verify(self._secrets, body, signature):
            message = "signature does not match"
            return finish(_error(401, message), "unauthorized", message)

        # Authentic from here on: the event's name may become a label value.
        if not claimed_event or not delivery:
            message = "missing X-GitHub-Event or X-GitHub-Delivery header"
            return finish(_error(400, message), "malformed", message)
        if claimed_event in HANDLERS:
            event = claimed_event
        if len(delivery) > MAX_DELIVERY_ID:
            message = "X-GitHub-Delivery is too long"
            return finish(_error(400, message), "malformed", message)
        content_type = media_type(headers.get("content-type", ""))
        prepared = prepare_json(claimed_event, body) if content_type == JSON else None
        payload: dict[str, Any] = {}
        if prepared is None:
            try:
                payload = decode_webhook(body, content_type)
            except BodyError as error:
                return finish(_error(error.status, str(error)), "malformed", str(error))

        try:
            services: Services = scope["state"]["services"]
            if await services.store.contains("delivery", delivery):
                return finish(_accepted("duplicate", delivery), "duplicate", "delivery seen before")
            if prepared is not None:
                result = await prepared(services.recorder)
            else:
                result = await dispatch(claimed_event, payload, services.recorder)
        except ValidationError as error:
            fields = describe(error, tags=frozenset())
            message = f"{claimed_event} payload is missing or has invalid fields"
            return finish(_error(400, message, fields=fields), "malformed", message)
        except StoreUnavailable as error:
            self._metrics.state_errors.inc()
            return finish(_unavailable(), "unavailable", str(error))
        try:
            await services.store.add("delivery", delivery)
        except StoreUnavailable as error:
            # Counted already: the answer must say so. A redelivery is still recognised by the
            # event's own identity, which was recorded before anything was counted.
            self._metrics.state_errors.inc()
            logs.warning("delivery id not recorded", delivery=delivery, detail=str(error))
        repository = result.repository
        return finish(
            _accepted(result.outcome, delivery, result.detail), result.outcome, result.detail
        )

    async def api_event(self, request: Request) -> Response:
        started = time.perf_counter()

        def finish(
            response: Response,
            results: list[tuple[str, str]],
            detail: str | None = None,
            items: list[dict[str, Any]] | None = None,
        ) -> Response:
            elapsed = time.perf_counter() - started
            for kind, result in results:
                self._metrics.api_events.labels(type=kind, result=result).inc()
            self._scrapes.counted()
            self._metrics.request_duration.labels(endpoint="api_event").observe(elapsed)
            logs.request(
                response.status_code,
                "api event",
                events=len(results),
                results=sorted({result for _, result in results}),
                status=response.status_code,
                detail=detail,
                duration_ms=round(elapsed * 1000, 3),
                **_logged_items(items or []),
            )
            return response

        def refuse(status: int, message: str, result: str) -> Response:
            return finish(_error(status, message), [(OTHER, result)], message)

        authorization = request.headers.get("authorization")
        signature = request.headers.get("x-hub-signature-256")
        if authorization is not None:
            if self._api_token is None and authorization.lower().startswith("bearer "):
                message = "bearer token refused: API_TOKEN is not configured on this observer"
                return refuse(401, message, "unauthorized")
            if not self._bearer_is_valid(authorization):
                return refuse(401, "bearer token is not valid", "unauthorized")
        elif signature is None:
            return refuse(401, "missing bearer token or X-Hub-Signature-256", "unauthorized")
        try:
            body = await read_body(
                request.receive,
                request.headers.get("content-length"),
                self._settings.max_body_bytes,
                self._budget,
            )
        except BodyError as error:
            return refuse(error.status, str(error), "invalid")
        if authorization is None and not verify(self._secrets, body, signature):
            return refuse(401, "signature does not match", "unauthorized")
        if media_type(request.headers.get("content-type", "")) not in ("application/json", ""):
            return refuse(415, "content type must be application/json", "invalid")
        try:
            document = parse_json(body)
        except BodyError as error:
            return refuse(400, str(error), "invalid")

        items = document if isinstance(document, list) else [document]
        context = {"latest": time.time() + self._settings.max_clock_skew}
        try:
            if isinstance(document, list):
                events = self._events.validate_python(document, context=context)
            else:
                events = [EVENT.validate_python(document, context=context)]
        except ValidationError as error:
            kinds = [_claimed_type(item) for item in items] or [OTHER]
            return finish(
                _error(422, "event failed validation", fields=describe(error)),
                [(kind, "invalid") for kind in kinds],
                "validation failed",
            )

        results = []
        try:
            for item in events:
                results.append(await apply(item, _services(request).recorder))
        except StoreUnavailable as error:
            # Those applied before the store failed stay applied; their ids make a retry safe.
            self._metrics.state_errors.inc()
            outcomes: list[tuple[str, str]] = [
                (item.type, str(result.outcome))
                for item, result in zip(events, results, strict=False)
            ]
            outcomes += [(item.type, "unavailable") for item in events[len(results) :]]
            return finish(_unavailable(), outcomes, str(error))
        body_results = [
            {"type": item.type, "result": result.outcome, "detail": result.detail}
            for item, result in zip(events, results, strict=True)
        ]
        return finish(
            JSONResponse({"results": body_results}),
            [(item.type, result.outcome) for item, result in zip(events, results, strict=True)],
            items=[_logged(item) for item in events],
        )

    def _bearer_is_valid(self, authorization: str) -> bool:
        scheme, _, token = authorization.partition(" ")
        if self._api_token is None or scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(token.strip().encode(), self._api_token)

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


def _headers(scope: Scope) -> dict[str, str]:
    """Each header's first value by its (lower-case) name, as starlette's Headers.get gives."""
    headers: dict[str, str] = {}
    for name, value in reversed(scope["headers"]):
        headers[name.decode("latin-1")] = value.decode("latin-1")
    return headers


def _accepted(outcome: str, delivery: str, detail: str | None = None) -> Response:
    """The bytes _Json would render for ``{"result", "delivery", "detail"}``, put together."""
    parts = [_result(str(outcome)), _COMPACT.encode(delivery).encode()]
    if detail:
        parts += [b',"detail":', _COMPACT.encode(detail).encode()]
    parts.append(b"}")
    return _JsonBytes(b"".join(parts))


def _result(outcome: str) -> bytes:
    # A handful of outcomes: each one's opening is built once.
    start = _RESULTS.get(outcome)
    if start is None:
        start = _RESULTS[outcome] = b'{"result":%s,"delivery":' % _COMPACT.encode(outcome).encode()
    return start


_RESULTS: dict[str, bytes] = {}
_JSON_TYPE = (b"content-type", b"application/json")


class _JsonBytes(Response):
    """A 200 JSON answer from its bytes, with the headers JSONResponse gives it.

    Response's constructor looks the media type and charset up and builds its header list anew
    for each answer; the accepted webhook answer's only vary in their length.
    """

    def __init__(self, body: bytes) -> None:
        self.status_code = 200
        self.body = body
        self.background = None
        self.raw_headers = [(b"content-length", b"%d" % len(body)), _JSON_TYPE]


def _logged_items(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Type, repository and id for the log: flat for one event, a bounded list for several."""
    if len(items) == 1:
        return items[0]
    if items:
        return {"items": items[:MAX_LOGGED_ITEMS]}
    return {}


def _logged(item: Any) -> dict[str, Any]:
    # A survey is anonymous and names no repository: its type is all that is logged.
    repository = getattr(item, "repository", None)
    return {
        "type": item.type,
        "repository": repository.lower() if repository else None,
        "id": getattr(item, "id", None),
    }


def _claimed_type(item: Any) -> str:
    kind = item.get("type") if isinstance(item, dict) else None
    return kind if kind in ("deployment", "incident", "survey") else OTHER


_INDEX = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>observer</title></head>
<body>
<h1>observer {version}</h1>
<p>DORA metrics from GitHub webhooks and CI pipelines, for Prometheus.</p>
<ul>
<li><code>POST /webhook</code>: GitHub webhook deliveries (signed)</li>
<li><code>POST /api/event</code>: events pushed by pipelines
  (<a href="/openapi.json">OpenAPI</a>)</li>
<li><a href="/metrics"><code>GET /metrics</code></a>: Prometheus exposition</li>
<li><a href="/healthz"><code>GET /healthz</code></a>,
  <a href="/readyz"><code>GET /readyz</code></a></li>
</ul>
</body></html>
"""
