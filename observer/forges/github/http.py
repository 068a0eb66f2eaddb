"""The HTTP side of talking to GitHub: the client, its endpoints, transport failures, bodies."""

from __future__ import annotations

import httpx

from observer import __version__
from observer.forges.api import parse, transport_errors, validate
from observer.settings import Settings

__all__ = ("create_http_client", "graphql_url", "parse", "transport_errors", "validate")


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
