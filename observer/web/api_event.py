"""``POST /api/event``: events pipelines push, one or a list, through the pipeline's front.

Its credentials and body are checked by the same steps as every source's deliveries
(observer.web.pipeline.authentic_body); what differs is its answer: a list of events, each
with its own result, validated as a whole (422 names the fields) and counted by type.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from observer.metrics.definitions import Metrics
from observer.metrics.scrapes import Scrapes
from observer.ops import logs
from observer.settings import Settings
from observer.sources.adapter import Refused
from observer.sources.api_event import EVENT, Credentials, apply, event_list
from observer.sources.payload import json_object_or_list
from observer.state import StoreUnavailable
from observer.web.answers import error, unavailable
from observer.web.body import BodyBudget, BodyError
from observer.web.pipeline import OTHER, Services, authentic_body
from observer.web.validation import describe

# Items of one request named in its log line; a long list is summarised by its length.
MAX_LOGGED_ITEMS = 20


class ApiEvent:
    def __init__(
        self, settings: Settings, metrics: Metrics, scrapes: Scrapes, budget: BodyBudget
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._scrapes = scrapes
        self._budget = budget
        self._credentials = Credentials(settings)
        self._events = event_list(settings.max_events_per_request)

    async def handle(self, request: Request) -> Response:
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
            return finish(error(status, message), [(OTHER, result)], message)

        try:
            body = await authentic_body(
                self._credentials,
                request.headers,
                request.receive,
                self._settings.max_body_bytes,
                self._budget,
            )
            document = json_object_or_list(body, request.headers.get("content-type", ""))
        except Refused as refused:
            result = "unauthorized" if refused.status == 401 else "invalid"
            return refuse(refused.status, refused.reason, result)
        except BodyError as failure:
            return refuse(failure.status, str(failure), "invalid")

        items = document if isinstance(document, list) else [document]
        context = {"latest": time.time() + self._settings.max_clock_skew}
        try:
            if isinstance(document, list):
                events = self._events.validate_python(document, context=context)
            else:
                events = [EVENT.validate_python(document, context=context)]
        except ValidationError as invalid:
            kinds = [_claimed_type(item) for item in items] or [OTHER]
            return finish(
                error(422, "event failed validation", fields=describe(invalid)),
                [(kind, "invalid") for kind in kinds],
                "validation failed",
            )

        services: Services = request.state.services
        results = []
        try:
            for item in events:
                results.append(await apply(item, services.recorder))
        except StoreUnavailable as failure:
            # Those applied before the store failed stay applied; their ids make a retry safe.
            self._metrics.state_errors.inc()
            outcomes: list[tuple[str, str]] = [
                (item.type, str(result.outcome))
                for item, result in zip(events, results, strict=False)
            ]
            outcomes += [(item.type, "unavailable") for item in events[len(results) :]]
            return finish(unavailable(), outcomes, str(failure))
        body_results = [
            {"type": item.type, "result": result.outcome, "detail": result.detail}
            for item, result in zip(events, results, strict=True)
        ]
        return finish(
            JSONResponse({"results": body_results}),
            [(item.type, result.outcome) for item, result in zip(events, results, strict=True)],
            items=[_logged(item) for item in events],
        )


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
