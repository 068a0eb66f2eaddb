"""End to end: the ``observer`` command as users run it, on a loopback port, over real HTTP."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from tests import rawhttp
from tests.conftest import SECRET as CONFTEST_SECRET
from tests.conftest import load_fixture
from tests.corpus import dumps, raw_bodies, signed_headers, wrongly_typed_payloads
from tests.exposition import Exposition
from tests.processes import ObserverProcess, start_observer
from tests.signing import sign, sign_with_openssl

pytestmark = pytest.mark.e2e

SECRET = CONFTEST_SECRET
REPO = "octo-org/octo-app"


def scrape(observer: ObserverProcess) -> Exposition:
    response = httpx.get(f"{observer.url}/metrics", timeout=10)
    assert response.status_code == 200
    return Exposition(response.text)


def deliver(observer: ObserverProcess, event: str, payload: dict[str, Any], **kw: Any) -> Any:
    body = json.dumps(payload).encode()
    headers = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": kw.get("delivery", str(uuid.uuid4())),
        "Content-Type": "application/json",
        "X-Hub-Signature-256": kw.get("signature", sign_with_openssl(SECRET, body)),
    }
    return httpx.post(f"{observer.url}/webhook", content=body, headers=headers, timeout=10)


@pytest.fixture(scope="module")
def observer() -> Any:
    with start_observer({"API_TOKEN": "e2e-token"}, secret=SECRET) as running:
        yield running


def test_real_payloads_signed_by_openssl_move_exactly_the_documented_counters(
    observer: ObserverProcess,
) -> None:
    before = scrape(observer)
    for name, event in [
        ("ping", "ping"),
        ("deployment_status_failure", "deployment_status"),
        ("deployment_status_success", "deployment_status"),
        ("pull_request_closed_merged", "pull_request"),
        ("push", "push"),
        ("issues_opened_incident", "issues"),
        ("issues_closed_incident", "issues"),
    ]:
        response = deliver(observer, event, load_fixture(name))
        assert response.status_code == 200, response.text
    after = scrape(observer)
    production = {"repository": REPO, "environment": "production"}

    def moved(name: str, **labels: str) -> float:
        return after.get(name, **labels) - before.get(name, **labels)

    assert moved("dora_deployments_total", status="success", **production) == 1
    assert moved("dora_deployments_total", status="failure", **production) == 1
    assert moved("dora_deployment_recovery_seconds_sum", **production) == 1800
    assert moved("github_pull_requests_total", repository=REPO, action="merged") == 1
    assert moved("github_pull_request_cycle_time_seconds_sum", repository=REPO) == 91800
    assert moved("github_commits_pushed_total", repository=REPO) == 2
    assert moved("dora_incidents_opened_total", repository=REPO) == 1
    assert moved("dora_incident_recovery_seconds_sum", repository=REPO) == 2400
    assert (
        moved("observer_webhook_deliveries_total", source="github", event="ping", result="accepted")
        == 1
    )


def test_wrong_or_missing_signatures_get_401_and_move_nothing(observer: ObserverProcess) -> None:
    before = scrape(observer)
    payload = load_fixture("deployment_status_success")
    payload["deployment_status"]["id"] += 1
    body = json.dumps(payload).encode()
    for signature in (None, sign("wrong", body), "sha256=", "sha1=abc"):
        headers = signed_headers("deployment_status", body)
        del headers["X-Hub-Signature-256"]
        if signature is not None:
            headers["X-Hub-Signature-256"] = signature
        response = httpx.post(f"{observer.url}/webhook", content=body, headers=headers)
        assert response.status_code == 401
    after = scrape(observer)
    assert after.domain() == before.domain()
    assert (
        after.get(
            "observer_webhook_deliveries_total",
            source="github",
            event="other",
            result="unauthorized",
        )
        - (
            before.get(
                "observer_webhook_deliveries_total",
                source="github",
                event="other",
                result="unauthorized",
            )
        )
        == 4
    )


def test_2000_concurrent_signed_deliveries_are_all_counted(observer: ObserverProcess) -> None:
    template = load_fixture("deployment_status_success")
    bodies = []
    for index in range(2000):
        payload = json.loads(json.dumps(template))
        payload["deployment_status"]["id"] = 9_000_000 + index
        payload["deployment"]["id"] = 9_000_000 + index
        payload["deployment"]["environment"] = "load-test"
        payload["deployment_status"]["environment"] = "load-test"
        bodies.append(json.dumps(payload).encode())

    async def send_all() -> list[int]:
        async def send(body: bytes) -> int:
            headers = signed_headers("deployment_status", body)
            headers["X-GitHub-Delivery"] = str(uuid.uuid4())
            status, _ = await rawhttp.post("127.0.0.1", observer.port, "/webhook", body, headers)
            return status

        async with asyncio.timeout(120):
            return list(await asyncio.gather(*(send(body) for body in bodies)))

    statuses = asyncio.run(send_all())
    assert statuses == [200] * 2000
    metrics = scrape(observer)
    assert (
        metrics.get(
            "dora_deployments_total", repository=REPO, environment="load-test", status="success"
        )
        == 2000
    )


def test_the_malformed_corpus_gets_no_5xx_and_the_process_survives(
    observer: ObserverProcess,
) -> None:
    with httpx.Client(base_url=observer.url, timeout=30) as client:
        for case, body, content_type in raw_bodies():
            response = client.post(
                "/webhook", content=body, headers=signed_headers("push", body, content_type)
            )
            assert 400 <= response.status_code < 500, case
        for index, (case, event, payload) in enumerate(wrongly_typed_payloads()):
            if index % 10:
                continue
            body = dumps(payload)
            response = client.post("/webhook", content=body, headers=signed_headers(event, body))
            assert response.status_code < 500, case
        oversized = b"{" + b" " * (26_214_400 + 10) + b"}"
        response = client.post("/webhook", content=oversized, headers=signed_headers("push", b"{}"))
        assert response.status_code == 413
        assert client.get("/healthz").status_code == 200
    assert observer.process.poll() is None


def test_logs_are_json_lines_without_secrets(observer: ObserverProcess) -> None:
    deliver(observer, "ping", load_fixture("ping"), delivery="log-check")
    lines = observer.log_lines(lambda lines: any(x.get("delivery") == "log-check" for x in lines))
    deliveries = [line for line in lines if line.get("message") == "webhook delivery"]
    assert any(
        line["delivery"] == "log-check" and line["result"] == "accepted" for line in deliveries
    )
    text = observer.logs()
    assert SECRET not in text and "e2e-token" not in text and "sha256=" not in text


def test_sigterm_stops_the_service_cleanly() -> None:
    with start_observer(secret=SECRET) as running:
        assert httpx.get(f"{running.url}/readyz").status_code == 200
        running.process.send_signal(signal.SIGTERM)
        assert running.process.wait(timeout=15) == 0
        messages = [json.loads(line)["message"] for line in running.logs().splitlines()]
        assert "Finished server process" in " ".join(messages)


def test_the_form_content_type_works_over_real_http(observer: ObserverProcess) -> None:
    payload = load_fixture("pull_request_opened")
    payload["pull_request"]["id"] += 1000
    body = urlencode({"payload": json.dumps(payload)}).encode()
    response = httpx.post(
        f"{observer.url}/webhook",
        content=body,
        headers=signed_headers("pull_request", body, "application/x-www-form-urlencoded"),
    )
    assert response.status_code == 200
    assert response.json()["result"] == "accepted"


def test_pipeline_events_over_real_http(observer: ObserverProcess) -> None:
    response = httpx.post(
        f"{observer.url}/api/event",
        json=[
            {
                "type": "incident",
                "repository": "octo/pipeline",
                "action": "opened",
                "id": "INC-9",
                "opened_at": "2026-11-23T10:00:00Z",
            },
            {
                "type": "deployment",
                "repository": "octo/pipeline",
                "environment": "prod",
                "status": "success",
                "timestamp": "2026-11-23T10:00:00Z",
            },
        ],
        headers={"Authorization": "Bearer e2e-token"},
    )
    assert response.status_code == 200
    metrics = scrape(observer)
    assert metrics.get("dora_incidents_opened_total", repository="octo/pipeline") == 1
    assert (
        metrics.get(
            "dora_deployments_total",
            repository="octo/pipeline",
            environment="prod",
            status="success",
        )
        == 1
    )


def test_bodies_held_open_cannot_exhaust_memory() -> None:
    """Unsigned bodies must be read before they can be refused; their total is bounded."""
    mebibyte = 2**20
    settings = {"MAX_BODY_BYTES": str(mebibyte), "MAX_BUFFERED_BYTES": str(3 * mebibyte // 2)}
    with start_observer(settings, secret=SECRET) as observer:

        async def scenario() -> tuple[int, int, int]:
            # A slow sender declares 1 MiB, sends all but its last byte, and waits.
            reader, writer = await asyncio.open_connection("127.0.0.1", observer.port)
            head = (
                "POST /webhook HTTP/1.1\r\nHost: observer\r\nContent-Type: application/json\r\n"
                f"X-Hub-Signature-256: sha256={'0' * 64}\r\nContent-Length: {mebibyte}\r\n\r\n"
            )
            writer.write(head.encode() + b" " * (mebibyte - 1))
            await writer.drain()
            await asyncio.sleep(1.0)
            # Meanwhile another whole mebibyte does not fit in what is left.
            body = b"{" + b" " * (mebibyte - 2) + b"}"
            busy, _ = await rawhttp.post(
                "127.0.0.1", observer.port, "/webhook", body, signed_headers("push", body)
            )
            writer.write(b" ")
            await writer.drain()
            slow = int((await reader.readline()).split()[1])
            writer.close()
            ping = json.dumps(load_fixture("ping")).encode()
            after, _ = await rawhttp.post(
                "127.0.0.1", observer.port, "/webhook", ping, signed_headers("ping", ping)
            )
            return busy, slow, after

        busy, slow, after = asyncio.run(scenario())
        assert (busy, slow, after) == (429, 401, 200)
        metrics = scrape(observer)
        assert (
            metrics.get(
                "observer_webhook_deliveries_total", source="github", event="other", result="busy"
            )
            == 1
        )
