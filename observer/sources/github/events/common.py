"""Pieces of GitHub's webhook payloads that several events share."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

# GitHub's own limits: owner up to 39 characters, repository name up to 100.
RepositoryName = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,39}/[A-Za-z0-9_.-]{1,100}$")
]
# What /api/event accepts besides owner/name: a path with subgroups, as GitLab (group/sub/app,
# up to 20 levels) and other hosts (owner/group/name) name projects.
RepositoryPath = Annotated[
    str,
    StringConstraints(
        pattern=r"^[A-Za-z0-9_.-]{1,100}(?:/[A-Za-z0-9_.-]{1,100}){1,20}$", max_length=255
    ),
]
Sha = Annotated[str, StringConstraints(pattern=r"^(?:[0-9a-fA-F]{40}|[0-9a-fA-F]{64})$")]
Environment = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]


class Model(BaseModel):
    """A payload part: only the fields the service reads, the rest of GitHub's shape ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class Repository(Model):
    full_name: RepositoryName


class Label(Model):
    name: str = Field(max_length=1000)
