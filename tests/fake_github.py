"""A small fake of GitHub's REST API, served over real HTTP on loopback by uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.processes import free_port


@dataclass
class FakeGitHub:
    """Answers from ``responses`` (path to JSON); every request is recorded."""

    prefix: str = "/api/v3"
    delay: float = 0.0
    responses: dict[str, Any] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.prefix}"

    def paths(self) -> list[str]:
        return [path for path, _ in self.requests]

    async def handle(self, request: Request) -> Response:
        path = request.url.path.removeprefix(self.prefix)
        self.requests.append((path, request.headers.get("authorization")))
        if self.delay:
            await asyncio.sleep(self.delay)
        if path not in self.responses:
            return JSONResponse({"message": "Not Found"}, status_code=404)
        return JSONResponse(
            self.responses[path],
            headers={"x-ratelimit-remaining": "4999", "x-ratelimit-reset": "1900000000"},
        )


@contextlib.contextmanager
def serve(fake: FakeGitHub) -> Iterator[FakeGitHub]:
    fake.port = free_port()
    app = Starlette(routes=[Route("/{path:path}", fake.handle, methods=["GET", "POST"])])
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=fake.port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the fake GitHub API did not start")
        time.sleep(0.01)
    try:
        yield fake
    finally:
        server.should_exit = True
        thread.join(timeout=10)
