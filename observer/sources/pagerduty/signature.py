"""PagerDuty's v3 webhook signature: ``v1=<hex HMAC-SHA256 of the raw body>``, comma-separated.

PagerDuty signs with every secret the subscription has while one is being rotated, so the
header may carry several signatures; one made with the secret observer holds is enough.
Signatures of other versions are passed over, as PagerDuty's verification steps say.
"""

from __future__ import annotations

import hashlib
import hmac
import re

VERSION = "v1="
_SIGNATURE = re.compile(r"v1=([0-9a-fA-F]{64})")
# More signatures than a rotation needs are refused before any digest is computed.
MAX_SIGNATURES = 8


def sign(secret: bytes, body: bytes) -> str:
    """One ``X-PagerDuty-Signature`` entry for ``body``."""
    return VERSION + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, header: str) -> bool:
    entries = [entry.strip() for entry in header.split(",")]
    if len(entries) > MAX_SIGNATURES:
        return False
    digests = [
        bytes.fromhex(found[1]) for entry in entries if (found := _SIGNATURE.fullmatch(entry))
    ]
    if not digests:
        return False
    expected = hmac.digest(secret, body, "sha256")
    # Every entry is compared, so the time taken does not say which one matched.
    matched = False
    for digest in digests:
        matched |= hmac.compare_digest(digest, expected)
    return matched
