"""Missed-delivery recovery, on real processes: a fake GitHub keeps a webhook's deliveries and
really re-sends one, signed, when asked; observer finds what it missed and asks for it once."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jwt
import pytest
from pydantic import ValidationError

from observer.settings import Settings, describe_error
from tests.exposition import Exposition
from tests.fake_github import FakeGitHub, serve
from tests.payloads import pull_request
from tests.processes import ObserverProcess, free_port, start_observer
from tests.redis_server import running_redis
from tests.story import deployment_status, merged_pull, push
from tests.test_github_client import make_key

HOOK = "/orgs/octo-org/hooks/1"
HOOK_SETTING = "orgs/octo-org/hooks/1"


def history() -> list[tuple[str, dict[str, Any]]]:
    """Deliveries of one repository's day: every kind that moves a domain metric."""
    return [
        ("pull_request", pull_request("opened", "octocat", branch="feature/a")),
        ("push", push([("a1", 1.0), ("a2", 1.5)], ref="refs/heads/feature/a")),
        ("pull_request", merged_pull(7, merge="m1", merged_hours=2.0, created_hours=0.5,
                                     head_ref="feature/a")),
        ("push", push([("m1", 2.0)], before="base")),
        ("deployment_status", deployment_status(501, "m1", 3.0, state="failure")),
        ("deployment_status", deployment_status(502, "m1", 3.5)),
        ("push", push([("b1", 4.0)], before="m1")),
        ("deployment_status", deployment_status(503, "b1", 5.0)),
    ]  # fmt: skip


def github_env(fake: FakeGitHub) -> dict[str, str]:
    # One try per request, so a fault shows at once and the next interval is the retry.
    return {"GITHUB_API_URL": fake.url, "GITHUB_TOKEN": "fake-token", "GITHUB_MAX_RETRIES": "0"}


def recovering_env(fake: FakeGitHub, **extra: str) -> dict[str, str]:
    return {
        **github_env(fake),
        "REDELIVER_HOOKS": HOOK_SETTING,
        "REDELIVER_INTERVAL": "0.5",
        **extra,
    }


def scrape(observer: ObserverProcess) -> Exposition:
    return Exposition(httpx.get(f"{observer.url}/metrics", timeout=5).text)


def total(exposition: Exposition, name: str, **match: str) -> float:
    return sum(
        value
        for (sample, labels), value in exposition.samples.items()
        if sample == name and set(match.items()) <= set(labels)
    )


def redeliveries(observer: ObserverProcess, result: str) -> float:
    return total(scrape(observer), "observer_redeliveries_total", result=result)


def counted(observer: ObserverProcess) -> float:
    """Deliveries that reached the recorder: accepted or ignored, never a duplicate."""
    exposition = scrape(observer)
    return sum(
        total(exposition, "observer_webhook_deliveries_total", result=result)
        for result in ("accepted", "ignored")
    )


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.1)


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    with serve(FakeGitHub()) as github:
        github.hook_attempts[HOOK] = []
        yield github


def test_deliveries_missed_while_down_are_redelivered_once_and_count_as_never_missed(
    fake: FakeGitHub,
) -> None:
    deliveries = history()
    with start_observer(github_env(fake)) as reference:
        mirror = f"{reference.url}/webhook"
        # Observer is down: GitHub records each of these as failed.
        missed = [fake.deliver(HOOK, event, payload, None) for event, payload in deliveries[:5]]
        for guid in missed:
            assert fake.mirror(guid, mirror) == 200
        assert {a["status_code"] for a in fake.attempts(HOOK)} == {502}
        port = free_port()
        fake.webhook_target = f"http://127.0.0.1:{port}/webhook"
        with start_observer(recovering_env(fake), port=port) as observer:
            wait_for(lambda: counted(observer) == 5, "the missed deliveries counted")
            # Live deliveries, and one processed whose answer GitHub never got in time.
            for event, payload in deliveries[5:]:
                guid = fake.deliver(HOOK, event, payload, fake.webhook_target)
                fake.mirror(guid, mirror)
            late = fake.deliver(
                HOOK, "push", push([("c1", 6.0)], before="b1"), fake.webhook_target,
                recorded_status=504,
            )  # fmt: skip
            fake.mirror(late, mirror)
            wait_for(lambda: redeliveries(observer, "skipped") == 1, "the late one skipped")
            time.sleep(1.5)  # three more checks: none asks again

            assert redeliveries(observer, "requested") == 5
            assert redeliveries(observer, "failed") == 0
            assert redeliveries(observer, "skipped") == 1
            asked = [a["guid"] for a in fake.attempts(HOOK) if a["redelivery"]]
            assert sorted(asked) == sorted(missed)
            assert len(fake.redeliveries) == 5
            exposition = scrape(observer)
            assert total(exposition, "observer_webhook_deliveries_total", result="duplicate") == 0
            assert counted(observer) == len(deliveries) + 1

            wait_for(
                lambda: scrape(observer).domain() == scrape(reference).domain(),
                "the same numbers as an observer that got every delivery",
            )
            numbers = scrape(observer)
            assert total(numbers, "dora_deployments_total", status="success") == 2
            assert total(numbers, "dora_deployments_total", status="failure") == 1
            assert total(numbers, "github_pull_requests_total", action="opened") == 1
            assert total(numbers, "github_pull_requests_total", action="merged") == 1
            assert total(numbers, "dora_deployment_recovery_seconds_count") == 1
            logs = observer.logs()
            assert "redelivery requested" in logs
            assert "missed deliveries checked" in logs


