"""The store's interface and the kinds of things it keeps, each with its bounds."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

R = TypeVar("R")
DAY = 86_400.0

# A JSON value as the store keeps it.
Json = Any
Change = Callable[[Json | None], tuple[Json | None, R]]


class StoreUnavailable(Exception):
    """The configured store could not be reached; nothing was changed by the failed call."""


@dataclass(frozen=True, slots=True)
class Kind:
    """One family of keys: how many of them at most, and for how long each is kept."""

    name: str
    capacity: int
    ttl: float


def kinds(*, seen: int, cache: int) -> dict[str, Kind]:
    """The store's families, sized from the settings (``DEDUP_CAPACITY``, ``CACHE_SIZE``)."""
    table = [
        # Delivery ids: GitHub redelivers deliveries of the last few days.
        Kind("delivery", seen, 7 * DAY),
        # Event identities: a deployment's state, a pull request's merge, a push, an incident.
        Kind("event", seen, 90 * DAY),
        # Changes already observed, per repository and environment.
        Kind("observed", seen, 180 * DAY),
        # Per production repository and environment: terminal statuses in time order, lead-time
        # work. Up to ~110 KB each, so fewer than of the kinds below.
        Kind("history", max(cache // 50, 100), 180 * DAY),
        # Which histories have lead-time work waiting, and since when.
        Kind("pending", 10, 180 * DAY),
        # What webhooks taught: commit times, pushes, pull requests, branch starts.
        Kind("commit", cache, 90 * DAY),
        # Up to MAX_PUSH_COMMITS commits each (~6 KB).
        Kind("push", max(cache // 5, 100), 90 * DAY),
        Kind("carried", cache, 90 * DAY),
        Kind("pull", cache, 90 * DAY),
        Kind("branch", cache, 90 * DAY),
        # The commits a pipeline listed (up to 1,000, ~54 KB), until its deployment is enriched.
        Kind("shipment", max(cache // 100, 100), 30 * DAY),
        Kind("incident", cache, 365 * DAY),
        # When pull requests became ready for review, for the time to first review.
        Kind("ready", cache, 90 * DAY),
        # Per redelivered hook: the newest delivery already examined (GitHub keeps 3 days).
        Kind("redelivery", 100, 30 * DAY),
    ]
    return {kind.name: kind for kind in table}


KINDS = kinds(seen=100_000, cache=50_000)


class Store(Protocol):
    """Every call is atomic on its own; ``update`` is atomic across replicas too."""

    kinds: Mapping[str, Kind]

    async def add(self, kind: str, member: str) -> bool:
        """Remember ``member``; False when it was remembered already."""
        ...

    async def contains(self, kind: str, member: str) -> bool: ...

    async def discard(self, kind: str, member: str) -> None: ...

    async def get_many(self, kind: str, keys: Iterable[str]) -> dict[str, Json]:
        """The values of the keys that are kept; missing ones are left out."""
        ...

    async def put_many(self, kind: str, items: Mapping[str, Json]) -> None: ...

    async def append_many(self, kind: str, items: Mapping[str, Json], limit: int) -> None:
        """Add each value to its key's list, which keeps only its ``limit`` newest values."""
        ...

    async def lists(self, kind: str, keys: Iterable[str]) -> dict[str, list[Json]]: ...

    async def update(self, kind: str, key: str, change: Change[R]) -> R:
        """Read a value, compute its successor with ``change``, write it: none in between.

        ``change`` gets None for a missing key and returns (new value or None to delete,
        result); it may run more than once when another replica wrote meanwhile.
        """
        ...

    async def lock(self, name: str, ttl: float) -> str | None:
        """A token when the lock was free, else None; it frees itself after ``ttl``."""
        ...

    async def unlock(self, name: str, token: str) -> None: ...

    async def ping(self) -> None:
        """Raise StoreUnavailable when the store cannot be reached."""
        ...

    async def close(self) -> None: ...

    @property
    def mode(self) -> str: ...
