"""Chain votes: what an oracle on the EVM backend adds to its Ed25519 votes (DESIGN §13).

The quorum is still counted by `oracle/quorum.py` over Ed25519 Approves (one rule book, one claim
machine for both backends). The pool contract, though, checks ECDSA signatures over the EIP-712
PayoutBody by the chain keys it bound to the members' Ed25519 ids. So every Approve an oracle signs
gets a companion `ChainApprove` (its chain key's signature over the same body), gossiped beside
it; every oracle keeps the ones it receives (`ChainVotes`, bounded), and the oracle that completes
the quorum assembles a `ChainQc` from k of them that verify and sends it with the proof. Which
member sends is `posting_turn`: over gossip all members complete their QCs at about the same
moment, so they take turns in an order drawn from the claim id, and stop on the Paid event.

A corroborated policy's group claim (DESIGN §14, oracle/group_node.py) goes the same way: each
GroupVote gets a `ChainApprove` over the chain's `ChainGroupBody` (`chain_group_body`), the same
message type (a group claim id is a claim id), kept in the same store and checked and assembled by
the same functions, which take either body (`AnyChainBody`).

Checks (`check_chain_approve`, pure): the vote is for this claim and this body's epoch
(QC_STALE_EPOCH otherwise: a signature over another epoch's body never counts), its oracle has an
address bound on chain in that epoch (QC_NON_MEMBER), and the 65-byte signature recovers to that
address over this body in this pool's EIP-712 domain (QC_BAD_SIGNATURE: forged, another body,
another chain or contract). A failed check drops the vote; nothing else changes.

No I/O and no clock here.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TypeVar

from faultproof.errors import Reason
from faultproof.messages import MAX_ORACLES, ChainApprove, GroupPayoutBody, PayoutBody
from ledger.evm.chain_keys import AnyChainKey
from ledger.evm.pool import ChainQc
from ledger.evm.typed import (
    AnyChainBody,
    ChainBody,
    ChainGroupBody,
    ChainKey,
    ChainSignature,
    payout_types,
    recover_typed,
)

Binding = Callable[[int, bytes], str | None]  # (epoch, oracle_id) -> the address bound on chain
B = TypeVar("B", ChainBody, ChainGroupBody)


def chain_body(body: PayoutBody, c_start: bytes) -> ChainBody:
    """The chain's body of an Ed25519 PayoutBody: the window's start chain value, and its end
    chain value (the body's end_chain)."""
    return ChainBody(body, int.from_bytes(c_start, "big"), int.from_bytes(body.end_chain, "big"))


def chain_group_body(body: GroupPayoutBody, c_starts: Sequence[bytes]) -> ChainGroupBody:
    """The chain's body of a GroupPayoutBody: each window's start chain value (`c_starts`, in the
    body's window order: the start frames of the parts behind it) and its end chain value (the
    window's end_chain). ValueError if their counts differ."""
    return ChainGroupBody(body, tuple((int.from_bytes(c, "big"), int.from_bytes(w.end_chain, "big"))
                                      for w, c in zip(body.windows, c_starts, strict=True)))


def sign_chain_approve(key: ChainKey | AnyChainKey, oracle_id: bytes, body: AnyChainBody, chain_id: int,
                       contract: str) -> ChainApprove:
    sig = key.sign_body(body, chain_id, contract)
    return ChainApprove(oracle_id=oracle_id, oracle_set_epoch=body.body.oracle_set_epoch,
                        claim_id=body.body.claim_id, signature=sig.signature)


def recover_signer(body: AnyChainBody, chain_id: int, contract: str, signature: bytes) -> str | None:
    """The address whose key made `signature` over `body` in this pool's domain (None: malformed)."""
    return recover_typed(payout_types(body), body.message(), chain_id, contract, signature)


def check_chain_approve(ca: ChainApprove, body: AnyChainBody, bound: str | None, chain_id: int,
                        contract: str) -> Reason | None:
    """Why `ca` does not count toward a chain QC over `body`, or None (see the module docstring)."""
    if ca.claim_id != body.body.claim_id:
        return Reason.PAYOUT_MISMATCH
    return signature_refusal(ca.oracle_set_epoch, body.body.oracle_set_epoch, bound,
                             lambda: recover_signer(body, chain_id, contract, ca.signature))


def signature_refusal(signed_epoch: int, body_epoch: int, bound: str | None,
                      signer: Callable[[], str | None]) -> Reason | None:
    """The rule every chain signature an oracle takes from a peer passes (payout votes, device
    slash shares): signed for the body's epoch (QC_STALE_EPOCH), by a member with an address bound
    in that epoch (QC_NON_MEMBER), and `signer()` (the recovery, run last: it costs most) is that
    address (QC_BAD_SIGNATURE). None: it counts."""
    if signed_epoch != body_epoch:
        return Reason.QC_STALE_EPOCH
    if bound is None:
        return Reason.QC_NON_MEMBER
    if signer() != bound:
        return Reason.QC_BAD_SIGNATURE
    return None


def posting_turn(claim_id: bytes, members: Sequence[bytes], oracle_id: bytes) -> int:
    """Our turn (0 = first) to send this claim's payout: members ordered by H(claim_id ‖ member),
    so the first sender differs per claim and every member computes the same order. A
    non-member's turn is after every member's."""
    order = sorted(members, key=lambda m: hashlib.sha256(claim_id + m).digest())
    return order.index(oracle_id) if oracle_id in order else len(order)


class ChainVotes:
    """The ChainApproves an oracle holds, per claim, bounded: at most one per (epoch, oracle) per
    claim (a later one replaces it: a forged copy cannot pin out the real one for good, since
    re-gossip repeats the real one), at most 2 × MAX_ORACLES per claim, `max_claims` claims (the
    oldest forgotten first)."""

    def __init__(self, max_claims: int = 20_000) -> None:
        self.max_claims = max_claims
        self._by_claim: OrderedDict[bytes, dict[tuple[int, bytes], bytes]] = OrderedDict()

    def add(self, ca: ChainApprove) -> None:
        votes = self._by_claim.get(ca.claim_id)
        if votes is None:
            votes = self._by_claim[ca.claim_id] = {}
            while len(self._by_claim) > self.max_claims:
                self._by_claim.popitem(last=False)
        key = (ca.oracle_set_epoch, ca.oracle_id)
        if key in votes or len(votes) < 2 * MAX_ORACLES:
            votes[key] = ca.signature

    def count(self, claim_id: bytes) -> int:
        return len(self._by_claim.get(claim_id, {}))

    def forget(self, claim_id: bytes) -> None:
        self._by_claim.pop(claim_id, None)

    def assemble(self, body: B, k: int, binding: Binding, chain_id: int, contract: str) -> ChainQc[B] | None:
        """A chain QC over `body` (a claim's or a group's) from k held votes that pass
        `check_chain_approve`, or None. Votes that fail are dropped."""
        cid, epoch = body.body.claim_id, body.body.oracle_set_epoch
        votes = self._by_claim.get(cid, {})
        sigs: list[ChainSignature] = []
        for (e, oracle_id), signature in sorted(votes.items()):
            if e != epoch:
                continue
            ca = ChainApprove(oracle_id=oracle_id, oracle_set_epoch=e, claim_id=cid, signature=signature)
            bound = binding(e, oracle_id)
            if check_chain_approve(ca, body, bound, chain_id, contract) is not None:
                del votes[(e, oracle_id)]
                continue
            assert bound is not None
            sigs.append(ChainSignature(bound, signature))
            if len(sigs) == k:
                return ChainQc(body, tuple(sigs))
        return None
