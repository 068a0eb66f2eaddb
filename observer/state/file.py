"""The store in memory, saved to a snapshot on a volume: one replica that survives restarts."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from observer.state.base import Kind
from observer.state.snapshot import SnapshotError, SnapshotStore

__all__ = ["FileStore", "SnapshotError"]


class FileStore(SnapshotStore):
    def __init__(self, kinds: Mapping[str, Kind], path: Path) -> None:
        super().__init__(kinds)
        self.path = path

    @property
    def mode(self) -> str:
        return "file"

    @property
    def location(self) -> str:
        return str(self.path)

    def read(self) -> bytes | None:
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
        """Write the snapshot whole or not at all: temporary file, fsync, rename."""
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
