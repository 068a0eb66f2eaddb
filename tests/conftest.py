"""Shared fixtures: a service built from explicit settings, and signed requests to it."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import respx
from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send

from observer.app import create_app
from observer.settings import Settings
from tests.exposition import Exposition
from tests.signing import sign

SECRET = "test-webhook-secret"
API_TOKEN = "test-api-token"
FIXTURES = Path(__file__).parent / "fixtures"


def load_fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / "github" / f"{name}.json").read_text())
    return data


def fixture_event(name: str) -> str:
    """The X-GitHub-Event of a fixture named ``<event>_<variant>``."""
    # Longest names first: "pull_request_review_…" is not a "pull_request".
    events = ("pull_request_review", "workflow_run", "deployment_status", "pull_request")
    for event in (*events, "issues", "push", "ping", "star"):
        if name == event or name.startswith(event + "_"):
            return event
    raise ValueError(name)


class Service:
    """A running app and the requests a GitHub hook or a pipeline would send it."""

    def __init__(self, client: TestClient, settings: Settings) -> None:
        self.client = client
        self.settings = settings

    def deliver(
        self,
        event: str,
        payload: dict[str, Any] | bytes,
        *,
        delivery: str | None = None,
        secret: str = SECRET,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> Any:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        if content_type == "application/x-www-form-urlencoded" and not isinstance(payload, bytes):
            body = urlencode({"payload": json.dumps(payload)}).encode()
        sent = {
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
            "X-GitHub-Hook-ID": "123456",
            "User-Agent": "GitHub-Hookshot/abc1234",
            "Content-Type": content_type,
            "X-Hub-Signature-256": sign(secret, body),
        }
        sent.update(headers or {})
        return self.client.post("/webhook", content=body, headers=sent)

    def deliver_fixture(self, name: str, **kwargs: Any) -> Any:
        return self.deliver(fixture_event(name), load_fixture(name), **kwargs)

    def push_events(self, events: Any, *, token: str = API_TOKEN) -> Any:
        return self.client.post(
            "/api/event", json=events, headers={"Authorization": f"Bearer {token}"}
        )

    def post_all(
        self, path: str, requests: Iterable[tuple[bytes, dict[str, str]]]
    ) -> list[httpx.Response]:
        """POST each (body, headers) in turn to the same app, as ``client.post`` would, but from
        the app's own event loop: the test client hops threads several times per request, which
        made a corpus of thousands spend most of its time waiting on them."""

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            # What the test client gives every request: the lifespan's state.
            scope["state"] = dict(self.client.app_state)
            await self.client.app(scope, receive, send)

        async def post() -> list[httpx.Response]:
            transport = httpx.ASGITransport(app)
            base = str(self.client.base_url)
            async with httpx.AsyncClient(transport=transport, base_url=base) as client:
                return [await client.post(path, content=b, headers=h) for b, h in requests]

        return self.client.portal.call(post)

    def metrics(self) -> Exposition:
        response = self.client.get("/metrics")
        assert response.status_code == 200
        return Exposition(response.text)

    def settled(self, timeout: float = 15.0) -> Exposition:
        """The metrics once the due work this replica knows of (lead time, first reviews) is
        done: with ``settle_seconds`` 0 it is due at once, yet done by the background loop."""
        worker = self.client.app.state.enrichment  # type: ignore[attr-defined]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if worker.idle:
                return self.metrics()
            time.sleep(0.01)
        raise AssertionError("due work did not finish")


def make_settings(**overrides: Any) -> Settings:
    # Lead time without the settle wait, unless a test is about it.
    values: dict[str, Any] = {
        "webhook_secret": SECRET,
        "api_token": API_TOKEN,
        "settle_seconds": 0,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def start() -> Iterator[Callable[..., Service]]:
    """Start a service with settings overrides; every one started is stopped at the end."""
    clients: list[TestClient] = []

    def starter(**overrides: Any) -> Service:
        settings = make_settings(**overrides)
        client = TestClient(create_app(settings), raise_server_exceptions=True)
        client.__enter__()
        clients.append(client)
        return Service(client, settings)

    yield starter
    for client in clients:
        client.__exit__(None, None, None)


API = "https://api.github.com"


@pytest.fixture
def github() -> Iterator[respx.MockRouter]:
    """GitHub's API, mocked: routes are added by each test."""
    with respx.mock(base_url=API, assert_all_called=False) as router:
        yield router


@pytest.fixture
def enriched(github: respx.MockRouter, start: Callable[..., Service]) -> Service:
    """A service with a GitHub token. The mock router is set up first so that it outlives the
    service: work left at shutdown is done against it, never against the real API."""
    return start(github_token="ghp_test-token", github_max_retries=0)


@pytest.fixture
def service(start: Callable[..., Service]) -> Service:
    return start()
