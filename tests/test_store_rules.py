"""The state store seen from outside: one 503 rule, declared keys, pending work per environment."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest

from observer.state import redis as redis_store
from tests.conftest import Service
from tests.redis_server import RedisServer, running_redis

SCRIPTS = {name: getattr(redis_store, name) for name in dir(redis_store) if name.isupper()}
SCRIPTS = {
    name: text for name, text in SCRIPTS.items() if isinstance(text, str) and "redis." in text
}
# redis.call('COMMAND', key, ...): the key is the first argument after the command's name.
CALL = re.compile(r"redis\.(?:p?call)\(\s*'([A-Z]+)'\s*,\s*([^,)]+)")


def _deployment(environment: str, **extra: str) -> dict[str, str]:
    return {
        "type": "deployment",
        "repository": "octo/app",
        "environment": environment,
        "status": "success",
        "timestamp": "2026-11-23T10:00:00Z",
        "sha": "a" * 40,
        **extra,
    }


def test_while_redis_is_down_an_event_without_an_id_gets_503_and_counts_nothing(
    start: Callable[..., Service], redis_server: RedisServer
) -> None:
    """Issue 16 item 12: one rule, whatever the event: with an id or without, any environment."""
    service = start(state_url=redis_server.url, state_timeout=0.5)
    assert service.push_events(_deployment("staging")).status_code == 200
    before = service.metrics().domain()
    redis_server.stop()
    for item in (_deployment("staging"), _deployment("production"), _deployment("qa", id="q1")):
        answer = service.push_events(item)
        assert answer.status_code == 503, item
        assert answer.headers["retry-after"]
    survey = {"type": "survey", "team": "payments", "satisfaction": 4}
    assert service.push_events(survey).status_code == 503
    assert service.metrics().domain() == before
    unavailable = service.metrics().get(
        "observer_api_events_total", type="deployment", result="unavailable"
    )
    assert unavailable == 3


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with running_redis() as server:
        yield server


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_every_redis_script_names_only_keys_it_was_given(name: str) -> None:
    """Issue 16 item 17: a clustered Redis refuses a key a script builds (from ARGV or a
    member); every key a script touches must come from KEYS."""
    calls = CALL.findall(SCRIPTS[name])
    assert calls, name
    for command, key in calls:
        key = key.strip()
        assert key.startswith("KEYS[") and key.endswith("]"), (name, command, key)
        assert ".." not in key and "ARGV" not in key, (name, command, key)


def test_pending_work_is_one_key_per_environment(
    start: Callable[..., Service], redis_server: RedisServer
) -> None:
    """Issue 16 item 17: no single key that every replica rewrites and reads."""
    service = start(state_url=redis_server.url, settle_seconds=3600)
    for environment in ("production", "prod"):
        assert service.push_events(_deployment(environment, id=environment)).status_code == 200
    with redis_server.client() as client:
        pending = sorted(client.scan_iter(match="{observer}:pending:*"))
    assert pending == ["{observer}:pending:octo/app prod", "{observer}:pending:octo/app production"]
