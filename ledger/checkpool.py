"""QC batches decoded and their signatures checked in worker processes (DESIGN §16, issue 15).

Before any rule runs, a batch of 64 QCs costs about 3 ms of Python decoding and 256 Ed25519
checks. Both are pure functions of the request body, so with `CheckPool(n)` they run in n spawned
processes, each with its own GIL: the ledger's process only parses HTTP, applies the rules and
writes. (Threads do not do this: decoding holds the GIL, and a thread that leaves libsodium waits
for the GIL behind the rules after every signature.)

A worker answers with the decoded QCs (pickled: built through the message constructors in our own
child process, so the parent does not validate them a second time), each QC's canonical bytes (the
entry reuses them) and, per signature, whether it verifies. The service records the verified ones
in its SignatureCache; the rules still check every signature (a lookup for these, a full verify
for anything else), so nothing a worker says can make a transaction valid that is not.

This module must never apply a rule, touch the state or the database, or speak HTTP. A worker never
outlives the ledger: it exits within a second of its parent's death, even after kill -9, and it
leaves SIGINT to the parent (which shuts the pool down).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from faultproof.encoding import pack, unpack
from faultproof.errors import FaultproofError, Reason
from faultproof.identity import domain_tag
from faultproof.identity import verify as ed25519_verify
from faultproof.messages import PayoutBody, QcBatch, QuorumCertificate

PAYOUT_TAG = domain_tag(PayoutBody.NAME)
PARENT_POLL_S = 1.0

# What a worker finds in a batch: the QCs, each one's canonical bytes, each signature's verdict.
Checked = tuple[tuple[QuorumCertificate, ...], list[bytes], list[tuple[bool, ...]]]


def decode_qc_batch(raw: bytes) -> tuple[tuple[QuorumCertificate, ...], list[bytes]]:
    """A msgpack QcBatch's QCs and each QC's canonical bytes (a canonical array's items are
    canonical, and `pack` is the one encoder, so no entry re-encodes its QC). Refuses an empty batch."""
    wire: Any = unpack(raw, QcBatch.MAX_SIZE)
    batch = QcBatch.from_wire(wire)  # checked: wire is [type, version, [qc, ...]]
    if not batch.qcs:
        raise FaultproofError(Reason.MISSING_FIELD, "qc-batch.qcs: at least one quorum certificate")
    return batch.qcs, [pack(w) for w in wire[2]]


def qc_verdicts(qc: QuorumCertificate) -> tuple[bool, ...]:
    """Whether each of the QC's signatures is its signer's over the body (what the rules ask)."""
    body = qc.body.encode()
    return tuple(ed25519_verify(PAYOUT_TAG, body, s.signature, s.oracle_id) for s in qc.signatures)


def check_batch(raw: bytes) -> Checked:
    """Decode a msgpack QcBatch and check every signature in it. Raises FaultproofError."""
    qcs, raws = decode_qc_batch(raw)
    return qcs, raws, [qc_verdicts(qc) for qc in qcs]


# --------------------------------------------------------------------------- worker side


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os._exit(0)  # the ledger is gone (kill -9 leaves the pool's pipes open): nothing to do here


def _init_worker(parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent,), name="parent-watch", daemon=True).start()


def _ready() -> int:
    return os.getpid()


def _check_job(raw: bytes) -> tuple[bool, Any]:
    # FaultproofError does not pickle: a refusal travels as (reason, message).
    try:
        return True, check_batch(raw)
    except FaultproofError as e:
        return False, (e.reason.value, e.message)


# --------------------------------------------------------------------------- parent side


class CheckPool:
    """`workers` processes running `check_batch` for the ledger service."""

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)
        # spawn: never fork a process that runs asyncio and SQLite threads (and holds the serve lock).
        self._executor = ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_init_worker, initargs=(os.getpid(),))

    async def start(self) -> set[int]:
        """Spawn the workers now (each imports the message code once), not on the first batch.
        Returns the pids that answered (all of them, unless one was still busy answering another)."""
        loop = asyncio.get_running_loop()
        return set(await asyncio.gather(*(loop.run_in_executor(self._executor, _ready) for _ in range(self.workers))))

    async def check(self, raw: bytes) -> Checked:
        ok, value = await asyncio.get_running_loop().run_in_executor(self._executor, _check_job, raw)
        if not ok:
            reason, message = value
            raise FaultproofError(Reason(reason), message)
        result: Checked = value
        return result

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
