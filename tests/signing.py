"""An implementation of GitHub's webhook signing that shares no code with the service."""

from __future__ import annotations

import hashlib
import hmac
import subprocess


def sign(secret: str | bytes, body: bytes) -> str:
    """The X-Hub-Signature-256 value GitHub sends for ``body``."""
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def sign_with_openssl(secret: str, body: bytes) -> str:
    """The same signature computed by the openssl command line, a second implementation."""
    out = subprocess.run(
        ["openssl", "dgst", "-sha256", "-hmac", secret, "-r"],
        input=body,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return "sha256=" + out.split()[0]
