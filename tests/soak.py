"""A soak: two real replicas on one real redis-server, a stream of signed deliveries, both
scraped all along, and one replica restarted in the middle while the load goes on.

The generator knows every delivery it sent and what each was answered; the scraper keeps each
process's last successful /metrics. At the end the counters summed over the processes (the
restarted replica: its last scrape before the stop, plus its successor's final scrape) can be
compared with the distinct events that were answered "accepted".

Every step is placed by counts of answered deliveries, never by the clock, so that a slow machine
runs the same soak, only longer. ``tests/test_soak.py`` sends as fast as its connections allow
and asserts counts and states; ``benchmarks/soak.py`` paces the same soak at a rate and reports
the rates it reached.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests import rawhttp, story
from tests.exposition import Exposition
from tests.processes import ObserverProcess, free_port, start_observer, stop
from tests.redis_server import running_redis
from tests.signing import sign

SECRET = "soak-secret"
COPY_SHARE = 0.10  # the same event through a second hook (new delivery id, other replica)
REDELIVERY_SHARE = 0.05  # the same delivery id again
# Scrapes of both processes: after this many answered deliveries, or this many seconds without
# as many (a wait, never a figure: the restarted replica's final scrape must come while it waits).
SCRAPE_EVERY = 100
SCRAPE_IDLE = 1.0
# A sender gives up on an answer after this long, as GitHub does.
ANSWER_TIMEOUT = 10.0


@dataclass(frozen=True)
class Plan:
    """What is sent, and when each step comes, in answered deliveries."""

    deliveries: int = 4500
    rate: float | None = None  # deliveries a second; None: as fast as ``in_flight`` allows
    in_flight: int = 8
    warm_up: int = 1000  # answered before the memory baseline is taken
    restart_after: int = 2000  # answered before the restart begins
    # Answered by the replica to restart after one of its scrapes, before its SIGTERM: these
    # are in no scrape unless it waits for one more before it exits.
    stop_after: int = 25
    # The last deliveries wait for the successor, so that it serves some before the end.
    after_restart: int = 1500

    @property
    def timeout(self) -> float:
        """A bound on the whole run, so that a stuck soak fails instead of hanging."""
        paced = self.deliveries / self.rate if self.rate else 0.0
        return paced + 600.0


@dataclass
class Event:
    kind: str  # "push", "deployment" or "merge"
    name: str  # X-GitHub-Event
    body: bytes
    status: str = ""  # a deployment's terminal state
    commits: int = 0  # a push's distinct commits


@dataclass
class Send:
    event: int
    delivery: str
    replica: int  # 0: A, never stopped; 1: B, restarted
    copy: str  # "first", "second hook" or "redelivery"
    sent_at: float = 0.0
    answered_at: float = 0.0
    status: int | None = None
    result: str | None = None
    error: str | None = None


@dataclass
class Scrape:
    started_at: float
    exposition: Exposition

    @property
    def process_start(self) -> float:
        return self.exposition.get("process_start_time_seconds")

    @property
    def memory(self) -> float:
        return self.exposition.get("process_resident_memory_bytes")


@dataclass
class Soak:
    plan: Plan
    events: list[Event]
    sends: list[Send]
    load_started: float
    load_ended: float = 0.0
    stopped_at: float = 0.0  # SIGTERM to the restarted replica
    exited_at: float = 0.0  # and its exit
    restarted_at: float = 0.0  # its successor ready
    # Last successful scrape of each process: "A", "B1" (before the restart), "B2" (after).
    last: dict[str, Scrape] = field(default_factory=dict)
    memory_after_warm_up: float = 0.0
    scrapes: int = 0
    failed_scrapes: int = 0

    def accepted(self) -> list[Send]:
        return [s for s in self.sends if s.status == 200 and s.result == "accepted"]

    def expected(self, sends: list[Send]) -> dict[str, float]:
        """What the counters should say of the distinct events among ``sends``."""
        events = [self.events[i] for i in {s.event for s in sends}]
        return {
            "success": sum(1 for e in events if e.status == "success"),
            "failure": sum(1 for e in events if e.status == "failure"),
            "commits": sum(e.commits for e in events),
            "merged": sum(1 for e in events if e.kind == "merge"),
        }

    def counted(self) -> dict[str, float]:
        """The counters summed over the processes' last scrapes."""
        totals = {"success": 0.0, "failure": 0.0, "commits": 0.0, "merged": 0.0, "recoveries": 0.0}
        labels = {"repository": story.REPO, "environment": "production"}
        for scrape in self.last.values():
            metrics = scrape.exposition
            totals["success"] += metrics.get("dora_deployments_total", **labels, status="success")
            totals["failure"] += metrics.get("dora_deployments_total", **labels, status="failure")
            totals["commits"] += metrics.get("github_commits_pushed_total", repository=story.REPO)
            totals["merged"] += metrics.get(
                "github_pull_requests_total", repository=story.REPO, action="merged"
            )
            totals["recoveries"] += metrics.get("dora_deployment_recovery_seconds_count", **labels)
        return totals

    def during_restart(self, send: Send) -> bool:
        """Sent to the restarted replica and answered (or refused) once it got SIGTERM, sent
        before its successor was ready."""
        return (
            send.replica == 1
            and send.answered_at >= self.stopped_at
            and send.sent_at <= self.restarted_at
        )

    def in_stop_window(self) -> list[Send]:
        """Accepted by the restarted replica after its last scrape began and before its successor
        started: these may be in no scrape at all."""
        since, until = self.last["B1"].started_at, self.exited_at
        return [
            s
            for s in self.accepted()
            if s.replica == 1 and s.answered_at >= since and s.sent_at <= until
        ]

    def figures(self) -> dict[str, Any]:
        """Counts, for a failure's message and a benchmark's report."""
        answered: dict[str, int] = {}
        for send in self.sends:
            outcome = send.result or (f"http {send.status}" if send.status else send.error)
            if send.status and send.status != 200:
                outcome = f"http {send.status}"
            answered[str(outcome)] = answered.get(str(outcome), 0) + 1
        refused: dict[str, int] = {}
        for number, send in enumerate(self.sends):
            if send.status != 200:
                block = number // 500 * 500
                when = (
                    "during the restart"
                    if self.during_restart(send)
                    else f"among deliveries {block}-{block + 499}"
                )
                what = f"replica {'AB'[send.replica]} {send.status or send.error} {when}"
                refused[what] = refused.get(what, 0) + 1
        return {
            "deliveries": len(self.sends),
            "events": len({s.event for s in self.sends}),
            "second hook copies": sum(1 for s in self.sends if s.copy == "second hook"),
            "redeliveries": sum(1 for s in self.sends if s.copy == "redelivery"),
            "answers": answered,
            "not accepted": refused,
            "503 bodies": sorted({str(s.error) for s in self.sends if s.status == 503}),
            "scrapes": self.scrapes,
            "failed scrapes": self.failed_scrapes,
            "accepted in the stop window": len(self.in_stop_window()),
            "expected": self.expected(self.accepted()),
            "counted": self.counted(),
            "memory after warm-up MB": round(self.memory_after_warm_up / 2**20, 1),
            "memory at the end MB": round(self.last["A"].memory / 2**20, 1),
        }


