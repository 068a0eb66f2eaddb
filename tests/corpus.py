"""A corpus of malformed, oversized, deeply nested and wrongly typed requests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from tests.conftest import API_TOKEN, SECRET, load_fixture
from tests.signing import sign

WRONG_VALUES: list[Any] = [
    None, True, 0, -1, 2**70, 1.5e308, "", "x" * 10_000, "not-a-date", "\u0000\ud800",
    [], [None], {}, {"id": None},
]  # fmt: skip

# The parts of a payload the service reads; inside others, a wrong type is never looked at.
READ = frozenset(
    {"deployment_status", "deployment", "pull_request", "issue", "repository", "commits", "label"}
)

HANDLED = [
    "deployment_status_success",
    "deployment_status_failure",
    "pull_request_opened",
    "pull_request_closed_merged",
    "push",
    "issues_opened_incident",
    "issues_closed_incident",
]


def _paths(value: Any, prefix: tuple[Any, ...] = (), depth: int = 2) -> Iterator[tuple[Any, ...]]:
    if depth == 0:
        return
    items: Any = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value[:2])
        if isinstance(value, list)
        else ()
    )
    for key, child in items:
        yield (*prefix, key)
        if isinstance(child, dict | list):
            yield from _paths(child, (*prefix, key), depth - 1)


def _along(document: Any, path: tuple[Any, ...]) -> tuple[Any, Any]:
    """A copy of ``document`` whose containers along ``path`` are new, and the last of them.

    Everything off the path is shared with ``document``, not copied: a deep copy of each
    18 KB fixture for each of its 12,000 cases took longer than sending them all. Nothing
    changes a case once it is made: each is serialised as it is sent.
    """
    root = _shallow(document)
    target = root
    for key in path[:-1]:
        target[key] = _shallow(target[key])
        target = target[key]
    return root, target


def _shallow(container: Any) -> Any:
    return list(container) if isinstance(container, list) else dict(container)


def _set(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    mutated, target = _along(document, path)
    target[path[-1]] = value
    return mutated


def _delete(document: Any, path: tuple[Any, ...]) -> Any:
    mutated, target = _along(document, path)
    del target[path[-1]]
    return mutated


def wrongly_typed_payloads() -> Iterator[tuple[str, str, Any]]:
    """(case id, event, payload) with one field of a real payload replaced or removed."""
    for name in HANDLED:
        event = name.split("_opened")[0].split("_closed")[0].split("_success")[0]
        event = event.split("_failure")[0]
        document = load_fixture(name)
        for path in _paths(document):
            if len(path) > 1 and path[0] not in READ:
                continue
            label = ".".join(str(part) for part in path)
            yield f"{name}:-{label}", event, _delete(document, path)
            for index, wrong in enumerate(WRONG_VALUES):
                yield f"{name}:{label}={index}", event, _set(document, path, wrong)


def raw_bodies() -> Iterator[tuple[str, bytes, str]]:
    """(case id, body, content type) that are not JSON objects at all."""
    yield "empty", b"", "application/json"
    yield "null", b"null", "application/json"
    yield "number", b"1e999999", "application/json"
    yield "long int", b"1" * 5000, "application/json"
    yield "nan", b'{"a": NaN}', "application/json"
    yield "bad utf8", b'{"a": "\xff\xfe"}', "application/json"
    yield "utf16", '{"zen": "x"}'.encode("utf-16"), "application/json"
    yield "nested arrays", b"[" * 200_000, "application/json"
    yield "nested objects", b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "application/json"
    yield "binary", bytes(range(256)) * 64, "application/json"
    yield "form bad escape", b"payload=%ZZ", "application/x-www-form-urlencoded"
    yield (
        "form many fields",
        b"&".join(b"a%d=1" % i for i in range(5000)),
        ("application/x-www-form-urlencoded"),
    )
    yield "form payload list", b"payload=%5B1%5D", "application/x-www-form-urlencoded"
    yield "form bad utf8", b"payload=\xff", "application/x-www-form-urlencoded"
    yield "json with form type", b'{"zen":"x"}', "application/x-www-form-urlencoded"
    yield "no content type", b'{"zen":"x"}', ""
    yield "content type params", b'{"zen":"x"}', "application/json; charset=utf-8; x=\x01"


def signed_headers(
    event: str, body: bytes, content_type: str = "application/json"
) -> dict[str, str]:
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": f"corpus-{hash(body) & 0xFFFFFFFF:x}-{len(body)}",
        "Content-Type": content_type,
        "X-Hub-Signature-256": sign(SECRET, body),
    }


def api_bodies() -> Iterator[tuple[str, Any]]:
    """(case id, JSON) for /api/event: wrong types in every field of both event types."""
    deployment = {
        "type": "deployment", "repository": "octo/app", "environment": "production",
        "status": "success", "sha": "a" * 40, "timestamp": "2026-11-23T10:00:00Z", "id": "d-1",
        "commits": [{"sha": "b" * 40, "timestamp": "2026-11-22T10:00:00Z"}],
    }  # fmt: skip
    incident = {
        "type": "incident", "repository": "octo/app", "action": "resolved", "id": "INC-1",
        "opened_at": "2026-11-23T10:00:00Z", "resolved_at": "2026-11-23T11:00:00Z",
    }  # fmt: skip
    for name, document in (("deployment", deployment), ("incident", incident)):
        for path in _paths(document, depth=3):
            label = ".".join(str(part) for part in path)
            yield f"{name}:-{label}", _delete(document, path)
            for index, wrong in enumerate(WRONG_VALUES):
                yield f"{name}:{label}={index}", _set(document, path, wrong)
        yield f"{name}:list", [document] * 3


def api_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/json"}


def dumps(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode("utf-8", "surrogatepass")
