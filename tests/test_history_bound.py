"""A production environment's history stays bounded and cheap however many deployments burst in."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

from observer.leadtime.history import MAX_ENTRIES, MAX_WAITING, Entry, History
from tests.conftest import Service
from tests.story import REPO, deployment_status

PRODUCTION = {"repository": REPO, "environment": "production"}


def waiting_success(number: int) -> Entry:
    return Entry(float(number), "success", f"s{number}", f"sha{number}", due=1e12)


def test_waiting_work_past_the_bound_drops_the_oldest_and_says_which() -> None:
    history = History.from_json(None)
    dropped = []
    for number in range(MAX_WAITING + 5):
        placed = history.insert(waiting_success(number))
        assert placed is not None
        dropped += placed.dropped
    assert [entry.key for entry in dropped] == [f"s{n}" for n in range(5)]
    assert len(history.rows) == MAX_ENTRIES
    assert len(history.waiting()) == MAX_WAITING
    # A late success older than every waiting one is the oldest: it is the one given up.
    placed = history.insert(waiting_success(-1))
    assert placed is not None and [entry.key for entry in placed.dropped] == ["s-1"]
    assert len(history.waiting()) == MAX_WAITING


def test_a_repeated_key_is_refused_whatever_its_time() -> None:
    history = History.from_json(None)
    assert history.insert(Entry(5.0, "success", "k")) is not None
    assert history.insert(Entry(9.0, "success", "k")) is None
    assert [entry.time for entry in history.entries] == [5.0]


def full_scan(entries: list[Entry], recovered: set[str], consumed: set[str]) -> list[float]:
    """Recovery as a scan of the whole history: what each insertion must agree with."""
    found, run = [], []
    for entry in entries:
        if not entry.succeeded:
            run.append(entry)
            continue
        if run and entry.key not in recovered and not any(f.key in consumed for f in run):
            found.append(entry.time - run[0].time)
            recovered.add(entry.key)
            consumed.update(failure.key for failure in run)
        run = []
    return found


def never(_: Entry) -> str | None:
    return None


def settle_all(history: History) -> list[float]:
    """Every success settled, in time order, none judged a change failure: the recoveries."""
    found = []
    for entry in history.entries:
        if entry.succeeded:
            settled = history.settle(entry.key, never)
            if settled is not None and settled.recovery is not None:
                found.append(settled.recovery)
    return found


def test_recoveries_decided_at_settle_match_a_full_scan_whatever_the_arrival_order() -> None:
    generator = random.Random(7)
    for _ in range(200):
        statuses = [
            Entry(float(generator.randrange(40)), generator.choice(["success", "failure"]), f"k{n}")
            for n in range(generator.randrange(1, 30))
        ]
        history = History.from_json(None)
        reference: list[Entry] = []
        for entry in statuses:  # delivered in random order, ties kept in arrival order
            assert history.insert(entry) is not None
            reference.append(entry)
            history = History.from_json(json.loads(json.dumps(history.to_json())))
        reference.sort(key=lambda known: known.time)
        assert settle_all(history) == full_scan(reference, set(), set())
        # Settled once: a second look (a replica, a restart) decides nothing.
        assert all(history.settle(e.key, never) is None for e in history.entries if e.succeeded)


def test_a_burst_into_production_keeps_the_history_at_its_bound(
    start: Callable[..., Service], tmp_path: Path
) -> None:
    snapshot = tmp_path / "state"
    service = start(settle_seconds=3600, state_url=f"file://{snapshot}")
    burst = MAX_WAITING + 25
    for number in range(burst):
        payload = deployment_status(number + 1, "c1", number / 100)
        assert service.deliver("deployment_status", payload).status_code == 200
    metrics = service.metrics()
    assert metrics.get("dora_deployments_total", status="success", **PRODUCTION) == burst
    assert metrics.get("observer_enrichment_dropped_total") == 25
    service.client.__exit__(None, None, None)  # stop: the file store writes its snapshot
    families = json.loads(snapshot.read_text())["families"]
    [[_, _, history]] = families["history"]
    assert len(history["entries"]) == MAX_WAITING
    assert all(row[4] is not None for row in history["entries"])


def test_a_late_waiting_success_among_the_oldest_statuses_stays_and_splits_the_run() -> None:
    history = History.from_json(None)
    for number in range(MAX_ENTRIES + 1):
        history.insert(Entry(float(number), "failure", f"f{number}"))
    # f0 is past the bound; a success at 0.5 is older than every status kept, but it waits.
    placed = history.insert(Entry(0.5, "success", "s", "sha", due=1e12))
    assert placed is not None and placed.index == 0
    settled = history.settle("s", never)
    assert settled is not None and settled.recovery is None  # the failure before it is gone
    # The next success cuts f1 (past the bound, done): its run is f2 to f100.
    placed = history.insert(Entry(MAX_ENTRIES + 1.0, "success", "t"))
    assert placed is not None
    settled = history.settle("t", never)
    assert settled is not None and settled.recovery == MAX_ENTRIES + 1.0 - 2.0
    assert [entry.key for entry in history.entries][:2] == ["s", "f2"]


def test_a_row_written_before_forges_were_kept_is_githubs_and_rescheduling_keeps_the_forge() -> (
    None
):
    old = History.from_json({"entries": [[5.0, "success", "k", "sha5", 1e12, 0]]})
    assert old.entries[0].forge == "github"
    history = History.from_json(None)
    history.insert(Entry(5.0, "success", "k", "sha5", due=1e12, forge="gitlab"))
    history.insert(Entry(6.0, "success", "p", "sha6", due=1e12, forge=None))
    history.reschedule("k", 2e12, 1)
    history.reschedule("p", None, 0)
    assert [(e.key, e.due, e.attempts, e.forge) for e in history.entries] == [
        ("k", 2e12, 1, "gitlab"),
        ("p", None, 0, None),
    ]
