"""Units whose commit may or may not have landed, kept until the store says which.

A commit that raises StoreUnavailable may have applied: the connection can drop after Redis ran
the script and before its answer arrived. Its metric changes are then neither made nor thrown
away: the unit waits here, and once the store answers again its token tells whether it landed.
If it did, its effects are made now (the delivery's retry is a duplicate, counted here once); if
not, it is forgotten (the retry commits anew). The table is bounded; a unit that falls out of it
(or dies with the process) loses its effects if it had landed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Callable

from observer.state.base import COMMITTED, Store, StoreUnavailable, Verdict
from observer.state.unit import Unit

# Units in doubt kept at most; each holds an event's buffered writes (a few KB, a push more).
CAPACITY = 10_000
# How often the store is asked again while it does not answer.
RETRY_SECONDS = 1.0


class Ledger:
    """Commits units and makes their effects once, and only once, they have landed."""

    def __init__(
        self,
        store: Store,
        *,
        capacity: int = CAPACITY,
        retry: float = RETRY_SECONDS,
        dropped: Callable[[], object] = lambda: None,
    ) -> None:
        self._store = store
        self._capacity = capacity
        self._retry = retry
        self._dropped = dropped
        self._doubt: OrderedDict[str, Unit] = OrderedDict()
        # Each identity an in-doubt unit claimed, so that its retry can wait for the answer.
        self._claims: dict[tuple[str, str], str] = {}
        self._waiting: asyncio.Event | None = None

    @property
    def in_doubt(self) -> int:
        return len(self._doubt)

    async def commit(self, unit: Unit) -> Verdict:
        """Commit ``unit``; its effects are made when it landed. StoreUnavailable keeps it."""
        try:
            verdict = await self._store.commit(unit.writes)
        except (StoreUnavailable, asyncio.CancelledError):
            # Cancelled (a lost lock stops its work) while the store ran it: as unknown.
            self._keep(unit)
            raise
        if verdict is Verdict.COMMITTED:
            unit.apply_effects()
        return verdict

    async def settle(self, kind: str, member: str) -> None:
        """Resolve the unit in doubt that claimed ``member``, before its retry is answered.

        The retry of a delivery whose unit landed is a duplicate; this replica's figures then
        include that unit's effects by the time the duplicate is answered.
        """
        token = self._claims.get((kind, member))
        if token is not None:
            await self._resolve(token)

    async def resolve(self) -> None:
        """Ask the store about every unit in doubt; StoreUnavailable while it does not answer."""
        for token in list(self._doubt):
            await self._resolve(token)

    async def run(self) -> None:
        """Resolve units in doubt as they come, retrying while the store does not answer."""
        waiting = self._waiting = asyncio.Event()
        while True:
            if not self._doubt:
                waiting.clear()
                await waiting.wait()
            try:
                await self.resolve()
            except StoreUnavailable:
                await asyncio.sleep(self._retry)

    async def stop(self, deadline: float) -> None:
        """One last try within ``deadline`` seconds; what stays in doubt is lost with us."""
        with contextlib.suppress(StoreUnavailable, TimeoutError):
            async with asyncio.timeout(max(deadline, 0.0)):
                await self.resolve()

    def _keep(self, unit: Unit) -> None:
        self._doubt[unit.token] = unit
        for claim in unit.writes.claims:
            if claim.identity:
                self._claims[claim.kind, claim.member] = unit.token
        while len(self._doubt) > self._capacity:
            self._forget(next(iter(self._doubt)))
            self._dropped()
        if self._waiting is not None:
            self._waiting.set()

    async def _resolve(self, token: str) -> None:
        if token not in self._doubt:
            return
        landed = await self._store.contains(COMMITTED, token)
        # Another task may have resolved it while this one waited for the store.
        unit = self._forget(token)
        if unit is not None and landed:
            unit.apply_effects()

    def _forget(self, token: str) -> Unit | None:
        unit = self._doubt.pop(token, None)
        if unit is not None:
            for claim in unit.writes.claims:
                if self._claims.get((claim.kind, claim.member)) == token:
                    del self._claims[claim.kind, claim.member]
        return unit
