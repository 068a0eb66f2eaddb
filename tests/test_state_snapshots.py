"""The periodic file snapshot of a running service: it goes on under load and after a failure."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from observer.state.base import KINDS
from observer.state.file import FileStore
from tests.conftest import Service
from tests.story import REPO, push, sha

# Commits a busy replica remembers: enough that taking a snapshot is not over at once.
REMEMBERED = 20_000
COMMITS_PER_PUSH = 100
# Pipelines and hooks delivering at once, and the snapshots taken meanwhile.
SENDERS = 3
SNAPSHOTS = 8
INTERVAL = 0.01
DEADLINE = 20.0
NOT_WRITTEN = "state snapshot not written"


def preload(path: Path, commits: int) -> None:
    async def fill() -> None:
        store = FileStore(KINDS, path)
        await store.put_many("commit", {f"{REPO} {sha(f'old-{n}')}": 1.0 for n in range(commits)})
        store.save()

    asyncio.run(fill())


def remembered(path: Path) -> set[str]:
    """The deliveries a snapshot remembers, once it has loaded as a whole, readable snapshot."""
    FileStore(KINDS, path).load_snapshot()
    entries = json.loads(path.read_bytes())["families"]["delivery"]
    return {key for key, _, _ in entries}


def version(path: Path) -> tuple[int, int]:
    """Each save renames a new file into place: its inode and time tell one snapshot."""
    status = os.stat(path)
    return status.st_ino, status.st_mtime_ns


def deliver_push(service: Service) -> str:
    """A push of new commits, each one a key the store writes."""
    delivery = str(uuid.uuid4())
    commits = [(f"{delivery}-{n}", 1.0) for n in range(COMMITS_PER_PUSH)]
    response = service.deliver("push", push(commits), delivery=delivery)
    assert response.status_code == 200, response.text
    return delivery


def state_errors(service: Service) -> float:
    return service.metrics().get("observer_state_errors_total")


def test_snapshots_go_on_being_written_while_deliveries_change_the_state(
    tmp_path: Path, start: Callable[..., Service]
) -> None:
    path = tmp_path / "state.json"
    preload(path, REMEMBERED)
    service = start(state_url=f"file://{path}", state_save_interval=INTERVAL)
    delivered: list[str] = []
    stop = threading.Event()

    def send() -> None:
        while not stop.is_set():
            delivered.append(deliver_push(service))

    written = {version(path)}
    deadline = time.monotonic() + DEADLINE
    with ThreadPoolExecutor(SENDERS) as senders:
        sending = [senders.submit(send) for _ in range(SENDERS)]
        try:
            while len(written) <= SNAPSHOTS:
                assert time.monotonic() < deadline, f"snapshots stopped after {len(written) - 1}"
                seen = version(path)
                if seen not in written:
                    written.add(seen)
                    remembered(path)  # every one of them loads
                time.sleep(INTERVAL)
        finally:
            stop.set()
        for sent in sending:
            sent.result()
    # Once the load is over, a snapshot has every delivery: the saving outlived all of it.
    while not remembered(path).issuperset(delivered):
        assert time.monotonic() < deadline, "the last deliveries never reached a snapshot"
        time.sleep(INTERVAL)
    assert state_errors(service) == 0


def test_a_failed_snapshot_is_counted_logged_and_written_at_the_next_interval(
    tmp_path: Path, start: Callable[..., Service], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="observer")
    path = tmp_path / "state.json"
    service = start(state_url=f"file://{path}", state_save_interval=INTERVAL)
    deadline = time.monotonic() + DEADLINE
    while not path.is_file():
        assert time.monotonic() < deadline, "no first snapshot"
        time.sleep(INTERVAL)
    # A directory where the snapshot goes: the rename onto it fails, as on a broken volume.
    while True:
        path.unlink(missing_ok=True)
        try:
            path.mkdir()
            break
        except FileExistsError:
            continue  # a save landed in between
    while state_errors(service) < 1:
        assert time.monotonic() < deadline, "a failed snapshot was not counted"
        time.sleep(INTERVAL)
    during = deliver_push(service)
    path.rmdir()
    while not path.is_file() or during not in remembered(path):
        assert time.monotonic() < deadline, "no snapshot after the failure"
        time.sleep(INTERVAL)
    failures = [r for r in caplog.records if r.getMessage() == NOT_WRITTEN]
    assert failures
    assert state_errors(service) == len(failures)
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in failures)
