"""The oracle node service: wires the pure parts (pipeline, quorum counter, ledger view) to the
outside (HTTP, gossip, the ledger, SQLite) and owns every background task of the process.

Flow of one claim (DESIGN §4, §5), whichever way it arrives (HTTP, gossip, catch-up: one claim per
claim_id):
  decode -> content checks -> ledger-state checks (on a refreshed view if they fail) -> proof in
  the verifier pool -> record the claim and OUR vote in one transaction (or reuse the vote already
  stored: a node never signs a second verdict) -> our vote through the same quorum counter as a
  peer's -> the vote leaves in a VoteBatch -> the claim is gossiped onward.
A content or proof failure raises FaultproofError and leaves nothing behind. When the counter
certifies a claim, this node posts the QC (the ledger is idempotent by claim_id); the payout
entry arriving through the ledger view marks the claim paid.

Tasks (all children of `run`'s TaskGroup, cancelled together on stop): ledger follower, gossip
claim consumer, gossip vote consumer, vote batcher, QC poster, re-gossip loop. HTTP handlers run
in aiohttp's server, which `run` starts and stops.

This file must never contain a protocol rule (those are in pipeline.py, quorum.py and the ledger's
state.py), never block the loop on a proof, and never start a task nobody waits for.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from faultproof.errors import DecodeError, FaultproofError, Reason, Stage
from faultproof.gossip import CLAIMS_TOPIC, VOTES_TOPIC
from faultproof.gossip.node import GossipNode
from faultproof.gossip.policy import SenderRateLimiter, TopicPolicy
from faultproof.gossip.settings import GossipSettings
from faultproof.identity import Identity
from faultproof.messages import (
    Approve,
    QuorumCertificate,
    Receipt,
    Reject,
    RejectBody,
    SignedClaim,
    Vote,
    VoteBatch,
)
from ledger.settlement import connect
from ledger.state import Effect, TxKind
from oracle.config import OracleConfig
from oracle.metrics import OracleMetrics
from oracle.pipeline import Checked, approve_body, check_content, check_ledger_state
from oracle.quorum import AddResult, OracleSet, QuorumCounter, Tally, Verdict, VoteOutcome
from oracle.store import ClaimRecord, Store, now_ms
from oracle.verifier import ProofVerifier, VerifyFn
from oracle.view import LedgerFollower, LedgerView

log = logging.getLogger("faultproof.oracle")

# Votes per gossip message. A VoteBatch may hold 256, but a 64-vote batch (~35 KB) keeps every
# pubsub RPC small (large RPCs are where py-libp2p is fragile) while still turning a burst of
# claims into a handful of messages.
VOTES_PER_MESSAGE = 64
VOTE_MESSAGE_MAX_BYTES = 64 * 1024


class GossipDown(Exception):
    """The gossip layer stopped under us. The node exits so its supervisor restarts it: all state
    is in SQLite, and a restart rejoins the mesh and catches up (crash-only)."""

FINAL_STATUSES = ("rejected", "paid")


def _vote_kind(v: Vote) -> str:
    return "approve" if isinstance(v, Approve) else "reject"


@dataclass(frozen=True)
class Accepted:
    """What POST /v1/claims answers with 202."""

    claim_id: bytes
    status: str
    vote: str | None = None  # our vote: approve | reject | None (not a member)
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"claim_id": self.claim_id.hex(), "status": self.status}
        if self.vote is not None:
            out["vote"] = self.vote
        if self.reason is not None:
            out["reason"] = self.reason
        return out


class OracleNode:
    def __init__(self, config: OracleConfig, identity: Identity, *,
                 gossip_settings: GossipSettings | None = None, verify_fn: VerifyFn | None = None) -> None:
        self.config = config
        self.identity = identity
        self.oracle_id = identity.public_key
        self.metrics = OracleMetrics()
        self.store = Store(config.db_path)
        t = config.tuning
        self.verifier = ProofVerifier(t.verify_workers, verify_fn, self.metrics.verify_seconds.observe)
        self.gossip = GossipNode(
            identity, config.gossip_port, bootstrap=config.bootstrap,
            topics={
                # A SignedClaim is < 2 KB; agents send a few per second, oracles re-gossip theirs.
                CLAIMS_TOPIC: TopicPolicy(max_size=4096, rate_per_s=100.0, burst=1000),
                VOTES_TOPIC: TopicPolicy(max_size=VOTE_MESSAGE_MAX_BYTES, rate_per_s=100.0, burst=1000),
            },
            registry=self.metrics.registry, settings=gossip_settings)
        self._session: aiohttp.ClientSession | None = None
        self.follower: LedgerFollower | None = None
        self.counter: QuorumCounter | None = None
        self._agent_limiter = SenderRateLimiter(t.agent_rate_per_s, t.agent_burst)
        self._device_limiter = SenderRateLimiter(t.agent_rate_per_s, t.agent_burst)
        self._inflight: dict[bytes, asyncio.Future[Accepted]] = {}
        self._first_seen: dict[bytes, float] = {}  # claim_id -> monotonic time, for the latency metric
        self._vote_queue: asyncio.Queue[Vote] = asyncio.Queue()
        self._qc_queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._qc_last_post: dict[bytes, float] = {}
        self._claim_slots = asyncio.Semaphore(32)
        self._allowed_claims: frozenset[bytes] = frozenset()
        self._members: frozenset[bytes] = frozenset()
        self.ready = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.http_port: int | None = None

    # ================================================================== lifecycle

    async def run(self, stop: asyncio.Event) -> None:
        """Start everything, serve until `stop` is set, then stop everything."""
        self._session = aiohttp.ClientSession()
        try:
            client = connect(self.config.ledger_url, session=self._session)
            self.follower = LedgerFollower(client, self.config.tuning.ledger_wait_s, self._on_effects,
                                           self.store.save_head, registry=self.metrics.registry)
            await self._start_http()  # /healthz answers 503 until we are synced
            view = await self.follower.bootstrap(self.config.ledger_id)
            self._install_oracle_set(view)
            self._rebuild_from_store()
            self._refresh_allow_lists()
            await self.gossip.start()
            self.gossip.set_pending_provider(CLAIMS_TOPIC, self._pending_claim_payloads)
            self.gossip.set_pending_provider(VOTES_TOPIC, self._pending_vote_payloads)
            self._update_claim_gauges()
            self.ready.set()
            log.info("oracle %s ready: ledger height %d, http %s, gossip %s", self.oracle_id.hex()[:16],
                     view.height, self.http_port, self.gossip.listen_addr)
            async with asyncio.TaskGroup() as tg:
                tasks = [
                    tg.create_task(self.follower.run(), name="ledger-follower"),
                    tg.create_task(self._consume_claims(), name="gossip-claims"),
                    tg.create_task(self._consume_votes(), name="gossip-votes"),
                    tg.create_task(self._vote_batcher(), name="vote-batcher"),
                    tg.create_task(self._qc_poster(), name="qc-poster"),
                    tg.create_task(self._regossip_loop(), name="regossip"),
                ]
                await stop.wait()
                for task in tasks:
                    task.cancel()
        finally:
            self.ready.clear()
            await self.gossip.stop()
            if self._runner is not None:
                await self._runner.cleanup()
            await self._session.close()
            self.verifier.close()
            self.store.close()

    async def _start_http(self) -> None:
        from oracle.http_api import make_app

        app = make_app(self)
        # No handler cancellation: a client hanging up must not abort a claim half-way (the claim
        # and our vote are committed together, then published; all of it runs to the end).
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.http_host, self.config.http_port)
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.http_port = sockets[0].getsockname()[1] if sockets else self.config.http_port

    @property
    def view(self) -> LedgerView:
        assert self.follower is not None and self.follower.view is not None
        return self.follower.view

    @property
    def synced(self) -> bool:
        return self.ready.is_set() and self.follower is not None and self.follower.healthy

    @property
    def is_member(self) -> bool:
        return self.counter is not None and self.oracle_id in self.counter.oracle_set.members

    # ================================================================== ledger view -> node

    def _install_oracle_set(self, view: LedgerView) -> None:
        os_ = view.state.oracle_set
        oracle_set = OracleSet(view.state.ledger_id, os_.epoch, frozenset(os_.members), os_.threshold)
        if self.counter is None:
            self.counter = QuorumCounter(oracle_set, max_open_per_voter=self.config.tuning.max_open_per_voter)
        elif self.counter.oracle_set != oracle_set:
            # A rotation: tallies of the old epoch stay as they are (their QCs remain valid for the
            # ledger's grace period); new votes are counted under the new set.
            self.counter.oracle_set = oracle_set
        members = set(os_.members)
        prev = view.state.previous_oracle_set
        if prev is not None:
            members |= set(prev.members)
        self._members = frozenset(members)

    def _refresh_allow_lists(self) -> None:
        state = self.view.state
        agents = {a for a, ag in state.agents.items() if ag.revoked_ms is None}
        self._allowed_claims = frozenset(agents | set(self._members))
        # Predicates read a frozenset we swap whole: safe from the gossip thread.
        self.gossip.set_allowed(CLAIMS_TOPIC, lambda k: k in self._allowed_claims)
        self.gossip.set_allowed(VOTES_TOPIC, lambda k: k in self._members)

    def _on_effects(self, effects: list[Effect]) -> None:
        """New ledger entries were replayed into the view (called on the loop)."""
        self.metrics.ledger_height.set(self.view.height)
        membership_changed = False
        for e in effects:
            if e.kind is TxKind.PAYOUT and e.claim_id is not None:
                self._mark_paid(e.claim_id)
            elif e.kind is TxKind.ROTATE_ORACLES:
                self._install_oracle_set(self.view)
                membership_changed = True
            elif e.kind in (TxKind.ENROL_AGENT, TxKind.REVOKE_AGENT):
                membership_changed = True
        if membership_changed:
            self._refresh_allow_lists()

    def _mark_paid(self, claim_id: bytes) -> None:
        rec = self.store.claim(claim_id)
        if rec is None or rec.status == "paid":
            return
        receipt = self.view.receipt(claim_id)
        entry = self.view.payout_entries.get(claim_id)
        with self.store.transaction():
            # The QC the ledger paid is the one to show, whether or not our own tally got there
            # first (a peer may have completed and posted it before our k-th vote arrived).
            if entry is not None and isinstance(entry.entry.tx, QuorumCertificate):
                self.store.save_qc(entry.entry.tx, paid=True)
            self.store.set_status(claim_id, "paid", receipt=receipt.encode() if receipt else None)
        self._observe_decision(claim_id)
        self._update_claim_gauges()

    # ================================================================== restart

    def _rebuild_from_store(self) -> None:
        """Counter from every kept vote; own votes re-sent; approved claims' QCs re-posted."""
        assert self.counter is not None
        for vote in self.store.votes():
            self.counter.add(vote)
        own = self.store.own_votes()
        pending = {r.claim_id for r in self.store.claims(status="pending")}
        approved = {r.claim_id for r in self.store.claims(status="approved")}
        for v in own:
            if v.claim_id in pending or v.claim_id in approved:
                self._vote_queue.put_nowait(v)
        state = self.view.state
        for cid in pending | approved:
            if state.paid_claim(cid) is not None:
                self._mark_paid(cid)
                continue
            tally = self.counter.tally(cid)
            if tally is not None and tally.verdict is not Verdict.PENDING:
                self._apply_verdict(tally)
        if own:
            log.info("restart: %d own votes on record, %d claims pending", len(own), len(pending))

    # ================================================================== claims

    async def submit_claim(self, signed: SignedClaim, source: str) -> Accepted:
        """One claim from anywhere. Raises FaultproofError (content, proof, rate) with no record."""
        self.metrics.claims_received.labels(source).inc()
        try:
            return await self._submit(signed, source)
        except FaultproofError as e:
            self.metrics.claims_dropped.labels(source, e.reason.value).inc()
            raise

    async def _submit(self, signed: SignedClaim, source: str) -> Accepted:
        if not self.synced:
            raise FaultproofError(Reason.UNAVAILABLE, "the oracle is not synced with the ledger yet")
        cid = signed.claim.claim_id
        rec = self.store.claim(cid)
        if rec is not None:
            return self._accepted(rec)
        # Same bytes in flight: share the result. Different bytes with the same claim_id (a junk
        # twin) are processed on their own, so the junk one cannot make the real one wait or fail.
        key = hashlib.sha256(signed.encode()).digest()
        fut = self._inflight.get(key)
        if fut is not None:
            return await asyncio.shield(fut)
        fut = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        try:
            result = await self._process(signed, source)
        except BaseException as e:
            fut.set_exception(e)
            fut.exception()  # retrieved: sharing waiters re-raise it, nobody else needs to
            raise
        else:
            fut.set_result(result)
            return result
        finally:
            del self._inflight[key]

    def _rate_limit(self, checked: Checked) -> None:
        now = time.monotonic()
        claim = checked.signed.claim
        if not self._agent_limiter.allow(claim.agent_id, now):
            raise FaultproofError(Reason.RATE_LIMITED, "too many claims from this agent")
        if not self._device_limiter.allow(claim.start.frame.device_id, now):
            raise FaultproofError(Reason.RATE_LIMITED, "too many claims for this device")

    async def _process(self, signed: SignedClaim, source: str) -> Accepted:
        assert self.follower is not None and self.counter is not None
        cid = signed.claim.claim_id
        arrived = time.monotonic()
        state = self.view.state
        checked = check_content(signed, state)
        self._rate_limit(checked)
        reason = None if state.paid_claim(cid) else check_ledger_state(checked, state, now_ms())
        if reason is not None:
            # DESIGN §4.3: a Reject only on a fresh view (our replica may be behind the ledger).
            await self.follower.refresh()
            state = self.view.state
            checked = check_content(signed, state)
            reason = None if state.paid_claim(cid) else check_ledger_state(checked, state, now_ms())
        # The proof is checked before ANY record or vote, a Reject included: an unproven claim
        # must not be able to get the real incident rejected.
        if not await self.verifier.verify(checked.job):
            raise FaultproofError(Reason.BAD_PROOF)
        rec = self.store.claim(cid)
        if rec is not None:  # a valid twin finished first
            return self._accepted(rec)
        state = self.view.state
        paid = state.paid_claim(cid) is not None
        own = self.store.own_vote(cid)
        new_vote: Vote | None = None
        if own is None and self.is_member and not paid:
            os_epoch = self.counter.oracle_set.epoch
            if reason is None:
                new_vote = approve_body(checked, state).approve(self.identity)
            else:
                new_vote = RejectBody(oracle_id=self.oracle_id, ledger_id=state.ledger_id,
                                      oracle_set_epoch=os_epoch, claim_id=cid, reason=reason).sign(self.identity)
            own = new_vote
        self._first_seen.setdefault(cid, arrived)  # only for claims we keep: junk must not grow it
        earlier = self.counter.tally(cid)  # peers' votes may have decided it before we saw it
        decided_earlier = earlier is not None and earlier.verdict is not Verdict.PENDING
        # One commit for the claim, our vote and whatever they decide: after a crash we have all
        # of it or none, and a burst of claims costs one fsync each instead of three.
        with self.store.transaction():
            self.store.insert_claim(signed, "pending", source)  # _mark_paid moves a paid one on
            if new_vote is not None:
                self.store.add_votes([(new_vote, True)])
                self.metrics.votes_signed.labels(_vote_kind(new_vote)).inc()
            if paid:
                self._mark_paid(cid)
            else:
                if own is not None:
                    self._count([own], origin="own")
                if decided_earlier and earlier is not None:
                    self._apply_verdict(earlier)
        if own is not None and not paid:
            self._vote_queue.put_nowait(own)
        self._update_claim_gauges()
        if source == "http":
            await self._publish(CLAIMS_TOPIC, signed.encode())
        rec = self.store.claim(cid)
        assert rec is not None
        own_reason = own.body.reason.value if isinstance(own, Reject) else None
        return Accepted(cid, rec.status, _vote_kind(own) if own is not None else None, own_reason or rec.reason)

    def _accepted(self, rec: ClaimRecord) -> Accepted:
        own = self.store.own_vote(rec.claim_id)
        return Accepted(rec.claim_id, rec.status, _vote_kind(own) if own is not None else None, rec.reason)

    async def _consume_claims(self) -> None:
        async with asyncio.TaskGroup() as tg:
            async for msg in self.gossip.subscribe(CLAIMS_TOPIC):
                try:
                    signed = SignedClaim.decode(msg.data)
                except DecodeError as e:
                    self.metrics.claims_dropped.labels("gossip", e.reason.value).inc()
                    continue
                if self.store.claim(signed.claim.claim_id) is not None:
                    continue  # known: cheaper than a task
                await self._claim_slots.acquire()
                tg.create_task(self._gossip_claim(signed))
        raise GossipDown("the claims subscription ended: gossip is down")

    async def _gossip_claim(self, signed: SignedClaim) -> None:
        try:
            await self.submit_claim(signed, "gossip")
        except FaultproofError as e:
            log.debug("dropped a gossiped claim: %s", e)
        except Exception:  # noqa: BLE001 - one bad claim must not take the consumer down
            log.exception("unexpected error on a gossiped claim")
        finally:
            self._claim_slots.release()

    # ================================================================== votes

    def _count(self, votes: Sequence[Vote], origin: str) -> list[AddResult]:
        """Every vote, ours included, goes through the counter here. Persists peers' kept votes."""
        assert self.counter is not None
        results = []
        peers_kept: list[tuple[Vote, bool]] = []
        for v in votes:
            r = self.counter.add(v)
            results.append(r)
            self.metrics.votes.labels(_vote_kind(v), origin, r.outcome.value).inc()
            if r.outcome.kept and origin != "own":
                peers_kept.append((v, False))
        with self.store.transaction():
            self.store.add_votes(peers_kept)
            for v, r in zip(votes, results, strict=True):
                if r.outcome is VoteOutcome.EQUIVOCATION and r.tally is not None:
                    self.store.add_evidence(r.tally.claim_id, v.oracle_id, r.tally.equivocations[v.oracle_id])
                    self.metrics.equivocations.inc()
                    log.warning("oracle %s equivocated on claim %s", v.oracle_id.hex()[:16],
                                r.tally.claim_id.hex()[:16])
        for r in results:
            if r.decided and r.tally is not None:
                self.metrics.decisions.labels(r.tally.verdict.value).inc()
                self._apply_verdict(r.tally)
        return results

    def _apply_verdict(self, tally: Tally) -> None:
        cid = tally.claim_id
        rec = self.store.claim(cid)
        if tally.verdict is Verdict.CERTIFIED and tally.qc is not None:
            self.store.save_qc(tally.qc)
            if self.view.state.paid_claim(cid) is not None:
                self._mark_paid(cid)
                return
            if rec is not None and rec.status == "pending":
                self.store.set_status(cid, "approved")
                self._observe_decision(cid)
            self._qc_queue.put_nowait(cid)
        elif tally.verdict is Verdict.REJECTED and rec is not None and rec.status in ("pending", "approved"):
            reason = tally.reject_reason.value if tally.reject_reason else None
            self.store.set_status(cid, "rejected", reason=reason)
            self._observe_decision(cid)
        self._update_claim_gauges()

    def _observe_decision(self, claim_id: bytes) -> None:
        started = self._first_seen.pop(claim_id, None)
        if started is not None:
            self.metrics.claim_to_decision.observe(time.monotonic() - started)

    async def _consume_votes(self) -> None:
        async for msg in self.gossip.subscribe(VOTES_TOPIC):
            try:
                batch = VoteBatch.decode(msg.data)
            except DecodeError as e:
                self.metrics.vote_batches_dropped.labels(e.reason.value).inc()
                continue
            self._count(batch.votes, origin="peer")
        raise GossipDown("the votes subscription ended: gossip is down")

    async def _vote_batcher(self) -> None:
        """Own votes leave in batches: one gossip message per burst instead of one per vote."""
        window = self.config.tuning.vote_batch_ms / 1000
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._vote_queue.get()]
            deadline = loop.time() + window
            while len(batch) < VOTES_PER_MESSAGE:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._vote_queue.get(), remaining))
                except TimeoutError:
                    break
            await self._publish(VOTES_TOPIC, VoteBatch(oracle_id=self.oracle_id, votes=tuple(batch)).encode())

    async def _publish(self, topic: str, data: bytes) -> None:
        try:
            await self.gossip.publish(topic, data)
        except FaultproofError as e:  # gossip down or stopping: re-gossip covers it later
            log.debug("publish on %s failed: %s", topic, e)

    # ================================================================== QCs

    async def _qc_poster(self) -> None:
        assert self.follower is not None
        client = self.follower.client
        while True:
            cid = await self._qc_queue.get()
            if self.view.state.paid_claim(cid) is not None:
                self._mark_paid(cid)
                continue
            qc = self.store.qc(cid)
            if qc is None:
                continue
            self._qc_last_post[cid] = time.monotonic()
            try:
                await client.submit(qc)
            except FaultproofError as e:
                self.metrics.qc_posts.labels(e.reason.value).inc()
                if e.reason is Reason.UNAVAILABLE:
                    log.warning("posting QC for %s failed: %s (the re-gossip loop retries)", cid.hex()[:16], e)
                    continue
                log.warning("ledger refused QC for %s: %s", cid.hex()[:16], e)
                if e.reason.stage is Stage.LEDGER_STATE:
                    # The ledger's own rules said no (its state moved on since we voted): final.
                    rec = self.store.claim(cid)
                    if rec is not None and rec.status != "paid":
                        self.store.set_status(cid, "rejected", reason=e.reason.value)
                        self._update_claim_gauges()
                continue
            self.metrics.qc_posts.labels("ok").inc()
            await self.follower.refresh()  # see our payout entry now rather than at the next poll

    # ================================================================== re-gossip and catch-up

    def _undecided(self) -> list[ClaimRecord]:
        give_up_ms = int(self.config.tuning.regossip_give_up_s * 1000)
        cutoff = now_ms() - give_up_ms
        out = self.store.claims(status="pending") + self.store.claims(status="approved")
        return [r for r in out if r.received_ms >= cutoff]

    async def _regossip_loop(self) -> None:
        """Gossip promises no delivery (docs: libp2p.md): until a claim is decided we re-publish it
        and our vote on it; the gossip layer's duplicate filter hides repeats from peers that have
        them. Approved claims whose payout has not appeared get their QC posted again."""
        interval = self.config.tuning.regossip_s
        while True:
            await asyncio.sleep(interval)
            undecided = self._undecided()
            if not undecided:
                continue
            ids = [r.claim_id for r in undecided]
            for rec in undecided[:200]:  # bounded per round; the rest go next round
                await self._publish(CLAIMS_TOPIC, rec.signed_claim.encode())
            own = self.store.own_votes(ids)
            for i in range(0, len(own), VOTES_PER_MESSAGE):
                chunk = tuple(own[i : i + VOTES_PER_MESSAGE])
                await self._publish(VOTES_TOPIC, VoteBatch(oracle_id=self.oracle_id, votes=chunk).encode())
            now = time.monotonic()
            for rec in undecided:
                if rec.status == "approved" and now - self._qc_last_post.get(rec.claim_id, 0) > 3 * interval:
                    self._qc_queue.put_nowait(rec.claim_id)

    def _pending_claim_payloads(self) -> list[bytes]:
        return [r.signed_claim.encode() for r in self._undecided()]

    def _pending_vote_payloads(self) -> list[bytes]:
        """Every kept vote on an undecided claim (ours and our peers'): a node that restarts
        learns the whole tally, not only our part of it."""
        votes: list[Vote] = []
        for rec in self._undecided():
            votes.extend(self.store.votes(rec.claim_id))
        return [VoteBatch(oracle_id=self.oracle_id, votes=tuple(votes[i : i + VOTES_PER_MESSAGE])).encode()
                for i in range(0, len(votes), VOTES_PER_MESSAGE)]

    # ================================================================== queries

    def _update_claim_gauges(self) -> None:
        for status, n in self.store.count_by_status().items():
            self.metrics.claims.labels(status).set(n)

    def claim_view(self, claim_id: bytes) -> dict[str, Any] | None:
        rec = self.store.claim(claim_id)
        if rec is None:
            return None
        tally = self.counter.tally(claim_id) if self.counter is not None else None
        own = self.store.own_vote(claim_id)
        votes = []
        for v in self.store.votes(claim_id):
            item: dict[str, Any] = {"oracle_id": v.oracle_id.hex(), "vote": _vote_kind(v),
                                    "own": own is not None and v.encode() == own.encode()}
            if isinstance(v, Reject):
                item["reason"] = v.body.reason.value
            else:
                item["amount"] = v.body.amount
            votes.append(item)
        qc = self.store.qc(claim_id)
        receipt: Receipt | None = Receipt.decode(rec.receipt) if rec.receipt else None
        if rec.status == "paid" and receipt is None:
            receipt = self.view.receipt(claim_id)
        paid = self.view.state.paid_claim(claim_id)
        c = rec.signed_claim.claim
        return {
            "claim_id": claim_id.hex(),
            "policy_id": rec.policy_id.hex(),
            "device_id": c.start.frame.device_id.hex(),
            "agent_id": c.agent_id.hex(),
            "start_seq": c.start.frame.seq,
            "end_seq": c.end.frame.seq,
            "status": rec.status,
            "reason": rec.reason,
            "received_ms": rec.received_ms,
            "updated_ms": rec.updated_ms,
            "source": rec.source,
            "votes": votes,
            "approvals": sum(1 for v in votes if v["vote"] == "approve"),
            "rejects": sum(1 for v in votes if v["vote"] == "reject"),
            "reasons": tally.reasons() if tally else {},
            "equivocators": sorted(o.hex() for o in tally.equivocations) if tally else [],
            "qc": qc.to_json() if qc else None,
            "paid": {"height": paid.height, "amount": paid.paid} if paid else None,
            "receipt": receipt.to_json() if receipt else None,
        }

    def claims_list(self, policy_id: bytes | None, status: str | None) -> list[dict[str, Any]]:
        return [{"claim_id": r.claim_id.hex(), "policy_id": r.policy_id.hex(), "status": r.status,
                 "reason": r.reason, "received_ms": r.received_ms, "updated_ms": r.updated_ms}
                for r in self.store.claims(policy_id, status)]

    def status(self) -> dict[str, Any]:
        view = self.follower.view if self.follower else None
        os_ = self.counter.oracle_set if self.counter else None
        evidence = self.store.evidence()
        return {
            "oracle_id": self.oracle_id.hex(),
            "peer_id": self.gossip.peer_id,
            "synced": self.synced,
            "member": self.is_member,
            "ledger": {
                "url": self.config.ledger_url,
                "ledger_id": view.state.ledger_id.hex() if view else None,
                "height": view.height if view else None,
                "head_hash": view.state.head_hash.hex() if view else None,
                "signed_head_height": view.head.height if view and view.head else None,
                "following": bool(self.follower and self.follower.connected),
                "integrity_error": str(view.integrity_error) if view and view.integrity_error else None,
                "problem": self.follower.problem if self.follower else None,  # e.g. ledger_time_skew
            },
            "oracle_set": {"epoch": os_.epoch, "n": os_.n, "k": os_.threshold,
                           "members": sorted(m.hex() for m in os_.members)} if os_ else None,
            "claims": self.store.count_by_status(),
            "equivocations": [{"claim_id": cid.hex(), "oracle_id": oid.hex(), "votes": len(vs)}
                              for (cid, oid), vs in evidence.items()],
            "ignored_votes": dict(self.counter.ignored) if self.counter else {},
            "gossip": self.gossip.health(),
        }

