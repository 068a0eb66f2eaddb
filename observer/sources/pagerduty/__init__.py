"""PagerDuty v3 webhook subscriptions (``POST /pagerduty``): incidents.

Each delivery carries one event, signed in ``X-PagerDuty-Signature`` with the subscription's
secret (``PAGERDUTY_WEBHOOK_SECRET``); ``X-Webhook-Id`` is the delivery's id, the same on every
attempt of it, and ``event.event_type`` names the event
(observer.sources.pagerduty.events counts two of them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from observer.settings import Settings
from observer.sources.adapter import Adapter, Delivery, Handler, Named, Refused
from observer.sources.pagerduty.events import Handlers, Services
from observer.sources.pagerduty.signature import verify
from observer.sources.payload import json_object

SIGNATURE = "x-pagerduty-signature"
DELIVERY = "x-webhook-id"
MAX_DELIVERY_ID = 128
# Outside the table: the name of a delivery refused before its event type is read.
UNREAD = "event"
MAX_EVENT_TYPE = 64


class PagerDuty:
    name = "pagerduty"
    path = "/pagerduty"

    def __init__(self, secret: str | None, services: Services) -> None:
        self._secret = secret.encode() if secret is not None else None
        handlers = Handlers(services)
        self.events: Mapping[str, Handler] = {
            "incident.triggered": handlers.triggered,
            "incident.resolved": handlers.resolved,
        }

    def precheck(self, headers: Mapping[str, str]) -> None:
        if self._secret is None:
            message = "PAGERDUTY_WEBHOOK_SECRET is not configured on this observer"
            raise Refused(401, f"signature refused: {message}")
        if not headers.get(SIGNATURE):
            raise Refused(401, "missing X-PagerDuty-Signature header")

    def authenticate(self, headers: Mapping[str, str], body: bytes) -> None:
        self.precheck(headers)
        assert self._secret is not None  # the precheck refuses without one
        if not verify(self._secret, body, headers[SIGNATURE]):
            raise Refused(401, "signature does not match")

    def identify(self, headers: Mapping[str, str]) -> Delivery:
        delivery = headers.get(DELIVERY) or None
        if delivery is not None and len(delivery) > MAX_DELIVERY_ID:
            return Delivery(UNREAD, None, unusable="X-Webhook-Id is too long")
        # Without the header, the incident's id still counts each event once.
        return Delivery(UNREAD, delivery)

    def parse(self, delivery: Delivery, headers: Mapping[str, str], body: bytes) -> Any:
        document = json_object(body, headers.get("content-type", ""))
        event = document.get("event")
        event_type = event.get("event_type") if isinstance(event, dict) else None
        if not isinstance(event_type, str) or not event_type:
            raise Refused(400, "payload has no event.event_type: not a v3 webhook")
        return Named(event_type[:MAX_EVENT_TYPE], document)


def adapter(settings: Settings) -> Adapter:
    secret = settings.pagerduty_webhook_secret
    return PagerDuty(
        secret.get_secret_value() if secret is not None else None,
        Services.of(settings.pagerduty_services),
    )
