"""The log lines a process writes: JSON, written by the listener's thread, all of them at exit."""

from __future__ import annotations

import io
import json
import logging.handlers
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import httpx
import pytest

from observer.ops import logs
from tests.processes import start_observer

PROGRAM = """
import logging, sys
from observer.ops import logs
with logs.writing(sys.argv[1]):
    logs.event("started", mode="memory")
    logs.request(200, "webhook delivery", delivery="d-1", result="accepted")
    logs.request(401, "webhook delivery", delivery="d-2", result="unauthorized")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
    for index in range(1000):
        logs.event("many", index=index)
    raise SystemExit(0)
"""


def run(level: str) -> list[dict[str, object]]:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, level], capture_output=True, check=True, timeout=30
    )
    assert done.stderr == b""
    return [json.loads(line) for line in done.stdout.decode().splitlines()]


def test_every_line_is_written_in_order_with_its_fields_and_exception() -> None:
    lines = run("info")
    assert [line["message"] for line in lines[:4]] == [
        "started",
        "webhook delivery",
        "webhook delivery",
        "Exception in ASGI application",
    ]
    assert lines[0] | {"time": None} == {
        "time": None,
        "level": "info",
        "logger": "observer",
        "message": "started",
        "mode": "memory",
    }
    assert (lines[1]["level"], lines[2]["level"]) == ("info", "warning")
    assert lines[3]["level"] == "error" and lines[3]["logger"] == "uvicorn.error"
    assert "ValueError: boom" in str(lines[3]["exception"])
    # Queued lines are written before the process ends.
    assert [line["index"] for line in lines[4:]] == list(range(1000))


def test_refusals_show_at_warning_and_the_rest_does_not() -> None:
    lines = run("warning")
    assert [(line["message"], line.get("delivery")) for line in lines] == [
        ("webhook delivery", "d-2"),
        ("Exception in ASGI application", None),
    ]


def test_lines_are_written_while_the_process_runs() -> None:
    # Batched lines still come out while the service is serving, not only when it stops.
    program = (
        "import sys\nfrom observer.ops import logs\nwith logs.writing('info'):\n"
        "    logs.event('serving')\n    sys.stdin.read()\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", program],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert json.loads(first)["message"] == "serving"
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=30)


# Past the writer's limit of 10,000 waiting lines, with room for the lines already in the pipe.
DELIVERIES = 60_000
# Each waiting line of these deliveries holds about 650 bytes: unbounded, the queue grew the
# process by some 40 MiB; bounded, by about 6 MiB. Generous for the allocator's noise, too small
# for the unbounded queue.
GROWTH_LIMIT = 20 * 1024 * 1024


def test_a_standard_output_nobody_reads_costs_log_lines_not_memory_nor_answers() -> None:
    with start_observer(output=subprocess.PIPE) as observer:
        assert observer.process.stdout is not None
        send_unsigned(observer.port, 2_000)  # the pipe fills, and the service warms up
        before = _metric(observer.url, "process_resident_memory_bytes")
        send_unsigned(observer.port, DELIVERIES)
        # Still answering: logging drops lines rather than wait for the pipe.
        assert httpx.get(f"{observer.url}/healthz", timeout=5.0).status_code == 200
        assert _metric(observer.url, "observer_log_lines_dropped_total") > 0
        growth = _metric(observer.url, "process_resident_memory_bytes") - before
        assert growth < GROWTH_LIMIT, f"resident size grew by {growth / 2**20:.1f} MiB"

        lines: list[dict[str, Any]] = []
        reader = threading.Thread(
            target=lambda: lines.extend(map(json.loads, observer.process.stdout or [])),
            daemon=True,
        )
        reader.start()
        deadline = time.monotonic() + 30
        while not [line for line in lines if line.get("dropped")]:
            assert time.monotonic() < deadline, "no warning about dropped lines"
            time.sleep(0.05)
    warnings = [line for line in lines if line.get("dropped")]
    assert warnings[0]["level"] == "warning"
    assert "dropped" in warnings[0]["message"]
    # Every delivery was either written or counted as dropped.
    written = sum(1 for line in lines if line.get("message") == "webhook delivery")
    assert written + sum(line["dropped"] for line in warnings) >= DELIVERIES + 2_000


