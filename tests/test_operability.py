"""What an operator notices in the first hour: clear refusals, case-blind production, /metrics."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import Service, load_fixture
from tests.promql import GENERATOR, RULE_FILE, require_binary, run


def test_a_deployment_status_without_deployment_names_the_deployment_field(
    service: Service,
) -> None:
    payload = load_fixture("deployment_status_success")
    del payload["deployment"]
    response = service.deliver("deployment_status", payload)
    assert response.status_code == 400
    assert [problem["field"] for problem in response.json()["fields"]] == ["deployment"]


def test_production_environments_match_without_regard_to_case(
    start: Callable[..., Service],
) -> None:
    service = start(production_environments="^Production$")
    failed = {
        "type": "deployment",
        "repository": "octo/app",
        "environment": "production",
        "status": "failure",
        "timestamp": "2026-01-05T10:00:00Z",
    }
    recovered = {**failed, "status": "success", "timestamp": "2026-01-05T10:30:00Z"}
    assert service.push_events([failed, recovered]).status_code == 200
    labels = {"repository": "octo/app", "environment": "production"}
    metrics = service.metrics()
    assert metrics.get("dora_deployment_recovery_seconds_sum", **labels) == 1800


def test_a_bearer_token_without_api_token_configured_says_so(
    start: Callable[..., Service],
) -> None:
    service = start(api_token=None)
    response = service.push_events({"type": "deployment"}, token="anything")
    assert response.status_code == 401
    assert response.json() == {
        "error": "bearer token refused: API_TOKEN is not configured on this observer"
    }
    unauthorized = service.metrics().get(
        "observer_api_events_total", type="other", result="unauthorized"
    )
    assert unauthorized == 1


def test_metrics_have_process_and_python_series_and_no_created_series(service: Service) -> None:
    metrics = service.metrics()
    names = {name for name, _ in metrics.samples}
    assert "process_resident_memory_bytes" in names
    assert "process_open_fds" in names
    assert any(name.startswith("python_gc_") for name in names)
    assert "python_info" in names
    assert not [name for name in names if name.endswith("_created")]
    assert "_created" not in service.client.get("/metrics").text
    openmetrics = service.client.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert "_created" not in openmetrics.text


def test_the_rate_limit_gauge_is_absent_before_github_reports_one(service: Service) -> None:
    assert "observer_github_rate_limit_remaining" not in service.client.get("/metrics").text


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_rules", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--production-environments", "(production"], "not a regular expression"),
        (["--production-environments", "(?!staging).*"], "lookaround"),
        (["--job", 'observer"} or vector(1) #'], "--job"),
        (["--job", ""], "--job"),
    ],
)
def test_the_rule_generator_refuses_input_that_would_write_invalid_rules(
    args: list[str], named: str
) -> None:
    before = RULE_FILE.read_text()
    result = subprocess.run(
        [sys.executable, str(GENERATOR), *args], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert named in result.stderr
    assert RULE_FILE.read_text() == before


def test_a_regex_with_backslashes_and_quotes_still_writes_valid_rules(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    rules = tmp_path / "rules.yml"
    rules.write_text(_generator().render_rule_file(r'prod\d+|"live"', "observer"))
    result = run([promtool, "check", "rules", str(rules)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_webhooks_keep_owner_slash_name_repositories(service: Service) -> None:
    payload = load_fixture("push")
    payload["repository"]["full_name"] = "octo-org/sub/octo-app"
    response = service.deliver("push", payload)
    assert response.status_code == 400
    assert [problem["field"] for problem in response.json()["fields"]] == ["repository.full_name"]
