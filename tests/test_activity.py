"""Reviews, pull request size, rework and pulse surveys, through /webhook and /api/event."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from observer.metrics.definitions import Metrics
from observer.settings import Settings
from tests.conftest import Service, load_fixture
from tests.payloads import members, pull_request, review, write_teams

REPO = "octo-org/octo-app"
MERGED = "2026-11-21T09:30:00Z"
Start = Callable[..., Service]
FIRST = "github_pull_request_first_review_seconds"


def ok(response: Any) -> str:
    assert response.status_code == 200, response.text
    outcome: str = response.json()["result"]
    return outcome


def test_the_fixture_review_is_a_first_review_and_an_approval(service: Service) -> None:
    assert ok(service.deliver_fixture("pull_request_review_submitted")) == "accepted"
    exposition = service.settled()
    # PR #42 opened at 08:00, approved at 10:30.
    assert exposition.get(f"{FIRST}_count", repository=REPO) == 1
    assert exposition.get(f"{FIRST}_sum", repository=REPO) == 2.5 * 3600
    assert exposition.get(f"{FIRST}_bucket", repository=REPO, le="14400.0") == 1
    assert exposition.get(f"{FIRST}_bucket", repository=REPO, le="7200.0") == 0
    reviews = "github_pull_request_reviews_total"
    assert exposition.get(reviews, repository=REPO, state="approved") == 1
    # Redelivered, or sent by a second hook: counted once.
    assert ok(service.deliver_fixture("pull_request_review_submitted")) == "duplicate"
    assert service.metrics().get(reviews, repository=REPO, state="approved") == 1


def test_the_first_review_by_someone_else_is_observed_once_whatever_its_state(
    service: Service,
) -> None:
    def submit(reviewer: str, state: str, submitted_at: str, outcome: str = "accepted") -> None:
        payload = review(reviewer, "monalisa", pr_id=77, submitted_at=submitted_at, state=state)
        assert ok(service.deliver("pull_request_review", payload)) == outcome

    submit("monalisa", "commented", "2026-11-20T08:30:00Z")  # the author's own note
    # Bots are left out of every pull-request figure, reviews included.
    submit("dependabot[bot]", "commented", "2026-11-20T08:45:00Z", "ignored")
    submit("hubot", "CHANGES_REQUESTED", "2026-11-20T09:00:00Z")
    submit("octocat", "approved", "2026-11-20T12:00:00Z")
    submit("hubot", "approved", "2026-11-20T13:00:00Z")
    exposition = service.settled()
    assert exposition.get(f"{FIRST}_count", repository=REPO) == 1
    assert exposition.get(f"{FIRST}_sum", repository=REPO) == 3600
    reviews = "github_pull_request_reviews_total"
    assert exposition.get(reviews, repository=REPO, state="commented") == 1
    assert exposition.get(reviews, repository=REPO, state="changes_requested") == 1
    assert exposition.get(reviews, repository=REPO, state="approved") == 2
    dismissed = load_fixture("pull_request_review_submitted")
    dismissed["action"] = "dismissed"
    assert ok(service.deliver("pull_request_review", dismissed)) == "ignored"


def test_a_draft_is_timed_from_when_it_became_ready(service: Service) -> None:
    ready = load_fixture("pull_request_opened")
    ready["action"] = "ready_for_review"
    ready["pull_request"].update(id=88, draft=False, updated_at="2026-11-20T14:00:00Z")
    assert ok(service.deliver("pull_request", ready)) == "ignored"
    payload = review("hubot", "monalisa", pr_id=88, submitted_at="2026-11-20T14:20:00Z")
    assert ok(service.deliver("pull_request_review", payload)) == "accepted"
    assert service.settled().get(f"{FIRST}_sum", repository=REPO) == 20 * 60


def test_first_review_per_team_of_the_author(start: Start, tmp_path: Path) -> None:
    teams = {"teams": {"payments": {"members": members("a", "b", "c", "d", "monalisa")}}}
    service = start(teams_file=write_teams(tmp_path / "teams.yaml", teams))
    payload = review("hubot", "MonaLisa", pr_id=5, submitted_at="2026-11-20T09:00:00Z")
    assert ok(service.deliver("pull_request_review", payload)) == "accepted"
    name = "github_team_pull_request_first_review_seconds_sum"
    assert service.settled().get(name, team="payments") == 3600


@pytest.mark.parametrize(
    ("lines", "lowest_bucket"),
    [(0, "10.0"), (10, "10.0"), (11, "25.0"), (250, "250.0"), (251, "500.0"), (20000, "+Inf")],
)
def test_merged_pull_request_size_falls_in_its_bucket(
    service: Service, lines: int, lowest_bucket: str
) -> None:
    payload = pull_request("closed", "monalisa", merged_at=MERGED, additions=lines, deletions=0)
    assert ok(service.deliver("pull_request", payload)) == "accepted"
    buckets = {
        le: value
        for (name, labels), value in service.metrics().samples.items()
        if name == "github_pull_request_size_lines_bucket"
        for key, le in labels
        if key == "le"
    }
    edges = ["10.0", "25.0", "50.0", "100.0", "250.0", "500.0", "1000.0", "2500.0", "5000.0"]
    edges += ["10000.0", "+Inf"]
    assert list(buckets) == edges
    first = edges.index(lowest_bucket)
    assert [buckets[le] for le in edges] == [0] * first + [1] * (len(edges) - first)


def test_a_closed_unmerged_pull_request_has_no_size(service: Service) -> None:
    payload = pull_request("closed", "monalisa", closed_at=MERGED)
    assert ok(service.deliver("pull_request", payload)) == "accepted"
    assert service.metrics().value("github_pull_request_size_lines_count", repository=REPO) is None


def test_reverts_and_hotfixes_are_rework(start: Start) -> None:
    service = start(hotfix_label="Urgent-Fix")
    for payload in [
        pull_request("closed", "a", merged_at=MERGED, title='Revert "Add a retry budget"'),
        pull_request("closed", "a", merged_at=MERGED, title="Undo it", branch="revert-42-retry"),
        pull_request("closed", "a", merged_at=MERGED, labels=("bug", "urgent-fix")),
        pull_request("closed", "a", merged_at=MERGED, title='Revert "x"', labels=("urgent-fix",)),
        # Not rework: not merged, a title that only mentions a revert, the default label.
        pull_request("closed", "a", closed_at=MERGED, title='Revert "Add a retry budget"'),
        pull_request("closed", "a", merged_at=MERGED, title="Docs: how to revert a deploy"),
        pull_request("closed", "a", merged_at=MERGED, labels=("hotfix",)),
        pull_request("opened", "a", title='Revert "y"'),
    ]:
        assert ok(service.deliver("pull_request", payload)) == "accepted"
    exposition = service.metrics()
    assert exposition.get("dora_rework_total", repository=REPO, kind="revert") == 3
    assert exposition.get("dora_rework_total", repository=REPO, kind="hotfix") == 1


def test_survey_answers_are_observed_per_team(start: Start, tmp_path: Path) -> None:
    teams = {
        "teams": {
            "payments": {"members": members("a", "b", "c", "d", "e")},
            "tiny": {"members": members("f", "g")},
        }
    }
    service = start(teams_file=write_teams(tmp_path / "teams.yaml", teams))
    response = service.push_events(
        [
            {"type": "survey", "team": "Payments", "satisfaction": 4, "nps": 9},
            {"type": "survey", "team": "payments", "nps": 6, "id": "form-17"},
            {"type": "survey", "team": "payments", "nps": 6, "id": "form-17"},
            {"type": "survey", "team": "tiny", "satisfaction": 2},
            {"type": "survey", "team": "nobody-knows", "satisfaction": 5},
        ]
    )
    assert response.status_code == 200, response.text
    assert [item["result"] for item in response.json()["results"]] == [
        "accepted", "accepted", "duplicate", "accepted", "accepted",
    ]  # fmt: skip
    exposition = service.metrics()
    assert exposition.get("space_survey_nps_count", team="payments") == 2
    assert exposition.get("space_survey_nps_sum", team="payments") == 15
    assert exposition.get("space_survey_nps_bucket", team="payments", le="6.0") == 1
    assert exposition.get("space_survey_satisfaction_count", team="payments") == 1
    # A team under MIN_TEAM_SIZE and an unknown one are both 'other'.
    assert exposition.get("space_survey_satisfaction_count", team="other") == 2
    assert exposition.get("space_survey_satisfaction_sum", team="other") == 7
    assert exposition.value("space_survey_satisfaction_count", team="tiny") is None
    assert exposition.get("observer_api_events_total", type="survey", result="accepted") == 4


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"satisfaction": 6}, "satisfaction"),
        ({"satisfaction": 0}, "satisfaction"),
        ({"nps": 11}, "nps"),
        ({"nps": -1}, "nps"),
        ({"nps": 7.5}, "nps"),
        ({}, "body"),
        ({"nps": 5, "person": "alice"}, "person"),
    ],
)
def test_survey_answers_out_of_range_are_refused_naming_the_field(
    service: Service, event: dict[str, Any], field: str
) -> None:
    response = service.push_events([{"type": "survey", "team": "payments", **event}])
    assert response.status_code == 422
    fields = [problem["field"] for problem in response.json()["fields"]]
    assert fields == [f"[0].{field}" if field != "body" else "[0]"], fields
    assert service.metrics().get("observer_api_events_total", type="survey", result="invalid") == 1
    assert service.metrics().value("space_survey_nps_count", team="other") is None


def test_the_readme_survey_example_is_accepted(service: Service) -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("## Teams, reviews, rework and surveys", 1)[1]
    example = section.split("```json", 1)[1].split("```", 1)[0]
    response = service.push_events(json.loads(example))
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["result"] == "accepted"


def test_every_metric_and_setting_is_in_the_readme_tables() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    rows = "\n".join(line for line in readme.splitlines() if line.startswith("| `"))
    registry = CollectorRegistry()
    Metrics(registry)
    for family in registry.collect():
        if family.name.startswith(("process_", "python_")):
            continue  # prometheus-client's own collectors, named in the README's prose
        name = family.name + ("_total" if family.type == "counter" else "")
        name += "_info" if family.type == "info" else ""
        assert f"`{name}`" in rows, name
    for setting in Settings.model_fields:
        if not setting.endswith("_file") or setting == "teams_file":
            assert f"`{setting.upper()}`" in rows, setting
