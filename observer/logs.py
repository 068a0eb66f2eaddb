"""Structured logs: one JSON object a line, on standard output."""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import math
import queue
import sys
import threading
import time
from datetime import UTC, datetime
from logging.handlers import QueueHandler
from typing import Any, NamedTuple, TextIO, TypeAlias

LOGGER = logging.getLogger("observer")
_writer: _Writer | None = None
# The handler configure() put behind the service's logger, and the writer's queue.
_handoff: _Handoff | None = None
_queued: queue.SimpleQueue[_Queued] | None = None
# How long the writer lets lines gather before writing them: the most a line is late.
WRITE_PAUSE = 0.02
# The most lines waiting for the writer. Past it a line is dropped rather than queued, so that
# a standard output that blocks (a pipe nobody reads, a stalled log collector) costs lines, not
# memory without end nor a stalled event loop. 10,000 lines are about two seconds of deliveries
# at full speed, enough to ride out a collector's hiccup, and at most about 10 MiB (a waiting
# line holds up to ~1 KiB).
QUEUE_LIMIT = 10_000
# How long the exit waits for the writer to empty the queue. Well under any orchestrator's grace
# period, long enough for a slow but moving log collector to take the last lines.
STOP_TIMEOUT = 5.0
# Lines dropped since the process started (what /metrics shows) and since the writer last said so.
_dropped = 0
_dropped_reported = 0


# json.dumps with an argument builds an encoder per call; one is enough.
_ENCODER = json.JSONEncoder(default=str)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        return _json_line(
            record.created,
            record.levelname.lower(),
            record.name,
            record.getMessage(),
            fields if isinstance(fields, dict) else None,
            self.formatException(record.exc_info) if record.exc_info else None,
        )


def _json_line(
    created: float,
    level: str,
    logger: str,
    message: str,
    fields: dict[str, Any] | None,
    exception: str | None = None,
) -> str:
    entry: dict[str, Any] = {
        "time": _stamp(created),
        "level": level,
        "logger": logger,
        "message": message,
    }
    if fields:
        entry.update(fields)
    if exception is not None:
        entry["exception"] = exception
    return _ENCODER.encode(entry)


def _stamp(created: float) -> str:
    """``datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")``, cheaper.

    The date and time to the second change once a second, not once a line: they are formatted
    once and kept. The fraction is rounded to microseconds as datetime rounds it, then cut to
    milliseconds as isoformat cuts it.
    """
    global _second
    fraction, whole = math.modf(created)
    micro = round(fraction * 1e6)
    if micro >= 1_000_000:
        whole, micro = whole + 1, micro - 1_000_000
    second = int(whole)
    if _second[0] != second or micro < 0:
        if micro < 0:  # before 1970: not worth keeping
            return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
        _second = (second, datetime.fromtimestamp(second, UTC).isoformat()[:19])
    return f"{_second[1]}.{micro // 1000:03d}+00:00"


# The second _stamp formatted last, and its text: only the writer's thread formats lines.
_second: tuple[int, str] = (-1, "")


class _Line(NamedTuple):
    """A line of the service's own, queued as it is: the writer formats it as a record's.

    Building a LogRecord and passing it down the logger's handlers costs the event loop more
    than the rest of the log line's work; once configure() has put the writer alone behind
    the service's logger, nothing else would see that record.
    """

    created: float
    level: int
    message: str
    fields: dict[str, Any]

    def text(self) -> str:
        return _json_line(
            self.created, _LEVEL_NAMES[self.level], LOGGER.name, self.message, self.fields
        )


_LEVEL_NAMES = {logging.INFO: "info", logging.WARNING: "warning"}
# What the writer's queue holds: None asks it to stop.
_Queued: TypeAlias = logging.LogRecord | _Line | None


class _Handoff(QueueHandler):
    """Hands records as they are to the writer's thread, which formats and writes them.

    QueueHandler's own ``prepare`` formats the message on the caller's thread, the event loop,
    and drops ``exc_info``; the record stays in this process, so it needs neither. Nothing is
    shared with the writer but the queue, which has its own lock: the handler's lock is not
    taken.
    """

    def __init__(self, records: queue.SimpleQueue[_Queued]) -> None:
        super().__init__(records)
        self._records = records

    def handle(self, record: logging.LogRecord) -> bool:
        passed = self.filter(record)
        if passed:
            _enqueue(self._records, record)
        return bool(passed)


def _enqueue(records: queue.SimpleQueue[_Queued], item: logging.LogRecord | _Line) -> None:
    # SimpleQueue has no bound of its own, and queue.Queue's costs every line a condition
    # variable: its size is read instead. Threads other than the loop log rarely, so the bound
    # may be passed by a line or two, and a drop counted by two threads at once lost.
    global _dropped
    if records.qsize() >= QUEUE_LIMIT:
        _dropped += 1
    else:
        records.put_nowait(item)


