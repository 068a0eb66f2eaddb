"""GitHub's webhook signature (HMAC-SHA256 over the raw body), checked in constant time."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

PREFIX = "sha256="
DIGEST_HEX_LENGTH = hashlib.sha256().digest_size * 2


def sign(secret: bytes, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value for ``body``."""
    return PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secrets: Iterable[bytes], body: bytes, header: str | None) -> bool:
    """Whether ``header`` signs ``body`` with any of ``secrets`` (a current and a previous one).

    A header must be ``sha256=`` followed by exactly 64 hex digits; anything else is refused
    before any digest is computed.
    """
    if header is None or not header.startswith(PREFIX):
        return False
    digest = header[len(PREFIX) :]
    if len(digest) != DIGEST_HEX_LENGTH or not _is_hex(digest):
        return False
    expected = digest.lower().encode()
    # Every secret is tried, so the time taken does not reveal which one matched.
    matched = False
    for secret in secrets:
        actual = hmac.new(secret, body, hashlib.sha256).hexdigest().encode()
        matched |= hmac.compare_digest(actual, expected)
    return matched


def _is_hex(text: str) -> bool:
    return all(char in "0123456789abcdefABCDEF" for char in text)
