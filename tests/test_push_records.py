"""Pushes and shipments are kept compactly and bounded; values of the older shape still read."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from observer.leadtime import commitlist
from observer.leadtime.knowledge import MAX_PUSH_COMMITS, Knowledge
from observer.state.base import KINDS
from observer.state.memory import MemoryStore
from tests.conftest import Service
from tests.story import deployment_status, push, sha
from tests.test_lead_time import HOUR, deliver_ok, lead_times, settle


def test_a_push_longer_than_the_record_keeps_ships_its_newest_commits_and_is_counted(
    start: Callable[..., Service],
) -> None:
    service = start()  # no GITHUB_TOKEN: the push chain tells what shipped
    deliver_ok(service, "push", push([("c0", 1)]))
    deliver_ok(service, "deployment_status", deployment_status(1, "c0", 2))
    assert lead_times(settle(service)) == (1, 1 * HOUR)
    # 120 commits in one push, each an hour before the deployment at 200 h.
    long = [(f"n{number}", 200 - 1 - number / 1000) for number in range(MAX_PUSH_COMMITS + 20)]
    deliver_ok(service, "push", push(long, before="c0"))
    deliver_ok(service, "deployment_status", deployment_status(2, long[-1][0], 200))
    metrics = settle(service)
    count, _ = lead_times(metrics)
    assert count == 1 + MAX_PUSH_COMMITS
    assert metrics.get("observer_enrichment_compare_truncated_total") == 1


def test_a_push_record_of_the_older_shape_still_chains() -> None:
    store = MemoryStore(KINDS)
    record = {"before": sha("c1"), "commits": [[sha("c2"), 7200.0], [sha("c3"), 10800.0]]}

    async def chain() -> list[str] | None:
        await store.put_many("push", {f"o/r {sha('c3')}": record})
        found = await Knowledge(store).push_chain("o/r", sha("c3"), sha("c1"))
        return None if found is None else [commit.sha for commit in found.commits]

    assert asyncio.run(chain()) == [sha("c2"), sha("c3")]


def test_commits_read_back_exactly_from_either_shape() -> None:
    commits = [(sha("a"), 1_700_000_000.0), (sha("b"), 1_700_000_000.25)]
    assert commitlist.decode(commitlist.encode(commits)) == commits
    assert commitlist.decode([list(pair) for pair in commits]) == commits
    assert commitlist.decode(None) == []
