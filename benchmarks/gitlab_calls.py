"""GitLab API calls per deployment, counted on the fake GitLab API over real HTTP.

    python benchmarks/gitlab_calls.py [--deployments 20] [--merge-requests 3] [--noise 0]

A project's main branch gets, before each deployment, ``--merge-requests`` merge requests
merged in turn with a merge commit, squashed with a merge commit, and squashed fast-forward,
plus one commit pushed directly; ``--noise`` more merge requests are merged into another branch
meanwhile. Each deployment is recorded as GitLab's webhook would record it, in a service with
GITLAB_TOKEN set, and the requests the fake received for it are counted: the first deployment
(the Deployments API asked for the one before) apart from the rest (the previous one known).
Every lead time is checked against the commits' times, so a figure never comes from a wrong
answer.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from starlette.testclient import TestClient

from observer.app import create_app
from observer.domain import GITLAB, Deployment
from observer.settings import Settings
from tests.fake_gitlab import TOKEN, FakeGitLab, MergeRequest, serve

PROJECT = "bench-group/sub/app"
EPOCH = datetime(2026, 11, 1, tzinfo=UTC)


def at(hours: float) -> datetime:
    return EPOCH + timedelta(hours=hours)


def build(fake: FakeGitLab, deployments: int, per: int, noise: int) -> list[tuple[str, float]]:
    """The project's history; each deployment's (sha, hours), and the expected lead sum."""
    project = fake.project(PROJECT)
    counter = iter(range(10**9))

    def new(authored: float, parents: list[str], committed: float | None = None) -> str:
        sha = f"{next(counter):040x}"
        project.commits[sha] = (at(authored), at(committed or authored), parents)
        return sha

    head = new(0, [])
    shipped = [(head, 1.0)]
    iid = 0
    for n in range(1, deployments):
        hours = n * 24.0
        for k in range(per):
            iid += 1
            first = hours - 10 + k
            one = new(first, [head])
            two = new(first + 0.5, [one])
            commits = [(one, at(first)), (two, at(first + 0.5))]
            merged = hours - 5 + k
            kind = k % 3
            if kind == 0:  # a merge commit
                head = new(merged, [head, two])
                project.merge_requests.append(MergeRequest(iid, at(merged), commits, head))
            elif kind == 1:  # squashed, with a merge commit
                squash = new(merged, [head])
                head = new(merged, [head, squash])
                project.merge_requests.append(MergeRequest(iid, at(merged), commits, head, squash))
            else:  # squashed, fast-forward
                head = new(merged, [head])
                project.merge_requests.append(MergeRequest(iid, at(merged), commits, None, head))
        for k in range(noise):
            iid += 1
            side = new(hours - 8, [head])
            project.merge_requests.append(
                MergeRequest(
                    iid, at(hours - 4 + k / 100), [(side, at(hours - 8))], None, None, "dev"
                )
            )
        head = new(hours - 1, [head])
        shipped.append((head, hours))
    return shipped


def expected(n: int, per: int) -> float:
    """Seconds of lead time deployment ``n`` observes: each merge request from its first commit
    (10 h - k before), the direct commit from 1 h before; the first deployment 1 h."""
    if n == 0:
        return 3600.0
    return sum((10 - k) * 3600.0 for k in range(per)) + 3600.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployments", type=int, default=20)
    parser.add_argument("--merge-requests", type=int, default=3)
    parser.add_argument("--noise", type=int, default=0)
    args = parser.parse_args()
    with serve(FakeGitLab()) as fake:
        shipped = build(fake, args.deployments, args.merge_requests, args.noise)
        settings = Settings(
            webhook_secret="bench", settle_seconds=0, gitlab_url=fake.url, gitlab_token=TOKEN
        )
        calls: list[int] = []
        with TestClient(create_app(settings)) as client:
            recorder = client.app_state["services"].recorder
            enrichment = client.app.state.enrichment  # type: ignore[attr-defined]
            for n, (sha, hours) in enumerate(shipped):
                before = len(fake.requests)
                deployment = Deployment(
                    PROJECT, "production", "success", at(hours), f"bench:{n}", sha, forge=GITLAB
                )
                client.portal.call(recorder.deployment, deployment)
                deadline = time.monotonic() + 30
                while not enrichment.idle and time.monotonic() < deadline:
                    time.sleep(0.005)
                calls.append(len(fake.requests) - before)
            text = client.get("/metrics").text
    labels = f'environment="production",repository="{PROJECT}"'
    total = next(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith(f"dora_lead_time_seconds_sum{{{labels}}}")
    )
    want = sum(expected(n, args.merge_requests) for n in range(len(shipped)))
    if total != want:
        raise SystemExit(f"lead time sum {total} s, expected {want} s: the figures are void")
    rest = calls[1:]
    print(f"merge requests per deployment: {args.merge_requests}, noise: {args.noise}")
    print(f"first deployment (Deployments API asked): {calls[0]} calls")
    print(
        f"next {len(rest)} deployments (previous known): median {statistics.median(rest):g}, "
        f"max {max(rest)} calls; lead time sum exact ({total:.0f} s)"
    )


if __name__ == "__main__":
    main()
