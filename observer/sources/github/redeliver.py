"""Missed-delivery recovery: ask GitHub to redeliver the webhook deliveries observer never got.

GitHub never retries a failed delivery by itself, so whatever it sent while observer was down,
restarting or answering 503 would be lost. Each run lists a hook's delivery attempts back to a
checkpoint kept in the state store and asks for a redelivery of each delivery none of whose
attempts succeeded and whose id observer has not processed. A redelivery keeps its delivery id,
so one that arrives twice is still counted once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

from observer.forges.github.client import GitHubClient, GitHubError
from observer.forges.github.models import HookDelivery
from observer.metrics.definitions import Metrics
from observer.ops import logs
from observer.state import Store, StoreUnavailable

# Pages of 100 attempts read from one hook per run: a run stays short however long observer
# was away; past it, older attempts are left unexamined and said so.
MAX_PAGES = 10
# One replica checks at a time. The lock outlives a slow run (retries, a rate-limit wait) and
# frees itself if its holder dies; a second replica overlapping would only redeliver twice,
# which counts once.
LOCK = "redeliver"
LOCK_SECONDS = 900.0
# The store kind holding, per hook, the newest delivery attempt already examined.
CHECKPOINT = "redelivery"


@dataclass(frozen=True, slots=True)
class Hook:
    """A webhook as REDELIVER_HOOKS names it, its REST path, and the client allowed to use it."""

    name: str
    path: str
    client: GitHubClient


def hook_path(name: str) -> str:
    """The REST path of a REDELIVER_HOOKS entry, relative to GITHUB_API_URL."""
    return "/app/hook" if name == "app" else f"/{name}"


def _succeeded(attempt: HookDelivery) -> bool:
    return 200 <= attempt.status_code < 300


class Redelivery:
    """Checks the hooks at start and every ``interval`` seconds, until stopped."""

    def __init__(
        self,
        hooks: Sequence[Hook],
        store: Store,
        metrics: Metrics,
        *,
        interval: float,
        max_pages: int = MAX_PAGES,
    ) -> None:
        self._hooks = tuple(hooks)
        self._store = store
        self._metrics = metrics
        self._interval = interval
        self._max_pages = max_pages
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._every_interval())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _every_interval(self) -> None:
        while True:
            try:
                await self.run()
            except Exception as error:  # a bug must not end recovery: the next interval tries again
                logs.warning("missed-delivery check failed", detail=repr(error))
            await asyncio.sleep(self._interval)

    async def run(self) -> None:
        """One check of every hook, unless another replica holds the lock."""
        try:
            token = await self._store.lock(LOCK, LOCK_SECONDS)
        except StoreUnavailable as error:
            logs.warning(
                "missed deliveries not checked: state store unreachable", detail=str(error)
            )
            return
        if token is None:
            logs.event("missed deliveries are being checked by another replica")
            return
        try:
            for hook in self._hooks:
                await self._check(hook)
        finally:
            with contextlib.suppress(StoreUnavailable):
                await self._store.unlock(LOCK, token)

    async def _check(self, hook: Hook) -> None:
        try:
            await self._check_hook(hook)
        except GitHubError as error:
            logs.warning(
                "missed deliveries not checked; tried again at the next interval",
                hook=hook.name,
                reason=error.reason,
                detail=str(error),
            )
        except StoreUnavailable as error:
            logs.warning(
                "missed deliveries not checked: state store unreachable",
                hook=hook.name,
                detail=str(error),
            )

    async def _check_hook(self, hook: Hook) -> None:
        stored = (await self._store.get_many(CHECKPOINT, [hook.name])).get(hook.name)
        checkpoint = stored if isinstance(stored, int) else None
        attempts = await self._attempts(hook, checkpoint)
        if not attempts:
            return
        by_guid: dict[str, list[HookDelivery]] = {}
        # Newest first as listed; redelivered oldest first, the order they were meant to arrive.
        for attempt in reversed(attempts):
            by_guid.setdefault(attempt.guid, []).append(attempt)
        requested = skipped = 0
        for guid, tries in by_guid.items():
            if any(_succeeded(attempt) for attempt in tries):
                continue
            if await self._store.contains("delivery", guid):
                # Processed, yet GitHub saw a failure: the answer was lost or came too late.
                skipped += 1
                self._metrics.redeliveries.labels(result="skipped").inc()
                continue
            latest = max(tries, key=lambda attempt: attempt.id)
            try:
                await hook.client.redeliver(hook.path, latest.id)
            except GitHubError as error:
                # The checkpoint stays, so the next interval asks for this one again.
                self._metrics.redeliveries.labels(result="failed").inc()
                logs.warning(
                    "redelivery not requested; tried again at the next interval",
                    hook=hook.name,
                    delivery=guid,
                    reason=error.reason,
                    detail=str(error),
                    requested=requested,
                )
                return
            requested += 1
            self._metrics.redeliveries.labels(result="requested").inc()
            logs.event("redelivery requested", hook=hook.name, delivery=guid, event=latest.event)
        await self._store.put_many(CHECKPOINT, {hook.name: max(a.id for a in attempts)})
        logs.event(
            "missed deliveries checked",
            hook=hook.name,
            attempts=len(attempts),
            requested=requested,
            skipped=skipped,
        )

    async def _attempts(self, hook: Hook, checkpoint: int | None) -> list[HookDelivery]:
        """The attempts newer than the checkpoint, newest first, as far as pages allow."""
        found: list[HookDelivery] = []
        cursor: str | None = None
        for _ in range(self._max_pages):
            page = await hook.client.hook_deliveries(hook.path, cursor)
            fresh = [a for a in page.deliveries if checkpoint is None or a.id > checkpoint]
            found.extend(fresh)
            # The checkpoint reached, or the end of what GitHub keeps.
            if len(fresh) < len(page.deliveries) or not fresh or page.next_cursor is None:
                return found
            cursor = page.next_cursor
        logs.warning(
            "more deliveries since the last check than the pages read; older ones not examined",
            hook=hook.name,
            pages=self._max_pages,
        )
        return found
