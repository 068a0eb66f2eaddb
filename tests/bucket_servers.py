"""Servers of the three bucket protocols on free loopback ports, for STATE_URL=s3://, gs://, az://.

- S3: moto's server (``moto[s3]`` with flask), which implements S3's conditional writes (If-Match,
  If-None-Match) as AWS does.
- Azure Blob Storage: Azurite, Microsoft's emulator, from npm (``azurite-blob``); .ci/run installs
  it into .cache/azurite. Without it, the Azure tests skip, except in CI (CI=true), where they fail.
- Cloud Storage: no emulator installable here serves the XML API that obstore's GCS client speaks
  with its generation preconditions (gcp-storage-emulator has no preconditions on it and refuses
  obstore's encoded bucket names; the fake-gcs-server wheel answers its uploads with 400). So
  ``FakeGcs`` below is a small server of that API: GET and PUT of objects, a generation per write,
  ``x-goog-if-generation-match`` (0: only if absent) answered with 412 as Cloud Storage does. The
  client, its requests and the store's conditional logic are the real ones.

Each ``Bucket`` gives the environment a process needs to reach its server (what a deployment sets
through its platform: an endpoint, the emulator's well-known account, a credentials file), and
never a real cloud's address: nothing here can reach outside the loopback.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest

from tests.processes import free_port

BUCKET = "observer-state"
ROOT = Path(__file__).resolve().parent.parent
# Where .ci/run installs Azurite (npm install --prefix .cache/azurite azurite).
AZURITE_INSTALL = ROOT / ".cache" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
# Azurite's well-known development account, the same in every installation (not a secret).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
KINDS = ("s3", "gs", "az")
# What a process must not inherit from the machine: another cloud's settings or credentials.
CLOUD_PREFIXES = ("AWS_", "GOOGLE_", "AZURE_", "AZURITE_")


@dataclass
class Bucket:
    kind: str
    env: dict[str, str] = field(default_factory=dict)

    def url(self, key: str) -> str:
        return f"{self.kind}://{BUCKET}/{key}"


def wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


# --- S3 ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def running_s3() -> Iterator[Bucket]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        # moto takes unsigned requests: create the bucket with a bare PUT.
        request = urllib.request.Request(f"http://127.0.0.1:{port}/{BUCKET}", method="PUT")
        urllib.request.urlopen(request, timeout=10).close()  # noqa: S310
        yield Bucket(
            "s3",
            {
                "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
                "AWS_ALLOW_HTTP": "true",
                "AWS_ACCESS_KEY_ID": "test",
                "AWS_SECRET_ACCESS_KEY": "test",
                "AWS_REGION": "us-east-1",
            },
        )
    finally:
        server.stop()


# --- Azure Blob Storage -----------------------------------------------------------------------


def azurite_binary() -> str | None:
    if AZURITE_INSTALL.exists():
        return str(AZURITE_INSTALL)
    return shutil.which("azurite-blob")


def require_azurite() -> str:
    binary = azurite_binary()
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("azurite-blob is missing: .ci/run installs it with npm")
        pytest.skip("azurite-blob is not installed (npm install --prefix .cache/azurite azurite)")
    return binary


def _create_container(port: int, name: str) -> None:
    """Create a container, signed with the emulator's well-known key (Shared Key scheme)."""
    date, version = formatdate(usegmt=True), "2021-08-06"
    to_sign = (
        "PUT\n" + "\n" * 11 + f"x-ms-date:{date}\nx-ms-version:{version}\n"
        f"/{AZURITE_ACCOUNT}/{AZURITE_ACCOUNT}/{name}\nrestype:container"
    )
    key = base64.b64decode(AZURITE_KEY)
    signature = base64.b64encode(hmac.new(key, to_sign.encode(), hashlib.sha256).digest())
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}/{name}?restype=container",
        method="PUT",
        headers={
            "x-ms-date": date,
            "x-ms-version": version,
            "Content-Length": "0",
            "Authorization": f"SharedKey {AZURITE_ACCOUNT}:{signature.decode()}",
        },
    )
    urllib.request.urlopen(request, timeout=10).close()  # noqa: S310


