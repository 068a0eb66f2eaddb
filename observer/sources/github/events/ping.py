"""``ping``: sent when a hook is created; answered so GitHub shows the hook as working."""

from __future__ import annotations

from typing import Any

from observer.domain import Outcome, Result
from observer.recorder import Recorder


async def handle(payload: dict[str, Any], recorder: Recorder) -> Result:
    return Result(Outcome.ACCEPTED, "pong")
