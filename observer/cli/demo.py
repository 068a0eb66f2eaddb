"""``observer demo URL``: a few weeks of realistic, signed history sent to a running observer.

Four repositories of one organisation work in pull requests, push merge commits to ``main``,
deploy to staging (GitHub deployments) and to production (a pipeline's ``/api/event``, with the
commits it ships, so lead times need no GitHub token), now and then fail a production deployment
and recover, and open and close incidents. Event times lie in the past and end now. The history
is the same for the same seed, so sending it twice counts it once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import random
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from time import monotonic, sleep
from typing import Any

import httpx

ORGANISATION = "demo-org"
# Repository name, and the mean days between its production deployments.
REPOSITORIES = (("checkout", 1.0), ("payments", 2.0), ("search", 3.5), ("mobile-api", 5.0))
PEOPLE = ("dev-1", "dev-2", "dev-3", "dev-4", "dev-5", "dev-6")
FAILURE_RATE = 0.15
INCIDENT_EVERY_DAYS = 9.0


@dataclass(order=True)
class Sent:
    """One request of the history, ordered by the time of the event it carries."""

    time: datetime
    order: int
    path: str = field(compare=False)
    event: str | None = field(compare=False)
    payload: Any = field(compare=False)


class History:
    """Builds the requests of one seeded history, ending at ``now``."""

    def __init__(self, now: datetime, days: int, seed: int) -> None:
        self.now = now.replace(microsecond=0)
        self.start = self.now - timedelta(days=days)
        self.random = random.Random(seed)  # noqa: S311  # example data, not secrets
        self.sent: list[Sent] = []
        self._ids = 1000

    def build(self) -> list[Sent]:
        for index, (name, every) in enumerate(REPOSITORIES):
            Repository(self, name, index + 1).work(every)
        self.sent.sort()
        return [item for item in self.sent if self.start <= item.time <= self.now]

    def next_id(self) -> int:
        self._ids += 1
        return self._ids

    def sha(self) -> str:
        return f"{self.random.getrandbits(160):040x}"

    def add(self, time: datetime, path: str, event: str | None, payload: Any) -> None:
        self.sent.append(Sent(time, len(self.sent), path, event, payload))


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class Repository:
    """One repository's pull requests, pushes, deployments and incidents."""

    def __init__(self, history: History, name: str, number: int) -> None:
        self.h = history
        self.full_name = f"{ORGANISATION}/{name}"
        self.repo = {
            "id": 700_000 + number,
            "name": name,
            "full_name": self.full_name,
            "private": True,
            "owner": {"login": ORGANISATION, "id": 90_001, "type": "Organization"},
            "html_url": f"https://github.com/{self.full_name}",
            "default_branch": "main",
        }
        self.main = self.h.sha()
        self.pull_number = 0
        self.shipped: list[dict[str, str]] = []  # commits on main since the last production deploy

    def work(self, every_days: float) -> None:
        rnd = self.h.random
        moment = self.h.start + timedelta(hours=rnd.uniform(6, 30))
        last = self.h.now - timedelta(hours=8)
        deploy = 0
        while moment < last:
            for _ in range(rnd.randint(1, 3)):
                self.pull_request(moment)
            if rnd.random() < 0.3:
                self.direct_commit(moment - timedelta(hours=rnd.uniform(0.5, 4)))
            if rnd.random() < 0.2:
                self.abandoned_pull_request(moment)
            deploy += 1
            self.deploy(moment, deploy)
            moment += timedelta(days=rnd.expovariate(1 / every_days) + 0.2)
        incident = self.h.start + timedelta(days=rnd.uniform(0, INCIDENT_EVERY_DAYS))
        while incident < self.h.now - timedelta(hours=1):
            self.incident(incident)
            incident += timedelta(days=rnd.expovariate(1 / INCIDENT_EVERY_DAYS) + 1)

    def pull_request(self, deploy_at: datetime) -> None:
        rnd = self.h.random
        merged_at = deploy_at - timedelta(hours=rnd.uniform(0.5, 30))
        started = merged_at - timedelta(hours=rnd.uniform(2, 120))
        self.pull_number += 1
        branch = f"feature/change-{self.pull_number}"
        commits = sorted(
            started + (merged_at - started) * rnd.uniform(0, 0.7) for _ in range(rnd.randint(1, 4))
        )
        commits[0] = started
        head = self.main
        for time in commits:
            head = self.push(time, branch, head, [(self.h.sha(), time)])
        created = started + timedelta(minutes=20)
        pull = self.pull_payload(branch, head, created)
        self.h.add(created, "/webhook", "pull_request", pull | {"action": "opened"})
        merge = self.h.sha()
        self.main = self.push(merged_at, "main", self.main, [(merge, merged_at)], new=merge)
        self.shipped.append({"sha": merge, "timestamp": iso(merged_at)})
        pull_closed = pull["pull_request"] | {
            "state": "closed",
            "merged": True,
            "merged_at": iso(merged_at),
            "closed_at": iso(merged_at),
            "merge_commit_sha": merge,
        }
        self.h.add(
            merged_at,
            "/webhook",
            "pull_request",
            pull | {"action": "closed", "pull_request": pull_closed},
        )

    def abandoned_pull_request(self, around: datetime) -> None:
        created = around - timedelta(hours=self.h.random.uniform(10, 100))
        self.pull_number += 1
        pull = self.pull_payload(f"spike/idea-{self.pull_number}", self.h.sha(), created=created)
        self.h.add(created, "/webhook", "pull_request", pull | {"action": "opened"})
        closed = created + timedelta(hours=self.h.random.uniform(2, 48))
        pull_closed = pull["pull_request"] | {"state": "closed", "closed_at": iso(closed)}
        self.h.add(
            closed,
            "/webhook",
            "pull_request",
            pull | {"action": "closed", "pull_request": pull_closed},
        )

    def direct_commit(self, time: datetime) -> None:
        sha = self.h.sha()
        self.main = self.push(time, "main", self.main, [(sha, time)], new=sha)
        self.shipped.append({"sha": sha, "timestamp": iso(time)})

    def push(
        self,
        time: datetime,
        branch: str,
        before: str,
        commits: list[tuple[str, datetime]],
        new: str = "",
    ) -> str:
        author = {"name": "Demo Developer", "email": "dev@example.com", "username": "dev-1"}
        after = commits[-1][0]
        entries = [
            {
                "id": sha,
                "tree_id": self.h.sha(),
                "distinct": True,
                "message": "Merge pull request" if sha == new else "Change things",
                "timestamp": iso(moment),
                "url": f"https://github.com/{self.full_name}/commit/{sha}",
                "author": author,
                "committer": author,
                "added": [],
                "removed": [],
                "modified": ["src/app.py"],
            }
            for sha, moment in commits
        ]
        payload = {
            "ref": f"refs/heads/{branch}",
            "before": before,
            "after": after,
            "created": False,
            "deleted": False,
            "forced": False,
            "base_ref": None,
            "compare": f"https://github.com/{self.full_name}/compare/{before[:12]}...{after[:12]}",
            "commits": entries,
            "head_commit": entries[-1],
            "repository": self.repo,
            "pusher": {"name": "dev-1", "email": "dev@example.com"},
            "sender": self.user(),
        }
        self.h.add(time, "/webhook", "push", payload)
        return after

    def pull_payload(self, branch: str, head: str, created: datetime) -> dict[str, Any]:
        number = self.pull_number
        pull = {
            "id": self.h.next_id(),
            "number": number,
            "state": "open",
            "title": f"Change {number}",
            "user": self.user(),
            "created_at": iso(created),
            "updated_at": iso(created),
            "closed_at": None,
            "merged_at": None,
            "merged": False,
            "merge_commit_sha": None,
            "draft": False,
            "head": {"ref": branch, "sha": head, "repo": self.repo},
            "base": {"ref": "main", "sha": self.main, "repo": self.repo},
            "html_url": f"https://github.com/{self.full_name}/pull/{number}",
        }
        return {
            "number": number,
            "pull_request": pull,
            "repository": self.repo,
            "sender": self.user(),
        }

    def deploy(self, at: datetime, number: int) -> None:
        rnd = self.h.random
        self.deployment_status(at - timedelta(minutes=25), "staging", "success")
        if rnd.random() < FAILURE_RATE:
            self.production(at, "failure", number, "a")
            at += timedelta(minutes=rnd.uniform(20, 360))
        self.production(at, "success", number, "b")
        self.shipped = []

    def production(self, at: datetime, status: str, number: int, attempt: str) -> None:
        event = {
            "type": "deployment",
            "repository": self.full_name,
            "environment": "production",
            "status": status,
            "sha": self.main,
            "timestamp": iso(at),
            "id": f"demo-{self.repo['name']}-{number}-{attempt}",
            "commits": self.shipped if status == "success" else [],
        }
        self.h.add(at, "/api/event", None, event)

    def deployment_status(self, at: datetime, environment: str, state: str) -> None:
        deployment = {
            "id": self.h.next_id(),
            "sha": self.main,
            "ref": "main",
            "task": "deploy",
            "environment": environment,
            "created_at": iso(at - timedelta(minutes=5)),
            "creator": self.user(),
        }
        status = {
            "id": self.h.next_id(),
            "state": state,
            "environment": environment,
            "created_at": iso(at),
            "updated_at": iso(at),
            "creator": self.user(),
        }
        payload = {
            "action": "created",
            "deployment_status": status,
            "deployment": deployment,
            "repository": self.repo,
            "sender": self.user(),
        }
        self.h.add(at, "/webhook", "deployment_status", payload)

    def incident(self, opened: datetime) -> None:
        resolved = opened + timedelta(minutes=self.h.random.uniform(20, 2000))
        issue = {
            "id": self.h.next_id(),
            "number": self.h.next_id(),
            "title": "Checkout errors above threshold",
            "state": "open",
            "labels": [{"id": 1, "name": "incident", "color": "d73a4a"}],
            "user": self.user(),
            "created_at": iso(opened),
            "updated_at": iso(opened),
            "closed_at": None,
        }
        base = {"repository": self.repo, "sender": self.user()}
        self.h.add(opened, "/webhook", "issues", base | {"action": "opened", "issue": issue})
        if resolved < self.h.now:
            closed = issue | {
                "state": "closed",
                "closed_at": iso(resolved),
                "updated_at": iso(resolved),
            }
            self.h.add(resolved, "/webhook", "issues", base | {"action": "closed", "issue": closed})

    def user(self) -> dict[str, Any]:
        login = self.h.random.choice(PEOPLE)
        return {"login": login, "id": 50_000 + PEOPLE.index(login), "type": "User"}


