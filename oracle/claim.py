"""The oracle's claim lifecycle (DESIGN §4, §5, §10): one pure state machine per oracle node.
Everything that moves a claim from one status to another, and everything that makes this oracle
sign a vote, lives in this file.

All events go through `ClaimMachine.handle(event) -> list[Action]`. The node (oracle/node.py) and
the simulator (tests/sim) turn the world into events (a claim checked, votes arrived, a payout on
the ledger, the ledger refused our QC, the oracle set rotated, time passed) and carry out the
actions (sign a vote, persist, publish, post a QC, recheck a claim later). No status is set
anywhere else.

Statuses and the only transitions a claim may make (`TRANSITIONS`; anything else is refused with
the reason in `REFUSALS`, and the refusal is returned as an action, not raised: events come from
the network and may be late or repeated):

    PENDING  --certified (k approvals in an epoch the ledger accepts)-->       APPROVED
    PENDING  --rejected  (n-k+1 definitive rejects in one epoch)-->            REJECTED
    APPROVED --qc_refused (the ledger's own rules said no, definitively)-->   REJECTED
    PENDING | APPROVED | REJECTED  --payout_seen-->                           PAID
A claim enters as PENDING (or straight PAID if the ledger already paid it); PAID is final.

Rules of our own vote:
  V1 We vote only on a claim whose content and proof passed (the node checks; a failure leaves no
     event at all), not yet paid, and only as a member of the epoch we sign for.
  V2 At most one own vote per (claim, oracle-set epoch); after a rotation we sign the SAME verdict
     again under the new epoch (the same PayoutBody with the new epoch, or a Reject with the same
     reason), never a different one (item 13.1: a claim half-voted at a rotation is still paid).
  V3 A Reject only for a definitive ledger-state reason. A transient one (only the clock has to
     move: END_TS_IN_FUTURE or a term not yet started, within oracle.pipeline.RETRY_HORIZON_MS;
     the node classes it, `retry_at`) gets no vote: the claim is rechecked at `retry_at_ms` (item
     13.7: a passing condition must not become a final rejection).
Counting: one `QuorumCounter` per epoch whose QCs the ledger still accepts (the current one, and the
previous one until `previous_until_ms`, after which a `Tick` drops it); a vote of another epoch is
ignored (WRONG_EPOCH).

This file imports no asyncio, aiohttp, sqlite3, socket, threading or libp2p and reads no clock: time
comes in on the events (`now_ms`). tests/oracle/test_claim.py scans its imports.
"""

from __future__ import annotations

import enum
from collections import Counter as _Multiset
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from faultproof.errors import Reason
from faultproof.messages import (
    Approve,
    PayoutBody,
    QuorumCertificate,
    Reject,
    RejectBody,
    SignedClaim,
    Vote,
)
from oracle.quorum import AddResult, OracleSet, QuorumCounter, Tally, Verdict, VoteOutcome


class ClaimStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    PAID = "paid"


class Move(enum.StrEnum):
    """What may move a claim (the labels of the transition table)."""

    CERTIFIED = "certified"
    REJECTED = "rejected"
    QC_REFUSED = "qc_refused"
    PAYOUT_SEEN = "payout_seen"


TRANSITIONS: dict[tuple[ClaimStatus, Move], ClaimStatus] = {
    (ClaimStatus.PENDING, Move.CERTIFIED): ClaimStatus.APPROVED,
    (ClaimStatus.PENDING, Move.REJECTED): ClaimStatus.REJECTED,
    (ClaimStatus.APPROVED, Move.QC_REFUSED): ClaimStatus.REJECTED,
    (ClaimStatus.PENDING, Move.PAYOUT_SEEN): ClaimStatus.PAID,
    (ClaimStatus.APPROVED, Move.PAYOUT_SEEN): ClaimStatus.PAID,
    # The ledger is the truth: a QC of another epoch (or of peers we never heard) may pay a claim
    # our own tally rejected.
    (ClaimStatus.REJECTED, Move.PAYOUT_SEEN): ClaimStatus.PAID,
}

