"""Claims: the lifecycle of an incident from detection to payout, and the manager that drives it.

The lifecycle is one table (`TRANSITIONS`); a transition not in it is refused with
INVALID_STATE_TRANSITION, whoever asks:

    detected --proved--> proved --sent--> submitted --approved--> approved
        |                   |                 |                       |
        +--prove_failed--> failed             +--rejected--> rejected <+
    any state but paid and failed --paid--> paid          (final: paid, rejected, failed)

- detected: the window was found and written with the frames that completed it (agent.ingest).
- proved:   the signed claim (proof included) is persisted. It is persisted BEFORE it is sent, so a
            restart re-sends the same bytes and never proves a second claim for the incident; the
            claim_id is the incident (policy, device, epoch, a, a+n), never the proof.
- submitted: gossiped on `/faultproof/1/claims`, or POSTed to an oracle when gossip has no peers
            or an oracle does not know the claim yet; resent with exponential backoff until
            decided.
- approved: an oracle reports a quorum certificate; paid follows when the ledger records it.
- paid:     the agent's ledger replica holds the payout entry (the ledger is the source of truth).
- rejected: n-k+1 distinct oracles answered `rejected` or refused the claim's content (4xx), so
            no quorum certificate can form any more (or the ledger says it will never pay); one
            oracle's word is never enough (design §12). A payout seen on the ledger later is still
            recorded: rejected --paid--> paid.
- failed:   it could not be proved (window no longer stored, circuit gone); never sent.

`ClaimManager` owns the in-memory mirror of the claims table and the two loops (prove, follow).
Proving runs in a worker pool (`faultproof.zk.pool.ProofPool`), never on the event loop; every
status change is committed through the ingest engine (the store's one writer) before it counts.

This file must never file a claim the detector did not find, sign anything but a Claim, or send a
claim whose signed bytes are not persisted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

from agent.core import (  # noqa: F401 - the lifecycle's names are re-exported here for callers
    FINAL,
    TRANSITIONS,
    ClaimEvent,
    ClaimStatus,
    backoff_s,
    content_refusal,
    follow_up,
    rejection_quorum,
    transition,
)
from agent.detect import Window
from agent.ingest import IngestEngine
from agent.metrics import AgentMetrics
from agent.store import FINAL_STATUSES, FrameRow, load_window
from faultproof import chain
from faultproof.errors import FaultproofError, Reason
from faultproof.identity import Identity
from faultproof.messages import (
    MAX_CLAIMS_PER_BATCH,
    Claim,
    ClaimBatch,
    Frame,
    SignedClaim,
    SignedFrame,
)
from faultproof.oracle_client import AsyncOracleClient, OracleUnreachable
from faultproof.retry import Reachability, backoff_delay
from faultproof.zk.params import TriggerParams

log = logging.getLogger("faultproof.agent.claims")

CLAIMS_TOPIC = "/faultproof/1/claims"
# How long the first claim of a gossip batch waits for others (DESIGN §16): a few ms of latency
# against one libp2p message per burst instead of one per claim.
CLAIM_BATCH_MS = 5.0


assert {s.value for s in FINAL} == set(FINAL_STATUSES)


@dataclass
class ClaimRecord:
    """A claims-table row in memory: the window the detector found and where its claim stands, plus
    the follow-up schedule (not persisted)."""

    claim_id: bytes
    window: Window
    status: ClaimStatus
    detected_ms: int
    reason: str | None = None
    signed: bytes | None = None
    proved_ms: int | None = None
    prove_seconds: float | None = None
    submitted_ms: int | None = None
    decided_ms: int | None = None
    attempts: int = 0
    paid: int | None = None
    next_at: float = 0.0  # monotonic time of the next send/poll
    rejected_by: dict[str, str | None] = field(default_factory=dict)  # oracle -> its reason (rejected or refused)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ClaimRecord:
        kw = dict(row)
        for k in ("claim_id", "policy_id", "device_id", "circuit_id", "signed"):
            if kw.get(k) is not None:
                kw[k] = bytes(kw[k])
        window = Window(**{f.name: kw.pop(f.name) for f in fields(Window)})
        kw = {k: v for k, v in kw.items() if k in cls.__dataclass_fields__}
        kw["status"] = ClaimStatus(kw["status"])
        return cls(window=window, **kw)

    @classmethod
    def from_window(cls, w: Window, now_ms: int) -> ClaimRecord:
        return cls(w.claim_id, w, ClaimStatus.DETECTED, now_ms)

    def to_json(self) -> dict[str, Any]:
        window = {k: v.hex() if isinstance(v, bytes) else v for k, v in asdict(self.window).items()}
        return {
            "claim_id": self.claim_id.hex(), **window,
            "status": self.status.value, "reason": self.reason, "detected_ms": self.detected_ms,
            "proved_ms": self.proved_ms, "prove_seconds": self.prove_seconds, "submitted_ms": self.submitted_ms,
            "decided_ms": self.decided_ms, "attempts": self.attempts, "paid": self.paid,
        }


class Prover(Protocol):
    async def prove(self, built: Any, witness: Any, *, deadline: float | None = None) -> bytes: ...


# --------------------------------------------------------------------------- sending


@dataclass
class _Filling:
    """A gossip batch being filled: its claims (encoded SignedClaims) and whether it was sent."""

    done: asyncio.Future[bool]
    items: list[bytes] = field(default_factory=list)


class ClaimSender:
    """Gets a signed claim to the oracles: gossip when the mesh has peers, HTTP otherwise, and asks
    oracles (in turn) how the claim stands."""

    def __init__(self, gossip: Any | None, oracle_urls: Sequence[str], metrics: AgentMetrics,
                 timeout: float = 5.0, batch_ms: float = CLAIM_BATCH_MS) -> None:
        self.gossip = gossip
        self.oracle_urls = [u.rstrip("/") for u in oracle_urls]
        self.metrics = metrics
        self.timeout = timeout
        self.batch_ms = batch_ms  # 0: every claim in its own gossip message (the reference path)
        self._filling: _Filling | None = None  # the gossip batch that is filling now
        self.gossip_messages = 0  # gossip messages published (a batch counts once)
        self._next = 0
        self.reach = Reachability("the oracles (HTTP)", log)  # one line per outage, not per claim
        self._client: AsyncOracleClient | None = None

    def _http(self) -> AsyncOracleClient:
        if self._client is None:
            self._client = AsyncOracleClient(timeout=self.timeout)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    def gossip_peers(self) -> int:
        try:
            return len(self.gossip.peers()) if self.gossip is not None else 0
        except Exception:  # noqa: BLE001 - a stopped node has no peers
            return 0

    async def publish(self, data: bytes) -> bool:
        """Gossip one signed claim (its encoded bytes); True once it left in a gossip message.

        Claims sent within `batch_ms` of each other leave together in one ClaimBatch (DESIGN §16):
        py-libp2p costs about the same CPU per message whatever its size, so a burst of claims
        costs one message, not one each. The first claim of a batch waits at most `batch_ms`; a
        batch that reaches MAX_CLAIMS_PER_BATCH leaves at once. A lone claim leaves as a bare
        SignedClaim, as before batching.
        """
        if self.gossip_peers() == 0:
            return False
        if self.batch_ms <= 0:
            return await self._publish_message(data, 1)
        filling = self._filling
        leader = filling is None
        if filling is None:
            filling = self._filling = _Filling(asyncio.get_running_loop().create_future())
        filling.items.append(data)
        if len(filling.items) >= MAX_CLAIMS_PER_BATCH:
            self._filling = None
            await self._send_batch(filling)
        elif leader:
            try:  # until the batch is full (someone else sends it) or batch_ms have passed
                await asyncio.wait_for(asyncio.shield(filling.done), self.batch_ms / 1000)
            except TimeoutError:
                pass
            except asyncio.CancelledError:
                if self._filling is filling:  # nobody else will send it: let the others retry later
                    self._filling = None
                    filling.done.set_result(False)
                raise
            if self._filling is filling:
                self._filling = None
                await self._send_batch(filling)
        return await asyncio.shield(filling.done)

    async def _send_batch(self, filling: _Filling) -> None:
        items = filling.items
        try:
            if len(items) == 1:
                data = items[0]
            else:
                data = ClaimBatch(claims=tuple(SignedClaim.decode(d) for d in items)).encode()
            ok = await self._publish_message(data, len(items))
        except BaseException:
            filling.done.set_result(False)
            raise
        filling.done.set_result(ok)

    async def _publish_message(self, data: bytes, claims: int) -> bool:
        try:
            await asyncio.wait_for(self.gossip.publish(CLAIMS_TOPIC, data), self.timeout)  # type: ignore[union-attr]
        except (FaultproofError, TimeoutError) as e:
            self.metrics.submissions.labels("gossip", "error").inc(claims)
            log.info("gossip publish failed: %s", e)
            return False
        self.gossip_messages += 1
        self.metrics.submissions.labels("gossip", "ok").inc(claims)
        return True

    def _order(self) -> list[str]:
        urls = self.oracle_urls[self._next:] + self.oracle_urls[:self._next]
        self._next = (self._next + 1) % max(1, len(self.oracle_urls))
        return urls

    async def post(self, data: bytes) -> tuple[str, int, dict[str, Any]] | None:
        """POST to the first oracle that answers: (url, HTTP status, JSON body), or None."""
        problem: object = "no oracle urls"
        for url in self._order():
            try:
                r = await self._http().submit(url, data)
                self.metrics.submissions.labels("http", str(r.status)).inc()
                self.reach.succeeded()
                return url, r.status, r.body if isinstance(r.body, dict) else {}
            except OracleUnreachable as e:
                self.metrics.submissions.labels("http", "unreachable").inc()
                log.debug("oracle %s unreachable: %s", url, e)
                problem = e
        if self.oracle_urls:
            self.reach.failed(problem)  # the claim's own next_at paces the retry
        return None

    async def oracle_view(self, claim_id: bytes) -> tuple[str, dict[str, Any] | None] | None:
        """(url, the first oracle's view of the claim or None if it does not know it), or None
        when no oracle answered."""
        problem: object = "no answer"
        for url in self._order():
            try:
                r = await self._http().claim(url, claim_id)
            except OracleUnreachable as e:
                problem = e
                continue
            if r.status == 404:
                self.reach.succeeded()
                return url, None
            if r.status == 200 and isinstance(r.body, dict):
                self.reach.succeeded()
                return url, r.body
        if self.oracle_urls:
            self.reach.failed(problem)
        return None


# --------------------------------------------------------------------------- the manager


@dataclass
class ManagerConfig:
    follow_interval_s: float = 0.25
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 30.0
    content_refusals_to_reject: int = 2


class ClaimManager:
    def __init__(self, *, engine: IngestEngine, store_path: str | Path, agent: Identity, prover: Prover,
                 circuits: Mapping[bytes, Any], blinding_keys: Mapping[bytes, bytes],
                 policy_params: Callable[[bytes], TriggerParams | None],
                 paid_amount: Callable[[bytes], int | None], sender: ClaimSender, metrics: AgentMetrics,
                 config: ManagerConfig | None = None, clock: Callable[[], int] | None = None,
                 oracle_set: Callable[[], tuple[int, int]] | None = None,
                 ledger_rejection: Callable[[ClaimRecord], str | None] | None = None,
                 claim_window_ms: Callable[[bytes], int | None] | None = None) -> None:
        self.engine = engine
        self.store_path = Path(store_path)
        self.agent = agent
        self.prover = prover
        self.circuits = circuits  # circuit_id -> BuiltCircuit
        self.blinding_keys = blinding_keys
        self.policy_params = policy_params  # policy_id -> its trigger on the ledger
        self.paid_amount = paid_amount  # claim_id -> amount paid on the ledger, or None
        self.oracle_set = oracle_set or (lambda: (0, 0))  # (n, k) of the ledger's oracle set
        self.ledger_rejection = ledger_rejection or (lambda rec: None)  # why the ledger never pays it
        self.sender = sender
        self.metrics = metrics
        self.config = config or ManagerConfig()
        self.clock = clock or (lambda: time.time_ns() // 1_000_000)
        self.records: dict[bytes, ClaimRecord] = {}
        self._to_prove: asyncio.Queue[bytes] = asyncio.Queue()
        self.proving: bytes | None = None  # one of the claims being proved now (status page)
        self._proving: set[bytes] = set()
        self.claim_window_ms = claim_window_ms  # policy_id -> its claim window (proving order)
        self.wake = asyncio.Event()
        # DESIGN §15: a quarantined device's claims are held (kept, not sent) until it is released.
        self.held: Callable[[bytes], bool] = lambda device_id: engine.anomaly.quarantined(device_id) is not None

    # -- inputs --
    def load(self, rows: Sequence[Mapping[str, Any]]) -> None:
        for row in rows:
            rec = ClaimRecord.from_row(row)
            self.records[rec.claim_id] = rec
            if rec.status is ClaimStatus.DETECTED:
                self._to_prove.put_nowait(rec.claim_id)
        self._gauge()

    def on_detected(self, windows: Sequence[Window]) -> None:
        """Called on the loop after the engine committed these windows as detected claims."""
        now = self.clock()
        for w in windows:
            if w.claim_id in self.records:
                continue
            self.records[w.claim_id] = ClaimRecord.from_window(w, now)
            self.metrics.claim_transitions.labels(ClaimStatus.DETECTED.value).inc()
            self._to_prove.put_nowait(w.claim_id)
            log.info("incident detected: claim %s, device %s seqs %d..%d", w.claim_id.hex()[:12],
                     w.device_id.hex()[:12], w.start_seq, w.end_seq)
        self._gauge()

    def ledger_changed(self) -> None:
        self.wake.set()

    # -- state changes (committed before they count) --
    async def _apply(self, rec: ClaimRecord, event: ClaimEvent, **values: Any) -> None:
        new = transition(rec.status, event)
        now = self.clock()
        if new in FINAL:
            values.setdefault("decided_ms", now)
        await self.engine.update_claim(rec.claim_id, {"status": new.value, **values})
        for k, v in values.items():
            setattr(rec, k, v)
        if new is not rec.status:
            self.metrics.claim_transitions.labels(new.value).inc()
            log.info("claim %s: %s -> %s%s", rec.claim_id.hex()[:12], rec.status.value, new.value,
                     f" ({values['reason']})" if values.get("reason") else "")
        rec.status = new
        self._gauge()

    def _gauge(self) -> None:
        counts = {s: 0 for s in ClaimStatus}
        for rec in self.records.values():
            counts[rec.status] += 1
        for s, k in counts.items():
            self.metrics.claims.labels(s.value).set(k)

    def counts(self) -> dict[str, int]:
        out = {s.value: 0 for s in ClaimStatus}
        for rec in self.records.values():
            out[rec.status.value] += 1
        return out

    # -- the loops --
    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._prove_loop())
            tg.create_task(self._follow_loop())

    async def _prove_loop(self) -> None:
        # Every detected claim goes to the prover at once (issue 15): the pool runs one proof per
        # core and takes the waiting ones earliest claim deadline first, so a burst of incidents
        # no longer queues behind a single proof at a time.
        async with asyncio.TaskGroup() as tg:
            while True:
                cid = await self._to_prove.get()
                rec = self.records.get(cid)
                if rec is None or rec.status is not ClaimStatus.DETECTED or cid in self._proving:
                    continue
                self._proving.add(cid)
                self.proving = cid
                tg.create_task(self._prove_one(rec))

    async def _prove_one(self, rec: ClaimRecord) -> None:
        try:
            await self._prove(rec)
        finally:
            self._proving.discard(rec.claim_id)
            self.proving = next(iter(self._proving), None)
        self.wake.set()

    def _deadline(self, rec: ClaimRecord) -> float:
        """When the ledger stops taking this claim (end_ts + the policy's claim window)."""
        window = self.claim_window_ms(rec.window.policy_id) if self.claim_window_ms is not None else None
        return float(rec.window.end_ts + (window or 0))

    async def _prove(self, rec: ClaimRecord) -> None:
        if self.paid_amount(rec.claim_id) is not None:
            await self._apply(rec, ClaimEvent.PAID, paid=self.paid_amount(rec.claim_id))
            return
        try:
            signed, seconds = await self._make_claim(rec)
        except FaultproofError as e:
            log.error("claim %s cannot be proved: %s", rec.claim_id.hex()[:12], e)
            await self._apply(rec, ClaimEvent.PROVE_FAILED, reason=e.reason.value)
            return
        self.metrics.prove_seconds.observe(seconds)
        await self._apply(rec, ClaimEvent.PROVED, signed=signed.encode(), proved_ms=self.clock(),
                          prove_seconds=round(seconds, 3))
        rec.next_at = 0.0  # send at once

    async def _make_claim(self, rec: ClaimRecord) -> tuple[SignedClaim, float]:
        from faultproof.zk.statement import Witness

        w = rec.window
        built = self.circuits.get(w.circuit_id)
        if built is None:
            raise FaultproofError(Reason.UNKNOWN_CIRCUIT, "no proving key for this claim's circuit")
        params = self.policy_params(w.policy_id)
        if params is None:
            raise FaultproofError(Reason.UNKNOWN_POLICY, "the policy is not in the ledger view")
        key = self.blinding_keys.get(w.device_id)
        if key is None:
            raise FaultproofError(Reason.UNKNOWN_DEVICE, "no blinding key for this device")
        rows: list[FrameRow] = await asyncio.to_thread(load_window, self.store_path, w.device_id, w.epoch,
                                                       w.start_seq, w.end_seq)
        n = w.end_seq - w.start_seq
        if [r.seq for r in rows] != list(range(w.start_seq, w.end_seq + 1)) or not all(r.linked for r in rows[1:]):
            raise FaultproofError(Reason.NOT_FOUND, "the window's frames are no longer stored complete")
        readings = rows[1:]
        blindings = await asyncio.to_thread(lambda: [chain.blinding_value(key, r.seq) for r in readings])
        witness = Witness.build(readings=[r.reading for r in readings], timestamps=[r.ts for r in readings],
                                blindings=blindings, c_start=int.from_bytes(rows[0].chain, "big"),
                                t_start=rows[0].ts, params=params, n=n)
        if chain.chain_to_bytes(witness.public.c_end) != rows[-1].chain:
            raise FaultproofError(Reason.CHAIN_BROKEN, "the stored window does not chain to its end frame")
        started = time.perf_counter()
        proof = await self.prover.prove(built, witness, deadline=self._deadline(rec))
        seconds = time.perf_counter() - started

        def signed_frame(r: FrameRow) -> SignedFrame:
            return SignedFrame(frame=Frame(device_id=w.device_id, epoch=w.epoch, seq=r.seq, ts_ms=r.ts,
                                           chain=r.chain), signature=r.signature)

        claim = Claim(policy_id=w.policy_id, start=signed_frame(rows[0]), end=signed_frame(rows[-1]), proof=proof,
                      agent_id=self.agent.public_key, created_ms=self.clock())
        assert claim.claim_id == rec.claim_id
        return claim.sign(self.agent), seconds

    async def _follow_loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self.wake.wait(), self.config.follow_interval_s)
            except TimeoutError:
                pass
            self.wake.clear()
            # Claims are followed up concurrently (at most MAX_CLAIMS_PER_BATCH at a time), so the
            # sends of a burst meet in the sender's gossip batch instead of waiting in line.
            slots = asyncio.Semaphore(MAX_CLAIMS_PER_BATCH)
            async with asyncio.TaskGroup() as tg:
                for rec in list(self.records.values()):
                    if rec.status in FINAL and rec.status is not ClaimStatus.REJECTED:
                        continue  # a rejected claim is still watched for a payout on the ledger
                    await slots.acquire()
                    tg.create_task(self._follow_guarded(rec, slots))

    async def _follow_guarded(self, rec: ClaimRecord, slots: asyncio.Semaphore) -> None:
        try:
            await self._follow(rec)
        except FaultproofError as e:
            log.warning("claim %s follow-up: %s", rec.claim_id.hex()[:12], e)
        finally:
            slots.release()

    def quorum(self) -> int:
        n, k = self.oracle_set()
        return rejection_quorum(n, k, self.config.content_refusals_to_reject)

    async def _decide(self, rec: ClaimRecord, oracle_status: str | None = None) -> bool:
        """Apply what `agent.core.follow_up` decides from what is known now; True if it moved."""
        final = rec.status in FINAL  # only a payout can still follow: no need to ask the ledger why not
        event = follow_up(rec.status, paid=self.paid_amount(rec.claim_id), rejecters=rec.rejected_by.keys(),
                          quorum=self.quorum(), ledger_rejection=None if final else self.ledger_rejection(rec),
                          oracle_status=oracle_status)
        if event is None:
            return False
        if event is ClaimEvent.PAID:
            await self._apply(rec, event, paid=self.paid_amount(rec.claim_id))
        elif event is ClaimEvent.REJECTED:
            reason = self.ledger_rejection(rec) or _reason_text(sorted(
                {r for r in rec.rejected_by.values() if r}))
            await self._apply(rec, event, reason=reason)
        else:
            await self._apply(rec, event)
            self.wake.set()
        return True

    async def _follow(self, rec: ClaimRecord) -> None:
        if await self._decide(rec) or rec.status in FINAL:
            return
        if rec.status is ClaimStatus.DETECTED or rec.signed is None:
            return  # the prover has it
        if self.held(rec.window.device_id):
            return  # quarantined: held
        now = time.monotonic()
        if now < rec.next_at:
            return
        # jittered (faultproof.retry), so claims detected together do not poll in step
        rec.next_at = now + backoff_delay(rec.attempts + 1, self.config.backoff_initial_s, self.config.backoff_max_s)
        if rec.status is ClaimStatus.PROVED:
            await self._send(rec, first=True)
            return
        view = await self.sender.oracle_view(rec.claim_id)
        if view is None:
            await self._send(rec, first=False)  # no oracle answered: gossip may still reach them
            return
        url, body = view
        if body is None:
            await self._send(rec, first=False, http_first=True)  # this oracle never got it
            return
        status = body.get("status")
        if status == "rejected":
            # One oracle's word: it counts toward the quorum of rejections, it decides nothing alone.
            rec.rejected_by[url] = _reason_text(body.get("reasons") or body.get("reason"))
        else:
            rec.rejected_by.pop(url, None)  # it changed its mind (e.g. it was behind the ledger)
        await self._decide(rec, status if isinstance(status, str) else None)

    async def _send(self, rec: ClaimRecord, *, first: bool, http_first: bool = False) -> None:
        assert rec.signed is not None
        sent = False if http_first else await self.sender.publish(rec.signed)
        refused: str | None = None
        if not sent:
            answer = await self.sender.post(rec.signed)
            if answer is not None:
                url, status, body = answer
                if status < 300:
                    sent = True
                else:
                    code = (body.get("error") or {}).get("code")
                    refused = self._content_refusal(rec, url, code)
        if refused is not None and await self._decide(rec):
            return
        if sent or rec.status is not ClaimStatus.PROVED:
            values: dict[str, Any] = {"attempts": rec.attempts + 1}
            if rec.submitted_ms is None and sent:
                values["submitted_ms"] = self.clock()
                self.metrics.detect_to_claim_seconds.observe(max(0.0, (values["submitted_ms"] - rec.detected_ms) / 1000))
            if sent:
                await self._apply(rec, ClaimEvent.SENT, **values)
            else:
                rec.attempts += 1

    def _content_refusal(self, rec: ClaimRecord, url: str, code: str | None) -> str | None:
        reason = content_refusal(code)
        if reason is None:
            return None
        rec.rejected_by[url] = reason.value  # that oracle's rejection: one vote toward the quorum
        return reason.value


def _reason_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)[:200]
