"""A small fake of GitHub's REST and GraphQL APIs, served over real HTTP on loopback by uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import re
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

# The aliased fields ``GitHubClient.pulls_of_commits`` asks for.
COMMIT_ALIAS = re.compile(r'(\w+):\s*object\(oid:\s*"([0-9a-fA-F]+)"\)')
PULL_ALIAS = re.compile(r"(\w+):\s*pullRequest\(number:\s*(\d+)\)")
RATE_HEADERS = {"x-ratelimit-remaining": "4999", "x-ratelimit-reset": "1900000000"}


def graph_pull(
    number: int,
    merged_at: str | None = "2026-11-21T09:30:00Z",
    merge_commit: str | None = None,
    base: str = "main",
    first_commit_at: str | None = "2026-11-19T16:12:00Z",
) -> dict[str, Any]:
    """A pull request as GitHub's GraphQL API gives it for the fields the client asks for."""
    commits = [{"commit": {"authoredDate": first_commit_at}}] if first_commit_at else []
    return {
        "number": number,
        "mergedAt": merged_at,
        "mergeCommit": {"oid": merge_commit} if merge_commit else None,
        "baseRefName": base,
        "commits": {"nodes": commits},
    }


@dataclass
class FakeGitHub:
    """Answers from ``responses`` (REST path to JSON) and the GraphQL tables; all recorded.

    ``graphql_commits`` maps a sha to its associated pull requests and ``graphql_pulls`` a
    number to its pull request, both in GraphQL's shape (see ``graph_pull``); anything not in
    them answers null with a NOT_FOUND error, as GitHub does.
    """

    prefix: str = "/api/v3"
    delay: float = 0.0
    responses: dict[str, Any] = field(default_factory=dict)
    graphql_commits: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    graphql_pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    graphql_queries: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.prefix}"

    @property
    def graphql_path(self) -> str:
        # GitHub Enterprise Server serves REST under /api/v3 and GraphQL at /api/graphql.
        base = self.prefix.removesuffix("/v3") if self.prefix.endswith("/api/v3") else self.prefix
        return f"{base}/graphql"

    def paths(self) -> list[str]:
        return [path for path, _ in self.requests]

    async def handle(self, request: Request) -> Response:
        graphql = request.method == "POST" and request.url.path == self.graphql_path
        path = request.url.path if graphql else request.url.path.removeprefix(self.prefix)
        self.requests.append((path, request.headers.get("authorization")))
        if self.delay:
            await asyncio.sleep(self.delay)
        if graphql:
            return JSONResponse(self.answer_graphql(await request.json()), headers=RATE_HEADERS)
        if path not in self.responses:
            return JSONResponse({"message": "Not Found"}, status_code=404)
        return JSONResponse(self.responses[path], headers=RATE_HEADERS)

    def answer_graphql(self, body: dict[str, Any]) -> dict[str, Any]:
        self.graphql_queries.append(body)
        query = body["query"]
        repository: dict[str, Any] = {}
        errors: list[dict[str, Any]] = []

        def missing(alias: str, what: str) -> None:
            repository[alias] = None
            errors.append(
                {
                    "type": "NOT_FOUND",
                    "path": ["repository", alias],
                    "message": f"Could not resolve to {what}.",
                }
            )

        for alias, sha in COMMIT_ALIAS.findall(query):
            if sha.lower() in self.graphql_commits:
                nodes = self.graphql_commits[sha.lower()]
                repository[alias] = {"associatedPullRequests": {"nodes": nodes}}
            else:
                missing(alias, f"a Commit with the oid {sha}")
        for alias, number in PULL_ALIAS.findall(query):
            if int(number) in self.graphql_pulls:
                repository[alias] = self.graphql_pulls[int(number)]
            else:
                missing(alias, f"a PullRequest with the number of {number}")
        answer: dict[str, Any] = {"data": {"repository": repository}}
        if errors:
            answer["errors"] = errors
        return answer


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
