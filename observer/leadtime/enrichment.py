"""Work that waits for its events to settle: recorded in the store, done once it is due.

Keyed due work, of a few kinds (``Enrichment``'s table): a deployment's lead time, and a pull
request's first review (observer.teams.first_review). A successful production deployment is written
into its environment's history with a time at which its work is due (``SETTLE_SECONDS`` after it
arrived, so that the pull request event or the older deployment arriving seconds late is taken
into account); a pull request's first review is due ``SETTLE_SECONDS`` after its first review
arrived. Each key with work waiting is one key of the store's ``pending`` kind. A loop in every
replica hands due keys to a few workers; a lock in the store, renewed while the work runs,
lets one replica at a time work on one key (an environment's deployments in the order of their
times). Work that fails is retried later, a bounded number of times; work still waiting at
shutdown stays in the store for the next start or another replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from observer.domain import Commit, Deployment, at
from observer.forges.api import ApiError
from observer.leadtime import commitlist, failures
from observer.leadtime.changes import Change, Job, LeadTime
from observer.leadtime.history import Entry, History
from observer.metrics.definitions import Metrics
from observer.metrics.labels import LabelPolicy
from observer.ops import logs
from observer.state import Store, StoreUnavailable, Unit, Verdict
from observer.state.doubt import Ledger
from observer.state.lease import LockLost, Sleep, hold

# A unit built again when a deployment changed the history meanwhile: past this, given up for
# now (the work stays waiting, and is done at the next look).
MAX_COMMIT_ATTEMPTS = 20
UNLOCK_ATTEMPTS = 3
# The one key in which earlier versions kept every environment's pending work.
LEGACY_INDEX = "all"
# How often every replica looks for work another replica, or an earlier run, left waiting.
RESCAN_SECONDS = 5.0
LOCK_SECONDS = 300.0
MAX_ATTEMPTS = 5
RETRY_SECONDS = 60.0

# One kind of due work: given its pending key, the ledger, and whether the process is stopping
# with its waiting work to be done now.
DueWork = Callable[[str, Ledger, bool], Awaitable[None]]


def history_key(repository: str, environment: str) -> str:
    return f"{repository.lower()} {environment.lower()}"


class Deployments:
    """Writes terminal statuses into their environment's history; successes wait to settle."""

    def __init__(self, metrics: Metrics, *, settle: float, wake: Callable[[], None]) -> None:
        self._metrics = metrics
        self._settle = settle
        self._wake = wake

    async def record(self, unit: Unit, deployment: Deployment) -> bool:
        """Whether this status is new to its environment's history; a success waits to settle.

        Written with the deployment's unit: its history, its commits and its environment's
        pending work land together with its identity, or not at all.
        """
        pair = history_key(deployment.repository, deployment.environment)
        # Every success settles: its lead time, and what it tells of change failures.
        due = time.time() + self._settle if deployment.status == "success" else None
        entry = Entry(
            deployment.time.timestamp(),
            deployment.status,
            deployment.key or f"unkeyed:{time.time_ns()}",
            deployment.sha,
            due,
            forge=deployment.forge,
        )
        if deployment.commits and due is not None:
            shipped = commitlist.encode((c.sha, c.time.timestamp()) for c in deployment.commits)
            await unit.put_many("shipment", {entry.key: shipped})

        def place(doc: Any) -> tuple[Any, tuple[bool, list[Entry]]]:
            history = History.from_json(doc)
            placed = history.insert(entry)
            if placed is None:
                return doc, (False, [])
            return history.to_json(), (True, placed.dropped)

        new, dropped = await unit.update("history", pair, place)
        if dropped:
            unit.effect(lambda: self._dropped(deployment, dropped))
        if due is not None:
            if new:
                await failures.deployed(unit, deployment.repository, entry.time)
            await unit.update("pending", pair, lambda known: (_schedule(known, due), None))
            unit.effect(self._wake)
        return new

    def _dropped(self, deployment: Deployment, dropped: list[Entry]) -> None:
        self._metrics.enrichment_dropped.inc(len(dropped))
        logs.warning(
            "enrichment dropped waiting work",
            repository=deployment.repository,
            environment=deployment.environment,
            dropped=len(dropped),
            sha=dropped[0].sha,
        )


