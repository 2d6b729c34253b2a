"""The ingest engine: one thread that checks frames, detects incidents and commits both, in batches.

Every transport (MQTT, HTTP, the in-process simulator) hands parsed frames to `IngestEngine.submit`
with a completion callback. The engine's thread drains whatever is queued (up to `max_batch`
frames), runs the pure core (`agent.core.IngestCore`: frame checks, detection, claim bookkeeping,
retention cutoff) on it, writes
the accepted frames, the claims they completed and the rejection counters in ONE transaction
(group commit), and only then calls the callbacks: an MQTT message is acknowledged, an HTTP
request answered, after its frames are durable. Claim status updates from the claim manager travel
the same queue (`update_claim`), so the store has exactly one writer.

Under low load each message gets its own commit (latency = one fsync); under high load batches
grow by themselves, which is what keeps the throughput up.

Why a thread and not the asyncio loop: checking a frame costs ~0.1 ms of CPU (an Ed25519 verify
and two Poseidon hashes), so a 1000-frame batch would stall the loop for 100 ms; here the loop
gets the GIL back every switch interval and /healthz stays fast.

If a commit fails the engine stops (fail-stop: its in-memory chain state is then ahead of the
disk); the daemon sees `failed` and exits, and the restart rebuilds everything from the store.
This file must never acknowledge or answer anything before its commit, nor store a refused frame.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from agent.anomaly import AnomalyMonitor, ForgeryEvidence, Quarantine, Signal
from agent.core import IngestCore, LedgerSnapshot
from agent.detect import Window
from agent.frames import Incoming, Undecodable, Verdict
from agent.metrics import AgentMetrics
from agent.store import FINAL_STATUSES, Store
from faultproof.errors import FaultproofError, Reason
from faultproof.futures import settle_from_thread

log = logging.getLogger("faultproof.agent.ingest")


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class IngestResult:
    """What became of one submission: a verdict per frame, or why nothing could be decoded."""

    verdicts: tuple[Verdict, ...] = ()
    undecodable: Undecodable | None = None
    error: str | None = None  # the engine failed; nothing was stored

    @property
    def accepted(self) -> int:
        return sum(1 for v in self.verdicts if v.accepted)


Done = Callable[[IngestResult], None]


@dataclass
class _Submission:
    frames: list[Incoming] | Undecodable
    done: Done | None
    transport: str


@dataclass
class _Op:
    fn: Callable[[Store], Any]
    done: Callable[[Any, BaseException | None], None] | None


@dataclass
class EngineConfig:
    max_skew_ms: int = 5_000
    reorder_window: int = 4096
    max_batch: int = 5000  # frames per transaction at most
    max_pending: int = 200_000  # frames queued before producers are pushed back
    synchronous: str = "FULL"
    retention_ms: int | None = None  # None: keep every frame
    retention_interval_s: float = 60.0
    commit_delay_ms: int = 0  # test hook: widen the window between delivery and commit


class IngestEngine:
    """Owns the store's write connection and the frame-check state. Thread-safe entry points:
    `submit`, `submit_async`, `update_claim`, `set_ledger`, `stop`, and the read-only stats."""

    def __init__(self, store_path: str | Path, config: EngineConfig | None = None, *,
                 metrics: AgentMetrics | None = None, clock: Callable[[], int] = wall_ms,
                 on_claims: Callable[[list[Window]], None] | None = None) -> None:
        self.config = config or EngineConfig()
        self.store_path = Path(store_path)
        self.metrics = metrics or AgentMetrics()
        self.clock = clock
        self.on_claims = on_claims
        self.skipped_by_reason: dict[str, int] = {}  # incidents not claimable, shown in /v1/status
        self._skip_logged: set[tuple[bytes, str]] = set()
        self._cv = threading.Condition()
        self._queue: collections.deque[_Submission | _Op] = collections.deque()
        self._pending_frames = 0
        self._snapshot: LedgerSnapshot | None = None
        self._stop = False
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self.failed: BaseException | None = None
        # stats (read from other threads without a lock: ints only)
        self.received = 0
        self.committed_frames = 0
        self.rejected_frames = 0
        self.commits = 0
        self.last_commit_ms = 0
        # engine-thread state
        self.store: Store | None = None
        self.core: IngestCore | None = None
        self._last_retention = time.monotonic()
        # DESIGN §15: signs of compromise per device; a quarantined device's claims are held.
        self.anomaly = AnomalyMonitor()
        # The frames refused as forgeries, kept for the suspension report the agent sends its
        # oracles once such a device is quarantined (stored in the batch's transaction).
        self.forgeries = ForgeryEvidence()
        self._started: list[Quarantine] = []  # quarantines begun in the batch being written

    @property
    def detectors(self) -> dict[bytes, Any]:
        return self.core.detectors if self.core is not None else {}

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 30.0) -> None:
        self._thread = threading.Thread(target=self._main, name="agent-ingest", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("ingest engine did not start")
        if self.failed is not None:
            raise RuntimeError(f"ingest engine failed to start: {self.failed}")

    def stop(self, timeout: float = 30.0) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self.failed is None

    @property
    def pending(self) -> int:
        return self._pending_frames

    # ------------------------------------------------------------------ producers

    def submit(self, frames: list[Incoming] | Undecodable, done: Done | None = None, *,
               transport: str = "inproc", block: bool = True) -> bool:
        """Queue frames; `done` runs on the engine thread after their commit. With block=False,
        returns False instead of waiting when the queue is full."""
        n = len(frames) if isinstance(frames, list) else 0
        with self._cv:
            while self._pending_frames + n > self.config.max_pending and self._pending_frames > 0:
                if not block or self._stop:
                    return False
                self._cv.wait(0.1)
            if self.failed is not None or self._stop:
                if done is not None:
                    done(IngestResult(error=f"ingest engine is not running: {self.failed}"))
                return True
            self._queue.append(_Submission(frames, done, transport))
            self._pending_frames += n
            self.received += n
            self._cv.notify_all()
        self.metrics.messages.labels(transport).inc()
        return True

    async def submit_async(self, frames: list[Incoming] | Undecodable, *, transport: str = "http") -> IngestResult:
        fut: asyncio.Future[IngestResult] = asyncio.get_running_loop().create_future()
        if not self.submit(frames, lambda result: settle_from_thread(fut, result), transport=transport, block=False):
            raise FaultproofError(Reason.UNAVAILABLE, "ingest queue is full; retry later")
        return await fut

    def run_op(self, fn: Callable[[Store], Any], done: Callable[[Any, BaseException | None], None] | None = None) -> None:
        with self._cv:
            self._queue.append(_Op(fn, done))
            self._cv.notify_all()

    def broker_refused(self, device_ids: list[bytes], now_ms: int) -> None:
        """Refusals by the MQTT broker naming these devices (agent/brokerlog.py), one entry per
        refusal: fed to the anomaly monitor on the engine's thread, counted in the store."""

        def op(store: Store) -> None:
            counts: dict[tuple[str, str], int] = collections.defaultdict(int)
            for device_id in device_ids:
                counts[("broker_refused", "")] += 1
                self._quarantine(self.anomaly.observe(device_id, Signal.LOGIN_REFUSED, now_ms), counts)
            store.add_counters({f"{r}:{c}" if c else r: k for (r, c), k in counts.items()})

        self.run_op(op)

    def refused(self, device_id: bytes, reason: Reason, now_ms: int) -> None:
        """A refusal naming the device outside the frame path (its attestation answer, DESIGN §15):
        fed to the anomaly monitor on the engine's thread, counted in the store."""

        def op(store: Store) -> None:
            counts: dict[tuple[str, str], int] = collections.defaultdict(int)
            counts[("attestation_refused", reason.value)] += 1
            self._quarantine(self.anomaly.refused(device_id, reason, now_ms), counts)
            store.add_counters({f"{r}:{c}" if c else r: k for (r, c), k in counts.items()})

        self.run_op(op)

    def reinstated(self, lifted_ms: Mapping[bytes, int]) -> None:
        """The ledger's lifts of suspensions (device -> latest lift): quarantines the admin has
        ended are released on the engine's thread, and the device's claims flow again."""

        def op(store: Store) -> None:
            for q in self.anomaly.reinstated(lifted_ms):
                self.anomaly.release(q.device_id)
                store.delete_quarantine(q.device_id)
                self.forgeries.forget(q.device_id)
                store.add_counters({f"released:{q.signal.value}": 1})
                log.warning("device %s released from quarantine (%s): the ledger reinstated it",
                            q.device_id.hex()[:16], q.signal.value)

        self.run_op(op)

    async def run_op_async(self, fn: Callable[[Store], Any]) -> Any:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.run_op(fn, lambda value, exc: settle_from_thread(fut, value, exc))
        return await fut

    async def update_claim(self, claim_id: bytes, values: dict[str, Any]) -> None:
        """Persist a claim's new status etc. (committed before this returns)."""
        def op(store: Store) -> None:
            store.update_claim(claim_id, values)
            if values.get("status") in FINAL_STATUSES and self.core is not None:
                self.core.claim_decided(claim_id)

        await self.run_op_async(op)

    def set_ledger(self, snapshot: LedgerSnapshot) -> None:
        with self._cv:
            self._snapshot = snapshot
            self._cv.notify_all()

    # ------------------------------------------------------------------ the thread

    def _main(self) -> None:
        try:
            self.store = Store(self.store_path, synchronous=self.config.synchronous)
            self.core = IngestCore(max_skew_ms=self.config.max_skew_ms, reorder_window=self.config.reorder_window,
                                   stored_lookup=self.store.has_frame)
            self.core.load_claims(self.store.claims(), FINAL_STATUSES)
            self.core.note_stored(self.store.newest_ts())
            self.anomaly.restore(self.store.quarantines())  # DESIGN §15: a restart ends none
        except BaseException as e:  # noqa: BLE001 - reported to start()
            self.failed = e
            self._ready.set()
            return
        self._ready.set()
        try:
            self._loop()
        except BaseException as e:  # noqa: BLE001 - fail-stop: see the module docstring
            log.critical("ingest engine failed; stopping: %r", e)
            self.failed = e
            self._fail_queued(e)
        finally:
            if self.store is not None:
                self.store.close()

    def _take(self) -> tuple[list[_Submission | _Op], LedgerSnapshot | None] | None:
        with self._cv:
            while not self._queue and self._snapshot is None and not self._stop:
                self._cv.wait(1.0)
                if self._retention_due():
                    break
            if self._stop and not self._queue:
                return None
            items: list[_Submission | _Op] = []
            frames = 0
            while self._queue and frames < self.config.max_batch:
                item = self._queue.popleft()
                items.append(item)
                if isinstance(item, _Submission) and isinstance(item.frames, list):
                    frames += len(item.frames)
            snapshot, self._snapshot = self._snapshot, None
            return items, snapshot

    def _loop(self) -> None:
        while True:
            taken = self._take()
            if taken is None:
                return
            items, snapshot = taken
            self._batch(items, snapshot)

    def _retention_due(self) -> bool:
        return self.config.retention_ms is not None and \
            time.monotonic() - self._last_retention >= self.config.retention_interval_s

    def _batch(self, items: list[_Submission | _Op], snapshot: LedgerSnapshot | None) -> None:
        store, core = self.store, self.core
        assert store is not None and core is not None
        now = self.clock()
        started = time.perf_counter()
        store.begin()
        try:
            dirty: set[bytes] = set()
            if snapshot is not None:
                dirty |= self._apply_snapshot(snapshot)
            results: list[tuple[_Submission, IngestResult]] = []
            rows: list[tuple[int, int, int, int, int, bytes, bytes, int]] = []
            relinks: list[tuple[int, int, int]] = []
            replaced: list[tuple[int, int, int, int]] = []  # provisional frames whose true reading arrived
            alternatives: list[tuple[int, int, int, int]] = []
            refuted: list[tuple[int, int, int]] = []
            counts: dict[tuple[str, str], int] = collections.defaultdict(int)
            for device_id in snapshot.attestation_failed if snapshot is not None else ():
                if self.anomaly.quarantined(device_id) is None:
                    self._quarantine(self.anomaly.refused(device_id, Reason.ATTESTATION_FAILED, now), counts)
            op_results: list[tuple[_Op, Any, BaseException | None]] = []
            n_frames = 0
            forged: set[bytes] = set()
            for item in items:
                if isinstance(item, _Op):
                    try:
                        op_results.append((item, item.fn(store), None))
                    except Exception as e:  # noqa: BLE001 - an op's own error goes to its caller
                        op_results.append((item, None, e))
                    continue
                if isinstance(item.frames, Undecodable):
                    counts[("undecodable", item.frames.reason.value)] += 1
                    results.append((item, IngestResult(undecodable=item.frames)))
                    continue
                verdicts = []
                for f in item.frames:
                    v = core.check(f, now)
                    verdicts.append(v)
                    if v.reason is not None:
                        counts[("rejected", v.reason.value)] += 1
                        self._quarantine(self.anomaly.refused(f.device_id, v.reason, now), counts)
                        if v.reason is Reason.BAD_FRAME_SIGNATURE and f.is_signed:
                            # evidence is a frame with a signature that fails; an unsigned frame
                            # at a must-sign seq (DESIGN §16) proves nothing about the device
                            self.forgeries.forged(f.device_id, f.signed_frame().encode())
                            forged.add(f.device_id)
                        continue
                    self._quarantine(self.anomaly.accepted(f.device_id, f.ts, now), counts)
                    counts[("accepted", "")] += 1
                    dev = store.dev_id(f.device_id)
                    if v.confirmed:  # unsigned frames a signed frame confirmed (DESIGN §16): stored linked
                        rows.extend((dev, c.epoch, c.seq, c.ts, c.reading, c.chain, b"", 1) for c in v.confirmed)
                        dirty.add(f.device_id)
                    if v.held:  # an unsigned frame is never stored on its own
                        if v.relinked_reading is not None and v.relinked is not None:
                            replaced.append((dev, f.epoch, v.relinked, v.relinked_reading))
                        elif v.relinked is not None:
                            relinks.append((dev, f.epoch, v.relinked))
                        continue
                    if v.alternative:
                        alternatives.append((dev, f.epoch, f.seq, f.reading))
                        continue
                    if v.replaced:
                        replaced.append((dev, f.epoch, f.seq, f.reading))
                    else:
                        rows.append((dev, f.epoch, f.seq, f.ts, f.reading, f.chain, f.signature, int(v.linked)))
                    if v.relinked_reading is not None and v.relinked is not None:
                        replaced.append((dev, f.epoch, v.relinked, v.relinked_reading))
                    elif v.relinked is not None:
                        relinks.append((dev, f.epoch, v.relinked))
                    if v.refuted is not None:
                        refuted.append((dev, f.epoch, v.refuted))
                    dirty.add(f.device_id)
                n_frames += len(item.frames)
                results.append((item, IngestResult(tuple(verdicts))))
            windows = self._detect(dirty, now)
            for device_id in forged:
                report = self.forgeries.due(self.anomaly.quarantined(device_id))
                if report is not None:
                    store.insert_suspension_report(report.device_id, report.since_ms, report.frames, now)
                    counts[("suspension_report", "")] += 1
            if rows:
                store.insert_frames(rows)
            # In this order: a reading replaced or refuted later in the batch drops alternatives
            # stored earlier in it.
            if alternatives:
                store.insert_alternatives(alternatives)
            if relinks:
                store.mark_linked(relinks)
                store.drop_alternatives(relinks)
            if replaced:
                store.replace_readings(replaced)
            if refuted:
                store.drop_alternatives(refuted)
            for w in windows:
                store.insert_claim(_claim_row(w, now))
            if counts:
                store.add_counters({f"{r}:{c}" if c else r: k for (r, c), k in counts.items()})
            # Those started in this batch and still in force (an op may have released one since).
            store.save_quarantines(q for q in self._started if self.anomaly.quarantined(q.device_id) is q)
            if self._retention_due():
                self._retention(store)
            if self.config.commit_delay_ms:
                time.sleep(self.config.commit_delay_ms / 1000)
            store.commit()
        except BaseException:
            store.rollback()
            raise
        finally:
            self._started.clear()
        # Durable from here on: report.
        elapsed = time.perf_counter() - started
        self.commits += 1
        self.last_commit_ms = now
        accepted = counts.get(("accepted", ""), 0)
        self.committed_frames += accepted
        self.rejected_frames += n_frames - accepted
        with self._cv:
            self._pending_frames -= n_frames
            self._cv.notify_all()
        m = self.metrics
        m.commits.inc()
        m.commit_seconds.observe(elapsed)
        m.batch_frames.observe(n_frames)
        m.pending_frames.set(self._pending_frames)
        for (kind, reason), k in counts.items():
            m.frames.labels(kind, reason).inc(k)
        for item, outcome in results:
            if item.done is not None:
                item.done(outcome)
        for op, value, exc in op_results:
            if op.done is not None:
                op.done(value, exc)
        if windows and self.on_claims is not None:
            self.on_claims(windows)

    def _quarantine(self, q: Quarantine | None, counts: dict[tuple[str, str], int]) -> None:
        """A quarantine that began in this batch: counted, logged, and stored with the batch."""
        if q is not None:
            self._started.append(q)
            counts[("quarantined", q.signal.value)] += 1
            log.warning("device %s quarantined: %d %s in the window; its claims are held",
                        q.device_id.hex()[:12], q.count, q.signal.value)

    def _apply_snapshot(self, snapshot: LedgerSnapshot) -> set[bytes]:
        """Install a new ledger view; returns the devices whose detection must run again."""
        store, core = self.store, self.core
        assert store is not None and core is not None
        for rec in core.apply_snapshot(snapshot):
            book = core.checker.book_for(rec)
            recent = store.recent_frames(rec.device_id, rec.epoch, self.config.reorder_window)
            book.load(recent, store.alternatives(rec.device_id, rec.epoch, min((r[0] for r in recent), default=0)))
        return core.install_detectors(snapshot)

    def _detect(self, devices: set[bytes], now: int) -> list[Window]:
        assert self.core is not None
        found, evaluated = self.core.detect(devices, now)
        if evaluated:
            self.metrics.windows_evaluated.inc(evaluated)
        for skip in self.core.take_skipped():
            self.metrics.windows_skipped.labels(reason=skip.reason).inc(skip.count)
            self.skipped_by_reason[skip.reason] = self.skipped_by_reason.get(skip.reason, 0) + skip.count
            key = (skip.device_id, skip.reason)
            if key not in self._skip_logged:  # once per device and reason, not per window
                self._skip_logged.add(key)
                log.warning("device %s: a malfunction under policy %s cannot be claimed (%s); "
                            "such windows are counted in faultproof_agent_windows_skipped_total",
                            skip.device_id.hex()[:16], skip.policy_id.hex()[:16], skip.reason)
        return found

    def _retention(self, store: Store) -> None:
        assert self.core is not None
        self._last_retention = time.monotonic()
        cutoff = self.core.retention_cutoff(self.config.retention_ms)
        if cutoff is None:
            return
        deleted = store.delete_older_than(cutoff, self.core.kept_windows())
        if deleted:
            self.metrics.retention_deleted.inc(deleted)
            log.info("retention deleted %d frames", deleted)

    def _fail_queued(self, exc: BaseException) -> None:
        with self._cv:
            items = list(self._queue)
            self._queue.clear()
        for item in items:
            if isinstance(item, _Submission) and item.done is not None:
                item.done(IngestResult(error=str(exc)))
            elif isinstance(item, _Op) and item.done is not None:
                item.done(None, exc)


def _claim_row(w: Window, now: int) -> dict[str, Any]:
    return {"claim_id": w.claim_id, **asdict(w), "status": "detected", "detected_ms": now}


def frames_of(readings: Sequence[Any]) -> list[Incoming]:
    """DeviceReading messages -> Incoming (the in-process transport)."""
    return [Incoming.from_message(r) for r in readings]
