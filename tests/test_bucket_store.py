"""STATE_URL=s3://, gs://, az://: the snapshot in a bucket, against a server of each protocol.

The Store contract of tests/test_state_store.py runs here on each bucket kind; then what is the
bucket's own: a snapshot that survives a restart with the exact numbers, one writer (a second
replica's save is refused and it reports not ready), and an object that cannot be read stops the
start with one line naming it. The servers are in tests/bucket_servers.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping

import obstore
import pytest
from pydantic import ValidationError
from starlette.testclient import TestClient

from observer.app import create_app
from observer.settings import describe_error
from observer.state import Kind, StoreUnavailable
from observer.state.bucket import BucketStore
from observer.state.snapshot import SnapshotConflict, SnapshotError
from tests import test_state_store as contract
from tests.bucket_servers import (
    CLOUD_PREFIXES,
    KINDS,
    Bucket,
    FakeGcs,
    object_key,
    running_bucket,
)
from tests.conftest import SECRET, make_settings
from tests.exposition import Exposition
from tests.processes import observer_command
from tests.signing import sign
from tests.test_exact_numbers import (
    HISTORY_TRUTH,
    LEAD_TIMES_BEFORE,
    Fleet,
    assert_truth,
    history,
    lead_count_reaches,
    node,
    observer_env,
    redeliver,
    send_all,
    wait_for,
)
from tests.test_state_store import TABLE, Backend

# The Store contract: every test of tests/test_state_store.py that takes a ``backend`` runs here
# too, with this module's ``backend``, on each bucket kind.
for _name, _test in vars(contract).items():
    if _name.startswith("test_") and "backend" in inspect.signature(_test).parameters:
        globals()[_name] = _test

INTERVAL = 0.01
DEADLINE = 30.0


@pytest.fixture(scope="module", params=KINDS)
def bucket(request: pytest.FixtureRequest) -> Iterator[Bucket]:
    """One server per kind for the module, and the environment that points obstore at it."""
    with pytest.MonkeyPatch.context() as patch, running_bucket(request.param) as running:
        for name in [name for name in os.environ if name.startswith(CLOUD_PREFIXES)]:
            patch.delenv(name)
        for name, value in running.env.items():
            patch.setenv(name, value)
        yield running


def opened(
    table: Mapping[str, Kind], url: str, clock: Callable[[], float] = time.time
) -> BucketStore:
    store = BucketStore(table, url, clock=clock)
    store.load_snapshot()
    return store


@pytest.fixture
def backend(bucket: Bucket, request: pytest.FixtureRequest) -> Backend:
    """The contract's backend: a bucket store that has loaded its (new) object, as at start."""
    url = bucket.url(object_key(request.node.name))
    backend = Backend(bucket.kind, lambda table: opened(table, url, clock=backend.clock))
    return backend


def raw(url: str) -> bytes:
    """The object's bytes, read with a client of its own, as an operator's tool would."""
    scheme, _, rest = url.partition("://")
    name, _, key = rest.partition("/")
    return bytes(obstore.get(obstore.store.from_url(f"{scheme}://{name}"), key).bytes())


def put_raw(url: str, data: bytes) -> None:
    scheme, _, rest = url.partition("://")
    name, _, key = rest.partition("/")
    obstore.put(obstore.store.from_url(f"{scheme}://{name}"), key, data)


def remembered(url: str) -> set[str]:
    return {key for key, _, _ in opened(TABLE, url).dump()["families"]["delivery"]}


# --- The snapshot --------------------------------------------------------------------------


def test_a_bucket_snapshot_restores_the_same_state(bucket: Bucket) -> None:
    url = bucket.url(object_key("restores"))

    async def write() -> None:
        store = opened(TABLE, url)  # no object yet: a first start
        await store.add("delivery", "d-1")
        await store.put_many("pull", {"octo/app s1": {"number": 1, "merged_at": 2.5}})
        await store.append_many("carried", {"octo/app c1": "p1"}, limit=8)
        await store.append_many("carried", {"octo/app c1": "p2"}, limit=8)
        store.save()
        await store.add("delivery", "d-2")
        store.save()  # the second save is conditional on the first's version

    async def read() -> None:
        store = opened(TABLE, url)
        assert await store.add("delivery", "d-1") is False
        assert await store.add("delivery", "d-2") is False
        assert await store.get_many("pull", ["octo/app s1"]) == {
            "octo/app s1": {"number": 1, "merged_at": 2.5}
        }
        assert await store.lists("carried", ["octo/app c1"]) == {"octo/app c1": ["p1", "p2"]}

    asyncio.run(write())
    asyncio.run(read())