def _settled(version: int, next_due: float | None) -> Callable[[Any], tuple[Any, None]]:
    def settle(known: Any) -> tuple[Any, None]:
        if not isinstance(known, list) or known[1] != version:
            return known, None  # rescheduled meanwhile: its own due time stands
        return (None if next_due is None else [next_due, version]), None

    return settle


def _scheduled(due: float) -> Callable[[Any], tuple[Any, None]]:
    return lambda known: (_schedule(known, due), None)


def _schedule(known: Any, due: float) -> list[float]:
    """An environment's pending work: the earliest due time, and a version each change moves."""
    known_due, version = known if isinstance(known, list) else (due, 0)
    return [min(float(known_due), due), int(version) + 1]


class Enrichment:
    """The loop that finds due work and the workers that do it."""

    def __init__(
        self,
        store: Store,
        lead_time: LeadTime,
        labels: LabelPolicy,
        metrics: Metrics,
        *,
        concurrency: int,
        settle: float,
        ledger: Ledger,
        jobs: Mapping[str, DueWork] | None = None,
        sleep: Sleep = asyncio.sleep,
        change_failures: failures.ChangeFailures | None = None,
    ) -> None:
        self._store = store
        # Decided when a success settles, with its lead time.
        self._failures = change_failures
        # Other kinds of due work, by the prefix of their pending key; a key without one of
        # these prefixes is an environment's lead-time work.
        self._jobs = dict(jobs or {})
        self._sleep = sleep
        self._ledger = ledger
        self._lead_time = lead_time
        self._labels = labels
        self._metrics = metrics
        self._concurrency = concurrency
        self._settle = settle
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._wakeup = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._running = 0
        self._waiting = 0
        # Work was recorded since the last look at the store.
        self._stale = False
        # At shutdown with process memory: waiting work is done now rather than lost.
        self._finishing = False
        self._stopped = False
        metrics.enrichment_queue_depth.set_function(lambda: self._waiting)

    def wake(self) -> None:
        self._stale = True
        self._wakeup.set()

    @property
    def idle(self) -> bool:
        """Nothing waiting that this replica knows of, and nothing in progress."""
        return not self._stale and self._waiting == 0 and self._queue.empty() and self._running == 0

    def start(self) -> None:
        self._tasks.add(asyncio.create_task(self._scan_loop()))
        for _ in range(self._concurrency):
            self._tasks.add(asyncio.create_task(self._consume()))

    async def finish_waiting(self) -> bool:
        """Do the waiting work now, its settle time cut short; whether there was any.

        At the stop signal with process memory, before the final scrape that must carry it.
        """
        self._finishing = True
        await self._scan(ignore_due=True)
        worked = not self._queue.empty() or self._running > 0
        await self._queue.join()
        return worked

    async def stop(self, deadline: float, *, finish_waiting: bool) -> None:
        """Stop within ``deadline`` seconds; with ``finish_waiting``, do the waiting work now.

        A store that outlives the process keeps waiting work for later; process memory does
        not, so there the settle time is cut short rather than the work lost.
        """
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(end):
                if finish_waiting:
                    self._finishing = True
                    await self._scan(ignore_due=True)
                    await self._queue.join()
        left = self._queue.qsize() + self._running
        # The scan loop also ends by this flag: a Redis client may turn the cancellation of a
        # call in flight into a timeout, reported as the store unavailable, and the loop would
        # take it for an outage and run on, with the lifespan waiting for it.
        self._stopped = True
        self._wakeup.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if finish_waiting:
            with contextlib.suppress(StoreUnavailable):
                left = max(left, len(await self._due(ignore_due=True)))
            if left:
                self._metrics.enrichment_dropped.inc(left)
                logs.warning("enrichment stopped with work left", dropped=left)

    async def _scan_loop(self) -> None:
        # A store down at start was said once, by the start; a scan says when it goes down.
        reachable = False
        while not self._stopped:
            try:
                # Once finishing (process memory, stopping), work that arrives is done at once.
                delay = await self._scan(ignore_due=self._finishing)
                reachable = True
            except StoreUnavailable as error:
                self._metrics.state_errors.inc()
                if reachable:
                    logs.warning("enrichment scan failed", detail=str(error))
                reachable = False
                delay = RESCAN_SECONDS
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(delay, 0.01)):
                    await self._wakeup.wait()

    async def _pending(self) -> dict[str, list[float]]:
        """Each environment with lead-time work waiting: [due, version]. One key each, so that
        no replica rewrites a key every other one reads."""
        pairs = await self._store.keys("pending")
        found = await self._store.get_many("pending", pairs) if pairs else {}
        legacy = found.pop(LEGACY_INDEX, None)
        if isinstance(legacy, dict):
            await self._migrate(legacy)
            found = {**legacy, **found}
        return {pair: list(value) for pair, value in found.items() if isinstance(value, list)}

    async def _migrate(self, legacy: dict[str, Any]) -> None:
        """Move an earlier version's single index to one key per environment, in one unit."""
        unit = Unit(self._store)
        for pair, (due, _) in legacy.items():
            await unit.update("pending", pair, _scheduled(float(due)))
        await unit.update("pending", LEGACY_INDEX, lambda _: (None, None))
        await self._ledger.commit(unit)  # refused if changed meanwhile: the next scan tries again

    async def _due(self, *, ignore_due: bool) -> list[str]:
        now = time.time()
        pending = await self._pending()
        return [pair for pair, (due, _) in pending.items() if ignore_due or due <= now]

    async def _scan(self, *, ignore_due: bool) -> float:
        """Queue the environments with due work; seconds until the next one is due."""
        self._stale = False
        pending = await self._pending()
        now = time.time()
        self._waiting = sum(1 for due, _ in pending.values() if due <= now)
        next_due = RESCAN_SECONDS
        for pair, (due, _) in pending.items():
            if ignore_due or due <= now:
                if pair not in self._queued:
                    self._queued.add(pair)
                    self._queue.put_nowait(pair)
            else:
                next_due = min(next_due, due - now)
        return next_due

    async def _consume(self) -> None:
        while True:
            pair = await self._queue.get()
            self._running += 1
            try:
                await self._work_on(pair)
            except StoreUnavailable as error:
                self._metrics.state_errors.inc()
                logs.warning("enrichment could not reach the state store", detail=str(error))
            except LockLost:
                # Its work was stopped; the key is still pending, for the lock's new holder or
                # for the next look here. Not a failure of a deployment: nothing is counted.
                logs.warning("enrichment lock lost while working: work stopped", key=pair)
            except Exception:  # one bad environment must not stop the worker
                self._metrics.enrichment_failures.labels(reason="error").inc()
                logs.LOGGER.exception("enrichment error")
            finally:
                self._queued.discard(pair)
                self._running -= 1
                self._queue.task_done()
                self.wake()  # look again: this work may have left more, or none

    async def _work_on(self, pair: str) -> None:
        name = f"enrich {pair}"
        # Chosen here, so that a lock taken by a call whose answer was lost is freed at once
        # rather than held until it expires.
        token = secrets.token_hex(8)
        try:
            if await self._store.lock(name, LOCK_SECONDS, token) is None:
                return  # another replica is on it
        except StoreUnavailable:
            await self._unlock(name, token)
            raise
        try:
            work = self._job(pair)
            await hold(
                self._store,
                name,
                token,
                LOCK_SECONDS,
                work(pair, self._ledger, self._finishing),
                sleep=self._sleep,
            )
        finally:
            await self._unlock(name, token)

    def _job(self, pair: str) -> DueWork:
        for prefix, work in self._jobs.items():
            if pair.startswith(prefix):
                return work
        return self._lead_times

    async def _lead_times(self, pair: str, _ledger: Ledger, finishing: bool) -> None:
        """An environment's waiting deployments, oldest first."""
        known = (await self._store.get_many("pending", [pair])).get(pair)
        version = known[1] if isinstance(known, list) else 0
        doc = (await self._store.get_many("history", [pair])).get(pair)
        history = History.from_json(doc)
        repository, _, environment = pair.partition(" ")
        for entry in sorted(history.waiting(), key=lambda known: known.time):
            if entry.due is not None and entry.due > time.time() and not finishing:
                continue
            await self._enrich(history, repository, environment, entry)
        await self._settle_pending(pair, version)

    async def _unlock(self, name: str, token: str) -> None:
        """Free the lock, trying a few times: left held, the work waits for it to expire."""
        for attempt in range(UNLOCK_ATTEMPTS):
            try:
                await self._store.unlock(name, token)
                return
            except StoreUnavailable:
                if attempt == UNLOCK_ATTEMPTS - 1:
                    raise

    async def _settle_pending(self, pair: str, version: int) -> None:
        """Set the environment's next due time, unless a deployment rescheduled it meanwhile."""
        for _ in range(MAX_COMMIT_ATTEMPTS):
            unit = Unit(self._store)
            fresh = History.from_json((await unit.get_many("history", [pair])).get(pair))
            next_due = fresh.next_due()

            await unit.update("pending", pair, _settled(version, next_due))
            if await self._ledger.commit(unit) is Verdict.COMMITTED:
                return
        raise StoreUnavailable(f"state store: pending work kept changing under {pair}")

    async def _enrich(
        self, history: History, repository: str, environment: str, entry: Entry
    ) -> None:
        shipment = (await self._store.get_many("shipment", [entry.key])).get(entry.key)
        job = Job(
            repository,
            environment,
            self._labels.repository(repository) or "other",
            self._labels.environment(environment),
            entry,
            history.previous_success(entry),
            tuple(Commit(sha, at(t)) for sha, t in commitlist.decode(shipment)),
        )
        due: float | None = None
        attempts = entry.attempts
        changes: list[Change] = []
        try:
            changes = await self._lead_time.changes(job)
        except StoreUnavailable:
            raise
        except Exception as error:  # an ApiError, or a bug: retried, never in a tight loop
            attempts += 1
            reason = error.reason if isinstance(error, ApiError) else "error"
            if reason == "error":
                logs.LOGGER.exception("enrichment error")
            self._metrics.enrichment_failures.labels(reason=reason).inc()
            retry = attempts < MAX_ATTEMPTS
            if retry:
                due = time.time() + RETRY_SECONDS * 2 ** (attempts - 1)
            else:
                self._metrics.enrichment_dropped.inc()
            logs.warning(
                "enrichment failed",
                repository=repository,
                environment=environment,
                sha=entry.sha,
                reason=reason,
                detail=str(error),
                retry=retry,
            )

        def mark(doc: Any) -> tuple[Any, None]:
            known = History.from_json(doc)
            known.reschedule(entry.key, due, attempts)
            return known.to_json(), None

        # The changes observed and the entry marked done land together, or neither does: a
        # unit in doubt is resolved by the ledger, and one that did not land is done again.
        for _ in range(MAX_COMMIT_ATTEMPTS):
            unit = Unit(self._store)
            await self._lead_time.record(unit, job, changes)
            if due is None and self._failures is not None:
                # Once lead time knows what it shipped (or has given up).
                pair = history_key(repository, environment)
                await self._failures.settle(unit, job, changes, pair)
            await unit.update("history", history_key(repository, environment), mark)
            if await self._ledger.commit(unit) is Verdict.COMMITTED:
                return
        raise StoreUnavailable(f"state store: history kept changing under {repository}")
