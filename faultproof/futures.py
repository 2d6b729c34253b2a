"""Settling an asyncio future from another thread (a worker, the ingest engine, the gossip thread).

The one rule: the future is touched only on its own loop, through `call_soon_threadsafe`, and the
first outcome stands; a future already done by then (settled, cancelled, or its waiter gone) is
left as it is, never set twice (which would raise InvalidStateError on the loop).

This file must never block the calling thread, run the loop, or swallow a closed loop's
RuntimeError: whether anyone can still be waiting is the caller's to judge.
"""

from __future__ import annotations

import asyncio
from typing import Any


def settle_from_thread(fut: asyncio.Future[Any], result: Any = None, exc: BaseException | None = None) -> None:
    """Settle `fut` on its loop, from any thread: with `exc` if given, else with `result`.

    Raises RuntimeError if the future's loop is closed."""

    def settle() -> None:
        if fut.done():
            return
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(result)

    fut.get_loop().call_soon_threadsafe(settle)
