"""Prometheus Alertmanager (``POST /alertmanager``): alerts that are incidents.

Alertmanager's ``webhook_config`` sends ``Authorization: Bearer <API_TOKEN>`` when its
``http_config.authorization`` says so; the body is a notification of payload version 4
(observer.sources.alertmanager.notification). Alertmanager sends no delivery id: each alert's
fingerprint and start are its identity, and the notification's ``status`` is the event.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from observer.domain import Result
from observer.recorder import Recorder
from observer.settings import Settings
from observer.sources.adapter import Adapter, Delivery, Handler, Named, Refused
from observer.sources.alertmanager.matchers import parse as parse_matchers
from observer.sources.alertmanager.notification import Incidents, Notification
from observer.sources.bearer import Bearer
from observer.sources.payload import json_object

# Outside the table: the name of a delivery refused before its status is read.
UNREAD = "notification"
SUPPORTED_VERSION = "4"


class Alertmanager:
    name = "alertmanager"
    path = "/alertmanager"

    def __init__(self, bearer: Bearer, incidents: Incidents) -> None:
        self._bearer = bearer
        self._incidents = incidents
        handler: Handler = self._handle
        self.events: Mapping[str, Handler] = {"firing": handler, "resolved": handler}

    def precheck(self, headers: Mapping[str, str]) -> None:
        self._bearer.precheck(headers)

    def authenticate(self, headers: Mapping[str, str], body: bytes) -> None:
        self._bearer.authenticate(headers, body)

    def identify(self, headers: Mapping[str, str]) -> Delivery:
        return Delivery(UNREAD, None)

    def parse(self, delivery: Delivery, headers: Mapping[str, str], body: bytes) -> Any:
        document = json_object(body, headers.get("content-type", ""))
        version = document.get("version")
        if version != SUPPORTED_VERSION:
            claimed = repr(version)[:40]
            raise Refused(
                400,
                f"payload version {claimed} is not supported: Alertmanager's webhook payload "
                f"version {SUPPORTED_VERSION} is",
            )
        status = document.get("status")
        if not isinstance(status, str) or status not in self.events:
            raise Refused(400, "status must be firing or resolved")
        return Named(str(status), document)

    async def _handle(self, payload: Any, recorder: Recorder) -> Result:
        # A ValidationError names the fields; the pipeline answers 400 with them.
        notification = Notification.model_validate(payload)
        return await self._incidents.record(notification, recorder)


def adapter(settings: Settings) -> Adapter:
    incidents = Incidents(parse_matchers(settings.incident_alerts), settings.alert_repository_label)
    return Alertmanager(Bearer(settings), incidents)
