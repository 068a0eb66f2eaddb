"""GitHub's webhook deliveries: signed with X-Hub-Signature-256, named by X-GitHub-Event."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from pydantic import ValidationError

from observer.settings import Settings
from observer.sources.adapter import Delivery, Refused
from observer.sources.github.events import handlers, model
from observer.sources.github.signature import verify
from observer.sources.payload import JSON, media_type, must_be_object, parse_json

FORM = "application/x-www-form-urlencoded"
MAX_DELIVERY_ID = 128


class GitHub:
    name = "github"
    path = "/webhook"

    def __init__(self, settings: Settings) -> None:
        self._secrets = settings.webhook_secrets()
        self.events = handlers(settings)

    def precheck(self, headers: Mapping[str, str]) -> None:
        if "x-hub-signature-256" not in headers:
            raise Refused(401, "missing X-Hub-Signature-256 header")

    def authenticate(self, headers: Mapping[str, str], body: bytes) -> None:
        if not verify(self._secrets, body, headers.get("x-hub-signature-256")):
            raise Refused(401, "signature does not match")

    def identify(self, headers: Mapping[str, str]) -> Delivery:
        event = headers.get("x-github-event", "")
        delivery = headers.get("x-github-delivery", "")
        unusable = None
        if not event or not delivery:
            unusable = "missing X-GitHub-Event or X-GitHub-Delivery header"
        elif len(delivery) > MAX_DELIVERY_ID:
            unusable = "X-GitHub-Delivery is too long"
        return Delivery(event, delivery, unusable)

    def parse(self, delivery: Delivery, headers: Mapping[str, str], body: bytes) -> Any:
        """A JSON body validated straight into its event's model when it can be, else a dict.

        Building the whole body as Python objects first (``json.loads``) costs more than
        validating it, and most of a GitHub payload is never read. When the model refuses the
        body, the dict goes to the same handler, which answers as it always does: its error
        messages and fields do not depend on the parser chosen.
        """
        content_type = media_type(headers.get("content-type", ""))
        if content_type == JSON:
            known = model(delivery.event)
            if known is not None:
                try:
                    return known.model_validate_json(body)
                except ValidationError:
                    pass
            return must_be_object(parse_json(body))
        if content_type == FORM:
            return must_be_object(parse_json(_form_payload(body)))
        raise Refused(415, f"content type must be {JSON} or {FORM}")


def _form_payload(body: bytes) -> str:
    try:
        fields = parse_qs(body.decode("utf-8"), strict_parsing=True, max_num_fields=100)
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, "body is not a valid form") from None
    values = fields.get("payload")
    if not values:
        raise Refused(400, "form has no payload field")
    return values[0]


def adapter(settings: Settings) -> GitHub:
    return GitHub(settings)
