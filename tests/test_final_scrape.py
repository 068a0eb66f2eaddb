"""Stopping without losing counts: at SIGTERM a real process waits for one more scrape."""

from __future__ import annotations

import json
import signal
import sys
import time
from datetime import UTC, datetime, timedelta

import httpx

from tests.exposition import Exposition
from tests.processes import ObserverProcess, start_observer
from tests.signing import sign

SECRET = "final-scrape-secret"
# Generous: the default SHUTDOWN_TIMEOUT is 10 s; no test here measures how fast a stop is.
EXIT_WITHIN = 15


def count_an_incident(observer: ObserverProcess, incident: str) -> None:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = json.dumps(
        {
            "type": "incident",
            "repository": "octo/final",
            "action": "opened",
            "id": incident,
            "opened_at": now,
        }
    ).encode()
    response = httpx.post(
        f"{observer.url}/api/event",
        content=body,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": sign(SECRET, body)},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["result"] == "accepted", response.text


def messages(observer: ObserverProcess) -> list[str]:
    return [line["message"] for line in observer.log_lines()]


def test_after_sigterm_it_answers_until_a_final_scrape_has_the_counts() -> None:
    with start_observer(secret=SECRET) as observer:
        count_an_incident(observer, "INC-1")
        observer.process.send_signal(signal.SIGTERM)
        # The stop has begun: not ready for new traffic, but still serving.
        deadline = time.monotonic() + 10
        while httpx.get(f"{observer.url}/readyz", timeout=5).status_code != 503:
            assert time.monotonic() < deadline, "/readyz still answers 200 after SIGTERM"
            time.sleep(0.02)
        assert observer.process.poll() is None
        # A delivery arriving meanwhile is still counted, and the final scrape must carry it.
        count_an_incident(observer, "INC-2")
        assert observer.process.poll() is None
        metrics = Exposition(httpx.get(f"{observer.url}/metrics", timeout=5).text)
        assert metrics.get("dora_incidents_opened_total", repository="octo/final") == 2
        assert observer.process.wait(timeout=EXIT_WITHIN) == 0
        assert "the final scrape came" in messages(observer)


def test_sigterm_with_everything_scraped_exits_without_waiting() -> None:
    with start_observer(secret=SECRET) as observer:
        count_an_incident(observer, "INC-1")
        httpx.get(f"{observer.url}/metrics", timeout=5)
        observer.process.send_signal(signal.SIGTERM)
        assert observer.process.wait(timeout=EXIT_WITHIN) == 0
        found = messages(observer)
    assert "stopping: every count has been scraped" in found
    assert "stopping: waiting for a final scrape" not in found


def test_without_a_scrape_it_exits_within_shutdown_timeout_and_says_so() -> None:
    with start_observer({"SHUTDOWN_TIMEOUT": "1"}, secret=SECRET) as observer:
        count_an_incident(observer, "INC-1")
        observer.process.send_signal(signal.SIGTERM)
        assert observer.process.wait(timeout=EXIT_WITHIN) == 0
        lines = observer.log_lines()
    warnings = [line for line in lines if line["message"].startswith("the final scrape did not")]
    assert len(warnings) == 1, lines
    assert "the final scrape came" not in [line["message"] for line in lines]


def test_a_second_signal_stops_at_once() -> None:
    with start_observer({"SHUTDOWN_TIMEOUT": "60"}, secret=SECRET) as observer:
        count_an_incident(observer, "INC-1")
        observer.process.send_signal(signal.SIGTERM)
        observer.log_lines(lambda lines: any("waiting for a final" in x["message"] for x in lines))
        assert observer.process.poll() is None
        observer.process.send_signal(signal.SIGINT)
        # Well inside the 60 s the first signal allowed.
        assert observer.process.wait(timeout=EXIT_WITHIN) == 0
        found = messages(observer)
    assert "the final scrape came" not in found


def deploy_to_production(observer: ObserverProcess, commits: int) -> None:
    now = datetime.now(UTC)
    shipped = [
        {"sha": f"{index:040x}", "timestamp": (now - timedelta(hours=index + 1)).isoformat()}
        for index in range(commits)
    ]
    body = json.dumps(
        {
            "type": "deployment",
            "repository": "octo/final",
            "environment": "production",
            "status": "success",
            "id": "deploy-1",
            "sha": shipped[0]["sha"],
            "timestamp": now.isoformat(),
            "commits": shipped,
        }
    ).encode()
    response = httpx.post(
        f"{observer.url}/api/event",
        content=body,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": sign(SECRET, body)},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["result"] == "accepted", response.text


def test_lead_time_waiting_in_memory_is_in_the_final_scrape() -> None:
    # Inside the settle window: without the stop, the lead time would wait an hour.
    # A long budget: the wait ends with the scrape this test makes, however busy the machine.
    env = {"SETTLE_SECONDS": "3600", "SHUTDOWN_TIMEOUT": "60"}
    with start_observer(env, secret=SECRET) as observer:
        deploy_to_production(observer, commits=3)
        before = Exposition(httpx.get(f"{observer.url}/metrics", timeout=5).text)
        lead_time = {"repository": "octo/final", "environment": "production"}
        # Every count has been scraped; the lead time waits.
        assert before.get("dora_lead_time_seconds_count", **lead_time) == 0
        observer.process.send_signal(signal.SIGTERM)
        observer.log_lines(lambda lines: any("waiting for a final" in x["message"] for x in lines))
        assert observer.process.poll() is None
        metrics = Exposition(httpx.get(f"{observer.url}/metrics", timeout=5).text)
        assert metrics.get("dora_lead_time_seconds_count", **lead_time) == 3
        assert observer.process.wait(timeout=EXIT_WITHIN) == 0
        found = messages(observer)
    assert found.index("stopping: waiting work done") < found.index("the final scrape came")


# observer served under a uvicorn whose private list of caught signals has another name, as a
# release may rename it: its own methods use the new name, and the old one is gone.
RENAMED_PRIVATE = """
import contextlib, signal, sys, threading
import uvicorn.server as server
from observer.__main__ import main

original_init = server.Server.__init__

def __init__(self, config):
    original_init(self, config)
    self._signals_caught = self.__dict__.pop("_captured_signals")

@contextlib.contextmanager
def capture_signals(self):
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handlers = {sig: signal.signal(sig, self.handle_exit) for sig in server.HANDLED_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    for caught in reversed(self._signals_caught):
        signal.raise_signal(caught)

def handle_exit(self, sig, frame):
    self._signals_caught.append(sig)
    if self.should_exit and sig == signal.SIGINT:
        self.force_exit = True
    else:
        self.should_exit = True

server.Server.__init__ = __init__
server.Server.capture_signals = capture_signals
server.Server.handle_exit = handle_exit
sys.exit(main())
"""


def test_the_stop_keeps_its_order_under_a_uvicorn_that_renamed_its_privates() -> None:
    command = [sys.executable, "-c", RENAMED_PRIVATE]
    with start_observer({"SHUTDOWN_TIMEOUT": "60"}, secret=SECRET, command=command) as observer:
        count_an_incident(observer, "INC-1")
        observer.process.send_signal(signal.SIGTERM)
        observer.log_lines(lambda lines: any("waiting for a final" in x["message"] for x in lines))
        assert httpx.get(f"{observer.url}/readyz", timeout=5).status_code == 503
        metrics = Exposition(httpx.get(f"{observer.url}/metrics", timeout=5).text)
        assert metrics.get("dora_incidents_opened_total", repository="octo/final") == 1
        assert observer.process.wait(timeout=EXIT_WITHIN) == 0
        found = messages(observer)
    assert "the final scrape came" in found


def test_a_second_signal_stops_at_once_under_a_uvicorn_that_renamed_its_privates() -> None:
    command = [sys.executable, "-c", RENAMED_PRIVATE]
    with start_observer({"SHUTDOWN_TIMEOUT": "60"}, secret=SECRET, command=command) as observer:
        count_an_incident(observer, "INC-1")
        observer.process.send_signal(signal.SIGTERM)
        observer.log_lines(lambda lines: any("waiting for a final" in x["message"] for x in lines))
        observer.process.send_signal(signal.SIGINT)
        assert observer.process.wait(timeout=EXIT_WITHIN) == 0
        found = messages(observer)
    assert "the final scrape came" not in found