def lines_dropped() -> int:
    """Log lines dropped because the writer's queue was full, since the process started."""
    return _dropped


class _Writer:
    """Formats and writes queued records on its own thread, a batch at a time.

    Woken for every record, the thread would take the interpreter lock from the event loop
    each time the loop lets go of it (hashing a body, writing to a socket) and hold it for as
    long as there are records: the loop's work waits behind log lines. Pausing after the first
    record of a batch lets a burst gather, so there is one wake-up and one write for many lines;
    a line is written at most ``pause`` seconds after it was logged.
    """

    def __init__(
        self,
        records: queue.SimpleQueue[_Queued],
        output: logging.StreamHandler[TextIO],
        pause: float,
    ) -> None:
        self._records = records
        self._output = output
        self._pause = pause
        self._thread = threading.Thread(target=self._run, name="log writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Write everything logged before this call, then end the thread.

        An output that never drains (a pipe nobody reads) must not hold the exit: past
        ``STOP_TIMEOUT`` the lines still queued are lost with the daemon thread.
        """
        self._records.put_nowait(None)
        self._thread.join(STOP_TIMEOUT)

    def _run(self) -> None:
        while True:
            batch = [self._records.get()]
            time.sleep(self._pause)
            with contextlib.suppress(queue.Empty):
                while True:
                    batch.append(self._records.get_nowait())
            going_on = self._write(batch)
            # The queue was drained: the writer has caught up, and says what it could not write.
            self._report_dropped()
            if not going_on:
                return

    def _write(self, batch: list[_Queued]) -> bool:
        """Write the batch's lines up to the stop marker; False once it is reached."""
        items: list[logging.LogRecord | _Line] = []
        for item in batch:
            if item is None:
                break
            items.append(item)
        lines = []
        for item in items:
            try:
                text = item.text() if isinstance(item, _Line) else self._output.format(item)
            except Exception:
                self._output.handleError(_record(item))
            else:
                lines.append(text + self._output.terminator)
        if lines:
            try:
                self._output.stream.write("".join(lines))
                self._output.flush()
            except Exception:
                self._output.handleError(_record(items[0]))
        return len(items) == len(batch)

    def _report_dropped(self) -> None:
        global _dropped_reported
        dropped = _dropped
        if dropped == _dropped_reported or not LOGGER.isEnabledFor(logging.WARNING):
            return
        line = _Line(
            time.time(),
            logging.WARNING,
            "log lines dropped: standard output did not keep up",
            {"dropped": dropped - _dropped_reported, "queue_limit": QUEUE_LIMIT},
        )
        _dropped_reported = dropped
        self._write([line])


def _record(item: logging.LogRecord | _Line) -> logging.LogRecord:
    """A record for logging's own report of a line that could not be written."""
    if isinstance(item, logging.LogRecord):
        return item
    return LOGGER.makeRecord(
        LOGGER.name, item.level, "", 0, item.message, (), None, extra={"fields": item.fields}
    )


def configure(level: str) -> None:
    """Send the service's and uvicorn's logs through one JSON handler, on its own thread.

    Formatting and writing a line costs more than the rest of a webhook delivery's work; on a
    thread the event loop only builds the record and enqueues it. The thread drains the queue
    at exit, so lines logged while stopping are still written.
    """
    global _writer, _handoff, _queued
    stop()
    output = logging.StreamHandler(sys.stdout)
    output.setFormatter(JsonFormatter())
    records: queue.SimpleQueue[_Queued] = queue.SimpleQueue()
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
    _writer = _Writer(records, output, WRITE_PAUSE)
    _handoff, _queued = handler, records
    _writer.start()
    atexit.unregister(stop)
    atexit.register(stop)


def stop() -> None:
    """Write what is queued and end the thread; a no-op when not started."""
    global _writer, _handoff, _queued
    _handoff, _queued = None, None
    if _writer is not None:
        _writer.stop()
        _writer = None


def event(message: str, **fields: Any) -> None:
    _log(logging.INFO, message, fields)


def warning(message: str, **fields: Any) -> None:
    """Something an operator should look at: shown at LOG_LEVEL=warning."""
    _log(logging.WARNING, message, fields)


def request(status: int, message: str, /, **fields: Any) -> None:
    """One answered request: refused ones at warning, so LOG_LEVEL=warning shows what needs
    attention (a wrong secret, a body over the limit, a pipeline's invalid event)."""
    _log(logging.WARNING if status >= 400 else logging.INFO, message, fields)


def _log(level: int, message: str, fields: dict[str, Any]) -> None:
    handlers = LOGGER.handlers
    if (
        _queued is not None
        and len(handlers) == 1
        and handlers[0] is _handoff
        and not LOGGER.filters
        and not LOGGER.disabled
    ):
        # Only the writer would see the record: it gets the line without one.
        if LOGGER.isEnabledFor(level):
            _enqueue(_queued, _Line(time.time(), level, message, fields))
        return
    LOGGER.log(level, message, extra={"fields": fields})
