"""Proof verification off the event loop, in front of faultproof.zk.

Owns only the hand-off (job in, bool out, latency measured). groth16py holds the GIL while it
verifies, so a thread would still stall the loop for every pairing: the default is faultproof.zk's
process pool (`ProofPool`, warm workers with prepared verifiers). A thread pool is kept for an
injected verify function (tests, benchmarks of the node without pairings).

It must never decide what is verified (the pipeline builds the `ProofJob` with rebuilt signals)
and never run a pairing on the asyncio loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from faultproof.errors import FaultproofError
from oracle.pipeline import ProofJob

VerifyFn = Callable[[bytes, bytes, Sequence[int]], bool]


def verify_sync(job: ProofJob, fn: VerifyFn) -> bool:
    """Never raises: anything odd (bad key, bad proof bytes) is simply 'does not verify'."""
    try:
        return bool(fn(job.vkey, job.proof, job.signals.as_list()))
    except Exception:  # noqa: BLE001
        return False


class ProofVerifier:
    def __init__(self, workers: int = 1, fn: VerifyFn | None = None,
                 on_latency: Callable[[float], None] | None = None) -> None:
        self._on_latency = on_latency
        self._fn = fn
        self._threads: ThreadPoolExecutor | None = None
        self._pool = None
        if fn is not None:
            self._threads = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="verify")
        else:
            from faultproof.zk.pool import ProofPool

            self._pool = ProofPool(workers)

    async def verify(self, job: ProofJob) -> bool:
        started = time.perf_counter()
        if self._pool is not None:
            try:
                ok = await self._pool.verify(job.vkey, job.proof, job.signals)
            except FaultproofError:  # a registered key that does not load: nothing verifies
                ok = False
        else:
            assert self._threads is not None and self._fn is not None
            ok = await asyncio.get_running_loop().run_in_executor(self._threads, verify_sync, job, self._fn)
        if self._on_latency is not None:
            self._on_latency(time.perf_counter() - started)
        return ok

    def close(self) -> None:
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)
        if self._pool is not None:
            self._pool.close()
