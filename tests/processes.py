"""Real processes on loopback: an ``observer`` server started the way users start it."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before it was ready")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} not ready after {timeout}s")


def stop(process: subprocess.Popen[bytes], url: str | None = None) -> None:
    """SIGTERM, and SIGKILL if that has not ended it within 15 seconds.

    With the observer's ``url``, scrape it once after the signal, as Prometheus would, so that a
    test that counted without scraping does not sit out the wait for a final scrape.
    """
    process.terminate()
    if url is not None:
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(f"{url}/metrics", timeout=5.0)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def observer_command() -> list[str]:
    """The console script when it is installed, else ``python -m observer``."""
    script = shutil.which("observer", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "observer"]


@dataclass
class ObserverProcess:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_lines(
        self,
        until: Callable[[list[dict[str, Any]]], bool] = lambda lines: True,
        timeout: float = 10.0,
    ) -> list[dict[str, Any]]:
        """The JSON lines written so far, once ``until`` holds of them (or the timeout passes).

        The service writes its lines from a thread, shortly after answering: a test that reads
        the line of a request it just sent waits for it.
        """
        deadline = time.monotonic() + timeout
        while True:
            text = self.logs()
            # A line still being written is not a line yet.
            lines = [
                json.loads(line)
                for line in text.splitlines(keepends=True)
                if line.endswith("\n") and line.strip()
            ]
            if until(lines) or time.monotonic() > deadline:
                return lines
            time.sleep(0.02)


@contextlib.contextmanager
def start_observer(
    env: dict[str, str] | None = None,
    *,
    secret: str = "e2e-secret",
    command: list[str] | None = None,
    port: int | None = None,
    output: int | None = None,
) -> Iterator[ObserverProcess]:
    """Run ``observer`` on a free loopback port (or ``port``, known beforehand) until the block
    ends, then stop it with SIGTERM.

    Its output goes to a file that ``logs()`` reads, or to ``output`` (``subprocess.PIPE``, say).
    """
    port = port if port is not None else free_port()
    full_env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("GITHUB_", "API_TOKEN", "WEBHOOK_", "REPOSITORIES"))
    }
    full_env.update({"WEBHOOK_SECRET": secret, "HOST": "127.0.0.1", "PORT": str(port)})
    # Lead time without the settle wait, unless a test is about it.
    full_env.setdefault("SETTLE_SECONDS", "0")
    full_env.update(env or {})
    with tempfile.TemporaryDirectory() as tmp:
        log_path = Path(tmp) / "observer.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command or observer_command(),
                env=full_env,
                stdout=log if output is None else output,
                stderr=subprocess.STDOUT,
            )
            running = ObserverProcess(process, port, log_path)
            try:
                wait_until_ready(f"{running.url}/healthz", process)
                yield running
            finally:
                stop(process, running.url)