# Why a move is refused from a status it has no row for.
REFUSALS: dict[tuple[ClaimStatus, Move], str] = {
    (ClaimStatus.APPROVED, Move.CERTIFIED): "already certified (another epoch's QC is kept for posting)",
    (ClaimStatus.REJECTED, Move.CERTIFIED): "a definitive rejection is final; only the ledger's payout overrides it",
    (ClaimStatus.PAID, Move.CERTIFIED): "already paid",
    (ClaimStatus.APPROVED, Move.REJECTED): "a QC exists: only the ledger refusing it can reject the claim",
    (ClaimStatus.REJECTED, Move.REJECTED): "already rejected",
    (ClaimStatus.PAID, Move.REJECTED): "already paid",
    (ClaimStatus.PENDING, Move.QC_REFUSED): "no QC of ours to refuse",
    (ClaimStatus.REJECTED, Move.QC_REFUSED): "already rejected",
    (ClaimStatus.PAID, Move.QC_REFUSED): "already paid (the refusal is a late duplicate)",
    (ClaimStatus.PAID, Move.PAYOUT_SEEN): "already paid",
}
assert not set(TRANSITIONS) & set(REFUSALS)
assert len(TRANSITIONS) + len(REFUSALS) == len(ClaimStatus) * len(Move), "every (status, move) has a row"


def transition(status: ClaimStatus, move: Move) -> ClaimStatus | str:
    """The new status, or the reason the move is refused."""
    return TRANSITIONS.get((status, move)) or REFUSALS[(status, move)]


# ====================================================================== events (into the machine)


@dataclass(frozen=True)
class ClaimChecked:
    """A claim passed the content checks and its proof verified (or is known: a recheck).
    `body` is what we would approve now; `reason` the ledger-state result (None: passes);
    `retry_at_ms` set when that reason is transient (V3); `paid`: the ledger already paid it."""

    signed: SignedClaim
    body: PayoutBody
    reason: Reason | None
    retry_at_ms: int | None
    paid: bool
    source: str
    now_ms: int


@dataclass(frozen=True)
class VotesArrived:
    """Votes from a peer's batch, our own freshly signed one, or the store at restart."""

    votes: tuple[Vote, ...]
    origin: str  # "peer" | "own" | "store"


@dataclass(frozen=True)
class PayoutSeen:
    claim_id: bytes
    qc: QuorumCertificate | None  # the QC the ledger paid (shown instead of ours)


@dataclass(frozen=True)
class QcRefused:
    claim_id: bytes
    reason: Reason
    retry_at_ms: int | None  # set when the ledger-state reason is transient: post again then
    definitive: bool  # the ledger's own rules said no for good


@dataclass(frozen=True)
class EpochRotated:
    current: OracleSet
    previous: OracleSet | None
    previous_until_ms: int | None  # the ledger accepts the previous epoch's QCs until then
    now_ms: int


@dataclass(frozen=True)
class Tick:
    now_ms: int


Event = ClaimChecked | VotesArrived | PayoutSeen | QcRefused | EpochRotated | Tick


# ====================================================================== actions (out of it)


@dataclass(frozen=True)
class SaveClaim:
    signed: SignedClaim
    status: ClaimStatus
    source: str


@dataclass(frozen=True)
class SetStatus:
    claim_id: bytes
    status: ClaimStatus
    reason: str | None = None


@dataclass(frozen=True)
class SignVote:
    """Sign this body and feed the vote back as VotesArrived(origin="own")."""

    body: PayoutBody | RejectBody


@dataclass(frozen=True)
class SaveVotes:
    votes: tuple[Vote, ...]
    own: bool


@dataclass(frozen=True)
class PublishVotes:
    votes: tuple[Vote, ...]


@dataclass(frozen=True)
class SaveEvidence:
    claim_id: bytes
    oracle_id: bytes
    votes: tuple[Vote, ...]


@dataclass(frozen=True)
class SaveQC:
    qc: QuorumCertificate
    replace: bool = False  # the ledger's paid QC, or a newer epoch's, replaces a stored one


@dataclass(frozen=True)
class PostQC:
    claim_id: bytes


@dataclass(frozen=True)
class Recheck:
    """Run the ledger-state checks again (proof already verified) and send ClaimChecked."""

    claim_id: bytes


@dataclass(frozen=True)
class Decided:
    """A claim left PENDING (for metrics: latency, decisions)."""

    claim_id: bytes
    status: ClaimStatus


@dataclass(frozen=True)
class Refused:
    """An event that asked for a move the table refuses (logged, never an error)."""

    claim_id: bytes
    move: Move
    status: ClaimStatus
    why: str


@dataclass(frozen=True)
class Counted:
    """What the counter did with each vote (metrics), and equivocations seen."""

    results: tuple[tuple[Vote, VoteOutcome], ...]
    origin: str


Action = (SaveClaim | SetStatus | SignVote | SaveVotes | PublishVotes | SaveEvidence | SaveQC | PostQC
          | Recheck | Decided | Refused | Counted)


