"""End to end with the real products: Prometheus fires an alert, Alertmanager notifies observer.

A metric this test serves makes a Prometheus rule fire, then stop firing; Alertmanager (Debian's
``prometheus-alertmanager``) sends its webhook notifications, with the bearer token from
``http_config.authorization``, through a relay that keeps what observer was sent. One incident
opens, however often Alertmanager repeats the firing notification, and one recovery is observed:
``endsAt`` minus ``startsAt`` as Alertmanager reported them.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.exposition import Exposition
from tests.processes import free_port, start_observer, stop
from tests.promql import require_binary

TOKEN = "alertmanager-e2e-token"
REPOSITORY = "octo-org/octo-app"
# Short enough that a notification and its repeats come within seconds.
TIMING = {"group_wait": "1s", "group_interval": "1s", "repeat_interval": "2s"}


class Relay:
    """A tiny HTTP server: ``/metrics`` is the target Prometheus scrapes (``e2e_failing``, set
    by the test), and ``/alertmanager`` passes Alertmanager's notifications on to observer,
    keeping each body and observer's answer."""

    def __init__(self) -> None:
        self.failing = 0
        self.upstream = ""
        self.received: list[tuple[dict[str, Any], int]] = []
        self._lock = threading.Lock()
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = f"# TYPE e2e_failing gauge\ne2e_failing {relay.failing}\n".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {
                    name: value
                    for name, value in self.headers.items()
                    if name.lower() in ("authorization", "content-type", "user-agent")
                }
                answer = httpx.post(relay.upstream, content=body, headers=headers, timeout=10)
                with relay._lock:
                    relay.received.append((json.loads(body), answer.status_code))
                self.send_response(answer.status_code)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]

    def notifications(self, status: str) -> list[dict[str, Any]]:
        with self._lock:
            return [body for body, answer in self.received if body["status"] == status]

    def answers(self) -> set[int]:
        with self._lock:
            return {answer for _, answer in self.received}


@contextlib.contextmanager
def relay() -> Iterator[Relay]:
    server = Relay()
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()


@contextlib.contextmanager
def process(command: list[str], log_path: Path, ready: str) -> Iterator[None]:
    with log_path.open("wb") as log:
        running = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            eventually(lambda: _ready(ready, running, log_path), f"{command[0]} ready", timeout=30)
            yield
        finally:
            stop(running)


def _ready(url: str, running: subprocess.Popen[bytes], log_path: Path) -> bool:
    if running.poll() is not None:
        raise RuntimeError(f"exited with {running.returncode}:\n{log_path.read_text()}")
    with contextlib.suppress(httpx.TransportError):
        return httpx.get(url, timeout=1).status_code == 200
    return False


def eventually(check: Callable[[], bool], what: str, timeout: float = 40) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.2)


def moment(text: str) -> datetime:
    """An RFC 3339 time as observer reads it: Alertmanager writes nanoseconds, Python keeps
    microseconds."""
    return datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", text.replace("Z", "+00:00")))


def test_an_alert_that_fires_then_resolves_is_one_incident_and_one_recovery(
    tmp_path: Path,
) -> None:
    prometheus = require_binary("prometheus")
    alertmanager = require_binary("prometheus-alertmanager", package="prometheus-alertmanager")
    alertmanager_port, prometheus_port = free_port(), free_port()
    env = {"API_TOKEN": TOKEN, "INCIDENT_ALERTS": 'severity="critical"'}
    with relay() as target, start_observer(env) as observer:
        target.upstream = f"{observer.url}/alertmanager"
        (tmp_path / "alertmanager.yml").write_text(
            yaml.safe_dump(
                {
                    "route": {"receiver": "observer", "group_by": ["alertname"], **TIMING},
                    "receivers": [
                        {
                            "name": "observer",
                            "webhook_configs": [
                                {
                                    "url": f"http://127.0.0.1:{target.port}/alertmanager",
                                    "send_resolved": True,
                                    "http_config": {"authorization": {"credentials": TOKEN}},
                                }
                            ],
                        }
                    ],
                }
            )
        )
        (tmp_path / "rules.yml").write_text(
            yaml.safe_dump(
                {
                    "groups": [
                        {
                            "name": "e2e",
                            "rules": [
                                {
                                    "alert": "CheckoutFailing",
                                    "expr": "e2e_failing == 1",
                                    "labels": {"severity": "critical", "repository": REPOSITORY},
                                }
                            ],
                        }
                    ]
                }
            )
        )
        (tmp_path / "prometheus.yml").write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(tmp_path / "rules.yml")],
                    "alerting": {
                        "alertmanagers": [
                            {"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}
                        ]
                    },
                    "scrape_configs": [
                        {
                            "job_name": "checkout",
                            "static_configs": [{"targets": [f"127.0.0.1:{target.port}"]}],
                        }
                    ],
                }
            )
        )
        alertmanager_command = [
            alertmanager,
            f"--config.file={tmp_path / 'alertmanager.yml'}",
            f"--storage.path={tmp_path / 'alertmanager'}",
            f"--web.listen-address=127.0.0.1:{alertmanager_port}",
            # One Alertmanager, not a cluster: no gossip port to open.
            "--cluster.listen-address=",
        ]
        prometheus_command = [
            prometheus,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'prometheus'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}",
            # Firing alerts sent to Alertmanager every second, not every minute.
            "--rules.alert.resend-delay=1s",
        ]
        with (
            process(
                alertmanager_command,
                tmp_path / "alertmanager.log",
                f"http://127.0.0.1:{alertmanager_port}/-/ready",
            ),
            process(
                prometheus_command,
                tmp_path / "prometheus.log",
                f"http://127.0.0.1:{prometheus_port}/-/ready",
            ),
        ):
            target.failing = 1
            # The first notification and at least one repeat of it.
            eventually(lambda: len(target.notifications("firing")) >= 2, "a repeated firing")
            target.failing = 0
            eventually(lambda: len(target.notifications("resolved")) >= 1, "a resolution")

        metrics = Exposition(httpx.get(f"{observer.url}/metrics", timeout=10).text)

    assert target.answers() == {200}
    resolved = target.notifications("resolved")[0]["alerts"]
    assert len(resolved) == 1
    alert = resolved[0]
    assert alert["status"] == "resolved"
    firing = [a for body in target.notifications("firing") for a in body["alerts"]]
    assert {a["fingerprint"] for a in firing} == {alert["fingerprint"]}
    assert {a["startsAt"] for a in firing} == {alert["startsAt"]}
    recovery = (moment(alert["endsAt"]) - moment(alert["startsAt"])).total_seconds()

    assert metrics.get("dora_incidents_opened_total", repository=REPOSITORY) == 1
    assert metrics.get("dora_incident_recovery_seconds_count", repository=REPOSITORY) == 1
    assert metrics.get("dora_incident_recovery_seconds_sum", repository=REPOSITORY) == recovery
    deliveries = "observer_webhook_deliveries_total"
    repeats = len(target.notifications("firing"))
    assert metrics.get(deliveries, source="alertmanager", event="firing", result="accepted") == 1
    assert (
        metrics.get(deliveries, source="alertmanager", event="firing", result="duplicate")
        == repeats - 1
    )
