"""Payloads for lead-time stories, cut from the full GitHub fixtures so every field stays."""

from __future__ import annotations

import copy
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.conftest import load_fixture

API = Path(__file__).parent / "fixtures" / "github_api"
REPO = "octo-org/octo-app"
# Every story starts here: commit times and deployments are offsets from it.
EPOCH = datetime(2026, 11, 1, tzinfo=UTC)


def sha(name: str) -> str:
    """A stable 40-hex sha for a readable commit name."""
    return hashlib.sha1(name.encode()).hexdigest()  # noqa: S324  # a name, not a secret


def at(hours: float) -> datetime:
    return EPOCH + timedelta(hours=hours)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _api(name: str) -> Any:
    return json.loads((API / name).read_text())


def push(
    commits: list[tuple[str, float]],
    *,
    ref: str = "refs/heads/main",
    before: str = "base",
    distinct: bool = True,
) -> dict[str, Any]:
    payload = load_fixture("push")
    template = payload["commits"][-1]
    payload["ref"] = ref
    payload["before"] = sha(before)
    payload["after"] = sha(commits[-1][0])
    payload["commits"] = []
    for name, hours in commits:
        commit = copy.deepcopy(template)
        commit.update(
            id=sha(name),
            tree_id=sha("tree-" + name),
            distinct=distinct,
            message=f"{name}",
            timestamp=iso(at(hours)),
        )
        payload["commits"].append(commit)
    payload["head_commit"] = payload["commits"][-1]
    return payload


def merged_pull(
    number: int, *, merge: str, merged_hours: float, created_hours: float, head_ref: str
) -> dict[str, Any]:
    payload = load_fixture("pull_request_closed_merged")
    pull = payload["pull_request"]
    pull.update(
        id=3_000_000 + number,
        number=number,
        merge_commit_sha=sha(merge),
        created_at=iso(at(created_hours)),
        merged_at=iso(at(merged_hours)),
        closed_at=iso(at(merged_hours)),
        merged=True,
    )
    pull["head"]["ref"] = head_ref
    pull["head"]["sha"] = sha(head_ref + "-head")
    payload["number"] = number
    return payload


def deployment_status(
    status_id: int,
    commit: str,
    hours: float,
    *,
    state: str = "success",
    environment: str = "production",
) -> dict[str, Any]:
    payload = load_fixture("deployment_status_success")
    payload["deployment_status"].update(
        id=status_id,
        state=state,
        created_at=iso(at(hours)),
        updated_at=iso(at(hours)),
        environment=environment,
    )
    payload["deployment"].update(
        id=status_id + 10_000,
        sha=sha(commit),
        environment=environment,
        created_at=iso(at(hours - 0.1)),
    )
    return payload


def api_commit(name: str, hours: float, parents: list[str]) -> dict[str, Any]:
    commit = copy.deepcopy(_api("compare.json")["commits"][0])
    commit["sha"] = sha(name)
    commit["commit"]["author"]["date"] = iso(at(hours))
    commit["commit"]["committer"]["date"] = iso(at(hours + 100))  # never the one to use
    commit["commit"]["message"] = name
    commit["parents"] = [{"sha": sha(p), "url": "", "html_url": ""} for p in parents]
    return commit


def compare(commits: list[dict[str, Any]], *, status: str = "ahead") -> dict[str, Any]:
    body = _api("compare.json")
    body.update(
        status=status, ahead_by=len(commits), total_commits=len(commits), commits=commits, files=[]
    )
    return body


def pull_commits(commits: list[tuple[str, float]]) -> list[dict[str, Any]]:
    template = _api("pull_commits.json")[0]
    result = []
    for name, hours in commits:
        commit = copy.deepcopy(template)
        commit["sha"] = sha(name)
        commit["commit"]["author"]["date"] = iso(at(hours))
        result.append(commit)
    return result


def commit_pulls(number: int, *, merge: str, merged_hours: float) -> list[dict[str, Any]]:
    pulls = _api("commit_pulls.json")
    pull = pulls[0]
    pull.update(number=number, merge_commit_sha=sha(merge), merged_at=iso(at(merged_hours)))
    return [pull]


def deployments(entries: list[tuple[int, str, float]]) -> list[dict[str, Any]]:
    template = _api("deployments.json")[0]
    result = []
    for deployment_id, commit, hours in entries:
        item = copy.deepcopy(template)
        item.update(id=deployment_id, sha=sha(commit), created_at=iso(at(hours)))
        result.append(item)
    return result


def statuses(states: list[str]) -> list[dict[str, Any]]:
    template = _api("deployment_statuses.json")[0]
    result = []
    for index, state in enumerate(states):
        item = copy.deepcopy(template)
        item.update(id=50_000 + index, state=state)
        result.append(item)
    return result
