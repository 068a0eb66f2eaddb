"""The state store seen from outside: one 503 rule, declared keys, pending work per environment."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from observer.leadtime import commitlist
from observer.state import redis as redis_store
from observer.state.base import kinds
from observer.state.redis import RedisStore
from tests.conftest import API_TOKEN, Service
from tests.processes import free_port, start_observer
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


def test_pending_work_an_earlier_version_kept_in_one_key_is_still_done(
    start: Callable[..., Service], redis_server: RedisServer
) -> None:
    """An upgrade finds `{observer}:pending:all`; its environments' work is moved and done."""
    pair = "octo/app production"
    commits = [(f"{n:040x}", 1_700_000_000.0 + n) for n in range(3)]

    async def seed() -> None:
        store = RedisStore(kinds(seen=1000, cache=1000), redis_server.url)
        entry = [1_700_100_000.0, "success", "api:deployment:octo/app:d1:success", None, 1.0, 0]
        await store.put_many("history", {pair: {"entries": [entry]}})
        await store.put_many("shipment", {entry[2]: commitlist.encode(commits)})
        await store.put_many("pending", {"all": {pair: [1.0, 1]}})
        await store.close()

    asyncio.run(seed())
    service = start(state_url=redis_server.url)
    labels = {"repository": "octo/app", "environment": "production"}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if service.metrics().get("dora_lead_time_seconds_count", **labels) == len(commits):
            break
        time.sleep(0.05)
    assert service.metrics().get("dora_lead_time_seconds_count", **labels) == len(commits)
    with redis_server.client() as client:
        assert not client.exists("{observer}:pending:all")


def test_a_store_unreachable_at_start_is_one_warning_and_503s() -> None:
    """Issue 16 item 12: the service starts, says it once, and refuses to count until the store
    answers."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    env = {"STATE_URL": url, "STATE_TIMEOUT": "0.5", "API_TOKEN": API_TOKEN}
    with start_observer(env, secret="a-webhook-secret-of-32-characters") as observer:
        headers = {"Authorization": f"Bearer {API_TOKEN}"}
        answer = httpx.post(
            f"{observer.url}/api/event", json=_deployment("staging"), headers=headers
        )
        assert answer.status_code == 503
        assert httpx.get(f"{observer.url}/readyz").status_code == 503
        lines = observer.log_lines(lambda lines: any(line.get("status") == 503 for line in lines))
        assert "Traceback" not in observer.logs()
    requests = ("api event", "webhook delivery")
    warnings = [
        line
        for line in lines
        if line["level"] in ("warning", "error") and line["message"] not in requests
    ]
    assert len(warnings) == 1, warnings
    assert "state store cannot be reached" in warnings[0]["message"]
