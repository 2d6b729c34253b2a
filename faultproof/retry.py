"""The one retry policy of the services: exponential backoff with jitter, logged per state change.

A service that cannot reach a peer (the ledger, an oracle) retries forever, so the waits must grow
and be jittered (n oracles and agents reconnecting to a restarted ledger must not arrive in step),
and the log must say "unreachable" once and "reachable again" once, not once per attempt: an
operator reading the log of a ten-minute ledger outage wants two lines, not 1,200. The waits come
from tenacity (`wait_exponential` + `wait_random_exponential`: the jitter is kept at the cap too; a kept
library, pinned in pyproject.toml); this file
only counts attempts and decides when a line is worth writing.

`unless_stopped` is the other half of waiting for a peer that may never come back: a start-up that
retries (an oracle's or an agent's ledger bootstrap) must still end at once on SIGTERM/SIGINT.

This file must never sleep by itself (callers sleep for the delay it returns, so a loop that is
cancelled or woken early stays in charge) and never log a secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import TypeVar

from tenacity import RetryCallState, wait_exponential, wait_random_exponential


def backoff_delay(attempt: int, initial_s: float, max_s: float, jitter_s: float | None = None) -> float:
    """Seconds before attempt `attempt + 1` (attempt 1 is the first that failed): initial_s
    doubling per attempt up to max_s, plus a uniform jitter whose window widens with it (half the
    base wait, at most `jitter_s`, max_s / 4 by default), so a first retry stays quick and even
    capped waits are spread."""
    jitter = max_s / 4 if jitter_s is None else jitter_s
    wait = (wait_exponential(multiplier=initial_s, max=max_s)
            + wait_random_exponential(multiplier=initial_s / 2, max=jitter))
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = max(1, attempt)
    return float(wait(state))


class Reachability:
    """Tracks one peer seen by one retry loop. `failed(e)` returns how long to wait before the
    next attempt and logs only the first failure of a run; `succeeded()` logs once when a failing
    run ends, with how many attempts failed."""

    def __init__(self, what: str, logger: logging.Logger, *, initial_s: float = 0.2, max_s: float = 5.0,
                 jitter_s: float | None = None) -> None:
        self.what = what
        self.log = logger
        self._initial_s, self._max_s, self._jitter_s = initial_s, max_s, jitter_s
        self.failures = 0  # consecutive failed attempts (0 while reachable)

    @property
    def reachable(self) -> bool:
        return self.failures == 0

    def failed(self, error: object) -> float:
        self.failures += 1
        if self.failures == 1:
            self.log.warning("%s unreachable (%s); retrying with backoff", self.what, error)
        else:
            self.log.debug("%s still unreachable (attempt %d): %s", self.what, self.failures, error)
        return backoff_delay(self.failures, self._initial_s, self._max_s, self._jitter_s)

    def succeeded(self) -> None:
        if self.failures:
            self.log.warning("%s reachable again after %d failed attempts", self.what, self.failures)
        self.failures = 0


T = TypeVar("T")


async def unless_stopped(work: Awaitable[T], stop: asyncio.Event) -> tuple[bool, T | None]:
    """(True, result) once `work` is done; (False, None), `work` cancelled, if `stop` is set
    first. Errors of `work` propagate."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (task, stopped):
            if not t.done():
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t
    if task.cancelled():
        return False, None
    return True, task.result()
