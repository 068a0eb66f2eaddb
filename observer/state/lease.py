"""Work done under a store lock that is renewed while the work runs.

A lock frees itself after its time to live, so that a replica killed while holding it does not
block the work for ever. Work that outlasts it (a GitHub rate limit can hold a request for up to
``GITHUB_MAX_RATE_LIMIT_WAIT``) would then run beside another replica's. A small task renews
the lock every third of its time to live; when a renewal finds it taken or expired, the work
is stopped (``LockLost``) rather than go on unguarded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from observer.state.base import Store, StoreUnavailable

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


class LockLost(Exception):
    """The lock expired or was taken while its holder worked: the work was stopped."""


async def hold(
    store: Store,
    name: str,
    token: str,
    ttl: float,
    work: Awaitable[T],
    *,
    sleep: Sleep = asyncio.sleep,
) -> T:
    """Run ``work`` in this task while a small task renews the lock ``name`` held with ``token``.

    The work stays in the caller's task (its name and context are the caller's); a renewal
    that finds the lock lost cancels that task, and the cancellation becomes ``LockLost``.
    """
    holder = asyncio.current_task()
    assert holder is not None
    lost = False

    async def renew() -> None:
        nonlocal lost
        while True:
            await sleep(ttl / 3)
            try:
                if await store.renew(name, token, ttl):
                    continue
            except StoreUnavailable:
                # Tried again at the next third: the lock lasts a whole ttl from the last renewal.
                continue
            lost = True
            holder.cancel()
            return

    renewer = asyncio.create_task(renew())
    try:
        return await work
    except asyncio.CancelledError:
        # Only the renewer's cancellation becomes LockLost; anyone else's goes on.
        if lost and holder.uncancel() == 0:
            raise LockLost(name) from None
        raise
    finally:
        renewer.cancel()
        await asyncio.gather(renewer, return_exceptions=True)
