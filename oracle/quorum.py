"""The quorum counter of DESIGN §5: votes in, a verdict out. Everything that decides a claim's
verdict from votes lives in this file.

Rules, in the order `QuorumCounter.add` applies them (cheap first, signature last):
  1. the vote must be bound to our ledger (`ledger_id`)           else  WRONG_LEDGER   (ignored)
  2. ... and to the oracle-set epoch this counter counts for        else  WRONG_EPOCH    (ignored)
  3. the signer must be a member of that oracle set                 else  NON_MEMBER     (ignored)
  4. byte-identical to a vote already held                          ->    DUPLICATE      (ignored)
  5. the signature must verify                                      else  BAD_SIGNATURE  (ignored)
  6. a member may open tallies for at most `max_open_per_voter`
     undecided claims (a flooding member cannot grow our memory;
     its votes on claims someone else opened still count)         else  OVER_LIMIT     (ignored)
  7. same verdict as that member's earlier vote for the claim       ->    DUPLICATE      (ignored;
     (a second Reject with another reason is still a Reject)               the first one stands)
  8. a different verdict (Approve vs Reject, or two different
     PayoutBodies)                                                  ->    EQUIVOCATION   (both votes
                                                                          kept as evidence; from then
                                                                          on that member counts for
                                                                          neither side of the claim)
  9. otherwise                                                      ->    COUNTED

A claim's tally moves PENDING -> CERTIFIED when k distinct, non-equivocating members approved one
identical PayoutBody (a QC is built from exactly those approvals), or PENDING -> REJECTED when
n - k + 1 distinct non-equivocating members rejected it (then no QC can ever form: fewer than k
members are left). Both are final: later votes are still recorded, never change the verdict.

This file does not know which node it runs in, so it cannot apply different rules to our own vote
and a peer's: the node feeds its own votes through `add` like any other. No I/O, no clocks, no
asyncio; the caller persists what `add` accepted.
"""

from __future__ import annotations

import enum
from collections import Counter as _Multiset
from dataclasses import dataclass, field

from faultproof.errors import Reason
from faultproof.identity import domain_tag
from faultproof.messages import Approve, PayoutBody, QuorumCertificate, Reject, Vote
from faultproof.signers import OracleSet, signer_set_fault

__all__ = ["AddResult", "OracleSet", "QuorumCounter", "Tally", "Verdict", "VoteOutcome"]

_PAYOUT_TAG = domain_tag(PayoutBody.NAME)


def _counted(tag: bytes, body: bytes, signature: bytes, oracle_id: bytes) -> bool:
    """Every approval's signature was verified when it was counted (rule 5); not again."""
    return True


class VoteOutcome(enum.StrEnum):
    COUNTED = "counted"
    DUPLICATE = "duplicate"
    WRONG_LEDGER = "wrong_ledger"
    WRONG_EPOCH = "wrong_epoch"
    NON_MEMBER = "non_member"
    BAD_SIGNATURE = "bad_signature"
    OVER_LIMIT = "over_limit"
    EQUIVOCATION = "equivocation"

    @property
    def kept(self) -> bool:
        """Whether the vote is part of the record (and must be persisted by the caller)."""
        return self in (VoteOutcome.COUNTED, VoteOutcome.EQUIVOCATION)


class Verdict(enum.StrEnum):
    PENDING = "pending"
    CERTIFIED = "certified"
    REJECTED = "rejected"


# The only transitions a tally may make; anything else is a bug in this file.
_TRANSITIONS: dict[Verdict, frozenset[Verdict]] = {
    Verdict.PENDING: frozenset({Verdict.CERTIFIED, Verdict.REJECTED}),
    Verdict.CERTIFIED: frozenset(),
    Verdict.REJECTED: frozenset(),
}


def _verdict_key(vote: Vote) -> tuple[str, bytes]:
    """Two votes of one member say the same thing iff their keys are equal."""
    if isinstance(vote, Approve):
        return ("approve", vote.body.encode())
    return ("reject", b"")


