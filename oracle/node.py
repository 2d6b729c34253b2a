"""The oracle node service: carries out what the claim machine (oracle/claim.py) decides, and wires
it and the other pure parts (pipeline, ledger view) to the outside (HTTP, gossip, the ledger,
SQLite). It owns every background task of the process.

Flow of one claim (DESIGN §4, §5, §10), whichever way it arrives (HTTP, gossip, catch-up: one claim
per claim_id):
  decode -> content checks -> the sender's (agent's) rate limit -> ledger-state checks (on a
  refreshed view if they fail) -> proof in the verifier pool -> the device's rate limit (only a
  proven claim spends it) -> `ClaimChecked` into the machine -> its actions (record the claim, sign
  and record our vote, count it like a peer's) in ONE store transaction -> the vote leaves in a
  VoteBatch -> an HTTP claim is gossiped before the 202 (and re-gossiped from the store until
  decided, across restarts).
A content or proof failure raises FaultproofError and leaves nothing behind. Peers' votes, payouts
seen on the ledger, QC refusals, rotations and the passing of time are events too; the machine's
`PostQC` puts a claim on the QC poster's queue, `Recheck` on the recheck queue.

Tasks (all children of `run`'s TaskGroup, cancelled together on stop): ledger follower, gossip
claim consumer, gossip vote consumer, vote batcher, QC poster, rechecker, re-gossip loop, chain
vote publisher (EVM backend), the group service's re-gossip loop and chain poster (the latter
idle on the SQLite backend), and the device-slash service (oracle/device_slash_node.py: shares,
posting turns; idle on the SQLite backend). HTTP handlers run in aiohttp's server, which `run` starts and stops.

This file must never contain a protocol rule (those are in claim.py, pipeline.py, quorum.py and
the ledger's state.py), never set a claim status itself (only `SetStatus` actions do), never block
the loop on a proof, and never start a task nobody waits for. Time for the rules comes from one
clock, `self.clock` (milliseconds).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

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
    ChainApprove,
    ClaimBatch,
    DeviceSlashShare,
    PayoutBody,
    QuorumCertificate,
    Receipt,
    Reject,
    SignedClaim,
    SuspensionShare,
    Vote,
    VoteBatch,
    decode_any,
)
from faultproof.retry import Reachability, unless_stopped
from ledger.settlement import connect
from ledger.state import Effect, LedgerState, TxKind, gossip_senders
from oracle import claim as cm
from oracle.claim import ClaimMachine, ClaimStatus
from oracle.config import OracleConfig
from oracle.device_slash_node import DEVICE_SLASHES_TOPIC, DeviceSlashService
from oracle.group_node import GroupService, is_group_message
from oracle.metrics import OracleMetrics
from oracle.pipeline import Checked, approve_body, check_content, check_ledger_state, retry_at
from oracle.store import ClaimRecord, Store, now_ms
from oracle.suspension import SuspensionDesk
from oracle.suspension_gossip import SUSPENSIONS_TOPIC, SuspensionGossip
from oracle.transport import Transport
from oracle.verifier import ProofVerifier, VerifyFn
from oracle.view import LedgerFollower, LedgerView

log = logging.getLogger("faultproof.oracle")
Checked_T = TypeVar("Checked_T")
Arrived_T = TypeVar("Arrived_T")

# Votes per gossip message. A VoteBatch may hold 256, but a 64-vote batch (~35 KB) keeps every
# pubsub RPC small (large RPCs are where py-libp2p is fragile) while still turning a burst of
# claims into a handful of messages.
VOTES_PER_MESSAGE = 64
VOTE_MESSAGE_MAX_BYTES = 64 * 1024


def gossiped_claims(data: bytes) -> tuple[SignedClaim, ...]:
    """The claims of one message on the claims topic: a bare SignedClaim or a ClaimBatch.
    Raises only DecodeError; a batch with an undecodable claim is refused whole (its sender
    built it wrong)."""
    msg = decode_any(data, (SignedClaim, ClaimBatch))
    return msg.claims if isinstance(msg, ClaimBatch) else (msg,)  # type: ignore[return-value]


class GossipDown(Exception):
    """The gossip layer stopped under us. The node exits so its supervisor restarts it: all state
    is in SQLite, and a restart rejoins the mesh and catches up (crash-only)."""


FINAL_STATUSES = (ClaimStatus.REJECTED, ClaimStatus.PAID)


def _vote_kind(v: Vote) -> str:
    return "approve" if isinstance(v, Approve) else "reject"


@dataclass(frozen=True)
class Accepted:
    """What POST /v1/claims answers with 202."""

    claim_id: bytes
    status: str
    vote: str | None = None  # our vote: approve | reject | None (not a member, or a recheck is due)
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
                 gossip_settings: GossipSettings | None = None, verify_fn: VerifyFn | None = None,
                 clock: Callable[[], int] = now_ms, transport: Transport | None = None,
                 gossip_identity: Identity | None = None) -> None:
        self.config = config
        self.identity = identity
        self.oracle_id = identity.public_key
        self.clock = clock
        self.metrics = OracleMetrics()
        self.store = Store(config.db_path)
        t = config.tuning
        self.verifier = ProofVerifier(t.verify_workers, verify_fn, self.metrics.verify_seconds.observe)
        # libp2p GossipSub in production; any Transport (an in-memory one in tests) if given.
        # hardware2 hook (DESIGN §15): a token-keyed oracle gossips under a separate file key.
        self.transport: Transport = transport or GossipNode(
            gossip_identity or identity, config.gossip_port, bootstrap=config.bootstrap,
            topics={
                # A SignedClaim is < 2 KB; agents send them alone or in ClaimBatches of up to 32
                # (DESIGN §16); oracles re-gossip theirs. The rate counts messages.
                CLAIMS_TOPIC: TopicPolicy(max_size=ClaimBatch.MAX_SIZE, rate_per_s=100.0, burst=1000),
                VOTES_TOPIC: TopicPolicy(max_size=VOTE_MESSAGE_MAX_BYTES, rate_per_s=100.0, burst=1000),
                # hardware2 (DESIGN §15): suspension signatures with their evidence, rare.
                SUSPENSIONS_TOPIC: TopicPolicy(max_size=SuspensionShare.MAX_SIZE, rate_per_s=10.0, burst=100),
                # DESIGN §13: device-slash shares with their evidence (EVM backend), rare.
                DEVICE_SLASHES_TOPIC: TopicPolicy(max_size=DeviceSlashShare.MAX_SIZE, rate_per_s=10.0, burst=100),
            },
            registry=self.metrics.registry, settings=gossip_settings)
        self._session: aiohttp.ClientSession | None = None
        self.follower: LedgerFollower | None = None
        self.suspensions: SuspensionGossip | None = None  # hardware2: started once synced (DESIGN §15)
        self.machine: ClaimMachine | None = None
        self._agent_limiter = SenderRateLimiter(t.agent_rate_per_s, t.agent_burst)
        self._device_limiter = SenderRateLimiter(t.agent_rate_per_s, t.agent_burst)
        self._inflight: dict[bytes, asyncio.Future[Accepted]] = {}
        self._first_seen: dict[bytes, float] = {}  # claim_id -> monotonic time, for the latency metric
        self._vote_queue: asyncio.Queue[Vote] = asyncio.Queue()
        self._qc_queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._recheck_queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._qc_last_post: dict[bytes, float] = {}
        self._claim_slots = asyncio.Semaphore(32)
        self._allowed_claims: frozenset[bytes] = frozenset()
        self._members: frozenset[bytes] = frozenset()
        self.ready = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.http_port: int | None = None
        self.group = GroupService(self)  # econ2: corroborated claims (DESIGN §14, oracle/group_node.py)
        self.slashes = DeviceSlashService(self)  # DESIGN §13: device slashing on the pool contract
        # DESIGN §13, the EVM backend: chain votes beside the Ed25519 ones, and who posts a payout
        self.chain: Any = None  # ledger.evm.settlement.EvmSettlement when ledger_url is evm+
        self.chain_key: Any = None  # ledger.evm.typed.ChainKey (config.chain_key_file)
        self.chain_votes: Any = None  # oracle.chain_votes.ChainVotes
        self._chain_queue: asyncio.Queue[ChainApprove] = asyncio.Queue()
        self._qc_formed: dict[bytes, float] = {}  # claim_id -> monotonic time our QC formed
        self._post_later: set[bytes] = set()  # claims whose posting turn is scheduled

    # ================================================================== lifecycle

    async def run(self, stop: asyncio.Event) -> None:
        """Start everything, serve until `stop` is set, then stop everything."""
        self._session = aiohttp.ClientSession()
        try:
            client = connect(self.config.ledger_url, session=self._session)
            if self.config.ledger_url.startswith("evm+"):
                self._open_chain(client)
            self.follower = LedgerFollower(client, self.config.tuning.ledger_wait_s, self._on_effects,
                                           self.store.save_head, registry=self.metrics.registry)
            await self._start_http()  # /readyz answers 503 until we are synced
            # The ledger may be down for long: SIGTERM (stop) must end the wait at once.
            _, view = await unless_stopped(self.follower.bootstrap(self.config.ledger_id), stop)
            if view is None:
                return
            self._install_oracle_set(view)
            self._rebuild_from_store()
            self.group.restore()  # econ2: corroborated claims as they were (oracle/group_node.py)
            self._refresh_allow_lists()
            await self.transport.start()
            self.transport.set_pending_provider(CLAIMS_TOPIC, self._pending_claim_payloads)
            self.transport.set_pending_provider(VOTES_TOPIC, self._pending_vote_payloads)
            self._start_suspensions(client)  # hardware2 hook (DESIGN §15)
            self.slashes.open()  # DESIGN §13: idle on the SQLite backend
            self.update_claim_gauges()
            self.ready.set()
            log.info("oracle %s ready: ledger height %d, http %s, gossip %s", self.oracle_id.hex()[:16],
                     view.height, self.http_port, self.transport.peer_id)
            async with asyncio.TaskGroup() as tg:
                tasks = [
                    tg.create_task(self.follower.run(), name="ledger-follower"),
                    tg.create_task(self._consume_claims(), name="gossip-claims"),
                    tg.create_task(self._consume_votes(), name="gossip-votes"),
                    tg.create_task(self._vote_batcher(), name="vote-batcher"),
                    tg.create_task(self._qc_poster(), name="qc-poster"),
                    tg.create_task(self._rechecker(), name="rechecker"),
                    tg.create_task(self._regossip_loop(), name="regossip"),
                    tg.create_task(self.group.run(), name="group-regossip"),  # econ2
                    tg.create_task(self._chain_vote_publisher(), name="chain-votes"),  # DESIGN §13
                    tg.create_task(self.group.chain_poster(), name="group-chain-poster"),  # DESIGN §13, econ2
                    tg.create_task(self.slashes.run(), name="device-slashes"),  # DESIGN §13
                ]
                await stop.wait()
                for task in tasks:
                    task.cancel()
        finally:
            self.ready.clear()
            if self.suspensions is not None:  # hardware2 hook
                await self.suspensions.stop()
            await self.transport.stop()
            if self._runner is not None:
                await self._runner.cleanup()
            await self._session.close()
            self.verifier.close()
            self.store.close()
            self.group.close()  # econ2

    async def _start_http(self) -> None:
        """Listen; a port in use is an OSError the command line names (oracle/cli.py)."""
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
        return self.machine is not None and self.machine.is_member

    def readiness_problems(self) -> list[str]:
        """Why this node cannot do its job now (empty: ready), for /readyz and operators."""
        if self.follower is None or not self.ready.is_set():
            return [f"not synced with the ledger at {self.config.ledger_url} yet (unreachable or replaying)"]
        out = []
        if not self.follower.connected:
            out.append(f"ledger at {self.config.ledger_url} unreachable")
        problem = self.follower.problem
        if problem is not None:
            out.append(problem)
        if self.transport.health().get("state") != "running":
            out.append("gossip is not running")
        if not self.is_member:
            out.append(f"not a member of the ledger's current oracle set (epoch {self.view.state.oracle_set.epoch})")
        return out

    # ================================================================== ledger view -> node

    def _install_oracle_set(self, view: LedgerView) -> None:
        state = view.state
        os_ = state.oracle_set
        current = os_  # the ledger's OracleSet is the counter's (faultproof/signers.py)
        prev = state.previous_oracle_set
        previous = until = None
        if prev is not None:
            # Q3: the ledger still takes the previous epoch's QCs for its grace period, so its
            # votes are still counted until then (item 13.1).
            previous = prev
            until = os_.since_ms + state.genesis.rotation_grace_ms
        if self.machine is None:
            self.machine = ClaimMachine(self.oracle_id, current, previous=previous, previous_until_ms=until,
                                        max_open_per_voter=self.config.tuning.max_open_per_voter)
        else:
            self._execute(self.machine.handle(cm.EpochRotated(current, previous, until, self.clock())))
        members = set(os_.members)
        if prev is not None:
            members |= set(prev.members)
        self._members = frozenset(members)
        self.metrics.member.set(1 if self.is_member else 0)
        self.metrics.oracle_set_epoch.set(os_.epoch)

    def _refresh_allow_lists(self) -> None:
        state = self.view.state
        agents = {a for a, ag in state.agents.items() if ag.revoked_ms is None}
        self._allowed_claims = frozenset(agents | set(self._members))
        # hardware2 hook (DESIGN §15 H8): a token-keyed peer gossips under its bound transport key.
        claim_senders = gossip_senders(state, self._allowed_claims)
        vote_senders = gossip_senders(state, self._members)
        # Predicates read a frozenset we swap whole: safe from the gossip thread.
        self.transport.set_allowed(CLAIMS_TOPIC, lambda k: k in claim_senders)
        self.transport.set_allowed(VOTES_TOPIC, lambda k: k in vote_senders)
        self.transport.set_allowed(SUSPENSIONS_TOPIC, lambda k: k in vote_senders)  # hardware2: members only
        self.transport.set_allowed(DEVICE_SLASHES_TOPIC, lambda k: k in vote_senders)  # members only

    def _start_suspensions(self, client: Any) -> None:
        """hardware2 (DESIGN §15): gossip suspension signatures; an agent's report reaches the
        desk through `self.suspensions.report(...)`."""
        desk = SuspensionDesk(self.identity, max_skew_ms=self.view.state.genesis.max_skew_ms)
        self.suspensions = SuspensionGossip(desk, self.transport, lambda: self.view.state, client.submit, self.clock)
        self.suspensions.start()

    def _on_effects(self, effects: list[Effect]) -> None:
        """New ledger entries were replayed into the view (called on the loop)."""
        self.metrics.ledger_height.set(self.view.height)
        if self.machine is None:
            # Still bootstrapping (the follower replays history before the machine exists):
            # _rebuild_from_store reconciles every kept claim with the payouts once it does.
            return
        membership_changed = False
        for e in effects:
            if e.kind is TxKind.PAYOUT and e.claim_id is not None:
                self._payout_seen(e.claim_id)
            elif e.kind is TxKind.GROUP_PAYOUT and e.claim_id is not None:  # econ2
                self.group.payout_seen(e.claim_id)
            elif e.kind is TxKind.ROTATE_ORACLES:
                self._install_oracle_set(self.view)
                membership_changed = True
            elif e.kind in (TxKind.ENROL_AGENT, TxKind.REVOKE_AGENT, TxKind.BIND_TRANSPORT_KEY):  # hardware2: H8
                membership_changed = True
        if membership_changed:
            self._refresh_allow_lists()
        self.slashes.slashes_seen(effects)  # DESIGN §13: a device slashed on chain ends its certificate

    def _payout_seen(self, claim_id: bytes) -> None:
        assert self.machine is not None
        self.chain_forget(claim_id)  # DESIGN §13: nothing left to send for it
        entry = self.view.payout_entries.get(claim_id)
        # The QC the ledger paid is the one to show, whether or not our own tally got there first.
        qc = entry.entry.tx if entry is not None and isinstance(entry.entry.tx, QuorumCertificate) else None
        self._execute(self.machine.handle(cm.PayoutSeen(claim_id, qc)))

    # ================================================================== carrying out actions

    def _execute(self, actions: Sequence[cm.Action]) -> None:
        """Carry out the machine's actions in order, in one store transaction (one fsync): after a
        crash we have a claim, our vote on it and what they decided, or none of it."""
        if not actions:
            return
        with self.store.transaction():
            for a in actions:
                self._do(a)
        self.update_claim_gauges()

    def _do(self, a: cm.Action) -> None:  # noqa: C901 - one branch per action type
        assert self.machine is not None
        if isinstance(a, cm.SaveClaim):
            self.store.insert_claim(a.signed, a.status, a.source)
        elif isinstance(a, cm.SetStatus):
            receipt = None
            if a.status is ClaimStatus.PAID:
                r = self.view.receipt(a.claim_id)
                receipt = r.encode() if r is not None else None
            self.store.set_status(a.claim_id, a.status, reason=a.reason, receipt=receipt)
        elif isinstance(a, cm.SignVote):
            vote: Vote = (a.body.approve(self.identity) if isinstance(a.body, PayoutBody)
                          else a.body.sign(self.identity))
            self.metrics.votes_signed.labels(_vote_kind(vote)).inc()
            for b in self.machine.handle(cm.VotesArrived((vote,), "own")):
                self._do(b)
        elif isinstance(a, cm.SaveVotes):
            self.store.add_votes([(v, a.own) for v in a.votes])
        elif isinstance(a, cm.PublishVotes):
            for v in a.votes:
                self._vote_queue.put_nowait(v)
                self._chain_approve(v)
        elif isinstance(a, cm.SaveEvidence):
            self.store.add_evidence(a.claim_id, a.oracle_id, a.votes)
            self.metrics.equivocations.inc()
            log.warning("oracle %s equivocated on claim %s", a.oracle_id.hex()[:16], a.claim_id.hex()[:16])
        elif isinstance(a, cm.SaveQC):
            self.store.save_qc(a.qc, replace=a.replace)
            self._qc_formed.setdefault(a.qc.body.claim_id, time.monotonic())
        elif isinstance(a, cm.PostQC):
            self._qc_queue.put_nowait(a.claim_id)
        elif isinstance(a, cm.Recheck):
            self._recheck_queue.put_nowait(a.claim_id)
        elif isinstance(a, cm.Decided):
            self.metrics.decisions.labels(a.status.value).inc()
            started = self._first_seen.pop(a.claim_id, None)
            if started is not None:
                self.metrics.claim_to_decision.observe(time.monotonic() - started)
        elif isinstance(a, cm.Counted):
            for v, outcome in a.results:
                self.metrics.votes.labels(_vote_kind(v), a.origin, outcome.value).inc()
        elif isinstance(a, cm.Refused):
            log.debug("claim %s: %s refused in %s: %s", a.claim_id.hex()[:16], a.move, a.status, a.why)
        else:  # pragma: no cover - a new action type without a branch here is a bug
            raise AssertionError(f"unhandled action {a!r}")

    # ================================================================== restart

    def _rebuild_from_store(self) -> None:
        """The machine from every kept claim, vote and QC; its actions re-send our votes, re-post
        approved claims' QCs and recheck what waits on the clock."""
        assert self.machine is not None
        claims = [(r.signed_claim, ClaimStatus(r.status), r.reason) for r in self.store.claims(limit=10**9)]
        self._execute(self.machine.restore(claims, self.store.votes_with_own(), self.store.qcs()))
        state = self.view.state
        for st in self.machine.undecided():
            if state.paid_claim(st.claim_id) is not None:
                self._payout_seen(st.claim_id)
        log.info("restart: %d claims on record, %d undecided", len(claims), len(self.machine.undecided()))

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
        assert self.follower is not None
        refreshed = self.view.state.policy(signed.claim.policy_id) is None
        if refreshed:
            # A policy issued a moment ago may not be on our replica yet (DESIGN §4.2): whether
            # this is a lone claim or a part of a corroborated one is decided on a view refreshed
            # after it arrived, or a part would be checked (and refused) as a lone claim.
            await self.follower.refresh()
        if self.group.owns(signed):  # econ2: a part of a corroborated claim (oracle/group_node.py)
            return Accepted(await self.group.submit_part(signed, source, refreshed), "pending")
        cid = signed.claim.claim_id
        if self.store.claim(cid) is not None:
            return self._accepted(cid)
        # Same bytes in flight: share the result. Different bytes with the same claim_id (a junk
        # twin) are processed on their own, so the junk one cannot make the real one wait or fail.
        key = hashlib.sha256(signed.encode()).digest()
        fut = self._inflight.get(key)
        if fut is not None:
            return await asyncio.shield(fut)
        fut = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        try:
            result = await self._process(signed, source, refreshed)
        except BaseException as e:
            fut.set_exception(e)
            fut.exception()  # retrieved: sharing waiters re-raise it, nobody else needs to
            raise
        else:
            fut.set_result(result)
            return result
        finally:
            del self._inflight[key]

    async def _check_state(self, signed: SignedClaim, checked: Checked | None = None,
                           ) -> tuple[Checked, Reason | None, int | None, bool]:
        """Content (unless `checked` on the current view), then ledger state (on a refreshed view
        before any Reject: DESIGN §4.3). Returns (checked, reason, retry_at_ms, paid)."""
        assert self.follower is not None
        cid = signed.claim.claim_id
        state = self.view.state
        checked = checked or check_content(signed, state)
        now = self.clock()
        reason = None if state.paid_claim(cid) else check_ledger_state(checked, state, now)
        if reason is not None:
            await self.follower.refresh()
            state = self.view.state
            checked = check_content(signed, state)
            now = self.clock()
            reason = None if state.paid_claim(cid) else check_ledger_state(checked, state, now)
        later = retry_at(reason, checked.body, state, now) if reason is not None else None
        return checked, reason, later, state.paid_claim(cid) is not None

    async def content_checked(self, check: Callable[[Arrived_T, LedgerState], Checked_T], arrived: Arrived_T,
                              refreshed: bool) -> Checked_T:
        """`check` (the rules on what arrived: a claim's, a part's, equivocation evidence's) on our
        replica. The replica may lag the ledger (a policy or device added a moment ago, a follower
        backing off after a ledger restart): what arrived is refused only on a view refreshed after
        it arrived (DESIGN §4.2). `refreshed`: it was already (junk then costs one catch-up, not two)."""
        assert self.follower is not None
        try:
            return check(arrived, self.view.state)
        except FaultproofError:
            if refreshed:
                raise
            await self.follower.refresh()
            return check(arrived, self.view.state)

    async def _process(self, signed: SignedClaim, source: str, refreshed: bool) -> Accepted:
        """`refreshed`: the view was refreshed after the claim arrived (junk costs one catch-up)."""
        assert self.machine is not None
        cid = signed.claim.claim_id
        arrived = time.monotonic()
        claim = signed.claim
        assert self.follower is not None
        checked = await self.content_checked(check_content, signed, refreshed)
        # The sender pays before the expensive proof check (item 13.2): an agent replaying a
        # device's public frames with junk proofs spends its own budget, never the device's.
        if not self._agent_limiter.allow(claim.agent_id, time.monotonic()):
            raise FaultproofError(Reason.RATE_LIMITED, "too many claims from this agent")
        checked, reason, later, paid = await self._check_state(signed, checked)
        # The proof is checked before ANY record or vote, a Reject included: an unproven claim
        # must not be able to get the real incident rejected.
        if not await self.verifier.verify(checked.job):
            raise FaultproofError(Reason.BAD_PROOF)
        if self.store.claim(cid) is not None:  # a valid twin finished first
            return self._accepted(cid)
        if not self._device_limiter.allow(claim.start.frame.device_id, time.monotonic()):
            raise FaultproofError(Reason.RATE_LIMITED, "too many claims for this device")
        self._first_seen.setdefault(cid, arrived)  # only for claims we keep: junk must not grow it
        body = approve_body(checked, self.view.state)
        self._execute(self.machine.handle(cm.ClaimChecked(signed, body, reason, later, paid, source, self.clock())))
        if source == "http":
            # Gossiped before the 202 (item 13.9); the record is already committed, so the re-gossip
            # loop (and a restart's pending provider) repeats it until it is decided.
            await self._publish(CLAIMS_TOPIC, signed.encode())
        return self._accepted(cid)

    def _accepted(self, cid: bytes) -> Accepted:
        assert self.machine is not None
        st = self.machine.claim(cid)
        rec = self.store.claim(cid)
        assert rec is not None
        own = self.store.own_vote(cid)
        reason = own.body.reason.value if isinstance(own, Reject) else rec.reason
        status = st.status.value if st is not None else rec.status
        return Accepted(cid, status, _vote_kind(own) if own is not None else None, reason)

    async def _rechecker(self) -> None:
        """Claims whose ledger-state check failed for a transient reason (or that need our vote
        after a rotation) are checked again; the proof verified already."""
        while True:
            cid = await self._recheck_queue.get()
            rec = self.store.claim(cid)
            if rec is None or self.machine is None:
                continue
            try:
                checked, reason, later, paid = await self._check_state(rec.signed_claim)
            except FaultproofError as e:  # a content failure now (e.g. the agent was revoked)
                log.info("recheck of %s: %s", cid.hex()[:16], e)
                continue
            body = approve_body(checked, self.view.state)
            self._execute(self.machine.handle(
                cm.ClaimChecked(rec.signed_claim, body, reason, later, paid, rec.source, self.clock())))

    async def _consume_claims(self) -> None:
        async with asyncio.TaskGroup() as tg:
            async for msg in self.transport.subscribe(CLAIMS_TOPIC):
                if is_group_message(msg.data):  # econ2: a GroupClaim (oracle/group_node.py)
                    tg.create_task(self.group.on_message(msg.data))
                    continue
                try:
                    claims = gossiped_claims(msg.data)
                except DecodeError as e:
                    self.metrics.claims_dropped.labels("gossip", e.reason.value).inc()
                    continue
                # A batch is only a container (DESIGN §16): each claim goes the one-claim way,
                # checked alone, so a bad claim in a batch costs the others nothing.
                for signed in claims:
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

    async def _consume_votes(self) -> None:
        async for msg in self.transport.subscribe(VOTES_TOPIC):
            if is_group_message(msg.data):  # econ2: a GroupVote (oracle/group_node.py)
                await self.group.on_message(msg.data)
                continue
            try:
                batch = decode_any(msg.data, (VoteBatch, ChainApprove))
            except DecodeError as e:
                self.metrics.vote_batches_dropped.labels(e.reason.value).inc()
                continue
            if isinstance(batch, ChainApprove):
                self._chain_approve_arrived(batch)
                continue
            assert isinstance(batch, VoteBatch) and self.machine is not None
            self._execute(self.machine.handle(cm.VotesArrived(batch.votes, "peer")))
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
            await self.transport.publish(topic, data)
        except FaultproofError as e:  # gossip down or stopping: re-gossip covers it later
            log.debug("publish on %s failed: %s", topic, e)

    # ================================================================== QCs

    async def _qc_poster(self) -> None:
        assert self.follower is not None and self.machine is not None
        client = self.follower.client
        self._qc_reach = Reachability("the ledger (posting QCs)", log)
        while True:
            cid = await self._qc_queue.get()
            if self.view.state.paid_claim(cid) is not None:
                self._payout_seen(cid)
                continue
            qc = self.store.qc(cid)
            if qc is None:
                continue
            if self.chain is not None and not self.chain_turn_due(cid, qc.body.oracle_set_epoch,
                                                                  partial(self._qc_queue.put_nowait, cid)):
                continue
            self._qc_last_post[cid] = time.monotonic()
            try:
                if self.chain is not None:
                    await self._post_chain_qc(qc)
                else:
                    await client.submit(qc)
            except FaultproofError as e:
                self.metrics.qc_posts.labels(e.reason.value).inc()
                if e.reason is Reason.UNAVAILABLE:
                    # One line per outage (faultproof.retry); the re-gossip loop re-queues the QC,
                    # and waiting the jittered backoff here keeps n posters off a ledger coming back.
                    await asyncio.sleep(self._qc_reach.failed(e))
                    continue
                self._qc_reach.succeeded()  # it answered, if only to say no
                log.warning("ledger refused QC for %s: %s", cid.hex()[:16], e)
                if e.reason.stage is Stage.LEDGER_STATE:
                    # The ledger's own rules said no (its state moved on since we voted): final,
                    # unless only the clock has to move (item 13.7).
                    later = retry_at(e.reason, qc.body, self.view.state, self.clock())
                    self._execute(self.machine.handle(cm.QcRefused(cid, e.reason, later, later is None)))
                continue
            self._qc_reach.succeeded()
            self.metrics.qc_posts.labels("ok").inc()
            await self.follower.refresh()  # see our payout entry now rather than at the next poll

    # ================================================================== the EVM backend (DESIGN §13)

    def _open_chain(self, client: Any) -> None:
        from ledger.evm.chain_keys import load_chain_key
        from oracle.chain_votes import ChainVotes

        assert self.config.chain_key_file is not None  # the config insists on an evm+ URL
        self.chain = client
        self.chain_key = load_chain_key(self.config.chain_key_file)
        self.chain_votes = ChainVotes()
        log.info("settling on the pool %s with chain key %s", client.url.contract, self.chain_key.address)

    def _chain_approve(self, v: Vote) -> None:
        """Our Approve's companion for the chain: sign it, keep it, gossip it."""
        if self.chain is None or not isinstance(v, Approve) or v.oracle_id != self.oracle_id:
            return
        from oracle.chain_votes import chain_body

        rec = self.store.claim(v.body.claim_id)
        if rec is not None:
            self.chain_vote(chain_body(v.body, rec.signed_claim.claim.start.frame.chain))

    def chain_vote(self, body: Any) -> None:
        """Our chain key's signature over a payout body (a claim's `ChainBody`, or a group's
        `ChainGroupBody` from oracle/group_node.py), kept with our peers' and gossiped."""
        from oracle.chain_votes import sign_chain_approve

        pool = self.chain.opened
        if pool is None:
            return
        ca = sign_chain_approve(self.chain_key, self.oracle_id, body, pool.chain_id, pool.address)
        self.chain_votes.add(ca)
        self._chain_queue.put_nowait(ca)

    def chain_forget(self, claim_id: bytes) -> None:
        """A claim or group claim is paid: no more chain votes or posting turns for it."""
        self._qc_formed.pop(claim_id, None)
        if self.chain_votes is not None:
            self.chain_votes.forget(claim_id)

    def _chain_approve_arrived(self, ca: ChainApprove) -> None:
        if self.chain is None or ca.oracle_id not in self._members:
            return
        self.chain_votes.add(ca)
        if self.chain.paid(ca.claim_id) is not None:
            return
        # a QC waiting for chain signatures may be complete now: a claim's, or a group's (econ2)
        if self.store.qc(ca.claim_id) is not None:
            self._qc_queue.put_nowait(ca.claim_id)
        else:
            self.group.chain_vote_arrived(ca.claim_id)

    async def _chain_vote_publisher(self) -> None:
        while True:
            ca = await self._chain_queue.get()
            await self._publish(VOTES_TOPIC, ca.encode())

    def chain_oracle_set(self, epoch: int) -> Any:
        """The oracle set of a body's epoch (the current one if that epoch is gone)."""
        state = self.view.state
        return state.oracle_set_for(epoch, max(state.time_ms, self.clock())) or state.oracle_set

    def chain_turn_due(self, cid: bytes, epoch: int, retry: Callable[[], None]) -> bool:
        """Whose turn it is to send a payout, a claim's or a group's (DESIGN §13). Over gossip
        every member completes its own QC at about the same moment, so the completer is picked
        from the claim: members take turns in the order of H(claim_id ‖ oracle_id); the first
        sends as soon as its QC (and k chain votes) are complete, each next one
        `chain_post_delay_s` later, and each stops when it sees the Paid event (the posters skip a
        paid claim). One transaction per claim while the first is up; a crashed one costs one
        delay. Not our turn yet: `retry` is called when it is, and we answer False."""
        from oracle.chain_votes import posting_turn

        turn = posting_turn(cid, self.chain_oracle_set(epoch).members, self.oracle_id)
        # a QC restored after a restart counts from when we first wanted to post it
        due = self._qc_formed.setdefault(cid, time.monotonic()) + turn * self.config.tuning.chain_post_delay_s
        wait = due - time.monotonic()
        if wait <= 0:
            return True
        if cid not in self._post_later:
            self._post_later.add(cid)
            asyncio.get_running_loop().call_later(wait, self._post_when_due, cid, retry)
        return False

    def _post_when_due(self, cid: bytes, retry: Callable[[], None]) -> None:
        self._post_later.discard(cid)
        retry()

    async def _post_chain_qc(self, qc: QuorumCertificate) -> None:
        """Assemble the chain QC from k verified ChainApproves and pay with the proof; the
        Ed25519 QC's signatures go after the arguments, so the payout replays in every mirror."""
        from oracle.chain_votes import chain_body

        cid = qc.body.claim_id
        rec = self.store.claim(cid)
        pool = self.chain.opened
        if rec is None or pool is None:
            return
        body = chain_body(qc.body, rec.signed_claim.claim.start.frame.chain)
        os_ = self.chain_oracle_set(qc.body.oracle_set_epoch)
        chain_qc = self.chain_votes.assemble(body, os_.threshold, self.chain.binding, pool.chain_id, pool.address)
        if chain_qc is None:
            log.debug("claim %s: %d chain votes held, waiting for %d that verify", cid.hex()[:16],
                      self.chain_votes.count(cid), os_.threshold)
            return
        result = await self.chain.post_chain_qc(chain_qc, rec.signed_claim.claim.proof, qc)
        self.chain_votes.forget(cid)
        log.info("claim %s paid on chain: %d (%s, gas %d)", cid.hex()[:16], result.paid,
                 "already paid" if result.existing else "our transaction", result.gas_used)

    # ================================================================== re-gossip and catch-up

    def _undecided(self) -> list[ClaimRecord]:
        give_up_ms = int(self.config.tuning.regossip_give_up_s * 1000)
        cutoff = self.clock() - give_up_ms
        out = self.store.claims(status="pending") + self.store.claims(status="approved")
        return [r for r in out if r.received_ms >= cutoff]

    async def _regossip_loop(self) -> None:
        """Gossip promises no delivery (docs: libp2p.md): until a claim is decided we re-publish it
        and our vote on it; the gossip layer's duplicate filter hides repeats from peers that have
        them. Approved claims whose payout has not appeared get their QC posted again."""
        interval = self.config.tuning.regossip_s
        while True:
            await asyncio.sleep(interval)
            assert self.machine is not None
            self._execute(self.machine.handle(cm.Tick(self.clock())))  # rechecks due, expired epochs
            undecided = self._undecided()
            if not undecided:
                continue
            ids = [r.claim_id for r in undecided]
            for rec in undecided[:200]:  # bounded per round; the rest go next round
                await self._publish(CLAIMS_TOPIC, rec.signed_claim.encode())
            own = self.store.own_votes(ids)
            for v in own:
                self._chain_approve(v)  # DESIGN §13: the chain vote goes with the Ed25519 one
            for i in range(0, len(own), VOTES_PER_MESSAGE):
                chunk = tuple(own[i : i + VOTES_PER_MESSAGE])
                await self._publish(VOTES_TOPIC, VoteBatch(oracle_id=self.oracle_id, votes=chunk).encode())
            now = time.monotonic()
            for rec in undecided:
                if rec.status == ClaimStatus.APPROVED and now - self._qc_last_post.get(rec.claim_id, 0) > 3 * interval:
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

    def update_claim_gauges(self) -> None:
        self.metrics.set_claims(self.store.count_by_status())

    def claim_view(self, claim_id: bytes) -> dict[str, Any] | None:
        rec = self.store.claim(claim_id)
        if rec is None:
            return None
        tallies = self.machine.tallies(claim_id) if self.machine is not None else []
        reasons: dict[str, int] = {}
        equivocators: set[bytes] = set()
        for t in tallies:
            for r, n in t.reasons().items():
                reasons[r] = max(reasons.get(r, 0), n)
            equivocators |= set(t.equivocations)
        own_ids = {v.encode() for v in self.store.own_votes([claim_id])}
        votes = []
        for v in self.store.votes(claim_id):
            item: dict[str, Any] = {"oracle_id": v.oracle_id.hex(), "vote": _vote_kind(v),
                                    "epoch": v.body.oracle_set_epoch, "own": v.encode() in own_ids}
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
            "approvals": len({v["oracle_id"] for v in votes if v["vote"] == "approve"}),
            "rejects": len({v["oracle_id"] for v in votes if v["vote"] == "reject"}),
            "reasons": reasons,
            "equivocators": sorted(o.hex() for o in equivocators),
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
        os_ = self.machine.current if self.machine else None
        evidence = self.store.evidence()
        return {
            "oracle_id": self.oracle_id.hex(),
            "peer_id": self.transport.peer_id,
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
            "ignored_votes": self.machine.ignored_votes() if self.machine else {},
            "device_slashes": self.slashes.status(),  # DESIGN §13: certificates in the making (EVM backend)
            "gossip": self.transport.health(),
        }
