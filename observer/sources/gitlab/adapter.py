"""The GitLab source as the receiving pipeline sees it: ``POST /gitlab``.

Authentication is GitLab's secret token and, when configured, its Standard Webhooks signature
(observer.sources.gitlab.auth). The delivery id is ``Idempotency-Key`` (the same on each retry
of a delivery, and GitLab's ``webhook-id``), else ``X-Gitlab-Event-UUID``; the event's name is
``X-Gitlab-Event``. Bodies are JSON, the only content type GitLab sends.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from observer.settings import Settings
from observer.sources.adapter import Adapter, Delivery, Handler
from observer.sources.gitlab.auth import GitLabAuth
from observer.sources.gitlab.events import EVENTS
from observer.sources.payload import json_object

EVENT_HEADER = "x-gitlab-event"
ID_HEADERS = ("idempotency-key", "x-gitlab-event-uuid")
# A delivery id kept in the store: printable, without spaces, and short.
DELIVERY_ID = re.compile(r"^[\x21-\x7e]{1,200}$")
MAX_EVENT_CHARS = 200

MISSING_EVENT = "missing X-Gitlab-Event header"
MISSING_ID = "missing Idempotency-Key or X-Gitlab-Event-UUID header"
BAD_ID = "Idempotency-Key or X-Gitlab-Event-UUID must be 1 to 200 printable characters"


class GitLabAdapter:
    name = "gitlab"
    path = "/gitlab"
    events: Mapping[str, Handler] = EVENTS

    def __init__(self, auth: GitLabAuth) -> None:
        self._auth = auth

    def precheck(self, headers: Mapping[str, str]) -> None:
        self._auth.precheck(headers)

    def authenticate(self, headers: Mapping[str, str], body: bytes) -> None:
        self._auth.authenticate(headers, body)

    def identify(self, headers: Mapping[str, str]) -> Delivery:
        """What the headers claim; why it cannot be used, if it cannot (answered 400 once the
        delivery is authentic)."""
        event = headers.get(EVENT_HEADER, "")[:MAX_EVENT_CHARS]
        delivery = next((headers[name] for name in ID_HEADERS if headers.get(name)), None)
        unusable = None
        if not event:
            unusable = MISSING_EVENT
        elif delivery is None:
            unusable = MISSING_ID
        elif DELIVERY_ID.match(delivery) is None:
            unusable = BAD_ID
        return Delivery(event, delivery, unusable)

    def parse(self, delivery: Delivery, headers: Mapping[str, str], body: bytes) -> Any:
        # GitLab sends JSON only; its handlers validate the fields they read.
        return json_object(body, headers.get("content-type", ""))


def adapter(settings: Settings, *, clock: Callable[[], float] = time.time) -> Adapter:
    """The GitLab source for these settings; ``clock`` judges signatures' timestamps."""
    auth = GitLabAuth(settings.gitlab_webhook_secrets(), settings.gitlab_signing_key(), clock=clock)
    return GitLabAdapter(auth)
