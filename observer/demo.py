"""Placeholder."""

from __future__ import annotations


def main(url: str, *, days: int, seed: int) -> int:
    return 0
