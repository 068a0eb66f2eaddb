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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from tests.story import sha

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


# ---------------------------------------------------------------------------------------------
# One GitLab history with exact numbers, told a few days ago so that no time is ahead of now.

REPO = "acme/platform/api"
HOUR = 3600.0
T0 = datetime.fromtimestamp((time.time() // HOUR) * HOUR, UTC) - timedelta(days=4)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def ruby(moment: datetime, offset_hours: int = 0) -> str:
    """GitLab's other way of writing a time: ``2021-04-28 21:50:00 +0200`` or ``... UTC``."""
    if offset_hours == 0:
        return moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    local = moment.astimezone(timezone(timedelta(hours=offset_hours)))
    return local.strftime("%Y-%m-%d %H:%M:%S %z")


@dataclass(frozen=True)
class Delivery:
    event: str
    payload: dict[str, Any]
    delivery: str

    def body(self) -> bytes:
        return json.dumps(self.payload).encode()


def story() -> list[Delivery]:
    """Push c1, deploy it; a merge request opened, approved, merged; push c2..c3; a failed
    deployment of c3 and its recovery; an incident, and an issue labelled then unlabelled."""
    c1, c2, c3 = sha("gl-c1"), sha("gl-c2"), sha("gl-c3")
    labelled = issue(REPO, "update", id=9002, at=ruby(at(15)), type="Issue")
    labelled["changes"]["labels"] = {"previous": [], "current": [{"title": "incident"}]}
    unlabelled = issue(REPO, "update", id=9002, at=ruby(at(15.5)), type="Issue")
    unlabelled["changes"]["labels"] = {"previous": [{"title": "incident"}], "current": []}
    return [
        Delivery("Push Hook", push(REPO, before=sha("gl-c0"), after=c1,
                                   commits=[(c1, iso(at(0)))], total=1), "push-1"),
        Delivery("Deployment Hook", deployment(REPO, "running", id=71, at=ruby(at(1.5), 2),
                                               sha=c1, environment="production"), "d71-running"),
        Delivery("Deployment Hook", deployment(REPO, "success", id=71, at=ruby(at(2), 2),
                                               sha=c1, environment="production"), "d71-success"),
        Delivery("Merge Request Hook", merge_request(REPO, "open", id=501, iid=7,
                 created_at=iso(at(1)), updated_at=iso(at(1))), "mr-open"),
        Delivery("Merge Request Hook", merge_request(REPO, "approved", id=501, iid=7,
                 created_at=iso(at(1)), updated_at=iso(at(2.5))), "mr-approved"),
        Delivery("Merge Request Hook", merge_request(REPO, "merge", id=501, iid=7,
                 created_at=iso(at(1)), updated_at=ruby(at(4.5))), "mr-merge"),
        Delivery("Push Hook", push(REPO, before=c1, after=c3,
                                   commits=[(c2, iso(at(3))), (c3, iso(at(4)))], total=2),
                 "push-2"),
        Delivery("Deployment Hook", deployment(REPO, "failed", id=72, at=ruby(at(5)),
                                               sha=c3, environment="production"), "d72-failed"),
        Delivery("Deployment Hook", deployment(REPO, "canceled", id=73, at=ruby(at(5.5)),
                                               sha=c3, environment="production"), "d73-canceled"),
        Delivery("Deployment Hook", deployment(REPO, "success", id=74, at=ruby(at(6), -5),
                                               sha=c3, environment="production"), "d74-success"),
        Delivery("Issue Hook", issue(REPO, "open", id=9001, at=ruby(at(6.25)),
                                     created_at=ruby(at(6.25)), type="Incident"), "inc-open"),
        Delivery("Deployment Hook", deployment(REPO, "success", id=75, at=ruby(at(7)),
                                               sha=c3, environment="staging"), "d75-staging"),
        Delivery("Issue Hook", issue(REPO, "close", id=9001, at=ruby(at(7.5)),
                                     type="Incident"), "inc-close"),
        Delivery("Issue Hook", labelled, "issue-labelled"),
        Delivery("Issue Hook", unlabelled, "issue-unlabelled"),
        Delivery("Tag Push Hook", {"object_kind": "tag_push"}, "tag-1"),
    ]  # fmt: skip


# The story's numbers, computed by hand (hours after T0):
# lead time: c1 deployed at 2 (committed 0): 7200; c2 and c3 at 6 (committed 3, 4): 10800, 7200.
# deployment recovery: failed at 5, succeeded at 6: 3600.
# incidents: the incident 6.25 to 7.5 (4500); the labelled issue 15 to 15.5 (1800).
# merge request: opened at 1, merged at 4.5: cycle time 12600; one approval.
NUMBERS = {
    ("dora_deployments_total", "production", "success"): 2.0,
    ("dora_deployments_total", "production", "failure"): 1.0,
    ("dora_deployments_total", "staging", "success"): 1.0,
    ("dora_lead_time_seconds_count",): 3.0,
    ("dora_lead_time_seconds_sum",): 25200.0,
    ("dora_deployment_recovery_seconds_count",): 1.0,
    ("dora_deployment_recovery_seconds_sum",): 3600.0,
    ("dora_incidents_opened_total",): 2.0,
    ("dora_incident_recovery_seconds_count",): 2.0,
    ("dora_incident_recovery_seconds_sum",): 6300.0,
    ("github_commits_pushed_total",): 3.0,
    ("github_pull_requests_total", "opened"): 1.0,
    ("github_pull_requests_total", "merged"): 1.0,
    ("github_pull_request_cycle_time_seconds_sum",): 12600.0,
    ("github_pull_request_reviews_total", "approved"): 1.0,
}
