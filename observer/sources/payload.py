"""Reading a delivery's body as JSON: the one decoding every source shares."""

from __future__ import annotations

import json
from typing import Any

from observer.sources.adapter import Refused

JSON = "application/json"


def media_type(content_type: str) -> str:
    """The media type of a Content-Type header's value, without parameters, lower-cased."""
    return content_type.split(";", 1)[0].strip().lower()


def parse_json(data: bytes | str) -> Any:
    try:
        return json.loads(data)
    except RecursionError:
        raise Refused(400, "body is nested too deeply") from None
    except ValueError as error:
        # JSONDecodeError, bad UTF-8 and integers too long to convert are all ValueErrors.
        raise Refused(400, f"body is not valid JSON: {_first_line(error)}") from None


def json_object(body: bytes, content_type: str) -> dict[str, Any]:
    """A JSON object body; a sender that names no content type is read as JSON too."""
    if media_type(content_type) not in (JSON, ""):
        raise Refused(415, f"content type must be {JSON}")
    return must_be_object(parse_json(body))


def must_be_object(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise Refused(400, "payload is not a JSON object")
    return payload


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0][:200]


def json_object_or_list(body: bytes, content_type: str) -> Any:
    """A JSON body that is an object or a list of them (checked by the caller's model)."""
    if media_type(content_type) not in (JSON, ""):
        raise Refused(415, f"content type must be {JSON}")
    return parse_json(body)
