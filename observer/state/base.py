"""The store's interface and the kinds of things it keeps, each with its bounds."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, TypeVar

R = TypeVar("R")
DAY = 86_400.0
# Kept by every commit, for as long as a unit may stay in doubt (observer.state.unit).
COMMITTED = "committed"

# A JSON value as the store keeps it.
Json = Any
Change = Callable[[Json | None], tuple[Json | None, R]]


class StoreUnavailable(Exception):
    """The configured store could not be reached.

    Nothing was changed by the failed call, except by ``commit``: a connection dropped after
    the unit was sent leaves it unknown whether it applied (the unit is then in doubt).
    """


class Verdict(StrEnum):
    COMMITTED = "committed"
    # One of the unit's claimed identities was already kept: the event was recorded before.
    DUPLICATE = "duplicate"
    # A value the unit read was changed meanwhile (another replica): build it again.
    CONFLICT = "conflict"


@dataclass(frozen=True, slots=True)
class Claim:
    kind: str
    member: str
    # An identity makes the whole unit a duplicate when it is kept already; any other claim
    # (a first review, a change observed) makes it a conflict, to be built again.
    identity: bool


@dataclass(slots=True)
class Writes:
    """What a store applies at commit: what the unit claims, expects, and writes."""

    token: str
    claims: list[Claim] = field(default_factory=list)
    # (kind, key) -> the version the unit read (Store.read's tag): still there at commit.
    expected: dict[tuple[str, str], Any] = field(default_factory=dict)
    # (kind, key) -> the new value, None to delete.
    values: dict[tuple[str, str], Json | None] = field(default_factory=dict)
    # (kind, key, value, limit): value added to the key's list, which keeps its newest.
    appends: list[tuple[str, str, Json, int]] = field(default_factory=list)

    def kinds_written(self) -> set[str]:
        return (
            {claim.kind for claim in self.claims}
            | {kind for kind, _ in self.values}
            | {kind for kind, _, _, _ in self.appends}
            | {COMMITTED}
        )


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
        # work. Up to ~170 KB each, so fewer than of the kinds below.
        Kind("history", max(cache // 50, 100), 180 * DAY),
        # Per history with lead-time work waiting, or per pull request with a first review to
        # decide ("review:<id>"): when it is due, and a version.
        # First reviews wait SETTLE_SECONDS only, yet a busy organisation reviews many pull
        # requests in that time: room for them besides the environments, so that none of them
        # pushes an environment's key out by the capacity.
        Kind("pending", max(cache // 50, 100) + max(cache // 10, 100), 180 * DAY),
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
        # For change failures: per merged pull request, whether it is a revert or a hotfix; per
        # environment and pull request, the deployment that first shipped it; which deployed
        # commit contains which, as GitHub's compare said.
        Kind("failure", cache, 180 * DAY),
        # Per repository: its incidents' periods and its production successes' times, up to
        # 100 each (~10 KB).
        Kind("timeline", max(cache // 50, 100), 180 * DAY),
        # When pull requests became ready for review, for the time to first review.
        Kind("ready", cache, 90 * DAY),
        # Per pull request: its earliest review by someone else so far, and whether that was
        # decided (observed) as its first review. Team label values, never a login.
        Kind("review", cache, 90 * DAY),
        # Per redelivered hook: the newest delivery already examined (GitHub keeps 3 days).
        Kind("redelivery", 100, 30 * DAY),
        # Tokens of the units committed: whether a unit in doubt landed (observer.state.unit).
        Kind(COMMITTED, seen, DAY),
    ]
    return {kind.name: kind for kind in table}


KINDS = kinds(seen=100_000, cache=50_000)


class Store(Protocol):
    """Every call is atomic on its own; ``update`` and ``commit`` are atomic across replicas.

    Time is read from ``clock`` (``time.time`` unless a test gives another).
    """

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

    async def read(self, kind: str, key: str) -> tuple[Json | None, Any]:
        """A value (None when missing) and its version, which ``commit`` compares."""
        ...

    async def keys(self, kind: str) -> list[str]:
        """The keys of a small kind (``pending``), kept or recently expired."""
        ...

    async def commit(self, writes: Writes) -> Verdict:
        """Apply a unit's writes whole, with its token kept as committed, or nothing.

        DUPLICATE when an identity it claims is kept, CONFLICT when another claim is kept or a
        value it expects changed; StoreUnavailable leaves it unknown whether it applied.
        """
        ...

    async def lock(self, name: str, ttl: float, token: str | None = None) -> str | None:
        """A token when the lock was free, else None; it frees itself after ``ttl``.

        With ``token``, the lock is taken with it, and taking it again with it succeeds: a
        caller whose call failed (the lock taken or not) can unlock with the token it chose.
        """
        ...

    async def unlock(self, name: str, token: str) -> None: ...

    async def renew(self, name: str, token: str, ttl: float) -> bool:
        """Make the lock held with ``token`` last ``ttl`` from now; False when it is not held
        with it any more (expired, or taken by another)."""
        ...

    async def ping(self) -> None:
        """Raise StoreUnavailable when the store cannot be reached."""
        ...

    async def close(self) -> None: ...

    @property
    def mode(self) -> str: ...
