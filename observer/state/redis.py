"""The store in Redis or Valkey, shared by every replica.

Every key carries the hash tag ``{observer}`` so that a clustered Redis keeps them in one slot,
where scripts and transactions may touch several. Each kind is bounded twice: every key has a
time to live, and an index (a sorted set by last write) trims the oldest past the capacity.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, WatchError

from observer.state.base import (
    COMMITTED,
    Change,
    Json,
    Kind,
    R,
    StoreUnavailable,
    Verdict,
    Writes,
)

PREFIX = "{observer}:"
MAX_UPDATE_ATTEMPTS = 50
# A command whose connection dropped is sent again on a new one, at once. Safe for every call
# here: reads, a commit (it finds its own token), a lock (its own token), writes of a value.
CONNECTION_RETRIES = 2

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

# Forget the values of an index's oldest members past its capacity. Every key is declared:
# the members are read first (``_trim_kind``), and one written again since (a newer score) stays.
_TRIM = """
local cutoff = tonumber(ARGV[1])
local gone = 0
for i = 2, #KEYS do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) <= cutoff then
    redis.call('DEL', KEYS[i])
    redis.call('ZREM', KEYS[1], ARGV[i])
    gone = gone + 1
  end
end
return gone
"""

# One unit (observer.state.unit), whole or not at all. ARGV[1] is the plan, in JSON, naming
# keys by their place in KEYS and values by theirs in ARGV; every key touched is in KEYS, as a
# clustered Redis requires. A unit sent again after a dropped connection finds its own token.
_COMMIT = """
local plan = cjson.decode(ARGV[1])
local now = plan.now
local marker = plan.marker
if redis.call('ZSCORE', KEYS[marker[1]], marker[2]) then return {'committed', {}} end
for _, c in ipairs(plan.claims) do
  local score = redis.call('ZSCORE', KEYS[c[1]], c[2])
  if score and tonumber(score) > now - c[3] then
    if c[4] == 1 then return {'duplicate', {}} end
    return {'conflict', {}}
  end
end
for _, e in ipairs(plan.expected) do
  local raw = redis.call('GET', KEYS[e[1]])
  if e[2] == false then
    if raw then return {'conflict', {}} end
  elseif not raw or redis.sha1hex(raw) ~= e[2] then
    return {'conflict', {}}
  end
end
for _, c in ipairs(plan.claims) do redis.call('ZADD', KEYS[c[1]], now, c[2]) end
redis.call('ZADD', KEYS[marker[1]], now, marker[2])
for _, p in ipairs(plan.puts) do
  redis.call('SET', KEYS[p[1]], ARGV[p[2]], 'PX', p[3])
  redis.call('ZADD', KEYS[p[4]], now, p[5])
end
for _, d in ipairs(plan.deletes) do
  redis.call('DEL', KEYS[d[1]])
  redis.call('ZREM', KEYS[d[2]], d[3])
end
for _, a in ipairs(plan.appends) do
  redis.call('RPUSH', KEYS[a[1]], ARGV[a[2]])
  redis.call('LTRIM', KEYS[a[1]], -a[3], -1)
  redis.call('PEXPIRE', KEYS[a[1]], a[4])
  redis.call('ZADD', KEYS[a[5]], now, a[6])
end
for _, s in ipairs(plan.sets) do
  redis.call('ZREMRANGEBYSCORE', KEYS[s[1]], '-inf', now - s[2])
  local extra = redis.call('ZCARD', KEYS[s[1]]) - s[3]
  if extra > 0 then redis.call('ZREMRANGEBYRANK', KEYS[s[1]], 0, extra - 1) end
end
local sizes = {}
for _, x in ipairs(plan.indexes) do
  redis.call('ZREMRANGEBYSCORE', KEYS[x[1]], '-inf', now - x[2])
  table.insert(sizes, redis.call('ZCARD', KEYS[x[1]]))
