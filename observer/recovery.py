"""Failed-deployment recovery: how long a repository and environment stayed failed."""

from __future__ import annotations

from datetime import datetime

Key = tuple[str, str]


class RecoveryClock:
    """Remembers, per repository and environment, the first failure since the last success.

    Events may arrive out of order, so each is placed by its own timestamp: a failure older
    than the last success seen does not start a recovery, and a success older than the first
    failure does not end one.
    """

    def __init__(self) -> None:
        self._first_failure: dict[Key, datetime] = {}
        self._last_success: dict[Key, datetime] = {}

    def failed(self, key: Key, time: datetime) -> None:
        last_success = self._last_success.get(key)
        if last_success is not None and time <= last_success:
            return
        first = self._first_failure.get(key)
        if first is None or time < first:
            self._first_failure[key] = time

    def succeeded(self, key: Key, time: datetime) -> float | None:
        """Seconds since the first failure this success recovers from, if any."""
        last_success = self._last_success.get(key)
        if last_success is None or time > last_success:
            self._last_success[key] = time
        first = self._first_failure.get(key)
        if first is None or time < first:
            return None
        del self._first_failure[key]
        return (time - first).total_seconds()
