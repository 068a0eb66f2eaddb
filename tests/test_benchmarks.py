"""The benchmark scripts still run against the code they measure.

They are not timed here (figures come from running them by hand, see docs/benchmarks.md); these
runs only catch a script left behind by a change to the service's internals.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_state_worst_case_is_computed_for_every_kind() -> None:
    shown = run("benchmarks/state_size.py", "--cache", "500", "--seen", "500", "--sample", "20")
    for kind in ("delivery", "history", "push", "commit", "carried", "shipment", "total"):
        assert kind in shown


def test_the_exposition_benchmark_renders_both_ways() -> None:
    shown = run("benchmarks/exposition.py", "--sizes", "100", "--repeat", "1")
    assert "OM+gzip" in shown


def test_the_log_line_benchmark_writes_every_line() -> None:
    assert "0 dropped" in run("benchmarks/log_lines.py", "--lines", "400", "--rounds", "1")


def test_the_gitlab_calls_benchmark_counts_two_calls_once_the_previous_deployment_is_known() -> (
    None
):
    shown = run("benchmarks/gitlab_calls.py", "--deployments", "3")
    assert "first deployment (Deployments API asked): 3 calls" in shown
    assert "median 2, max 2 calls; lead time sum exact" in shown


@pytest.mark.parametrize(
    "script",
    [
        "throughput.py",
        "memory.py",
        "teams.py",
        "state_size.py",
        "exposition.py",
        "soak.py",
        "log_lines.py",
        "gitlab_calls.py",
    ],
)
def test_every_benchmark_starts(script: str) -> None:
    assert "usage:" in run(f"benchmarks/{script}", "--help")
