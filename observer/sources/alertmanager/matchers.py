"""Label matchers in PromQL's syntax, as ``INCIDENT_ALERTS`` writes them.

``severity="critical"``, ``severity=~"critical|page", team!="infra"``, optionally inside
braces: the selector part of a PromQL query, with its four operators. Regular expressions are
fully anchored, as Prometheus anchors them (``=~"crit"`` does not match ``critical``), and a
label the alert does not carry has the empty value, so ``team!="infra"`` matches an alert
without a team, as in Prometheus. Values are quoted as PromQL quotes strings: double or single
quotes with backslash escapes, or backticks without them.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass

# name, operator, then one quoted value; the operators longest first so '=~' is not '='.
_MATCHER = re.compile(
    r"""\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*
        (?P<op>=~|!~|!=|=)\s*
        (?P<value>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)\s*""",
    re.VERBOSE,
)


class MatcherError(ValueError):
    """A matcher list that cannot be read; the message says where and why."""


@dataclass(frozen=True, slots=True)
class Matcher:
    name: str
    op: str
    value: str
    pattern: re.Pattern[str] | None = None

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        assert self.pattern is not None  # built with every regular-expression matcher
        found = self.pattern.fullmatch(actual) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        return f"{self.name}{self.op}{_quote(self.value)}"


@dataclass(frozen=True, slots=True)
class Matchers:
    """All of them must match, as in a PromQL selector; none matches every alert."""

    items: tuple[Matcher, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(item.matches(labels) for item in self.items)

    def __str__(self) -> str:
        return ", ".join(str(item) for item in self.items)


def parse(text: str) -> Matchers:
    """``text`` read as a PromQL selector's matchers; MatcherError says what is wrong."""
    body = text.strip()
    if body.startswith("{") and body.endswith("}"):
        body = body[1:-1]
    items: list[Matcher] = []
    position = 0
    while position < len(body) and body[position:].strip():
        found = _MATCHER.match(body, position)
        if found is None:
            raise MatcherError(
                f"cannot read a matcher at {body[position:].strip()[:40]!r}: "
                'write name="value", name!="value", name=~"regex" or name!~"regex"'
            )
        items.append(_matcher(found["name"], found["op"], _unquote(found["value"])))
        position = found.end()
        if position < len(body):
            if body[position] != ",":
                raise MatcherError(f"expected ',' between matchers at {body[position:][:40]!r}")
            position += 1
    return Matchers(tuple(items))


def _matcher(name: str, op: str, value: str) -> Matcher:
    if op in ("=", "!="):
        return Matcher(name, op, value)
    try:
        pattern = re.compile(value)
    except re.error as error:
        written = f"{name}{op}{_quote(value)}"
        raise MatcherError(f"{written}: not a regular expression: {error}") from None
    return Matcher(name, op, value, pattern)


def _unquote(quoted: str) -> str:
    if quoted.startswith("`"):
        return quoted[1:-1]
    # PromQL's escapes are Go's, which Python's string literals share for what labels use.
    try:
        value = ast.literal_eval(quoted)
    except (SyntaxError, ValueError):
        raise MatcherError(f"{quoted}: not a valid quoted string") from None
    assert isinstance(value, str)
    return value


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