@pytest.mark.parametrize("start", ["both on an empty bucket", "both after a save"])
def test_a_second_writer_is_refused_and_the_first_state_is_kept(bucket: Bucket, start: str) -> None:
    url = bucket.url(object_key("two-writers"))

    async def scenario() -> None:
        if start == "both after a save":
            earlier = opened(TABLE, url)
            await earlier.add("delivery", "earlier")
            earlier.save()
        first, second = opened(TABLE, url), opened(TABLE, url)
        await first.add("delivery", "first")
        first.save()
        await second.add("delivery", "second")
        with pytest.raises(SnapshotConflict) as refused:
            second.save()
        assert url in str(refused.value)
        # Not ready from then on, and it never tries again: the first's state stays.
        with pytest.raises(StoreUnavailable):
            await second.ping()
        second.save()
        await first.ping()
        await first.add("delivery", "first again")
        first.save()

    asyncio.run(scenario())
    kept = remembered(url)
    assert {"first", "first again"} <= kept
    assert "second" not in kept


def test_an_idle_process_writes_nothing_and_takes_nothing_from_the_one_serving(
    bucket: Bucket,
) -> None:
    """A rollout: the old instance, without traffic, saves (and stops) after the new one loaded."""
    url = bucket.url(object_key("rollout"))

    async def scenario() -> None:
        old = opened(TABLE, url)
        await old.add("delivery", "before the rollout")
        old.save()
        new = opened(TABLE, url)
        old.save()  # its interval comes first: nothing changed, nothing written
        await new.add("delivery", "after the rollout")
        new.save()
        old.save()  # its last save, at shutdown
        await old.ping()
        await new.add("delivery", "later")
        new.save()
        await new.ping()

    asyncio.run(scenario())
    assert {"before the rollout", "after the rollout", "later"} <= remembered(url)


def test_a_refusal_of_its_own_bytes_is_no_conflict(bucket: Bucket) -> None:
    """A write that landed but whose answer was lost, retried: the object holds what this process
    meant to write, so nobody else wrote and it goes on."""
    url = bucket.url(object_key("own-bytes"))

    async def scenario() -> None:
        store = opened(TABLE, url)
        store.save()
        await store.add("delivery", "landed")
        put_raw(url, store.snapshot())  # the first attempt, which landed unseen
        store.save()
        await store.ping()
        await store.add("delivery", "next")
        store.save()

    asyncio.run(scenario())
    assert {"landed", "next"} <= remembered(url)


def test_a_save_that_fails_is_retried_and_is_no_conflict() -> None:
    """A server error is not another writer: the next save, with the same version, succeeds."""
    with running_bucket("gs") as bucket, pytest.MonkeyPatch.context() as patch:
        for name, value in bucket.env.items():
            patch.setenv(name, value)
        url = bucket.url(object_key("fails"))

        async def scenario() -> None:
            store = opened(TABLE, url)
            await store.add("delivery", "one")
            store.save()
            FakeGcs.failing = True
            try:
                await store.add("delivery", "two")
                with pytest.raises(OSError) as failed:
                    store.save()
                assert not isinstance(failed.value, SnapshotConflict)
                await store.ping()  # still ready
            finally:
                FakeGcs.failing = False
            store.save()

        asyncio.run(scenario())
        assert {"one", "two"} <= remembered(url)


@pytest.mark.parametrize(
    "garbage", [b"", b"\x00\x01 not a snapshot {", b'{"version": 2, "families": {}}']
)
def test_an_object_that_cannot_be_read_is_a_snapshot_error_naming_it(
    bucket: Bucket, garbage: bytes
) -> None:
    url = bucket.url(object_key("corrupt"))
    put_raw(url, garbage)
    with pytest.raises(SnapshotError) as raised:
        opened(TABLE, url)
    assert url in str(raised.value)
    assert len(str(raised.value).splitlines()) == 1


def test_a_missing_bucket_is_a_snapshot_error_naming_it(bucket: Bucket) -> None:
    url = f"{bucket.kind}://no-such-bucket/observer/state.json"
    with pytest.raises(SnapshotError) as raised:
        opened(TABLE, url)
    assert str(raised.value) == f"STATE_URL: bucket {bucket.kind}://no-such-bucket does not exist"


# --- The service ---------------------------------------------------------------------------


def deliver(client: TestClient, delivery: str) -> None:
    body = b'{"zen": "Keep it logically awesome.", "hook_id": 1}'
    response = client.post(
        "/webhook",
        content=body,
        headers={
            "X-GitHub-Event": "ping",
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": sign(SECRET, body),
            "Content-Type": "application/json",
        },
    )
    assert response.status_code == 200, response.text


def state_errors(client: TestClient) -> float:
    return Exposition(client.get("/metrics").text).get("observer_state_errors_total")


