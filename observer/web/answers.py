"""The JSON answers every endpoint gives: errors, the store's 503, an accepted delivery."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import JSONResponse, Response

# What a 503 asks the sender to wait: GitHub does not redeliver by itself, pipelines may retry.
RETRY_AFTER_SECONDS = 30

# starlette's JSONResponse builds an encoder for every answer; this one gives the same bytes.
_COMPACT = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


class Json(JSONResponse):
    def render(self, content: Any) -> bytes:
        return _COMPACT.encode(content).encode("utf-8")


def error(status: int, message: str, **extra: Any) -> JSONResponse:
    return Json({"error": message, **extra}, status_code=status)


def unavailable() -> JSONResponse:
    return Json(
        {"error": "the state store cannot be reached; nothing was counted, send it again later"},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def accepted(outcome: str, delivery: str | None, detail: str | None = None) -> Response:
    """The bytes Json would render for ``{"result", "delivery", "detail"}``, put together."""
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