@dataclass
class Tally:
    """Every kept vote for one claim, and the verdict they reached."""

    claim_id: bytes
    verdict: Verdict = Verdict.PENDING
    # member -> its first kept vote (the one that counts unless it equivocated)
    first_vote: dict[bytes, Vote] = field(default_factory=dict)
    # members that equivocated -> all their distinct votes for this claim (evidence)
    equivocations: dict[bytes, list[Vote]] = field(default_factory=dict)
    qc: QuorumCertificate | None = None
    reject_reason: Reason | None = None
    seen: set[bytes] = field(default_factory=set)  # encoded votes already held (exact duplicates)

    def _move(self, to: Verdict) -> None:
        assert to in _TRANSITIONS[self.verdict], f"illegal transition {self.verdict} -> {to}"
        self.verdict = to

    @property
    def approvals(self) -> dict[bytes, list[Approve]]:
        """Encoded PayoutBody -> approvals over it, equivocators excluded."""
        out: dict[bytes, list[Approve]] = {}
        for member, vote in self.first_vote.items():
            if member not in self.equivocations and isinstance(vote, Approve):
                out.setdefault(vote.body.encode(), []).append(vote)
        return out

    @property
    def rejects(self) -> list[Reject]:
        return [v for m, v in self.first_vote.items() if m not in self.equivocations and isinstance(v, Reject)]

    def kept_votes(self) -> list[Vote]:
        votes = list(self.first_vote.values())
        for member, evidence in self.equivocations.items():
            votes.extend(v for v in evidence if v is not self.first_vote.get(member))
        return votes

    def reasons(self) -> dict[str, int]:
        return dict(_Multiset(r.body.reason.value for r in self.rejects))

    def _decide(self, oracle_set: OracleSet) -> None:
        if self.verdict is not Verdict.PENDING:
            return
        for approvals in self.approvals.values():
            if len(approvals) >= oracle_set.threshold:
                # Exactly k signatures: more adds bytes to the ledger entry and proves nothing more.
                chosen = sorted(approvals, key=lambda a: a.oracle_id)[: oracle_set.threshold]
                qc = QuorumCertificate.from_approvals(chosen)
                # The ledger's own signer-set check (Q3): a QC the ledger would refuse is a bug here.
                fault = signer_set_fault(qc.signatures, oracle_set.members, oracle_set.threshold, _PAYOUT_TAG,
                                         qc.body.encode(), _counted)
                assert fault is None, f"quorum counter formed a QC the ledger refuses: {fault}"
                self.qc = qc
                self._move(Verdict.CERTIFIED)
                return
        rejects = self.rejects
        if len(rejects) >= oracle_set.reject_threshold:
            # The most common reason names the rejection; ties go to the enum's order (stable).
            counts = _Multiset(r.body.reason for r in rejects)
            order = list(Reason)
            self.reject_reason = max(counts, key=lambda r: (counts[r], -order.index(r)))
            self._move(Verdict.REJECTED)


@dataclass(frozen=True)
class AddResult:
    outcome: VoteOutcome
    tally: Tally | None  # None when the vote never reached a tally (ignored early)
    decided: bool = False  # this vote moved the tally out of PENDING


class QuorumCounter:
    """Tallies for many claims under one oracle set. Feed every vote, ours included, to `add`."""

    def __init__(self, oracle_set: OracleSet, *, max_open_per_voter: int = 10_000) -> None:
        self.oracle_set = oracle_set
        self.max_open_per_voter = max_open_per_voter
        self.tallies: dict[bytes, Tally] = {}
        self._open_by_voter: dict[bytes, set[bytes]] = {}
        self.ignored: _Multiset[str] = _Multiset()  # outcome -> count, for metrics

    def tally(self, claim_id: bytes) -> Tally | None:
        return self.tallies.get(claim_id)

    def add(self, vote: Vote) -> AddResult:
        result = self._add(vote)
        if not result.outcome.kept:
            self.ignored[result.outcome.value] += 1
        return result

    def _add(self, vote: Vote) -> AddResult:
        os_ = self.oracle_set
        body_ledger, body_epoch = _binding(vote)
        if body_ledger != os_.ledger_id:
            return AddResult(VoteOutcome.WRONG_LEDGER, None)
        if body_epoch != os_.epoch:
            return AddResult(VoteOutcome.WRONG_EPOCH, None)
        member = vote.oracle_id
        if member not in os_.members:
            return AddResult(VoteOutcome.NON_MEMBER, None)
        encoded = vote.encode()
        tally = self.tallies.get(vote.claim_id)
        if tally is not None and encoded in tally.seen:
            return AddResult(VoteOutcome.DUPLICATE, tally)
        # Signature after the cheap checks: a forged vote in a member's name costs one verify.
        if not vote.verify():
            return AddResult(VoteOutcome.BAD_SIGNATURE, tally)
        if tally is None:
            open_claims = self._open_by_voter.setdefault(member, set())
            if len(open_claims) >= self.max_open_per_voter:
                return AddResult(VoteOutcome.OVER_LIMIT, None)
            tally = self.tallies[vote.claim_id] = Tally(vote.claim_id)
        earlier = tally.first_vote.get(member)
        if earlier is not None and _verdict_key(earlier) == _verdict_key(vote):
            return AddResult(VoteOutcome.DUPLICATE, tally)
        tally.seen.add(encoded)
        if earlier is None:
            tally.first_vote[member] = vote
            outcome = VoteOutcome.COUNTED
            if tally.verdict is Verdict.PENDING:
                self._open_by_voter.setdefault(member, set()).add(vote.claim_id)
        else:
            evidence = tally.equivocations.setdefault(member, [earlier])
            if all(v.encode() != encoded for v in evidence):
                evidence.append(vote)
            outcome = VoteOutcome.EQUIVOCATION
        before = tally.verdict
        tally._decide(os_)
        decided = before is Verdict.PENDING and tally.verdict is not Verdict.PENDING
        if decided:
            # A decided claim no longer counts against anyone's open-tally budget.
            for voters in self._open_by_voter.values():
                voters.discard(tally.claim_id)
        return AddResult(outcome, tally, decided)

    def equivocators(self) -> dict[bytes, set[bytes]]:
        """claim_id -> members that equivocated on it."""
        return {cid: set(t.equivocations) for cid, t in self.tallies.items() if t.equivocations}


def _binding(vote: Vote) -> tuple[bytes, int]:
    if isinstance(vote, Approve):
        return vote.body.ledger_id, vote.body.oracle_set_epoch
    return vote.body.ledger_id, vote.body.oracle_set_epoch

