"""TEAMS_FILE: team figures by membership at the event's time, weights, privacy, and reloads."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from observer.metrics.definitions import Metrics
from observer.metrics.exposition import Exposition
from observer.settings import Settings
from observer.teams.file import Teams, parse_teams
from observer.teams.source import TeamsSource
from tests.conftest import Service, make_settings
from tests.exposition import Exposition as Scraped
from tests.payloads import members, pull_request, review, write_teams
from tests.readme import block

REPO = "octo-org/octo-app"
Start = Callable[..., Service]

FIVE = ("alice", "bob", "carol", "dan", "erin")


def deliver(service: Service, payload: dict[str, Any]) -> None:
    response = service.deliver("pull_request", payload)
    assert response.status_code == 200, response.text


def team_prs(service: Service, team: str, action: str) -> float:
    return service.metrics().get("github_team_pull_requests_total", team=team, action=action)


def repo_prs(service: Service, action: str) -> float:
    return service.metrics().get("github_pull_requests_total", repository=REPO, action=action)


def test_membership_is_judged_at_the_event_time_with_inclusive_dates(
    start: Start, tmp_path: Path
) -> None:
    teams = {
        "teams": {
            "payments": {
                "repositories": [REPO],
                "members": [
                    {"login": "Alice", "joined": "2026-01-01", "left": "2026-06-30"},
                    *members(*FIVE[1:]),
                ],
            }
        }
    }
    service = start(teams_file=write_teams(tmp_path / "teams.yaml", teams))
    for created_at in [
        "2025-12-31T23:59:59Z",  # the day before joining
        "2026-01-01T00:00:00Z",  # the day of joining
        "2026-06-30T23:59:59Z",  # the day of leaving
        "2026-07-01T01:00:00+02:00",  # still the 30th in UTC
        "2026-07-01T00:00:00Z",  # the day after leaving
    ]:
        deliver(service, pull_request("opened", "alice", created_at=created_at))
    assert team_prs(service, "payments", "opened") == 3
    # The repository's own figures count everyone who is not left out.
    assert repo_prs(service, "opened") == 5


def test_a_member_in_two_teams_counts_by_weight_and_is_timed_in_each(
    start: Start, tmp_path: Path
) -> None:
    teams = {
        "teams": {
            "payments": {"members": [{"login": "carol", "weight": 0.5}, *members(*FIVE[:2])]},
            "platform": {"members": [{"login": "CAROL", "weight": 0.5}, *members("f", "g")]},
            "search": {"members": members("h", "i", "j")},
        }
    }
    service = start(teams_file=write_teams(tmp_path / "teams.yaml", teams), min_team_size=3)
    deliver(
        service,
        pull_request("closed", "Carol", merged_at="2026-11-21T09:30:00Z"),
    )
    exposition = service.metrics()
    for team in ("payments", "platform"):
        assert exposition.get("github_team_pull_requests_total", team=team, action="merged") == 0.5
        # Cycle time is a duration, not a count: observed whole in each team.
        name = "github_team_pull_request_cycle_time_seconds"
        assert exposition.get(f"{name}_count", team=team) == 1
        assert exposition.get(f"{name}_sum", team=team) == 25.5 * 3600
    assert "search" not in {
        team
        for (name, labels), _ in exposition.samples.items()
        for key, team in labels
        if key == "team"
    }


def test_small_teams_fold_into_other_and_left_out_people_do_not_make_a_team_big(
    start: Start, tmp_path: Path
) -> None:
    teams = {
        "teams": {
            "payments": {"repositories": [REPO], "members": members(*FIVE)},
            # Five entries, but a bot and an opted-out person are nobody: three people.
            "mobile": {"members": members("kim", "lee", "max", "ci[bot]", "optout")},
            # Five people, but one joins only in December.
            "data": {
                "members": [*members("n", "o", "p", "q"), {"login": "r", "joined": "2026-12-01"}]
            },
        },
        "exclude": ["OptOut"],
    }
    service = start(teams_file=write_teams(tmp_path / "teams.yaml", teams))
    at = "2026-11-20T08:00:00Z"
    for login in ("alice", "kim", "n"):
        deliver(service, pull_request("opened", login, created_at=at))
    deliver(service, pull_request("opened", "n", created_at="2026-12-01T00:00:00Z"))
    assert team_prs(service, "payments", "opened") == 1
    assert team_prs(service, "other", "opened") == 2  # kim, and n in November
    assert team_prs(service, "data", "opened") == 1  # n in December, when data has five
    exposition = service.metrics()
    teams_seen = {
        team
        for (_, labels), _ in exposition.samples.items()
        for key, team in labels
        if key == "team"
    }
    assert "mobile" not in teams_seen
    assert exposition.get("observer_repository_team_info", repository=REPO, team="payments") == 1


def test_opted_out_people_and_bots_are_in_no_pull_request_figure(
    start: Start, tmp_path: Path
) -> None:
    teams = {
        "teams": {"payments": {"members": members(*FIVE, "dave", "release-robot")}},
        "exclude": ["Dave"],
        "bots": ["release-robot"],
    }
    service = start(teams_file=write_teams(tmp_path / "teams.yaml", teams))
    merged = "2026-11-21T09:30:00Z"
    for login in ("dave", "dependabot[bot]", "Release-Robot"):
        deliver(service, pull_request("opened", login))
        deliver(service, pull_request("closed", login, merged_at=merged, title='Revert "x"'))
    assert service.metrics().domain() == {}
    deliver(service, pull_request("closed", "alice", merged_at=merged))
    assert repo_prs(service, "merged") == 1
    assert team_prs(service, "payments", "merged") == 1


def test_filter_mode_counts_only_members_in_the_repository_figures(
    start: Start, tmp_path: Path
) -> None:
    teams = {"teams": {"payments": {"members": members(*FIVE)}}}
    path = write_teams(tmp_path / "teams.yaml", teams)
    plain, filtered = start(teams_file=path), start(teams_file=path, teams_filter=True)
    for service in (plain, filtered):
        deliver(service, pull_request("opened", "alice"))
        deliver(service, pull_request("opened", "outsider"))
        deliver(service, pull_request("closed", "outsider", merged_at="2026-11-21T09:30:00Z"))
    assert (repo_prs(plain, "opened"), repo_prs(filtered, "opened")) == (2, 1)
    assert (repo_prs(plain, "merged"), repo_prs(filtered, "merged")) == (1, 0)
    size = "github_pull_request_size_lines_count"
    assert filtered.metrics().value(size, repository=REPO) is None
    # Team figures count members only, in either mode.
    assert team_prs(plain, "payments", "opened") == team_prs(filtered, "payments", "opened") == 1


def test_ownership_series_for_names_at_start_and_for_patterns_once_seen(
    start: Start, tmp_path: Path
) -> None:
    teams = {
        "teams": {
            "payments": {"repositories": ["Octo-Org/Octo-App"], "members": members(*FIVE)},
            "platform": {"repositories": ["octo-org/*"], "members": members(*FIVE)},
        }
    }
    service = start(teams_file=write_teams(tmp_path / "teams.yaml", teams))
    info = "observer_repository_team_info"
    assert service.metrics().get(info, repository=REPO, team="payments") == 1
    assert service.metrics().value(info, repository=REPO, team="platform") is None
    deliver(service, pull_request("opened", "alice"))
    assert service.metrics().get(info, repository=REPO, team="platform") == 1
    deliver(service, pull_request("opened", "alice", repository="elsewhere/app"))
    assert service.metrics().value(info, repository="elsewhere/app", team="platform") is None


def test_a_changed_file_is_used_from_the_next_event_however_it_was_replaced(
    start: Start, tmp_path: Path
) -> None:
    path = write_teams(
        tmp_path / "teams.yaml",
        {"teams": {"payments": {"repositories": [REPO], "members": members(*FIVE)}}},
    )
    service = start(teams_file=path)
    deliver(service, pull_request("opened", "alice"))
    # Replaced by a rename, as editors and Kubernetes ConfigMaps do.
    staged = write_teams(
        tmp_path / "teams.yaml.new",
        {"teams": {"platform": {"repositories": [REPO], "members": members(*FIVE)}}},
    )
    os.replace(staged, path)
    deliver(service, pull_request("opened", "alice"))
    exposition = service.metrics()
    assert exposition.get("github_team_pull_requests_total", team="payments", action="opened") == 1
    assert exposition.get("github_team_pull_requests_total", team="platform", action="opened") == 1
    info = "observer_repository_team_info"
    assert exposition.value(info, repository=REPO, team="payments") is None
    assert exposition.get(info, repository=REPO, team="platform") == 1


def test_a_broken_file_keeps_the_last_good_teams_and_says_why_once(
    start: Start, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    teams = {"teams": {"payments": {"members": members(*FIVE)}}}
    path = write_teams(tmp_path / "teams.yaml", teams)
    service = start(teams_file=path)
    assert service.metrics().get("observer_teams_last_reload_successful") == 1
    path.write_text("teams:\n  payments:\n    members: [{login: alice, weight: 2}]\n")
    with caplog.at_level(logging.WARNING, logger="observer"):
        deliver(service, pull_request("opened", "alice"))
        deliver(service, pull_request("opened", "bob"))
    assert team_prs(service, "payments", "opened") == 2
    exposition = service.metrics()
    assert exposition.get("observer_teams_reload_failures_total") == 1
    assert exposition.get("observer_teams_last_reload_successful") == 0
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "payments.members.0.weight" in str(getattr(warnings[0], "fields", ""))
    assert "alice" not in caplog.text

    path.write_text("teams: [unclosed\n")
    service.metrics()  # a scrape notices the change too
    assert service.metrics().get("observer_teams_reload_failures_total") == 2

    write_teams(path, {"teams": {"payments": {"members": members(*FIVE[:4], "zed")}}})
    deliver(service, pull_request("opened", "zed"))
    assert team_prs(service, "payments", "opened") == 3
    assert service.metrics().get("observer_teams_last_reload_successful") == 1


def test_the_readme_teams_example_folds_no_team_under_the_default_size() -> None:
    document = parse_teams(block("yaml", "exclude:").encode())
    teams = Teams(document, Settings.model_fields["min_team_size"].default)
    assert len(teams.names) == 2
    # Before, during and after the dated member's time in the team.
    for day in (date(2025, 12, 31), date(2026, 3, 1), date(2026, 7, 1), date.today()):
        assert teams.folded(day) == ()


def test_a_reload_logs_how_many_teams_are_folded_into_other_and_never_a_login(
    start: Start, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    big = {"members": members(*FIVE)}
    path = write_teams(tmp_path / "teams.yaml", {"teams": {"payments": big}})
    with caplog.at_level(logging.INFO, logger="observer"):
        service = start(teams_file=path)
        small = {"members": members("zed", "yuri")}
        write_teams(
            path,
            {"teams": {"payments": big, "tiny": small, "wee": small}},
        )
        deliver(service, pull_request("opened", "alice"))
    loaded = [getattr(r, "fields", {}) for r in caplog.records if r.getMessage() == "teams loaded"]
    assert [(f["folded_into_other"], f["folded_teams"]) for f in loaded] == [
        (0, []),
        (2, ["tiny", "wee"]),
    ]
    assert loaded[-1]["min_team_size"] == 5
    said = caplog.text + " ".join(str(getattr(r, "fields", "")) for r in caplog.records)
    for login in (*FIVE, "zed", "yuri"):
        assert login not in said


def test_a_broken_file_at_start_stops_the_start_without_quoting_it(tmp_path: Path) -> None:
    path = tmp_path / "teams.yaml"
    path.write_text("teams:\n  payments:\n    members: [{login: alice, wieght: 1}]\n")
    with pytest.raises(ValidationError) as raised:
        make_settings(teams_file=path)
    message = str(raised.value)
    assert "teams_file" in message.lower() and "wieght" in message
    assert "alice" not in message


def test_two_small_teams_folded_into_other_count_both_weights_and_time_it_once(
    start: Start, tmp_path: Path
) -> None:
    # Carol is in two teams of three: with MIN_TEAM_SIZE 5 both are `other`.
    teams = {
        "teams": {
            "mobile": {"members": [{"login": "carol", "weight": 0.5}, *members("kim", "lee")]},
            "data": {"members": [{"login": "Carol", "weight": 0.25}, *members("n", "o")]},
            "payments": {
                "members": [{"login": "carol", "weight": 0.25}, *members("a", "b", "d", "e")]
            },
        }
    }
    service = start(teams_file=write_teams(tmp_path / "teams.yaml", teams))
    deliver(service, pull_request("opened", "carol", pr_id=61))
    deliver(service, pull_request("closed", "carol", pr_id=61, merged_at="2026-11-20T10:00:00Z"))
    submitted = review("hubot", "carol", pr_id=61, submitted_at="2026-11-20T09:00:00Z")
    assert service.deliver("pull_request_review", submitted).status_code == 200
    exposition = service.metrics()
    for action in ("opened", "merged"):
        assert team_prs(service, "other", action) == 0.75
        assert team_prs(service, "payments", action) == 0.25
    for name, seconds in (
        ("github_team_pull_request_cycle_time_seconds", 2 * 3600),
        ("github_team_pull_request_first_review_seconds", 3600),
    ):
        # One `other` observation for the two folded teams, one for payments: unweighted.
        for team in ("other", "payments"):
            assert exposition.get(f"{name}_count", team=team) == 1, (name, team)
            assert exposition.get(f"{name}_sum", team=team) == seconds, (name, team)
        assert exposition.value(f"{name}_count", team="mobile") is None
        assert exposition.value(f"{name}_count", team="data") is None


def test_a_login_listed_twice_in_a_team_is_one_person(start: Start, tmp_path: Path) -> None:
    teams = {
        "teams": {
            # Four people: bob is listed for two periods, which overlap in November.
            "mobile": {
                "members": [
                    {"login": "bob", "left": "2026-11-30"},
                    {"login": "Bob", "joined": "2026-11-01", "weight": 0.5},
                    *members("kim", "lee", "max"),
                ]
            },
            # Five people; carol is listed twice: she counts once, with the larger weight.
            "payments": {
                "members": [
                    {"login": "carol", "weight": 0.25},
                    {"login": "carol"},
                    *members("a", "b", "d", "e"),
                ]
            },
        }
    }
    service = start(teams_file=write_teams(tmp_path / "teams.yaml", teams))
    deliver(service, pull_request("opened", "kim"))
    deliver(service, pull_request("opened", "carol"))
    assert team_prs(service, "other", "opened") == 1
    assert team_prs(service, "mobile", "opened") == 0
    assert team_prs(service, "payments", "opened") == 1


class RenderOnEveryChange:
    """/metrics rendered in its own thread, as the endpoint does, after every change the
    refresh makes to the ownership series: each state a scrape could meet is rendered."""

    def __init__(self, metrics: Metrics, monkeypatch: pytest.MonkeyPatch) -> None:
        self._exposition = Exposition(metrics.registry)
        self._turn, self._rendered = threading.Semaphore(0), threading.Semaphore(0)
        self._stopping = False
        self.scrapes: list[set[tuple[str, str]]] = []
        self.errors: list[Exception] = []
        info = metrics.repository_team_info
        for name in ("labels", "remove", "clear"):
            monkeypatch.setattr(info, name, self._then_render(getattr(info, name)))
        self._thread = threading.Thread(target=self._render_when_told)
        self._thread.start()

    def _then_render(self, change: Callable[..., Any]) -> Callable[..., Any]:
        def changed(*args: Any) -> Any:
            result = change(*args)
            self._turn.release()
            self._rendered.acquire()
            return result

        return changed

    def _render_when_told(self) -> None:
        while True:
            self._turn.acquire()
            if self._stopping:
                return
            try:
                self.scrapes.append(self._owners())
            except Exception as error:  # kept for the test to report
                self.errors.append(error)
            finally:
                # Released whatever happened, so a failing render cannot hang the test.
                self._rendered.release()

    def _owners(self) -> set[tuple[str, str]]:
        text = self._exposition.render("")[0].decode()
        return {
            (dict(labels)["repository"], dict(labels)["team"])
            for (name, labels), value in Scraped(text).samples.items()
            if name == "observer_repository_team_info" and value == 1
        }

    def stop(self) -> None:
        self._stopping = True
        self._turn.release()
        self._thread.join()


def test_no_scrape_during_a_reload_misses_an_owner_that_stays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def owning(*extra: str) -> dict[str, Any]:
        team = {"members": members(*FIVE)}
        return {
            "teams": {
                "payments": {**team, "repositories": [f"octo/pay-{i}" for i in range(20)]},
                "platform": {**team, "repositories": ["octo/*", *extra]},
            }
        }

    versions = [owning(), owning("octo/extra-1", "octo/extra-2")]
    path = write_teams(tmp_path / "teams.yaml", versions[0])
    metrics = Metrics(CollectorRegistry())
    source = TeamsSource(path, 5, metrics)
    for i in range(5):
        source.saw_repository(f"octo/app-{i}")
    scrapes = RenderOnEveryChange(metrics, monkeypatch)
    try:
        for swap in range(1, 21):
            # Replaced by a rename, so each version is a new file to reload.
            os.replace(write_teams(tmp_path / "teams.new", versions[swap % 2]), path)
            source.refresh()
    finally:
        scrapes.stop()
    stays = {(f"octo/pay-{i}", "payments") for i in range(20)}
    stays |= {(f"octo/app-{i}", "platform") for i in range(5)}
    assert not scrapes.errors
    assert scrapes.scrapes, "no change was made to the ownership series"
    for seen in scrapes.scrapes:
        assert stays <= seen, sorted(stays - seen)[:3]
