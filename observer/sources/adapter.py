"""What a source tells the receiving pipeline, and nothing more.

Every source is served by the same pipeline (observer.web.pipeline): read the body within its
limit, authenticate before anything is parsed, identify the delivery, admit it once through
the store, parse it into the domain's events, record them, answer. A source supplies only what
differs: how it authenticates, where its delivery id and event name are, and its table of
events. Adding a source is one package, one entry in observer.sources.table, and its tests.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from observer.domain import Result
    from observer.recorder import Recorder

# One event of a source: its parsed payload applied through the recorder. Raises pydantic's
# ValidationError when a handled event lacks what it needs, or Refused for a reason a model
# cannot express (the pipeline answers 400 either way, and nothing was counted).
Handler = Callable[[Any, "Recorder"], Awaitable["Result"]]


class Refused(Exception):
    """A delivery refused before it is applied: the status and the reason its sender reads."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Delivery:
    """What a delivery's headers claim it is: logged as claimed, used once it is authentic."""

    # The event's name as the source spells it; a label value only when it is in the table and
    # the delivery is authentic.
    event: str
    # Admitted once through the store; None when the source has no delivery id and its events
    # carry their own identity (an alert's fingerprint and start, say).
    id: str | None
    # Why an authentic delivery cannot be used as it is identified (answered 400), if it cannot.
    unusable: str | None = None


@dataclass(frozen=True, slots=True)
class Named:
    """What ``parse`` returns for a source that names its event in the body, not in a header
    (Alertmanager's ``status``, PagerDuty's ``event.event_type``): the pipeline takes the event's
    name from here (for the table and the ``event`` label) and hands ``payload`` to its handler.
    ``identify`` then gives a name outside the table, so a delivery refused before it is parsed
    counts as ``other``."""

    event: str
    payload: Any


class Adapter(Protocol):
    # The `source` label value, and the path the pipeline serves it on.
    name: str
    path: str
    events: Mapping[str, Handler]

    def precheck(self, headers: Mapping[str, str]) -> None:
        """Refuses (401) a request without the credentials it needs, before its body is read."""

    def authenticate(self, headers: Mapping[str, str], body: bytes) -> None:
        """Refuses (401) a delivery that is not authentic; nothing else is read before this."""

    def identify(self, headers: Mapping[str, str]) -> Delivery:
        """What the headers claim; read before authentication, trusted only after it."""

    def parse(self, delivery: Delivery, headers: Mapping[str, str], body: bytes) -> Any:
        """The payload its handler takes (400 or 415 with a reason when it cannot be read), or
        that payload ``Named`` by the event the body says it is."""
