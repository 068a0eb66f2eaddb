"""How a request to GitHub fails: the errors, and the one reading of an HTTP answer into them."""

from __future__ import annotations

from collections.abc import Collection

import httpx

from observer.forges.api import (
    ApiError,
    MalformedResponse,
    NotFound,
    RateLimited,
    ServerError,
    Timeout,
    Unauthorized,
    Unreachable,
    header_number,
)

__all__ = (
    "ApiError", "GitHubError", "MalformedResponse", "NotFound", "RateLimited",
    "RepositoryNotFound", "ServerError", "Timeout", "Unauthorized", "Unreachable",
    "header_number", "http_error", "is_rate_limit",
)  # fmt: skip

# Statuses that mean the credentials may not do this; GitHub answers 403 for rate limits too.
REFUSED = frozenset({401, 403})
MISSING = frozenset({404})


# The errors every forge's client raises; GitHub's modules call the base by its old name.
GitHubError = ApiError


class RepositoryNotFound(NotFound):
    """GitHub has no such repository, or none the credentials may see: it is not on GitHub."""


def is_rate_limit(response: httpx.Response) -> bool:
    """Whether a refusal is GitHub's rate limit, by its rules, rather than missing permission."""
    status = response.status_code
    if status == 429:
        return True
    if status != 403:
        return False
    if "retry-after" in response.headers:
        return True
    spent = header_number(response, "x-ratelimit-remaining") == 0
    if spent and header_number(response, "x-ratelimit-reset") is not None:
        return True
    # GitHub's rate-limit messages say so ("API rate limit exceeded", "secondary rate limit").
    return b"rate limit" in response.content.lower()


def http_error(
    where: str,
    response: httpx.Response,
    *,
    rate_limited: bool | None = None,
    missing: Collection[int] = MISSING,
    refused: Collection[int] = REFUSED,
) -> GitHubError:
    """The error an unusable answer means, by its status; ``rate_limited`` overrides the guess.

    Callers choose which statuses mean "no such thing" and which a refusal of the credentials,
    since the same 404 means a missing commit to the API and a wrong installation to the token.
    """
    status = response.status_code
    message = f"{where}: HTTP {status}"
    if status >= 500:
        return ServerError(message)
    if is_rate_limit(response) if rate_limited is None else rate_limited:
        return RateLimited(f"{message}: rate limited")
    if status in refused:
        return Unauthorized(message)
    if status in missing:
        return NotFound(message)
    return GitHubError(message)
