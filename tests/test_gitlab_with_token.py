"""A GitLab history through /gitlab with GITLAB_TOKEN: lead time from GitLab's API, exact.

The same deliveries as tests/gitlab.py's story, each sent twice, through real observer processes:
one in memory, and two replicas sharing a real redis-server. GitLab's API is a fake over real
HTTP answering from the story's commit graph; its merge request !7 brought c2 and c3, so with a
token the two are one change (GitLab's merge request, as GitHub's pull request), where the
pushes alone (tests/test_gitlab.py) see two.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.exposition import Exposition
from tests.fake_gitlab import TOKEN, FakeGitLab, MergeRequest, serve
from tests.gitlab import NUMBERS, REPO, SECRET, at, headers, story
from tests.processes import start_observer
from tests.redis_server import running_redis
from tests.story import sha
from tests.test_gitlab_replicas import figures, summed

pytestmark = pytest.mark.e2e
DEADLINE = 30.0

# By hand (hours after the story's start): c1 committed at 0, deployed to production at 2: 7,200;
# !7 (c2 at 3, c3 at 4) deployed at 6: one change from its first commit, 10,800. Staging is no
# production environment. Everything else is the story's, as without a token.
WITH_TOKEN = {
    **NUMBERS,
    ("dora_lead_time_seconds_count",): 2.0,
    ("dora_lead_time_seconds_sum",): 18000.0,
}


@pytest.fixture
def gitlab() -> Iterator[FakeGitLab]:
    fake = FakeGitLab()
    project = fake.project(REPO)
    for name, hours, parents in (
        ("gl-c0", -1, []),
        ("gl-c1", 0, ["gl-c0"]),
        ("gl-c2", 3, ["gl-c1"]),
        ("gl-c3", 4, ["gl-c2"]),
    ):
        project.commits[sha(name)] = (at(hours), at(hours), [sha(p) for p in parents])
    # Merged fast-forward: no merge commit, the branch's commits are main's.
    project.merge_requests.append(
        MergeRequest(7, at(4.5), [(sha("gl-c2"), at(3)), (sha("gl-c3"), at(4))])
    )
    with serve(fake) as served:
        yield served


@pytest.mark.parametrize("replicas", [1, 2], ids=["memory", "two replicas on redis"])
def test_a_gitlab_history_with_a_token_gives_exact_numbers(
    gitlab: FakeGitLab, replicas: int
) -> None:
    with contextlib.ExitStack() as stack:
        env = {"GITLAB_WEBHOOK_SECRET": SECRET, "GITLAB_URL": gitlab.url, "GITLAB_TOKEN": TOKEN}
        if replicas > 1:
            env["STATE_URL"] = stack.enter_context(running_redis()).url
        processes = [stack.enter_context(start_observer(env)) for _ in range(replicas)]
        clients = [stack.enter_context(httpx.Client(base_url=p.url, timeout=15)) for p in processes]
        for index, step in enumerate(story()):
            body = step.body()
            for attempt in range(2):
                client = clients[(index + attempt) % len(clients)]
                sent = headers(step.event, body, delivery=step.delivery)
                response = client.post("/gitlab", content=body, headers=sent)
                assert response.status_code == 200, response.text

        def scrape() -> list[Exposition]:
            return [Exposition(client.get("/metrics").text) for client in clients]

        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            scrapes = scrape()
            done = summed(scrapes, "dora_lead_time_seconds_count", repository=REPO) >= 2
            if done and summed(scrapes, "observer_enrichment_queue_depth") == 0:
                break
            time.sleep(0.05)
        scrapes = scrape()
        assert figures(scrapes) == WITH_TOKEN
        # GitLab was asked, and nothing failed.
        assert any(path.startswith("/api/v4/projects/") for _, path in gitlab.requests)
        assert summed(scrapes, "observer_enrichment_failures_total") == 0
