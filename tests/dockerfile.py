"""A reader for the parts of the Dockerfile the deployment tests check: stages, ENV, USER, the
exec-form ENTRYPOINT/CMD and HEALTHCHECK. Not a full Dockerfile parser: enough for ours."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"


@dataclass
class Instruction:
    keyword: str
    arguments: str
    line: int


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [item for item in self.instructions if item.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None


def instructions(text: str) -> list[Instruction]:
    """Logical instructions: continuation lines joined, comments and blank lines dropped."""
    result: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        joined = " ".join(part for part in pending if part)
        pending = []
        keyword, _, arguments = joined.partition(" ")
        result.append(Instruction(keyword.upper(), arguments.strip(), start))
    return result


def stages(text: str | None = None) -> list[Stage]:
    text = DOCKERFILE.read_text() if text is None else text
    found: list[Stage] = []
    for item in instructions(text):
        if item.keyword == "FROM":
            words = [word for word in item.arguments.split() if not word.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            found.append(Stage(words[0], name))
        elif found:
            found[-1].instructions.append(item)
    return found


def exec_form(arguments: str) -> list[str]:
    """The JSON array of an exec-form instruction; ValueError for the shell form."""
    if not arguments.startswith("["):
        raise ValueError(f"not exec form: {arguments}")
    value = json.loads(arguments)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"not a list of strings: {arguments}")
    return value


def environment(stage: Stage, base: dict[str, str] | None = None) -> dict[str, str]:
    """ENV of a stage in order, with $VAR and ${VAR} expanded from what came before."""
    env = dict(base or {})

    def expand(value: str) -> str:
        return re.sub(
            r"\$\{(\w+)\}|\$(\w+)",
            lambda match: env.get(match.group(1) or match.group(2), ""),
            value,
        )

    for item in stage.all("ENV"):
        words = shlex.split(item.arguments)
        if words and "=" not in words[0]:
            env[words[0]] = expand(" ".join(words[1:]))
            continue
        for word in words:
            key, _, value = word.partition("=")
            env[key] = expand(value)
    return env


def healthcheck(stage: Stage) -> tuple[dict[str, str], list[str]]:
    """Options and exec-form command of the stage's HEALTHCHECK."""
    item = stage.last("HEALTHCHECK")
    if item is None:
        raise ValueError("no HEALTHCHECK")
    options: dict[str, str] = {}
    rest = item.arguments
    while rest.startswith("--"):
        option, _, rest = rest.partition(" ")
        key, _, value = option[2:].partition("=")
        options[key] = value
        rest = rest.strip()
    keyword, _, command = rest.partition(" ")
    if keyword.upper() != "CMD":
        raise ValueError(f"HEALTHCHECK without CMD: {item.arguments}")
    return options, exec_form(command.strip())


def user(stage: Stage) -> tuple[int, int]:
    """The numeric uid and gid of the stage's last USER; ValueError when not numeric."""
    item = stage.last("USER")
    if item is None:
        raise ValueError("no USER")
    uid, _, gid = item.arguments.partition(":")
    return int(uid), int(gid or uid)
