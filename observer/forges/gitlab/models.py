"""What GitLab's REST and GraphQL APIs answer, parsed: only the fields lead time needs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

from observer.forges.github.models import ApiCommit


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class RestCommit(_Model):
    """A commit as the commits and compare APIs give it."""

    id: str = Field(pattern=r"^[0-9a-fA-F]{40,64}$")
    # created_at is the committer's time; authored_date, where given, is the author's.
    created_at: AwareDatetime
    authored_date: AwareDatetime | None = None
    committed_date: AwareDatetime | None = None
    parent_ids: tuple[str, ...] = ()

    def api(self) -> ApiCommit:
        return ApiCommit(
            self.id.lower(),
            self.authored_date or self.created_at,
            tuple(parent.lower() for parent in self.parent_ids),
        )

    @property
    def committed(self) -> datetime:
        return self.committed_date or self.created_at


class CompareBody(_Model):
    commits: tuple[RestCommit, ...]
    # GitLab gave up comparing (too large, or out of time): the commits may be incomplete.
    compare_timeout: bool = False


class RestDeployment(_Model):
    id: int
    sha: str
    status: str
    created_at: AwareDatetime
    updated_at: AwareDatetime | None = None


class RestMergeRequest(_Model):
    iid: int
    state: str
    merged_at: AwareDatetime | None = None
    merge_commit_sha: str | None = None
    squash_commit_sha: str | None = None


COMMIT = TypeAdapter(RestCommit)
COMMITS = TypeAdapter(tuple[RestCommit, ...])
COMPARE = TypeAdapter(CompareBody)
DEPLOYMENTS = TypeAdapter(tuple[RestDeployment, ...])
MERGE_REQUESTS = TypeAdapter(tuple[RestMergeRequest, ...])


class _GraphCommit(_Model):
    sha: str
    authoredDate: AwareDatetime | None = None


class _GraphCommits(_Model):
    nodes: tuple[_GraphCommit, ...] = ()


class _GraphMergeRequest(_Model):
    iid: str
    mergedAt: AwareDatetime | None = None
    mergeCommitSha: str | None = None
    squashCommitSha: str | None = None
    commitsWithoutMergeCommits: _GraphCommits | None = None


class _PageInfo(_Model):
    hasNextPage: bool = False
    endCursor: str | None = None


class _GraphMergeRequests(_Model):
    pageInfo: _PageInfo = _PageInfo()
    nodes: tuple[_GraphMergeRequest, ...] = ()


class _GraphProject(_Model):
    mergeRequests: _GraphMergeRequests


class _GraphData(_Model):
    project: _GraphProject | None = None


class _GraphError(_Model):
    message: str = ""


class GraphAnswer(_Model):
    data: _GraphData | None = None
    errors: tuple[_GraphError, ...] = ()


GRAPH_ANSWER = TypeAdapter(GraphAnswer)


@dataclass(frozen=True, slots=True)
class MergeRequest:
    """A merged merge request: its commits (merge commits left out) and the commits merging it
    made (a merge commit, a squash commit, either or both, or none when fast-forwarded)."""

    iid: int
    merged_at: datetime | None
    merge_commit_sha: str | None
    squash_commit_sha: str | None
    commits: tuple[tuple[str, datetime | None], ...]

    @property
    def first_commit_time(self) -> datetime | None:
        return min((t for _, t in self.commits if t is not None), default=None)


@dataclass(frozen=True, slots=True)
class MergeRequestPage:
    merge_requests: tuple[MergeRequest, ...]
    cursor: str | None


def read_page(answer: GraphAnswer) -> MergeRequestPage | None:
    """A page of merge requests; None when GitLab has no such project (or the token cannot
    see it)."""
    if answer.data is None or answer.data.project is None:
        return None
    found = answer.data.project.mergeRequests
    merge_requests = tuple(
        MergeRequest(
            int(node.iid),
            node.mergedAt,
            _sha(node.mergeCommitSha),
            _sha(node.squashCommitSha),
            tuple(
                (commit.sha.lower(), commit.authoredDate)
                for commit in (node.commitsWithoutMergeCommits or _GraphCommits()).nodes
            ),
        )
        for node in found.nodes
    )
    cursor = found.pageInfo.endCursor if found.pageInfo.hasNextPage else None
    return MergeRequestPage(merge_requests, cursor)


def _sha(value: str | None) -> str | None:
    return value.lower() if value else None
