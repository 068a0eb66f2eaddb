"""One GraphQL query for the pull requests of many commits, and its answer read into records.

REST needs a call per commit, and another per pull request for its first commit; GraphQL
takes a batch of commits and pull request numbers, each under an alias, in a single request.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

from observer.forges.github.errors import (
    GitHubError,
    MalformedResponse,
    RateLimited,
    RepositoryNotFound,
    Unauthorized,
)
from observer.forges.github.http import validate
from observer.forges.github.models import Sha

# A commit is rarely in more than a couple of pull requests; ten leaves room for reverts and
# release branches while keeping the query's node count (and its rate-limit cost) small.
PULLS_PER_COMMIT = 10

# Interpolated into the query text, so only what cannot break out of a string literal passes.
SHA = re.compile(r"(?:[0-9a-f]{40}|[0-9a-f]{64})")

_PULL_FIELDS = """
fragment pull on PullRequest {
  number
  mergedAt
  mergeCommit { oid }
  baseRefName
  commits(first: 1) { nodes { commit { authoredDate } } }
}
"""


@dataclass(frozen=True, slots=True)
class GraphPull:
    """A pull request as GraphQL gives it; ``first_commit_time`` is its oldest commit's author."""

    number: int
    merged_at: datetime | None
    merge_commit_sha: str | None
    base_ref: str
    first_commit_time: datetime | None


@dataclass(frozen=True, slots=True)
class PullLookup:
    """What one ``pulls_of_commits`` call found.

    ``commits`` maps each commit that resolved to its merged pull requests (possibly none); a
    sha absent from it is unknown to GitHub, or was cut. ``pulls`` maps each pull request number
    that exists to its record. ``truncated`` counts the shas and numbers not asked for at all,
    the last ones given, beyond the call's limit.
    """

    commits: Mapping[str, tuple[GraphPull, ...]]
    pulls: Mapping[int, GraphPull]
    truncated: int = 0


def pulls_query(shas: Sequence[str], numbers: Sequence[int]) -> str:
    """A query with alias ``c<i>`` for ``shas[i]`` and ``p<i>`` for ``numbers[i]``."""
    parts = []
    for index, sha in enumerate(shas):
        if not SHA.fullmatch(sha):
            raise ValueError(f"{sha!r} is not a lower-case commit sha")
        parts.append(
            f'c{index}: object(oid: "{sha}") {{ ... on Commit {{ '
            f"associatedPullRequests(first: {PULLS_PER_COMMIT}) {{ nodes {{ ...pull }} }} }} }}"
        )
    for index, number in enumerate(numbers):
        parts.append(f"p{index}: pullRequest(number: {int(number)}) {{ ...pull }}")
    aliases = "\n    ".join(parts)
    return (
        "query($owner: String!, $name: String!) {\n"
        f"  repository(owner: $owner, name: $name) {{\n    {aliases}\n  }}\n}}\n{_PULL_FIELDS}"
    )


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class _Oid(_Model):
    oid: Sha


class _Authored(_Model):
    authored_date: AwareDatetime = Field(alias="authoredDate")


class _PullCommit(_Model):
    commit: _Authored


class _PullCommits(_Model):
    nodes: list[_PullCommit | None]


class _Pull(_Model):
    number: int
    merged_at: AwareDatetime | None = Field(default=None, alias="mergedAt")
    merge_commit: _Oid | None = Field(default=None, alias="mergeCommit")
    base_ref_name: str = Field(alias="baseRefName")
    commits: _PullCommits

    def record(self) -> GraphPull:
        first = self.commits.nodes[0] if self.commits.nodes else None
        return GraphPull(
            number=self.number,
            merged_at=self.merged_at,
            merge_commit_sha=self.merge_commit.oid.lower() if self.merge_commit else None,
            base_ref=self.base_ref_name,
            first_commit_time=first.commit.authored_date if first else None,
        )


class _Pulls(_Model):
    nodes: list[_Pull | None]


class _Object(_Model):
    # Absent when the oid names a tree, blob or tag: the inline fragment matched nothing.
    associated: _Pulls | None = Field(default=None, alias="associatedPullRequests")


class _Error(_Model):
    type: str | None = None
    message: str = ""


class _Data(_Model):
    repository: dict[str, dict[str, Any] | None] | None = None


class _Answer(_Model):
    data: _Data | None = None
    errors: list[_Error] = Field(default_factory=list)


ANSWER = TypeAdapter(_Answer)
_COMMIT = TypeAdapter(_Object | None)
_PULL = TypeAdapter(_Pull | None)

# GraphQL answers 200 with a list of typed errors; these types mean what HTTP statuses would.
# They are read only when the repository itself did not resolve: then NOT_FOUND names it.
_ERRORS: dict[str, type[GitHubError]] = {
    "RATE_LIMITED": RateLimited,
    "NOT_FOUND": RepositoryNotFound,
    "FORBIDDEN": Unauthorized,
    "INSUFFICIENT_SCOPES": Unauthorized,
}


def says_rate_limited(content: bytes) -> bool:
    """Whether a GraphQL answer, whatever its status, reports a spent rate limit."""
    if b"RATE_LIMITED" not in content:
        return False  # spares parsing every answer twice
    try:
        errors = ANSWER.validate_json(content).errors
    except ValueError:
        return False
    return any(error.type == "RATE_LIMITED" for error in errors)


def read_pulls(
    answer: _Answer, shas: Sequence[str], numbers: Sequence[int], where: str
) -> tuple[dict[str, tuple[GraphPull, ...]], dict[int, GraphPull]]:
    """What resolved; a commit or number that did not is left out, as its error says."""
    repository = answer.data.repository if answer.data else None
    if repository is None:
        raise _failure(answer.errors, where)
    commits: dict[str, tuple[GraphPull, ...]] = {}
    for index, sha in enumerate(shas):
        found = validate(_COMMIT, _field(repository, f"c{index}", where), f"{where}: c{index}")
        if found is not None and found.associated is not None:
            records = (pull.record() for pull in found.associated.nodes if pull is not None)
            commits[sha] = tuple(pull for pull in records if pull.merged_at is not None)
    pulls: dict[int, GraphPull] = {}
    for index, number in enumerate(numbers):
        pull = validate(_PULL, _field(repository, f"p{index}", where), f"{where}: p{index}")
        if pull is not None:
            pulls[number] = pull.record()
    return commits, pulls


def _field(repository: Mapping[str, object], alias: str, where: str) -> object:
    # GraphQL answers every field asked for, null if it did not resolve: absence is no answer.
    if alias not in repository:
        raise MalformedResponse(f"{where}: unexpected response (no {alias})")
    return repository[alias]


def _failure(errors: Sequence[_Error], where: str) -> GitHubError:
    if not errors:
        return MalformedResponse(f"{where}: unexpected response (no data and no errors)")
    types = sorted({error.type or "untyped" for error in errors})
    for name, error_type in _ERRORS.items():
        if name in types:
            return error_type(f"{where}: GraphQL {name}")
    # The types only: messages can quote the query, and name what the token may not see.
    return GitHubError(f"{where}: GraphQL errors {', '.join(types)}")
