"""One repository and environment's terminal statuses in time order, as the store keeps them.

Each success waits (``due``) until related events have had time to arrive, then is compared
with the success before it in time, not in arrival: for its lead time, and for what it tells of
change failures and recovery (observer.leadtime.failures), decided once then and marked here.

Every delivery to a production environment reads and writes its history, so the history is
bounded and one insertion touches only what it must: rows stay in their stored JSON shape
(an ``Entry`` is built only for the few rows a caller asks for), a row is placed by bisection,
and only the rows a caller asks for are built.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from observer.domain import GITHUB

# Statuses kept per environment; lead-time work still waiting is kept past this. A history at
# its bounds takes about 170 KB of process memory (benchmarks/state_size.py).
MAX_ENTRIES = 100
# Successes waiting for lead-time work per environment: past it the oldest is dropped, so that
# a burst of deployments into one environment cannot grow its history without bound.
MAX_WAITING = 100
# Successes whose recovery was observed, and failures one used up: one mark per row at most.
MAX_MARKS = MAX_ENTRIES + MAX_WAITING

# A row as stored: [time, status, key, sha, due, attempts, forge]. Rows written before forges
# were recorded have six items: their deployments came from GitHub or GitHub-enriched pipelines.
Row = list[Any]
_TIME, _STATUS, _KEY, _DUE, _FORGE = 0, 1, 2, 4, 6
LEGACY_FORGE = GITHUB


@dataclass(frozen=True, slots=True)
class Entry:
    time: float
    status: str
    key: str
    sha: str | None = None
    # When lead-time work may start; None once done, or for a status that ships nothing.
    due: float | None = None
    attempts: int = 0
    # Which forge's API may tell what it shipped (observer.leadtime.forges); None: a pipeline's.
    forge: str | None = LEGACY_FORGE

    def to_json(self) -> Row:
        return [self.time, self.status, self.key, self.sha, self.due, self.attempts, self.forge]

    @classmethod
    def from_json(cls, item: Row) -> Entry:
        forge = item[_FORGE] if len(item) > _FORGE else LEGACY_FORGE
        return cls(
            float(item[0]), str(item[1]), str(item[2]), item[3], item[4], int(item[5]), forge
        )

    @property
    def succeeded(self) -> bool:
        return self.status == "success"


@dataclass(frozen=True, slots=True)
class Settled:
    """What a settled success decided: the success before it, the change failure cause found
    for that one (None: none, or judged before), whether it ended a run of change failures,
    and the recovery observed (None when that run's recovery was observed before)."""

    previous: Entry | None
    cause: str | None
    restores: bool
    recovery: float | None


@dataclass(frozen=True, slots=True)
class Placed:
    """Where an inserted entry landed, and how much waiting work made room for it."""

    # Its row's index, or None when the bound cut it at once.
    index: int | None
    dropped: list[Entry]


def _time(row: Row) -> float:
    return float(row[_TIME])


def _rescheduled(row: Row, due: float | None, attempts: int) -> Row:
    # A new row, not a change in place: the old one may be shared with the stored value.
    return [*row[:_DUE], due, attempts, *row[_DUE + 2 :]]


@dataclass(slots=True)
class History:
    # Rows are never changed in place: one may still be shared with the stored value.
    rows: list[Row]
    # Successes whose recovery was observed, and failures such a recovery used up.
    recovered: list[str]
    consumed: list[str]
    # Successes whose settling was decided (their recovery and rework), successes judged by
    # the next success (change failure or not), and those judged a change failure.
    settled: list[str] = field(default_factory=list)
    judged: list[str] = field(default_factory=list)
    failing: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, doc: Any) -> History:
        if not isinstance(doc, dict):
            return cls([], [], [])
        return cls(
            list(doc.get("entries", [])),
            list(doc.get("recovered", [])),
            list(doc.get("consumed", [])),
            list(doc.get("settled", [])),
            list(doc.get("judged", [])),
            list(doc.get("failing", [])),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "entries": self.rows,
            "recovered": self.recovered[-MAX_MARKS:],
            "consumed": self.consumed[-MAX_MARKS:],
            "settled": self.settled[-MAX_MARKS:],
            "judged": self.judged[-MAX_MARKS:],
            "failing": self.failing[-MAX_MARKS:],
        }

    @property
    def entries(self) -> list[Entry]:
        return [Entry.from_json(row) for row in self.rows]

    def insert(self, entry: Entry) -> Placed | None:
        """Place ``entry`` by its time; None when its key is here already.

        A status of one deployment may come again with another time, so the key is looked
        for in every row; that scan compares strings and builds nothing.
        """
        if any(row[_KEY] == entry.key for row in self.rows):
            return None
        row = entry.to_json()
        # Ties keep arrival order; a failure and a success at one instant stay apart.
        index = bisect.bisect_right(self.rows, entry.time, key=_time)
        self.rows.insert(index, row)
        dropped = self._drop_waiting() if entry.due is not None else []
        found: int | None = index
        if len(self.rows) > MAX_ENTRIES:
            cut = len(self.rows) - MAX_ENTRIES
            kept = [known for known in self.rows[:cut] if known[_DUE] is not None]
            self.rows[:cut] = kept
            if index >= cut:
                found = index - (cut - len(kept))
            else:  # among the oldest: still here only if it waits
                found = next((i for i, known in enumerate(kept) if known is row), None)
        return Placed(found, dropped)

    def _drop_waiting(self) -> list[Entry]:
        """Past ``MAX_WAITING``, the oldest waiting work is given up, its status kept."""
        waiting = [i for i, row in enumerate(self.rows) if row[_DUE] is not None]
        dropped = []
        for i in waiting[: max(len(waiting) - MAX_WAITING, 0)]:
            dropped.append(Entry.from_json(self.rows[i]))
            self.rows[i] = _rescheduled(self.rows[i], None, self.rows[i][_DUE + 1])
        return dropped

    def find(self, key: str) -> int | None:
        return next((i for i, row in enumerate(self.rows) if row[_KEY] == key), None)

    def settle(self, key: str, judge: Callable[[Entry], str | None]) -> Settled | None:
        """Decide what the success ``key`` tells, once: None when decided already or gone.

        ``judge`` gives the cause that makes the success before it a change failure, or None;
        it is asked once per success. The run of change failures this success ends is that
        success, when judged one, and the failed statuses after it: a success that ended a
        run and is later found a change failure itself starts a new one.
        """
        end = self.find(key)
        if end is None or key in self.settled:
            return None
        self.settled.append(key)
        start = end
        while start > 0 and self.rows[start - 1][_STATUS] != "success":
            start -= 1
        previous = Entry.from_json(self.rows[start - 1]) if start > 0 else None
        cause = None
        if previous is not None and previous.key not in self.judged:
            self.judged.append(previous.key)
            cause = judge(previous)
            if cause is not None:
                self.failing.append(previous.key)
        run = [Entry.from_json(row) for row in self.rows[start:end]]
        if previous is not None and previous.key in self.failing:
            run.insert(0, previous)
        recovery = None
        consumed = set(self.consumed)
        if run and key not in self.recovered and not any(e.key in consumed for e in run):
            self.recovered.append(key)
            self.consumed.extend(e.key for e in run)
            recovery = _time(self.rows[end]) - run[0].time
        return Settled(previous, cause, bool(run), recovery)

    def previous_success(self, entry: Entry) -> Entry | None:
        """The last success before ``entry`` in time."""
        end = bisect.bisect_left(self.rows, entry.time, key=_time)
        for index in range(end - 1, -1, -1):
            row = self.rows[index]
            if row[_STATUS] == "success" and row[_KEY] != entry.key:
                return Entry.from_json(row)
        return None

    def waiting(self) -> list[Entry]:
        return [Entry.from_json(row) for row in self.rows if row[_DUE] is not None]

    def next_due(self) -> float | None:
        return min((float(row[_DUE]) for row in self.rows if row[_DUE] is not None), default=None)

    def reschedule(self, key: str, due: float | None, attempts: int) -> None:
        """Set when an entry's lead-time work is due again (None: done)."""
        for index, row in enumerate(self.rows):
            if row[_KEY] == key:
                self.rows[index] = _rescheduled(row, due, attempts)
