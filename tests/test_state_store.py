"""The Store contract, held by every backend: process memory, a snapshot file, and Redis.

Each test runs against all three; the Redis one talks to a real ``redis-server``.
"""

from __future__ import annotations

import asyncio
import json
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from redis.exceptions import RedisError

from observer.state import Kind, Store, StoreUnavailable, Unit, Verdict
from observer.state.base import kinds
from observer.state.file import FileStore, SnapshotError
from observer.state.memory import MemoryStore
from observer.state.redis import RedisStore
from tests.redis_server import RedisServer, running_redis

TABLE = kinds(seen=1000, cache=1000)
# Small and short-lived kinds, for the bounds.
SMALL = {
    "tiny": Kind("tiny", capacity=3, ttl=600.0),
    "brief": Kind("brief", capacity=100, ttl=0.5),
}


@dataclass
class Backend:
    name: str
    open: Callable[[Mapping[str, Kind]], Store]
    server: RedisServer | None = None
    clock: FakeClock = field(default_factory=lambda: FakeClock())

    def ttl_ms(self, key: str) -> int:
        """The time to live Redis keeps for a key (Redis expires values on its own clock)."""
        assert self.server is not None
        with self.server.client() as client:
            return int(client.pttl(key))


class FakeClock:
    """The stores' time: it moves only when a test moves it."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(params=["memory", "file", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    clock = FakeClock()
    if request.param == "memory":
        yield Backend("memory", lambda table: MemoryStore(table, clock=clock), clock=clock)
    elif request.param == "file":
        path = tmp_path / "state.json"
        yield Backend("file", lambda table: FileStore(table, path, clock=clock), clock=clock)
    else:
        with running_redis() as server:
            yield Backend(
                "redis",
                lambda table: RedisStore(table, server.url, timeout=2.0, clock=clock),
                server,
                clock,
            )


def run(
    backend: Backend,
    scenario: Callable[[Store], Awaitable[None]],
    table: Mapping[str, Kind] = TABLE,
) -> None:
    async def main() -> None:
        store = backend.open(table)
        try:
            await scenario(store)
        finally:
            await store.close()

    asyncio.run(main())


def test_add_is_true_the_first_time_only(backend: Backend) -> None:
    async def scenario(store: Store) -> None:
        assert not await store.contains("delivery", "d-1")
        assert await store.add("delivery", "d-1") is True
        assert await store.add("delivery", "d-1") is False
        assert await store.contains("delivery", "d-1")
        # Kinds are separate families.
        assert not await store.contains("event", "d-1")
        assert await store.add("event", "d-1") is True
        await store.discard("delivery", "d-1")
        assert not await store.contains("delivery", "d-1")
        assert await store.add("delivery", "d-1") is True
        await store.discard("delivery", "never-added")  # no error

    run(backend, scenario)


def test_json_values_round_trip(backend: Backend) -> None:
    values: dict[str, Any] = {
        "octo/app a1": 1_762_000_000.25,
        "octo/app pull": {"number": 7, "merged_at": None, "shas": ["a", "b"], "ok": True},
        "octo/app ünïcode": "naïve ✓",
        "octo/app list": [[1, 2.5], {"x": None}],
    }

    async def scenario(store: Store) -> None:
        await store.put_many("commit", values)
        found = await store.get_many("commit", [*values, "missing"])
        assert found == values  # the missing key is left out
        assert await store.get_many("commit", []) == {}
        # A later write replaces the value.
        await store.put_many("commit", {"octo/app a1": 5})
        assert await store.get_many("commit", ["octo/app a1"]) == {"octo/app a1": 5}
        # The same key in another kind is another value.
        assert await store.get_many("pull", values) == {}

    run(backend, scenario)


def test_append_many_keeps_the_newest_values_up_to_the_limit(backend: Backend) -> None:
    async def scenario(store: Store) -> None:
        for n in range(5):
            await store.append_many("carried", {"x": f"push-{n}", "y": n}, limit=3)
        await store.append_many("carried", {"z": {"only": 1}}, limit=3)
        found = await store.lists("carried", ["x", "y", "z", "missing"])
        assert found == {
            "x": ["push-2", "push-3", "push-4"],
            "y": [2, 3, 4],
            "z": [{"only": 1}],
        }

    run(backend, scenario)


def test_update_reads_modifies_writes_and_deletes_on_none(backend: Backend) -> None:
    seen: list[Any] = []

    def increment(value: Any) -> tuple[Any, str]:
        seen.append(value)
        new = {"n": (value or {"n": 0})["n"] + 1}
        return new, f"now {new['n']}"

    async def scenario(store: Store) -> None:
        assert await store.update("history", "k", increment) == "now 1"
        assert await store.update("history", "k", increment) == "now 2"
        assert seen == [None, {"n": 1}]
        assert await store.get_many("history", ["k"]) == {"k": {"n": 2}}
        # None deletes the key; the change's result is still returned.
        assert await store.update("history", "k", lambda value: (None, value)) == {"n": 2}
        assert await store.get_many("history", ["k"]) == {}
        assert await store.update("history", "k", lambda value: (None, value)) is None

    run(backend, scenario)


def test_concurrent_updates_lose_nothing(backend: Backend) -> None:
    def increment(value: Any) -> tuple[int, int]:
        new = (value or 0) + 1
        return new, new

    async def main() -> None:
        # Redis: two clients, as two replicas; the others share one process.
        first = backend.open(TABLE)
        second = backend.open(TABLE) if backend.name == "redis" else first
        try:
            results = await asyncio.gather(
                *(
                    (first if n % 2 else second).update("history", "counter", increment)
                    for n in range(50)
                )
            )
            assert sorted(results) == list(range(1, 51))
            assert await first.get_many("history", ["counter"]) == {"counter": 50}
            assert await second.get_many("history", ["counter"]) == {"counter": 50}
        finally:
            await first.close()
            if second is not first:
                await second.close()

    asyncio.run(main())


def test_a_lock_is_exclusive_until_unlocked_or_expired(backend: Backend) -> None:
    async def scenario(store: Store) -> None:
        token = await store.lock("enrich a", 30)
        assert token is not None
        assert await store.lock("enrich a", 30) is None
        assert await store.lock("enrich b", 30) is not None  # another name is free
        await store.unlock("enrich a", "not-the-token")
        assert await store.lock("enrich a", 30) is None
        await store.unlock("enrich a", token)
        again = await store.lock("enrich a", 0.3)
        assert again is not None and again != token
        assert await store.lock("enrich a", 30) is None
        if backend.server is not None:
            # Redis frees it on its own clock, after the time to live it was given.
            assert 0 < backend.ttl_ms("{observer}:lock:enrich a") <= 300
            return
        backend.clock.advance(0.45)
        assert await store.lock("enrich a", 30) is not None  # the short lock freed itself

    run(backend, scenario)


def test_each_kind_keeps_at_most_its_capacity_forgetting_the_oldest(backend: Backend) -> None:
    async def scenario(store: Store) -> None:
        for n in range(5):
            assert await store.add("tiny", f"m{n}")
            backend.clock.advance(0.002)  # distinct write times
        kept = [n for n in range(5) if await store.contains("tiny", f"m{n}")]
        assert kept == [2, 3, 4]
        assert await store.add("tiny", "m0") is True  # forgotten, so new again

    async def values(store: Store) -> None:
        for n in range(5):
            await store.put_many("tiny", {f"k{n}": n})
            backend.clock.advance(0.002)
        assert await store.get_many("tiny", [f"k{n}" for n in range(5)]) == {
            "k2": 2,
            "k3": 3,
            "k4": 4,
        }

    run(backend, scenario, SMALL)
    run(backend, values, {"tiny": Kind("tiny", capacity=3, ttl=600.0)})


def test_members_and_values_expire_after_their_ttl(backend: Backend) -> None:
    async def scenario(store: Store) -> None:
        assert await store.add("brief", "member")
        await store.put_many("brief", {"value": 1})
        await store.update("brief", "updated", lambda _: (2, None))
        await store.append_many("brief", {"listed": 3}, limit=5)
        assert await store.contains("brief", "member")
        assert await store.get_many("brief", ["value", "updated"]) == {"value": 1, "updated": 2}
        backend.clock.advance(1.1)
        assert not await store.contains("brief", "member")
        assert await store.add("brief", "member") is True
        if backend.server is not None:
            # Redis expires values on its own clock, after the kind's time to live.
            for key in ("value", "updated", "listed"):
                assert 0 < backend.ttl_ms(f"{{observer}}:brief:{key}") <= 500
            return
        assert await store.get_many("brief", ["value", "updated"]) == {}
        assert await store.lists("brief", ["listed"]) == {}
        # The long-lived kind beside it is untouched.

    run(backend, scenario, SMALL)


def test_a_file_snapshot_restores_the_same_state(tmp_path: Path) -> None:
    path = tmp_path / "state.json"

    async def write() -> None:
        store = FileStore(TABLE, path)
        store.load_snapshot()  # no file yet: a first start
        await store.add("delivery", "d-1")
        await store.put_many("pull", {"octo/app s1": {"number": 1, "merged_at": 2.5}})
        await store.append_many("carried", {"octo/app c1": "p1"}, limit=8)
        await store.append_many("carried", {"octo/app c1": "p2"}, limit=8)
        await store.update("history", "octo/app production", lambda _: ({"entries": [1]}, None))
        store.save()

    async def read() -> None:
        store = FileStore(TABLE, path)
        store.load_snapshot()
        assert await store.add("delivery", "d-1") is False
        assert await store.get_many("pull", ["octo/app s1"]) == {
            "octo/app s1": {"number": 1, "merged_at": 2.5}
        }
        assert await store.lists("carried", ["octo/app c1"]) == {"octo/app c1": ["p1", "p2"]}
        assert await store.get_many("history", ["octo/app production"]) == {
            "octo/app production": {"entries": [1]}
        }

    asyncio.run(write())
    assert not [p for p in tmp_path.iterdir() if p.name != "state.json"]  # no temporary left
    asyncio.run(read())


@pytest.mark.parametrize(
    "damage",
    [
        "truncated",
        "garbage",
        "empty",
        "not utf-8",
        "other version",
        "families not an object",
        "entry not a triple",
        "key not a string",
    ],
)
def test_a_damaged_snapshot_raises_snapshot_error(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "state.json"

    async def write() -> None:
        store = FileStore(TABLE, path)
        for n in range(20):
            await store.add("delivery", f"delivery-{n}")
        store.save()

    asyncio.run(write())
    whole = path.read_bytes()
    json.loads(whole)  # a good snapshot, before the damage
    damaged = {
        "truncated": whole[: len(whole) // 2],
        "garbage": b"\x00\x01 not a snapshot {",
        "empty": b"",
        "not utf-8": b'{"version": 1, "families": {"\xff": []}}',
        "other version": b'{"version": 2, "families": {}}',
        "families not an object": b'{"version": 1, "families": [1]}',
        "entry not a triple": b'{"version": 1, "families": {"delivery": [["d", 1]]}}',
        "key not a string": b'{"version": 1, "families": {"delivery": [[1, 2e9, 1]]}}',
    }[damage]
    path.write_bytes(damaged)
    with pytest.raises(SnapshotError) as raised:
        FileStore(TABLE, path).load_snapshot()
    assert str(path) in str(raised.value)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with running_redis() as server:
        yield server


def test_redis_down_is_store_unavailable_without_the_url_or_password(
    redis_server: RedisServer,
) -> None:
    password = "pw-Secret-1234"
    with redis_server.client() as client:
        client.config_set("requirepass", password)
    url = f"redis://:{password}@127.0.0.1:{redis_server.port}/0"
    wrong = f"redis://:wrong-{password}@127.0.0.1:{redis_server.port}/0"

    def assert_clean(error: StoreUnavailable) -> None:
        assert not isinstance(error, RedisError)
        shown = "".join(traceback.format_exception(error)) + repr(error)
        for secret in (password, url, str(redis_server.port)):
            assert secret not in shown, shown

    calls: list[Callable[[Store], Awaitable[Any]]] = [
        lambda s: s.ping(),
        lambda s: s.add("delivery", "d"),
        lambda s: s.contains("delivery", "d"),
        lambda s: s.discard("delivery", "d"),
        lambda s: s.get_many("commit", ["k"]),
        lambda s: s.put_many("commit", {"k": 1}),
        lambda s: s.append_many("carried", {"k": 1}, limit=3),
        lambda s: s.lists("carried", ["k"]),
        lambda s: s.update("history", "k", lambda value: (1, None)),
        lambda s: s.lock("l", 5),
        lambda s: s.unlock("l", "t"),
    ]

    async def reachable() -> None:
        store = RedisStore(TABLE, url, timeout=1.0)
        try:
            await store.ping()
            assert await store.add("delivery", "d")
            assert password not in repr(store)
        finally:
            await store.close()
        refused = RedisStore(TABLE, wrong, timeout=1.0)
        try:
            with pytest.raises(StoreUnavailable) as raised:
                await refused.ping()
            assert_clean(raised.value)
        finally:
            await refused.close()

    async def down() -> None:
        store = RedisStore(TABLE, url, timeout=1.0)
        try:
            for call in calls:
                started = time.monotonic()
                with pytest.raises(StoreUnavailable) as raised:
                    await call(store)
                assert time.monotonic() - started < 5
                assert_clean(raised.value)
        finally:
            await store.close()

    asyncio.run(reachable())
    redis_server.stop()
    asyncio.run(down())


def test_a_unit_commits_whole_or_is_refused_as_a_duplicate_or_a_conflict(backend: Backend) -> None:
    async def scenario(store: Store) -> None:
        first = Unit(store)
        first.claim("event", "e-1")
        await first.put_many("commit", {"c": 1.5})
        await first.append_many("carried", {"c": "p1"}, limit=8)
        assert await first.update("history", "h", lambda known: ({"n": 1}, known)) is None
        assert await first.get_many("history", ["h"]) == {"h": {"n": 1}}  # its own write
        assert await store.get_many("history", ["h"]) == {}  # nothing before the commit
        assert await store.commit(first.writes) is Verdict.COMMITTED
        assert await store.contains("committed", first.token)
        assert await store.get_many("commit", ["c"]) == {"c": 1.5}
        assert await store.lists("carried", ["c"]) == {"c": ["p1"]}
        # The same identity again: nothing of it is written.
        again = Unit(store)
        again.claim("event", "e-1")
        await again.put_many("commit", {"d": 2.0})
        assert await store.commit(again.writes) is Verdict.DUPLICATE
        assert await store.get_many("commit", ["d"]) == {}
        assert not await store.contains("committed", again.token)
        # A value changed after it was read: refused, to be built again.
        late = Unit(store)
        await late.update("history", "h", lambda known: ({"n": known["n"] + 1}, None))
        await store.update("history", "h", lambda known: ({"n": 10}, None))
        assert await store.commit(late.writes) is Verdict.CONFLICT
        assert await store.get_many("history", ["h"]) == {"h": {"n": 10}}
        # A unit sent twice (a reply lost) lands once.
        twice = Unit(store)
        twice.claim("event", "e-2")
        assert await store.commit(twice.writes) is Verdict.COMMITTED
        assert await store.commit(twice.writes) is Verdict.COMMITTED

    run(backend, scenario)
