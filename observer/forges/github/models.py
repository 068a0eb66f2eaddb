"""What the GitHub REST API answers, parsed: only the fields lead time needs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, StringConstraints, TypeAdapter

from observer.forges.github.errors import MalformedResponse


@dataclass(frozen=True, slots=True)
class ApiCommit:
    sha: str
    author_time: datetime
    parents: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ApiPull:
    number: int
    merged_at: datetime | None
    merge_commit_sha: str | None
    head_ref: str | None


@dataclass(frozen=True, slots=True)
class Comparison:
    status: str
    commits: tuple[ApiCommit, ...]
    truncated: bool


@dataclass(frozen=True, slots=True)
class ApiDeployment:
    id: int
    sha: str
    created_at: datetime


Sha = Annotated[str, StringConstraints(pattern=r"^(?:[0-9a-fA-F]{40}|[0-9a-fA-F]{64})$")]


class Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Ref(Model):
    sha: Sha


class Signature(Model):
    date: AwareDatetime


class GitCommit(Model):
    author: Signature | None = None
    committer: Signature | None = None


class CommitBody(Model):
    sha: Sha
    commit: GitCommit
    parents: list[Ref]

    def api(self, where: str) -> ApiCommit:
        # The git author can be absent from GitHub's answer; the committer is the next best time.
        signature = self.commit.author or self.commit.committer
        if signature is None:
            raise MalformedResponse(f"{where}: commit {self.sha.lower()} has no date")
        parents = tuple(parent.sha.lower() for parent in self.parents)
        return ApiCommit(sha=self.sha.lower(), author_time=signature.date, parents=parents)


class ComparisonBody(Model):
    status: str
    total_commits: int
    commits: list[CommitBody]


class Repo(Model):
    id: int


class Branch(Model):
    ref: str
    repo: Repo | None = None


class PullBody(Model):
    number: int
    merged_at: AwareDatetime | None = None
    merge_commit_sha: Sha | None = None
    head: Branch
    base: Branch


class DeploymentBody(Model):
    id: int
    sha: Sha
    created_at: AwareDatetime


class StatusBody(Model):
    state: str


@dataclass(frozen=True, slots=True)
class DeliveryPage:
    deliveries: tuple[HookDelivery, ...]
    # GitHub pages deliveries by an opaque cursor, given in the Link header's rel="next".
    next_cursor: str | None


class HookDelivery(Model):
    """One attempt to deliver a webhook; a redelivery is a new attempt with the same guid."""

    id: int
    guid: str
    # 0 when no answer came back (a timeout, a refused connection).
    status_code: int
    redelivery: bool = False
    event: str = ""


COMPARISON = TypeAdapter(ComparisonBody)
COMMIT = TypeAdapter(CommitBody)
COMMITS = TypeAdapter(list[CommitBody])
PULLS = TypeAdapter(list[PullBody])
DEPLOYMENTS = TypeAdapter(list[DeploymentBody])
STATUSES = TypeAdapter(list[StatusBody])
HOOK_DELIVERIES = TypeAdapter(list[HookDelivery])


def same_repo(head: Branch, base: Branch) -> bool:
    return head.repo is not None and base.repo is not None and head.repo.id == base.repo.id
