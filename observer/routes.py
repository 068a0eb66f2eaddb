"""The HTTP endpoints: thin, each turning a request into calls on the recorder."""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import make_asgi_app
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from observer import __version__, logs
from observer.body import (
    BodyBudget,
    BodyError,
    BodyTooLarge,
    decode_webhook,
    media_type,
    parse_json,
    read_body,
)
from observer.boundedset import RecentKeys
from observer.events import HANDLERS, dispatch
from observer.events.generic import EVENT, apply, event_list
from observer.openapi import openapi_document
from observer.recorder import Recorder
from observer.settings import Settings
from observer.signature import verify
from observer.validation import describe

OTHER = "other"
MAX_DELIVERY_ID = 128


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


class MetricsEndpoint:
    """prometheus-client's own exposition: content negotiation, OpenMetrics and gzip."""

    def __init__(self, app: ASGIApp, before: Callable[[], None] = lambda: None) -> None:
        self._app = app
        # Brings series that follow a file (team ownership) up to date before each scrape.
        self._before = before

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._before()
        await self._app(scope, receive, send)


class Endpoints:
    def __init__(self, settings: Settings, recorder: Recorder) -> None:
        self._settings = settings
        self._recorder = recorder
        self._metrics = recorder.metrics
        self._secrets = settings.webhook_secrets()
        self._api_token = (
            settings.api_token.get_secret_value().encode() if settings.api_token else None
        )
        self._deliveries = RecentKeys(settings.dedup_capacity)
        self._budget = BodyBudget(settings.max_buffered_bytes)
        self._events = event_list(settings.max_events_per_request)
        self._openapi = openapi_document(settings.max_events_per_request)
        self.ready = False

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/", self.index, methods=["GET"]),
            Route("/webhook", self.webhook, methods=["POST"]),
            Route("/api/event", self.api_event, methods=["POST"]),
            Route(
                "/metrics",
                MetricsEndpoint(
                    make_asgi_app(self._metrics.registry), self._recorder.activity.teams.refresh
                ),
            ),
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/readyz", self.readyz, methods=["GET"]),
            Route("/openapi.json", self.openapi, methods=["GET"]),
        ]

    async def webhook(self, request: Request) -> Response:
        started = time.perf_counter()
        headers = request.headers
        delivery = headers.get("x-github-delivery")
        claimed_event = headers.get("x-github-event")
        event = OTHER
        repository: str | None = None

        def finish(response: Response, result: str, detail: str | None = None) -> Response:
            elapsed = time.perf_counter() - started
            self._metrics.webhook_deliveries.labels(event=event, result=result).inc()
            self._metrics.request_duration.labels(endpoint="webhook").observe(elapsed)
            logs.event(
                "webhook delivery",
                delivery=(delivery or "")[:MAX_DELIVERY_ID],
                event=event,
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
            body = await read_body(request, self._settings.max_body_bytes, self._budget)
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
        try:
            payload = decode_webhook(body, media_type(request))
        except BodyError as error:
            return finish(_error(error.status, str(error)), "malformed", str(error))

        if delivery in self._deliveries:
            return finish(_accepted("duplicate", delivery), "duplicate", "delivery seen before")
        try:
            result = await dispatch(claimed_event, payload, self._recorder)
        except ValidationError as error:
            fields = describe(error)
            message = f"{claimed_event} payload is missing or has invalid fields"
            return finish(_error(400, message, fields=fields), "malformed", message)
        self._deliveries.add(delivery)
        repository = result.repository
        return finish(
            _accepted(result.outcome, delivery, result.detail), result.outcome, result.detail
        )

    async def api_event(self, request: Request) -> Response:
        started = time.perf_counter()

        def finish(
            response: Response, results: list[tuple[str, str]], detail: str | None = None
        ) -> Response:
            elapsed = time.perf_counter() - started
            for kind, result in results:
                self._metrics.api_events.labels(type=kind, result=result).inc()
            self._metrics.request_duration.labels(endpoint="api_event").observe(elapsed)
            logs.event(
                "api event",
                events=len(results),
                results=sorted({result for _, result in results}),
                status=response.status_code,
                detail=detail,
                duration_ms=round(elapsed * 1000, 3),
            )
            return response

        def refuse(status: int, message: str, result: str) -> Response:
            return finish(_error(status, message), [(OTHER, result)], message)

        authorization = request.headers.get("authorization")
        signature = request.headers.get("x-hub-signature-256")
        if authorization is not None:
            if not self._bearer_is_valid(authorization):
                return refuse(401, "bearer token is not valid", "unauthorized")
        elif signature is None:
            return refuse(401, "missing bearer token or X-Hub-Signature-256", "unauthorized")
        try:
            body = await read_body(request, self._settings.max_body_bytes, self._budget)
        except BodyError as error:
            return refuse(error.status, str(error), "invalid")
        if authorization is None and not verify(self._secrets, body, signature):
            return refuse(401, "signature does not match", "unauthorized")
        if media_type(request) not in ("application/json", ""):
            return refuse(415, "content type must be application/json", "invalid")
        try:
            document = parse_json(body)
        except BodyError as error:
            return refuse(400, str(error), "invalid")

        items = document if isinstance(document, list) else [document]
        try:
            if isinstance(document, list):
                events = self._events.validate_python(document)
            else:
                events = [EVENT.validate_python(document)]
        except ValidationError as error:
            kinds = [_claimed_type(item) for item in items] or [OTHER]
            return finish(
                _error(422, "event failed validation", fields=describe(error)),
                [(kind, "invalid") for kind in kinds],
                "validation failed",
            )

        results = [await apply(item, self._recorder) for item in events]
        body_results = [
            {"type": item.type, "result": result.outcome, "detail": result.detail}
            for item, result in zip(events, results, strict=True)
        ]
        return finish(
            JSONResponse({"results": body_results}),
            [(item.type, result.outcome) for item, result in zip(events, results, strict=True)],
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
        if not self.ready:
            return JSONResponse({"status": "not ready"}, status_code=503)
        return JSONResponse({"status": "ready"})

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(self._openapi)


def _accepted(outcome: str, delivery: str, detail: str | None = None) -> JSONResponse:
    body = {"result": str(outcome), "delivery": delivery}
    if detail:
        body["detail"] = detail
    return JSONResponse(body)


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
