"""What a user configures on the app holds for every endpoint, POST /webhook included."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from prometheus_client import CollectorRegistry
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.testclient import TestClient

from observer.app import create_app
from observer.sources.github import adapter as github_adapter
from tests.conftest import SECRET, load_fixture, make_settings
from tests.exposition import Exposition
from tests.processes import free_port
from tests.signing import sign

ERRORS = "observer_unexpected_errors_total"


def _ping() -> tuple[bytes, dict[str, str]]:
    body = json.dumps(load_fixture("ping")).encode()
    headers = {
        "X-GitHub-Event": "ping",
        "X-GitHub-Delivery": "d-configured",
        "X-Hub-Signature-256": sign(SECRET, body),
        "Content-Type": "application/json",
    }
    return body, headers


def _incident() -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {
            "type": "incident",
            "repository": "octo/app",
            "action": "opened",
            "id": "INC-1",
            "opened_at": "2026-11-20T08:00:00Z",
        }
    ).encode()
    return body, {"X-Hub-Signature-256": sign(SECRET, body), "Content-Type": "application/json"}


def test_a_host_refused_by_trusted_host_middleware_is_refused_on_every_endpoint() -> None:
    app = create_app(make_settings())
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=["observer.example"])
    body, headers = _ping()
    with TestClient(app, base_url="http://attacker.example") as refused:
        assert refused.get("/healthz").status_code == 400
        answer = refused.post("/webhook", content=body, headers=headers)
        assert (answer.status_code, answer.text) == (400, "Invalid host header")
    with TestClient(app, base_url="http://observer.example") as allowed:
        metrics = Exposition(allowed.get("/metrics").text)
        # The refused delivery reached nothing that counts.
        assert (
            metrics.get(
                "observer_webhook_deliveries_total",
                source="github",
                event="ping",
                result="accepted",
            )
            == 0
        )
        assert allowed.post("/webhook", content=body, headers=headers).status_code == 200


@pytest.fixture
def error_lines() -> Iterator[list[logging.LogRecord]]:
    """What the server logs at error level."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("uvicorn.error")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def test_an_unexpected_error_is_answered_logged_and_counted_alike_on_every_endpoint(
    monkeypatch: pytest.MonkeyPatch, error_lines: list[logging.LogRecord]
) -> None:
    def broken(*args: object) -> bool:
        raise RuntimeError("broken")

    monkeypatch.setattr(github_adapter, "verify", broken)
    registry = CollectorRegistry()
    app = create_app(make_settings(), registry)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run)
    thread.start()
    try:
        url = f"http://127.0.0.1:{port}"
        while not server.started:
            assert thread.is_alive()
            threading.Event().wait(0.02)
        for path, (body, headers) in (("/webhook", _ping()), ("/api/event", _incident())):
            # A connection of its own each: the server closes the one an error was answered on.
            answer = httpx.post(f"{url}{path}", content=body, headers=headers, timeout=10)
            assert (answer.status_code, answer.text) == (500, "Internal Server Error"), path
        metrics = Exposition(httpx.get(f"{url}/metrics", timeout=10).text)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    assert metrics.get(ERRORS) == 2
    failures = [record for record in error_lines if record.exc_info]
    assert [str(record.exc_info[1]) for record in failures if record.exc_info] == [
        "broken",
        "broken",
    ]
