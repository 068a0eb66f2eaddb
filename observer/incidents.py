"""Incidents from GitHub issues: each period an issue is open and labelled is one incident.

An issue is an incident while it is open and carries ``INCIDENT_LABEL``; removing the label or
closing the issue resolves it, and reopening it or adding the label again opens a new one. Each
issue keeps its periods in the store as ``[opened, resolved]`` pairs of seconds, in time order,
changed in one atomic ``update``: whichever replica, however often and in whatever order the
deliveries arrive, a transition already in the periods is a repeat.

Order: a resolution that arrives before its opening is kept as a loose end (``[None,
resolved]``) and paired with the opening when it comes, so the numbers are those of the events'
own order; so is a reopening delivered before the closing it follows (the closing is then
awaited). What a late delivery would change in a period already observed is left alone, and a
label added while an incident of the issue is open is taken for that incident: GitHub sends
'labeled' beside the 'opened' of an issue created with the label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from observer.state import Unit

# Periods kept per issue: an issue relabelled more often than this forgets its oldest periods.
MAX_PERIODS = 50
Period = list[float | None]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one transition changed: an incident opened, one resolved (its recovery), or
    neither, and then why."""

    opened: bool = False
    recovery: float | None = None
    # Set when nothing changed.
    unchanged: str | None = None


REPEAT = Outcome(unchanged="repeat")
STALE = Outcome(unchanged="older than what is known of the issue")
NOT_OPEN = Outcome(unchanged="no incident open")
# Nothing stored for the issue: the previous version's keys are looked at before deciding.
UNKNOWN = Outcome(unchanged="unknown")
# The end of a period that ended (the issue was reopened after it) before its closing was
# delivered. Times are Unix seconds: no real end is negative.
AWAITED = -1.0


def key(issue_id: int | str) -> str:
    return f"issue:{issue_id}"


def open_at(moment: float, periods: list[Period], *, reopened: bool = False) -> Outcome:
    """The issue became an incident at ``moment`` (opened or reopened with the label, or the
    label added while open); ``periods`` is changed in place."""
    last = periods[-1] if periods else None
    open_since = last[0] if last is not None and last[1] is None else None
    if reopened and open_since is not None and open_since < moment:
        # Reopened after the open period began: it was closed in between, not delivered yet.
        periods[-1][1] = AWAITED
        periods.append([moment, None])
        return Outcome(opened=True)
    for start, end in periods:
        if start is not None and start <= moment and (end in (None, AWAITED) or moment <= end):
            # A redelivery, or GitHub's 'labeled' beside the 'opened' of an issue created with it.
            return REPEAT
    before = periods[-2][1] if len(periods) > 1 else None
    if last is not None and (last[0] is None or last[1] is None):
        # The open period or a loose end, and this opening comes after the period before them:
        # the open one started earlier than known ('opened' after its 'labeled'), or the loose
        # end's opening has arrived.
        if before is not None and (before == AWAITED or moment <= before):
            return STALE
        end = last[1]
        if end is None:
            last[0] = moment
            return REPEAT
        if moment <= end:
            last[0] = moment
            return Outcome(opened=True, recovery=end - moment)
        # A loose end earlier than this opening belongs to an opening never seen.
        periods.pop()
    elif last is not None and last[1] is not None and moment < last[1]:
        return STALE
    periods.append([moment, None])
    return Outcome(opened=True)


def resolve_at(moment: float, periods: list[Period]) -> Outcome:
    """The issue stopped being an incident at ``moment`` (closed, or the label removed)."""
    if any(end == moment for _, end in periods):
        return REPEAT
    for index, (start, end) in enumerate(periods[:-1]):
        after = periods[index + 1][0]
        if end == AWAITED and start is not None and after is not None and start <= moment <= after:
            periods[index][1] = moment
            return Outcome(recovery=moment - start)
    last = periods[-1] if periods else None
    if last is not None and last[0] is not None and last[1] is None:
        if moment < last[0]:
            # The resolution of an earlier period, delivered after the issue became one again.
            return STALE
        last[1] = moment
        return Outcome(recovery=moment - last[0])
    if last is not None and last[1] is not None and moment < last[1]:
        return STALE
    if last is not None and last[0] is None:
        periods.pop()
    # Kept until the opening it ends arrives, if it ever does.
    periods.append([None, moment])
    return NOT_OPEN


def _change(transition: Transition, seed: list[Period] | None) -> Any:
    def change(value: Any) -> tuple[Any, Outcome]:
        known = value if value is not None else seed
        if known is None:
            return None, UNKNOWN
        periods: list[Period] = [list(period) for period in known]
        if transition.opens:
            outcome = open_at(transition.moment, periods, reopened=transition.reopened)
        else:
            outcome = resolve_at(transition.moment, periods)
        return periods[-MAX_PERIODS:], outcome

    return change


@dataclass(frozen=True, slots=True)
class Transition:
    issue_id: int | str
    # True when the issue became an incident, False when it stopped being one.
    opens: bool
    moment: float
    # Opened by a reopening: the issue was closed before it.
    reopened: bool = False


async def apply(store: Unit, transition: Transition) -> Outcome:
    """One transition of an issue, written into the event's unit."""
    name = key(transition.issue_id)
    # An opening of an issue never seen opens; a resolution first asks the previous version.
    first: list[Period] | None = [] if transition.opens else None
    outcome: Outcome = await store.update("incident", name, _change(transition, first))
    if outcome != UNKNOWN:
        return outcome
    seed = await _left_open_by_previous_version(store, transition.issue_id)
    result: Outcome = await store.update("incident", name, _change(transition, seed))
    return result


async def _left_open_by_previous_version(store: Unit, issue_id: int | str) -> list[Period]:
    """The period of an incident the previous version opened and did not resolve.

    That version kept the opening time under its own key and marked the resolution as an
    event: an incident open across the upgrade still resolves.
    """
    opened = f"incident:issue:{issue_id}:opened"
    known = await store.get_many("incident", [opened])
    if opened not in known or await store.contains("event", f"incident:issue:{issue_id}:resolved"):
        return []
    return [[float(known[opened]), None]]