# How long the demo waits for the observer to start listening: an observer started just before,
# in the background (``observer & observer demo URL``), takes about a second.
START_WAIT = 10.0


def wait_until_listening(url: str, timeout: float = START_WAIT) -> None:
    """Return once anything answers at ``url``; past ``timeout``, raise the connection error."""
    deadline = monotonic() + timeout
    while True:
        try:
            httpx.get(f"{url.rstrip('/')}/healthz", timeout=2.0)
            return
        except httpx.ConnectError:
            if monotonic() >= deadline:
                raise
            sleep(0.1)


class Unauthorized(Exception):
    """The observer refused a signature: every other request would be refused alike."""


def send(url: str, secret: bytes, history: list[Sent], seed: int) -> dict[int, int]:
    """POST every request, signed; the count of each status received.

    Stops at the first ``401``: a wrong secret would otherwise send hundreds of requests, each
    a warning in the observer's log.
    """
    deliveries = random.Random(seed)  # noqa: S311  # delivery ids, stable for one seed
    statuses: dict[int, int] = {}
    with httpx.Client(base_url=url.rstrip("/"), timeout=10.0) as client:
        for item in history:
            body = json.dumps(item.payload).encode()
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "observer-demo",
                "X-Hub-Signature-256": "sha256="
                + hmac.new(secret, body, hashlib.sha256).hexdigest(),
            }
            if item.event is not None:
                headers["X-GitHub-Event"] = item.event
                headers["X-GitHub-Delivery"] = str(uuid.UUID(int=deliveries.getrandbits(128)))
            status = client.post(item.path, content=body, headers=headers).status_code
            if status == 401:
                raise Unauthorized
            statuses[status] = statuses.get(status, 0) + 1
    return statuses


