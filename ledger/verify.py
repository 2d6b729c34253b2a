"""Replay a ledger database from genesis and check everything (`faultproof ledger verify`).

For every stored row, in height order: the row's height is the next one (storage order), the stored
hash is the hash of the stored entry, the entry decodes canonically and names that height, links to
the previous entry's hash, carries a valid ledger signature, and its transaction is accepted by
`state.py` at the entry's time with the same amount paid. After the last entry the balances table
must equal the balances the entries imply. The first failure is reported with the height of the
entry at fault (for a cached balance: the entry that last changed that account).

Ed25519 checks dominate (about 43 µs each; a payout entry has 1 + k of them). They run in threads
(libsodium releases the GIL) one chunk ahead of the replay, which looks the results up; every
signature is still checked, and a lookup miss is verified in-line.

The service reuses `replay_store` at start-up, so a database that does not verify does not serve.
This module never writes to the database.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from faultproof.encoding import hash_id
from faultproof.errors import DecodeError, FaultproofError
from faultproof.identity import domain_tag
from faultproof.identity import verify as ed25519_verify
from faultproof.messages import Genesis, LedgerEntry, PayoutBody, QuorumCertificate, SignedEntry
from ledger.state import IntegrityError, LedgerState, Verifier
from ledger.store import TRIGGERS, EntryRow, LedgerStore

_ENTRY_TAG = domain_tag(LedgerEntry.NAME)
_PAYOUT_TAG = domain_tag(PayoutBody.NAME)
CHUNK = 1024


@dataclass
class ReplayResult:
    state: LedgerState | None  # the state after the last good entry (None if genesis is bad)
    entries: int  # entries that verified
    problem: IntegrityError | None
    seconds: float
    warnings: list[str]

    @property
    def ok(self) -> bool:
        return self.problem is None and self.state is not None

    @property
    def rate(self) -> float:
        return self.entries / self.seconds if self.seconds > 0 else 0.0


def _sig_key(tag: bytes, message: bytes, signature: bytes, public_key: bytes) -> bytes:
    return hashlib.sha256(len(tag).to_bytes(2, "big") + tag + public_key + signature + message).digest()


Job = tuple[bytes, bytes, bytes, bytes]  # (tag, message, signature, public key)


def _verify_jobs(jobs: list[Job]) -> set[bytes]:
    """Thread: keys of the jobs whose signature verifies (libsodium runs without the GIL)."""
    return {_sig_key(*job) for job in jobs if ed25519_verify(*job)}


class _LookupVerifier:
    def __init__(self, fallback: Verifier) -> None:
        self.good: set[bytes] = set()
        self.fallback = fallback

    def __call__(self, tag: bytes, message: bytes, signature: bytes, public_key: bytes) -> bool:
        if _sig_key(tag, message, signature, public_key) in self.good:
            return True
        return self.fallback(tag, message, signature, public_key)


Decoded = tuple[EntryRow, "LedgerEntry | str"]  # the entry, or why it does not decode


def _decode(row: EntryRow) -> Decoded:
    try:
        return row, LedgerEntry.decode(row.entry)
    except DecodeError as e:
        return row, str(e)


def _jobs(decoded: list[Decoded], ledger_key: bytes | None) -> list[Job]:
    jobs: list[Job] = []
    for row, entry in decoded:
        if ledger_key is not None:
            jobs.append((_ENTRY_TAG, row.entry, row.signature, ledger_key))
        if isinstance(entry, LedgerEntry) and isinstance(entry.tx, QuorumCertificate):
            body = entry.tx.body.encode()
            jobs.extend((_PAYOUT_TAG, body, s.signature, s.oracle_id) for s in entry.tx.signatures)
    return jobs


def _chunks(rows: Iterator[EntryRow]) -> Iterator[list[EntryRow]]:
    chunk: list[EntryRow] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def replay_store(store: LedgerStore, *, workers: int | None = None, verifier: Verifier = ed25519_verify,
                 check_balances: bool = True, progress: Callable[[int], None] | None = None) -> ReplayResult:
    """Replay and check every entry of `store`. Never raises for a bad database: reports it.

    workers: threads checking signatures ahead of the replay (default: one per CPU; 0: none, every
    signature is checked in-line by the replay)."""
    started = time.perf_counter()
    warnings: list[str] = []
    missing = set(TRIGGERS) - set(store.triggers_present())
    if missing:
        warnings.append(f"append-only triggers missing: {sorted(missing)}")
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    lookup = _LookupVerifier(verifier)
    state: LedgerState | None = None
    count = 0
    last_touch: dict[str, int] = {}

    def result(problem: IntegrityError | None) -> ReplayResult:
        return ReplayResult(state, count, problem, time.perf_counter() - started, warnings)

    # The genesis (height 0) carries the ledger key; later chunks have their signatures checked
    # by the threads while this thread decodes the next chunk and replays the previous one.
    ledger_key: bytes | None = None
    first = store.row(0)
    if first is not None:
        _, genesis_entry = _decode(first)
        if isinstance(genesis_entry, LedgerEntry) and isinstance(genesis_entry.tx, Genesis):
            ledger_key = genesis_entry.tx.ledger_key
    pool = ThreadPoolExecutor(workers, thread_name_prefix="verify") if workers > 0 else None
    try:
        pending: deque[tuple[list[Decoded], list[Future[set[bytes]]]]] = deque()
        chunks = _chunks(store.iter_rows())
        while True:
            chunk = next(chunks, None)
            if chunk is not None:
                decoded = [_decode(row) for row in chunk]
                futures: list[Future[set[bytes]]] = []
                if pool is not None:
                    jobs = _jobs(decoded, ledger_key)
                    futures = [pool.submit(_verify_jobs, jobs[i::workers]) for i in range(workers)]
                pending.append((decoded, futures))
                if len(pending) < 2:
                    continue
            if not pending:
                break
            decoded, futures = pending.popleft()
            lookup.good = set().union(*(f.result() for f in futures))
            for item in decoded:
                try:
                    state = _replay_row(state, item, lookup, last_touch)
                except IntegrityError as e:
                    return result(e)
                count += 1
            if progress is not None:
                progress(count)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    if state is None:
        return result(IntegrityError(0, "the database holds no entries"))
    meta_id = store.get_meta("ledger_id")
    if meta_id is not None and meta_id != state.ledger_id:
        return result(IntegrityError(0, "meta ledger_id is not the genesis hash"))
    if check_balances:
        cached = store.balances()
        for account in sorted(set(cached) | set(state.balances)):
            want, have = state.balances.get(account, 0), cached.get(account)
            if have != want:
                h = last_touch.get(account, 0)
                return result(IntegrityError(h, f"cached balance of {account!r} is {have}, the entries give {want} "
                                                f"(last changed by entry {h})"))
    state.verifier = verifier
    return result(None)


def _replay_row(state: LedgerState | None, item: Decoded, verifier: Verifier,
                last_touch: dict[str, int]) -> LedgerState:
    row, entry = item
    expected = 0 if state is None else state.height + 1
    if row.height != expected:
        raise IntegrityError(expected, f"storage order: expected height {expected}, the next row has {row.height}")
    if hash_id("ledger-entry", row.entry) != row.entry_hash:
        raise IntegrityError(row.height, "the stored entry_hash is not the hash of the stored entry")
    if isinstance(entry, str):
        raise IntegrityError(row.height, f"the stored entry does not decode: {entry}")
    try:
        signed = SignedEntry(entry=entry, signature=row.signature)
    except FaultproofError as e:
        raise IntegrityError(row.height, f"the stored signature is malformed: {e}") from None
    if entry.height != row.height:
        raise IntegrityError(row.height, f"storage order: row {row.height} holds the entry of height {entry.height}")
    if state is None:
        new = LedgerState.from_genesis_entry(signed, verifier=verifier)
        for account in new.balances:
            last_touch[account] = 0
        return new
    effect = state.apply_entry(signed, entry_bytes=row.entry)
    for t in effect.transfers:
        last_touch[t.source] = last_touch[t.dest] = row.height
    return state