# Not a measure of the exit: how long a test waits for a process that would otherwise never end.
HANG = 120


def test_a_standard_output_nobody_reads_does_not_hold_the_exit() -> None:
    with start_observer(output=subprocess.PIPE) as observer:
        send_unsigned(observer.port, 20_000)  # the pipe is full and lines are waiting
        # This scrape has every count: the stop does not wait for another.
        assert _metric(observer.url, "observer_log_lines_dropped_total") > 0
        observer.process.send_signal(signal.SIGTERM)
        # The listener gives up on the lines it cannot write; without that bound the process
        # waits on the pipe until it is killed. Nobody has read the pipe: it exits on its own.
        assert observer.process.wait(timeout=HANG) == 0


ANSWER = b"HTTP/1.1 401 "
WINDOW = 100


def send_unsigned(port: int, count: int) -> None:
    """``count`` deliveries without a signature, pipelined on one connection, all answered.

    Each is refused with a 401 and a log line, which is all this needs: lines, fast. They go a
    window at a time: the server would hold all the requests sent ahead of their answers.
    """
    request = (
        "POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n"
        "X-GitHub-Event: push\r\nX-GitHub-Delivery: " + "d" * 128 + "\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        tail = b""  # the end of what came before: an answer's status line may be split
        for start in range(0, count, WINDOW):
            window = min(WINDOW, count - start)
            connection.sendall(request * window)
            answered = 0
            while answered < window:
                received = connection.recv(1 << 16)
                assert received, f"connection closed after {start + answered} answers"
                data = tail + received
                answered += data.count(ANSWER)
                tail = data[1 - len(ANSWER) :]


def _metric(url: str, name: str) -> float:
    for line in httpx.get(f"{url}/metrics", timeout=5.0).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no {name}")


class _Gate(io.StringIO):
    """An output whose first write waits until the test lets it go, as a stalled pipe does."""

    def __init__(self) -> None:
        super().__init__()
        self.writing = threading.Event()
        self.release = threading.Event()

    def write(self, text: str) -> int:
        if not self.release.is_set():
            self.writing.set()
            assert self.release.wait(HANG)
        return super().write(text)


def test_the_listener_is_the_serve_functions_and_counts_what_its_full_queue_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(logs, "QUEUE_LIMIT", 10)
    gate = _Gate()
    before = list(logs.LOGGER.handlers), logs.LOGGER.propagate
    threads = threading.active_count()
    with logs.writing("info", stream=gate) as handoff:
        assert isinstance(handoff, logging.handlers.QueueHandler)
        logs.event("first")
        assert gate.writing.wait(HANG)  # the listener holds "first", stuck in the write
        for index in range(13):  # ten fit in the queue, three do not
            logs.event("queued", index=index)
        assert handoff.dropped == logs.lines_dropped() == 3
        gate.release.set()
    # Stopped with the block: every line queued was written, then the warning.
    assert (list(logs.LOGGER.handlers), logs.LOGGER.propagate) == before
    assert threading.active_count() == threads
    lines = [json.loads(line) for line in gate.getvalue().splitlines()]
    assert [line["message"] for line in lines[:11]] == ["first"] + ["queued"] * 10
    assert [line.get("index") for line in lines[1:11]] == list(range(10))
    assert lines[11] | {"time": None} == {
        "time": None,
        "level": "warning",
        "logger": "observer",
        "message": "log lines dropped: standard output did not keep up",
        "dropped": 3,
        "queue_limit": 10,
    }
    assert len(lines) == 12
