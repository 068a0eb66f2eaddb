"""GitHub webhook events: one module each, chosen from a table by the event's name."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any

from pydantic import BaseModel

from observer.domain import Outcome, Result
from observer.recorder import Recorder
from observer.settings import Settings
from observer.sources.adapter import Handler
from observer.sources.github.events import (
    deployment_status,
    issues,
    ping,
    pull_request,
    pull_request_review,
    push,
    workflow_run,
)
from observer.sources.github.workflows import DeployWorkflows

Record = Callable[[Any, Recorder], Awaitable[Result]]

# Events whose handling reads nothing but the event's model: the model, and what applies it.
# ping reads nothing at all, and is small: it keeps its parsed payload.
MODELS: Mapping[str, tuple[type[BaseModel], Record]] = {
    "deployment_status": (deployment_status.Payload, deployment_status.record),
    "pull_request": (pull_request.Payload, pull_request.record),
    "push": (push.Payload, push.record),
    "issues": (issues.Payload, issues.record),
    "pull_request_review": (pull_request_review.Payload, pull_request_review.record),
}
# Read from DEPLOY_WORKFLOWS: its record is bound to them when the table is built.
WORKFLOW_RUN = "workflow_run"

# Events some of whose actions are not used: those payloads are acknowledged unvalidated.
_ACTIONS: Mapping[str, frozenset[str]] = {
    "pull_request": pull_request.HANDLED_ACTIONS,
    "issues": issues.HANDLED_ACTIONS,
}


def _modelled(event: str, model: type[BaseModel], record: Record) -> Handler:
    """Applies the event's model: validated already (parsed straight from the body), or now.

    Raises pydantic's ValidationError when a handled action's payload lacks what it needs.
    """
    handled = _ACTIONS.get(event)

    async def handle(payload: Any, recorder: Recorder) -> Result:
        if handled is not None:
            # A model's fields are in its __dict__; getattr() of a field a model lacks costs
            # pydantic an exception, a few microseconds a delivery.
            fields = vars(payload) if isinstance(payload, BaseModel) else payload
            action = fields.get("action")
            if not (isinstance(action, str) and action in handled):
                # GitHub adds actions (``pinned``) whose payloads lack fields the handled ones
                # carry: an authentic delivery must not get a 400 for them.
                return Result(Outcome.IGNORED, f"action {str(action)[:64]!r} is not used")
        parsed = payload if isinstance(payload, model) else model.model_validate(payload)
        return await record(parsed, recorder)

    return handle


def handlers(settings: Settings) -> Mapping[str, Handler]:
    """The table of GitHub's events: each event's name, and what applies it."""
    workflows = DeployWorkflows(settings)
    return {
        "ping": ping.handle,
        **{event: _modelled(event, *known) for event, known in MODELS.items()},
        WORKFLOW_RUN: _modelled(
            WORKFLOW_RUN, workflow_run.Payload, partial(workflow_run.record, workflows=workflows)
        ),
    }


def model(event: str) -> type[BaseModel] | None:
    """The model a JSON body of ``event`` may be validated into straight from its bytes."""
    if event == WORKFLOW_RUN:
        return workflow_run.Payload
    known = MODELS.get(event)
    return known[0] if known is not None else None
