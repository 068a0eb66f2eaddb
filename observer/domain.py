"""What the service records, whatever the source: GitHub webhooks or pipelines."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime

# The forges whose APIs can tell what a deployment shipped (Deployment.forge).
GITHUB = "github"
GITLAB = "gitlab"


def at(seconds: float) -> datetime:
    """A Unix time as an aware datetime, as the store keeps times in seconds."""
    return datetime.fromtimestamp(seconds, UTC)


class Outcome(enum.StrEnum):
    ACCEPTED = "accepted"
    IGNORED = "ignored"
    DUPLICATE = "duplicate"


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Outcome
    detail: str | None = None
    repository: str | None = None


@dataclass(frozen=True, slots=True)
class Commit:
    """A commit and its author time, the start of a change's lead time."""

    sha: str
    time: datetime


@dataclass(frozen=True, slots=True)
class Deployment:
    repository: str
    environment: str
    status: str
    time: datetime
    # None when the sender gave no id: such a deployment is never taken for a repeat.
    key: str | None
    sha: str | None = None
    # The commits shipped, when the sender knows them (pipelines without a GitHub token).
    commits: tuple[Commit, ...] = ()
    # Which forge's API may enrich it ("github", "gitlab"); None for pipelines (/api/event).
    forge: str | None = None


@dataclass(frozen=True, slots=True)
class PullRequest:
    repository: str
    number: int
    action: str
    created_at: datetime
    key: str
    merged_at: datetime | None = None
    merge_commit_sha: str | None = None
    head_sha: str | None = None
    # The branch it came from, when that branch is in the same repository (not a fork).
    head_ref: str | None = None
    # For people-safe activity figures; the author's login never leaves the process.
    author: str | None = None
    closed_at: datetime | None = None
    title: str = ""
    branch: str | None = None
    labels: tuple[str, ...] = ()
    # Lines added plus deleted, when the payload tells them.
    size: int | None = None

    @property
    def time(self) -> datetime:
        """When this action happened: membership and team size are judged at this time."""
        if self.action == "merged" and self.merged_at is not None:
            return self.merged_at
        if self.action == "closed" and self.closed_at is not None:
            return self.closed_at
        return self.created_at


@dataclass(frozen=True, slots=True)
class Review:
    """A submitted pull request review; logins stay in the process, for team and bot checks."""

    repository: str
    # GitHub's pull request id, or a string naming another forge's ("gitlab:7"): the ids of two
    # forges may be the same number.
    pull_request_id: int | str
    state: str
    submitted_at: datetime
    # When the pull request was opened; the first review is timed from this or from ready.
    opened_at: datetime
    reviewer: str
    author: str
    key: str


@dataclass(frozen=True, slots=True)
class Push:
    repository: str
    ref: str
    key: str
    after: str
    before: str = ""
    deleted: bool = False
    # Rewritten history: what was known about where the branch started no longer holds.
    forced: bool = False
    commits: tuple[Commit, ...] = field(default=())
    # The commits GitHub marks distinct: new to the repository.
    new: tuple[Commit, ...] = field(default=())
    # How many commits are new when the sender counts more than it lists (GitLab lists 20 of a
    # push's commits and counts them all in total_commits_count); None: those in ``new``.
    new_count: int | None = None


@dataclass(frozen=True, slots=True)
class IncidentOpened:
    repository: str
    key: str
    # When it became an incident: opened with the label, or labelled later.
    opened_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class IssueIncident:
    """An issue became an incident (``opens``) or stopped being one, at ``time``."""

    repository: str
    # GitHub's issue id, or a string naming another forge's ("gitlab:301").
    issue_id: int | str
    opens: bool
    time: datetime
    # Opened by reopening the issue, which was closed before.
    reopened: bool = False


@dataclass(frozen=True, slots=True)
class IncidentResolved:
    repository: str
    opened_at: datetime
    resolved_at: datetime
    key: str


@dataclass(frozen=True, slots=True)
class SourceIncident:
    """An incident its source names itself (an alert's fingerprint and start, a PagerDuty
    incident's id): opened at ``opened_at`` and, once the source says so, resolved at
    ``resolved_at``. Its opening and its resolution are each counted once, in whichever order
    they arrive: a resolution arriving first counts the opening it implies."""

    repository: str
    key: str
    opened_at: datetime
    resolved_at: datetime | None = None
