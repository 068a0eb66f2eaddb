"""GitHub's full payloads from tests/fixtures, varied in the few fields a test is about."""

from __future__ import annotations

import copy
import itertools
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import load_fixture

_ids = itertools.count(3_000_000_000)


def _user(login: str) -> dict[str, Any]:
    user = copy.deepcopy(load_fixture("pull_request_opened")["pull_request"]["user"])
    for key, value in user.items():
        if isinstance(value, str):
            user[key] = value.replace("monalisa", login)
    user["login"] = login
    user["type"] = "Bot" if login.endswith("[bot]") else "User"
    return user


def pull_request(
    action: str,
    login: str,
    *,
    created_at: str = "2026-11-20T08:00:00Z",
    merged_at: str | None = None,
    closed_at: str | None = None,
    pr_id: int | None = None,
    title: str = "Add a retry budget to the checkout HTTP client",
    labels: tuple[str, ...] = (),
    branch: str = "feature/retry-budget",
    additions: int = 61,
    deletions: int = 9,
    repository: str | None = None,
) -> dict[str, Any]:
    """A ``pull_request`` delivery: ``opened``, ``closed`` (merged when ``merged_at``), or other."""
    name = "pull_request_closed_merged" if action == "closed" else "pull_request_opened"
    payload = load_fixture(name)
    payload["action"] = action
    pr = payload["pull_request"]
    pr["id"] = pr_id if pr_id is not None else next(_ids)
    pr["user"] = _user(login)
    pr["created_at"] = created_at
    pr["title"] = title
    pr["head"]["ref"] = branch
    pr["additions"], pr["deletions"] = additions, deletions
    template = pr["labels"][0] if pr["labels"] else {"id": 1, "name": "x", "color": "ededed"}
    pr["labels"] = [{**template, "id": next(_ids), "name": label} for label in labels]
    if action == "closed":
        pr["merged"] = merged_at is not None
        pr["merged_at"] = merged_at
        pr["closed_at"] = merged_at or closed_at
        pr["updated_at"] = pr["closed_at"]
    if repository is not None:
        payload["repository"]["full_name"] = repository
    return payload


def review(
    reviewer: str,
    author: str,
    *,
    pr_id: int,
    submitted_at: str,
    state: str = "approved",
    created_at: str = "2026-11-20T08:00:00Z",
    review_id: int | None = None,
) -> dict[str, Any]:
    payload = load_fixture("pull_request_review_submitted")
    payload["review"]["id"] = review_id if review_id is not None else next(_ids)
    payload["review"]["user"] = _user(reviewer)
    payload["review"]["state"] = state
    payload["review"]["submitted_at"] = submitted_at
    payload["pull_request"]["id"] = pr_id
    payload["pull_request"]["user"] = _user(author)
    payload["pull_request"]["created_at"] = created_at
    payload["sender"] = _user(reviewer)
    return payload


def write_teams(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def members(*logins: str, **fields: Any) -> list[dict[str, Any]]:
    return [{"login": login, **fields} for login in logins]
