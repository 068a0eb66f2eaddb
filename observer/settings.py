"""Configuration from the environment: one ``Settings`` object, validated at start."""

from __future__ import annotations

import base64
import binascii
import re
import sys
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AnyHttpUrl,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from observer.forges.github.keys import load_private_key

# Secrets that may come from a file instead of the environment, as Kubernetes mounts them.
FILE_SECRETS = (
    "webhook_secret",
    "webhook_secret_previous",
    "github_token",
    "github_app_private_key",
    "api_token",
    "state_url",
    "pagerduty_webhook_secret",
    "gitlab_webhook_secret",
    "gitlab_signing_token",
    "gitlab_token",
)

# Standard Webhooks' prefix of a secret given as the base64 of its key.
WHSEC = "whsec_"

STATE_SCHEMES = ("file", "gs", "s3", "az", "redis", "rediss")

# owner/name or owner/*; GitLab's projects and groups may sit in subgroups (group/sub/name).
REPOSITORY_PATTERN = re.compile(
    r"^[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+){0,19}/(?:[A-Za-z0-9_.-]+|\*)$"
)
# A repository another source names: owner/name, or a path with subgroups as GitLab names them.
REPOSITORY_PATH = re.compile(r"^[A-Za-z0-9_.-]{1,100}(?:/[A-Za-z0-9_.-]{1,100}){1,20}$")
# A webhook whose deliveries can be listed and redelivered: an organisation's, a repository's,
# or (``app``) the GitHub App's own.
HOOK_PATTERN = re.compile(
    r"^(?:orgs/[A-Za-z0-9_.-]+/hooks/[0-9]+|repos/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+/hooks/[0-9]+|app)$"
)


