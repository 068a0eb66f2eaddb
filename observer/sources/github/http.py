"""The HTTP side of talking to GitHub: the client, its endpoints, transport failures, bodies."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TypeVar

import httpx
from pydantic import TypeAdapter, ValidationError

from observer import __version__
from observer.settings import Settings
from observer.sources.github.errors import MalformedResponse, Timeout, Unreachable

T = TypeVar("T")


def create_http_client(
    settings: Settings, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        # httpx joins relative paths under the base path, which GitHub Enterprise's /api/v3 needs.
        base_url=str(settings.github_api_url),
        headers={
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": f"observer/{__version__}",
        },
        timeout=httpx.Timeout(settings.github_timeout, connect=5.0),
        # A renamed repository answers 301; httpx drops Authorization if the origin changes.
        follow_redirects=True,
        transport=transport,
    )


def graphql_url(rest_base: httpx.URL) -> httpx.URL:
    """The GraphQL endpoint beside a REST base URL.

    api.github.com serves it at /graphql; GitHub Enterprise Server serves REST under /api/v3 and
    GraphQL at /api/graphql, not under the REST path.
    """
    path = rest_base.path.rstrip("/")
    if path.endswith("/api/v3"):
        path = path.removesuffix("/v3")
    return rest_base.copy_with(path=f"{path}/graphql", query=None, fragment=None)


@contextlib.contextmanager
def transport_errors(where: str) -> Iterator[None]:
    """The one place that turns httpx's exceptions into ``GitHubError``s."""
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
    # Where and what, never the input: that is GitHub's data, and can be large.
    first = error.errors(include_url=False, include_input=False)[0]
    place = ".".join(str(part) for part in first["loc"]) or "body"
    return MalformedResponse(
        f"{where}: unexpected response ({error.error_count()} problems, first at {place}: "
        f"{first['msg']})"
    )
