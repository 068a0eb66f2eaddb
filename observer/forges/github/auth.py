"""The token GitHub requests carry: a fixed one, or a GitHub App's installation tokens."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

import httpx
import jwt
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SecretStr, TypeAdapter

from observer.forges.github.errors import http_error
from observer.forges.github.http import parse, transport_errors
from observer.forges.github.keys import load_private_key
from observer.settings import Settings

# GitHub's limits for an app's JWT: issued up to 60 s early for clock drift, valid 10 minutes
# at most; 9 minutes leaves room for our clock running ahead of GitHub's.
JWT_BACKDATE = 60
JWT_LIFETIME = 540
# Renew an installation token this long before it expires, so no request carries a dying one.
REFRESH_MARGIN = 300.0
CLIENT_ERRORS = range(400, 500)


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
        if not response.is_success:
            # Beyond rate limits and server errors, a refusal means a wrong app id, key or
            # installation, or an app since removed: a 404 here is no missing resource.
            raise http_error(where, response, missing=(), refused=CLIENT_ERRORS)
        answer = parse(_ACCESS_TOKEN, response, where)
        self._current = answer.token
        self._renew_at = answer.expires_at.timestamp() - REFRESH_MARGIN


class AppJwt:
    """The App's own JWT as a token: what the App's endpoints (``/app/...``) accept."""

    def __init__(self, app: AppInstallationToken) -> None:
        self._app = app

    def __repr__(self) -> str:
        return f"AppJwt({self._app!r})"

    async def token(self) -> str:
        return self._app.app_jwt()


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