def main(url: str, *, days: int = 28, seed: int = 7, pause: float = 0.0) -> int:
    secret = os.environ.get("WEBHOOK_SECRET", "")
    if not secret:
        sys.stderr.write("observer demo: WEBHOOK_SECRET is required (the running observer's)\n")
        return 2
    history = History(datetime.now(UTC), days, seed).build()
    # rate() and increase() see nothing of a series born with its final value: with a pause,
    # Prometheus scrapes the first half before the second arrives, so rules and panels that
    # read increases have data at once.
    halves = [history[: len(history) // 2], history[len(history) // 2 :]] if pause else [history]
    statuses: dict[int, int] = {}
    try:
        wait_until_listening(url)
        for index, part in enumerate(halves):
            if index:
                sys.stdout.write(f"waiting {pause:g} s for Prometheus to scrape the first half\n")
                sys.stdout.flush()
                sleep(pause)
            for status, count in send(url, secret.encode(), part, seed + index).items():
                statuses[status] = statuses.get(status, 0) + count
    except httpx.HTTPError as error:
        sys.stderr.write(f"observer demo: cannot reach {url}: {error}\n")
        return 1
    except Unauthorized:
        sys.stderr.write(
            f"observer demo: {url} refused a signed request (401, the signature does not match): "
            "WEBHOOK_SECRET must "
            "equal the running observer's WEBHOOK_SECRET; nothing more was sent\n"
        )
        return 1
    refused = sum(count for status, count in statuses.items() if status >= 300)
    sys.stdout.write(
        f"sent {len(history)} events ({days} days, {len(REPOSITORIES)} repositories) to {url}: "
        + ", ".join(f"{count} x {status}" for status, count in sorted(statuses.items()))
        + "\n"
    )
    if refused:
        sys.stderr.write(f"observer demo: {refused} requests were refused; see observer's logs\n")
        return 1
    return 0
