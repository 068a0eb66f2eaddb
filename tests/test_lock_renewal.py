"""The work lock is renewed while its holder waits (a GitHub rate limit can last 900 s, the lock
300 s), and a holder whose lock was lost stops. Time is a fake clock: the store's and the
waits' (the renewals and the rate-limit wait alike), so nothing sleeps on the wall clock."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from observer.domain import Deployment
from observer.leadtime.enrichment import LOCK_SECONDS, Deployments, Enrichment
from observer.metrics.definitions import Metrics
from observer.metrics.labels import LabelPolicy
from observer.state import KINDS, Unit
from observer.state.doubt import Ledger
from observer.state.lease import LockLost, hold
from observer.state.memory import MemoryStore
from observer.state.redis import RedisStore
from tests.redis_server import running_redis

LOCK = "enrich octo-org/octo-app production"
# What GITHUB_MAX_RATE_LIMIT_WAIT allows at most.
RATE_LIMIT_WAIT = 900.0
BOUND = 10.0  # a bound on waiting for the loop, never a duration asserted


class FakeClock:
    """Seconds that pass only when the test says so; sleepers wake as they come due."""

    def __init__(self) -> None:
        self.now = time.time()
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + seconds, next(self._order), future))
        await future

    async def advance(self, seconds: float) -> None:
        self.now += seconds
        while self._sleepers and self._sleepers[0][0] <= self.now:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)
        for _ in range(50):  # let the woken tasks run (and reach their next await)
            await asyncio.sleep(0)


class RateLimitedLeadTime:
    """A lead-time source whose GitHub request waits out a rate limit on the fake clock."""

    def __init__(self, clock: FakeClock) -> None:
        self._clock = clock
        self.waiting = asyncio.Event()
        self.done = asyncio.Event()

    async def changes(self, job: Any) -> list[Any]:
        self.waiting.set()
        await self._clock.sleep(RATE_LIMIT_WAIT)
        return []

    async def record(self, unit: Unit, job: Any, changes: Any) -> None:
        self.done.set()


async def _waiting_deployment(store: MemoryStore, ledger: Ledger) -> None:
    unit = Unit(store)
    deployment = Deployment(
        "octo-org/octo-app", "production", "success", datetime.now(UTC), "d-1", "c" * 40
    )
    metrics = Metrics(CollectorRegistry())
    await Deployments(metrics, settle=0, wake=lambda: None).record(unit, deployment)
    await ledger.commit(unit)


def test_a_holder_waiting_out_a_rate_limit_keeps_its_lock() -> None:
    """Issue 16 item 6: the lock (300 s) expired while its holder waited (up to 900 s), and
    another worker could take it and do the same deployment's work beside it."""
    asyncio.run(_keeps_its_lock())


async def _keeps_its_lock() -> None:
    clock = FakeClock()
    store = MemoryStore(KINDS, clock=clock)
    ledger = Ledger(store)
    lead_time = RateLimitedLeadTime(clock)
    metrics = Metrics(CollectorRegistry())
    enrichment = Enrichment(
        store,
        lead_time,  # type: ignore[arg-type]
        LabelPolicy((), 100, 100, metrics),
        metrics,
        concurrency=1,
        settle=0,
        ledger=ledger,
        sleep=clock.sleep,
    )
    await _waiting_deployment(store, ledger)
    enrichment.start()
    try:
        await asyncio.wait_for(lead_time.waiting.wait(), BOUND)
        waited = 0.0
        while waited < RATE_LIMIT_WAIT - 50:
            await clock.advance(50)
            waited += 50
            # Another replica's worker: the lock is still held, past its first 300 s.
            assert await store.lock(LOCK, LOCK_SECONDS) is None, waited
        await clock.advance(100)
        await asyncio.wait_for(lead_time.done.wait(), BOUND)
        for _ in range(int(BOUND * 100)):  # the worker's commit and unlock, then its next look
            if enrichment.idle:
                break
            await asyncio.sleep(0.01)
        assert await store.lock(LOCK, LOCK_SECONDS) is not None  # freed once the work is done
    finally:
        await enrichment.stop(1.0, finish_waiting=False)


def test_a_holder_whose_lock_was_lost_stops_its_work() -> None:
    asyncio.run(_lost())


async def _lost() -> None:
    clock = FakeClock()
    store = MemoryStore(KINDS, clock=clock)
    token = await store.lock(LOCK, LOCK_SECONDS)
    assert token is not None
    work = asyncio.ensure_future(
        hold(store, LOCK, token, LOCK_SECONDS, clock.sleep(RATE_LIMIT_WAIT), sleep=clock.sleep)
    )
    await clock.advance(150)  # renewed once, at 100 s
    assert not work.done()
    # Lost meanwhile (an expiry while the store was unreachable, say): another holds it now.
    await store.unlock(LOCK, token)
    assert await store.lock(LOCK, LOCK_SECONDS, "another") == "another"
    await clock.advance(100)  # the next renewal finds it lost, and stops the work
    with pytest.raises(LockLost):
        await asyncio.wait_for(work, BOUND)
    assert await store.renew(LOCK, "another", LOCK_SECONDS)


@pytest.mark.parametrize("store_kind", ["memory", "redis"])
def test_renewal_extends_only_the_holders_own_lock(store_kind: str) -> None:
    asyncio.run(_renewal(store_kind))


async def _renewal(store_kind: str) -> None:
    clock = FakeClock()
    if store_kind == "memory":
        await _renewals(MemoryStore(KINDS, clock=clock), clock)
        return
    with running_redis() as redis:
        store = RedisStore(KINDS, redis.url)
        try:
            await _renewals(store, None)
            ttl = redis.client().pttl("{observer}:lock:" + LOCK)
            assert 200_000 < ttl <= 600_000  # renewed to 600 s, not the 1 s it was taken for
        finally:
            await store.close()


async def _renewals(store: Any, clock: FakeClock | None) -> None:
    token = await store.lock(LOCK, 1.0 if clock is None else LOCK_SECONDS)
    assert token is not None
    assert not await store.renew(LOCK, "not-the-holder", 600)
    assert await store.renew(LOCK, token, 600)
    if clock is not None:
        await clock.advance(599)
        assert await store.lock(LOCK, LOCK_SECONDS) is None
        await clock.advance(2)
        assert not await store.renew(LOCK, token, 600)  # expired: not brought back
