"""Every source observer hears, each served by the receiving pipeline at its adapter's path."""

from __future__ import annotations

from collections.abc import Callable

from observer.settings import Settings
from observer.sources import alertmanager, pagerduty
from observer.sources.adapter import Adapter
from observer.sources.github import adapter as github
from observer.sources.gitlab import adapter as gitlab

ADAPTERS: tuple[Callable[[Settings], Adapter], ...] = (
    github.adapter,
    gitlab.adapter,
    alertmanager.adapter,
    pagerduty.adapter,
)
