"""Pure unit tests of the claim machine (oracle/claim.py) and of the pipeline's transient-reason
rule: no processes, no I/O. A few machines are wired by hand (every published vote reaches every
other machine at once); the simulator in tests/sim does the same under faults."""

from __future__ import annotations

import ast
import typing
from pathlib import Path

import pytest

from faultproof.errors import Reason
from faultproof.identity import Identity
from faultproof.messages import Claim, PayoutBody, SignedClaim, Vote
from oracle import claim as cm
from oracle.claim import REFUSALS, TRANSITIONS, ClaimMachine, ClaimStatus, Move, transition
from oracle.quorum import OracleSet
from tests.netfix import DeviceSim

LEDGER = b"\x11" * 32
KEYS = [Identity.from_seed(bytes([i + 1]) * 32) for i in range(6)]
IDS = [k.public_key for k in KEYS]
AGENT = Identity.from_seed(b"\x77" * 32)


def oset(epoch: int, members: list[bytes] | None = None, k: int = 4) -> OracleSet:
    return OracleSet(LEDGER, epoch, frozenset(members or IDS[:5]), k)


def make_claim(label: str = "c") -> SignedClaim:
    dev = DeviceSim.create(label, anchor_ts=1_000)
    start = dev.record([90, 95, 10, 12], start_ts=2_000)
    return Claim(policy_id=b"\x33" * 32, start=dev.frame(start), end=dev.frame(start + 4), proof=bytes(256),
                 agent_id=AGENT.public_key, created_ms=5_000).sign(AGENT)


def body_for(signed: SignedClaim, epoch: int) -> PayoutBody:
    c = signed.claim
    return PayoutBody(ledger_id=LEDGER, oracle_set_epoch=epoch, claim_id=c.claim_id, policy_id=c.policy_id,
                      device_id=c.start.frame.device_id, epoch=0, start_seq=c.start.frame.seq, end_seq=c.end.frame.seq,
                      start_ts=c.start.frame.ts_ms, end_ts=c.end.frame.ts_ms, circuit_id=b"\x55" * 32,
                      beneficiary=b"\x66" * 32, amount=100)


class Cluster:
    """n machines; every vote one publishes is delivered to the others (unless `down`)."""

    def __init__(self, n: int = 5, k: int = 4) -> None:
        self.set = oset(0, IDS[:n], k)
        self.machines = [ClaimMachine(IDS[i], self.set) for i in range(n)]
        self.down: set[int] = set()
        self.posted: list[tuple[int, bytes]] = []
        self.rechecks: list[tuple[int, bytes]] = []

    def run(self, i: int, actions: list[cm.Action]) -> None:
        queue = list(actions)
        while queue:
            a = queue.pop(0)
            if isinstance(a, cm.SignVote):
                b = a.body
                vote: Vote = b.approve(KEYS[i]) if isinstance(b, PayoutBody) else b.sign(KEYS[i])
                queue[:0] = self.machines[i].handle(cm.VotesArrived((vote,), "own"))
            elif isinstance(a, cm.PublishVotes):
                for j, m in enumerate(self.machines):
                    if j != i and j not in self.down:
                        self.run(j, m.handle(cm.VotesArrived(a.votes, "peer")))
            elif isinstance(a, cm.PostQC):
                self.posted.append((i, a.claim_id))
            elif isinstance(a, cm.Recheck):
                self.rechecks.append((i, a.claim_id))

    def check(self, i: int, signed: SignedClaim, reason: Reason | None = None, retry: int | None = None,
              now: int = 10_000) -> None:
        epoch = self.machines[i].current.epoch
        self.run(i, self.machines[i].handle(
            cm.ClaimChecked(signed, body_for(signed, epoch), reason, retry, False, "http", now)))

    def rotate(self, new: OracleSet, now: int = 20_000) -> None:
        # Everyone learns of the rotation before the first new-epoch vote travels (a vote of an
        # epoch a node does not know yet is ignored: re-gossip repeats it; the simulator covers that).
        pending = [(i, m.handle(cm.EpochRotated(new, m.current, now + 3_600_000, now)))
                   for i, m in enumerate(self.machines) if i not in self.down]
        for i, actions in pending:
            self.run(i, actions)

    def status(self, i: int, signed: SignedClaim) -> ClaimStatus | None:
        st = self.machines[i].claim(signed.claim.claim_id)
        return st.status if st else None


