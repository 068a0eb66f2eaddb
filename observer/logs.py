"""Structured logs: one JSON object a line, on standard output."""

from __future__ import annotations

import atexit
import json
import logging
import queue
import sys
from datetime import UTC, datetime
from logging.handlers import QueueHandler, QueueListener
from typing import Any

LOGGER = logging.getLogger("observer")
_listener: QueueListener | None = None


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


class _Handoff(QueueHandler):
    """Hands records as they are to the listener's thread, which formats and writes them.

    QueueHandler's own ``prepare`` formats the message on the caller's thread, the event loop,
    and drops ``exc_info``; the record stays in this process, so it needs neither.
    """

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


def configure(level: str) -> None:
    """Send the service's and uvicorn's logs through one JSON handler, on its own thread.

    Formatting and writing a line costs more than the rest of a webhook delivery's work; on a
    thread the event loop only builds the record and enqueues it. The thread drains the queue
    at exit, so lines logged while stopping are still written.
    """
    global _listener
    stop()
    output = logging.StreamHandler(sys.stdout)
    output.setFormatter(JsonFormatter())
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    handler = _Handoff(records)
    # The JSON line names neither source file, thread nor process: finding them on every record
    # is work for nothing (the logging HOWTO's "Optimization" section).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    for name in ("observer", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False
    _listener = QueueListener(records, output)
    _listener.start()
    atexit.unregister(stop)
    atexit.register(stop)


def stop() -> None:
    """Write what is queued and end the thread; a no-op when not started."""
    global _listener
    if _listener is not None:
        _listener.stop()
        _listener = None


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
