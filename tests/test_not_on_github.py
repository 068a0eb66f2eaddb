"""Pipeline deployments of projects that are not on GitHub, with a GitHub token set.

A path with subgroups is never sent to GitHub; a repository GitHub answers it does not have is
remembered as elsewhere. Either way lead time comes from the commits the pipeline lists (or the
pushes seen), with no retry and no error in the logs. GitHub is the fake, over real HTTP.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from observer.forges.github.client import GitHubClient, NotFound, StaticToken, create_http_client
from observer.leadtime.changes import Job
from observer.leadtime.forges import NOT_ON_GITHUB_SECONDS, GitHubForge
from observer.leadtime.history import Entry
from observer.leadtime.knowledge import Knowledge
from observer.metrics.definitions import Metrics
from observer.settings import Settings
from observer.state.base import KINDS
from observer.state.memory import MemoryStore
from tests.conftest import Service
from tests.exposition import Exposition
from tests.fake_github import FakeGitHub, serve
from tests.story import at, iso, sha
from tests.test_lead_time import HOUR, lead_times, settle

ON_GITHUB = "octo-org/octo-app"
NOT_FOUND_LINE = "repository not on GitHub"


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    with serve(FakeGitHub(repositories={ON_GITHUB})) as github:
        yield github


@pytest.fixture
def enriched(fake: FakeGitHub, start: Callable[..., Service]) -> Service:
    return start(github_token="ghp_test-token", github_api_url=fake.url, github_max_retries=0)


def pipeline_deployment(
    repository: str, hours: float, commits: list[tuple[str, float]] | None, event_id: str
) -> dict[str, Any]:
    head = commits[-1][0] if commits else f"{repository}-{hours}"
    event: dict[str, Any] = {
        "type": "deployment",
        "repository": repository,
        "environment": "production",
        "status": "success",
        "sha": sha(head),
        "timestamp": iso(at(hours)),
        "id": event_id,
    }
    if commits is not None:
        event["commits"] = [{"sha": sha(name), "timestamp": iso(at(h))} for name, h in commits]
    return event


def send(service: Service, event: dict[str, Any]) -> None:
    response = service.push_events(event)
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["result"] == "accepted", response.text


def of(repository: str) -> dict[str, str]:
    return {"repository": repository, "environment": "production"}


def failures(metrics: Exposition) -> float:
    return sum(
        value
        for (name, _), value in metrics.samples.items()
        if name == "observer_enrichment_failures_total"
    )


def problems(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """Log records an operator would take for a fault: errors, or anything with a traceback."""
    return [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info is not None]


def test_a_path_with_subgroups_is_never_sent_to_github(
    enriched: Service, fake: FakeGitHub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="observer")
    project = "group/sub/app"
    # Listed commits at 10 h and 11 h, deployed at 12 h: 2 h + 1 h.
    send(enriched, pipeline_deployment(project, 12, [("g1", 10), ("g2", 11)], "deploy-1"))
    metrics = settle(enriched)
    assert lead_times(metrics, **of(project)) == (2, 3 * HOUR)
    # The next one lists g3 at 20 h, deployed at 24 h: 4 h more.
    send(enriched, pipeline_deployment(project, 24, [("g3", 20)], "deploy-2"))
    metrics = settle(enriched)
    assert lead_times(metrics, **of(project)) == (3, 7 * HOUR)
    assert fake.requests == []
    assert failures(metrics) == 0
    assert problems(caplog) == []
    assert "Traceback" not in caplog.text


def test_a_repository_github_does_not_have_is_asked_about_once(
    enriched: Service, fake: FakeGitHub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="observer")
    project = "mygroup/app"
    send(enriched, pipeline_deployment(project, 12, [("m1", 10), ("m2", 11)], "deploy-1"))
    metrics = settle(enriched)
    # GitHub answered that it has no such repository: the listed commits, 2 h + 1 h.
    assert lead_times(metrics, **of(project)) == (2, 3 * HOUR)
    assert fake.paths() == ["/api/graphql"]
    # Remembered: the next deployment is not asked about.
    send(enriched, pipeline_deployment(project, 24, [("m3", 20)], "deploy-2"))
    metrics = settle(enriched)
    assert lead_times(metrics, **of(project)) == (3, 7 * HOUR)
    assert fake.paths() == ["/api/graphql"]
    assert metrics.get("observer_enrichment_api_calls_sum") == 1
    assert failures(metrics) == 0
    assert problems(caplog) == []
    assert "Traceback" not in caplog.text
    said = [r for r in caplog.records if r.getMessage().startswith(NOT_FOUND_LINE)]
    assert [(r.levelno, r.fields["repository"]) for r in said] == [  # type: ignore[attr-defined]
        (logging.WARNING, project)
    ]


def test_a_deployment_with_only_a_sha_of_a_repository_github_does_not_have_is_not_retried(
    enriched: Service, fake: FakeGitHub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="observer")
    project = "mygroup/app"
    send(enriched, pipeline_deployment(project, 12, None, "deploy-1"))
    metrics = settle(enriched)
    # GitHub's deployments list answered 404: nothing else to ask, and no retry waiting.
    assert fake.paths() == [f"/repos/{project}/deployments"]
    assert lead_times(metrics, **of(project)) == (0, 0)
    assert failures(metrics) == 0
    send(enriched, pipeline_deployment(project, 24, None, "deploy-2"))
    settle(enriched)
    assert fake.paths() == [f"/repos/{project}/deployments"]
    assert problems(caplog) == []


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def job(repository: str, deployed: str, previous: str) -> Job:
    return Job(
        repository,
        "production",
        repository,
        "production",
        Entry(at(24).timestamp(), "success", "now", sha(deployed)),
        Entry(at(12).timestamp(), "success", "before", sha(previous)),
    )


def shipped(fake: FakeGitHub, clock: Clock, *jobs: Job) -> list[list[str] | str]:
    """What each job ships, by one source, or the name of the error it raised."""

    async def main() -> list[list[str] | str]:
        settings = Settings(webhook_secret="unused", github_api_url=fake.url)
        results: list[list[str] | str] = []
        async with create_http_client(settings) as http:
            metrics = Metrics(CollectorRegistry())
            client = GitHubClient(http, metrics, StaticToken(SecretStr("t")), max_retries=0)
            knowledge = Knowledge(MemoryStore(KINDS))
            source = GitHubForge(client, knowledge, metrics, max_pages=3, clock=clock)
            for each in jobs:
                try:
                    results.append([c.sha for c in await source.shipped(each)])
                except NotFound as error:
                    results.append(type(error).__name__)
                clock.now += NOT_ON_GITHUB_SECONDS / 2
        return results

    return asyncio.run(main())


def test_a_404_for_a_commit_asks_whether_the_repository_is_there_and_remembers_for_a_while(
    fake: FakeGitHub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="observer")
    clock = Clock()
    project = "mygroup/app"
    # Half an hour apart: the first, the second (remembered), the third (asked about again).
    results = shipped(fake, clock, *(job(project, f"d{n}", f"p{n}") for n in range(3)))
    # No pushes were seen for it: nothing ships, and nothing is retried.
    assert results == [[], [], []]
    # The compare and the commit answer 404, which the repository's own 404 explains; the
    # second job asks nothing; the third, past the pause, asks the same three again.
    assert fake.paths() == [
        path
        for n in (0, 2)
        for path in (
            f"/repos/{project}/compare/{sha(f'p{n}')}...{sha(f'd{n}')}",
            f"/repos/{project}/commits/{sha(f'd{n}')}",
            f"/repos/{project}",
        )
    ]
    said = [r for r in caplog.records if r.getMessage().startswith(NOT_FOUND_LINE)]
    assert len(said) == 1
    assert problems(caplog) == []


def test_a_commit_missing_from_a_repository_github_has_stays_a_failure(
    fake: FakeGitHub,
) -> None:
    fake.responses[f"/repos/{ON_GITHUB}"] = {"full_name": ON_GITHUB}
    results = shipped(fake, Clock(), job(ON_GITHUB, "gone", "before"), job(ON_GITHUB, "x", "y"))
    # Retried later as any missing commit is; the repository is still asked about.
    assert results == ["NotFound", "NotFound"]
    assert fake.paths().count(f"/repos/{ON_GITHUB}") == 2
