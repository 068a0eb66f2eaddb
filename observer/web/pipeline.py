"""The one receiving pipeline: every source's deliveries are read, checked and counted here.

    read the body within its limit → authenticate (before anything is parsed) → identify the
    delivery → parse it → admit it once through the store → apply the event through the
    recorder → record the delivery id → answer, count and log

A source supplies only an adapter (observer.sources.adapter): how it authenticates, where its
delivery id and event name are, and its table of events.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from pydantic import ValidationError
from starlette.responses import Response
from starlette.types import Receive, Scope

from observer.metrics.children import Children
from observer.metrics.definitions import WEBHOOK_RESULTS, Metrics
from observer.metrics.scrapes import Scrapes
from observer.ops import logs
from observer.recorder import Recorder
from observer.sources.adapter import Adapter, Named, Refused
from observer.state import Store, StoreUnavailable
from observer.web.answers import accepted, error, unavailable
from observer.web.body import BodyBudget, BodyError, BodyTooLarge, read_body
from observer.web.validation import describe

OTHER = "other"
# A claimed event name and delivery id are logged even when refused, so they are cut to a
# length a log line affords.
MAX_LOGGED_EVENT = 64
MAX_LOGGED = 128
DELIVERY = "delivery"


@dataclass(frozen=True, slots=True)
class Services:
    """What the lifespan built for the endpoints to use."""

    recorder: Recorder
    store: Store


class Pipeline:
    """POST deliveries of one source, served as a raw ASGI endpoint (observer.web.asgi)."""

    def __init__(
        self,
        adapter: Adapter,
        metrics: Metrics,
        scrapes: Scrapes,
        *,
        max_body_bytes: int,
        budget: BodyBudget,
    ) -> None:
        self._adapter = adapter
        self._metrics = metrics
        self._scrapes = scrapes
        self._max_body_bytes = max_body_bytes
        self._budget = budget
        # labels() hashes and looks up its arguments under a lock on every call; the children
        # are bound once. Keys are a handled event or OTHER and a fixed result, so they are few.
        self._duration = metrics.request_duration.labels(endpoint=adapter.path.strip("/"))
        self._deliveries = Children(metrics.webhook_deliveries)
        # Series that exist from the start make rate() and absent() behave from the first scrape.
        for event in (*adapter.events, OTHER):
            for result in WEBHOOK_RESULTS:
                self._deliveries(adapter.name, event, result)

    async def __call__(self, scope: Scope, receive: Receive) -> Response:
        started = time.perf_counter()
        headers = _headers(scope)
        adapter = self._adapter
        # Logged as claimed whatever happens; a label value only once the delivery is authentic.
        delivery = adapter.identify(headers)
        authentic = False
        repository: str | None = None

        def finish(response: Response, result: str, detail: str | None = None) -> Response:
            elapsed = time.perf_counter() - started
            event = delivery.event if authentic and delivery.event in adapter.events else OTHER
            self._deliveries(adapter.name, event, result).inc()
            self._scrapes.counted()
            self._duration.observe(elapsed)
            logs.request(
                response.status_code,
                "webhook delivery",
                source=adapter.name,
                delivery=(delivery.id or "")[:MAX_LOGGED],
                event=event,
                claimed_event=delivery.event[:MAX_LOGGED_EVENT],
                repository=repository,
                result=result,
                status=response.status_code,
                detail=detail,
                duration_ms=round(elapsed * 1000, 3),
            )
            return response

        try:
            body = await authentic_body(
                adapter, headers, receive, self._max_body_bytes, self._budget
            )
        except Refused as refused:
            return finish(error(refused.status, refused.reason), "unauthorized", refused.reason)
        except BodyError as failure:
            refusal = "too_large" if isinstance(failure, BodyTooLarge) else "busy"
            return finish(error(failure.status, str(failure)), refusal, str(failure))

        authentic = True
        if delivery.unusable is not None:
            return finish(error(400, delivery.unusable), "malformed", delivery.unusable)
        try:
            payload = adapter.parse(delivery, headers, body)
        except Refused as refused:
            return finish(error(refused.status, refused.reason), "malformed", refused.reason)
        if isinstance(payload, Named):
            # A source that names its event in the body (Alertmanager, PagerDuty).
            delivery = replace(delivery, event=payload.event)
            payload = payload.payload

        services: Services = scope["state"]["services"]
        store = services.store
        admitted = _admitted(adapter.name, delivery.id)
        try:
            if admitted is not None and await store.contains(DELIVERY, admitted):
                return finish(
                    accepted("duplicate", delivery.id), "duplicate", "delivery seen before"
                )
            handler = adapter.events.get(delivery.event)
            if handler is None:
                detail = f"event {delivery.event[:MAX_LOGGED_EVENT]!r} is not used"
                return finish(accepted("ignored", delivery.id, detail), "ignored", detail)
            result = await handler(payload, services.recorder)
        except ValidationError as invalid:
            fields = describe(invalid, tags=frozenset())
            claimed = delivery.event[:MAX_LOGGED_EVENT]
            message = f"{claimed} payload is missing or has invalid fields"
            return finish(error(400, message, fields=fields), "malformed", message)
        except Refused as refused:
            # What a model cannot say: a handler's own reason the payload is unusable.
            return finish(error(refused.status, refused.reason), "malformed", refused.reason)
        except StoreUnavailable as failure:
            self._metrics.state_errors.inc()
            return finish(unavailable(), "unavailable", str(failure))
        if admitted is not None:
            try:
                await store.add(DELIVERY, admitted)
            except StoreUnavailable as failure:
                # Counted already: the answer must say so. A redelivery is still recognised by
                # the event's own identity, which was recorded before anything was counted.
                self._metrics.state_errors.inc()
                logs.warning("delivery id not recorded", delivery=admitted, detail=str(failure))
        repository = result.repository
        return finish(
            accepted(result.outcome, delivery.id, result.detail), result.outcome, result.detail
        )


class Gate(Protocol):
    def precheck(self, headers: Mapping[str, str]) -> None: ...
    def authenticate(self, headers: Mapping[str, str], body: bytes) -> None: ...


async def authentic_body(
    gate: Gate, headers: Mapping[str, str], receive: Receive, limit: int, budget: BodyBudget
) -> bytes:
    """The body of an authentic request: credentials checked before it is read when they can
    be, the rest (a signature over the body) before anything reads it.

    Raises Refused (401) or BodyError (too large, the budget spent, the client gone).
    """
    gate.precheck(headers)
    body = await read_body(receive, headers.get("content-length"), limit, budget)
    gate.authenticate(headers, body)
    return body


def _admitted(source: str, delivery: str | None) -> str | None:
    # GitHub's ids are stored as they come, as they always were; other sources' ids are kept
    # apart from them and from each other.
    if delivery is None or source == "github":
        return delivery
    return f"{source}:{delivery}"


def _headers(scope: Scope) -> Mapping[str, str]:
    """Each header's first value by its (lower-case) name, as starlette's Headers.get gives."""
    headers: dict[str, str] = {}
    for name, value in reversed(scope["headers"]):
        headers[name.decode("latin-1")] = value.decode("latin-1")
    return headers
