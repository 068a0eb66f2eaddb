"""Bounded label values: an allowlist of repositories and caps that fold new values into 'other'."""

from __future__ import annotations

from observer.metrics.definitions import Metrics

OTHER = "other"


class CappedValues:
    """Distinct values kept as they are up to ``limit``; later new ones become 'other'."""

    def __init__(self, name: str, limit: int, metrics: Metrics) -> None:
        self._seen: set[str] = set()
        self._limit = limit
        self._folded = metrics.labels_folded.labels(label=name)

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        if len(self._seen) >= self._limit:
            self._folded.inc()
            return OTHER
        self._seen.add(value)
        return value


class LabelPolicy:
    """Turns a repository or environment name into the label value it is exported under."""

    def __init__(
        self,
        allowlist: tuple[str, ...],
        max_repositories: int,
        max_environments: int,
        metrics: Metrics,
    ) -> None:
        self._exact = frozenset(item for item in allowlist if not item.endswith("/*"))
        self._owners = tuple(item[:-1] for item in allowlist if item.endswith("/*"))
        self._allow_all = not allowlist
        self._repositories = CappedValues("repository", max_repositories, metrics)
        self._environments = CappedValues("environment", max_environments, metrics)

    def repository(self, full_name: str) -> str | None:
        """The label for ``full_name`` (lower-cased), or None when it is not on the allowlist.

        GitHub treats repository names without regard to case, so the label does too: a
        pipeline that writes ``Octo/App`` lands on the same series as GitHub's ``octo/app``.
        """
        name = full_name.lower()
        if self._allow_all:
            return self._repositories(name)
        if name in self._exact or name.startswith(self._owners):
            # An explicit allowlist is the operator's own bound, so it is not capped again.
            return name
        return None

    def environment(self, name: str) -> str:
        return self._environments(name.lower())
