"""One repository and environment's terminal statuses in time order, as the store keeps them.

The history decides two numbers. Recovery: a run of failures that a success ends, observed
once, whenever and in whatever order its statuses arrive. Lead time: each success waits
(``due``) until related events have had time to arrive, then is compared with the success
before it in time, not in arrival.

Every delivery to a production environment reads and writes its history, so the history is
bounded and one insertion touches only what it must: rows stay in their stored JSON shape
(an ``Entry`` is built only for the few rows a caller asks for), a row is placed by bisection,
and only the run of failures around it is looked at for a recovery.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any

from observer.domain import GITHUB

# Statuses kept per environment; lead-time work still waiting is kept past this. A history at
# its bounds takes about 110 KB of process memory (benchmarks/state_size.py).
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

    @classmethod
    def from_json(cls, doc: Any) -> History:
        if not isinstance(doc, dict):
            return cls([], [], [])
        return cls(
            list(doc.get("entries", [])),
            list(doc.get("recovered", [])),
            list(doc.get("consumed", [])),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "entries": self.rows,
            "recovered": self.recovered[-MAX_MARKS:],
            "consumed": self.consumed[-MAX_MARKS:],
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

    def recoveries(self, placed: Placed) -> list[float]:
        """Recoveries the placed entry completes, each marked observed as it is returned.

        A recovery is a run of failures ended by a success. It is observed once: a late
        success inside a run already observed, or a late failure before one, changes nothing.
        Only the successes whose run the new row changed can have one: the row itself, and
        the first success after it.
        """
        index = placed.index
        if index is None:
            return []
        ends = [index] if self.rows[index][_STATUS] == "success" else []
        after = next(
            (i for i in range(index + 1, len(self.rows)) if self.rows[i][_STATUS] == "success"),
            None,
        )
        if after is not None:
            ends.append(after)
        found: list[float] = []
        for end in ends:
            recovery = self._recovery(end)
            if recovery is not None:
                found.append(recovery)
        return found

    def _recovery(self, end: int) -> float | None:
        start = end
        while start > 0 and self.rows[start - 1][_STATUS] != "success":
            start -= 1
        run = self.rows[start:end]
        success = self.rows[end]
        if not run or success[_KEY] in self.recovered:
            return None
        consumed = set(self.consumed)
        if any(failure[_KEY] in consumed for failure in run):
            return None
        self.recovered.append(success[_KEY])
        self.consumed.extend(failure[_KEY] for failure in run)
        return _time(success) - _time(run[0])

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