class Settings(BaseSettings):
    """Every setting the service reads; names are the environment variables, upper-cased."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    webhook_secret: SecretStr
    webhook_secret_previous: SecretStr | None = None
    github_token: SecretStr | None = None
    github_api_url: AnyHttpUrl = AnyHttpUrl("https://api.github.com")
    api_token: SecretStr | None = None
    # A GitHub App installation instead of a token: the app's id, its installation, its key.
    github_app_id: int | None = Field(default=None, ge=1)
    github_app_installation_id: int | None = Field(default=None, ge=1)
    github_app_private_key: SecretStr | None = None
    # GitLab (gitlab.com or self-managed, with any path prefix) and a read_api token: lead time
    # of GitLab projects from its API. Retries, rate-limit waits and timeouts as for GitHub.
    gitlab_url: AnyHttpUrl = AnyHttpUrl("https://gitlab.com")
    gitlab_token: SecretStr | None = None

    host: str = "0.0.0.0"
    port: int = Field(default=8080, ge=1, le=65535)

    repositories: Annotated[tuple[str, ...], NoDecode] = ()
    production_environments: re.Pattern[str] = re.compile(r"^(production|prod)$", re.IGNORECASE)
    incident_label: str = Field(default="incident", min_length=1)

    max_body_bytes: int = Field(default=26_214_400, ge=1024)
    max_buffered_bytes: int = Field(default=104_857_600, ge=1024)
    max_repositories: int = Field(default=2000, ge=1)
    max_environments: int = Field(default=20, ge=1)
    max_events_per_request: int = Field(default=1000, ge=1)
    dedup_capacity: int = Field(default=100_000, ge=100)

    enrichment_concurrency: int = Field(default=4, ge=1, le=64)
    github_timeout: float = Field(default=10.0, gt=0)
    github_max_retries: int = Field(default=3, ge=0, le=10)
    github_max_rate_limit_wait: float = Field(default=900.0, ge=0)
    compare_max_pages: int = Field(default=5, ge=1, le=100)
    cache_size: int = Field(default=50_000, ge=100)
    shutdown_timeout: float = Field(default=10.0, ge=0)
    log_level: str = "info"
    # Readable text at a terminal, JSON lines everywhere else (a container, a service manager,
    # a pipe to a log collector).
    log_format: str = Field(default_factory=lambda: "console" if _stdout_is_terminal() else "json")

    # Where the state that decides a number lives; it may carry a password, so it is secret.
    state_url: SecretStr | None = None
    state_save_interval: float = Field(default=60.0, gt=0)
    state_timeout: float = Field(default=2.0, gt=0)
    settle_seconds: float = Field(default=30.0, ge=0)
    max_clock_skew: float = Field(default=300.0, ge=0)

    # Teams, people-safe activity and deployments from GitHub Actions runs.
    teams_file: Path | None = None
    min_team_size: int = Field(default=5, ge=1)
    teams_filter: bool = False
    hotfix_label: str = Field(default="hotfix", min_length=1)
    deploy_workflows: Annotated[tuple[tuple[str, str], ...], NoDecode] = ()
    deploy_branches: Annotated[tuple[str, ...], NoDecode] = ()

    # GitLab webhooks (POST /gitlab): the hook's secret token (several, comma-separated, while
    # rotating) and, when set, its signing token (Standard Webhooks signatures).
    gitlab_webhook_secret: SecretStr | None = None
    gitlab_signing_token: SecretStr | None = None

    # Missed-delivery recovery: the hooks whose failed deliveries are redelivered, and how often.
    redeliver_hooks: Annotated[tuple[str, ...], NoDecode] = ()
    redeliver_interval: float = Field(default=300.0, gt=0)

    # Incidents from Alertmanager (which alerts, and the label naming the repository) and from
    # PagerDuty (the subscription's secret, and which service is which repository).
    incident_alerts: str = 'severity=~"critical|page"'
    alert_repository_label: str = Field(default="repository", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    pagerduty_webhook_secret: SecretStr | None = None
    pagerduty_services: Annotated[tuple[tuple[str, str], ...], NoDecode] = ()

    webhook_secret_file: Path | None = None
    webhook_secret_previous_file: Path | None = None
    github_token_file: Path | None = None
    github_app_private_key_file: Path | None = None
    api_token_file: Path | None = None
    state_url_file: Path | None = None
    pagerduty_webhook_secret_file: Path | None = None
    gitlab_webhook_secret_file: Path | None = None
    gitlab_signing_token_file: Path | None = None
    gitlab_token_file: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _read_secret_files(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for name in FILE_SECRETS:
            path = data.get(f"{name}_file")
            if not path:
                continue
            if data.get(name):
                raise ValueError(f"set {name.upper()} or {name.upper()}_FILE, not both")
            try:
                data[name] = Path(path).read_text().strip()
            except OSError as error:
                raise ValueError(
                    f"{name.upper()}_FILE: cannot read {path}: {error.strerror}"
                ) from None
        return data

    @field_validator("webhook_secret")
    @classmethod
    def _secret_not_empty(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise ValueError("must not be empty")
        return value

    @field_validator(
        "github_token",
        "api_token",
        "webhook_secret_previous",
        "github_app_private_key",
        "state_url",
        "pagerduty_webhook_secret",
        "gitlab_webhook_secret",
        "gitlab_signing_token",
        "gitlab_token",
    )
    @classmethod
    def _empty_is_unset(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value():
            return None
        return value

    @field_validator("github_app_private_key")
    @classmethod
    def _check_private_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            load_private_key(value)
        return value

    @field_validator("gitlab_signing_token")
    @classmethod
    def _check_signing_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            signing_key(value.get_secret_value())
        return value

    @field_validator("repositories", mode="before")
    @classmethod
    def _split_repositories(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("repositories")
    @classmethod
    def _check_repositories(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            if not REPOSITORY_PATTERN.match(item):
                raise ValueError(f"{item!r} is not owner/name or owner/* (or group/sub/name)")
        return tuple(item.lower() for item in value)

    @field_validator("state_url")
    @classmethod
    def _check_state_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        url = value.get_secret_value()
        scheme, _, rest = url.partition("://")
        if scheme.lower() not in STATE_SCHEMES or not rest:
            # The value may hold a password: name the schemes, never the value.
            raise ValueError(
                "must be file:///path, gs://BUCKET/PATH, s3://BUCKET/PATH, az://CONTAINER/PATH, "
                "redis://HOST[:PORT][/DB] or rediss://…"
            )
        if scheme.lower() == "file" and not rest.startswith("/"):
            raise ValueError("a file URL needs an absolute path: file:///var/lib/observer/state")
        if scheme.lower() in ("gs", "s3", "az"):
            bucket, _, path = rest.partition("/")
            if not bucket or not path or path.endswith("/"):
                raise ValueError(f"a bucket URL names an object: {scheme}://BUCKET/PATH/TO/OBJECT")
        return value

    @field_validator("production_environments")
    @classmethod
    def _ignore_case(cls, value: re.Pattern[str]) -> re.Pattern[str]:
        # Environment names are compared lower-cased, so '^Production$' must still match.
        return re.compile(value.pattern, value.flags | re.IGNORECASE)

    @field_validator("teams_file")
    @classmethod
    def _check_teams_file(cls, value: Path | None) -> Path | None:
        if value is not None:
            # Imported here: the teams module depends on these settings' neighbours.
            from observer.teams.file import TeamsError, read_teams

            try:
                read_teams(value)
            except TeamsError as error:
                raise ValueError(str(error)) from None
        return value

    @field_validator("deploy_workflows", mode="before")
    @classmethod
    def _split_deploy_workflows(cls, value: Any) -> Any:
        return _pairs(value, "WORKFLOW=ENVIRONMENT")

    @field_validator("deploy_branches", mode="before")
    @classmethod
    def _split_deploy_branches(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("incident_alerts")
    @classmethod
    def _check_incident_alerts(cls, value: str) -> str:
        # Imported here: the sources import these settings.
        from observer.sources.alertmanager.matchers import MatcherError, parse

        try:
            parse(value)
        except MatcherError as error:
            raise ValueError(str(error)) from None
        return value

    @field_validator("pagerduty_services", mode="before")
    @classmethod
    def _split_pagerduty_services(cls, value: Any) -> Any:
        return _pairs(value, "SERVICE=owner/name")

    @field_validator("pagerduty_services")
    @classmethod
    def _check_pagerduty_services(
        cls, value: tuple[tuple[str, str], ...]
    ) -> tuple[tuple[str, str], ...]:
        for service, repository in value:
            if not REPOSITORY_PATH.match(repository):
                raise ValueError(f"{service}={repository}: {repository!r} is not owner/name")
        return tuple((service, repository.lower()) for service, repository in value)

    @field_validator("redeliver_hooks", mode="before")
    @classmethod
    def _split_redeliver_hooks(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [item.strip().strip("/") for item in value.split(",") if item.strip()]
        return value

    @field_validator("redeliver_hooks")
    @classmethod
    def _check_redeliver_hooks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            if not HOOK_PATTERN.match(item):
                raise ValueError(
                    f"{item!r} is not orgs/ORG/hooks/ID, repos/OWNER/NAME/hooks/ID or app"
                )
        return tuple(dict.fromkeys(value))

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        value = value.lower()
        if value not in {"debug", "info", "warning", "error"}:
            raise ValueError("must be debug, info, warning or error")
        return value

    @field_validator("log_format")
    @classmethod
    def _check_log_format(cls, value: str) -> str:
        value = value.lower()
        if value not in {"json", "console"}:
            raise ValueError("must be json or console")
        return value

    @model_validator(mode="after")
    def _one_body_fits(self) -> Settings:
        if self.max_buffered_bytes < self.max_body_bytes:
            raise ValueError("MAX_BUFFERED_BYTES must be at least MAX_BODY_BYTES")
        return self

    @model_validator(mode="after")
    def _one_way_to_authenticate(self) -> Settings:
        app = (self.github_app_id, self.github_app_installation_id, self.github_app_private_key)
        if any(value is not None for value in app):
            if not all(value is not None for value in app):
                raise ValueError(
                    "a GitHub App needs GITHUB_APP_ID, GITHUB_APP_INSTALLATION_ID and "
                    "GITHUB_APP_PRIVATE_KEY (or GITHUB_APP_PRIVATE_KEY_FILE)"
                )
            if self.github_token is not None:
                raise ValueError("set GITHUB_TOKEN or a GitHub App, not both")
        return self

    @model_validator(mode="after")
    def _redelivery_can_authenticate(self) -> Settings:
        if self.redeliver_hooks and not self.enrichment_enabled:
            raise ValueError(
                "REDELIVER_HOOKS needs GITHUB_TOKEN or a GitHub App (GITHUB_APP_ID, "
                "GITHUB_APP_INSTALLATION_ID, GITHUB_APP_PRIVATE_KEY) allowed to redeliver"
            )
        if "app" in self.redeliver_hooks and self.github_app_id is None:
            # The App's own webhook answers to the App's JWT only, never to a token.
            raise ValueError(
                "REDELIVER_HOOKS 'app' needs a GitHub App (GITHUB_APP_ID), not GITHUB_TOKEN"
            )
        return self

    @property
    def enrichment_enabled(self) -> bool:
        return self.github_token is not None or self.github_app_id is not None

    def webhook_secrets(self) -> tuple[bytes, ...]:
        """The secrets a signature may be made with: the current one, then the previous one."""
        secrets = [self.webhook_secret]
        if self.webhook_secret_previous is not None:
            secrets.append(self.webhook_secret_previous)
        return tuple(secret.get_secret_value().encode() for secret in secrets)

    def gitlab_webhook_secrets(self) -> tuple[bytes, ...]:
        """The secret tokens X-Gitlab-Token may carry: every one listed, during a rotation."""
        if self.gitlab_webhook_secret is None:
            return ()
        listed = self.gitlab_webhook_secret.get_secret_value().split(",")
        return tuple(item.strip().encode() for item in listed if item.strip())

    def gitlab_signing_key(self) -> bytes | None:
        """The HMAC key of GitLab's Standard Webhooks signatures, when a signing token is set."""
        if self.gitlab_signing_token is None:
            return None
        return signing_key(self.gitlab_signing_token.get_secret_value())


