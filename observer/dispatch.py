"""Endpoints that work from the ASGI scope, and POST /webhook answered ahead of starlette.

The webhook endpoint needs nothing starlette's middleware stack and router add; going through
them cost about 6% of a delivery's time on a busy server. Every other request, and a webhook
under a root path (which starlette's router strips), takes starlette's way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

Endpoint = Callable[[Scope, Receive], Awaitable[Response]]

# starlette's ServerErrorMiddleware answer to an unexpected error, outside debug mode.
_SERVER_ERROR = PlainTextResponse("Internal Server Error", status_code=500)


class Observer(Starlette):
    """starlette's application, with ``webhook`` called directly for ``POST path``."""

    def __init__(self, webhook: Endpoint, path: str, **options: Any) -> None:
        super().__init__(**options)
        self._webhook = webhook
        self._path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] != self._path
            or scope["method"] != "POST"
            or scope.get("root_path")
        ):
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self
        try:
            response = await self._webhook(scope, receive)
        except Exception:
            # As ServerErrorMiddleware does: nothing was sent yet, so answer 500, and raise on
            # for the server to log. An error while sending has begun the answer: it is raised.
            await _SERVER_ERROR(scope, receive, send)
            raise
        await respond(response, scope, receive, send)


class Asgi:
    """An endpoint given the ASGI scope and receive, without starlette's Request around them.

    starlette's Request, its header lookups and its exception wrapper cost a busy webhook more
    than its own signature check; the webhook reads the few headers it needs at once.
    """

    def __init__(self, endpoint: Endpoint) -> None:
        self._endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await respond(await self._endpoint(scope, receive), scope, receive, send)


async def respond(response: Response, scope: Scope, receive: Receive, send: Send) -> None:
    """What ``response(scope, receive, send)`` sends for an http request, sent directly."""
    if response.background is not None:
        await response(scope, receive, send)
        return
    status, headers = response.status_code, response.raw_headers
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})