@contextlib.contextmanager
def running_azurite() -> Iterator[Bucket]:
    binary = require_azurite()
    port = free_port()
    with tempfile.TemporaryDirectory() as workspace:
        log = (Path(workspace) / "azurite.log").open("wb")
        process = subprocess.Popen(
            [
                binary,
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                str(port),
                "--inMemoryPersistence",
                # Azurite reports usage to Microsoft unless told not to; nothing leaves here.
                "--disableTelemetry",
                "--silent",
            ],
            cwd=workspace,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        try:
            wait_for_port(port, process)
            _create_container(port, BUCKET)
            yield Bucket(
                "az",
                {
                    "AZURE_STORAGE_USE_EMULATOR": "true",
                    "AZURITE_BLOB_STORAGE_URL": f"http://127.0.0.1:{port}",
                },
            )
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# --- Cloud Storage ----------------------------------------------------------------------------


class FakeGcs(ThreadingHTTPServer):
    """Cloud Storage's XML API for objects, as far as a snapshot uses it (see the module)."""

    # While set, every write is answered 503, as a server in trouble would.
    failing = False

    def __init__(self, port: int) -> None:
        super().__init__(("127.0.0.1", port), _GcsHandler)
        self.lock = threading.Lock()
        self.objects: dict[tuple[str, str], tuple[int, bytes]] = {}
        self.generations = 1_700_000_000_000_000
        self.buckets = {BUCKET}


class _GcsHandler(BaseHTTPRequestHandler):
    server: FakeGcs

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _target(self) -> tuple[str, str] | None:
        path = self.path.split("?", 1)[0].lstrip("/")
        bucket, _, name = path.partition("/")
        bucket, name = unquote(bucket), unquote(name)
        if bucket not in self.server.buckets or not name:
            return None
        return bucket, name

    def _answer(
        self, status: int, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    @staticmethod
    def _object_headers(generation: int, data: bytes) -> dict[str, str]:
        return {
            "ETag": '"' + hashlib.md5(data).hexdigest() + '"',  # noqa: S324 - as GCS does
            "x-goog-generation": str(generation),
            "Last-Modified": formatdate(usegmt=True),
            "Content-Type": "application/octet-stream",
        }

    def do_GET(self) -> None:
        target = self._target()
        if target is None:
            self._answer(404, b"<Error><Code>NoSuchBucket</Code></Error>")
            return
        found = self.server.objects.get(target)
        if found is None:
            self._answer(404, b"<Error><Code>NoSuchKey</Code></Error>")
            return
        generation, data = found
        self._answer(200, data, self._object_headers(generation, data))

    do_HEAD = do_GET

    def do_PUT(self) -> None:
        target = self._target()
        data = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if target is None:
            self._answer(404, b"<Error><Code>NoSuchBucket</Code></Error>")
            return
        if FakeGcs.failing:
            self._answer(503, b"<Error><Code>ServiceUnavailable</Code></Error>")
            return
        condition = self.headers.get("x-goog-if-generation-match")
        with self.server.lock:
            current = self.server.objects.get(target)
            if condition is not None and int(condition) != (current[0] if current else 0):
                self._answer(412, b"<Error><Code>PreconditionFailed</Code></Error>")
                return
            self.server.generations += 1
            generation = self.server.generations
            self.server.objects[target] = (generation, data)
        self._answer(200, b"", self._object_headers(generation, data))


@contextlib.contextmanager
def running_gcs() -> Iterator[Bucket]:
    port = free_port()
    server = FakeGcs(port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    with tempfile.TemporaryDirectory() as directory:
        # A service account without OAuth, pointed at the server: obstore's documented way to
        # reach an emulator, with no request to Google's token or metadata servers.
        account = Path(directory) / "service-account.json"
        account.write_text(
            json.dumps(
                {
                    "gcs_base_url": f"http://127.0.0.1:{port}",
                    "disable_oauth": True,
                    "client_email": "",
                    "private_key": "",
                    "private_key_id": "",
                }
            )
        )
        try:
            yield Bucket(
                "gs", {"GOOGLE_SERVICE_ACCOUNT": str(account), "GOOGLE_ALLOW_HTTP": "true"}
            )
        finally:
            server.shutdown()
            server.server_close()


@contextlib.contextmanager
def running_bucket(kind: str) -> Iterator[Bucket]:
    servers = {"s3": running_s3, "gs": running_gcs, "az": running_azurite}
    with servers[kind]() as bucket:
        yield bucket


def object_key(name: str) -> str:
    """A key of its own for each test, so tests sharing one server never see each other's."""
    return f"observer/{quote(name, safe='')}-{os.urandom(4).hex()}/state.json"
