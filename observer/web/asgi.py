"""Raw ASGI endpoints, and the one place where an unexpected error of any endpoint is counted.

Every request, POST /webhook included, goes through starlette's middleware stack, exception
handlers and router: what a user configures there (TrustedHostMiddleware, say, or ``debug``)
holds for every endpoint alike.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from prometheus_client import Counter
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

Endpoint = Callable[[Scope, Receive], Awaitable[Response]]


class Asgi:
    """An endpoint given the ASGI scope and receive, without starlette's Request around them.

    starlette's Request, its header lookups and its exception wrapper cost a busy webhook more
    than its own signature check; the webhook reads the few headers it needs at once. Served
    by starlette's router as the raw ASGI app of its Route.
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


class CountErrors:
    """Counts the unexpected errors of every endpoint, and lets them go on.

    starlette's ServerErrorMiddleware, outside this one, answers them (500, or the traceback
    page with ``debug``) and raises them on for the server to log, once, with the traceback.
    """

    def __init__(self, app: ASGIApp, errors: Counter) -> None:
        self._app = app
        self._errors = errors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._app(scope, receive, send)
        except Exception:
            self._errors.inc()
            raise