def build_events(count: int) -> list[Event]:
    """Pushes of distinct commits, production deployments (failures then a success, so that
    recoveries happen) and merged pull requests, in the order of their own times."""
    events: list[Event] = []
    deployments = 0
    for index in range(count):
        hours = index * 0.01
        roll = index % 20
        if roll < 10:
            commits = [(f"soak-{index}-{n}", hours) for n in range(1 + index % 3)]
            payload = story.push(commits, before=f"soak-before-{index}")
            events.append(Event("push", "push", _dump(payload), commits=len(commits)))
        elif roll < 16:
            deployments += 1
            # Two failures in every five deployments, each run of them followed by successes.
            state = "failure" if deployments % 5 in (1, 2) else "success"
            payload = story.deployment_status(
                7_000_000 + deployments, f"soak-{index - 1}-0", hours, state=state
            )
            events.append(Event("deployment", "deployment_status", _dump(payload), state))
        else:
            payload = story.merged_pull(
                400_000 + index,
                merge=f"soak-merge-{index}",
                merged_hours=hours,
                created_hours=hours - 1,
                head_ref=f"soak-branch-{index}",
            )
            events.append(Event("merge", "pull_request", _dump(payload)))
    return events


def build_sends(events: list[Event], total: int, rng: random.Random) -> list[Send]:
    """``total`` deliveries: each event once, to alternating replicas; some again a little later
    through a second hook (the other replica) or redelivered with the same delivery id."""
    slotted: list[tuple[float, Send]] = []
    for index in range(len(events)):
        first = Send(index, _delivery_id(rng), index % 2, "first")
        slotted.append((float(index), first))
        roll = rng.random()
        later = index + rng.uniform(0.5, 40.0)
        if roll < COPY_SHARE:
            slotted.append(
                (later, Send(index, _delivery_id(rng), 1 - first.replica, "second hook"))
            )
        elif roll < COPY_SHARE + REDELIVERY_SHARE:
            slotted.append((later, Send(index, first.delivery, rng.randrange(2), "redelivery")))
    slotted.sort(key=lambda pair: pair[0])
    return [send for _, send in slotted[:total]]


