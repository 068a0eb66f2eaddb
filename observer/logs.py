"""Structured logs: one JSON object a line, on standard output."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

LOGGER = logging.getLogger("observer")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(level: str) -> None:
    """Send the service's and uvicorn's logs through one JSON handler."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    for name in ("observer", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False


def event(message: str, **fields: Any) -> None:
    LOGGER.info(message, extra={"fields": fields})


def warning(message: str, **fields: Any) -> None:
    """Something an operator should look at: shown at LOG_LEVEL=warning."""
    LOGGER.warning(message, extra={"fields": fields})


def request(status: int, message: str, /, **fields: Any) -> None:
    """One answered request: refused ones at warning, so LOG_LEVEL=warning shows what needs
    attention (a wrong secret, a body over the limit, a pipeline's invalid event)."""
    level = logging.WARNING if status >= 400 else logging.INFO
    LOGGER.log(level, message, extra={"fields": fields})
