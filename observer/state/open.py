"""``STATE_URL`` to a store."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from observer.settings import Settings
from observer.state.base import Store, kinds
from observer.state.file import FileStore
from observer.state.memory import MemoryStore


def open_store(settings: Settings) -> Store:
    """The store ``STATE_URL`` names; a file store has loaded its snapshot (SnapshotError)."""
    table = kinds(seen=settings.dedup_capacity, cache=settings.cache_size)
    url = settings.state_url.get_secret_value() if settings.state_url else ""
    if not url:
        return MemoryStore(table)
    scheme = urlsplit(url).scheme
    if scheme == "file":
        store = FileStore(table, Path(unquote(urlsplit(url).path)))
        store.load_snapshot()
        return store
    # Imported only when used, so the memory and file modes need no Redis client.
    from observer.state.redis import RedisStore

    return RedisStore(table, url, timeout=settings.state_timeout)