def test_faults_of_the_deliveries_api_are_counted_and_retried_at_the_next_interval(
    fake: FakeGitHub,
) -> None:
    # Pages of two: five missed deliveries take three pages, by the Link header's cursor.
    fake.deliveries_page_size = 2
    fake.deliveries_list_failures = 2
    fake.redelivery_failures = 1
    missed = [fake.deliver(HOOK, event, payload, None) for event, payload in history()[:5]]
    port = free_port()
    fake.webhook_target = f"http://127.0.0.1:{port}/webhook"
    with start_observer(recovering_env(fake), port=port) as observer:
        wait_for(lambda: redeliveries(observer, "requested") == 5, "every one requested")
        wait_for(lambda: counted(observer) == 5, "every one counted")
        time.sleep(1.0)
        assert observer.process.poll() is None
        exposition = scrape(observer)
        assert total(exposition, "observer_redeliveries_total", result="requested") == 5
        assert total(exposition, "observer_redeliveries_total", result="failed") == 1
        assert total(exposition, "observer_github_api_requests_total", status="500") == 3
        asked = [a["guid"] for a in fake.attempts(HOOK) if a["redelivery"]]
        assert sorted(asked) == sorted(missed)
        logs = observer.logs()
        assert "missed deliveries not checked; tried again at the next interval" in logs
        assert "redelivery not requested; tried again at the next interval" in logs


def test_two_replicas_sharing_redis_redeliver_each_missed_delivery_once(
    fake: FakeGitHub,
) -> None:
    missed = [fake.deliver(HOOK, event, payload, None) for event, payload in history()]
    port = free_port()
    fake.webhook_target = f"http://127.0.0.1:{port}/webhook"
    with (
        running_redis() as redis_server,
        start_observer(recovering_env(fake, STATE_URL=redis_server.url), port=port) as first,
        start_observer(recovering_env(fake, STATE_URL=redis_server.url)) as second,
    ):
        replicas = (first, second)

        def requested() -> float:
            return sum(redeliveries(replica, "requested") for replica in replicas)

        wait_for(lambda: requested() == len(missed), "every one requested")
        wait_for(lambda: sum(counted(r) for r in replicas) == len(missed), "every one counted")
        time.sleep(1.5)
        assert requested() == len(missed)
        assert sum(redeliveries(replica, "skipped") for replica in replicas) == 0
        asked = [a["guid"] for a in fake.attempts(HOOK) if a["redelivery"]]
        assert sorted(asked) == sorted(missed)
        assert sum(counted(replica) for replica in replicas) == len(missed)


def test_the_apps_own_webhook_is_read_and_redelivered_with_the_apps_jwt(fake: FakeGitHub) -> None:
    app_hook = "/app/hook"
    fake.hook_attempts[app_hook] = []
    pushes = [push([(f"p{n}", float(n))], before=f"p{n - 1}") for n in range(1, 4)]
    missed = [fake.deliver(app_hook, "push", payload, None) for payload in pushes]
    pem, public_key = make_key()
    port = free_port()
    fake.webhook_target = f"http://127.0.0.1:{port}/webhook"
    env = {
        "GITHUB_API_URL": fake.url,
        "GITHUB_APP_ID": "424242",
        "GITHUB_APP_INSTALLATION_ID": "99",
        "GITHUB_APP_PRIVATE_KEY": pem,
        "REDELIVER_HOOKS": "app",
        "REDELIVER_INTERVAL": "0.5",
    }
    with start_observer(env, port=port) as observer:
        wait_for(lambda: counted(observer) == len(missed), "every one counted")
        assert redeliveries(observer, "requested") == len(missed)
    calls = [(path, auth) for path, auth in fake.requests if path.startswith(app_hook)]
    assert calls and all(auth is not None for _, auth in calls)
    for _, auth in calls:
        claims = jwt.decode(str(auth).removeprefix("Bearer "), public_key, algorithms=["RS256"])
        assert claims["iss"] == "424242"
    assert sorted(a["guid"] for a in fake.attempts(app_hook) if a["redelivery"]) == sorted(missed)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"redeliver_hooks": "orgs/octo-org/hooks/x", "github_token": "t"},
            "REDELIVER_HOOKS 'orgs/octo-org/hooks/x' is not orgs/ORG/hooks/ID, "
            "repos/OWNER/NAME/hooks/ID or app",
        ),
        (
            {"redeliver_hooks": "repos/octo-org/octo-app/hooks/12"},
            "REDELIVER_HOOKS needs GITHUB_TOKEN or a GitHub App",
        ),
        (
            {"redeliver_hooks": "app", "github_token": "t"},
            "REDELIVER_HOOKS 'app' needs a GitHub App (GITHUB_APP_ID), not GITHUB_TOKEN",
        ),
        ({"redeliver_interval": "0", "github_token": "t"}, "REDELIVER_INTERVAL"),
    ],
)
def test_redelivery_settings_are_checked_at_start(settings: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError) as raised:
        Settings(webhook_secret="s", **settings)  # type: ignore[arg-type]
    described = describe_error(raised.value)
    assert message in described
    assert "\n" not in described


def test_redelivery_settings_are_read() -> None:
    settings = Settings(
        webhook_secret="s",
        github_token="t",  # type: ignore[arg-type]
        redeliver_hooks=" orgs/octo-org/hooks/1 , repos/octo-org/octo-app/hooks/12/ ",  # type: ignore[arg-type]
    )
    assert settings.redeliver_hooks == ("orgs/octo-org/hooks/1", "repos/octo-org/octo-app/hooks/12")
    assert settings.redeliver_interval == 300
