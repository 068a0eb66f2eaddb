"""People-safe activity: pull requests by team, reviews, size, rework and pulse surveys.

Logins arrive with events and are used here only to leave people out (opt-out, bots) and to
find their teams; what leaves is a repository or a team label value, never a login.
"""

from __future__ import annotations

import re
from datetime import datetime

from observer.domain import Outcome, PullRequest, Result, Review, at
from observer.metrics.definitions import Metrics
from observer.settings import Settings
from observer.state import Store, Unit
from observer.teams.file import Teams
from observer.teams.first_review import FirstReviews
from observer.teams.source import TeamsSource

# GitHub's "Revert" button titles the pull request 'Revert "<title>"' and names its branch
# 'revert-<number>-<branch>'; either is enough, as people edit titles.
REVERT_TITLE = re.compile(r'^\s*Revert\s+"')
REVERT_BRANCH = re.compile(r"^revert-\d+-")


class Activity:
    def __init__(self, settings: Settings, metrics: Metrics, store: Store) -> None:
        self._metrics = metrics
        # Shared by replicas like every other "seen" and "when": a first review is one per
        # pull request whichever replica hears of it.
        self._store = store
        self.first_reviews = FirstReviews(store, metrics, settle=settings.settle_seconds)
        self.teams = TeamsSource(settings.teams_file, settings.min_team_size, metrics)
        self._filter = settings.teams_filter
        self.hotfix_label = settings.hotfix_label.lower()

    def counts(self, login: str | None, when: datetime) -> bool:
        """Whether a pull request by ``login`` at that time enters any pull-request figure."""
        teams = self.teams.current()
        if login is None:
            return not self._filter
        if teams.left_out(login):
            return False
        return teams.is_member(login, when) if self._filter else True

    def pull_request(self, pull_request: PullRequest, repository: str) -> None:
        """The figures beside the repository's own counters, for a pull request that counts."""
        teams = self.teams.current()
        if pull_request.author is not None:
            self._team_pull_request(teams, pull_request, pull_request.author)
        if pull_request.action != "merged":
            return
        if pull_request.size is not None:
            self._metrics.pull_request_size.labels(repository).observe(pull_request.size)
        kind = self.rework_kind(pull_request)
        if kind is not None:
            self._metrics.rework.labels(repository, kind).inc()

    async def ready_for_review(self, pull_request_id: int, when: datetime) -> None:
        # When it became ready: the review payload carries the opening time but not this one. A
        # draft may go back and forth: the last time it became ready is when review could start.
        await self._store.put_many("ready", {str(pull_request_id): when.timestamp()})

    async def review(self, unit: Unit, review: Review, repository: str) -> Result:
        """A review's figures, as effects of ``unit``: nothing counts until it has landed."""
        teams = self.teams.current()
        if teams.left_out(review.reviewer):
            return Result(Outcome.IGNORED, "review by an opted-out login or a bot", repository)
        unit.effect(self._metrics.pull_request_reviews.labels(repository, review.state).inc)
        if review.reviewer.lower() != review.author.lower() and self.counts(
            review.author, review.submitted_at
        ):
            await self._first_review(unit, teams, review, repository)
        return Result(Outcome.ACCEPTED, repository=repository)

    def survey(
        self, unit: Unit, team: str, satisfaction: int | None, nps: int | None, when: datetime
    ) -> Result:
        label = self.teams.current().label_for_name(team, when)

        def count() -> None:
            if satisfaction is not None:
                self._metrics.survey_satisfaction.labels(label).observe(satisfaction)
            if nps is not None:
                self._metrics.survey_nps.labels(label).observe(nps)

        unit.effect(count)
        return Result(Outcome.ACCEPTED)

    def _team_pull_request(self, teams: Teams, pull_request: PullRequest, author: str) -> None:
        for team, weight in teams.memberships(author, pull_request.time).items():
            if weight <= 0:
                continue
            self._metrics.team_pull_requests.labels(team, pull_request.action).inc(weight)
            if pull_request.action == "merged" and pull_request.merged_at is not None:
                cycle = (pull_request.merged_at - pull_request.created_at).total_seconds()
                self._metrics.team_pull_request_cycle_time.labels(team).observe(max(cycle, 0.0))

    async def _first_review(
        self, unit: Unit, teams: Teams, review: Review, repository: str
    ) -> None:
        """This review as the pull request's candidate first review (decided later)."""
        known = await unit.get_many("ready", [str(review.pull_request_id)])
        ready = at(float(known[str(review.pull_request_id)])) if known else None
        start = ready if ready is not None and ready > review.opened_at else review.opened_at
        await self.first_reviews.candidate(
            unit,
            review.pull_request_id,
            submitted=review.submitted_at.timestamp(),
            start=start.timestamp(),
            repository=repository,
            # The author's teams when this review was submitted: label values, never a login.
            teams=teams.memberships(review.author, review.submitted_at),
        )

    def rework_kind(self, pull_request: PullRequest) -> str | None:
        """'revert', 'hotfix' or None: the same for dora_rework_total and change failures."""
        # One kind per pull request, so that the kinds add up to a rework count: a revert
        # that also carries the hotfix label is a revert.
        if REVERT_TITLE.match(pull_request.title) or (
            pull_request.branch is not None and REVERT_BRANCH.match(pull_request.branch)
        ):
            return "revert"
        if any(label.lower() == self.hotfix_label for label in pull_request.labels):
            return "hotfix"
        return None

    def saw_repository(self, repository: str) -> None:
        self.teams.saw_repository(repository)
