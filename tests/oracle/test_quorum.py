"""Pure unit tests of the quorum counter (oracle/quorum.py): no processes, no I/O."""

from __future__ import annotations

import os

import pytest

from faultproof.errors import FaultproofError, Reason
from faultproof.identity import Identity, domain_tag
from faultproof.messages import PayoutBody, RejectBody
from faultproof.signers import signer_set_fault
from oracle.quorum import OracleSet, QuorumCounter, Verdict, VoteOutcome

LEDGER = b"\x11" * 32
KEYS = [Identity.from_seed(bytes([i + 1]) * 32) for i in range(6)]  # 5 members + 1 outsider
MEMBERS = frozenset(k.public_key for k in KEYS[:5])


def body(claim: bytes = b"\x22" * 32, amount: int = 100, epoch: int = 1, ledger: bytes = LEDGER) -> PayoutBody:
    return PayoutBody(
        ledger_id=ledger, oracle_set_epoch=epoch, claim_id=claim, policy_id=b"\x33" * 32,
        device_id=b"\x44" * 32, epoch=0, start_seq=1, end_seq=5, start_ts=1000, end_ts=2000,
        circuit_id=b"\x55" * 32, beneficiary=b"\x66" * 32, amount=amount,
    )


def reject(i: int, claim: bytes = b"\x22" * 32, reason: Reason = Reason.WINDOW_OVERLAP):
    return RejectBody(oracle_id=KEYS[i].public_key, ledger_id=LEDGER, oracle_set_epoch=1,
                      claim_id=claim, reason=reason).sign(KEYS[i])


def counter(**kw) -> QuorumCounter:
    return QuorumCounter(OracleSet(LEDGER, 1, MEMBERS, 4), **kw)


def test_qc_at_k_identical_approvals() -> None:
    c = counter()
    results = [c.add(body().approve(KEYS[i])) for i in range(4)]
    assert [r.outcome for r in results] == [VoteOutcome.COUNTED] * 4
    assert [r.decided for r in results] == [False, False, False, True]
    t = results[-1].tally
    assert t is not None and t.verdict is Verdict.CERTIFIED and t.qc is not None
    assert len(t.qc.signatures) == 4
    assert signer_set_fault(t.qc.signatures, MEMBERS, 4, domain_tag(t.qc.body.NAME), t.qc.body.encode()) is None
    # a fifth approval is recorded but changes nothing
    r = c.add(body().approve(KEYS[4]))
    assert r.outcome is VoteOutcome.COUNTED and not r.decided and t.verdict is Verdict.CERTIFIED


def test_different_bodies_do_not_add_up() -> None:
    c = counter()
    for i in range(3):
        c.add(body().approve(KEYS[i]))
    r = c.add(body(amount=10**9).approve(KEYS[3]))  # inflated amount from a Byzantine member
    assert r.outcome is VoteOutcome.COUNTED and r.tally is not None
    assert r.tally.verdict is Verdict.PENDING
    r = c.add(body().approve(KEYS[4]))
    assert r.decided and r.tally is not None and r.tally.qc is not None
    assert r.tally.qc.body.amount == 100


def test_rejection_at_n_minus_k_plus_one() -> None:
    c = counter()
    assert not c.add(reject(0)).decided
    r = c.add(reject(1, reason=Reason.WINDOW_OVERLAP))
    assert r.decided and r.tally is not None
    assert r.tally.verdict is Verdict.REJECTED and r.tally.reject_reason is Reason.WINDOW_OVERLAP
    # no QC can form afterwards, even with every remaining approval
    for i in range(2, 5):
        c.add(body().approve(KEYS[i]))
    assert r.tally.verdict is Verdict.REJECTED and r.tally.qc is None


