"""The process-memory store's worst case at given settings: every kind full of its largest values.

    python benchmarks/state_size.py [--cache 50000] [--seen 100000] [--sample 500]

Each kind is filled with ``--sample`` values of the largest shape observer writes into it
(a history with every row and mark it may keep, a push record at its commit cap, a shipment of
the 1,000 commits ``/api/event`` admits, eight carriers per commit...), the memory they take is
measured with tracemalloc and multiplied by the kind's capacity. Values are built the way a
snapshot or Redis gives them back (fresh strings, nothing shared), so the figure is an upper
bound for the shapes assumed: repository names of 60 characters, branch names of 60, GitHub's
ids and shas. Keys and values longer than that (a sender may choose its own) cost more bytes
but not more keys.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from observer.leadtime import commitlist, history, knowledge
from observer.state.base import kinds
from observer.state.memory import MemoryStore

REPOSITORY = "an-organisation-name/" + "r" * 39
T = 1.7e9
Value = Callable[[int], tuple[str, Any]]


def sha(number: int) -> str:
    return f"{number:040x}"


def full_history(number: int) -> dict[str, Any]:
    rows = []
    for row in range(history.MAX_ENTRIES + history.MAX_WAITING):
        status = "success" if row % 2 else "failure"
        due = T + 30 if row < history.MAX_WAITING else None
        key = f"deployment:{number * 10**6 + row:012d}:{status}"
        rows.append([T + row, status, key, sha(number * 10**6 + row), due, 0])
    marks = [f"deployment:{number * 10**6 + n:012d}:success" for n in range(history.MAX_MARKS)]
    return {
        "entries": rows,
        "recovered": marks,
        "consumed": marks,
        "settled": marks,
        "judged": marks,
        "failing": marks,
    }


def push_record(number: int) -> dict[str, Any]:
    shipped = [(sha(number * 10**4 + c), T + c) for c in range(2048)]
    return knowledge._push_record("", shipped)


SHAPES: dict[str, Value] = {
    "delivery": lambda n: (f"{n:08x}-0000-11ee-8000-000000000000", 1),
    "event": lambda n: (f"push:{REPOSITORY}:refs/heads/main:{sha(n)}:{sha(n + 1)}", 1),
    "observed": lambda n: (f"{REPOSITORY} production pull:{n}", 1),
    "history": lambda n: (f"{REPOSITORY}{n} production", full_history(n)),
    "commit": lambda n: (f"{REPOSITORY} {sha(n)}", T + n),
    "push": lambda n: (f"{REPOSITORY} {sha(n)}", push_record(n)),
    "carried": lambda n: (f"{REPOSITORY} {sha(n)}", [sha(n * 8 + i) for i in range(8)]),
    "pull": lambda n: (
        f"{REPOSITORY} {sha(n)}",
        {"number": n, "merged_at": T, "merge_commit_sha": sha(n), "first_commit_time": T},
    ),
    "branch": lambda n: (f"{REPOSITORY} feature/{'b' * 52}{n}", T),
    "shipment": lambda n: (
        f"api:deployment:{REPOSITORY}:{'i' * 100}{n}:success",
        commitlist.encode((sha(n * 1000 + c), T + c) for c in range(1000)),
    ),
    "incident": lambda n: (f"incident:issue:{10**9 + n}:opened", T),
    # A pull request's fix (a revert of another) and, alike in size, who first shipped one.
    "failure": lambda n: (f"fix {REPOSITORY} {10**9 + n}", ["revert", 10**9 + n]),
    # A repository's incidents (the larger of its two lists): 100 periods.
    "timeline": lambda n: (
        f"incidents {REPOSITORY}{n}",
        [[T + i, T + i + 3600.0] for i in range(100)],
    ),
    "ready": lambda n: (str(10**9 + n), T),
    # A pull request's candidate first review: its time, start, repository and team labels.
    "review": lambda n: (
        str(10**9 + n),
        [T, T, REPOSITORY, [f"team-{'t' * 40}{i}" for i in range(3)], True],
    ),
    "redelivery": lambda n: (f"hook-{n}", 10**12),
    # One key per environment with lead-time work waiting: its due time and version.
    "pending": lambda n: (f"{REPOSITORY}{n} production", [T, 1]),
    # A committed unit's token (observer.state.unit).
    "committed": lambda n: (f"{n:024x}", 1),
}


async def per_value(store: MemoryStore, kind: str, shape: Value, sample: int) -> float:
    # Through JSON, as a snapshot or Redis would give them: nothing shared between values.
    encoded = [json.dumps(shape(n)) for n in range(sample)]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for text in encoded:
        key, value = json.loads(text)
        await store.put_many(kind, {key: value})
    cost = (tracemalloc.get_traced_memory()[0] - before) / sample
    tracemalloc.stop()
    return cost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=int, default=50_000, help="CACHE_SIZE")
    parser.add_argument("--seen", type=int, default=100_000, help="DEDUP_CAPACITY")
    parser.add_argument("--sample", type=int, default=500)
    args = parser.parse_args()
    table = kinds(seen=args.seen, cache=args.cache)
    total = 0.0
    print(f"{'kind':<11} {'capacity':>9} {'bytes each':>11} {'MiB at most':>12}")
    for name, kind in table.items():
        keys = kind.capacity
        sample = min(args.sample, keys)
        each = asyncio.run(per_value(MemoryStore(table), name, SHAPES[name], sample))
        most = each * keys / 2**20
        total += most
        print(f"{name:<11} {kind.capacity:>9,} {each:>11,.0f} {most:>12,.1f}")
    print(f"{'total':<11} {'':>9} {'':>11} {total:>12,.1f}")


if __name__ == "__main__":
    main()
