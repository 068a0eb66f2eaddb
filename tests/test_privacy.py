"""No person is identifiable: after a varied history, no login anywhere in /metrics or the logs."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from observer.ops.logs import JsonFormatter
from tests.conftest import FIXTURES, Service, fixture_event, load_fixture
from tests.payloads import members, pull_request, review, write_teams

PEOPLE = ("monalisa", "hubot", "octocat", "mojombo", "defunkt", "pjhyett", "wycats", "Tanuki-7")


def logins(value: Any) -> Iterator[str]:
    """Every ``login`` in a payload, at any depth."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "login" and isinstance(item, str):
                yield item
            else:
                yield from logins(item)
    elif isinstance(value, list):
        for item in value:
            yield from logins(item)


def test_no_login_reaches_metrics_or_info_logs(
    start: Callable[..., Service], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    teams = {
        "teams": {
            "payments": {
                "repositories": ["octo-org/octo-app"],
                "members": [{"login": "monalisa", "weight": 0.5}, *members(*PEOPLE[1:6])],
            },
            "platform": {
                "repositories": ["octo-org/*"],
                "members": [{"login": "MonaLisa", "weight": 0.5}, *members("wycats")],
            },
        },
        "exclude": ["pjhyett"],
        "bots": ["tanuki-7"],
    }
    service = start(
        teams_file=write_teams(tmp_path / "teams.yaml", teams),
        deploy_workflows="Deploy=production",
    )
    sent: list[str] = []
    merged = "2026-11-21T09:30:00Z"
    history: list[tuple[str, dict[str, Any]]] = [
        (fixture_event(path.stem), load_fixture(path.stem))
        for path in sorted((FIXTURES / "github").glob("*.json"))
    ]
    for index, person in enumerate(PEOPLE):
        history += [
            ("pull_request", pull_request("opened", person, pr_id=index)),
            ("pull_request", pull_request("closed", person, pr_id=index, merged_at=merged)),
            ("pull_request", pull_request("closed", person, merged_at=merged, title='Revert "x"')),
            (
                "pull_request_review",
                review(PEOPLE[-index - 1], person, pr_id=index, submitted_at=merged),
            ),
        ]
    with caplog.at_level(logging.INFO, logger="observer"):
        for event, payload in history:
            sent.extend(logins(payload))
            response = service.deliver(event, payload)
            assert response.status_code == 200, response.text
        surveys = [{"type": "survey", "team": "payments", "satisfaction": 4, "nps": 8}]
        assert service.push_events(surveys).status_code == 200

    plain = service.client.get("/metrics").text
    openmetrics = service.client.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    ).text
    exposition = service.metrics()
    # The history did reach the figures that could have named someone.
    assert exposition.get("github_team_pull_requests_total", team="payments", action="merged") > 0
    assert exposition.get("github_pull_request_reviews_total", repository="octo-org/octo-app",
                          state="approved") > 0  # fmt: skip
    assert exposition.get("dora_deployments_total", repository="octo-org/octo-app",
                          environment="production", status="success") > 0  # fmt: skip
    # The organisation's login is in every repository's name, and names no person.
    people = {login.lower() for login in sent} - {"octo-org"}
    assert people >= {person.lower() for person in PEOPLE}
    formatter = JsonFormatter()
    logs = "\n".join(formatter.format(record) for record in caplog.records).lower()
    assert '"event": "pull_request_review"' in logs
    for login in people:
        assert login not in plain.lower(), login
        assert login not in openmetrics.lower(), login
        assert login not in logs, login
