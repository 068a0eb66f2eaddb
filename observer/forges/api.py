"""What every forge's API client shares: its errors, reading answers, retries, counting calls.

GitHub's and GitLab's clients differ in their paths, headers and rate-limit rules; how a
transport failure, a bad body or a spent limit becomes an error, how long a retry waits, and how
a deployment's calls are counted are the same for both, here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TypeVar

import httpx
from pydantic import TypeAdapter, ValidationError

T = TypeVar("T")

# A failed request is retried after a random wait below min(BACKOFF_CAP, BACKOFF_BASE * 2**n).
BACKOFF_BASE = 0.5
BACKOFF_CAP = 8.0


class ApiError(Exception):
    """A request to a forge's API that gave no usable answer; ``reason`` is a failure label."""

    reason = "error"


class RateLimited(ApiError):
    reason = "rate_limited"


class Timeout(ApiError):
    reason = "timeout"


class Unreachable(ApiError):
    reason = "unreachable"


class ServerError(ApiError):
    reason = "server_error"


class NotFound(ApiError):
    reason = "not_found"


class Unauthorized(ApiError):
    reason = "unauthorized"


class MalformedResponse(ApiError):
    reason = "malformed"


def header_number(response: httpx.Response, header: str) -> float | None:
    try:
        return float(response.headers[header])
    except (KeyError, ValueError):
        return None


def backoff(retries: int, uniform: Callable[[float, float], float]) -> float:
    """Seconds to wait before retry number ``retries`` (0 first), with full jitter."""
    return uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2.0**retries))


@contextlib.contextmanager
def transport_errors(where: str) -> Iterator[None]:
    """The one place that turns httpx's exceptions into ``ApiError``s."""
    try:
        yield
    except httpx.TimeoutException as error:
        raise Timeout(f"{where}: no answer in time ({type(error).__name__})") from error
    except httpx.DecodingError as error:
        raise MalformedResponse(f"{where}: body could not be decoded") from error
    except httpx.RequestError as error:
        raise Unreachable(f"{where}: {type(error).__name__}") from error


def parse(adapter: TypeAdapter[T], response: httpx.Response, where: str) -> T:
    """The body validated by ``adapter``, or MalformedResponse for bad JSON or a wrong shape."""
    try:
        return adapter.validate_json(response.content)
    except ValidationError as error:
        raise _malformed(error, where) from None


def validate(adapter: TypeAdapter[T], value: object, where: str) -> T:
    """Part of an already decoded body validated by ``adapter``, as ``parse`` does a whole one."""
    try:
        return adapter.validate_python(value)
    except ValidationError as error:
        raise _malformed(error, where) from None


def _malformed(error: ValidationError, where: str) -> MalformedResponse:
    # Where and what, never the input: that is the forge's data, and can be large.
    first = error.errors(include_url=False, include_input=False)[0]
    place = ".".join(str(part) for part in first["loc"]) or "body"
    return MalformedResponse(
        f"{where}: unexpected response ({error.error_count()} problems, first at {place}: "
        f"{first['msg']})"
    )


@dataclass(slots=True)
class CallCount:
    calls: int = 0


# Each task sees the counters opened in its own context, so concurrent jobs are counted apart.
_COUNTERS: ContextVar[tuple[tuple[object, CallCount], ...]] = ContextVar(
    "api_call_counters", default=()
)


@contextlib.contextmanager
def counting(owner: object) -> Iterator[CallCount]:
    """Count the requests ``owner`` sends (``count_call``) from this task inside the block."""
    count = CallCount()
    reset = _COUNTERS.set((*_COUNTERS.get(), (owner, count)))
    try:
        yield count
    finally:
        _COUNTERS.reset(reset)


def count_call(owner: object) -> None:
    for counted, count in _COUNTERS.get():
        if counted is owner:
            count.calls += 1
