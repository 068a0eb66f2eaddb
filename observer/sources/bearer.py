"""``Authorization: Bearer <API_TOKEN>``: how pipelines and Alertmanager authenticate."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from observer.settings import Settings
from observer.sources.adapter import Refused

MISSING = "missing bearer token (Authorization: Bearer <API_TOKEN>)"


class Bearer:
    def __init__(self, settings: Settings) -> None:
        token = settings.api_token
        self._token = token.get_secret_value().encode() if token is not None else None

    def present(self, headers: Mapping[str, str]) -> bool:
        return "authorization" in headers

    def precheck(self, headers: Mapping[str, str]) -> None:
        """Refuses before the body is read: the token is all there is to check."""
        authorization = headers.get("authorization")
        if authorization is None:
            raise Refused(401, MISSING)
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer":
            raise Refused(401, "bearer token is not valid")
        if self._token is None:
            raise Refused(401, "bearer token refused: API_TOKEN is not configured on this observer")
        if not hmac.compare_digest(token.strip().encode(), self._token):
            raise Refused(401, "bearer token is not valid")

    def authenticate(self, headers: Mapping[str, str], body: bytes) -> None:
        self.precheck(headers)