# ====================================================================== the machine


def _verdict_of(vote: Vote) -> tuple[str, Reason | None]:
    return ("approve", None) if isinstance(vote, Approve) else ("reject", vote.body.reason)


@dataclass
class ClaimState:
    claim_id: bytes
    signed: SignedClaim
    status: ClaimStatus
    reason: str | None = None
    body: PayoutBody | None = None  # what we approve (its epoch replaced when re-signing)
    own: dict[int, Vote] = field(default_factory=dict)  # epoch -> our vote in it
    intent: dict[int, tuple[str, Reason | None]] = field(default_factory=dict)  # asked to sign
    retry_at_ms: int | None = None  # a transient failure: recheck then (no vote yet)
    qc: QuorumCertificate | None = None

    @property
    def verdict(self) -> tuple[str, Reason | None] | None:
        """Our verdict on this claim, whatever the epoch (V2: it never changes)."""
        for v in self.own.values():
            return _verdict_of(v)
        for k in self.intent.values():
            return k
        return None

class ClaimMachine:
    """All claims of one oracle. Feed every event to `handle`; carry out what it returns, in order."""

    def __init__(self, oracle_id: bytes, current: OracleSet, *, previous: OracleSet | None = None,
                 previous_until_ms: int | None = None, max_open_per_voter: int = 10_000) -> None:
        self.oracle_id = oracle_id
        self.max_open_per_voter = max_open_per_voter
        self.claims: dict[bytes, ClaimState] = {}
        self.counters: dict[int, QuorumCounter] = {}
        self.current = current
        self.previous_until_ms: int | None = None
        self.ignored: _Multiset[str] = _Multiset()  # votes of an epoch we no longer count
        self._install(current, previous, previous_until_ms)

    # ------------------------------------------------------------------ queries

    @property
    def is_member(self) -> bool:
        return self.oracle_id in self.current.members

    def claim(self, claim_id: bytes) -> ClaimState | None:
        return self.claims.get(claim_id)

    def tallies(self, claim_id: bytes) -> list[Tally]:
        return [t for c in self.counters.values() if (t := c.tally(claim_id)) is not None]

    def ignored_votes(self) -> dict[str, int]:
        out: _Multiset[str] = _Multiset(self.ignored)
        for c in self.counters.values():
            out.update(c.ignored)
        return dict(out)

    def undecided(self) -> list[ClaimState]:
        return [c for c in self.claims.values() if c.status in (ClaimStatus.PENDING, ClaimStatus.APPROVED)]

    # ------------------------------------------------------------------ the entry point

    def handle(self, event: Event) -> list[Action]:
        step = EVENT_STEPS.get(type(event))
        if step is None:
            raise TypeError(f"not an event: {event!r}")
        return step(self, event)

    def restore(self, claims: Iterable[tuple[SignedClaim, ClaimStatus, str | None]],
                votes: Sequence[tuple[Vote, bool]], qcs: Iterable[QuorumCertificate]) -> list[Action]:
        """Rebuild from what the node persisted (after a crash). Returns the actions that resume
        work: own votes re-published, QCs of approved claims posted again, decided tallies applied."""
        for signed, status, reason in claims:
            cid = signed.claim.claim_id
            self.claims[cid] = ClaimState(cid, signed, status, reason)
        for qc in qcs:
            st = self.claims.get(qc.body.claim_id)
            if st is not None:
                st.qc = qc
        for vote, own in votes:
            st = self.claims.get(vote.claim_id)
            if own and st is not None:
                st.own[_epoch_of(vote)] = vote
                if isinstance(vote, Approve):
                    st.body = vote.body
        actions = self._votes(VotesArrived(tuple(v for v, _ in votes), "store"))
        for st in self.undecided():
            mine = tuple(v for e, v in sorted(st.own.items()) if e in self.counters)
            if mine:
                actions.append(PublishVotes(mine))
            if st.status is ClaimStatus.APPROVED:
                actions.append(PostQC(st.claim_id))
            elif st.status is ClaimStatus.PENDING and self.current.epoch not in st.own and self.is_member:
                actions.append(Recheck(st.claim_id))  # a transient failure, or a rotation we slept through
        return actions

    # ------------------------------------------------------------------ events

    def _checked(self, ev: ClaimChecked) -> list[Action]:
        cid = ev.signed.claim.claim_id
        st = self.claims.get(cid)
        actions: list[Action] = []
        if st is None:
            st = self.claims[cid] = ClaimState(cid, ev.signed, ClaimStatus.PENDING)
            actions.append(SaveClaim(ev.signed, ClaimStatus.PENDING, ev.source))
            if ev.paid:
                return actions + self._move(st, Move.PAYOUT_SEEN)
            # Peers' votes may have decided it before we saw it.
            for t in self.tallies(cid):
                if t.verdict is not Verdict.PENDING:
                    actions += self._apply_tally(t)
        elif ev.paid:
            return self._move(st, Move.PAYOUT_SEEN) if st.status is not ClaimStatus.PAID else []
        if st.status is ClaimStatus.PAID:
            return actions
        st.body = ev.body  # deterministic from the claim and the policy; only its epoch moves
        # We vote even on a claim our peers decided before we saw it: our vote is then on record
        # (and helps a peer that missed one of theirs).
        if not self.is_member or self.current.epoch in st.own or self.current.epoch in st.intent:
            return actions
        if st.verdict is not None:  # V2: signed in an earlier epoch -> the same verdict again
            return actions + self._sign(st, st.verdict)
        if ev.reason is None:
            st.retry_at_ms = None
            return actions + self._sign(st, ("approve", None))
        if ev.retry_at_ms is not None:  # V3: transient -> no vote now, a recheck later
            st.retry_at_ms = ev.retry_at_ms
            return actions
        st.retry_at_ms = None
        return actions + self._sign(st, ("reject", ev.reason))

    def _sign(self, st: ClaimState, verdict: tuple[str, Reason | None]) -> list[Action]:
        epoch = self.current.epoch
        earlier = st.verdict
        assert earlier is None or earlier == verdict, "V2: never a different verdict"
        assert epoch not in st.own and epoch not in st.intent, "V2: one own vote per claim per epoch"
        st.intent[epoch] = verdict
        kind, reason = verdict
        if kind == "approve":
            assert st.body is not None
            return [SignVote(st.body.replace(oracle_set_epoch=epoch))]
        assert reason is not None
        return [SignVote(RejectBody(oracle_id=self.oracle_id, ledger_id=self.current.ledger_id,
                                    oracle_set_epoch=epoch, claim_id=st.claim_id, reason=reason))]

    def _votes(self, ev: VotesArrived) -> list[Action]:
        actions: list[Action] = []
        kept_peer: list[Vote] = []
        results: list[tuple[Vote, VoteOutcome]] = []
        decided: list[Tally] = []
        own_new: list[Vote] = []
        for v in ev.votes:
            epoch = _epoch_of(v)
            counter = self.counters.get(epoch)
            if ev.origin == "own":
                st = self.claims.get(v.claim_id)
                assert v.oracle_id == self.oracle_id and st is not None
                assert st.intent.get(epoch) == _verdict_of(v) and epoch not in st.own, "V2"
                st.own[epoch] = v
                own_new.append(v)
            if counter is None:
                self.ignored[VoteOutcome.WRONG_EPOCH.value] += 1
                results.append((v, VoteOutcome.WRONG_EPOCH))
                continue
            r: AddResult = counter.add(v)
            results.append((v, r.outcome))
            if r.outcome.kept and ev.origin == "peer":
                kept_peer.append(v)
            if r.outcome is VoteOutcome.EQUIVOCATION and r.tally is not None:
                actions.append(SaveEvidence(r.tally.claim_id, v.oracle_id, tuple(r.tally.equivocations[v.oracle_id])))
            if r.decided and r.tally is not None:
                decided.append(r.tally)
        if own_new:
            actions.insert(0, SaveVotes(tuple(own_new), own=True))
            actions.append(PublishVotes(tuple(own_new)))
        if kept_peer:
            actions.insert(0, SaveVotes(tuple(kept_peer), own=False))
        if ev.origin != "store":
            actions.append(Counted(tuple(results), ev.origin))
        for t in decided:
            actions += self._apply_tally(t)
        return actions

    def _apply_tally(self, tally: Tally) -> list[Action]:
        cid = tally.claim_id
        st = self.claims.get(cid)
        if tally.verdict is Verdict.CERTIFIED and tally.qc is not None:
            actions: list[Action] = []
            newer = st is None or st.qc is None or st.qc.body.oracle_set_epoch < tally.qc.body.oracle_set_epoch
            if newer and (st is None or st.status is not ClaimStatus.PAID):
                actions.append(SaveQC(tally.qc, replace=st is not None and st.qc is not None))
                if st is not None:
                    st.qc = tally.qc
            if st is None:
                return actions + [PostQC(cid)]  # a QC for a claim we never saw still helps
            if st.status is ClaimStatus.PENDING:
                actions += self._move(st, Move.CERTIFIED)
            if st.status is ClaimStatus.APPROVED and newer:
                actions.append(PostQC(cid))
            return actions
        if tally.verdict is Verdict.REJECTED and st is not None:
            reason = tally.reject_reason.value if tally.reject_reason else None
            return self._move(st, Move.REJECTED, reason)
        return []

    def _payout(self, ev: PayoutSeen) -> list[Action]:
        st = self.claims.get(ev.claim_id)
        if st is None:
            return []
        actions: list[Action] = []
        if ev.qc is not None and st.status is not ClaimStatus.PAID:
            st.qc = ev.qc
            actions.append(SaveQC(ev.qc, replace=True))
        return actions + self._move(st, Move.PAYOUT_SEEN)

    def _qc_refused(self, ev: QcRefused) -> list[Action]:
        st = self.claims.get(ev.claim_id)
        if st is None or not ev.definitive:
            return []  # transient or not ours to judge: the re-post loop tries again
        return self._move(st, Move.QC_REFUSED, ev.reason.value)

    def _rotated(self, ev: EpochRotated) -> list[Action]:
        if ev.current == self.current:
            return []
        self._install(ev.current, ev.previous, ev.previous_until_ms)
        actions: list[Action] = []
        if not self.is_member:
            return actions
        for st in self.undecided():
            if self.current.epoch in st.own or self.current.epoch in st.intent:
                continue
            verdict = st.verdict
            if verdict is not None and (verdict[0] == "reject" or st.body is not None):
                actions += self._sign(st, verdict)  # V2: the same verdict under the new epoch
            elif st.status is ClaimStatus.PENDING:
                actions.append(Recheck(st.claim_id))
        return actions

    def _tick(self, ev: Tick) -> list[Action]:
        if self.previous_until_ms is not None and ev.now_ms > self.previous_until_ms:
            for epoch in [e for e in self.counters if e != self.current.epoch]:
                del self.counters[epoch]  # the ledger no longer takes its QCs
            self.previous_until_ms = None
        actions: list[Action] = []
        for st in self.claims.values():
            if st.status is ClaimStatus.PENDING and st.retry_at_ms is not None and st.retry_at_ms <= ev.now_ms:
                st.retry_at_ms = None
                actions.append(Recheck(st.claim_id))
        return actions

    # ------------------------------------------------------------------ helpers

    def _install(self, current: OracleSet, previous: OracleSet | None, previous_until_ms: int | None) -> None:
        self.current = current
        keep = {current.epoch}
        if previous is not None and previous_until_ms is not None:
            keep.add(previous.epoch)
            if previous.epoch not in self.counters:
                self.counters[previous.epoch] = QuorumCounter(previous, max_open_per_voter=self.max_open_per_voter)
            self.previous_until_ms = previous_until_ms
        if current.epoch not in self.counters:
            self.counters[current.epoch] = QuorumCounter(current, max_open_per_voter=self.max_open_per_voter)
        for epoch in [e for e in self.counters if e not in keep]:
            del self.counters[epoch]

    def _move(self, st: ClaimState, move: Move, reason: str | None = None) -> list[Action]:
        to = transition(st.status, move)
        if not isinstance(to, ClaimStatus):  # (a ClaimStatus is a str too: test the enum)
            return [Refused(st.claim_id, move, st.status, to)]
        was = st.status
        st.status = to
        if reason is not None:
            st.reason = reason
        st.retry_at_ms = None
        actions: list[Action] = [SetStatus(st.claim_id, to, reason)]
        if was is ClaimStatus.PENDING:
            actions.append(Decided(st.claim_id, to))
        return actions


# The step each event takes through `ClaimMachine.handle`, one row per member of `Event`.
EVENT_STEPS: dict[type, Callable[[ClaimMachine, Any], list[Action]]] = {
    ClaimChecked: ClaimMachine._checked,
    VotesArrived: ClaimMachine._votes,
    PayoutSeen: ClaimMachine._payout,
    QcRefused: ClaimMachine._qc_refused,
    EpochRotated: ClaimMachine._rotated,
    Tick: ClaimMachine._tick,
}


def _epoch_of(vote: Vote) -> int:
    return vote.body.oracle_set_epoch if isinstance(vote, (Approve, Reject)) else -1
