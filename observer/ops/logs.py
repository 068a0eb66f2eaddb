"""Structured logs: one line a record, on standard output, written by a listener thread.

A line is a JSON object (``LOG_FORMAT=json``, for log collectors) or, for a person at a terminal
(``LOG_FORMAT=console``), the same fields as text: time, level, logger and message, then each
field as ``name=value``.

Formatting and writing a line costs more than the rest of a webhook delivery's work: the event
loop only builds the record and puts it on a bounded queue (the stdlib's ``QueueHandler``), and a
``QueueListener`` thread formats and writes. ``writing()`` starts it and stops it; the serve
function holds it for as long as it serves.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import math
import queue
import re
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from logging.handlers import QueueHandler, QueueListener
from typing import Any, TextIO

LOGGER = logging.getLogger("observer")
# The loggers whose lines go through the listener.
LOGGERS = ("observer", "uvicorn", "uvicorn.error")
# How long the listener lets lines gather before writing them: the most a line is late.
WRITE_PAUSE = 0.02
# The most lines waiting for the listener. Past it a line is dropped rather than queued, so that
# a standard output that blocks (a pipe nobody reads, a stalled log collector) costs lines, not
# memory without end nor a stalled event loop. 10,000 lines are about two seconds of deliveries
# at full speed, enough to ride out a collector's hiccup, and at most about 10 MiB (a waiting
# line holds up to ~1 KiB).
QUEUE_LIMIT = 10_000
# How long the exit waits for the listener to empty the queue. Well under any orchestrator's
# grace period, long enough for a slow but moving log collector to take the last lines.
STOP_TIMEOUT = 5.0
DROPPED = "log lines dropped: standard output did not keep up"

# json.dumps with an argument builds an encoder per call; one is enough.
_ENCODER = json.JSONEncoder(default=str)


class JsonFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        # The second last formatted, and its text: the date and time to the second change once
        # a second, not once a line. Only the listener's thread formats.
        self._second: tuple[int, str] = (-1, "")

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self._stamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict) and fields:
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _ENCODER.encode(entry)

    def _stamp(self, created: float) -> str:
        """``datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")``, cheaper.

        The fraction is rounded to microseconds as datetime rounds it, then cut to milliseconds
        as isoformat cuts it.
        """
        fraction, whole = math.modf(created)
        micro = round(fraction * 1e6)
        if micro >= 1_000_000:
            whole, micro = whole + 1, micro - 1_000_000
        second = int(whole)
        if self._second[0] != second or micro < 0:
            if micro < 0:  # before 1970: not worth keeping
                return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
            self._second = (second, datetime.fromtimestamp(second, UTC).isoformat()[:19])
        return f"{self._second[1]}.{micro // 1000:03d}+00:00"


class ConsoleFormatter(JsonFormatter):
    """The JSON line's fields for a person to read: ``TIME LEVEL LOGGER: MESSAGE  name=value …``.

    A value that is a plain word is written as is; anything else (spaces, quotes, ``=``, an
    empty string, a number or a list) is written as JSON, so a line still splits unambiguously.
    """

    def format(self, record: logging.LogRecord) -> str:
        head = (
            f"{self._stamp(record.created)} {record.levelname.lower():<7} "
            f"{record.name}: {record.getMessage()}"
        )
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict) and fields:
            head += "  " + " ".join(
                f"{name}={_console_value(value)}" for name, value in fields.items()
            )
        if record.exc_info:
            # The traceback on the lines that follow, as a terminal shows it best.
            head += "\n" + self.formatException(record.exc_info)
        return head


_WORD = re.compile(r"[^\s\"'=]+")


def _console_value(value: Any) -> str:
    if isinstance(value, str) and _WORD.fullmatch(value):
        return value
    return _ENCODER.encode(value)


FORMATTERS: dict[str, type[JsonFormatter]] = {"json": JsonFormatter, "console": ConsoleFormatter}


class Handoff(QueueHandler):
    """Puts records on the bounded queue as they are; a record past its bound is dropped, and
    counted.

    QueueHandler's own ``prepare`` formats the message on the caller's thread, the event loop,
    and drops ``exc_info``: the record stays in this process, so it needs neither. The queue
    has its own lock, so the handler's is not taken.
    """

    def __init__(self, records: queue.SimpleQueue[Any]) -> None:
        super().__init__(records)
        self._records = records
        # Read by /metrics (observer_log_lines_dropped_total) and by the listener's warning.
        # Threads other than the loop log rarely: a drop counted by two at once may be lost.
        self.dropped = 0

    def handle(self, record: logging.LogRecord) -> bool:
        passed = self.filter(record)
        if passed:
            self.emit(record)
        return bool(passed)

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record

    def enqueue(self, record: logging.LogRecord) -> None:
        # The bound is kept here: queue.Queue's own costs every line a condition variable, and
        # the listener a wake-up; SimpleQueue's size is read instead. Threads other than the
        # loop log rarely, so the bound may be passed by a line or two.
        if self._records.qsize() >= QUEUE_LIMIT:
            self.dropped += 1
        else:
            self._records.put_nowait(record)


class _Output(logging.StreamHandler[TextIO]):
    """Formats the listener's records, and writes their lines when the listener has caught up.

    Once it has caught up, it also says how many lines were dropped since it last said so.
    """

    def __init__(self, stream: TextIO, handoff: Handoff, formatter: logging.Formatter) -> None:
        super().__init__(stream)
        self.setFormatter(formatter)
        self._handoff = handoff
        self._lines: list[str] = []
        self._reported = 0

    def handle(self, record: logging.LogRecord) -> bool:
        # Only the listener's thread writes, so the handler's lock is not taken: held while a
        # write blocks on an output that does not drain, it would hold logging's own flush of
        # every handler at exit.
        passed = self.filter(record)
        if passed:
            self.emit(record)
        return bool(passed)

    def flush(self) -> None:
        """Nothing: the listener's thread writes and flushes; a flush from another thread (at
        exit) would wait on an output that does not drain."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._lines.append(self.format(record) + self.terminator)
        except Exception:
            self.handleError(record)

    def write_pending(self) -> None:
        lines, self._lines = self._lines, []
        dropped = self._handoff.dropped
        if dropped != self._reported and LOGGER.isEnabledFor(logging.WARNING):
            fields = {"dropped": dropped - self._reported, "queue_limit": QUEUE_LIMIT}
            warning = LOGGER.makeRecord(
                LOGGER.name, logging.WARNING, "", 0, DROPPED, (), None, extra={"fields": fields}
            )
            lines.append(self.format(warning) + self.terminator)
            self._reported = dropped
        if lines:
            try:
                self.stream.write("".join(lines))
                self.stream.flush()
            except Exception:
                sys.stderr.write("observer: log lines could not be written\n")


