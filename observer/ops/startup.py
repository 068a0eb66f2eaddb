"""What the process does before it serves: take the listening socket, describe what is in force."""

from __future__ import annotations

import errno
import socket
from typing import Any

from observer import __version__
from observer.settings import Settings

# Values people copy from examples; a signature made with one of them proves nothing.
PLACEHOLDER_SECRETS = frozenset(
    {"change-me", "changeme", "change_me", "secret", "password", "test", "example", "observer"}
)
MIN_SECRET_LENGTH = 16


class StartError(Exception):
    """The service cannot start; the message is one line naming the setting at fault."""


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to HOST:PORT, taken before the application starts.

    Binding here rather than in uvicorn turns a busy port into a message that names PORT, before
    the lifespan has logged that startup completed.
    """
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise StartError(f"HOST {host!r} cannot be resolved: {error.strerror}") from None
    family, kind, proto, _, address = found[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise StartError(f"PORT {port} is already in use on {host}") from None
        if error.errno == errno.EADDRNOTAVAIL:
            raise StartError(f"HOST {host!r} is not an address of this machine") from None
        if error.errno == errno.EACCES:
            raise StartError(f"PORT {port} needs privileges this process does not have") from None
        raise StartError(f"cannot listen on HOST {host!r} PORT {port}: {error.strerror}") from None
    return sock


def summary(settings: Settings) -> dict[str, Any]:
    """The settings in force that an operator asks about first; never a secret."""
    return {
        "version": __version__,
        "listen": f"{settings.host}:{settings.port}",
        "enrichment": "on" if settings.enrichment_enabled else "off",
        "state": state_mode(settings),
        "production_environments": settings.production_environments.pattern,
        "repositories": list(settings.repositories) or "all",
        "api_token": "set" if settings.api_token is not None else "unset",
        "gitlab": gitlab_mode(settings),
        "log_level": settings.log_level,
    }


def gitlab_mode(settings: Settings) -> str:
    """How /gitlab authenticates: off (no secret token), by token, or by token and signature."""
    if not settings.gitlab_webhook_secrets():
        return "off"
    return "token" if settings.gitlab_signing_token is None else "token and signature"


def state_mode(settings: Settings) -> str:
    # Only the scheme: a state URL may carry a password.
    if settings.state_url is None:
        return "memory"
    return settings.state_url.get_secret_value().split(":", 1)[0].lower()


def warnings(settings: Settings) -> list[str]:
    """Settings that work but are probably a mistake."""
    found = []
    secret = settings.webhook_secret.get_secret_value()
    if secret.lower() in PLACEHOLDER_SECRETS:
        found.append(
            "WEBHOOK_SECRET is a placeholder value; anyone can sign deliveries with it "
            "(make one with: openssl rand -hex 32)"
        )
    elif len(secret) < MIN_SECRET_LENGTH:
        found.append(
            f"WEBHOOK_SECRET is shorter than {MIN_SECRET_LENGTH} characters "
            "(make one with: openssl rand -hex 32)"
        )
    tokens = settings.gitlab_webhook_secrets()
    if any(
        token.lower().decode(errors="replace") in PLACEHOLDER_SECRETS for token in tokens
    ) or any(len(token) < MIN_SECRET_LENGTH for token in tokens):
        found.append(
            f"GITLAB_WEBHOOK_SECRET holds a placeholder or a token shorter than "
            f"{MIN_SECRET_LENGTH} characters; GitLab sends it as it is, so it must not be "
            "guessable (make one with: openssl rand -hex 32)"
        )
    return found
