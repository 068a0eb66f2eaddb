"""A source added the way docs/architecture.md says: this package, and one table entry.

A made-up status-page product: it posts ``{"check": ..., "repository": ..., "since": ...}`` with
``X-Beacon-Token``, ``X-Beacon-Id`` and ``X-Beacon-Event`` (``down`` or ``up``); a check that
goes down is an incident of its repository, resolved when it comes up.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel

from observer.domain import Result, SourceIncident
from observer.recorder import Recorder
from observer.settings import Settings
from observer.sources.adapter import Adapter, Delivery, Handler, Refused
from observer.sources.payload import json_object

TOKEN = "a-beacon-token-long-enough"


class Check(BaseModel):
    check: str
    repository: str
    since: AwareDatetime
    until: AwareDatetime | None = None


async def down(payload: Any, recorder: Recorder) -> Result:
    check = Check.model_validate(payload)
    return await recorder.source_incident(_incident(check, None))


async def up(payload: Any, recorder: Recorder) -> Result:
    check = Check.model_validate(payload)
    if check.until is None:
        raise Refused(400, "an up event needs until")
    return await recorder.source_incident(_incident(check, check.until))


def _incident(check: Check, resolved_at: datetime | None) -> SourceIncident:
    key = f"beacon:{check.check}:{check.since.timestamp()}"
    return SourceIncident(check.repository, key, check.since, resolved_at)


class Beacon:
    name = "beacon"
    path = "/beacon"
    events: Mapping[str, Handler] = {"down": down, "up": up}

    def precheck(self, headers: Mapping[str, str]) -> None:
        if not hmac.compare_digest(headers.get("x-beacon-token", "").encode(), TOKEN.encode()):
            raise Refused(401, "X-Beacon-Token is missing or wrong")

    def authenticate(self, headers: Mapping[str, str], body: bytes) -> None:
        self.precheck(headers)

    def identify(self, headers: Mapping[str, str]) -> Delivery:
        delivery = headers.get("x-beacon-id", "")
        return Delivery(
            headers.get("x-beacon-event", ""), delivery, None if delivery else "no X-Beacon-Id"
        )

    def parse(self, delivery: Delivery, headers: Mapping[str, str], body: bytes) -> Any:
        return json_object(body, headers.get("content-type", ""))


def adapter(settings: Settings) -> Adapter:
    return Beacon()