def test_a_second_replica_is_refused_fails_readiness_and_says_so_once(
    bucket: Bucket, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="observer")
    url = bucket.url(object_key("replicas"))
    first = opened(TABLE, url)
    asyncio.run(first.add("delivery", "first"))
    first.save()
    # The second replica loads the first's snapshot at start ...
    app = create_app(make_settings(state_url=url, state_save_interval=INTERVAL))
    # ... and the first saves again before the second's first save.
    asyncio.run(first.add("delivery", "first again"))
    first.save()
    with TestClient(app) as client:
        deliver(client, "second")
        deadline = time.monotonic() + DEADLINE
        while client.get("/readyz").status_code == 200 and time.monotonic() < deadline:
            time.sleep(INTERVAL)
        assert client.get("/readyz").status_code == 503
        assert client.get("/healthz").status_code == 200
        # Counted once, said once: later intervals do not try again.
        assert state_errors(client) == 1
    lines = [r.getMessage() for r in caplog.records if url in r.getMessage()]
    assert len(lines) == 1, lines
    assert "another process" in lines[0]
    kept = remembered(url)
    assert {"first", "first again"} <= kept
    assert "second" not in kept


def test_a_service_whose_save_fails_counts_it_stays_ready_and_saves_at_the_next_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="observer")
    with running_bucket("gs") as bucket, pytest.MonkeyPatch.context() as patch:
        for name, value in bucket.env.items():
            patch.setenv(name, value)
        url = bucket.url(object_key("service-fails"))
        FakeGcs.failing = True
        try:
            with TestClient(
                create_app(make_settings(state_url=url, state_save_interval=0.05))
            ) as client:
                deliver(client, "while failing")
                deadline = time.monotonic() + DEADLINE
                while state_errors(client) < 2 and time.monotonic() < deadline:
                    time.sleep(INTERVAL)
                assert state_errors(client) >= 2  # each interval tried again
                assert client.get("/readyz").status_code == 200
                FakeGcs.failing = False
                while not _holds(url, "while failing") and time.monotonic() < deadline:
                    time.sleep(INTERVAL)
                assert _holds(url, "while failing")
        finally:
            FakeGcs.failing = False
    warnings = [r for r in caplog.records if r.getMessage() == "state snapshot not written"]
    assert warnings and all(r.levelno == logging.WARNING for r in warnings)


def _holds(url: str, delivery: str) -> bool:
    try:
        return delivery in remembered(url)
    except SnapshotError:
        return False


def test_one_history_gives_the_same_numbers_across_a_restart(bucket: Bucket) -> None:
    """tests/test_exact_numbers.py's file and Redis restart, with the snapshot in a bucket."""
    before, after = history()
    fleet = Fleet()
    env = observer_env(STATE_URL=bucket.url(object_key("exact")), **bucket.env)
    with contextlib.ExitStack() as stack:
        with node(env) as first:
            fleet.nodes.append(first)
            send_all([first], before, duplicate=False)
            wait_for(fleet, lead_count_reaches(LEAD_TIMES_BEFORE))
            fleet.retire(first)  # its final scrape, then SIGTERM: the snapshot is saved
        second = stack.enter_context(node(env))
        fleet.nodes.append(second)
        send_all([second], after, duplicate=False)
        redeliver(second, before + after)
        scrapes = wait_for(fleet, lead_count_reaches(HISTORY_TRUTH["dora_lead_time_seconds_count"]))
        assert_truth(scrapes, HISTORY_TRUTH)


def test_a_corrupt_object_stops_the_start_with_one_line_naming_it(bucket: Bucket) -> None:
    url = bucket.url(object_key("corrupt-start"))
    put_raw(url, b"\x00\x01 not a snapshot {")
    env = {
        "PATH": "/usr/bin:/bin",
        "WEBHOOK_SECRET": SECRET,
        "HOST": "127.0.0.1",
        "PORT": "1",
        "STATE_URL": url,
        **bucket.env,
    }
    finished = subprocess.run(
        observer_command(), env=env, capture_output=True, timeout=60, check=False
    )
    assert finished.returncode != 0
    lines = (finished.stdout + finished.stderr).decode(errors="replace").splitlines()
    assert len(lines) == 1, lines
    assert url in lines[0]


# --- Settings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["gs://observer-state/state.json", "s3://b-1/a/b/state.json", "az://c/observer/s"]
)
def test_a_bucket_state_url_is_accepted(url: str) -> None:
    settings = make_settings(state_url=url)
    assert settings.state_url is not None and settings.state_url.get_secret_value() == url


@pytest.mark.parametrize("url", ["s3://observer-state", "gs://observer-state/", "az:///state"])
def test_a_bucket_state_url_must_name_an_object(url: str) -> None:
    with pytest.raises(ValidationError) as raised:
        make_settings(state_url=url)
    message = describe_error(raised.value)
    assert "STATE_URL" in message and "BUCKET/PATH" in message
    assert len(message.splitlines()) == 1
