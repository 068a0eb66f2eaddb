"""GitHub's webhook signature (HMAC-SHA256 over the raw body), checked in constant time."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable

PREFIX = "sha256="
DIGEST_HEX_LENGTH = hashlib.sha256().digest_size * 2
_HEADER = re.compile(f"{PREFIX}([0-9a-fA-F]{{{DIGEST_HEX_LENGTH}}})")


def sign(secret: bytes, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value for ``body``."""
    return PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secrets: Iterable[bytes], body: bytes, header: str | None) -> bool:
    """Whether ``header`` signs ``body`` with any of ``secrets`` (a current and a previous one).

    A header must be ``sha256=`` followed by exactly 64 hex digits; anything else is refused
    before any digest is computed.
    """
    match = _HEADER.fullmatch(header) if header is not None else None
    if match is None:
        return False
    expected = bytes.fromhex(match[1])
    # Every secret is tried, so the time taken does not reveal which one matched.
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(hmac.digest(secret, body, "sha256"), expected)
    return matched