@pytest.mark.parametrize(
    ("make", "outcome"),
    [
        (lambda: body().approve(KEYS[5]), VoteOutcome.NON_MEMBER),
        (lambda: body(ledger=b"\x99" * 32).approve(KEYS[0]), VoteOutcome.WRONG_LEDGER),
        (lambda: body(epoch=7).approve(KEYS[0]), VoteOutcome.WRONG_EPOCH),
        (lambda: body().approve(KEYS[0]).replace(signature=os.urandom(64)), VoteOutcome.BAD_SIGNATURE),
        # a member's id on someone else's signature
        (lambda: body().approve(KEYS[1]).replace(oracle_id=KEYS[0].public_key), VoteOutcome.BAD_SIGNATURE),
    ],
)
def test_ignored_votes_are_counted_not_kept(make, outcome) -> None:
    c = counter()
    r = c.add(make())
    assert r.outcome is outcome and not r.outcome.kept
    assert c.ignored[outcome.value] == 1
    t = c.tally(b"\x22" * 32)
    assert t is None or not t.first_vote


def test_duplicates_ignored() -> None:
    c = counter()
    v = body().approve(KEYS[0])
    assert c.add(v).outcome is VoteOutcome.COUNTED
    for _ in range(10):
        assert c.add(v).outcome is VoteOutcome.DUPLICATE
    # a second Reject with another reason is the same verdict: duplicate, not equivocation
    c.add(reject(1, reason=Reason.WINDOW_OVERLAP))
    assert c.add(reject(1, reason=Reason.PERIOD_LIMIT)).outcome is VoteOutcome.DUPLICATE
    t = c.tally(b"\x22" * 32)
    assert t is not None and len(t.first_vote) == 2 and not t.equivocations


@pytest.mark.parametrize("second", ["reject", "other_body"])
def test_equivocation_kept_as_evidence_and_not_counted(second) -> None:
    c = counter()
    a = body().approve(KEYS[0])
    b = reject(0) if second == "reject" else body(amount=5).approve(KEYS[0])
    assert c.add(a).outcome is VoteOutcome.COUNTED
    r = c.add(b)
    assert r.outcome is VoteOutcome.EQUIVOCATION and r.outcome.kept
    t = r.tally
    assert t is not None and {v.encode() for v in t.equivocations[KEYS[0].public_key]} == {a.encode(), b.encode()}
    assert {v.encode() for v in t.kept_votes()} == {a.encode(), b.encode()}
    # the equivocator's approval no longer counts: three honest approvals are not a QC...
    for i in (1, 2, 3):
        c.add(body().approve(KEYS[i]))
    assert t.verdict is Verdict.PENDING
    # ...four are, and the QC does not carry the equivocator
    c.add(body().approve(KEYS[4]))
    assert t.verdict is Verdict.CERTIFIED and t.qc is not None
    assert KEYS[0].public_key not in {s.oracle_id for s in t.qc.signatures}
    assert c.equivocators() == {b"\x22" * 32: {KEYS[0].public_key}}


def test_own_vote_goes_through_the_same_rules() -> None:
    """The counter has no notion of 'self': a node's own vote is just a member's vote."""
    c = counter()
    mine = body().approve(KEYS[2])
    assert c.add(mine).outcome is VoteOutcome.COUNTED
    assert c.add(mine).outcome is VoteOutcome.DUPLICATE


def test_flooding_member_is_bounded() -> None:
    c = counter(max_open_per_voter=10)
    outcomes = [c.add(body(claim=i.to_bytes(32, "big")).approve(KEYS[0])).outcome for i in range(30)]
    assert outcomes.count(VoteOutcome.COUNTED) == 10
    assert outcomes.count(VoteOutcome.OVER_LIMIT) == 20
    assert len(c.tallies) == 10
    # an honest member still gets its votes in for a new claim
    assert c.add(body(claim=b"\x77" * 32).approve(KEYS[1])).outcome is VoteOutcome.COUNTED


def test_decided_claims_free_the_budget() -> None:
    c = counter(max_open_per_voter=1)
    for i in range(4):
        c.add(body().approve(KEYS[i]))
    assert c.tally(b"\x22" * 32).verdict is Verdict.CERTIFIED  # type: ignore[union-attr]
    assert c.add(body(claim=b"\x78" * 32).approve(KEYS[0])).outcome is VoteOutcome.COUNTED


def test_oracle_set_validation() -> None:
    for k in (2, 6):  # below floor(n/2)+1, above n
        with pytest.raises(FaultproofError) as e:
            OracleSet(LEDGER, 1, MEMBERS, k)
        assert e.value.reason is Reason.INVALID_ORACLE_SET
    assert OracleSet(LEDGER, 1, MEMBERS, 4).reject_threshold == 2
