"""The ledger service: group commit of transactions, the signing key, consistent reads.

One writer task owns the in-memory `LedgerState` and the SQLite writer connection. Submissions
queue up; the writer takes everything queued (up to `max_batch`), applies each transaction in order
through `state.py` (each sees the ones before it), signs the new entries, writes the whole batch and
the balances it changed in one durable transaction, and only then answers every submitter: an
acknowledged transaction is on disk, a refusal is final. While one batch is being fsynced (in a
worker thread) the next one queues up, which is what makes durable commits cheap under load.

Readers never see a batch that is not yet durable: `view()` waits while a batch is in flight, and
entries are served only up to the committed height.

Ed25519 checks of quorum certificates are the most expensive part of a payout; `precheck` (called
by the HTTP handler) runs them in a small thread pool (libsodium releases the GIL, so this uses the
other cores while the event loop keeps parsing requests and the writer fsyncs) and remembers the
signatures that verified, so the rules' own check is a lookup. The rules still run on every
signature: one that is not in the cache is verified in-line by the writer. A QC batch
(`submit_batch`) goes to the check processes instead when the service has them (`ledger serve`
does, one per core: `ledger/checkpool.py`): decoding a batch holds the GIL, so only processes take
it and the batch's signature checks off this process.

This module must never decide a rule itself (that is `state.py`), nor speak HTTP (`http.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from faultproof.encoding import hash_id, pack
from faultproof.errors import FaultproofError, Reason
from faultproof.identity import Identity, domain_tag
from faultproof.identity import verify as ed25519_verify
from faultproof.messages import (
    LEDGER_TX_TYPES,
    Genesis,
    LedgerEntry,
    Message,
    QuorumCertificate,
    Receipt,
    SignedEntry,
    SignedHead,
)
from faultproof.metrics import register_build_info
from ledger.checkpool import PAYOUT_TAG as _PAYOUT_TAG
from ledger.checkpool import CheckPool, decode_qc_batch
from ledger.economics import REWARDS
from ledger.state import EXTERNAL, FREE, PAID, PREMIUMS, Effect, LedgerState, tx_kind
from ledger.store import EntryRow, LedgerStore, StoreError
from ledger.verify import replay_store

log = logging.getLogger("faultproof.ledger.service")
_ENTRY_TAG = domain_tag(LedgerEntry.NAME)
RECENT_ENTRIES = 8192  # served to followers from memory


def _resolve(part: list[tuple[QuorumCertificate, asyncio.Future[None]]]) -> None:
    for _, future in part:
        if not future.done():
            future.set_result(None)


def _resolve_from_thread(loop: asyncio.AbstractEventLoop, part: list[tuple[QuorumCertificate, asyncio.Future[None]]],
                         _job: object) -> None:
    with contextlib.suppress(RuntimeError):  # the loop closed while the job ran (shutdown)
        loop.call_soon_threadsafe(_resolve, part)


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class SignatureCache:
    """Remembers (tag, message, signature, key) tuples that verified; a pure function's cache.

    The key is the tuple itself: a hit means these exact bytes verified before, and it costs no
    hashing of its own (a bytes object keeps its hash, and a QC's body bytes are computed once)."""

    def __init__(self, capacity: int = 1 << 15) -> None:
        self.capacity = capacity
        self._good: OrderedDict[tuple[bytes, bytes, bytes, bytes], None] = OrderedDict()
        self._lock = threading.Lock()

    def verify(self, tag: bytes, message: bytes, signature: bytes, public_key: bytes) -> bool:
        key = (tag, message, signature, public_key)
        if key in self._good:
            return True
        ok = ed25519_verify(tag, message, signature, public_key)
        if ok:
            self._remember(key)
        return ok

    def remember_qc(self, qc: QuorumCertificate, verdicts: Sequence[bool]) -> None:
        """Record the signatures of `qc` that a check process found valid (`checkpool.qc_verdicts`)."""
        body = qc.body.encode()
        with self._lock:
            for s, ok in zip(qc.signatures, verdicts, strict=True):
                if ok:
                    self._good[(_PAYOUT_TAG, body, s.signature, s.oracle_id)] = None
            self._trim()

    def _remember(self, key: tuple[bytes, bytes, bytes, bytes]) -> None:
        with self._lock:
            self._good[key] = None
            self._trim()

    def _trim(self) -> None:
        while len(self._good) > self.capacity:
            self._good.popitem(last=False)

    def precheck_qc(self, qc: QuorumCertificate) -> None:
        body = qc.body.encode()
        for s in qc.signatures:
            self.verify(_PAYOUT_TAG, body, s.signature, s.oracle_id)


@dataclass(frozen=True)
class Accepted:
    """The answer to an accepted submission: its entry (the existing one for a repeated payout)."""

    entry: SignedEntry
    signed_bytes: bytes
    existing: bool
    effect: Effect


@dataclass
class _Submission:
    tx: Message
    raw: bytes | None  # the tx's canonical bytes when the caller has them (a msgpack request body)
    future: asyncio.Future[Accepted]


def entry_bytes(entry: LedgerEntry, tx_bytes: bytes) -> bytes:
    """LedgerEntry's canonical bytes, reusing the transaction's: a canonical array is its header
    followed by its items' canonical encodings, so the (large) transaction is never re-encoded."""
    return (b"\x98" + pack(LedgerEntry.TYPE_ID) + pack(LedgerEntry.VERSION) + pack(entry.ledger_id)
            + pack(entry.height) + pack(entry.prev_hash) + pack(entry.time_ms) + tx_bytes + pack(entry.paid))


class LedgerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.tx = Counter("faultproof_ledger_tx", "Transactions by kind and result",
                          ["kind", "result"], registry=self.registry)
        self.rejected = Counter("faultproof_ledger_rejected", "Refused transactions by reason",
                                ["reason"], registry=self.registry)
        self.batch_size = Histogram("faultproof_ledger_batch_size", "Entries per group commit",
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024), registry=self.registry)
        self.commit_seconds = Histogram("faultproof_ledger_commit_seconds", "Durable write time per batch",
                                        registry=self.registry)
        self.height = Gauge("faultproof_ledger_height", "Committed height", registry=self.registry)
        self.build_info = register_build_info(self.registry, "ledger")
        self.pool = Gauge("faultproof_ledger_balance", "Balance per account class", ["account"], registry=self.registry)


