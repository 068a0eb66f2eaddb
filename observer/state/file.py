"""The store in memory, saved to a snapshot on a volume: one replica that survives restarts."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from observer.state.base import Kind
from observer.state.snapshot import SnapshotError, SnapshotStore

__all__ = ["FileStore", "SnapshotError"]


class FileStore(SnapshotStore):
    def __init__(
        self, kinds: Mapping[str, Kind], path: Path, *, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__(kinds, clock=clock)
        self.path = path

    @property
    def mode(self) -> str:
        return "file"

    @property
    def location(self) -> str:
        return str(self.path)

    def read_snapshot(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            if not self.path.parent.is_dir():
                raise SnapshotError(
                    f"STATE_URL: directory {self.path.parent} does not exist"
                ) from None
            return None
        except OSError as error:
            raise SnapshotError(f"STATE_URL: cannot read {self.path}: {error.strerror}") from None

    def write(self, data: bytes) -> None:
        """Write snapshot bytes whole or not at all: temporary file, fsync, rename.

        It touches no state, only the file, so it may run in a thread while the loop goes on.
        """
        directory = self.path.parent
        fd, temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=directory)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        # The rename itself is durable only once the directory is.
        directory_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(directory_fd)
        finally:
            os.close(directory_fd)

    def save(self) -> None:
        """Take and write a snapshot at once, blocking: for the last one, at shutdown."""
        self.write(self.snapshot())
