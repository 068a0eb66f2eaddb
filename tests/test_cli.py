"""The ``observer`` command as an operator meets it: help, version, start failures, stop, logs."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from observer import __version__
from tests.exposition import Exposition
from tests.fake_github import FakeGitHub, serve
from tests.processes import ObserverProcess, free_port, observer_command, start_observer, stop
from tests.signing import sign
from tests.story import REPO, deployment_status

pytestmark = pytest.mark.e2e

SECRET = "cli-test-secret-long-enough"


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("WEBHOOK_", "GITHUB_"))}
    return subprocess.run(
        observer_command() + args,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def log_lines(
    observer: ObserverProcess, until: Callable[[list[dict[str, Any]]], bool] = lambda lines: True
) -> list[dict[str, Any]]:
    return observer.log_lines(until)


def has(message: str, **fields: Any) -> Callable[[list[dict[str, Any]]], bool]:
    def found(lines: list[dict[str, Any]]) -> bool:
        return any(
            line["message"] == message and all(line.get(k) == v for k, v in fields.items())
            for line in lines
        )

    return found


@pytest.mark.parametrize("env", [{}, {"WEBHOOK_SECRET": SECRET, "PORT": "1"}])
def test_help_works_without_settings_and_does_not_serve(env: dict[str, str]) -> None:
    result = run(["--help"], env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: observer")
    assert "WEBHOOK_SECRET" in result.stdout and "demo" in result.stdout
    assert result.stderr == ""


def test_version_works_without_settings() -> None:
    result = run(["--version"], {})
    assert (result.returncode, result.stdout, result.stderr) == (0, f"observer {__version__}\n", "")


def test_a_busy_port_is_one_line_naming_port() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run([], {"WEBHOOK_SECRET": SECRET, "HOST": "127.0.0.1", "PORT": str(port)})
    assert result.returncode != 0
    assert result.stderr == f"observer: PORT {port} is already in use on 127.0.0.1\n"
    assert "startup complete" not in result.stdout


def test_an_unresolvable_host_is_one_line_naming_host() -> None:
    result = run([], {"WEBHOOK_SECRET": SECRET, "HOST": "no-such-host.invalid", "PORT": "8080"})
    assert result.returncode != 0
    assert result.stderr.startswith("observer: HOST 'no-such-host.invalid' cannot be resolved")
    assert result.stderr.count("\n") == 1


def test_ctrl_c_stops_cleanly_with_exit_status_0() -> None:
    with start_observer(secret=SECRET) as running:
        running.process.send_signal(signal.SIGINT)
        assert running.process.wait(timeout=15) == 0
        text = running.logs()
    assert "Traceback" not in text and "KeyboardInterrupt" not in text
    # Every line is still a JSON log line.
    assert all(json.loads(line) for line in text.splitlines() if line.strip())


def test_one_start_line_with_the_version_and_the_settings_in_force() -> None:
    env = {
        "API_TOKEN": "start-line-api-token",
        "REPOSITORIES": "octo/*,acme/app",
        "PRODUCTION_ENVIRONMENTS": "^(production|live)$",
    }
    with start_observer(env, secret=SECRET) as running:
        lines = log_lines(running, has("observer starting"))
        text = running.logs()
    starts = [line for line in lines if line["message"] == "observer starting"]
    assert len(starts) == 1
    start = starts[0]
    assert start["version"] == __version__
    assert start["listen"] == f"127.0.0.1:{running.port}"
    assert start["enrichment"] == "off"
    assert start["state"] == "memory"
    assert start["production_environments"] == "^(production|live)$"
    assert start["repositories"] == ["octo/*", "acme/app"]
    assert start["api_token"] == "set"
    assert SECRET not in text and "start-line-api-token" not in text
    # A good secret draws no warning.
    assert not [line for line in lines if "WEBHOOK_SECRET" in line["message"]]


@pytest.mark.parametrize("secret", ["change-me", "short-secret"])
def test_a_placeholder_or_short_secret_is_warned_about_at_start(secret: str) -> None:
    with start_observer(secret=secret) as running:
        lines = log_lines(running, has("observer starting"))
        text = running.logs()
    warned = [line for line in lines if "WEBHOOK_SECRET" in line["message"]]
    assert len(warned) == 1 and warned[0]["level"] == "warning"
    assert secret not in text


def test_at_log_level_warning_refusals_show_and_accepted_deliveries_do_not() -> None:
    with start_observer({"LOG_LEVEL": "warning", "API_TOKEN": "tok"}, secret=SECRET) as running:
        body = b'{"zen": "Design for failure."}'
        ok = {
            "X-GitHub-Event": "ping",
            "X-GitHub-Delivery": "accepted-one",
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign(SECRET, body),
        }
        assert httpx.post(f"{running.url}/webhook", content=body, headers=ok).status_code == 200
        forged = {**ok, "X-GitHub-Event": "deployment_status", "X-GitHub-Delivery": "forged"}
        forged["X-Hub-Signature-256"] = sign("wrong", body)
        assert httpx.post(f"{running.url}/webhook", content=body, headers=forged).status_code == 401
        long_name = {**forged, "X-GitHub-Event": "x" * 5000, "X-GitHub-Delivery": "long"}
        assert (
            httpx.post(f"{running.url}/webhook", content=body, headers=long_name).status_code == 401
        )
        bad_token = {"Authorization": "Bearer nope"}
        response = httpx.post(f"{running.url}/api/event", json={}, headers=bad_token)
        assert response.status_code == 401
        written = log_lines(running, has("api event", status=401))
        lines = [line for line in written if line["logger"] == "observer"]
    deliveries = {
        line.get("delivery"): line for line in lines if line["message"] == "webhook delivery"
    }
    assert "accepted-one" not in deliveries
    assert deliveries["forged"]["level"] == "warning"
    assert deliveries["forged"]["status"] == 401
    # The claimed name is logged as a string, while the metric's label stays 'other'.
    assert deliveries["forged"]["claimed_event"] == "deployment_status"
    assert deliveries["forged"]["event"] == "other"
    assert deliveries["long"]["claimed_event"] == "x" * 64
    api = [line for line in lines if line["message"] == "api event"]
    assert [(line["level"], line["status"]) for line in api] == [("warning", 401)]


def test_api_event_log_lines_carry_type_repository_and_id() -> None:
    token = {"Authorization": "Bearer tok"}
    with start_observer({"API_TOKEN": "tok"}, secret=SECRET) as running:
        one = {
            "type": "deployment",
            "repository": "Octo/App",
            "environment": "production",
            "status": "success",
            "timestamp": "2026-01-05T10:00:00Z",
            "id": "deploy-4711",
        }
        assert httpx.post(f"{running.url}/api/event", json=one, headers=token).status_code == 200
        two = [
            {**one, "id": "deploy-4712"},
            {
                "type": "incident",
                "repository": "octo/app",
                "action": "opened",
                "id": "INC-7",
                "opened_at": "2026-01-05T10:00:00Z",
            },
        ]
        assert httpx.post(f"{running.url}/api/event", json=two, headers=token).status_code == 200
        written = log_lines(running, has("api event", events=2))
        lines = [line for line in written if line["message"] == "api event"]
    assert (lines[0]["type"], lines[0]["repository"], lines[0]["id"]) == (
        "deployment",
        "octo/app",
        "deploy-4711",
    )
    assert lines[0]["level"] == "info"
    assert lines[1]["items"] == [
        {"type": "deployment", "repository": "octo/app", "id": "deploy-4712"},
        {"type": "incident", "repository": "octo/app", "id": "INC-7"},
    ]


def test_enrichment_failures_are_warnings_and_the_rate_limit_is_absent_until_reported() -> None:
    # The repository is there, but not the deployed commit: every other request gets 404.
    # (A repository GitHub does not have is no failure: see tests/test_not_on_github.py.)
    fake = FakeGitHub()
    fake.responses[f"/repos/{REPO}"] = {"full_name": REPO}
    fake.responses[f"/repos/{REPO}/deployments"] = []
    env = {"GITHUB_TOKEN": "ghp_cli-test", "LOG_LEVEL": "warning"}
    with serve(fake), start_observer({**env, "GITHUB_API_URL": fake.url}, secret=SECRET) as running:
        before = Exposition(httpx.get(f"{running.url}/metrics").text)
        assert "observer_github_rate_limit_remaining" not in before.text
        body = json.dumps(deployment_status(1, "c1", 10)).encode()
        headers = {
            "X-GitHub-Event": "deployment_status",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign(SECRET, body),
        }
        assert httpx.post(f"{running.url}/webhook", content=body, headers=headers).is_success
        deadline = time.monotonic() + 20
        failed: list[dict[str, Any]] = []
        while not failed and time.monotonic() < deadline:
            failed = [line for line in log_lines(running) if line["message"] == "enrichment failed"]
            time.sleep(0.05)
    assert failed and failed[0]["level"] == "warning"


def console_line(line: str) -> dict[str, Any]:
    """A ``LOG_FORMAT=console`` line read back into the JSON line's fields.

    ``TIME LEVEL LOGGER: MESSAGE  name=value …``: a value is a plain word or JSON.
    """
    parts = re.fullmatch(r"(\S+) (\S+) +(\S+?): (.*?)(?:  (.*))?", line)
    assert parts is not None, line
    stamp, level, logger, message, rest = parts.groups(default="")
    entry: dict[str, Any] = {"time": stamp, "level": level, "logger": logger, "message": message}
    decoder = json.JSONDecoder()
    position = 0
    while position < len(rest):
        name, _, _ = rest[position:].partition("=")
        position += len(name) + 1
        if rest[position] in '"[{':
            value, position = decoder.raw_decode(rest, position)
        else:
            word = rest[position:].split(" ", 1)[0]
            position += len(word)
            try:
                value = json.loads(word)
            except ValueError:
                value = word
        entry[name] = value
        position += 1  # the space between fields
    return entry


def forge_and_wait(running: ObserverProcess) -> None:
    body = b'{"zen": "Keep it logically awesome."}'
    headers = {
        "X-GitHub-Event": "deployment_status",
        "X-GitHub-Delivery": "forged delivery",
        "Content-Type": "application/json",
        "X-Hub-Signature-256": sign("wrong", body),
    }
    assert httpx.post(f"{running.url}/webhook", content=body, headers=headers).status_code == 401


def test_log_format_console_is_readable_with_the_json_lines_fields() -> None:
    env = {"REPOSITORIES": "octo/*,acme/app"}
    # Not at a terminal (a file here), the default is JSON.
    with start_observer(env, secret=SECRET) as running:
        forge_and_wait(running)
        json_lines = log_lines(running, has("webhook delivery", status=401))
    with start_observer({**env, "LOG_FORMAT": "console"}, secret=SECRET) as running:
        forge_and_wait(running)
        deadline = time.monotonic() + 10
        while "webhook delivery" not in running.logs() and time.monotonic() < deadline:
            time.sleep(0.02)
        text = running.logs()
    lines = [line for line in text.splitlines() if line.startswith("20")]
    start = next(line for line in lines if "observer starting" in line)
    refused = next(line for line in lines if "webhook delivery" in line)
    # Readable: no braces, the message after the logger, each field as name=value.
    assert " info    observer: observer starting  version=" in start
    assert " warning observer: webhook delivery  " in refused
    assert 'delivery="forged delivery"' in refused and "status=401" in refused
    for message, console in (("observer starting", start), ("webhook delivery", refused)):
        as_json = next(line for line in json_lines if line["message"] == message)
        read = console_line(console)
        assert read["time"].startswith(as_json["time"][:4]) and read["time"].endswith("+00:00")
        skip = {"time", "listen", "duration_ms"}
        assert {k: v for k, v in read.items() if k not in skip} == {
            k: v for k, v in as_json.items() if k not in skip
        }
        assert read.keys() == as_json.keys()


def test_log_format_defaults_to_console_at_a_terminal() -> None:
    main, terminal = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WEBHOOK_", "GITHUB_", "LOG_"))}
    port = free_port()
    env.update({"WEBHOOK_SECRET": SECRET, "HOST": "127.0.0.1", "PORT": str(port)})
    process = subprocess.Popen(observer_command(), env=env, stdout=terminal, stderr=terminal)
    os.close(terminal)
    output = b""
    try:
        deadline = time.monotonic() + 20
        while b"observer starting" not in output and time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 0.5)
            if ready:
                output += os.read(main, 65536)
    finally:
        stop(process)
        os.close(main)
    line = next(line for line in output.decode().splitlines() if "observer starting" in line)
    assert not line.startswith("{")
    assert console_line(line)["listen"] == f"127.0.0.1:{port}"


def test_an_invalid_log_format_is_one_line_naming_it() -> None:
    result = run([], {"WEBHOOK_SECRET": SECRET, "PORT": "1", "LOG_FORMAT": "pretty"})
    assert result.returncode == 2
    assert result.stderr == "observer: invalid configuration: LOG_FORMAT must be json or console\n"
    assert result.stdout == ""


def test_the_help_examples_work_as_written_one_after_the_other() -> None:
    help_text = run(["--help"], {}).stdout
    examples = help_text.split("examples:\n", 1)[1]
    commands = [line.strip() for line in examples.splitlines() if line.strip()]
    assert len(commands) == 3
    port = free_port()
    # As written, but on a free port and without the demo's pause for Prometheus.
    script = "\n".join(commands).replace("8080", str(port))
    script = script.replace("observer demo ", "observer demo --pause 0 ")
    # The demo's exit status, once the observer it started in the background has stopped.
    script = f"{script}\nstatus=$?\nkill -TERM $!\nwait $!\nexit $status\n"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WEBHOOK_", "GITHUB_"))}
    env["PATH"] = f"{Path(observer_command()[0]).parent}:{env['PATH']}"
    env.update({"HOST": "127.0.0.1", "PORT": str(port), "SETTLE_SECONDS": "0"})
    done = subprocess.run(
        ["bash", "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    sent = next(line for line in done.stdout.splitlines() if line.startswith("sent "))
    statuses = re.findall(r"(\d+) x (\d{3})", sent.rsplit(": ", 1)[1])
    assert sum(int(count) for count, _ in statuses) == 682, sent
    assert all(status.startswith("2") for _, status in statuses), sent
    assert "observer demo:" not in done.stderr