def test_claim_module_is_pure() -> None:
    """No I/O library and no clock in the lifecycle: time comes in on the events."""
    src = Path(cm.__file__).read_text()
    tree = ast.parse(src)
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    forbidden = {"asyncio", "aiohttp", "sqlite3", "socket", "threading", "libp2p", "trio", "time", "datetime"}
    assert not imported & forbidden, imported & forbidden
    for clock in ("time.time", "monotonic(", "datetime.now", "time_ns"):
        assert clock not in src


def test_transition_table_is_total_with_a_reason_for_every_refusal() -> None:
    for status in ClaimStatus:
        for move in Move:
            out = transition(status, move)
            assert isinstance(out, ClaimStatus) == ((status, move) in TRANSITIONS)
            if (status, move) in REFUSALS:
                assert not isinstance(out, ClaimStatus) and out
    assert not any(isinstance(transition(ClaimStatus.PAID, m), ClaimStatus) for m in Move)  # final


def test_every_event_takes_one_step_and_anything_else_is_a_type_error() -> None:
    """`handle` dispatches through the EVENT_STEPS table: a row for each member of `Event`, none
    for anything else, which is a TypeError (the node builds the events: a bug, not a network input)."""
    assert set(cm.EVENT_STEPS) == set(typing.get_args(cm.Event))
    machine = ClaimMachine(IDS[0], oset(0))
    for not_an_event in (object(), cm.Recheck(b"\x01" * 32), cm.Tick):
        with pytest.raises(TypeError, match="not an event"):
            machine.handle(not_an_event)  # type: ignore[arg-type]
    assert machine.handle(cm.Tick(1_000)) == [] and machine.claims == {}


def test_honest_cluster_certifies_and_each_votes_once() -> None:
    c = Cluster()
    signed = make_claim()
    for i in range(5):
        c.check(i, signed)
    assert all(c.status(i, signed) is ClaimStatus.APPROVED for i in range(5))
    assert {i for i, _ in c.posted} == set(range(5))
    for m in c.machines:
        st = m.claim(signed.claim.claim_id)
        assert st is not None and list(st.own) == [0]
    # a payout seen: paid; a second one is refused with a reason, not an error
    out = c.machines[0].handle(cm.PayoutSeen(signed.claim.claim_id, None))
    assert cm.SetStatus(signed.claim.claim_id, ClaimStatus.PAID) in out
    again = c.machines[0].handle(cm.PayoutSeen(signed.claim.claim_id, None))
    assert [type(a) for a in again] == [cm.Refused]


def test_rotation_mid_claim_resigns_the_same_verdict_in_the_new_epoch() -> None:
    """Item 13.1, pure: 3 of 5 voted in epoch 0 (two down), the set rotates to the same members:
    the 3 sign the same body under epoch 1, the 2 returning members vote in it: certified in epoch 1."""
    c = Cluster()
    signed = make_claim()
    c.down = {3, 4}
    for i in range(3):
        c.check(i, signed)
    assert all(c.status(i, signed) is ClaimStatus.PENDING for i in range(3))
    c.rotate(oset(1))
    for i in range(3):
        st = c.machines[i].claim(signed.claim.claim_id)
        assert st is not None and sorted(st.own) == [0, 1]
        a0, a1 = st.own[0], st.own[1]
        assert a0.body.replace(oracle_set_epoch=1) == a1.body  # the same PayoutBody, new epoch
    c.down = set()
    for i in (3, 4):
        c.machines[i].handle(cm.EpochRotated(oset(1), oset(0), 10**12, 20_000))
        c.check(i, signed)
    # 0-2 hold all five epoch-1 approvals (3 and 4 were down when 0-2 re-signed: re-gossip's job)
    assert all(c.status(i, signed) is ClaimStatus.APPROVED for i in range(3))
    st = c.machines[0].claim(signed.claim.claim_id)
    assert st is not None and st.qc is not None and st.qc.body.oracle_set_epoch == 1


def test_rotation_never_changes_a_verdict_and_signs_once_per_epoch() -> None:
    c = Cluster()
    signed = make_claim()
    c.down = {1, 2, 3, 4}
    c.check(0, signed, Reason.WINDOW_OVERLAP)
    m = c.machines[0]
    c.rotate(oset(1))
    st = m.claim(signed.claim.claim_id)
    assert st is not None and {e: v.body.reason for e, v in st.own.items()} == {  # type: ignore[union-attr]
        0: Reason.WINDOW_OVERLAP, 1: Reason.WINDOW_OVERLAP}
    # a later check that passes cannot turn our reject into an approval (V2), nor sign twice
    c.check(0, signed, None)
    assert sorted(st.own) == [0, 1] and all(type(v).__name__ == "Reject" for v in st.own.values())


