"""One event's store writes and metric changes, committed as one unit or not at all.

An event reads the store and writes it several times (its identity, a history, the pending
work, what it taught). Written one call at a time, a store failing between two calls (or a
connection dropped after a command was sent, so that nobody knows whether it applied) leaves
half an event behind, and GitHub's redelivery of the delivery answered 503 is then taken for a
repeat. A ``Unit`` buffers the writes instead: reads go through to the store, seeing the unit's
own writes; the store commits the whole unit in one call (``Store.commit``), checking that the
event's identity is new and that every value the unit changed still holds what it read. Metric
changes wait in the unit as effects, applied once the commit is known to have landed.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Mapping

from observer.state.base import Change, Claim, Json, Kind, R, Store, Writes


class Unit:
    """A store-like view that buffers writes; ``Store.commit`` applies them as one."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.kinds: Mapping[str, Kind] = store.kinds
        self.writes = Writes(secrets.token_hex(12))
        self._effects: list[Callable[[], object]] = []

    @property
    def token(self) -> str:
        return self.writes.token

    def effect(self, action: Callable[[], object]) -> None:
        """A metric change (or a wake-up) to make once the unit has landed, never before."""
        self._effects.append(action)

    def apply_effects(self) -> None:
        effects, self._effects = self._effects, []
        for action in effects:
            action()

    def claim(self, kind: str, member: str) -> None:
        """The event's identity: the whole unit is a duplicate if it is kept already."""
        self.writes.claims.append(Claim(kind, member, identity=True))

    def claimed(self, kind: str, member: str) -> bool:
        return any(c.kind == kind and c.member == member for c in self.writes.claims)

    async def add(self, kind: str, member: str) -> bool:
        """Claim ``member`` unless the store or this unit holds it; checked again at commit."""
        if self.claimed(kind, member) or await self._store.contains(kind, member):
            return False
        self.writes.claims.append(Claim(kind, member, identity=False))
        return True

    async def contains(self, kind: str, member: str) -> bool:
        return self.claimed(kind, member) or await self._store.contains(kind, member)

    async def get_many(self, kind: str, keys: Iterable[str]) -> dict[str, Json]:
        keys = list(keys)
        values = self.writes.values
        missing = [key for key in keys if (kind, key) not in values]
        found = await self._store.get_many(kind, missing) if missing else {}
        for key in keys:
            if (kind, key) in values:
                value = values[kind, key]
                if value is not None:
                    found[key] = value
        return found

    async def lists(self, kind: str, keys: Iterable[str]) -> dict[str, list[Json]]:
        keys = list(keys)
        found = await self._store.lists(kind, keys)
        for added_kind, key, value, limit in self.writes.appends:
            if added_kind == kind and key in keys:
                found[key] = [*found.get(key, []), value][-limit:]
        return found

    async def put_many(self, kind: str, items: Mapping[str, Json]) -> None:
        for key, value in items.items():
            self.writes.values[kind, key] = value

    async def append_many(self, kind: str, items: Mapping[str, Json], limit: int) -> None:
        for key, value in items.items():
            self.writes.appends.append((kind, key, value, limit))

    async def update(self, kind: str, key: str, change: Change[R]) -> R:
        """Read (the unit's own write, else the store), change, buffer the new value.

        The version read is remembered: the commit is refused as a conflict if another writer
        changed the key meanwhile, and the whole unit is built again.
        """
        if (kind, key) in self.writes.values:
            current = self.writes.values[kind, key]
        else:
            current, version = await self._store.read(kind, key)
            self.writes.expected.setdefault((kind, key), version)
        value, result = change(current)
        if value is not current or (kind, key) in self.writes.values:
            self.writes.values[kind, key] = value
        return result
