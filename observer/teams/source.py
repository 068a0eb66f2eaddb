"""The current teams: ``TEAMS_FILE`` re-read when its content changes, and ownership series.

A change is noticed on use (each event and each scrape) by a ``stat`` of the path: it follows a
rename over the file and a Kubernetes ConfigMap's symbolic-link swap, and costs one system call.
The content is read only when the ``stat`` changed, and parsed only when its hash did.
"""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, date, datetime
from pathlib import Path

from observer.metrics.definitions import Metrics
from observer.ops import logs
from observer.teams.file import OTHER, Teams, TeamsError, parse_teams

_Signature = tuple[int, int, int, int, int]


class TeamsSource:
    """The last good teams, and the ``observer_repository_team_info`` series that follow them."""

    def __init__(self, path: Path | None, min_size: int, metrics: Metrics) -> None:
        self._path = path
        self._min_size = min_size
        self._metrics = metrics
        self._teams = Teams.empty(min_size)
        self._signature: _Signature | None = None
        # The last good content's hash, and the last failure reported.
        self._digest: bytes | None = None
        self._failure: object = None
        # Repositories that have sent an event: patterns own them from then on.
        self._repositories: set[str] = set()
        # The (repository, team) pairs exposed now.
        self._published: set[tuple[str, str]] = set()
        self._ownership_day: date | None = None
        metrics.teams_last_reload_successful.set(1)
        self.refresh()

    def current(self) -> Teams:
        self.refresh()
        return self._teams

    def saw_repository(self, repository: str) -> None:
        """A repository (its label value) sent an event: the patterns it matches now own it."""
        if repository == OTHER or repository in self._repositories:
            return
        self._repositories.add(repository)
        for team in self.current().owners(repository, _now()):
            self._metrics.repository_team_info.labels(repository, team).set(1)
            self._published.add((repository, team))

    def refresh(self) -> None:
        """Load the file again if it changed; keep the last good teams if it is broken."""
        if self._path is not None:
            self._reload_if_changed(self._path)
        if self._ownership_day != _now().date():
            # Team sizes move with dates in the file, so a team may cross MIN_TEAM_SIZE today.
            self._publish_ownership()

    def _reload_if_changed(self, path: Path) -> None:
        try:
            status = os.stat(path)
            signature = (
                status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns,
                status.st_ctime_ns,
            )  # fmt: skip
            if signature == self._signature:
                return
            text = path.read_bytes()
        except OSError as error:
            self._signature = None
            self._failed(("unreadable", error.errno), f"cannot be read: {error.strerror}")
            return
        self._signature = signature
        digest = hashlib.sha256(text).digest()
        if digest == self._digest:
            self._recovered()
            return
        try:
            document = parse_teams(text)
        except TeamsError as error:
            self._failed(digest, str(error))
            return
        self._digest = digest
        self._teams = Teams(document, self._min_size)
        self._recovered()
        self._publish_ownership()
        self._log_loaded()

    def _log_loaded(self) -> None:
        # Says why a team's figures are all under 'other': names teams, never their members.
        folded = self._teams.folded(_now().date())
        logs.event(
            "teams loaded",
            teams=len(self._teams.names),
            folded_into_other=len(folded),
            folded_teams=list(folded),
            min_team_size=self._min_size,
        )

    def _recovered(self) -> None:
        self._failure = None
        self._metrics.teams_last_reload_successful.set(1)

    def _failed(self, failure: object, reason: str) -> None:
        # Counted and logged once per broken version, not once per event that looks at it.
        if failure == self._failure:
            return
        self._failure = failure
        self._metrics.teams_reload_failures.inc()
        self._metrics.teams_last_reload_successful.set(0)
        logs.LOGGER.warning(
            "TEAMS_FILE not reloaded: the last good teams stay in use",
            extra={"fields": {"reason": reason}},
        )

    def _publish_ownership(self) -> None:
        now = _now()
        self._ownership_day = now.date()
        teams = self._teams
        pairs = {
            (repository, team)
            for repository in teams.named_repositories()
            for team in teams.owners(repository, now, patterns=False)
        }
        pairs.update(
            (repository, team)
            for repository in self._repositories
            for team in teams.owners(repository, now)
        )
        # /metrics renders in a thread while this runs on the event loop: a pair that stays is
        # never touched, new pairs are added before old ones go, so no scrape misses an owner.
        info = self._metrics.repository_team_info
        for repository, team in sorted(pairs - self._published):
            info.labels(repository, team).set(1)
        for repository, team in sorted(self._published - pairs):
            info.remove(repository, team)
        self._published = pairs


def _now() -> datetime:
    return datetime.now(UTC)
