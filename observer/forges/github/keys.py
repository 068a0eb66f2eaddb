"""A GitHub App's private key, read once at start so a bad one stops the service there."""

from __future__ import annotations

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from pydantic import SecretStr


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
