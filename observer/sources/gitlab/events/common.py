"""Pieces of GitLab's webhook payloads that several events share."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AwareDatetime, BeforeValidator, Field

from observer.sources.github.events.common import Model, RepositoryPath

# GitLab writes times three ways in its hooks: ISO 8601 ("2013-12-03T17:23:34Z"), Ruby's UTC
# ("2017-09-15 16:52:00 UTC") and Ruby's with an offset ("2021-04-28 21:50:00 +0200").
_RUBY_TIME = re.compile(
    r"^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?) (?:(UTC)|([+-]\d{2}):?(\d{2}))$"
)


def _iso(value: Any) -> Any:
    """A Ruby-formatted time as ISO 8601, for pydantic; anything else as it is."""
    if not isinstance(value, str):
        return value
    match = _RUBY_TIME.match(value)
    if match is None:
        return value
    day, clock, utc, hours, minutes = match.groups()
    return f"{day}T{clock}" + ("+00:00" if utc else f"{hours}:{minutes}")


Time = Annotated[AwareDatetime, BeforeValidator(_iso)]


class Project(Model):
    # Subgroups kept: group/sub/name, lower-cased where it becomes a label.
    path_with_namespace: RepositoryPath


class User(Model):
    # The person is only ever compared in the process (teams, bots); never a label or log.
    username: str = Field(max_length=255)


class Label(Model):
    title: str = Field(max_length=1000)


def carries(labels: list[Label], wanted: str) -> bool:
    return any(label.title.lower() == wanted for label in labels)
