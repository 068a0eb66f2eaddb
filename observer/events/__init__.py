"""GitHub webhook events: one module each, chosen from a table by the event's name."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any

from observer.domain import Outcome, Result
from observer.events import (
    deployment_status,
    issues,
    ping,
    pull_request,
    pull_request_review,
    push,
    workflow_run,
)
from observer.recorder import Recorder

Handler = Callable[[dict[str, Any], Recorder], Awaitable[Result]]
Prepared = Callable[[Recorder], Awaitable[Result]]

HANDLERS: Mapping[str, Handler] = {
    "ping": ping.handle,
    "deployment_status": deployment_status.handle,
    "pull_request": pull_request.handle,
    "push": push.handle,
    "issues": issues.handle,
    "pull_request_review": pull_request_review.handle,
    "workflow_run": workflow_run.handle,
}


async def dispatch(event: str, payload: dict[str, Any], recorder: Recorder) -> Result:
    """Apply one authentic delivery; events without a handler are acknowledged and ignored.

    Raises pydantic's ValidationError when a handled event lacks what it needs.
    """
    handler = HANDLERS.get(event)
    if handler is None:
        return Result(Outcome.IGNORED, f"event {event!r} is not used")
    return await handler(payload, recorder)


def prepare_json(event: str, body: bytes) -> Prepared | None:
    """A JSON body's event validated straight from its bytes, ready to apply; None otherwise.

    Only for the busiest event whose handler reads nothing but its model: building the whole
    body as Python objects first costs more than validating it. None (another event, or a body
    that fails) sends the caller down the general path, which answers as it always has.
    """
    if event == "deployment_status":
        parsed = deployment_status.from_json(body)
        if parsed is not None:
            return partial(deployment_status.record, parsed)
    return None
