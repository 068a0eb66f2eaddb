"""Exact numbers from real processes: replicas sharing a store, restarts, repeats, late events.

Every scenario sends signed webhook deliveries or bearer-authenticated ``/api/event`` requests to
real ``observer`` processes, scrapes ``/metrics`` of every process (a stopped one's last scrape
included) and adds the samples up as ``sum without(instance)`` would. The truths are computed
by hand in the comments, from the README's definitions:

- a deployment counts once per (deployment, terminal state);
- recovery: a run of failures ended by a success, success time - first failure time, once;
- lead time: per change newly shipped to a repository+environment, deployment time - the
  change's first commit time; the previous deployment is the last success before it in time.

No GitHub token: lead times come from the commits an ``/api/event`` deployment lists, or from
the push webhooks that chain the previous deployment's commit to the deployed one.
"""

from __future__ import annotations

import contextlib
import copy
import json
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import API_TOKEN, SECRET, load_fixture
from tests.exposition import Exposition
from tests.processes import ObserverProcess, observer_command, start_observer
from tests.redis_server import RedisServer, running_redis
from tests.signing import sign
from tests.story import sha

pytestmark = pytest.mark.e2e

HOUR = 3600.0
REPO = "octo-org/octo-app"
# Every story is told a few days ago, on the hour, so that no time is ahead of the clock.
T0 = datetime.fromtimestamp((time.time() // HOUR) * HOUR, UTC) - timedelta(days=4)
DEADLINE = 20.0


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------------------------
# Payloads, cut from the full GitHub fixtures so that every other field stays as GitHub sends it.


def push_payload(
    commits: Sequence[tuple[str, datetime]], *, before: str, repo: str = REPO
) -> dict[str, Any]:
    payload = load_fixture("push")
    template = payload["commits"][-1]
    payload["repository"]["full_name"] = repo
    payload.update(ref="refs/heads/main", before=sha(before), after=sha(commits[-1][0]))
    payload["commits"] = []
    for name, moment in commits:
        commit = copy.deepcopy(template)
        commit.update(id=sha(name), tree_id=sha("tree-" + name), message=name)
        commit.update(distinct=True, timestamp=iso(moment))
        payload["commits"].append(commit)
    payload["head_commit"] = payload["commits"][-1]
    return payload


def deployment_payload(
    deployment_id: int,
    status_id: int,
    commit: str,
    moment: datetime,
    *,
    state: str,
    repo: str = REPO,
    environment: str = "production",
) -> dict[str, Any]:
    payload = load_fixture("deployment_status_success")
    payload["repository"]["full_name"] = repo
    payload["deployment_status"].update(
        id=status_id,
        state=state,
        created_at=iso(moment),
        updated_at=iso(moment),
        environment=environment,
    )
    payload["deployment"].update(
        id=deployment_id, sha=sha(commit), environment=environment, created_at=iso(moment)
    )
    return payload


def merged_pull_payload(
    number: int, *, merge: str, created: datetime, merged: datetime, repo: str = REPO
) -> dict[str, Any]:
    payload = load_fixture("pull_request_closed_merged")
    payload["repository"]["full_name"] = repo
    pull = payload["pull_request"]
    pull.update(
        id=7_000_000 + number,
        number=number,
        merge_commit_sha=sha(merge),
        created_at=iso(created),
        merged_at=iso(merged),
        closed_at=iso(merged),
        merged=True,
    )
    pull["head"]["ref"] = f"feature-{number}"
    pull["head"]["sha"] = sha(f"feature-{number}-head")
    pull["head"]["repo"]["full_name"] = repo
    payload["number"] = number
    return payload


def issue_payload(
    fixture: str,
    issue_id: int,
    *,
    created: datetime,
    updated: datetime,
    closed: datetime | None = None,
    repo: str = REPO,
) -> dict[str, Any]:
    payload = load_fixture(fixture)
    payload["repository"]["full_name"] = repo
    payload["issue"].update(
        id=issue_id,
        created_at=iso(created),
        updated_at=iso(updated),
        closed_at=None if closed is None else iso(closed),
    )
    return payload


def api_deployment(
    event_id: str,
    status: str,
    moment: datetime,
    *,
    commit: str | None = None,
    commits: Sequence[tuple[str, datetime]] = (),
    repo: str = REPO,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "deployment",
        "repository": repo,
        "environment": "production",
        "status": status,
        "timestamp": iso(moment),
        "id": event_id,
    }
    if commit is not None:
        body["sha"] = sha(commit)
    if commits:
        body["commits"] = [{"sha": sha(name), "timestamp": iso(t)} for name, t in commits]
    return body


# ---------------------------------------------------------------------------------------------
# What a GitHub hook or a pipeline sends, and the processes it reaches.


@dataclass(frozen=True)
class Webhook:
    event: str
    payload: dict[str, Any]
    delivery: str


@dataclass(frozen=True)
class Api:
    body: dict[str, Any]


Step = Webhook | Api


class Node:
    """One observer process, as GitHub, a pipeline and Prometheus reach it."""

    def __init__(self, process: ObserverProcess) -> None:
        self.process = process
        self.http = httpx.Client(base_url=process.url, timeout=15)

    def webhook(self, event: str, payload: dict[str, Any], delivery: str) -> httpx.Response:
        body = json.dumps(payload).encode()
        headers = {
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery,
            "X-GitHub-Hook-ID": "4242",
            "User-Agent": "GitHub-Hookshot/e2e",
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign(SECRET, body),
        }
        return self.http.post("/webhook", content=body, headers=headers)

    def api(self, body: dict[str, Any] | list[dict[str, Any]]) -> httpx.Response:
        return self.http.post(
            "/api/event", json=body, headers={"Authorization": f"Bearer {API_TOKEN}"}
        )

    def send(self, step: Step, *, copy_of: bool = False) -> httpx.Response:
        """The step; ``copy_of``: the same event by the other hook (another delivery id)."""
        if isinstance(step, Api):
            response = self.api(step.body)
        else:
            delivery = f"{step.delivery}-org-hook" if copy_of else step.delivery
            response = self.webhook(step.event, step.payload, delivery)
        assert response.status_code == 200, response.text
        return response

    def scrape(self) -> Exposition:
        response = self.http.get("/metrics")
        assert response.status_code == 200
        return Exposition(response.text)

    def close(self) -> None:
        self.http.close()


@dataclass
class Fleet:
    """Processes running now, and the last scrape of those stopped: what Prometheus summed."""

    nodes: list[Node] = field(default_factory=list)
    retired: list[Exposition] = field(default_factory=list)

    def scrapes(self) -> list[Exposition]:
        return [*self.retired, *(node.scrape() for node in self.nodes)]

    def retire(self, node: Node) -> None:
        self.retired.append(node.scrape())
        self.nodes.remove(node)
        node.close()


def total(scrapes: Sequence[Exposition], name: str, **labels: str) -> float:
    """``sum without(instance)`` of every series of ``name`` carrying ``labels``."""
    wanted = set(labels.items())
    return sum(
        value
        for scrape in scrapes
        for (sample, sample_labels), value in scrape.samples.items()
        if sample == name and wanted <= sample_labels
    )


def wait_for(
    fleet: Fleet, done: Callable[[list[Exposition]], bool], *, deadline: float = DEADLINE
) -> list[Exposition]:
    """Scrapes once ``done`` holds (or the last ones, at the deadline), with no work waiting."""
    end = time.monotonic() + deadline
    while True:
        scrapes = fleet.scrapes()
        idle = total(scrapes, "observer_enrichment_queue_depth") == 0
        if (done(scrapes) and idle) or time.monotonic() > end:
            return scrapes
        time.sleep(0.05)


def lead_count_reaches(count: float, **labels: str) -> Callable[[list[Exposition]], bool]:
    return lambda scrapes: total(scrapes, "dora_lead_time_seconds_count", **labels) >= count


def numbers(scrapes: Sequence[Exposition], **labels: str) -> dict[str, float]:
    """The numbers every scenario asserts, summed across processes."""
    names = (
        "dora_lead_time_seconds_count",
        "dora_lead_time_seconds_sum",
        "dora_deployment_recovery_seconds_count",
        "dora_deployment_recovery_seconds_sum",
        "dora_incident_recovery_seconds_count",
        "dora_incident_recovery_seconds_sum",
        "dora_incidents_opened_total",
        "github_commits_pushed_total",
    )
    found = {name: total(scrapes, name, **labels) for name in names}
    for status in ("success", "failure"):
        found[f"deployments {status}"] = total(
            scrapes, "dora_deployments_total", status=status, **labels
        )
    found["pull requests merged"] = total(
        scrapes, "github_pull_requests_total", action="merged", **labels
    )
    return found


def truth(**given: float) -> dict[str, float]:
    """The numbers of ``numbers``, zero unless given (names with spaces passed as a dict)."""
    keys = (
        "lead_count",
        "lead_sum",
        "recovery_count",
        "recovery_sum",
        "incident_count",
        "incident_sum",
        "incidents_opened",
        "commits",
        "success",
        "failure",
        "merged",
    )
    unknown = set(given) - set(keys)
    assert not unknown, unknown
    value = {key: float(given.get(key, 0)) for key in keys}
    return {
        "dora_lead_time_seconds_count": value["lead_count"],
        "dora_lead_time_seconds_sum": value["lead_sum"],
        "dora_deployment_recovery_seconds_count": value["recovery_count"],
        "dora_deployment_recovery_seconds_sum": value["recovery_sum"],
        "dora_incident_recovery_seconds_count": value["incident_count"],
        "dora_incident_recovery_seconds_sum": value["incident_sum"],
        "dora_incidents_opened_total": value["incidents_opened"],
        "github_commits_pushed_total": value["commits"],
        "deployments success": value["success"],
        "deployments failure": value["failure"],
        "pull requests merged": value["merged"],
    }


def observer_env(**extra: str) -> dict[str, str]:
    return {"API_TOKEN": API_TOKEN, **extra}


@contextlib.contextmanager
def node(env: dict[str, str]) -> Iterator[Node]:
    with start_observer(env, secret=SECRET) as process:
        running = Node(process)
        try:
            yield running
        finally:
            running.close()


# ---------------------------------------------------------------------------------------------
# The history told to every mode. Hours after T0; c1..c8 commits on main of octo-org/octo-app.

ISSUE = 9_100_001


def deploy(
    deployment_id: int, commit: str, moment: datetime, state: str, *, repo: str = REPO
) -> Webhook:
    """A deployment's status by webhook; its status id is the deployment's, its delivery too."""
    payload = deployment_payload(
        deployment_id, deployment_id, commit, moment, state=state, repo=repo
    )
    return Webhook("deployment_status", payload, f"deployment-{deployment_id}-{state}")


def history() -> tuple[list[Step], list[Step]]:
    """The steps before a restart and after it (one process that never restarts sends both)."""
    before: list[Step] = [
        # 2 commits pushed.
        Webhook("push", push_payload([("c1", at(0)), ("c2", at(1))], before="base"), "p1"),
        # Pull request #1, squash-merged as c2 at 1 h: 1 merged pull request.
        Webhook(
            "pull_request",
            merged_pull_payload(1, merge="c2", created=at(0.5), merged=at(1)),
            "pr1",
        ),
        # D1 succeeds at 2 h with c2, the first deployment known: only the deployed commit's
        # own change, pull request #1 timed from its squash commit c2 (1 h): 2 h - 1 h = 3600.
        deploy(101, "c2", at(2), "success"),
        # 2 commits pushed: c3 at 3 h, c4 at 4 h, on top of c2.
        Webhook("push", push_payload([("c3", at(3)), ("c4", at(4))], before="c2"), "p2"),
        # D2 fails at 5 h ...
        deploy(102, "c4", at(5), "failure"),
        # ... D3 succeeds at 6 h: recovery 6 h - 5 h = 3600. Ships c3 (6-3 = 3 h = 10800) and
        # c4 (6-4 = 2 h = 7200), chained by the push from D1's c2.
        deploy(103, "c4", at(6), "success"),
        # 2 commits pushed: c5 at 7 h, c6 at 8 h, on top of c4.
        Webhook("push", push_payload([("c5", at(7)), ("c6", at(8))], before="c4"), "p3"),
        # D4, a pipeline's, at 9 h lists c4 (already shipped: not again), c5 (9-7 = 2 h =
        # 7200) and c6 (9-8 = 1 h = 3600).
        Api(
            api_deployment(
                "pipe-4",
                "success",
                at(9),
                commit="c6",
                commits=[("c4", at(4)), ("c5", at(7)), ("c6", at(8))],
            )
        ),
        # An issue opened at 9.5 h without the label: no incident yet ...
        Webhook(
            "issues",
            issue_payload("issues_opened_plain", ISSUE, created=at(9.5), updated=at(9.5)),
            "i1",
        ),
        # ... labelled `incident` at 10 h: the incident opens at 10 h.
        Webhook(
            "issues",
            issue_payload("issues_labeled_incident", ISSUE, created=at(9.5), updated=at(10)),
            "i2",
        ),
        # A pipeline's rollback to c4 at 10 h: ships nothing new (no push leads from c6 to c4,
        # and c3, c4 are shipped already).
        Api(api_deployment("pipe-rb", "success", at(10), commit="c4")),
        # A failure at 10.5 h.
        deploy(105, "c4", at(10.5), "failure"),
    ]
    after: list[Step] = [
        # 2 commits pushed: c7 at 12 h, c8 at 13 h, on top of c6.
        Webhook("push", push_payload([("c7", at(12)), ("c8", at(13))], before="c6"), "p4"),
        # The pipeline's roll-forward to c8 at 14 h, a sha alone: its previous deployment is
        # the rollback (c4, 10 h); the pushes chain c4 -> c5, c6 -> c7, c8. c5 and c6 were
        # observed by D4: not again. c7: 14-12 = 2 h = 7200, c8: 14-13 = 1 h = 3600.
        # Recovery of the 10.5 h failure: 14 h - 10.5 h = 3.5 h = 12600.
        Api(api_deployment("pipe-rf", "success", at(14), commit="c8")),
        # The incident closed at 12.5 h: 12.5 h - 10 h (labelled) = 2.5 h = 9000.
        Webhook(
            "issues",
            issue_payload(
                "issues_closed_incident", ISSUE, created=at(9.5), updated=at(12.5), closed=at(12.5)
            ),
            "i3",
        ),
    ]
    return before, after


# Deployments: success D1, D3, pipe-4, pipe-rb, pipe-rf = 5; failure D2, d5 = 2.
# Lead time: D1 1 (3600) + D3 2 (10800 + 7200) + D4 2 (7200 + 3600) + rollback 0 + roll-forward
# 2 (7200 + 3600) = 7 changes, 3600 + 18000 + 10800 + 10800 = 43200 s.
# Recovery: 3600 + 12600 = 16200 s over 2, and the rollback at 10 h to c4, which pipe-4's c6
# contains (the pushes chain c6 back to c4): pipe-4 is a change failure (rolled_back) that the
# rollback ends, 10 h - 9 h = 3600: 19800 s over 3. Incident: 9000 s, 1 opened.
# Commits pushed: 2 + 2 + 2 + 2 = 8. Pull requests merged: 1.
HISTORY_TRUTH = truth(
    lead_count=7,
    lead_sum=43200,
    recovery_count=3,
    recovery_sum=19800,
    incident_count=1,
    incident_sum=9000,
    incidents_opened=1,
    commits=8,
    success=5,
    failure=2,
    merged=1,
)
# Before the restart: D1 1 + D3 2 + D4 2 = 5 lead times.
LEAD_TIMES_BEFORE = 5


def send_all(nodes: Sequence[Node], steps: Sequence[Step], *, duplicate: bool) -> None:
    """Step i to node i mod N; with ``duplicate``, every step to the next node too."""
    for index, step in enumerate(steps):
        nodes[index % len(nodes)].send(step)
        if duplicate:
            nodes[(index + 1) % len(nodes)].send(step, copy_of=True)


def redeliver(target: Node, steps: Sequence[Step]) -> None:
    """GitHub's redeliveries (same delivery id), the other hook's copies, pipelines' retries."""
    for step in steps:
        target.send(step)
        target.send(step, copy_of=True)


def assert_truth(scrapes: Sequence[Exposition], expected: dict[str, float], **labels: str) -> None:
    assert numbers(scrapes, **labels) == expected


@pytest.mark.parametrize("mode", ["memory", "file restart", "redis restart", "two replicas"])
def test_one_history_gives_the_same_numbers_in_every_mode(mode: str, tmp_path: Path) -> None:
    before, after = history()
    fleet = Fleet()
    with contextlib.ExitStack() as stack:
        if mode == "memory":
            # One process that never restarts: what the README promises for memory mode.
            single = stack.enter_context(node(observer_env()))
            fleet.nodes.append(single)
            send_all([single], before + after, duplicate=False)
            redeliver(single, before + after)
        elif mode == "two replicas":
            server = stack.enter_context(running_redis())
            env = observer_env(STATE_URL=server.url)
            replicas = [stack.enter_context(node(env)), stack.enter_context(node(env))]
            fleet.nodes.extend(replicas)
            # Alternating; every delivery also reaches the other replica by the other hook. D2's
            # failure (step 4) reaches replica A first, D3's success (step 5) replica B.
            send_all(replicas, before + after, duplicate=True)
            redeliver(replicas[1], before)
        else:
            if mode == "file restart":
                url = (tmp_path / "state").as_uri()
            else:
                url = stack.enter_context(running_redis()).url
            env = observer_env(STATE_URL=url)
            with node(env) as first:
                fleet.nodes.append(first)
                send_all([first], before, duplicate=False)
                wait_for(fleet, lead_count_reaches(LEAD_TIMES_BEFORE))
                fleet.retire(first)  # its final scrape, then SIGTERM
            second = stack.enter_context(node(env))
            fleet.nodes.append(second)
            send_all([second], after, duplicate=False)
            redeliver(second, before + after)
        scrapes = wait_for(fleet, lead_count_reaches(HISTORY_TRUTH["dora_lead_time_seconds_count"]))
        assert_truth(scrapes, HISTORY_TRUTH)


# ---------------------------------------------------------------------------------------------
# Smaller stories, each in a repository of its own on one shared process (memory mode).


@pytest.fixture(scope="module")
def shared() -> Iterator[Fleet]:
    with node(observer_env()) as single:
        yield Fleet([single])


def repository_numbers(fleet: Fleet, repo: str, *, recoveries: int = 0) -> dict[str, float]:
    """The numbers once ``recoveries`` are observed (decided when the success settles)."""
    name = "dora_deployment_recovery_seconds_count"
    scrapes = wait_for(fleet, lambda s: total(s, name, repository=repo) >= recoveries)
    return numbers(scrapes, repository=repo)


@pytest.fixture(scope="module")
def settling() -> Iterator[Fleet]:
    """One process whose successes settle for 2 s: time for a late failure to arrive."""
    with node(observer_env(SETTLE_SECONDS="2")) as single:
        yield Fleet([single])


@pytest.mark.parametrize("transport", ["webhook", "api"])
def test_a_success_delivered_before_its_failure_still_recovers_once(
    settling: Fleet, transport: str
) -> None:
    """Recovery is decided when the success settles: a failure that arrives within
    SETTLE_SECONDS of it counts, however the two are ordered."""
    repo = f"octo-org/late-{transport}"
    target = settling.nodes[0]
    if transport == "webhook":
        success: Step = deploy(401, "l1", at(2), "success", repo=repo)
        failure: Step = deploy(402, "l0", at(1), "failure", repo=repo)
    else:
        success = Api(api_deployment("late-success", "success", at(2), repo=repo))
        failure = Api(api_deployment("late-failure", "failure", at(1), repo=repo))
    # The success of 2 h arrives first, then the failure of 1 h that it ended, then both again.
    for step in (success, failure, success, failure):
        target.send(step)
    if transport == "webhook":
        target.send(success, copy_of=True)
        target.send(failure, copy_of=True)
    # Recovery 2 h - 1 h = 3600, once; one deployment of each state; the success's commit l1
    # was never pushed, so no lead time.
    assert repository_numbers(settling, repo, recoveries=1) == truth(
        recovery_count=1, recovery_sum=3600, success=1, failure=1
    )


def test_one_deployment_failing_twice_then_succeeding_counts_each_state_once(
    shared: Fleet,
) -> None:
    repo = "octo-org/retried"
    target = shared.nodes[0]
    # Deployment 501: failure at 1 h (status 5011), failure at 1.5 h (5012), success at 2 h.
    for status_id, moment, state in (
        (5011, at(1), "failure"),
        (5012, at(1.5), "failure"),
        (5013, at(2), "success"),
    ):
        payload = deployment_payload(501, status_id, "r1", moment, state=state, repo=repo)
        target.send(Webhook("deployment_status", payload, f"status-{status_id}"))
    # 1 failed deployment, 1 successful; recovery from the first failure: 2 h - 1 h = 3600.
    assert repository_numbers(shared, repo, recoveries=1) == truth(
        recovery_count=1, recovery_sum=3600, success=1, failure=1
    )


def test_an_incident_opens_when_it_is_labelled(shared: Fleet) -> None:
    repo = "octo-org/incidents"
    target = shared.nodes[0]
    issue = 9_200_001
    # Opened at 20 h without the label; labelled at 24 h (updated_at of the `labeled`
    # delivery); closed at 25 h.
    opened = issue_payload("issues_opened_plain", issue, created=at(20), updated=at(20), repo=repo)
    labelled = issue_payload(
        "issues_labeled_incident", issue, created=at(20), updated=at(24), repo=repo
    )
    closed = issue_payload(
        "issues_closed_incident", issue, created=at(20), updated=at(25), closed=at(25), repo=repo
    )
    for step in (
        Webhook("issues", opened, "issue-opened"),
        Webhook("issues", labelled, "issue-labelled"),
        Webhook("issues", closed, "issue-closed"),
    ):
        target.send(step)
        target.send(step, copy_of=True)
    # Recovery 25 h - 24 h = 3600 (not 25 h - 20 h), one incident.
    assert repository_numbers(shared, repo) == truth(
        incident_count=1, incident_sum=3600, incidents_opened=1
    )


def test_a_webhook_time_ahead_of_the_clock_is_replaced_and_the_api_refuses_one(
    shared: Fleet,
) -> None:
    repo = "octo-org/skewed"
    target = shared.nodes[0]
    skews_before = total(shared.scrapes(), "observer_clock_skew_total")
    now = datetime.fromtimestamp(time.time() // 1, UTC)
    n = now.timestamp()
    # s1 pushed, authored at N - 2 h.
    target.send(
        Webhook(
            "push",
            push_payload([("s1", now - timedelta(hours=2))], before="s0", repo=repo),
            "skew-p1",
        )
    )
    # A success stamped N + 10 min, beyond MAX_CLOCK_SKEW (300 s): its time becomes the
    # arrival A, somewhere in [sent, answered].
    sent = time.time()
    target.send(deploy(601, "s1", now + timedelta(minutes=10), "success", repo=repo))
    answered = time.time()
    # s2 at N - 1 h and s3 at N - 30 min pushed on top of s1.
    target.send(
        Webhook(
            "push",
            push_payload(
                [("s2", now - timedelta(hours=1)), ("s3", now - timedelta(minutes=30))],
                before="s1",
                repo=repo,
            ),
            "skew-p2",
        )
    )
    # Real deployments after the arrival, within the allowed skew: a failure at N + 60 s and a
    # success of s3 at N + 120 s.
    target.send(deploy(602, "s3", now + timedelta(seconds=60), "failure", repo=repo))
    target.send(deploy(603, "s3", now + timedelta(seconds=120), "success", repo=repo))
    scrapes = wait_for(shared, lead_count_reaches(3, repository=repo))
    found = numbers(scrapes, repository=repo)
    # Lead time: the skewed success (at A, the first one known) ships s1: A - (N - 7200);
    # the success at N + 120 follows it in time and ships s2 (120 + 3600 = 3720) and s3
    # (120 + 1800 = 1920). Sum: 7200 + (A - N) + 5640, with A - N in [sent - N, answered - N].
    low, high = 12840 + (sent - n), 12840 + (answered - n)
    lead_sum = found.pop("dora_lead_time_seconds_sum")
    assert low - 1e-3 <= lead_sum <= high + 1e-3, (low, lead_sum, high)
    expected = truth(
        lead_count=3, recovery_count=1, recovery_sum=60, commits=3, success=2, failure=1
    )
    del expected["dora_lead_time_seconds_sum"]
    # Recovery: N + 120 - (N + 60) = 60. Commits pushed: 1 + 2.
    assert found == expected
    assert total(scrapes, "observer_clock_skew_total") - skews_before == 1

    # The API refuses a time 10 minutes ahead, naming the field, and counts nothing.
    ahead = api_deployment("skewed-api", "success", now + timedelta(minutes=10), repo=repo)
    response = target.api(ahead)
    assert response.status_code == 422
    assert [problem["field"] for problem in response.json()["fields"]] == ["timestamp"]
    assert numbers(wait_for(shared, lambda _: True), repository=repo) == found | {
        "dora_lead_time_seconds_sum": lead_sum
    }


# ---------------------------------------------------------------------------------------------
# Label folding: repositories folded into `other` keep their own clocks and histories.


def test_repositories_folded_into_other_keep_separate_histories() -> None:
    with node(observer_env(MAX_REPOSITORIES="1")) as single:
        fleet = Fleet([single])
        alpha, beta = "octo-org/alpha", "octo-org/beta"
        steps: list[Step] = [
            # octo-org/first takes the one repository label; alpha and beta fold into `other`.
            Webhook(
                "push",
                push_payload([("f1", at(0))], before="f0", repo="octo-org/first"),
                "fold-first",
            ),
            # alpha: a1 at 0 h, deployed at 1 h, its first deployment: 1 h - 0 h = 3600.
            Webhook("push", push_payload([("a1", at(0))], before="a0", repo=alpha), "fold-a1"),
            deploy(701, "a1", at(1), "success", repo=alpha),
            # beta: b1 at 0.5 h, failing at 2 h.
            Webhook("push", push_payload([("b1", at(0.5))], before="b0", repo=beta), "fold-b1"),
            deploy(702, "b1", at(2), "failure", repo=beta),
            # alpha: a2 at 2.5 h deployed at 3 h after a1: 3 h - 2.5 h = 1800. It does not
            # recover beta's failure.
            Webhook("push", push_payload([("a2", at(2.5))], before="a1", repo=alpha), "fold-a2"),
            deploy(703, "a2", at(3), "success", repo=alpha),
            # beta recovers at 4 h: 4 h - 2 h = 7200; beta's first success, so it ships b1:
            # 4 h - 0.5 h = 12600 (not a chain from alpha's a2, which fails).
            deploy(704, "b1", at(4), "success", repo=beta),
        ]
        send_all([single], steps, duplicate=True)
        scrapes = wait_for(fleet, lead_count_reaches(3, repository="other"))
        # Under `other`: lead 3600 + 1800 + 12600 = 18000 over 3; recovery 7200 once;
        # success 3, failure 1; commits a1, b1, a2 = 3.
        assert numbers(scrapes, repository="other") == truth(
            lead_count=3,
            lead_sum=18000,
            recovery_count=1,
            recovery_sum=7200,
            commits=3,
            success=3,
            failure=1,
        )
        assert numbers(scrapes, repository="octo-org/first") == truth(commits=1)


# ---------------------------------------------------------------------------------------------
# The store unreachable, or unreadable.


def test_a_delivery_refused_while_redis_is_down_counts_once_when_redelivered() -> None:
    with running_redis() as server, node(observer_env(STATE_URL=server.url)) as single:
        fleet = Fleet([single])
        first = Webhook("push", push_payload([("u1", at(1))], before="u0"), "up-1")
        down = Webhook("push", push_payload([("u2", at(2))], before="u1"), "while-down")
        single.send(first)
        assert single.http.get("/readyz").status_code == 200

        server.save()  # what a Redis with persistence keeps across its restart
        server.stop()
        assert poll_status(single, "/readyz", 503)
        response = single.webhook(down.event, down.payload, down.delivery)
        assert response.status_code == 503
        assert response.headers["Retry-After"].isdigit()
        scrapes = fleet.scrapes()
        assert total(scrapes, "observer_webhook_deliveries_total", result="unavailable") == 1
        # Nothing counted for it: u1 alone.
        assert total(scrapes, "github_commits_pushed_total") == 1

        server.start()  # the same port, its data loaded
        assert poll_status(single, "/readyz", 200)
        assert single.send(down).json()["result"] == "accepted"
        assert single.send(down).json()["result"] == "duplicate"
        assert single.send(first).json()["result"] == "duplicate"
        scrapes = fleet.scrapes()
        # u1 and u2, each once.
        assert total(scrapes, "github_commits_pushed_total") == 2
        assert total(scrapes, "observer_webhook_deliveries_total", result="unavailable") == 1


def poll_status(target: Node, path: str, status: int, deadline: float = 15.0) -> bool:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        with contextlib.suppress(httpx.TransportError):
            if target.http.get(path).status_code == status:
                return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize(
    "garbage", [b"\x00\xff\xfe garbage \x80", b"garbage{"], ids=["binary", "text"]
)
def test_a_corrupted_snapshot_stops_the_start_with_one_line_naming_it(
    tmp_path: Path, garbage: bytes
) -> None:
    snapshot = tmp_path / "state"
    snapshot.write_bytes(garbage)
    env = {
        "PATH": "/usr/bin:/bin",
        "WEBHOOK_SECRET": SECRET,
        "HOST": "127.0.0.1",
        "PORT": "1",
        "STATE_URL": snapshot.as_uri(),
    }
    finished = subprocess.run(
        observer_command(), env=env, capture_output=True, timeout=30, check=False
    )
    assert finished.returncode != 0
    lines = (finished.stdout + finished.stderr).decode(errors="replace").splitlines()
    assert len(lines) == 1, lines
    assert str(snapshot) in lines[0]


# ---------------------------------------------------------------------------------------------
# Bounds: nothing a stranger sends grows the store without limit.

CAPACITY = 100  # DEDUP_CAPACITY and CACHE_SIZE, both at their minimum
# Ten times the capacity: past the first hundred every delivery id evicts one, as it would past
# the ten-thousandth; more proves nothing more.
FLOOD_DELIVERIES = 1000
FLOOD_REPOSITORIES = 300
# Kinds with a set of members (one sorted set each): delivery, event, observed, committed.
SET_KINDS = 4
# Kinds with a value per key, each with an index (a sorted set by last write), and their
# capacities at CACHE_SIZE = 100 (see observer/state/base.py kinds()): history max(100 // 10,
# 100) = 100, pending max(100 // 50, 100) = 100, commit 100, push 100, carried 100, pull 100,
# branch 100, shipment max(100 // 10, 100) = 100, incident 100.
VALUE_CAPACITIES = {
    "history": 100,
    "pending": 100,
    "commit": 100,
    "push": 100,
    "carried": 100,
    "pull": 100,
    "branch": 100,
    "shipment": 100,
    "incident": 100,
}
# Lead-time locks live while a worker holds them: at most ENRICHMENT_CONCURRENCY (4).
LOCKS = 4
# 4 + 9 indexes + 900 values + 4 locks = 917 keys, however many deliveries and repositories.
MAX_KEYS = SET_KINDS + len(VALUE_CAPACITIES) + sum(VALUE_CAPACITIES.values()) + LOCKS


def bounds_env(**extra: str) -> dict[str, str]:
    return observer_env(DEDUP_CAPACITY=str(CAPACITY), CACHE_SIZE=str(CAPACITY), **extra)


def assert_redis_bounded(server: RedisServer) -> int:
    with server.client() as client:
        keys = int(client.dbsize())
        assert keys <= MAX_KEYS, keys
        for kind in ("delivery", "event", "observed", "committed"):
            assert int(client.zcard(f"{{observer}}:set:{kind}")) <= CAPACITY, kind
        for kind, capacity in VALUE_CAPACITIES.items():
            indexed = int(client.zcard(f"{{observer}}:index:{kind}"))
            stored = len(list(client.scan_iter(match=f"{{observer}}:{kind}:*", count=1000)))
            assert indexed <= capacity, (kind, indexed)
            assert stored <= capacity, (kind, stored)
        return keys


def test_a_flood_of_deliveries_and_repositories_keeps_redis_bounded() -> None:
    with running_redis() as server, node(bounds_env(STATE_URL=server.url)) as single:
        ping = load_fixture("ping")
        for index in range(FLOOD_DELIVERIES):
            response = single.webhook("ping", ping, f"flood-{index}")
            assert response.status_code == 200
            if index % 500 == 499:
                assert_redis_bounded(server)
        # 300 repositories, each a push (commit, push, carried, branch, event) and a
        # production deployment (event, history, pending work).
        for index in range(FLOOD_REPOSITORIES):
            repo = f"flood-org/repo-{index}"
            single.send(
                Webhook(
                    "push",
                    push_payload([(f"x{index}", at(1))], before="x", repo=repo),
                    f"flood-push-{index}",
                )
            )
            single.send(deploy(800_000 + index, f"x{index}", at(2), "success", repo=repo))
            if index % 100 == 99:
                assert_redis_bounded(server)
        wait_for(Fleet([single]), lambda _: True)
        keys = assert_redis_bounded(server)
        with server.client() as client:
            # Full, and no fuller: the newest 100 delivery ids and event identities.
            assert int(client.zcard("{observer}:set:delivery")) == CAPACITY
            assert int(client.zcard("{observer}:set:event")) == CAPACITY
        assert keys >= SET_KINDS + 4 * CAPACITY  # bounded, not empty: commit, push, carried...
        scrapes = Fleet([single]).scrapes()
        # The pings, 300 pushes and 300 deployments, each accepted once.
        accepted = total(scrapes, "observer_webhook_deliveries_total", result="accepted")
        assert accepted == FLOOD_DELIVERIES + 2 * FLOOD_REPOSITORIES
        assert total(scrapes, "github_commits_pushed_total") == FLOOD_REPOSITORIES


def test_memory_mode_remembers_only_the_newest_delivery_ids() -> None:
    # The honest bound of memory mode: DEDUP_CAPACITY delivery ids, the oldest forgotten first.
    with node(bounds_env()) as single:
        ping = load_fixture("ping")
        for index in range(CAPACITY + 1):
            assert single.webhook("ping", ping, f"mem-{index}").json()["result"] == "accepted"
        # mem-0 is the 101st newest of 101: forgotten, so its redelivery counts again ...
        assert single.webhook("ping", ping, "mem-0").json()["result"] == "accepted"
        # ... while mem-100, among the newest 100, is a repeat.
        assert single.webhook("ping", ping, "mem-100").json()["result"] == "duplicate"
        scrapes = Fleet([single]).scrapes()
        accepted = total(
            scrapes,
            "observer_webhook_deliveries_total",
            source="github",
            event="ping",
            result="accepted",
        )
        assert accepted == CAPACITY + 2
