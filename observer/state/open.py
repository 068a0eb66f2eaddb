"""``STATE_URL`` to a store."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from observer.settings import Settings
from observer.state.base import Store, kinds
from observer.state.file import FileStore, SnapshotError
from observer.state.memory import MemoryStore


def open_store(settings: Settings) -> Store:
    """The store ``STATE_URL`` names; a file or bucket store has loaded its snapshot
    (SnapshotError)."""
    table = kinds(seen=settings.dedup_capacity, cache=settings.cache_size)
    url = settings.state_url.get_secret_value() if settings.state_url else ""
    if not url:
        return MemoryStore(table)
    scheme = urlsplit(url).scheme
    if scheme == "file":
        store = FileStore(table, Path(unquote(urlsplit(url).path)))
        store.load_snapshot()
        return store
    if scheme in ("gs", "s3", "az"):
        # Imported only when used: the bucket client is an optional extra (observer[bucket]).
        try:
            from observer.state.bucket import BucketStore
        except ImportError:
            raise SnapshotError(
                f"STATE_URL: {scheme}:// needs the bucket client: pip install 'observer[bucket]'"
            ) from None
        bucket = BucketStore(table, url)
        bucket.load_snapshot()
        return bucket
    # Imported only when used, so the memory and file modes need no Redis client.
    from observer.state.redis import RedisStore

    return RedisStore(table, url, timeout=settings.state_timeout)
