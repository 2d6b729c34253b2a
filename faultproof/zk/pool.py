"""Proving and verifying off the asyncio loop (DESIGN §7): a process pool with warm workers.

Each worker process keeps the proving keys it has loaded (once, from the circuit cache) and the
prepared verifiers it has built, keyed by cache path and verification key; the parent sends only
paths, input dicts, proofs and signals. groth16py is single-threaded and holds the GIL, so a
process per core is what uses the machine: one pool of `os.cpu_count()` workers per process is the
intended shape (an oracle verifies ~2x faster with 2 workers than inline). Proofs queue in the
parent ordered by deadline (one in flight per worker); concurrent single verifies are coalesced
into batch checks (`faultproof.zk.batch`) while the workers are busy.

Errors: a FaultproofError raised in a worker is re-raised in the caller with the same reason (the
exception is carried as (reason, message), since FaultproofError does not pickle). `verify` never
raises on garbage proofs, like `faultproof.zk.verify`.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
import math
import multiprocessing
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from faultproof.errors import FaultproofError, Reason
from faultproof.zk import circuit
from faultproof.zk.circuit import BuiltCircuit, ProvingError
from faultproof.zk.statement import PublicSignals, Witness

_BUILT: dict[str, BuiltCircuit] = {}  # per worker process


def _worker_built(path: str) -> BuiltCircuit:
    b = _BUILT.get(path)
    if b is None:
        b = circuit._load(Path(path))
        _BUILT[path] = b
    return b


def _init_worker(preload: Sequence[str]) -> None:
    for path in preload:
        b = _worker_built(path)
        if b.backend == "groth16py":
            b.proving_key()


def _prove_job(path: str, inputs: dict[str, Any], check: bool, engine: str = "auto"
               ) -> tuple[str, Any, str]:
    try:
        return ("ok", circuit.prove(_worker_built(path), inputs, check=check, engine=engine), "")
    except FaultproofError as e:
        return ("err", e.reason.value, e.message)


def _verify_job(vkey: bytes, items: list[tuple[bytes, list[int]]], engine: str = "auto") -> list[bool]:
    """A chunk in one batch check (`circuit.verify_many`: mcl, split on failure)."""
    try:
        return circuit.verify_many(vkey, items, engine=engine)
    except FaultproofError:
        return [False] * len(items)


_Pending = tuple[bytes, list[int], "asyncio.Future[bool]"]


def _normalise(signals: Any) -> list[int]:
    if isinstance(signals, PublicSignals):
        return signals.as_list()
    if isinstance(signals, Sequence) and not isinstance(signals, str | bytes):
        return list(signals)
    return []  # verifies False


class ProofPool:
    """An asyncio-friendly pool of prover/verifier processes.

        async with ProofPool(preload=[built]) as pool:
            proof = await pool.prove(built, witness)
            ok = await pool.verify(vkey, proof, signals)
            oks = await pool.verify_many(vkey, [(proof, signals), ...])
    """

    def __init__(self, workers: int | None = None, *, preload: Sequence[BuiltCircuit] = (),
                 verify_batch: int = 64) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.verify_batch = verify_batch
        self._pending: dict[bytes, list[_Pending]] = {}
        self._inflight = 0
        self._proofs: list[tuple[float, int, str, dict[str, Any], bool, str, Any]] = []  # heap
        self._seq = itertools.count()
        self._proving = 0
        # spawn: never fork a process that may run asyncio, trio or libp2p threads.
        self._executor = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=([str(b.path) for b in preload],),
        )

    async def __aenter__(self) -> ProofPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.close)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    async def prove(
        self, built: BuiltCircuit, witness: Witness | Mapping[str, Any], *, check: bool = True,
        deadline: float | None = None, engine: str = "auto",
    ) -> bytes:
        """Prove in a worker. At most one proof per worker runs at a time; the others wait in
        order of `deadline` (any comparable number, e.g. a claim's last valid ms; earliest
        first, None after every deadline, ties in arrival order), so in a burst the claims that
        expire first are proved first. engine: the witness engine (`circuit.prove_unchecked`)."""
        inputs = witness.to_input() if isinstance(witness, Witness) else dict(witness)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[tuple[str, Any, str]] = loop.create_future()
        key = deadline if deadline is not None else math.inf
        heapq.heappush(self._proofs,
                       (key, next(self._seq), str(built.path), inputs, check, engine, fut))
        self._pump_proofs(loop)
        status, value, message = await fut
        if status == "ok":
            return bytes(value)
        reason = Reason(value)
        if reason is Reason.BAD_PROOF:
            raise ProvingError(message)
        raise FaultproofError(reason, message)

    @property
    def queued_proofs(self) -> int:
        return sum(1 for item in self._proofs if not item[-1].done())

    def _pump_proofs(self, loop: asyncio.AbstractEventLoop) -> None:
        while self._proofs and self._proving < self.workers:
            _, _, path, inputs, check, engine, fut = heapq.heappop(self._proofs)
            if fut.done():  # the caller gave up
                continue
            self._proving += 1
            job = loop.run_in_executor(self._executor, _prove_job, path, inputs, check, engine)
            job.add_done_callback(functools.partial(self._proved, fut=fut, loop=loop))

    def _proved(self, job: asyncio.Future[tuple[str, Any, str]], *,
                fut: asyncio.Future[tuple[str, Any, str]], loop: asyncio.AbstractEventLoop) -> None:
        self._proving -= 1
        if not fut.done():
            if job.cancelled():
                fut.cancel()
            elif job.exception() is not None:
                fut.set_exception(job.exception())  # type: ignore[arg-type]
            else:
                fut.set_result(job.result())
        self._pump_proofs(loop)

    async def verify(
        self, vkey: bytes | BuiltCircuit, proof: bytes, public_signals: Sequence[int] | PublicSignals
    ) -> bool:
        """Verify one proof. Concurrent calls are coalesced: while every worker is busy, proofs
        under the same key queue up and leave as one batch check of up to `verify_batch`, so a
        node under load pays about one Miller loop per proof (an idle pool sends at once).

        Garbage proofs or signals give False; a malformed key raises DecodeError."""
        canonical = vkey.vkey if isinstance(vkey, BuiltCircuit) else circuit._canonical_cached(vkey)
        circuit.prepared_verifier(canonical)  # a bad key is a DecodeError here
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bool] = loop.create_future()
        self._pending.setdefault(canonical, []).append((proof, _normalise(public_signals), fut))
        self._flush(loop)
        return await fut

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        while self._pending and self._inflight < self.workers:
            canonical, queue = next(iter(self._pending.items()))
            take = queue[: self.verify_batch]
            del queue[: len(take)]
            if not queue:
                del self._pending[canonical]
            take = [t for t in take if not t[2].done()]  # callers that gave up
            if not take:
                continue
            self._inflight += 1
            job = loop.run_in_executor(
                self._executor, _verify_job, canonical, [(p, sig) for p, sig, _ in take]
            )
            job.add_done_callback(functools.partial(self._settle, take=take, loop=loop))

    def _settle(
        self, job: asyncio.Future[list[bool]], *, take: list[_Pending],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._inflight -= 1
        if job.cancelled():
            error: BaseException | None = asyncio.CancelledError()
        else:
            error = job.exception()
        for i, (_, _, fut) in enumerate(take):
            if fut.done():
                continue
            if error is not None:
                fut.set_exception(error)
            else:
                fut.set_result(bool(job.result()[i]))
        self._flush(loop)

    async def verify_many(
        self,
        vkey: bytes | BuiltCircuit,
        items: Sequence[tuple[bytes, Sequence[int] | PublicSignals]],
        *,
        chunk: int = 64,
        engine: str = "auto",
    ) -> list[bool]:
        """Verify many proofs under one key, spread over the workers in chunks (IPC per chunk).

        Garbage proofs or signals give False; a malformed key raises DecodeError."""
        canonical = vkey.vkey if isinstance(vkey, BuiltCircuit) else circuit._canonical_cached(vkey)
        circuit.prepared_verifier(canonical)  # a bad key is a DecodeError here, not N x False
        if not items:
            return []
        normalised = [(proof, _normalise(signals)) for proof, signals in items]
        size = max(1, min(chunk, -(-len(normalised) // self.workers)))
        loop = asyncio.get_running_loop()
        futures = [
            loop.run_in_executor(self._executor, _verify_job, canonical, normalised[i : i + size],
                                 engine)
            for i in range(0, len(normalised), size)
        ]
        results: list[bool] = []
        for part in await asyncio.gather(*futures):
            results.extend(part)
        return results