def _delivery_id(rng: random.Random) -> str:
    """A GUID, as GitHub's X-GitHub-Delivery, the same in every run."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _dump(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


class Replica:
    """Replica B's current process, replaced in the middle of the soak."""

    def __init__(self, process: contextlib.AbstractContextManager[ObserverProcess]) -> None:
        self.contexts = [process]
        self.process = process.__enter__()

    def restart(self, env: dict[str, str]) -> float:
        """Stop the process, start its successor on the same port; the time the first exited."""
        stop(self.process.process)
        exited = time.monotonic()
        following = start_observer(env, secret=SECRET, port=self.process.port)
        self.contexts.append(following)
        self.process = following.__enter__()
        return exited

    def close(self) -> None:
        for context in reversed(self.contexts):
            context.__exit__(None, None, None)


class Progress:
    """Answered deliveries, counted, for steps that wait for a number of them."""

    def __init__(self) -> None:
        self.answered = 0
        self.answered_by_b = 0
        self.finished = False
        self._changed = asyncio.Event()

    def note(self, send: Send) -> None:
        self.answered += 1
        self.answered_by_b += send.replica == 1
        self._changed.set()

    def finish(self) -> None:
        self.finished = True
        self._changed.set()

    async def until_answered(self, count: int) -> None:
        await self.until(lambda: self.answered >= count)

    async def until(self, reached: Callable[[], bool]) -> None:
        """Return once ``reached()`` holds, or once the load is over."""
        while not reached() and not self.finished:
            self._changed.clear()
            await self._changed.wait()


async def deliver(url: str, event: Event, send: Send) -> None:
    """One delivery on its own connection (tests/rawhttp.py: a fraction of httpx's cost, which
    the sender would otherwise take from the two cores the replicas share)."""
    headers = {
        "X-GitHub-Event": event.name,
        "X-GitHub-Delivery": send.delivery,
        "X-GitHub-Hook-ID": "11" if send.copy != "second hook" else "12",
        "User-Agent": "GitHub-Hookshot/soak",
        "Content-Type": "application/json",
        "X-Hub-Signature-256": sign(SECRET, event.body),
    }
    host, port = url.removeprefix("http://").rsplit(":", 1)
    send.sent_at = time.monotonic()
    try:
        status, body = await asyncio.wait_for(
            rawhttp.post(host, int(port), "/webhook", event.body, headers), ANSWER_TIMEOUT
        )
    except (OSError, asyncio.IncompleteReadError, TimeoutError) as error:
        send.error = type(error).__name__
    else:
        send.status = status
        if status == 200:
            send.result = str(json.loads(body).get("result"))
        else:
            send.error = body.decode(errors="replace")[:200]
    send.answered_at = time.monotonic()


