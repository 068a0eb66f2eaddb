"""A small fake of GitHub's REST and GraphQL APIs, served over real HTTP on loopback by uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.processes import free_port
from tests.signing import sign

# The aliased fields ``GitHubClient.pulls_of_commits`` asks for.
COMMIT_ALIAS = re.compile(r'(\w+):\s*object\(oid:\s*"([0-9a-fA-F]+)"\)')
PULL_ALIAS = re.compile(r"(\w+):\s*pullRequest\(number:\s*(\d+)\)")
RATE_HEADERS = {"x-ratelimit-remaining": "4999", "x-ratelimit-reset": "1900000000"}
# A webhook's deliveries API: the list, and a redelivery of one attempt.
HOOK_DELIVERIES = re.compile(
    r"^(?P<hook>/(?:orgs/[^/]+/hooks/\d+|repos/[^/]+/[^/]+/hooks/\d+|app/hook))/deliveries"
    r"(?:/(?P<id>\d+)/attempts)?$"
)
# What GitHub records when it could not reach the receiver at all.
UNREACHABLE_STATUS = 502


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
    # While set and not yet opened, every request waits for it before it is answered.
    hold: threading.Event | None = None
    responses: dict[str, Any] = field(default_factory=dict)
    graphql_commits: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    graphql_pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    # When set, the only repositories (lower-cased owner/name) GraphQL resolves; for any other
    # it answers as GitHub does for one that is not there or not visible to the token.
    repositories: set[str] | None = None
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    graphql_queries: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0
    # Webhooks: each hook's delivery attempts, oldest first, in the deliveries API's shape;
    # each delivery's event and body by guid, for redelivery; the redeliveries asked for.
    hook_attempts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    delivery_bodies: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    redeliveries: list[tuple[str, int]] = field(default_factory=list)
    webhook_secret: str = "e2e-secret"
    # Where redeliveries go (an observer's /webhook), and the attempts listed per page at most.
    webhook_target: str | None = None
    deliveries_page_size: int = 100
    # The next this many list requests, or redelivery requests, answer 500.
    deliveries_list_failures: int = 0
    redelivery_failures: int = 0
    _attempt_ids: Iterator[int] = field(default_factory=lambda: itertools.count(81_000_000_001))

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

    def deliver(
        self,
        hook: str,
        event: str,
        payload: dict[str, Any],
        target: str | None,
        *,
        recorded_status: int | None = None,
    ) -> str:
        """Send a webhook as GitHub does, signed, to ``target`` (None: nothing listens), and
        record the attempt with its status, or ``recorded_status`` (an answer GitHub never
        got in time); returns the delivery id."""
        guid = str(uuid.uuid4())
        body = json.dumps(payload).encode()
        self.delivery_bodies[guid] = (event, body)
        status = UNREACHABLE_STATUS if target is None else self._send(target, guid, event, body)
        self._record(hook, guid, event, recorded_status or status, redelivery=False)
        return guid

    def mirror(self, guid: str, target: str) -> int:
        """Send a recorded delivery, as it was, to another receiver (a reference observer)."""
        event, body = self.delivery_bodies[guid]
        return self._send(target, guid, event, body)

    def attempts(self, hook: str) -> list[dict[str, Any]]:
        return list(self.hook_attempts.get(hook, []))

    def _headers(self, guid: str, event: str, body: bytes) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": guid,
            "X-Hub-Signature-256": sign(self.webhook_secret, body),
            "User-Agent": "GitHub-Hookshot/fake",
        }

    def _send(self, target: str, guid: str, event: str, body: bytes) -> int:
        try:
            response = httpx.post(
                target, content=body, headers=self._headers(guid, event, body), timeout=10
            )
        except httpx.TransportError:
            return UNREACHABLE_STATUS
        return response.status_code

    def _record(self, hook: str, guid: str, event: str, status: int, *, redelivery: bool) -> None:
        self.hook_attempts.setdefault(hook, []).append(
            {
                "id": next(self._attempt_ids),
                "guid": guid,
                "delivered_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "redelivery": redelivery,
                "duration": 0.05,
                "status": "OK" if 200 <= status < 300 else "failed",
                "status_code": status,
                "event": event,
                "action": None,
                "installation_id": None,
                "repository_id": None,
                "throttled_at": None,
            }
        )

    def _deliveries(self, request: Request, hook: str) -> Response:
        if self.deliveries_list_failures > 0:
            self.deliveries_list_failures -= 1
            return JSONResponse({"message": "Server Error"}, status_code=500)
        if hook not in self.hook_attempts:
            return JSONResponse({"message": "Not Found"}, status_code=404)
        size = min(int(request.query_params.get("per_page", 30)), self.deliveries_page_size)
        newest_first = self.hook_attempts[hook][::-1]
        cursor = request.query_params.get("cursor")
        if cursor is not None:
            before = int(cursor.removeprefix("v1_"))
            newest_first = [attempt for attempt in newest_first if attempt["id"] < before]
        page = newest_first[:size]
        headers = dict(RATE_HEADERS)
        if len(newest_first) > size:
            following = f"{self.url}{hook}/deliveries?per_page={size}&cursor=v1_{page[-1]['id']}"
            headers["link"] = f'<{following}>; rel="next"'
        return JSONResponse(page, headers=headers)

    def _redeliver(self, hook: str, attempt_id: int) -> Response:
        if self.redelivery_failures > 0:
            self.redelivery_failures -= 1
            return JSONResponse({"message": "Server Error"}, status_code=500)
        found = [a for a in self.hook_attempts.get(hook, []) if a["id"] == attempt_id]
        if not found:
            return JSONResponse({"message": "Not Found"}, status_code=404)
        self.redeliveries.append((hook, attempt_id))
        guid = found[0]["guid"]
        event, body = self.delivery_bodies[guid]

        async def resend() -> None:
            status = UNREACHABLE_STATUS
            if self.webhook_target is not None:
                with contextlib.suppress(httpx.TransportError):
                    async with httpx.AsyncClient(timeout=10) as client:
                        headers = self._headers(guid, event, body)
                        answer = await client.post(
                            self.webhook_target, content=body, headers=headers
                        )
                        status = answer.status_code
            self._record(hook, guid, event, status, redelivery=True)

        # GitHub accepts the request, then delivers again on its own time.
        return JSONResponse({}, status_code=202, background=BackgroundTask(resend))

    async def handle(self, request: Request) -> Response:
        graphql = request.method == "POST" and request.url.path == self.graphql_path
        path = request.url.path if graphql else request.url.path.removeprefix(self.prefix)
        self.requests.append((path, request.headers.get("authorization")))
        if self.hold is not None:
            await asyncio.to_thread(self.hold.wait)
        if graphql:
            return JSONResponse(self.answer_graphql(await request.json()), headers=RATE_HEADERS)
        hook_call = HOOK_DELIVERIES.match(path)
        if hook_call is not None:
            if request.method == "POST" and hook_call["id"] is not None:
                return self._redeliver(hook_call["hook"], int(hook_call["id"]))
            if request.method == "GET" and hook_call["id"] is None:
                return self._deliveries(request, hook_call["hook"])
        if path not in self.responses:
            return JSONResponse({"message": "Not Found"}, status_code=404)
        return JSONResponse(self.responses[path], headers=RATE_HEADERS)

    def answer_graphql(self, body: dict[str, Any]) -> dict[str, Any]:
        self.graphql_queries.append(body)
        variables = body.get("variables") or {}
        full_name = f"{variables.get('owner')}/{variables.get('name')}"
        if self.repositories is not None and full_name.lower() not in self.repositories:
            return {
                "data": {"repository": None},
                "errors": [
                    {
                        "type": "NOT_FOUND",
                        "path": ["repository"],
                        "message": "Could not resolve to a Repository with the name "
                        f"'{full_name}'.",
                    }
                ],
            }
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
    with serving(fake.handle, "GitHub") as port:
        fake.port = port
        yield fake


@contextlib.contextmanager
def serving(handle: Callable[[Request], Awaitable[Response]], name: str) -> Iterator[int]:
    """A fake API's handler served over real HTTP on a free loopback port, for the block."""
    port = free_port()
    app = Starlette(routes=[Route("/{path:path}", handle, methods=["GET", "POST"])])
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the fake {name} API did not start")
        time.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)