class LedgerService:
    def __init__(self, store: LedgerStore, state: LedgerState, ledger_key: Identity, *,
                 clock: Callable[[], int] = wall_clock_ms, max_batch: int = 1024,
                 cache: SignatureCache | None = None, verify_threads: int = 2, check_processes: int = 0) -> None:
        if ledger_key.public_key != state.genesis.ledger_key:
            raise StoreError("the ledger key file does not match this ledger's genesis (ledger_key)")
        self.store = store
        self.state = state
        self.ledger_key = ledger_key
        self.clock = clock
        self.max_batch = max(1, max_batch)
        self.cache = cache or SignatureCache()
        state.verifier = self.cache.verify
        self.metrics = LedgerMetrics()
        self.started_ms = wall_clock_ms()
        self.batches = 0
        self._queue: asyncio.Queue[_Submission | None] = asyncio.Queue()
        self._write_pool = ThreadPoolExecutor(1, thread_name_prefix="ledger-writer")
        self._read_pool = ThreadPoolExecutor(1, thread_name_prefix="ledger-reader")
        self.verify_threads = max(1, verify_threads)
        self._verify_pool = ThreadPoolExecutor(self.verify_threads, thread_name_prefix="ledger-verify")
        # Batches are decoded and their signatures checked in processes when there are any (checkpool).
        self._check_pool = CheckPool(check_processes) if check_processes > 0 else None
        # the check processes, spawned by the first batch: most ledgers (every test's, the devnet's)
        # never see one, and each process costs ~0.3 s of CPU to start
        self.check_pids: set[int] = set()
        self._check_start = asyncio.Lock()
        self._reader = LedgerStore(store.path, synchronous=store.synchronous, readonly=True)
        # Read once: the writer's connection belongs to the writer thread from here on.
        self._durability = store.durability()
        self._triggers = store.triggers_present()
        self._checks: list[tuple[QuorumCertificate, asyncio.Future[None]]] = []
        self._dirty = False
        self._clean = asyncio.Event()
        self._clean.set()
        self._committed_event = asyncio.Event()
        self._draining_polls = False  # set at shutdown: long polls answer now instead of waiting out
        self._accepting = False
        self._recent: OrderedDict[int, bytes] = OrderedDict()
        self._head_cache: SignedHead | None = None
        self.committed_height = state.height
        self.committed_hash = state.head_hash
        self.committed_time = state.time_ms
        self._update_gauges()

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def create(cls, db: str | Path, genesis: Genesis, ledger_key: Identity, **kw: Any) -> LedgerService:
        """Write a new ledger database holding only the signed genesis entry, and open it."""
        if ledger_key.public_key != genesis.ledger_key:
            raise StoreError("the ledger key does not match the genesis ledger_key")
        state = LedgerState(genesis)
        entry = state.genesis_entry()
        raw = entry.encode()
        row = EntryRow(0, raw, ledger_key.sign(_ENTRY_TAG, raw), hash_id("ledger-entry", raw))
        store = LedgerStore(db, synchronous=kw.pop("synchronous", "FULL"), create=True)
        try:
            store.initialise(row, genesis.ledger_id, genesis.ledger_key, state.balances)
        finally:
            store.close()
        return cls.open(db, ledger_key, **kw)

    @classmethod
    def open(cls, db: str | Path, ledger_key: Identity, *, synchronous: str = "FULL",
             workers: int | None = None, **kw: Any) -> LedgerService:
        """Open a ledger database and rebuild the state by replaying (and checking) every entry."""
        store = LedgerStore(db, synchronous=synchronous)
        cache = kw.pop("cache", None) or SignatureCache()
        try:
            result = replay_store(store, workers=workers, verifier=cache.verify)
        except BaseException:
            store.close()
            raise
        if result.problem is not None or result.state is None:
            store.close()
            raise StoreError(f"{db} does not verify ({result.problem}); run `faultproof ledger verify --db {db}`")
        try:
            return cls(store, result.state, ledger_key, cache=cache, **kw)
        except BaseException:
            store.close()
            raise

    # -- lifecycle ----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[LedgerService]:
        """Run the writer for the duration of the block; on exit, finish what was queued."""
        async with asyncio.TaskGroup() as tg:
            self._accepting = True
            writer = tg.create_task(self._writer(), name="ledger-writer")
            try:
                yield self
            finally:
                self._accepting = False
                if not writer.done():
                    self._queue.put_nowait(None)  # drain what is queued, then stop

    @property
    def accepting(self) -> bool:
        """The writer runs: a transaction submitted now is ordered and made durable (/readyz)."""
        return self._accepting

    def end_long_polls(self) -> None:
        """Shutting down: every waiting `entries` call answers now with what is committed (a
        follower simply polls again elsewhere or later), so SIGTERM does not wait out a poll."""
        self._draining_polls = True
        self._committed_event.set()

    def close(self) -> None:
        self._write_pool.shutdown(wait=True)
        self._read_pool.shutdown(wait=True)
        self._verify_pool.shutdown(wait=True)
        if self._check_pool is not None:
            self._check_pool.close()
        self._reader.close()
        self.store.close()

    # -- writes -------------------------------------------------------------------------------

    async def precheck(self, tx: Message) -> None:
        """Have a QC's signatures verified in the verify threads (off the event loop, in parallel
        with request parsing and the writer's fsync); applying it is then a cache lookup. QCs that
        arrive in the same loop iteration share one hand-off per thread."""
        if not isinstance(tx, QuorumCertificate):
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._checks.append((tx, future))
        if len(self._checks) == 1:
            loop.call_soon(self._flush_checks, loop)
        await future

    async def submit_batch(self, raw: bytes) -> list[Accepted | FaultproofError]:
        """A msgpack QcBatch (POST /v1/tx/batch, DESIGN §16): decoded and its signatures checked in
        the check processes if there are any (`checkpool`), else decoded here and checked by the
        verify threads; then as `submit_many`. A batch that does not decode, or is empty, raises
        FaultproofError and changes nothing. A check process that died (OOM killer, an operator's
        kill) costs no batch: the pool is replaced and this batch is checked here."""
        if not self._accepting:
            raise FaultproofError(Reason.UNAVAILABLE, "the ledger is not running")
        pool = self._check_pool
        if pool is not None and not self.check_pids:
            async with self._check_start:
                if not self.check_pids:
                    self.check_pids = await pool.start()
                    log.info("check processes %s", sorted(self.check_pids))
        if pool is not None:
            try:
                checked = await pool.check(raw)
            except BrokenProcessPool:
                if self._check_pool is pool:  # the first batch to see it replaces it (spawned on use)
                    log.error("a check process died; starting %d new ones", pool.workers)
                    self._check_pool = CheckPool(pool.workers)
                    await asyncio.get_running_loop().run_in_executor(None, pool.close)
                pool = None
        if pool is None:
            qcs, raws = decode_qc_batch(raw)
            return await self.submit_many(qcs, raws)
        qcs, raws, verdicts = checked
        for qc, ok in zip(qcs, verdicts, strict=True):
            self.cache.remember_qc(qc, ok)
        return await self._submit_all(qcs, raws)

    async def submit_many(self, qcs: Sequence[QuorumCertificate], raws: Sequence[bytes] | None = None,
                          ) -> list[Accepted | FaultproofError]:
        """Several QCs of one request (POST /v1/tx/batch, DESIGN §16): their signatures are
        checked together, spread over the verify threads, then each QC is submitted as its own
        transaction, in order, so they share the writer's group commit. Each is answered alone: a
        refused QC changes nothing and costs the others nothing. `raws`, if given, are the QCs'
        canonical bytes (as for `submit`)."""
        if not self._accepting:
            raise FaultproofError(Reason.UNAVAILABLE, "the ledger is not running")
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[None]] = []
        for qc in qcs:
            future: asyncio.Future[None] = loop.create_future()
            self._checks.append((qc, future))
            futures.append(future)
        if len(self._checks) == len(qcs):  # nobody scheduled a flush for this loop iteration yet
            loop.call_soon(self._flush_checks, loop)
        await asyncio.gather(*futures)
        return await self._submit_all(qcs, raws)

    async def _submit_all(self, qcs: Sequence[QuorumCertificate], raws: Sequence[bytes] | None,
                          ) -> list[Accepted | FaultproofError]:
        """Queue every QC in order (one future each, no task each) and wait for all the answers."""
        raw_of: Sequence[bytes | None] = raws if raws is not None else [None] * len(qcs)
        futures = [self._enqueue(qc, r) for qc, r in zip(qcs, raw_of, strict=True)]
        results = await asyncio.gather(*futures, return_exceptions=True)
        out: list[Accepted | FaultproofError] = []
        for r in results:
            if isinstance(r, Accepted | FaultproofError):
                out.append(r)
            else:
                raise r  # not a rule's answer (cancelled, a bug): let the handler fail the request
        return out

    def _flush_checks(self, loop: asyncio.AbstractEventLoop) -> None:
        items, self._checks = self._checks, []
        parts = min(self.verify_threads, len(items))
        for i in range(parts):
            part = items[i::parts]
            job = self._verify_pool.submit(self._precheck_all, [qc for qc, _ in part])
            job.add_done_callback(functools.partial(_resolve_from_thread, loop, part))

    def _precheck_all(self, qcs: list[QuorumCertificate]) -> None:
        for qc in qcs:
            self.cache.precheck_qc(qc)

    async def submit(self, tx: Message, raw: bytes | None = None) -> Accepted:
        """Apply one transaction durably. Raises FaultproofError with the rule's reason.
        `raw`, if given, must be tx's canonical bytes (as decoded from them)."""
        return await self._enqueue(tx, raw)

    def _enqueue(self, tx: Message, raw: bytes | None) -> asyncio.Future[Accepted]:
        if not isinstance(tx, LEDGER_TX_TYPES):
            raise FaultproofError(Reason.WRONG_TYPE, f"a {tx.NAME} is not a ledger transaction")
        if not self._accepting:
            raise FaultproofError(Reason.UNAVAILABLE, "the ledger is not running")
        future: asyncio.Future[Accepted] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Submission(tx, raw, future))
        return future

    async def _writer(self) -> None:
        while True:
            first = await self._queue.get()
            if first is None:
                return
            batch, stop = [first], False
            while len(batch) < self.max_batch and not self._queue.empty():
                nxt = self._queue.get_nowait()
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            await self._process(batch)
            # Let readers woken by this commit read before the next batch makes the state dirty.
            await asyncio.sleep(0)
            if stop:
                for pending in self._drain():
                    pending.future.set_exception(FaultproofError(Reason.UNAVAILABLE, "the ledger is stopping"))
                return

    def _drain(self) -> list[_Submission]:
        out = []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not None:
                out.append(item)
        return out

    async def _process(self, batch: list[_Submission]) -> None:
        state = self.state
        drafts: list[tuple[LedgerEntry, bytes, bytes]] = []  # entry, its bytes, its hash
        outcomes: list[tuple[_Submission, Effect | FaultproofError, int | None]] = []  # index into drafts
        touched: set[str] = set()
        rows: list[EntryRow] = []
        self._dirty = True
        self._clean.clear()
        try:
            for sub in batch:
                if sub.future.done():  # the submitter went away before we got to it
                    continue
                try:
                    effect = state.check(sub.tx, max(self.clock(), state.time_ms))
                except FaultproofError as e:
                    outcomes.append((sub, e, None))
                    continue
                if effect.existing is not None:
                    outcomes.append((sub, effect, None))
                    continue
                entry = state.entry_for(effect)
                raw = entry_bytes(entry, sub.raw if sub.raw is not None else sub.tx.encode())
                digest = hash_id("ledger-entry", raw)
                state.commit(effect, entry, digest)
                for t in effect.transfers:
                    touched.update((t.source, t.dest))
                outcomes.append((sub, effect, len(drafts)))
                drafts.append((entry, raw, digest))
            if drafts:
                balances = {a: state.balances[a] for a in touched}
                started = time.perf_counter()
                rows = await asyncio.get_running_loop().run_in_executor(
                    self._write_pool, self._sign_and_append, drafts, balances)
                self.metrics.commit_seconds.observe(time.perf_counter() - started)
                self.metrics.batch_size.observe(len(rows))
        except BaseException as exc:
            # The state ran ahead of a write that failed (or may not have finished): rebuild it
            # from what is durably on disk and tell every submitter of this batch. A failed write
            # (disk full, database locked by another process) fails only this batch; if the file
            # cannot even be replayed, _recover raises and the writer stops (fail-stop).
            await self._recover()
            failure = FaultproofError(Reason.UNAVAILABLE, f"the ledger could not write: {exc!r}")
            for sub in batch:
                if not sub.future.done():
                    sub.future.set_exception(failure)
            self._mark_clean()
            if not isinstance(exc, Exception):
                raise
            log.error("writing a batch of %d failed (%r); state rebuilt from disk", len(drafts), exc)
            return
        for row in rows:
            self._recent[row.height] = row.signed_bytes
        while len(self._recent) > RECENT_ENTRIES:
            self._recent.popitem(last=False)
        if rows:
            self.committed_height, self.committed_hash = rows[-1].height, rows[-1].entry_hash
            self.committed_time = state.time_ms
            self.batches += 1
        self._mark_clean()
        for sub, outcome, index in outcomes:
            self._answer(sub, outcome, None if index is None else (rows[index], drafts[index][0]))
        if rows:
            self._update_gauges()
            event, self._committed_event = self._committed_event, asyncio.Event()
            event.set()

    def _sign_and_append(self, drafts: list[tuple[LedgerEntry, bytes, bytes]], balances: dict[str, int]) -> list[EntryRow]:
        """Writer thread: sign (libsodium, without the GIL) and append the batch durably."""
        rows = [EntryRow(entry.height, raw, self.ledger_key.sign(_ENTRY_TAG, raw), digest)
                for entry, raw, digest in drafts]
        self.store.append(rows, balances)
        return rows

    def _mark_clean(self) -> None:
        self._dirty = False
        self._clean.set()

    def _answer(self, sub: _Submission, outcome: Effect | FaultproofError,
                written: tuple[EntryRow, LedgerEntry] | None) -> None:
        kind = tx_kind(sub.tx).value
        if isinstance(outcome, FaultproofError):
            self.metrics.tx.labels(kind, "rejected").inc()
            self.metrics.rejected.labels(outcome.reason.value).inc()
            if not sub.future.done():
                sub.future.set_exception(outcome)
            return
        if written is None:  # an idempotent repeat of a paid claim: answer with its entry
            assert outcome.existing is not None
            self.metrics.tx.labels(kind, "existing").inc()
            raw = self._recent.get(outcome.existing.height)
            if raw is None:
                existing_row = self.store.row(outcome.existing.height)
                assert existing_row is not None
                raw = existing_row.signed_bytes
            accepted = Accepted(SignedEntry.decode(raw), raw, True, outcome)
        else:
            self.metrics.tx.labels(kind, "accepted").inc()
            row, entry = written
            accepted = Accepted(SignedEntry(entry=entry, signature=row.signature), row.signed_bytes, False, outcome)
        if not sub.future.done():
            sub.future.set_result(accepted)

    async def _recover(self) -> None:
        def rebuild() -> LedgerState:
            result = replay_store(self.store, verifier=self.cache.verify, workers=1)
            if result.state is None or result.problem is not None:
                raise StoreError(f"cannot rebuild the state from {self.store.path}: {result.problem}")
            return result.state

        self.state = await asyncio.get_running_loop().run_in_executor(self._write_pool, rebuild)
        self.state.verifier = self.cache.verify
        self.committed_height, self.committed_hash = self.state.height, self.state.head_hash
        self.committed_time = self.state.time_ms

    def _update_gauges(self) -> None:
        self.metrics.height.set(self.committed_height)
        for name, value in self.summary_balances().items():
            self.metrics.pool.labels(name).set(value)

    # -- reads --------------------------------------------------------------------------------

    async def view(self) -> LedgerState:
        """The state with nothing uncommitted in it. Use it before the next await."""
        while self._dirty:
            await self._clean.wait()
        return self.state

    def summary_balances(self) -> dict[str, int]:
        """Balances by account class; all the per-policy locks are summed as "locked"."""
        b = self.state.balances
        # The accounts sum to zero, so the locks add up to what the other classes leave: O(1).
        bonds, rewards = self.state.econ.bond_total, b.get(REWARDS, 0)  # economic security (§14)
        locked = -(b[EXTERNAL] + b[FREE] + b[PREMIUMS] + b[PAID] + bonds + rewards)
        summary = {EXTERNAL: b[EXTERNAL], FREE: b[FREE], "locked": locked, PREMIUMS: b[PREMIUMS], PAID: b[PAID]}
        if bonds or rewards:
            summary.update(bonds=bonds, rewards=rewards)
        return summary

    def signed_head(self) -> SignedHead:
        head = self._head_cache
        if head is None or head.height != self.committed_height:
            head = SignedHead.make(self.ledger_key, self.state.ledger_id, self.committed_height,
                                   self.committed_hash, self.committed_time)
            self._head_cache = head
        return head

    async def entry_bytes(self, height: int) -> bytes | None:
        if height > self.committed_height or height < 0:
            return None
        raw = self._recent.get(height)
        if raw is not None:
            return raw
        row = await asyncio.get_running_loop().run_in_executor(self._read_pool, self._reader.row, height)
        return None if row is None else row.signed_bytes

    async def entries(self, after: int, limit: int, wait_s: float = 0.0) -> list[bytes]:
        """Signed entries with height > after (at most `limit`), waiting up to wait_s for one."""
        if after >= self.committed_height and wait_s > 0:
            event = self._committed_event
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_s):
                    while after >= self.committed_height and not self._draining_polls:
                        await event.wait()
                        event = self._committed_event
        top = min(self.committed_height, after + limit)
        if top <= after:
            return []
        if after + 1 in self._recent:
            return [self._recent[h] for h in range(after + 1, top + 1)]
        rows = await asyncio.get_running_loop().run_in_executor(
            self._read_pool, self._reader.rows, after, top - after)
        return [r.signed_bytes for r in rows if r.height <= top]

    async def receipt(self, claim: bytes) -> Receipt:
        state = await self.view()
        paid = state.paid_claim(claim)
        if paid is None or paid.height > self.committed_height:
            raise FaultproofError(Reason.NOT_FOUND, "no payout for this claim_id")
        raw = await self.entry_bytes(paid.height)
        assert raw is not None
        return Receipt(genesis=self.state.genesis, entry=SignedEntry.decode(raw), head=self.signed_head())

    def status(self) -> dict[str, Any]:
        return {
            "ledger_id": self.state.ledger_id.hex(),
            "height": self.committed_height,
            "head_hash": self.committed_hash.hex(),
            "time_ms": self.committed_time,
            "durability": {**self._durability, "group_commit": self.max_batch > 1, "max_batch": self.max_batch},
            "append_only_triggers": self._triggers,
            "queued": self._queue.qsize(),
            "batches": self.batches,
            "uptime_s": round((wall_clock_ms() - self.started_ms) / 1000, 1),
            "development": bool(self.state.genesis.development),
        }
