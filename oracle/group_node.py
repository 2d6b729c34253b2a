"""Corroborated claims in the running oracle: carries out what oracle/group.py decides (DESIGN §14,
"Group claims"). It checks agent parts (content, then the proof in the node's verifier pool),
keeps them in the pure `GroupBook`, proposes and signs group bodies, gossips GroupClaims and
GroupVotes, and posts the GroupQuorumCertificate to the ledger.

On the EVM backend (DESIGN §13, `node.chain` set) the pool contract pays an ECDSA certificate
instead: each GroupVote we sign gets its chain companion (a `ChainApprove` over the chain's
`ChainGroupBody`, built from the parts behind the body; kept and gossiped by the node like a
claim's, and repeated with the GroupVote), and once we hold the Ed25519 QC the chain poster
(`chain_poster`) sends `groupPayout` in our posting turn with k chain votes that verify and every
window's proof from the parts we verified. It stops on the payout (a Paid event the mirror shows,
or an `existing` answer).

The node (oracle/node.py) hands it: parts (SignedClaims on a corroborated policy, from HTTP or
gossip), GroupClaim and GroupVote gossip messages, and runs `run()` beside its own tasks. This file
must never hold a protocol rule (those are in oracle/group.py and ledger/state.py), never block the
loop on a proof, and reads time only from the node's clock.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from functools import partial
from pathlib import Path
from typing import Any

from faultproof.errors import DecodeError, FaultproofError, Reason
from faultproof.gossip import CLAIMS_TOPIC, VOTES_TOPIC
from faultproof.messages import (
    MAX_GROUP_CLAIM_PARTS,
    GroupClaim,
    GroupPayoutBody,
    GroupQuorumCertificate,
    GroupVote,
    SignedClaim,
    decode_any,
)
from ledger.state import build_group_payout_body, group_payout_rejection
from oracle.group import CheckedPart, GroupBook, check_part, is_group_policy, part_key
from oracle.group_store import GroupStore

log = logging.getLogger("faultproof.oracle.group")

GROUP_TYPE_IDS = frozenset({GroupClaim.TYPE_ID, GroupVote.TYPE_ID})


def is_group_message(data: bytes) -> bool:
    """A gossip payload the group service handles (msgpack `[type_id, ...]`, type id 130/131)."""
    # A fixarray header then a positive fixint or uint8 type id: read without decoding the rest.
    if len(data) < 3 or not 0x90 <= data[0] <= 0x9F:
        return False
    tid = data[1] if data[1] < 0x80 else (data[2] if data[1] == 0xCC else -1)
    return tid in GROUP_TYPE_IDS


class GroupService:
    def __init__(self, node: Any) -> None:
        # The OracleNode (duck-typed: this module must not import oracle.node, which imports it).
        self.node = node
        self.book = GroupBook()
        # Durable beside the claims store: parts, signed bodies, votes, paid groups (kill -9 safe).
        self.store = GroupStore(Path(node.config.db_path).with_name("group.sqlite3"))
        self._posted: dict[bytes, float] = {}  # group claim_id -> loop time of the last QC post
        self._proposals: dict[bytes, GroupClaim] = {}  # group claim_id -> the parts we gossip for it
        self._lock = asyncio.Lock()
        # EVM backend: group claim_id -> the Ed25519 QC we hold (what the chain poster sends for)
        self._chain_qcs: dict[bytes, GroupQuorumCertificate] = {}
        self._chain_due: asyncio.Queue[bytes] = asyncio.Queue()
        self._chain_queued: set[bytes] = set()

    # ------------------------------------------------------------------ restart

    def restore(self) -> None:
        """After the node's ledger view is up: the book as it was. Parts were proven before they
        were stored (their content is checked again on the current view); a body signed before
        the restart stays the only one we sign for its claim and epoch (G4)."""
        state = self.node.view.state
        for cid in self.store.paid():
            self.book.mark_paid(cid)
        for signed in self.store.parts():
            try:
                self.book.add_part(check_part(signed, state))
            except FaultproofError:
                continue  # e.g. its agent was revoked since
        for body in self.store.signed():
            self.book.signed.setdefault((body.claim_id, body.oracle_set_epoch), body.encode())
        for vote in self.store.votes():
            oset = state.oracle_set_for(vote.body.oracle_set_epoch, self.node.clock())
            if oset is not None:
                self.book.add_vote(vote, frozenset(oset.members), oset.threshold)
        log.info("group claims restored: %d open bodies", len(self.book.open_bodies()))

    def close(self) -> None:
        self.store.close()

    # ------------------------------------------------------------------ parts

    def owns(self, signed: SignedClaim) -> bool:
        """A SignedClaim on a corroborated policy is a part, never a single-device claim."""
        return is_group_policy(self.node.view.state, signed.claim.policy_id)

    async def submit_part(self, signed: SignedClaim, source: str, refreshed: bool = False) -> bytes:
        """G1 then G2..G4; the part's claim_id (the node answers it as pending). Raises
        FaultproofError (content, rate, proof) and keeps nothing. `refreshed`: the node's view was
        refreshed after the part arrived."""
        node = self.node
        cid = signed.claim.claim_id
        if not self.book.has_part(signed):
            # As for a lone claim (DESIGN §4.2): refused only on a view refreshed after it arrived.
            part = await node.content_checked(check_part, signed, refreshed)
            # The sender pays before the proof, as for any claim (DESIGN §10, item 13.2).
            if not node._agent_limiter.allow(signed.claim.agent_id, time.monotonic()):
                raise FaultproofError(Reason.RATE_LIMITED, "too many claims from this agent")
            if not await node.verifier.verify(part.job):
                raise FaultproofError(Reason.BAD_PROOF)
            if self.book.add_part(part):
                k = part_key(part.window)
                self.store.add_part(part.policy_id, b"".join((k[0], k[1].to_bytes(4, "big"), k[2].to_bytes(4, "big"),
                                                              k[3].to_bytes(4, "big"), k[4])), signed)
                if source == "http":
                    await self._publish(CLAIMS_TOPIC, signed.encode())  # peers verify it on their own
            await self._propose(part.policy_id)
        return cid

    async def _propose(self, policy_id: bytes) -> None:
        """G2: our own assembly of the verified parts, if m of them form a group."""
        state = self.node.view.state
        econ = state.econ.policies.get(policy_id)
        if econ is None:
            return
        group = self.book.candidate(policy_id, state.econ.min_proofs_of(econ), econ.overlap_tolerance_ms)
        if group is not None:
            await self._consider(group)

    async def _consider(self, parts: tuple[CheckedPart, ...]) -> None:
        """G3/G4: sign the group's body if the ledger's rules pass it on our replica."""
        node = self.node
        state = node.view.state
        pid = parts[0].policy_id
        body = build_group_payout_body(state, pid, [p.window for p in parts])
        if state.paid_claim(body.claim_id) is not None:
            self.book.mark_paid(body.claim_id)
            return
        refusal = group_payout_rejection(state, body, node.clock())
        if refusal is not None:
            log.info("group %s not signed: %s", body.claim_id.hex()[:16], refusal)
            return
        async with self._lock:
            if not self.book.sign(body):
                return
            self.store.save_signed(body)  # committed before the vote leaves (G4 across restarts)
        vote = GroupVote.make(body, node.identity)
        if len(parts) <= MAX_GROUP_CLAIM_PARTS:
            self._proposals[body.claim_id] = GroupClaim(policy_id=pid, parts=tuple(p.signed for p in parts))
        log.info("signed group %s (%d windows)", body.claim_id.hex()[:16], len(body.windows))
        proposal = self._proposals.get(body.claim_id)
        if proposal is not None:
            await self._publish(CLAIMS_TOPIC, proposal.encode())
        await self._publish(VOTES_TOPIC, vote.encode())
        self._chain_vote(body)  # DESIGN §13: the chain vote goes with the Ed25519 one
        await self._count(vote)

    # ------------------------------------------------------------------ gossip in

    async def on_message(self, data: bytes) -> None:
        """A GroupClaim (claims topic) or a GroupVote (votes topic) from a peer."""
        try:
            msg = decode_any(data)
        except DecodeError as e:
            log.debug("dropped a group message: %s", e)
            return
        try:
            if isinstance(msg, GroupClaim):
                await self._on_group_claim(msg)
            elif isinstance(msg, GroupVote):
                await self._on_vote(msg)
        except FaultproofError as e:
            log.debug("dropped a group message: %s", e)

    async def _on_group_claim(self, gc: GroupClaim) -> None:
        """Every part checked on its own (G1); then this exact group considered (G4)."""
        for part in gc.parts:
            if part.claim.policy_id != gc.policy_id:
                return
            try:
                await self.submit_part(part, "gossip")
            except FaultproofError as e:
                log.debug("group claim part refused: %s", e)
                return
        windows = [check_part(p, self.node.view.state).window for p in gc.parts]
        parts = self.book.parts_for(gc.policy_id, sorted(windows, key=lambda w: w.device_id))
        if parts is not None:
            await self._consider(parts)

    async def _on_vote(self, vote: GroupVote) -> None:
        if not vote.verify():
            return
        await self._count(vote)
        # G4: sign a peer's group too when we verified every one of its parts ourselves.
        parts = self.book.parts_for(vote.body.policy_id, vote.body.windows)
        if parts is not None:
            await self._consider(parts)

    async def _count(self, vote: GroupVote) -> None:
        state = self.node.view.state
        oset = state.oracle_set_for(vote.body.oracle_set_epoch, self.node.clock())
        if oset is None:
            return
        if vote.oracle_id in oset.members and vote.body.claim_id not in self.book.paid:
            self.store.add_vote(hashlib.sha256(vote.body.encode()).digest(), vote)
        qc = self.book.add_vote(vote, frozenset(oset.members), oset.threshold)
        if qc is not None:
            await self._post(qc)

    # ------------------------------------------------------------------ QCs and re-gossip

    async def _post(self, qc: GroupQuorumCertificate) -> None:
        node = self.node
        cid = qc.body.claim_id
        if node.view.state.paid_claim(cid) is not None:
            self.book.mark_paid(cid)
            return
        if node.chain is not None:  # the pool pays an ECDSA QC: the chain poster sends it in our turn
            self._chain_qcs[cid] = qc
            self._queue_chain(cid)
            return
        assert node.follower is not None
        self._posted[cid] = asyncio.get_running_loop().time()
        try:
            await node.follower.client.submit(qc)
        except FaultproofError as e:
            log.warning("ledger refused group QC %s: %s", cid.hex()[:16], e)
            return
        log.info("group QC %s posted", cid.hex()[:16])
        await node.follower.refresh()

    def payout_seen(self, claim_id: bytes) -> None:
        self.book.mark_paid(claim_id)
        self.store.mark_paid(claim_id)
        self._proposals.pop(claim_id, None)
        self._chain_qcs.pop(claim_id, None)
        if self.node.chain is not None:
            self.node.chain_forget(claim_id)

    async def run(self) -> None:
        """Gossip promises no delivery: until a signed group is paid, repeat its parts and our
        vote, and post its QC again if we hold one."""
        interval = self.node.config.tuning.regossip_s
        while True:
            await asyncio.sleep(interval)
            state = self.node.view.state
            for cid in list(self._proposals):
                if state.paid_claim(cid) is not None:
                    self.payout_seen(cid)
            bodies: list[GroupPayoutBody] = self.book.open_bodies()
            for body in bodies[:50]:
                if state.paid_claim(body.claim_id) is not None:
                    self.payout_seen(body.claim_id)
                    continue
                proposal = self._proposals.get(body.claim_id)
                if proposal is None:  # e.g. after a restart: rebuilt from the parts we hold
                    parts = self.book.parts_for(body.policy_id, body.windows)
                    if parts is not None and len(parts) <= MAX_GROUP_CLAIM_PARTS:
                        proposal = self._proposals[body.claim_id] = GroupClaim(
                            policy_id=body.policy_id, parts=tuple(p.signed for p in parts))
                if proposal is not None:
                    await self._publish(CLAIMS_TOPIC, proposal.encode())
                await self._publish(VOTES_TOPIC, GroupVote.make(body, self.node.identity).encode())
                self._chain_vote(body)
                oset = state.oracle_set_for(body.oracle_set_epoch, self.node.clock())
                qc = self.book.qc_for(body.encode(), oset.threshold) if oset is not None else None
                if qc is not None:
                    await self._post(qc)

    # ------------------------------------------------------------------ the EVM backend (DESIGN §13)

    def _chain_body(self, body: GroupPayoutBody) -> tuple[Any, tuple[CheckedPart, ...]] | None:
        """The chain's body of a group body (`ChainGroupBody`: each window's start chain value from
        the part we verified for it) and those parts; None if we do not hold every part."""
        from oracle.chain_votes import chain_group_body

        parts = self.book.parts_for(body.policy_id, body.windows)
        if parts is None:
            return None
        return chain_group_body(body, [p.signed.claim.start.frame.chain for p in parts]), parts

    def _chain_vote(self, body: GroupPayoutBody) -> None:
        """Our GroupVote's companion for the chain: the chain key's signature over the chain's
        group body, kept and gossiped by the node (a ChainApprove, as for a claim)."""
        if self.node.chain is None:
            return
        made = self._chain_body(body)
        if made is not None:
            self.node.chain_vote(made[0])

    def _queue_chain(self, cid: bytes) -> None:
        if cid not in self._chain_queued:
            self._chain_queued.add(cid)
            self._chain_due.put_nowait(cid)

    def chain_vote_arrived(self, cid: bytes) -> None:
        """A peer's chain vote arrived (the node keeps it): a group QC of ours waiting for chain
        signatures may be complete now."""
        if cid in self._chain_qcs:
            self._queue_chain(cid)

    async def chain_poster(self) -> None:
        """Send `groupPayout` for the group QCs we hold, each in our posting turn (the node's
        `chain_turn_due`); idle on the SQLite backend, where `_post` submits to the ledger."""
        while True:
            cid = await self._chain_due.get()
            self._chain_queued.discard(cid)
            try:
                await self._post_on_chain(cid)
            except FaultproofError as e:
                # e.g. another group of the same incident was paid first (G4: a refused QC, never
                # money; refused by the pre-check, so no gas spent), or the chain node is down:
                # the re-gossip loop offers the QC again
                log.warning("group QC %s not sent to the pool: %s", cid.hex()[:16], e)

    async def _post_on_chain(self, cid: bytes) -> None:
        node = self.node
        qc = self._chain_qcs.get(cid)
        if qc is None or node.view.state.paid_claim(cid) is not None or node.chain.paid(cid) is not None:
            return
        epoch = qc.body.oracle_set_epoch
        if not node.chain_turn_due(cid, epoch, partial(self._queue_chain, cid)):
            return
        made = self._chain_body(qc.body)
        pool = node.chain.opened
        if pool is None:
            return
        if made is None:
            log.debug("group %s: we hold its QC but not every part; another member sends it", cid.hex()[:16])
            return
        body, parts = made
        k = node.chain_oracle_set(epoch).threshold
        chain_qc = node.chain_votes.assemble(body, k, node.chain.binding, pool.chain_id, pool.address)
        if chain_qc is None:
            log.debug("group %s: %d chain votes held, waiting for %d that verify", cid.hex()[:16],
                      node.chain_votes.count(cid), k)
            return
        result = await node.chain.post_chain_group_qc(chain_qc, [p.signed.claim.proof for p in parts])
        log.info("group %s paid on chain: %d (%s, gas %d)", cid.hex()[:16], result.paid,
                 "already paid" if result.existing else "our transaction", result.gas_used)
        node.chain_votes.forget(cid)
        assert node.follower is not None
        await node.follower.refresh()  # see the payout now rather than at the next poll

    async def _publish(self, topic: str, data: bytes) -> None:
        try:
            await self.node.transport.publish(topic, data)
        except FaultproofError as e:
            log.debug("publish on %s failed: %s", topic, e)
