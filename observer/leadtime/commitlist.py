"""Commits with their times as one string: how the store keeps a push's or a shipment's commits.

The store holds tens of thousands of these. As a list of ``[sha, time]`` pairs a commit costs
about 190 bytes of process memory; in one string of ``sha time`` pairs, about 52. Values
written as lists by earlier versions are still read.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def encode(commits: Iterable[tuple[str, float]]) -> str:
    # repr keeps a float exact, and neither a sha nor a number holds a space.
    return " ".join(f"{sha} {time!r}" for sha, time in commits)


def decode(value: Any) -> list[tuple[str, float]]:
    if isinstance(value, str):
        parts = value.split()
        return [(sha, float(time)) for sha, time in zip(parts[::2], parts[1::2], strict=True)]
    return [(str(sha), float(time)) for sha, time in value or []]