async def run_soak(urls: list[str], replica: Replica, env: dict[str, str], plan: Plan) -> Soak:
    rng = random.Random(11)
    events = build_events(plan.deliveries)
    sends = build_sends(events, plan.deliveries, rng)
    events_used = max(s.event for s in sends) + 1
    soak = Soak(plan, events[:events_used], sends, time.monotonic())
    progress = Progress()
    b_scraped = asyncio.Event()
    restarted = asyncio.Event()

    async def scrape(client: httpx.AsyncClient, index: int) -> None:
        started = time.monotonic()
        try:
            response = await client.get(f"{urls[index]}/metrics")
            response.raise_for_status()
        except httpx.HTTPError:
            soak.failed_scrapes += 1
            return
        soak.scrapes += 1
        found = Scrape(started, Exposition(response.text))
        if index == 0:
            soak.last["A"] = found
            if not soak.memory_after_warm_up and progress.answered >= plan.warm_up:
                soak.memory_after_warm_up = found.memory
            return
        # Which process answered: the successor has a later start time.
        first = soak.last.get("B1")
        if first is None or found.process_start == first.process_start:
            soak.last["B1"] = found
            b_scraped.set()
        else:
            soak.last["B2"] = found

    async def scraper(client: httpx.AsyncClient) -> None:
        while not progress.finished:
            await asyncio.gather(scrape(client, 0), scrape(client, 1))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    progress.until_answered(progress.answered + SCRAPE_EVERY), SCRAPE_IDLE
                )
        # The final scrapes, once every delivery is answered.
        await asyncio.gather(scrape(client, 0), scrape(client, 1))

    async def restarter() -> None:
        await progress.until_answered(plan.restart_after)
        b_scraped.clear()
        await b_scraped.wait()
        by_b = progress.answered_by_b + plan.stop_after
        await progress.until(lambda: progress.answered_by_b >= by_b)
        soak.stopped_at = time.monotonic()
        soak.exited_at = await asyncio.to_thread(replica.restart, env)
        soak.restarted_at = time.monotonic()
        restarted.set()

    async def generator() -> None:
        in_flight = asyncio.Semaphore(plan.in_flight)
        tasks: list[asyncio.Task[None]] = []

        async def one(send: Send) -> None:
            async with in_flight:
                if send.replica == 1 and soak.stopped_at and not soak.restarted_at:
                    # As a load balancer does once the stopping replica's /readyz fails.
                    send.replica = 0
                await deliver(urls[send.replica], soak.events[send.event], send)
                progress.note(send)

        hold_at = len(sends) - plan.after_restart
        for number, send in enumerate(sends):
            if number == hold_at:
                await restarted.wait()
            if plan.rate:
                delay = soak.load_started + number / plan.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(send)))
        await asyncio.gather(*tasks)
        soak.load_ended = time.monotonic()
        progress.finish()

    # A connection per delivery: one answered is one processed, none lost in a closing pool.
    async with httpx.AsyncClient(timeout=5.0) as scrapers:
        await asyncio.wait_for(
            asyncio.gather(generator(), scraper(scrapers), restarter()), timeout=plan.timeout
        )
    return soak


@contextlib.contextmanager
def soaked(plan: Plan) -> Iterator[Soak]:
    """The soak run to its end against fresh processes, which are stopped before it is given."""
    with running_redis() as server:
        env = {"STATE_URL": server.url}
        with start_observer(env, secret=SECRET) as first:
            replica = Replica(start_observer(env, secret=SECRET, port=free_port()))
            try:
                urls = [first.url, replica.process.url]
                result = asyncio.run(run_soak(urls, replica, env, plan))
            finally:
                replica.close()
    yield result
