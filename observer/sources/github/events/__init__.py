"""GitHub webhook events: one module each, chosen from a table by the event's name."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any

from pydantic import BaseModel, ValidationError

from observer.domain import Outcome, Result
from observer.recorder import Recorder
from observer.sources.github.events import (
    deployment_status,
    issues,
    ping,
    pull_request,
    pull_request_review,
    push,
    workflow_run,
)

Handler = Callable[[dict[str, Any], Recorder], Awaitable[Result]]
Prepared = Callable[[Recorder], Awaitable[Result]]
Record = Callable[[Any, Recorder], Awaitable[Result]]

# Events whose handling reads nothing but the event's model: the model, and what applies it.
# ping reads nothing at all, and is small: it keeps the general path.
_MODELS: Mapping[str, tuple[type[BaseModel], Record]] = {
    "deployment_status": (deployment_status.Payload, deployment_status.record),
    "pull_request": (pull_request.Payload, pull_request.record),
    "push": (push.Payload, push.record),
    "issues": (issues.Payload, issues.record),
    "pull_request_review": (pull_request_review.Payload, pull_request_review.record),
    "workflow_run": (workflow_run.Payload, workflow_run.record),
}


def _validated(model: type[BaseModel], record: Record) -> Handler:
    """The general path's handler: the parsed payload validated, then applied."""

    async def handle(payload: dict[str, Any], recorder: Recorder) -> Result:
        return await record(model.model_validate(payload), recorder)

    return handle


HANDLERS: Mapping[str, Handler] = {
    "ping": ping.handle,
    **{event: _validated(*known) for event, known in _MODELS.items()},
}


async def dispatch(event: str, payload: dict[str, Any], recorder: Recorder) -> Result:
    """Apply one authentic delivery; events without a handler are acknowledged and ignored.

    Raises pydantic's ValidationError when a handled event lacks what it needs.
    """
    handler = HANDLERS.get(event)
    if handler is None:
        return Result(Outcome.IGNORED, f"event {event!r} is not used")
    unused = _unused_action(event, payload.get("action"))
    if unused is not None:
        return unused
    return await handler(payload, recorder)


# Events some of whose actions are not used: those payloads are acknowledged unvalidated.
_ACTIONS: Mapping[str, frozenset[str]] = {
    "pull_request": pull_request.HANDLED_ACTIONS,
    "issues": issues.HANDLED_ACTIONS,
}


def _unused_action(event: str, action: object) -> Result | None:
    """The answer to an action the event's handler does not use, or None when it is used.

    Only a handled action's payload is validated: GitHub adds actions (``pinned``) whose
    payloads lack fields the handled ones carry, and an authentic delivery must not get a 400.
    """
    handled = _ACTIONS.get(event)
    if handled is None or (isinstance(action, str) and action in handled):
        return None
    return Result(Outcome.IGNORED, f"action {str(action)[:64]!r} is not used")


async def _answer(result: Result, recorder: Recorder) -> Result:
    return result


def prepare_json(event: str, body: bytes) -> Prepared | None:
    """A JSON body's event validated straight from its bytes, ready to apply; None otherwise.

    Building the whole body as Python objects first (``json.loads``) costs more than
    validating it, and most of a GitHub payload is never read. None (an event without a model
    here, or a body that fails) sends the caller down the general path, which answers as it
    always has: its error messages and fields do not depend on the parser chosen.
    """
    known = _MODELS.get(event)
    if known is None:
        return None
    model, record = known
    try:
        parsed = model.model_validate_json(body)
    except ValidationError:
        return None
    # A model's fields are in its __dict__; getattr() of a field a model lacks costs pydantic an
    # exception, a few microseconds a delivery.
    unused = _unused_action(event, vars(parsed).get("action"))
    if unused is not None:
        return partial(_answer, unused)
    return partial(record, parsed)
