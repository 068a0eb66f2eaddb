"""The store in memory, saved to a snapshot object in a bucket: Cloud Storage, S3 or Blob Storage.

One writer: every save is conditional on the object's version (ETag or generation) that this
process read at start or wrote last, and the first save on an empty bucket creates the object
only if it is still absent. A second replica started by mistake therefore cannot overwrite the
first's state: its save is refused, and from then on it saves nothing and reports not ready.

obstore talks to all three clouds, each with its own credential chain read from the environment
(workload identity, task roles, managed identity; an S3-compatible endpoint through
``AWS_ENDPOINT_URL``), so observer's settings hold no keys.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import obstore
from obstore.exceptions import AlreadyExistsError, BaseError, NotFoundError, PreconditionError

from observer.state.base import Kind, StoreUnavailable
from observer.state.snapshot import SnapshotConflict, SnapshotError, SnapshotStore

if TYPE_CHECKING:
    from obstore import PutMode, UpdateVersion
    from obstore.store import ObjectStore, RetryConfig

SCHEMES = ("gs", "s3", "az")
NOT_FOUND = (NotFoundError, FileNotFoundError)
# How S3 and Cloud Storage (NoSuchBucket) and Blob Storage (ContainerNotFound) tell a missing
# bucket from a missing object, both 404.
NO_BUCKET = ("<Code>NoSuchBucket</Code>", "<Code>ContainerNotFound</Code>")


def _first_line(error: BaseException) -> str:
    # obstore appends a multi-line debug dump of the request; the first line says what failed.
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def split_url(url: str) -> tuple[str, str, str]:
    """``s3://BUCKET/PATH`` into (scheme, bucket, path); ValueError when a part is missing."""
    parts = urlsplit(url)
    scheme, bucket, path = parts.scheme.lower(), parts.netloc, unquote(parts.path).lstrip("/")
    if scheme not in SCHEMES or not bucket or not path or path.endswith("/"):
        raise ValueError(f"a bucket URL is {scheme or 's3'}://BUCKET/PATH/TO/OBJECT")
    return scheme, bucket, path


def connect(scheme: str, bucket: str) -> ObjectStore:
    """A client for the bucket, configured from the environment as each cloud's tools are.

    Its HTTP options (timeouts: 5 s to connect, 30 s a request) stay obstore's: options given
    here would replace those the environment sets, such as AWS_ALLOW_HTTP for a local endpoint.
    """
    # A few quick retries: a save that still fails is retried at the next interval anyway.
    retry: RetryConfig = {
        "max_retries": 3,
        "retry_timeout": timedelta(seconds=30),
        "backoff": {
            "init_backoff": timedelta(milliseconds=100),
            "max_backoff": timedelta(seconds=2),
        },
    }
    return obstore.store.from_url(f"{scheme}://{bucket}", retry_config=retry)


class BucketStore(SnapshotStore):
    def __init__(
        self, kinds: Mapping[str, Kind], url: str, *, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__(kinds, clock=clock)
        self.scheme, self.bucket, self.key = split_url(url)
        self._objects = connect(self.scheme, self.bucket)
        # The version this process last read or wrote; None: the object must not exist yet.
        self._version: UpdateVersion | None = None
        self._conflict: str | None = None
        # The bytes the object holds as far as this process knows: an unchanged state is not
        # written again, so an idle process (an old revision draining) never takes the object
        # from the one that now serves.
        self._known: bytes | None = None

    @property
    def mode(self) -> str:
        return "bucket"

    @property
    def location(self) -> str:
        return f"{self.scheme}://{self.bucket}/{self.key}"

    def read_snapshot(self) -> bytes | None:
        try:
            result = obstore.get(self._objects, self.key)
            raw = bytes(result.bytes())
        except NOT_FOUND as error:
            if any(code in str(error) for code in NO_BUCKET):
                raise SnapshotError(
                    f"STATE_URL: bucket {self.scheme}://{self.bucket} does not exist"
                ) from None
            self._version = None
            return None  # a first start
        except BaseError as error:
            raise SnapshotError(
                f"STATE_URL: cannot read {self.location}: {_first_line(error)}"
            ) from None
        self._version, self._known = _version(result.meta), raw
        return raw

    def write(self, data: bytes) -> None:
        if self._conflict is not None:
            return  # refused once already: this process's state must never replace the other's
        if data == self._known:
            return
        mode: PutMode = self._version if self._version is not None else "create"
        try:
            # One request, never multipart: only a single PUT can be conditional.
            put = obstore.put(self._objects, self.key, data, mode=mode, use_multipart=False)
        except (PreconditionError, AlreadyExistsError):
            if self._wrote_already(data):
                return
            self._conflict = (
                f"STATE_URL: {self.location} was written by another process since this one "
                "read or wrote it; not overwriting it, and not ready. Run one replica with a "
                "bucket (or Redis for several), then restart this one"
            )
            raise SnapshotConflict(self._conflict) from None
        except BaseError as error:
            raise OSError(f"cannot write {self.location}: {_first_line(error)}") from None
        self._version, self._known = _version(put), data

    def _wrote_already(self, data: bytes) -> bool:
        """Whether a refusal is only this process's own write, retried after a lost answer."""
        try:
            result = obstore.get(self._objects, self.key)
            if bytes(result.bytes()) != data:
                return False
        except (*NOT_FOUND, BaseError):
            return False
        self._version, self._known = _version(result.meta), data
        return True

    async def ping(self) -> None:
        if self._conflict is not None:
            raise StoreUnavailable(self._conflict)


def _version(meta: Mapping[str, object]) -> UpdateVersion:
    """What a conditional write must match: the ETag, and the generation where there is one."""
    version: UpdateVersion = {}
    e_tag, number = meta.get("e_tag"), meta.get("version")
    if isinstance(e_tag, str):
        version["e_tag"] = e_tag
    if isinstance(number, str):
        version["version"] = number
    return version
