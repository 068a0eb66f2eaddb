"""The store in process memory: exact for one replica until it restarts."""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from observer.state.base import COMMITTED, Change, Json, Kind, R, Verdict, Writes


class _Family:
    """One kind's keys, oldest write first, each with the wall-clock time it expires."""

    def __init__(self, kind: Kind) -> None:
        self.kind = kind
        self.items: OrderedDict[str, tuple[float, Json]] = OrderedDict()

    def get(self, key: str, now: float) -> Json | None:
        item = self.items.get(key)
        if item is None:
            return None
        if item[0] <= now:
            del self.items[key]
            return None
        return item[1]

    def put(self, key: str, value: Json, now: float) -> None:
        """Write one key; the caller prunes once it has written all of its keys."""
        self.put_all({key: value}, now)

    def put_all(self, values: Mapping[str, Json], now: float) -> None:
        """Write keys, each as the newest; a push writes hundreds, so the loop is kept lean."""
        items, expires = self.items, now + self.kind.ttl
        for key, value in values.items():
            # A new key is already the newest; only a rewritten one must move.
            if key in items:
                items.move_to_end(key)
            items[key] = (expires, value)

    def pop(self, key: str) -> None:
        self.items.pop(key, None)

    def prune(self, now: float) -> None:
        items = self.items
        # The oldest writes go first: over the capacity, they are dropped without looking.
        while len(items) > self.kind.capacity:
            items.popitem(last=False)
        # Every key of a kind lives as long, so the oldest write expires first.
        while items:
            key, (expires, _) = next(iter(items.items()))
            if expires > now:
                break
            del items[key]


class MemoryStore:
    """All in one process: each call runs without awaiting, so it is atomic by construction."""

    def __init__(
        self, kinds: Mapping[str, Kind], *, clock: Callable[[], float] = time.time
    ) -> None:
        self.kinds = kinds
        self._families = {name: _Family(kind) for name, kind in kinds.items()}
        self._locks: dict[str, tuple[float, str]] = {}
        self._clock = clock

    @property
    def mode(self) -> str:
        return "memory"

    def _family(self, kind: str) -> _Family:
        return self._families[kind]

    async def add(self, kind: str, member: str) -> bool:
        family, now = self._family(kind), self._clock()
        if family.get(member, now) is not None:
            return False
        family.put(member, 1, now)
        family.prune(now)
        return True

    async def contains(self, kind: str, member: str) -> bool:
        return self._family(kind).get(member, self._clock()) is not None

    async def discard(self, kind: str, member: str) -> None:
        self._family(kind).pop(member)

    async def get_many(self, kind: str, keys: Iterable[str]) -> dict[str, Json]:
        family, now = self._family(kind), self._clock()
        found = {key: family.get(key, now) for key in keys}
        return {key: value for key, value in found.items() if value is not None}

    async def put_many(self, kind: str, items: Mapping[str, Json]) -> None:
        family, now = self._family(kind), self._clock()
        family.put_all(items, now)
        family.prune(now)

    async def append_many(self, kind: str, items: Mapping[str, Json], limit: int) -> None:
        family, now = self._family(kind), self._clock()
        appended = {}
        for key, value in items.items():
            known = family.get(key, now)
            appended[key] = [*known, value][-limit:] if known else [value]
        family.put_all(appended, now)
        family.prune(now)

    async def lists(self, kind: str, keys: Iterable[str]) -> dict[str, list[Json]]:
        return await self.get_many(kind, keys)

    async def update(self, kind: str, key: str, change: Change[R]) -> R:
        family, now = self._family(kind), self._clock()
        value, result = change(family.get(key, now))
        if value is None:
            family.pop(key)
        else:
            family.put(key, value, now)
            family.prune(now)
        return result

    async def read(self, kind: str, key: str) -> tuple[Json | None, Any]:
        # The stored object is its own version: values are replaced, never changed in place.
        value = self._family(kind).get(key, self._clock())
        return value, value

    async def keys(self, kind: str) -> list[str]:
        family, now = self._family(kind), self._clock()
        family.prune(now)
        return list(family.items)

    async def commit(self, writes: Writes) -> Verdict:
        """Check, then apply: nothing awaits in between, so nothing else interleaves."""
        now = self._clock()
        if self._family(COMMITTED).get(writes.token, now) is not None:
            return Verdict.COMMITTED  # sent again: it landed the first time
        for claim in writes.claims:
            if self._family(claim.kind).get(claim.member, now) is not None:
                return Verdict.DUPLICATE if claim.identity else Verdict.CONFLICT
        for (kind, key), version in writes.expected.items():
            if self._family(kind).get(key, now) is not version:
                return Verdict.CONFLICT
        for claim in writes.claims:
            self._family(claim.kind).put(claim.member, 1, now)
        for (kind, key), value in writes.values.items():
            if value is None:
                self._family(kind).pop(key)
            else:
                self._family(kind).put(key, value, now)
        for kind, key, value, limit in writes.appends:
            family = self._family(kind)
            known = family.get(key, now)
            family.put(key, [*known, value][-limit:] if known else [value], now)
        self._family(COMMITTED).put(writes.token, 1, now)
        for kind in writes.kinds_written():
            self._family(kind).prune(now)
        return Verdict.COMMITTED

    async def lock(self, name: str, ttl: float, token: str | None = None) -> str | None:
        now = self._clock()
        held = self._locks.get(name)
        if held is not None and held[0] > now and held[1] != token:
            return None
        token = token or secrets.token_hex(8)
        self._locks[name] = (now + ttl, token)
        return token

    async def unlock(self, name: str, token: str) -> None:
        held = self._locks.get(name)
        if held is not None and held[1] == token:
            del self._locks[name]

    async def renew(self, name: str, token: str, ttl: float) -> bool:
        now = self._clock()
        held = self._locks.get(name)
        if held is None or held[0] <= now or held[1] != token:
            return False
        self._locks[name] = (now + ttl, token)
        return True

    async def ping(self) -> None:
        pass

    async def close(self) -> None:
        pass

    # A snapshot: every family's live keys with their expiry, as plain JSON.
    def dump(self) -> dict[str, Any]:
        now = self._clock()
        families = {}
        for name, family in self._families.items():
            family.prune(now)
            families[name] = [
                [key, expires, value] for key, (expires, value) in family.items.items()
            ]
        return {"version": 1, "families": families}

    def load(self, snapshot: Any) -> None:
        if not isinstance(snapshot, dict) or snapshot.get("version") != 1:
            raise ValueError("not a snapshot of this version")
        families = snapshot["families"]
        if not isinstance(families, dict):
            raise ValueError("families is not an object")
        now = self._clock()
        for name, entries in families.items():
            family = self._families.get(name)
            if family is None:
                continue  # a kind this version no longer keeps
            for key, expires, value in entries:
                if not isinstance(key, str) or not isinstance(expires, int | float):
                    raise ValueError(f"malformed entry in {name}")
                if expires > now:
                    family.items[key] = (float(expires), value)
            family.prune(now)
