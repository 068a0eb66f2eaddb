"""The store in Redis or Valkey, shared by every replica.

Every key carries the hash tag ``{observer}`` so that a clustered Redis keeps them in one slot,
where scripts and transactions may touch several. Each kind is bounded twice: every key has a
time to live, and an index (a sorted set by last write) trims the oldest past the capacity.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError, WatchError

from observer.state.base import Change, Json, Kind, R, StoreUnavailable

PREFIX = "{observer}:"
MAX_UPDATE_ATTEMPTS = 50

# Remember a member unless it is remembered and younger than the time to live; trim the set.
_ADD = """
local now, ttl, cap = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local score = redis.call('ZSCORE', KEYS[1], ARGV[4])
if score and tonumber(score) > now - ttl then return 0 end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
local extra = redis.call('ZCARD', KEYS[1]) - cap
if extra > 0 then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, extra - 1) end
return 1
"""

# Drop the values whose index entry is older than the time to live or past the capacity.
_TRIM = """
local now, ttl, cap = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
local extra = redis.call('ZCARD', KEYS[1]) - #gone - cap
if extra > 0 then
  for _, member in ipairs(redis.call('ZRANGE', KEYS[1], #gone, #gone + extra - 1)) do
    table.insert(gone, member)
  end
end
for _, member in ipairs(gone) do
  redis.call('DEL', ARGV[1] .. member)
  redis.call('ZREM', KEYS[1], member)
end
return #gone
"""

_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@contextlib.asynccontextmanager
async def _reachable() -> AsyncIterator[None]:
    try:
        yield
    except (RedisError, OSError) as error:
        # The message names the failure, never the URL (it may hold a password).
        raise StoreUnavailable(f"state store unavailable: {type(error).__name__}") from None


class RedisStore:
    def __init__(self, kinds: Mapping[str, Kind], url: str, *, timeout: float = 2.0) -> None:
        self.kinds = kinds
        self._redis: aioredis.Redis = aioredis.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            health_check_interval=30,
        )
        self._add = self._redis.register_script(_ADD)
        self._trim = self._redis.register_script(_TRIM)
        self._unlock = self._redis.register_script(_UNLOCK)

    def __repr__(self) -> str:
        return "RedisStore()"

    @property
    def mode(self) -> str:
        return "redis"

    def _set_key(self, kind: str) -> str:
        return f"{PREFIX}set:{kind}"

    def _value_prefix(self, kind: str) -> str:
        return f"{PREFIX}{kind}:"

    def _index(self, kind: str) -> str:
        return f"{PREFIX}index:{kind}"

    async def add(self, kind: str, member: str) -> bool:
        spec = self.kinds[kind]
        async with _reachable():
            added = await self._add(
                keys=[self._set_key(kind)], args=[time.time(), spec.ttl, spec.capacity, member]
            )
        return bool(added)

    async def contains(self, kind: str, member: str) -> bool:
        async with _reachable():
            score = await self._redis.zscore(self._set_key(kind), member)
        return score is not None and score > time.time() - self.kinds[kind].ttl

    async def discard(self, kind: str, member: str) -> None:
        async with _reachable():
            await self._redis.zrem(self._set_key(kind), member)

    async def get_many(self, kind: str, keys: Iterable[str]) -> dict[str, Json]:
        keys = list(dict.fromkeys(keys))
        if not keys:
            return {}
        prefix = self._value_prefix(kind)
        async with _reachable():
            values = await self._redis.mget([prefix + key for key in keys])
        return {
            key: json.loads(value)
            for key, value in zip(keys, values, strict=True)
            if value is not None
        }

    async def put_many(self, kind: str, items: Mapping[str, Json]) -> None:
        if not items:
            return
        spec, prefix, now = self.kinds[kind], self._value_prefix(kind), time.time()
        async with _reachable(), self._redis.pipeline(transaction=True) as pipe:
            for key, value in items.items():
                pipe.set(prefix + key, _dumps(value), px=_millis(spec.ttl))
            pipe.zadd(self._index(kind), dict.fromkeys(items, now))
            await pipe.execute()
            await self._trim_kind(kind, now)

    async def append_many(self, kind: str, items: Mapping[str, Json], limit: int) -> None:
        if not items:
            return
        spec, prefix, now = self.kinds[kind], self._value_prefix(kind), time.time()
        async with _reachable(), self._redis.pipeline(transaction=True) as pipe:
            for key, value in items.items():
                pipe.rpush(prefix + key, _dumps(value))
                pipe.ltrim(prefix + key, -limit, -1)
                pipe.pexpire(prefix + key, _millis(spec.ttl))
            pipe.zadd(self._index(kind), dict.fromkeys(items, now))
            await pipe.execute()
            await self._trim_kind(kind, now)

    async def lists(self, kind: str, keys: Iterable[str]) -> dict[str, list[Json]]:
        keys = list(dict.fromkeys(keys))
        if not keys:
            return {}
        prefix = self._value_prefix(kind)
        async with _reachable(), self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.lrange(prefix + key, 0, -1)
            found = await pipe.execute()
        return {
            key: [json.loads(v) for v in values]
            for key, values in zip(keys, found, strict=True)
            if values
        }

    async def update(self, kind: str, key: str, change: Change[R]) -> R:
        spec, name, now = self.kinds[kind], self._value_prefix(kind) + key, time.time()
        async with _reachable(), self._redis.pipeline(transaction=True) as pipe:
            for _ in range(MAX_UPDATE_ATTEMPTS):
                try:
                    await pipe.watch(name)
                    raw = await pipe.get(name)
                    value, result = change(None if raw is None else json.loads(raw))
                    pipe.multi()  # type: ignore[no-untyped-call]
                    if value is None:
                        pipe.delete(name)
                        pipe.zrem(self._index(kind), key)
                    else:
                        pipe.set(name, _dumps(value), px=_millis(spec.ttl))
                        pipe.zadd(self._index(kind), {key: now})
                    await pipe.execute()
                except WatchError:
                    continue  # another replica wrote it first: read it again
                await self._trim_kind(kind, now)
                return result
        raise StoreUnavailable(
            f"state store: {kind} kept changing under {MAX_UPDATE_ATTEMPTS} tries"
        )

    async def _trim_kind(self, kind: str, now: float) -> None:
        spec = self.kinds[kind]
        await self._trim(
            keys=[self._index(kind)], args=[self._value_prefix(kind), now, spec.ttl, spec.capacity]
        )

    async def lock(self, name: str, ttl: float) -> str | None:
        token = secrets.token_hex(8)
        async with _reachable():
            taken = await self._redis.set(f"{PREFIX}lock:{name}", token, nx=True, px=_millis(ttl))
        return token if taken else None

    async def unlock(self, name: str, token: str) -> None:
        async with _reachable():
            await self._unlock(keys=[f"{PREFIX}lock:{name}"], args=[token])

    async def ping(self) -> None:
        async with _reachable():
            await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _millis(seconds: float) -> int:
    """A time to live for Redis, in milliseconds: a Kind's ttl is not always whole seconds."""
    return max(int(seconds * 1000), 1)
