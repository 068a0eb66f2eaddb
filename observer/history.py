"""One repository and environment's terminal statuses in time order, as the store keeps them.

The history decides two numbers. Recovery: a run of failures that a success ends, observed
once, whenever and in whatever order its statuses arrive. Lead time: each success waits
(``due``) until related events have had time to arrive, then is compared with the success
before it in time, not in arrival.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

# Statuses kept per environment; lead-time work still waiting is kept past this.
MAX_ENTRIES = 200
# Failures or successes of one recovery that may be remembered as already observed.
MAX_MARKS = 400


@dataclass(frozen=True, slots=True)
class Entry:
    time: float
    status: str
    key: str
    sha: str | None = None
    # When lead-time work may start; None once done, or for a status that ships nothing.
    due: float | None = None
    attempts: int = 0

    def to_json(self) -> list[Any]:
        return [self.time, self.status, self.key, self.sha, self.due, self.attempts]

    @classmethod
    def from_json(cls, item: list[Any]) -> Entry:
        return cls(float(item[0]), str(item[1]), str(item[2]), item[3], item[4], int(item[5]))

    @property
    def succeeded(self) -> bool:
        return self.status == "success"


@dataclass(slots=True)
class History:
    entries: list[Entry]
    # Successes whose recovery was observed, and failures such a recovery used up.
    recovered: list[str]
    consumed: list[str]

    @classmethod
    def from_json(cls, doc: Any) -> History:
        if not isinstance(doc, dict):
            return cls([], [], [])
        return cls(
            [Entry.from_json(item) for item in doc.get("entries", [])],
            list(doc.get("recovered", [])),
            list(doc.get("consumed", [])),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "entries": [entry.to_json() for entry in self.entries],
            "recovered": self.recovered[-MAX_MARKS:],
            "consumed": self.consumed[-MAX_MARKS:],
        }

    def insert(self, entry: Entry) -> bool:
        """Place ``entry`` by its time; False when its key is here already."""
        if any(known.key == entry.key for known in self.entries):
            return False
        self.entries.append(entry)
        # Ties keep arrival order; a failure and a success at one instant stay apart.
        self.entries.sort(key=lambda known: known.time)
        if len(self.entries) > MAX_ENTRIES:
            waiting = [known for known in self.entries[:-MAX_ENTRIES] if known.due is not None]
            self.entries = waiting + self.entries[-MAX_ENTRIES:]
        return True

    def recoveries(self) -> list[float]:
        """Recoveries not yet observed, each marked observed as it is returned.

        A recovery is a run of failures ended by a success. It is observed once: a late
        success inside a run already observed, or a late failure before one, changes nothing.
        """
        found: list[float] = []
        recovered, consumed = set(self.recovered), set(self.consumed)
        run: list[Entry] = []
        for entry in self.entries:
            if not entry.succeeded:
                run.append(entry)
                continue
            fresh = [failure for failure in run if failure.key not in consumed]
            if fresh and entry.key not in recovered and len(fresh) == len(run):
                found.append(entry.time - run[0].time)
                self.recovered.append(entry.key)
                self.consumed.extend(failure.key for failure in run)
                consumed.update(failure.key for failure in run)
            run = []
        return found

    def previous_success(self, entry: Entry) -> Entry | None:
        """The last success before ``entry`` in time."""
        before = [
            known
            for known in self.entries
            if known.succeeded and known.time < entry.time and known.key != entry.key
        ]
        return before[-1] if before else None

    def waiting(self) -> list[Entry]:
        return [entry for entry in self.entries if entry.due is not None]

    def next_due(self) -> float | None:
        return min((entry.due for entry in self.waiting() if entry.due is not None), default=None)

    def reschedule(self, key: str, due: float | None, attempts: int) -> None:
        """Set when an entry's lead-time work is due again (None: done)."""
        for index, entry in enumerate(self.entries):
            if entry.key == key:
                self.entries[index] = dataclasses.replace(entry, due=due, attempts=attempts)
