"""Whether a delivery comes from GitLab: its secret token, and its signature when one is set.

GitLab sends the hook's secret token as it is, in ``X-Gitlab-Token``; it is compared in constant
time with each configured one (several while a token is being rotated). A hook with a signing
token also signs each delivery the Standard Webhooks way: ``webhook-signature`` holds one or
more ``v1,<base64 HMAC-SHA256>`` of ``"{webhook-id}.{webhook-timestamp}.{body}"``, and a
timestamp more than five minutes from now is refused, so a captured delivery cannot be replayed
later. Nothing here reads the body but the HMAC over its bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping

from observer.sources.adapter import Refused

TOKEN_HEADER = "x-gitlab-token"  # noqa: S105 (a header's name)
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
# Standard Webhooks' tolerance: a delivery signed longer ago (or ahead) than this is refused.
TOLERANCE_SECONDS = 300
# Bounds on what is read from the signature headers before anything is computed.
MAX_SIGNATURES = 10
MAX_HEADER_CHARS = 1000

NOT_CONFIGURED = "GITLAB_WEBHOOK_SECRET is not configured: /gitlab accepts no delivery"
MISSING_TOKEN = "missing X-Gitlab-Token header"  # noqa: S105 (a reason, not a secret)
WRONG_TOKEN = "X-Gitlab-Token does not match GITLAB_WEBHOOK_SECRET"  # noqa: S105
MISSING_SIGNATURE = "missing webhook-id, webhook-timestamp or webhook-signature header"
BAD_TIMESTAMP = "webhook-timestamp is not a Unix time in seconds"
STALE = "webhook-timestamp is more than 5 minutes from now"
WRONG_SIGNATURE = "webhook-signature does not match GITLAB_SIGNING_TOKEN"


class GitLabAuth:
    """Checks a delivery's secret token and, with a signing key, its signature."""

    def __init__(
        self,
        secrets: tuple[bytes, ...],
        signing_key: bytes | None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secrets = secrets
        self._signing_key = signing_key
        self._clock = clock

    def precheck(self, headers: Mapping[str, str]) -> None:
        """Refuses what needs no body to refuse: no secret configured, or no credentials sent."""
        if not self._secrets:
            raise Refused(401, NOT_CONFIGURED)
        if not headers.get(TOKEN_HEADER):
            raise Refused(401, MISSING_TOKEN)
        if self._signing_key is not None and not all(
            headers.get(name) for name in (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER)
        ):
            raise Refused(401, MISSING_SIGNATURE)

    def authenticate(self, headers: Mapping[str, str], body: bytes) -> None:
        self.precheck(headers)
        if not self._token_matches(headers[TOKEN_HEADER]):
            raise Refused(401, WRONG_TOKEN)
        if self._signing_key is not None:
            self._verify_signature(self._signing_key, headers, body)

    def _token_matches(self, sent: str) -> bool:
        given = sent.encode()
        # Every configured token is compared, so the time taken does not tell which matched.
        matches = [hmac.compare_digest(given, secret) for secret in self._secrets]
        return any(matches)

    def _verify_signature(self, key: bytes, headers: Mapping[str, str], body: bytes) -> None:
        delivery, stamp = headers[ID_HEADER], headers[TIMESTAMP_HEADER]
        listed = headers[SIGNATURE_HEADER]
        if len(delivery) > MAX_HEADER_CHARS or len(listed) > MAX_HEADER_CHARS:
            raise Refused(401, WRONG_SIGNATURE)
        if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12):
            raise Refused(401, BAD_TIMESTAMP)
        if abs(self._clock() - int(stamp)) > TOLERANCE_SECONDS:
            raise Refused(401, STALE)
        expected = sign(key, delivery, stamp, body)
        # Several signatures while the signing token rotates; versions other than v1 are skipped.
        offered = [
            value.removeprefix("v1,").encode()
            for value in listed.split(" ")[:MAX_SIGNATURES]
            if value.startswith("v1,")
        ]
        matches = [hmac.compare_digest(expected.encode(), value) for value in offered]
        if not any(matches):
            raise Refused(401, WRONG_SIGNATURE)


def sign(key: bytes, delivery: str, timestamp: str, body: bytes) -> str:
    """The base64 of the HMAC-SHA256 that Standard Webhooks sends after ``v1,``."""
    message = b"%s.%s.%s" % (delivery.encode(), timestamp.encode(), body)
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()
