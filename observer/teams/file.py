"""Teams from ``TEAMS_FILE``: who belongs where, when and by how much, and who owns what.

Logins are compared lower-cased and never leave this module: callers get team label values,
weights and yes/no answers, so no person can reach a label or a log line through it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

OTHER = "other"

# GitHub logins are at most 39 characters; an app's bot login adds "[bot]".
Login = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9_.-]{1,39}(\[bot\])?$")
]
TeamName = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9 _./-]{0,62}$")
]
RepositoryPattern = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9_.*-]+/[A-Za-z0-9_.*-]+$")
]


# libyaml's loader when PyYAML was built with it: ten times faster on a large file, which is
# parsed on the request path when it changes.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class TeamsError(ValueError):
    """TEAMS_FILE cannot be used; the message names the place, never a login."""


class _Strict(BaseModel):
    # A misspelt key ("member:") is an error rather than a team silently without members.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Member(_Strict):
    login: Login
    weight: float = Field(default=1.0, ge=0.0, le=1.0)
    joined: date | None = None
    left: date | None = None

    @model_validator(mode="after")
    def _left_after_joined(self) -> Member:
        if self.joined is not None and self.left is not None and self.left < self.joined:
            raise ValueError("left is before joined")
        return self

    def active_on(self, day: date) -> bool:
        # Both ends inclusive: someone who left on the 30th still counts on the 30th.
        return (self.joined is None or self.joined <= day) and (
            self.left is None or day <= self.left
        )


class Team(_Strict):
    repositories: list[RepositoryPattern] = Field(default_factory=list, max_length=10_000)
    members: list[Member] = Field(default_factory=list, max_length=10_000)


class TeamsDocument(_Strict):
    teams: dict[TeamName, Team] = Field(default_factory=dict, max_length=1000)
    exclude: list[Login] = Field(default_factory=list, max_length=100_000)
    bots: list[Login] = Field(default_factory=list, max_length=100_000)

    @field_validator("teams")
    @classmethod
    def _names_are_distinct(cls, teams: dict[str, Team]) -> dict[str, Team]:
        names = [name.lower() for name in teams]
        if OTHER in names:
            raise ValueError(f"{OTHER!r} is reserved for small and unknown teams")
        if len(set(names)) != len(names):
            raise ValueError("two teams have the same name, ignoring case")
        return teams


def parse_teams(text: bytes) -> TeamsDocument:
    """The document in ``text``; a TeamsError says where it is wrong without quoting it."""
    try:
        data: Any = yaml.load(text, Loader=_LOADER) or {}  # noqa: S506  # a safe loader
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise TeamsError(f"not valid YAML{where}: {error.problem}") from None
    except yaml.YAMLError:
        raise TeamsError("not valid YAML") from None
    try:
        return TeamsDocument.model_validate(data)
    except ValidationError as error:
        # Input values are left out: they may be logins.
        problems = [
            ".".join(str(part) for part in item["loc"]) + ": " + item["msg"]
            for item in error.errors(include_url=False, include_input=False)[:5]
        ]
        raise TeamsError("not valid: " + "; ".join(problems)) from None


def read_teams(path: Path) -> TeamsDocument:
    try:
        text = path.read_bytes()
    except OSError as error:
        raise TeamsError(f"cannot be read: {error.strerror}") from None
    return parse_teams(text)


def _pattern(text: str) -> re.Pattern[str]:
    parts = re.split(r"(\*)", text)
    return re.compile("".join(".*" if part == "*" else re.escape(part) for part in parts))


@dataclass(frozen=True, slots=True)
class _Membership:
    team: str
    weight: float
    member: Member


class Teams:
    """One version of the file, compiled for the questions events ask."""

    def __init__(self, document: TeamsDocument, min_size: int) -> None:
        self._min_size = min_size
        self._exclude = frozenset(login.lower() for login in document.exclude)
        self._bots = frozenset(login.lower() for login in document.bots)
        self._teams: dict[str, list[Member]] = {}
        self._names: dict[str, str] = {}
        self._by_login: dict[str, list[_Membership]] = defaultdict(list)
        self._exact: dict[str, set[str]] = defaultdict(set)
        self._patterns: list[tuple[re.Pattern[str], str]] = []
        for name, team in document.teams.items():
            members = [m for m in team.members if not self.left_out(m.login)]
            self._teams[name] = members
            self._names[name.lower()] = name
            for member in members:
                self._by_login[member.login.lower()].append(
                    _Membership(name, member.weight, member)
                )
            for repository in team.repositories:
                repository = repository.lower()
                if "*" in repository:
                    self._patterns.append((_pattern(repository), name))
                else:
                    self._exact[repository].add(name)

    @classmethod
    def empty(cls, min_size: int) -> Teams:
        return cls(TeamsDocument(), min_size)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._teams)

    def is_bot(self, login: str) -> bool:
        login = login.lower()
        return login.endswith("[bot]") or login in self._bots

    def left_out(self, login: str) -> bool:
        """True for opted-out people and bots: never in an activity figure."""
        return login.lower() in self._exclude or self.is_bot(login)

    def size(self, team: str, day: date) -> int:
        """People in the team on that day, whatever their weight; the left-out never count.

        A login listed twice (two periods, say) is one person.
        """
        members = self._teams.get(team, ())
        return len({member.login.lower() for member in members if member.active_on(day)})

    def folded(self, day: date) -> tuple[str, ...]:
        """Teams under the minimum size on that day: their figures are under 'other'."""
        return tuple(name for name in self._teams if self.size(name, day) < self._min_size)

    def label(self, team: str, when: datetime) -> str:
        """The team's label value at that time: its name, or 'other' while it is too small."""
        if self.size(team, _day(when)) >= self._min_size:
            return team
        return OTHER

    def label_for_name(self, name: str, when: datetime) -> str:
        """A team named by a client (a survey): unknown names are 'other', ignoring case."""
        team = self._names.get(name.strip().lower())
        return OTHER if team is None else self.label(team, when)

    def memberships(self, login: str, when: datetime) -> dict[str, float]:
        """Team label values the person counts towards at that time, with their summed weight.

        Two small teams both fold into 'other', so their weights add up there.
        """
        if self.left_out(login):
            return {}
        day = _day(when)
        # Listed twice in one team, on a day both entries cover: one person, the larger weight.
        weights: dict[str, float] = {}
        for membership in self._by_login.get(login.lower(), ()):
            if membership.member.active_on(day):
                team = membership.team
                weights[team] = max(weights.get(team, 0.0), membership.weight)
        found: dict[str, float] = {}
        for team, weight in weights.items():
            label = self.label(team, when)
            found[label] = found.get(label, 0.0) + weight
        return found

    def is_member(self, login: str, when: datetime) -> bool:
        """A member of any team at that time, whatever the team's size or the weight."""
        if self.left_out(login):
            return False
        day = _day(when)
        return any(m.member.active_on(day) for m in self._by_login.get(login.lower(), ()))

    def owners(self, repository: str, when: datetime, *, patterns: bool = True) -> set[str]:
        """Team label values owning ``repository`` (a lower-cased owner/name) at that time."""
        teams = set(self._exact.get(repository, ()))
        if patterns:
            teams.update(name for pattern, name in self._patterns if pattern.fullmatch(repository))
        return {self.label(team, when) for team in teams}

    def named_repositories(self) -> tuple[str, ...]:
        """Repositories the file names exactly: they exist, so they are owned from the start."""
        return tuple(self._exact)


def _day(when: datetime) -> date:
    return when.astimezone(UTC).date()
