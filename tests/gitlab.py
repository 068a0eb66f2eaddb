"""GitLab's deliveries as GitLab sends them, made from its documented payload examples.

The signature is Standard Webhooks' scheme written again here, sharing no code with the service.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import time
import uuid
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures" / "gitlab"
SECRET = "test-gitlab-secret-token"
# A signing token as GitLab generates them: whsec_ and the base64 of 32 random bytes.
SIGNING_KEY = bytes(range(32))
SIGNING_TOKEN = "whsec_" + base64.b64encode(SIGNING_KEY).decode()

EVENTS = {
    "push": "Push Hook",
    "merge_request": "Merge Request Hook",
    "deployment": "Deployment Hook",
    "issue": "Issue Hook",
}


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


def sign(key: bytes, delivery: str, timestamp: int, body: bytes) -> str:
    signed = f"{delivery}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def headers(
    event: str,
    body: bytes,
    *,
    token: str | None = SECRET,
    delivery: str | None = None,
    signing_key: bytes | None = None,
    timestamp: int | None = None,
) -> dict[str, str]:
    """The headers of one delivery: GitLab's own, and its signature when a key is given."""
    delivery = delivery or str(uuid.uuid4())
    sent = {
        "Content-Type": "application/json",
        "User-Agent": "GitLab/18.7.0",
        "X-Gitlab-Event": event,
        "X-Gitlab-Webhook-UUID": "7f5e3c1a-1b2c-4d5e-8f90-0a1b2c3d4e5f",
        "X-Gitlab-Instance": "https://gitlab.example.com",
        "X-Gitlab-Event-UUID": str(uuid.uuid4()),
        "Idempotency-Key": delivery,
    }
    if token is not None:
        sent["X-Gitlab-Token"] = token
    if signing_key is not None:
        stamp = int(time.time()) if timestamp is None else timestamp
        sent["webhook-id"] = delivery
        sent["webhook-timestamp"] = str(stamp)
        sent["webhook-signature"] = sign(signing_key, delivery, stamp, body)
    return sent


def project(payload: dict[str, Any], path: str) -> dict[str, Any]:
    """The payload moved to another project (``group/sub/name``), every other field kept."""
    payload = copy.deepcopy(payload)
    payload["project"]["path_with_namespace"] = path
    return payload


def push(path: str, *, before: str, after: str, commits: list[tuple[str, str]], total: int) -> Any:
    """The documented push, to ``path``, of ``commits`` (sha, timestamp), counting ``total``."""
    payload = project(load("push"), path)
    template = payload["commits"][0]
    payload.update(before=before, after=after, checkout_sha=after, total_commits_count=total)
    payload["commits"] = [{**template, "id": sha, "timestamp": moment} for sha, moment in commits]
    return payload


def merge_request(path: str, action: str, *, id: int, updated_at: str, **fields: Any) -> Any:
    payload = project(load("merge_request"), path)
    attributes = payload["object_attributes"]
    attributes.update(id=id, action=action, updated_at=updated_at, **fields)
    attributes["state"] = {"merge": "merged", "close": "closed"}.get(action, "opened")
    return payload


def deployment(path: str, status: str, *, id: int, at: str, sha: str, environment: str) -> Any:
    payload = project(load("deployment"), path)
    payload.update(
        status=status,
        deployment_id=id,
        status_changed_at=at,
        environment=environment,
        short_sha=sha[:8],
    )
    base = payload["commit_url"].rsplit("/", 1)[0]
    payload["commit_url"] = f"{base}/{sha}"
    return payload


def issue(path: str, action: str, *, id: int, at: str, **fields: Any) -> Any:
    payload = project(load("issue"), path)
    attributes = payload["object_attributes"]
    attributes.update(id=id, action=action, updated_at=at, **fields)
    attributes["state"] = "closed" if action == "close" else "opened"
    if action == "close":
        attributes["closed_at"] = at
    # No label change unless a test gives one.
    del payload["changes"]["labels"]
    return payload