def test_old_epoch_votes_still_count_during_the_grace_period() -> None:
    c = Cluster()
    signed = make_claim()
    c.rotate(oset(1))
    late = [body_for(signed, 0).approve(KEYS[i]) for i in range(4)]  # signed before the rotation
    m = c.machines[0]
    m.handle(cm.ClaimChecked(signed, body_for(signed, 1), None, None, False, "gossip", 30_000))
    out = m.handle(cm.VotesArrived(tuple(late), "peer"))
    assert any(isinstance(a, cm.PostQC) for a in out)
    # after the grace period the old epoch's votes are ignored
    m2 = ClaimMachine(IDS[0], oset(1), previous=oset(0), previous_until_ms=40_000)
    m2.handle(cm.Tick(40_001))
    m2.handle(cm.VotesArrived(tuple(late), "peer"))
    assert m2.ignored_votes().get("wrong_epoch") == 4


def test_passing_conditions_do_not_become_permanent_rejections() -> None:
    """Item 13.7, the machine's side: a transient reason gets no vote, only a recheck; once the
    clock has moved and the check passes, the oracle approves, and the claim is paid."""
    c = Cluster()
    signed = make_claim()
    for i in range(5):
        c.check(i, signed, Reason.END_TS_IN_FUTURE, retry=12_000)
    for m in c.machines:
        st = m.claim(signed.claim.claim_id)
        assert st is not None and st.own == {} and st.status is ClaimStatus.PENDING
    for i, m in enumerate(c.machines):
        c.run(i, m.handle(cm.Tick(11_999)))
    assert c.rechecks == []
    for i, m in enumerate(c.machines):
        c.run(i, m.handle(cm.Tick(12_000)))
    assert sorted(i for i, _ in c.rechecks) == list(range(5))
    for i in range(5):
        c.check(i, signed, None, now=12_000)
    assert all(c.status(i, signed) is ClaimStatus.APPROVED for i in range(5))


def test_transient_and_definitive_reasons_in_the_pipeline() -> None:
    """Item 13.7, the pipeline's side: which ledger-state reasons lift by the clock alone."""
    from ledger.state import LedgerState
    from oracle.pipeline import RETRY_HORIZON_MS, retry_at
    from tests.sim.world import World

    w = World.build(seed=1)
    state: LedgerState = w.ledger
    skew = state.genesis.max_skew_ms
    horizon = max(RETRY_HORIZON_MS, skew)
    inc = w.incidents[0]
    body = w.body_for(inc, state.oracle_set.epoch)
    now = body.end_ts - skew - 1_000  # the oracle's clock one second too far behind
    assert retry_at(Reason.END_TS_IN_FUTURE, body, state, now) == body.end_ts - skew
    assert retry_at(Reason.END_TS_IN_FUTURE, body, state, body.end_ts - skew - horizon) == body.end_ts - skew
    assert retry_at(Reason.END_TS_IN_FUTURE, body, state, body.end_ts - skew - horizon - 1) is None  # far ahead
    for r in (Reason.WINDOW_OVERLAP, Reason.PERIOD_LIMIT, Reason.CLAIM_WINDOW_CLOSED, Reason.DEVICE_REVOKED,
              Reason.COVERAGE_EXHAUSTED, Reason.OUTSIDE_POLICY_TERM):
        assert retry_at(r, body, state, now) is None
    policy = state.policies[body.policy_id]
    start = policy.terms.start_ms
    assert retry_at(Reason.POLICY_NOT_ACTIVE, body, state, start - 1_000) == start  # term starts soon
    assert retry_at(Reason.POLICY_NOT_ACTIVE, body, state, start - horizon - 1) is None
    expired = policy.terms.end_ms + policy.terms.claim_window_ms + 1
    assert retry_at(Reason.POLICY_NOT_ACTIVE, body, state, expired) is None


@pytest.mark.parametrize("origin", ["peer", "store"])
def test_restore_resumes_without_signing_again(origin: str) -> None:
    c = Cluster()
    signed = make_claim()
    c.down = {1, 2, 3, 4}
    c.check(0, signed)
    st = c.machines[0].claim(signed.claim.claim_id)
    assert st is not None
    own = st.own[0]
    fresh = ClaimMachine(IDS[0], oset(0))
    out = fresh.restore([(signed, ClaimStatus.PENDING, None)], [(own, True)], [])
    assert cm.PublishVotes((own,)) in out and not any(isinstance(a, cm.SignVote) for a in out)
    again = fresh.handle(cm.ClaimChecked(signed, body_for(signed, 0), None, None, False, origin, 1))
    assert not any(isinstance(a, cm.SignVote) for a in again)
