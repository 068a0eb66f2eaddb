"""Reading request bodies within a limit, and within a budget shared by every request."""

from __future__ import annotations

from starlette.types import Receive


class BodyError(Exception):
    """A body that cannot be used; ``status`` is the HTTP status to answer with."""

    status = 400


class BodyTooLarge(BodyError):
    status = 413


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
