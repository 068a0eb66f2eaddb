"""The log lines a process writes: JSON, written by the listener's thread, all of them at exit."""

from __future__ import annotations

import json
import subprocess
import sys

PROGRAM = """
import logging, sys
from observer import logs
logs.configure(sys.argv[1])
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
        "import sys\nfrom observer import logs\nlogs.configure('info')\n"
        "logs.event('serving')\nsys.stdin.read()\n"
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
