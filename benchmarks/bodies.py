"""Signed GitHub deliveries for the benchmarks, each with ids never sent before in the run.

Bodies are GitHub's own payloads from tests/fixtures, serialised once with markers where the
ids go; a delivery replaces the markers and signs the result. That costs the load generator a
fraction of a ``json.dumps`` of the whole body, so it does not hold back the server it measures.
"""

from __future__ import annotations

import copy
import itertools
import json
import uuid
from typing import Any

from benchmarks.harness import ROOT, SECRET, Request
from tests.signing import sign

FIXTURES = ROOT / "tests" / "fixtures" / "github"
# Markers: a quoted one stands for a whole JSON number, a bare one for part of a string.
NUMBER = b'"@N@"'
HEX = b"@H@"
PREVIOUS = b"@P@"
REPOSITORY = b"@R@"
ENVIRONMENT = b"@E@"


def fixture(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return loaded


def signed(event: str, body: bytes) -> Request:
    head = (
        "POST /webhook HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        f"X-GitHub-Event: {event}\r\nX-GitHub-Delivery: {uuid.uuid4()}\r\n"
        f"X-Hub-Signature-256: {sign(SECRET, body)}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head, body


class Template:
    """One kind of delivery; every ``request`` has its own sequence number in its ids."""

    def __init__(self, event: str, payload: dict[str, Any]) -> None:
        self.event = event
        self.body = json.dumps(payload).encode()
        self.size = len(self.body)

    def request(
        self, number: int, repository: str = "octo-org/app-0", environment: str = "env-0"
    ) -> Request:
        body = (
            self.body.replace(NUMBER, str(number).encode())
            .replace(HEX, f"{number:08x}".encode())
            .replace(PREVIOUS, f"{number - 1:08x}".encode())
            .replace(REPOSITORY, repository.encode())
            .replace(ENVIRONMENT, environment.encode())
        )
        return signed(self.event, body)


def _marked(payload: dict[str, Any]) -> dict[str, Any]:
    payload["repository"]["full_name"] = "@R@"
    return payload


def deployment_status(state: str = "success") -> Template:
    """13.8 KB: its own deployment id and status id, in the repository and environment given."""
    payload = _marked(fixture(f"deployment_status_{state}"))
    payload["deployment_status"]["id"] = "@N@"
    payload["deployment"]["id"] = "@N@"
    payload["deployment"]["environment"] = "@E@"
    payload["deployment_status"]["environment"] = "@E@"
    return Template("deployment_status", payload)


def push(size: int = 0, commits: int | None = None) -> Template:
    """A push to main whose ``after`` is new and whose ``before`` was the previous one.

    Its commits are new too; with ``size`` there are as many (each touching a few files) as
    make the body at least that many bytes, else the fixture's three. With ``commits`` as well,
    there are that many, with messages long enough to make the size.
    """
    payload = _marked(fixture("push"))
    payload["before"] = "@P@" + "0" * 32
    payload["after"] = "@H@" + "f" * 32
    model = payload["commits"][0]
    model["modified"] = [f"services/checkout/src/module_{i}/handler.py" for i in range(4)]
    fixed = len(payload["commits"])
    payload["commits"] = []
    base = len(json.dumps(payload))
    each = len(json.dumps(_commit(model, 0))) + 2
    count = max(fixed, -(-(size - base) // each)) if commits is None else commits
    made = [_commit(model, i) for i in range(count)]
    if commits is not None and size > base + each * count:
        # head_commit repeats the newest commit, message and all.
        padding = (size - base - each * (count + 1)) // (count + 1)
        for commit in made:
            commit["message"] += "\n\n" + "x" * padding
    # The newest commit is what the branch now points at.
    made[-1]["id"] = payload["after"]
    payload["commits"] = made
    payload["head_commit"] = made[-1]
    return Template("push", payload)


def _commit(model: dict[str, Any], index: int) -> dict[str, Any]:
    commit = copy.deepcopy(model)
    commit["id"] = f"@H@{index:032x}"
    commit["distinct"] = True
    commit["message"] = f"Step {index} of the checkout retry budget"
    return commit


def pull_request(merged: bool) -> Template:
    """Opened, or closed as merged: the same pull request for the same sequence number."""
    payload = _marked(fixture("pull_request_closed_merged" if merged else "pull_request_opened"))
    payload["pull_request"]["id"] = "@N@"
    payload["pull_request"]["number"] = "@N@"
    return Template("pull_request", payload)


def incident() -> Template:
    """An issue given the incident label."""
    payload = _marked(fixture("issues_labeled_incident"))
    payload["issue"]["id"] = "@N@"
    payload["issue"]["number"] = "@N@"
    return Template("issues", payload)


class Sequence:
    """Numbers never used before in this process, shared by every template."""

    def __init__(self, start: int = 10_000_000) -> None:
        self._next = itertools.count(start)

    def take(self) -> int:
        return next(self._next)

    def build(
        self,
        template: Template,
        count: int,
        repositories: int = 1,
        environments: int = 1,
        environment: str = "env-{}",
    ) -> list[Request]:
        """``count`` deliveries spread over repositories x environments (named by the pattern)."""
        return [
            template.request(
                self.take(),
                f"octo-org/app-{index % repositories}",
                environment.format(index // repositories % environments),
            )
            for index in range(count)
        ]