end
return {'committed', sizes}
"""

# Take a free lock; the holder's own token sent again (a retry after a dropped connection)
# finds it taken by itself.
_LOCK = """
local held = redis.call('GET', KEYS[1])
if held == ARGV[1] then return 1 end
if held then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


# Extend a lock only while its holder's token is in it: an expired or taken lock stays so.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
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
    def __init__(
        self,
        kinds: Mapping[str, Kind],
        url: str,
        *,
        timeout: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.kinds = kinds
        self._clock = clock
        self._redis: aioredis.Redis = aioredis.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            health_check_interval=30,
            retry=Retry(NoBackoff(), CONNECTION_RETRIES, (RedisConnectionError,)),
        )
        self._add = self._redis.register_script(_ADD)
        self._trim = self._redis.register_script(_TRIM)
        self._lock = self._redis.register_script(_LOCK)
        self._unlock = self._redis.register_script(_UNLOCK)
        self._renew = self._redis.register_script(_RENEW)
        self._commit = self._redis.register_script(_COMMIT)

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
                keys=[self._set_key(kind)], args=[self._clock(), spec.ttl, spec.capacity, member]
            )
        return bool(added)

    async def contains(self, kind: str, member: str) -> bool:
        async with _reachable():
            score = await self._redis.zscore(self._set_key(kind), member)
        return score is not None and score > self._clock() - self.kinds[kind].ttl

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
        spec, prefix, now = self.kinds[kind], self._value_prefix(kind), self._clock()
        async with _reachable(), self._redis.pipeline(transaction=True) as pipe:
            for key, value in items.items():
                pipe.set(prefix + key, _dumps(value), px=_millis(spec.ttl))
            pipe.zadd(self._index(kind), dict.fromkeys(items, now))
            await pipe.execute()
            await self._trim_kind(kind, now)

    async def append_many(self, kind: str, items: Mapping[str, Json], limit: int) -> None:
        if not items:
            return
        spec, prefix, now = self.kinds[kind], self._value_prefix(kind), self._clock()
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
        spec, name, now = self.kinds[kind], self._value_prefix(kind) + key, self._clock()
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

    async def _trim_kind(self, kind: str, now: float, size: int | None = None) -> None:
        """Keep a kind's index within its time to live and capacity.

        A value's key expires with its time to live by itself; past the capacity the oldest
        are deleted, naming each key (a clustered Redis refuses a key a script builds).
        """
        spec, index = self.kinds[kind], self._index(kind)
        if size is None:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.zremrangebyscore(index, "-inf", now - spec.ttl)
                pipe.zcard(index)
                size = int((await pipe.execute())[1])
        extra = size - spec.capacity
        if extra <= 0:
            return
        found: list[Any] = await self._redis.zrange(index, 0, extra - 1, withscores=True)
        oldest = [(str(member), float(score)) for member, score in found]
        if not oldest:
            return
        prefix = self._value_prefix(kind)
        await self._trim(
            keys=[index, *(prefix + member for member, _ in oldest)],
            args=[max(score for _, score in oldest), *(member for member, _ in oldest)],
        )

    async def read(self, kind: str, key: str) -> tuple[Json | None, Any]:
        async with _reachable():
            raw = await self._redis.get(self._value_prefix(kind) + key)
        if raw is None:
            return None, False
        return json.loads(raw), _digest(str(raw))

    async def keys(self, kind: str) -> list[str]:
        async with _reachable():
            found = await self._redis.zrange(self._index(kind), 0, -1)
        return [str(member) for member in found]

    async def commit(self, writes: Writes) -> Verdict:
        """The unit in one script: its claims and expectations checked, then every write."""
        plan = _Plan(self, writes, self._clock())
        async with _reachable():
            verdict, sizes = await self._commit(keys=plan.keys, args=[plan.encode(), *plan.args])
            if verdict == "committed":
                for kind, size in zip(plan.indexed, sizes, strict=False):
                    if int(size) > self.kinds[kind].capacity:
                        await self._trim_kind(kind, plan.now, int(size))
        return Verdict(verdict)

    async def lock(self, name: str, ttl: float, token: str | None = None) -> str | None:
        token = token or secrets.token_hex(8)
        async with _reachable():
            taken = await self._lock(keys=[f"{PREFIX}lock:{name}"], args=[token, _millis(ttl)])
        return token if taken else None

    async def unlock(self, name: str, token: str) -> None:
        async with _reachable():
            await self._unlock(keys=[f"{PREFIX}lock:{name}"], args=[token])

    async def renew(self, name: str, token: str, ttl: float) -> bool:
        async with _reachable():
            renewed = await self._renew(keys=[f"{PREFIX}lock:{name}"], args=[token, _millis(ttl)])
        return bool(renewed)

    async def ping(self) -> None:
        async with _reachable():
            await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()


