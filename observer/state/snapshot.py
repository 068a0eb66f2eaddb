"""The store in memory, saved whole as one snapshot: on a volume (file.py), in a bucket (bucket.py).

The encoding lives here, once; each backend only reads and writes the bytes somewhere.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod

from observer.state.memory import MemoryStore


class SnapshotError(Exception):
    """The snapshot exists but cannot be used: the service must not start without it."""


class SnapshotConflict(OSError):
    """Someone else wrote the snapshot since this process last read or wrote it.

    An OSError, so that whatever reports a failed save reports this one too.
    """


class SnapshotStore(MemoryStore, ABC):
    """A MemoryStore loaded from a snapshot at start and saved to it whole."""

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the snapshot lives, as an operator would name it in STATE_URL."""

    @abstractmethod
    def read_snapshot(self) -> bytes | None:
        """The snapshot's bytes; None when there is none yet (a first start).

        Raise SnapshotError, naming the location, when it exists but cannot be read.
        """

    @abstractmethod
    def write(self, data: bytes) -> None:
        """Write snapshot bytes whole or not at all; raise OSError when they were not written.

        It touches no state, only the snapshot's place, so it may run in a thread.
        """

    def snapshot(self) -> bytes:
        """The state as snapshot bytes, taken on the event loop: the loop changes the state, so
        reading it from another thread would race its writes ("dictionary changed size")."""
        return json.dumps(self.dump(), separators=(",", ":")).encode()

    def load_bytes(self, raw: bytes) -> None:
        try:
            self.load(json.loads(raw.decode("utf-8")))
        except (ValueError, TypeError, KeyError) as error:
            raise SnapshotError(
                f"STATE_URL: {self.location} is not a readable observer snapshot ({error}); "
                "move it away to start empty"
            ) from None

    def load_snapshot(self) -> None:
        """Load the snapshot if there is one; none is a first start."""
        raw = self.read_snapshot()
        if raw is not None:
            self.load_bytes(raw)

    def save(self) -> None:
        """Take and write a snapshot at once, blocking: for the last one, at shutdown."""
        self.write(self.snapshot())
