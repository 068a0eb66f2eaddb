"""Settings from the environment and from mounted secret files; clear errors at start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from observer.settings import Settings, describe_error


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("WEBHOOK_", "GITHUB_", "API_TOKEN", "REPOSITORIES", "MAX_")):
            monkeypatch.delenv(name)
    for name in ("HOST", "PORT", "PRODUCTION_ENVIRONMENTS", "LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)


def test_defaults_follow_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_SECRET", "s")
    settings = Settings()
    assert settings.host == "0.0.0.0"
    assert settings.port == 8080
    assert str(settings.github_api_url) == "https://api.github.com/"
    assert settings.github_token is None and not settings.enrichment_enabled
    assert settings.api_token is None
    assert settings.repositories == ()
    assert settings.max_body_bytes == 26_214_400
    assert (settings.max_repositories, settings.max_environments) == (2000, 20)
    assert settings.production_environments.pattern == "^(production|prod)$"


def test_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_SECRET", "s")
    monkeypatch.setenv("PORT", "9000")
    monkeypatch.setenv("REPOSITORIES", " Octo/App , octo-org/* ,")
    monkeypatch.setenv("PRODUCTION_ENVIRONMENTS", "^prod-.*$")
    monkeypatch.setenv("GITHUB_API_URL", "https://ghe.example.com/api/v3")
    settings = Settings()
    assert settings.port == 9000
    assert settings.repositories == ("octo/app", "octo-org/*")
    assert settings.production_environments.search("prod-eu")
    assert str(settings.github_api_url) == "https://ghe.example.com/api/v3"


def test_secrets_come_from_files_with_whitespace_stripped(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name, value in {
        "WEBHOOK_SECRET": "hook",
        "GITHUB_TOKEN": "ghp",
        "API_TOKEN": "api",
    }.items():
        path = tmp_path / name.lower()
        path.write_text(f"  {value}\n")
        monkeypatch.setenv(f"{name}_FILE", str(path))
    settings = Settings()
    assert settings.webhook_secret.get_secret_value() == "hook"
    assert settings.github_token is not None
    assert settings.github_token.get_secret_value() == "ghp"
    assert settings.api_token is not None
    assert settings.api_token.get_secret_value() == "api"


def test_a_secret_and_its_file_together_are_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "secret").write_text("a")
    monkeypatch.setenv("WEBHOOK_SECRET", "b")
    monkeypatch.setenv("WEBHOOK_SECRET_FILE", str(tmp_path / "secret"))
    with pytest.raises(ValidationError) as raised:
        Settings()
    assert "set WEBHOOK_SECRET or WEBHOOK_SECRET_FILE, not both" in describe_error(raised.value)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("PORT", "http", "PORT Input should be a valid integer"),
        ("PORT", "70000", "PORT Input should be less than or equal to 65535"),
        (
            "REPOSITORIES",
            "octo",
            "REPOSITORIES 'octo' is not owner/name or owner/* (or group/sub/name)",
        ),
        (
            "PRODUCTION_ENVIRONMENTS",
            "(prod",
            "PRODUCTION_ENVIRONMENTS Input should be a valid regular expression",
        ),
        ("MAX_BODY_BYTES", "-1", "MAX_BODY_BYTES Input should be greater than or equal to 1024"),
        ("GITHUB_API_URL", "not a url", "GITHUB_API_URL Input should be a valid URL"),
    ],
)
def test_invalid_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv("WEBHOOK_SECRET", "s")
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as raised:
        Settings()
    assert message in describe_error(raised.value)


def test_secrets_are_hidden_in_reprs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_SECRET", "hunter2-webhook")
    monkeypatch.setenv("API_TOKEN", "hunter2-api")
    monkeypatch.setenv("GITHUB_TOKEN", "hunter2-github")
    settings = Settings()
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings)


def run_cli(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("WEBHOOK_", "GITHUB_", "API_TOKEN"))
    }
    return subprocess.run(
        [sys.executable, "-m", "observer"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_refuses_to_start_without_the_webhook_secret() -> None:
    result = run_cli({})
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "observer: invalid configuration: WEBHOOK_SECRET is required (or WEBHOOK_SECRET_FILE)"
    ]


def test_refuses_to_start_with_an_unreadable_secret_file(tmp_path: Path) -> None:
    result = run_cli({"WEBHOOK_SECRET_FILE": str(tmp_path / "missing")})
    assert result.returncode != 0
    assert "WEBHOOK_SECRET_FILE: cannot read" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_an_invalid_setting_stops_the_start_without_echoing_secrets() -> None:
    result = run_cli({"WEBHOOK_SECRET": "hunter2-webhook", "PORT": "0x"})
    assert result.returncode != 0
    assert "PORT" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout


def test_a_github_app_needs_all_three_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_SECRET", "s")
    monkeypatch.setenv("GITHUB_APP_ID", "12345")
    with pytest.raises(ValidationError) as raised:
        Settings()
    assert "a GitHub App needs GITHUB_APP_ID, GITHUB_APP_INSTALLATION_ID and" in describe_error(
        raised.value
    )


def test_an_unusable_app_key_is_refused_without_echoing_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WEBHOOK_SECRET", "s")
    monkeypatch.setenv("GITHUB_APP_ID", "12345")
    monkeypatch.setenv("GITHUB_APP_INSTALLATION_ID", "678")
    monkeypatch.setenv("GITHUB_APP_PRIVATE_KEY", "-----BEGIN RSA PRIVATE KEY-----\nhunter2\n")
    with pytest.raises(ValidationError) as raised:
        Settings()
    message = describe_error(raised.value)
    assert "GITHUB_APP_PRIVATE_KEY is not an unencrypted PEM RSA private key" in message
    assert "hunter2" not in message