class _Plan:
    """A unit as the commit script takes it: keys in KEYS, values in ARGV, the rest in JSON."""

    def __init__(self, store: RedisStore, writes: Writes, now: float) -> None:
        self.now = now
        self.keys: list[str] = []
        self.args: list[str] = []
        self._places: dict[str, int] = {}
        self.indexed: list[str] = []
        kinds = store.kinds
        # An identity's set is trimmed by the script itself: every key in it is declared.
        sets = {claim.kind for claim in writes.claims} | {COMMITTED}
        self.doc: dict[str, Any] = {
            "now": now,
            "marker": [self._key(store._set_key(COMMITTED)), writes.token],
            "claims": [
                [
                    self._key(store._set_key(claim.kind)),
                    claim.member,
                    kinds[claim.kind].ttl,
                    int(claim.identity),
                ]
                for claim in writes.claims
            ],
            "expected": [
                [self._key(store._value_prefix(kind) + key), version]
                for (kind, key), version in writes.expected.items()
            ],
            "puts": [],
            "deletes": [],
            "appends": [],
            "sets": [
                [self._key(store._set_key(kind)), kinds[kind].ttl, kinds[kind].capacity]
                for kind in sorted(sets)
            ],
        }
        for (kind, key), value in writes.values.items():
            name, index = store._value_prefix(kind) + key, store._index(kind)
            if value is None:
                self.doc["deletes"].append([self._key(name), self._key(index), key])
            else:
                self.doc["puts"].append(
                    [
                        self._key(name),
                        self._arg(_dumps(value)),
                        _millis(kinds[kind].ttl),
                        self._key(index),
                        key,
                    ]
                )
        for kind, key, value, limit in writes.appends:
            self.doc["appends"].append(
                [
                    self._key(store._value_prefix(kind) + key),
                    self._arg(_dumps(value)),
                    limit,
                    _millis(kinds[kind].ttl),
                    self._key(store._index(kind)),
                    key,
                ]
            )
        self.indexed = sorted(
            {kind for kind, _ in writes.values} | {kind for kind, _, _, _ in writes.appends}
        )
        self.doc["indexes"] = [
            [self._key(store._index(kind)), kinds[kind].ttl] for kind in self.indexed
        ]

    def _key(self, name: str) -> int:
        """The key's place in KEYS (from 1, as Lua counts)."""
        place = self._places.get(name)
        if place is None:
            self.keys.append(name)
            place = self._places[name] = len(self.keys)
        return place

    def _arg(self, value: str) -> int:
        """A value's place in ARGV: ARGV[1] is the plan."""
        self.args.append(value)
        return len(self.args) + 1

    def encode(self) -> str:
        return _dumps(self.doc)


def _digest(raw: str) -> str:
    """The version of a stored value, as the commit script computes it (redis.sha1hex)."""
    return hashlib.sha1(raw.encode("utf-8"), usedforsecurity=False).hexdigest()


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _millis(seconds: float) -> int:
    """A time to live for Redis, in milliseconds: a Kind's ttl is not always whole seconds."""
    return max(int(seconds * 1000), 1)
