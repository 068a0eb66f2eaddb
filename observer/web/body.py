"""Reading request bodies within a limit, and decoding the two content types GitHub sends."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from starlette.types import Receive

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


class BodyError(Exception):
    """A body that cannot be used; ``status`` is the HTTP status to answer with."""

    status = 400


class BodyTooLarge(BodyError):
    status = 413


class UnsupportedMediaType(BodyError):
    status = 415


class Busy(BodyError):
    status = 429


class BodyBudget:
    """Bytes of request bodies held in memory at once, across every request being read.

    A body must be read whole before its signature can be checked, so without this bound
    anyone could make the process hold MAX_BODY_BYTES for every connection they open.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0


async def read_body(
    receive: Receive, declared: str | None, limit: int, budget: BodyBudget
) -> bytes:
    """The whole body, refused as soon as it is known to exceed ``limit`` bytes.

    ``declared`` is the Content-Length header, when there is one. The body is read from the
    ASGI messages themselves: the webhook reads its request without starlette's Request.
    """
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise BodyError("the client went away before sending the whole body")
            if message["type"] != "http.request":
                continue
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(f"body is larger than {limit} bytes")
            if budget.used + len(chunk) > budget.limit:
                raise Busy("too many request bodies are being received; retry later")
            budget.used += len(chunk)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
    finally:
        budget.used -= sum(len(chunk) for chunk in chunks)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def media_type(content_type: str) -> str:
    """The media type of a Content-Type header's value, without parameters, lower-cased."""
    return content_type.split(";", 1)[0].strip().lower()


def parse_json(data: bytes | str) -> Any:
    try:
        return json.loads(data)
    except RecursionError:
        raise BodyError("body is nested too deeply") from None
    except ValueError as error:
        # JSONDecodeError, bad UTF-8 and integers too long to convert are all ValueErrors.
        raise BodyError(f"body is not valid JSON: {_first_line(error)}") from None


def decode_webhook(body: bytes, content_type: str) -> dict[str, Any]:
    """A delivery's payload, from either content type a GitHub hook can be set to."""
    if content_type == JSON:
        payload = parse_json(body)
    elif content_type == FORM:
        try:
            fields = parse_qs(body.decode("utf-8"), strict_parsing=True, max_num_fields=100)
        except (UnicodeDecodeError, ValueError):
            raise BodyError("body is not a valid form") from None
        values = fields.get("payload")
        if not values:
            raise BodyError("form has no payload field")
        payload = parse_json(values[0])
    else:
        raise UnsupportedMediaType(f"content type must be {JSON} or {FORM}")
    if not isinstance(payload, dict):
        raise BodyError("payload is not a JSON object")
    return payload


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0][:200]