def signing_key(token: str) -> bytes:
    """A signing token's HMAC key: Standard Webhooks' ``whsec_`` form is the base64 of the key
    (GitLab generates and shows its signing tokens so); any other token is the key itself."""
    if not token.startswith(WHSEC):
        return token.encode()
    try:
        key = base64.b64decode(token.removeprefix(WHSEC), validate=True)
    except binascii.Error:
        raise ValueError("a whsec_ token must be base64 after the prefix") from None
    if not key:
        raise ValueError("a whsec_ token must hold a key after the prefix")
    return key


def _pairs(value: Any, shape: str) -> Any:
    """``A=B, C=D`` as ((A, B), (C, D)); the last ``=`` splits, so a name may hold one."""
    if not isinstance(value, str):
        return value
    pairs = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        left, equals, right = item.rpartition("=")
        if not equals or not left.strip() or not right.strip():
            raise ValueError(f"{item!r} is not {shape}")
        pairs.append((left.strip(), right.strip()))
    return tuple(pairs)


def _stdout_is_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):  # replaced or closed
        return False


def describe_error(error: ValidationError) -> str:
    """One line naming each offending variable, never its value."""
    parts = []
    for item in error.errors(include_url=False, include_input=False):
        location = ".".join(str(part) for part in item["loc"]).upper()
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "missing":
            message = "is required" + (
                f" (or {location}_FILE)" if location.lower() in FILE_SECRETS else ""
            )
        parts.append(f"{location} {message}" if location else message)
    return "invalid configuration: " + "; ".join(parts)