class _Listener(QueueListener):
    """The stdlib's listener, taking the queue a batch at a time, and whose stop does not hold
    the exit on an output that never drains.

    Woken for every record, the thread would take the interpreter lock from the event loop each
    time the loop lets go of it (hashing a body, writing to a socket) and hold it for as long as
    there are records. Pausing after the first record of a batch lets a burst gather, so there
    is one wake-up and one write for many lines; a line is written at most ``WRITE_PAUSE`` late.
    """

    def __init__(self, records: queue.SimpleQueue[Any], output: _Output) -> None:
        super().__init__(records, output)
        self._records = records
        self._output = output
        self._batch: collections.deque[Any] = collections.deque()

    def dequeue(self, block: bool) -> Any:
        if not self._batch:
            # Caught up: what was formatted is written before waiting for more.
            self._output.write_pending()
            self._batch.append(self._records.get(block))
            time.sleep(WRITE_PAUSE)
            with contextlib.suppress(queue.Empty):
                while True:
                    self._batch.append(self._records.get_nowait())
        return self._batch.popleft()

    def handle(self, record: logging.LogRecord) -> None:
        self._output.handle(record)

    def stop(self) -> None:
        """Write everything logged before this call, then end the thread.

        An output that never drains (a pipe nobody reads) must not hold the exit: past
        ``STOP_TIMEOUT`` the lines still queued are lost with the listener's daemon thread.
        """
        stopping = threading.Thread(target=self._stop, name="log listener stop", daemon=True)
        stopping.start()
        stopping.join(STOP_TIMEOUT)

    def _stop(self) -> None:
        super().stop()
        for handler in self.handlers:
            if isinstance(handler, _Output):
                handler.write_pending()


@contextlib.contextmanager
def writing(
    level: str, stream: TextIO | None = None, log_format: str = "json"
) -> Iterator[Handoff]:
    """Send the service's and uvicorn's logs through one listener until the block ends, then
    write what is queued. ``log_format`` is ``json`` or ``console``."""
    records: queue.SimpleQueue[Any] = queue.SimpleQueue()
    handoff = Handoff(records)
    output = _Output(
        stream if stream is not None else sys.stdout, handoff, FORMATTERS[log_format]()
    )
    # The line names neither source file, thread nor process: finding them on every record
    # is work for nothing (the logging HOWTO's "Optimization" section).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    kept = {name: _replace(logging.getLogger(name), handoff, level) for name in LOGGERS}
    listener = _Listener(records, output)
    listener.start()
    try:
        yield handoff
    finally:
        listener.stop()
        for name, (handlers, propagate) in kept.items():
            logger = logging.getLogger(name)
            logger.handlers[:] = handlers
            logger.propagate = propagate


def _replace(
    logger: logging.Logger, handler: logging.Handler, level: str
) -> tuple[list[logging.Handler], bool]:
    kept = (list(logger.handlers), logger.propagate)
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False
    return kept


def lines_dropped() -> int:
    """Log lines dropped because the listener's queue was full, since logging started."""
    return sum(handler.dropped for handler in LOGGER.handlers if isinstance(handler, Handoff))


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
    # What LOGGER.log(level, message, extra={"fields": fields}) does, without looking for a
    # caller the JSON line does not name, nor copying ``extra`` key by key: a line a delivery.
    if LOGGER.isEnabledFor(level):
        record = logging.LogRecord(LOGGER.name, level, "", 0, message, None, None)
        record.fields = fields
        LOGGER.handle(record)
