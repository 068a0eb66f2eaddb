"""Connecting to GitHub: the HTTP client, the token requests carry, the errors they end in."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Protocol, TypeVar

import httpx
import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
)

from observer import __version__
from observer.settings import Settings

T = TypeVar("T")

# GitHub's limits for an app's JWT: issued up to 60 s early for clock drift, valid 10 minutes
# at most; 9 minutes leaves room for our clock running ahead of GitHub's.
JWT_BACKDATE = 60
JWT_LIFETIME = 540
# Renew an installation token this long before it expires, so no request carries a dying one.
REFRESH_MARGIN = 300.0


class GitHubError(Exception):
    """A request to GitHub that gave no usable answer; ``reason`` is a failure metric label."""

    reason = "error"


class RateLimited(GitHubError):
    reason = "rate_limited"


class Timeout(GitHubError):
    reason = "timeout"


class Unreachable(GitHubError):
    reason = "unreachable"


class ServerError(GitHubError):
    reason = "server_error"


class NotFound(GitHubError):
    reason = "not_found"


class Unauthorized(GitHubError):
    reason = "unauthorized"


class MalformedResponse(GitHubError):
    reason = "malformed"


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
        # Where and what, never the input: that is GitHub's data, and can be large.
        first = error.errors(include_url=False, include_input=False)[0]
        place = ".".join(str(part) for part in first["loc"]) or "body"
        raise MalformedResponse(
            f"{where}: unexpected response ({error.error_count()} problems, first at {place}: "
            f"{first['msg']})"
        ) from None


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


class TokenSource(Protocol):
    async def token(self) -> str: ...


class StaticToken:
    """A personal access token, or any token that does not expire while the service runs."""

    def __init__(self, secret: SecretStr) -> None:
        self._secret = secret

    def __repr__(self) -> str:
        return "StaticToken(secret=SecretStr('**********'))"

    async def token(self) -> str:
        return self._secret.get_secret_value()


class _AccessToken(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    token: SecretStr = Field(min_length=1)
    expires_at: AwareDatetime


_ACCESS_TOKEN = TypeAdapter(_AccessToken)


class AppInstallationToken:
    """Installation tokens for a GitHub App, made from its private key and renewed before expiry."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        app_id: int,
        installation_id: int,
        private_key: SecretStr,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._http = http
        self._app_id = app_id
        self._installation_id = installation_id
        self._key = load_private_key(private_key)
        self._clock = clock
        self._lock = asyncio.Lock()
        self._current = SecretStr("")
        self._renew_at = 0.0  # already due: the first call fetches a token

    def __repr__(self) -> str:
        return (
            f"AppInstallationToken(app_id={self._app_id}, installation_id={self._installation_id})"
        )

    async def token(self) -> str:
        if self._clock() >= self._renew_at:
            # One renewal at a time; the others wait and then use the token it fetched.
            async with self._lock:
                if self._clock() >= self._renew_at:
                    await self._renew()
        return self._current.get_secret_value()

    def app_jwt(self) -> str:
        now = int(self._clock())
        claims = {"iat": now - JWT_BACKDATE, "exp": now + JWT_LIFETIME, "iss": str(self._app_id)}
        return jwt.encode(claims, self._key, algorithm="RS256")

    async def _renew(self) -> None:
        path = f"/app/installations/{self._installation_id}/access_tokens"
        where = f"POST {path}"
        headers = {"Authorization": f"Bearer {self.app_jwt()}"}
        with transport_errors(where):
            response = await self._http.post(path, headers=headers)
        status = response.status_code
        if status >= 500:
            raise ServerError(f"{where}: HTTP {status}")
        if status == 429:
            raise RateLimited(f"{where}: HTTP {status}")
        if not response.is_success:
            # A wrong app id, key or installation, or an app no longer installed.
            raise Unauthorized(f"{where}: HTTP {status}")
        answer = parse(_ACCESS_TOKEN, response, where)
        self._current = answer.token
        self._renew_at = answer.expires_at.timestamp() - REFRESH_MARGIN


def load_private_key(private_key: SecretStr) -> RSAPrivateKey:
    pem = private_key.get_secret_value()
    if "\\n" in pem and "\n" not in pem:
        # A PEM squeezed into one environment variable line keeps its newlines as "\n".
        pem = pem.replace("\\n", "\n")
    try:
        key = load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        key = None
    if not isinstance(key, RSAPrivateKey):
        # No detail from the parser: it could echo part of the key.
        raise ValueError("is not an unencrypted PEM RSA private key")
    return key


def token_source(settings: Settings, http: httpx.AsyncClient) -> TokenSource | None:
    """The configured way to authenticate, or None when enrichment is off."""
    if settings.github_token is not None:
        return StaticToken(settings.github_token)
    app_id = settings.github_app_id
    installation_id = settings.github_app_installation_id
    key = settings.github_app_private_key
    if app_id is None or installation_id is None or key is None:
        return None
    return AppInstallationToken(http, app_id, installation_id, key)
