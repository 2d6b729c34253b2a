"""Economic security in the pure ledger rules (DESIGN §14): bonds and their unlock delay, each kind
of slashing evidence (valid, forged, duplicate, stale) with every balance checked to the unit,
corroborated claims, and the soundness rule's table of cases."""

from __future__ import annotations

import pytest

from faultproof.errors import FaultproofError, Reason
from faultproof.messages import (
    BondHolder,
    EconParams,
    EconPolicy,
    ExpirePolicy,
    RotateOracles,
    Unbond,
    UnbondStep,
)
from ledger import economics
from ledger.economics import REWARDS, bond_account
from ledger.state import EXTERNAL, FREE, PAID, LedgerState, locked_account
from tests.ledger.econ_world import ORACLE_BOND, PARAMS, REPORTER, EconWorld
from tests.ledger.helpers import DAY, HOUR, SECOND, T0


def refused(w: EconWorld, tx: object, reason: Reason, at: int | None = None) -> None:
    """`tx` is refused with `reason` and the state's balances, height and head are untouched."""
    before = (dict(w.state.balances), w.state.height, w.state.head_hash, w.state.econ.bond_total)
    with pytest.raises(FaultproofError) as err:
        w.state.apply(tx, w.now if at is None else at)  # type: ignore[arg-type]
    assert err.value.reason is reason, f"expected {reason.value}, got {err.value}"
    assert (dict(w.state.balances), w.state.height, w.state.head_hash, w.state.econ.bond_total) == before


def books(state: LedgerState) -> None:
    assert sum(state.balances.values()) == 0
    assert state.econ.bond_total == sum(v for a, v in state.balances.items() if a.startswith("bond:"))


ORACLE = BondHolder.ORACLE
DEVICE = BondHolder.DEVICE


# --------------------------------------------------------------------------- pure arithmetic


def test_slash_split_and_overlap() -> None:
    assert economics.slash_split(1_000, 2_000) == (200, 800)
    assert economics.slash_split(999, 3_333) == (332, 667)  # the pool gets the rounding
    assert economics.slash_split(0, 2_000) == (0, 0)
    assert economics.windows_overlap([(0, 10), (5, 20)], 0)
    assert not economics.windows_overlap([(0, 10), (10, 20)], 0)  # (s, e] windows that only touch
    assert economics.windows_overlap([(0, 10), (10, 20)], 1)
    assert not economics.windows_overlap([(0, 10), (15, 20)], 5)
    assert economics.windows_overlap([(0, 10), (15, 20)], 6)


def test_assess_takes_the_cheapest_path() -> None:
    s = economics.assess(100, device_bonds=[70, 40, 90], m=2, staging_cost=10, oracle_bonds=[50] * 5, k=4)
    assert [a.cost for a in s.attacks] == [40 + 70 + 20, 200]
    assert s.cheapest.path is economics.AttackPath.DEVICES and s.profit == -30 and s.sound
    s = economics.assess(130, device_bonds=[70, 40, 90], m=2, staging_cost=10, oracle_bonds=[50] * 5, k=4)
    assert s.profit == 0 and not s.sound  # a break-even attack is unsound: profit must be < 0
    s = economics.assess(100, device_bonds=[10_000], m=1, staging_cost=0, oracle_bonds=[20] * 5, k=4)
    assert s.cheapest.path is economics.AttackPath.ORACLES and s.profit == 20


# --------------------------------------------------------------------------- the soundness rule

# (case, policy builder kwargs, device bonds, expected reason or None). Oracle path: 4 x 1000.
SOUNDNESS = [
    ("no device bond", dict(kind="single"), (0, 0, 0), Reason.INSUFFICIENT_BOND),
    ("no device bond, staging alone above the payout", dict(kind="single", staging=500), (0, 0, 0),
     Reason.INSUFFICIENT_BOND),
    ("one device of the group unbonded", dict(kind="group", m=2), (500, 500, 0), Reason.INSUFFICIENT_BOND),
    ("bond equals payout", dict(kind="single"), (100, 0, 0), Reason.ECONOMICALLY_UNSOUND),
    ("bond raised above payout", dict(kind="single"), (101, 0, 0), None),
    ("bond + declared staging", dict(kind="single", staging=50), (60, 0, 0), None),
    ("staging capped by the network", dict(kind="single", staging=5_000, amount=600), (60, 0, 0),
     Reason.ECONOMICALLY_UNSOUND),
    ("staging at the cap", dict(kind="single", staging=500, amount=559), (60, 0, 0), None),
    ("group m=2, two cheapest bonds 40+60", dict(kind="group", m=2), (40, 60, 90), Reason.ECONOMICALLY_UNSOUND),
    ("same group, m raised to 3", dict(kind="group", m=3), (40, 60, 90), None),
    ("same group m=2, bond raised 40 -> 41", dict(kind="group", m=2), (41, 60, 90), None),
    ("oracle path cheaper than devices", dict(kind="single", amount=4_000), (10_000, 0, 0),
     Reason.ECONOMICALLY_UNSOUND),
    ("oracle path just above the payout", dict(kind="single", amount=3_999), (10_000, 0, 0), None),
    ("plain issue_policy, no staging", dict(kind="plain"), (100, 0, 0), Reason.ECONOMICALLY_UNSOUND),
    ("plain issue_policy, bonded", dict(kind="plain"), (150, 0, 0), None),
    ("claim window not shorter than the unlock delay", dict(kind="single", claim_window_ms=30 * DAY),
     (10_000, 0, 0), Reason.ECONOMICALLY_UNSOUND),
]


@pytest.mark.parametrize(("case", "spec", "bonds", "reason"), SOUNDNESS, ids=[c[0] for c in SOUNDNESS])
def test_soundness_table(case: str, spec: dict, bonds: tuple[int, int, int], reason: Reason | None) -> None:
    w = EconWorld.build(device_bonds=bonds)
    spec = dict(spec)
    kind = spec.pop("kind")
    args = (w.terms(**spec) if kind == "plain" else
            w.single_policy(**spec) if kind == "single" else w.group_policy(**spec))
    tx = w.admin(args)
    if reason is None:
        effect = w.apply(tx)
        assert effect.policy_id in w.state.policies
        return
    refused(w, tx, reason)


def test_unsound_policy_accepted_once_the_bond_is_raised() -> None:
    w = EconWorld.build(device_bonds=(100, 0, 0))
    args = w.single_policy()
    refused(w, w.keys.sign(args, nonce=w.keys.next_nonce), Reason.ECONOMICALLY_UNSOUND)
    w.apply(w.bond(DEVICE, w.devices[0].public_key, 1))
    w.issue(args)
    verdict = w.state.soundness(args.terms, args, (w.devices[0].public_key,))
    assert verdict.sound and verdict.profit == -1


def test_economic_rules_need_bonded_oracles() -> None:
    w = EconWorld.build()
    refused(w, w.admin(EconParams(min_oracle_bond=ORACLE_BOND + 1, max_staging_cost=0, reporter_share_bps=0,
                                  unlock_delay_ms=DAY)), Reason.INSUFFICIENT_BOND)
    w.keys.next_nonce -= 1
    refused(w, w.admin(PARAMS.replace(reporter_share_bps=10_001)), Reason.INVALID_PARAMETERS)
    w.keys.next_nonce -= 1
    newcomer = b"\x77" * 32
    members = tuple(o.public_key for o in w.keys.oracles[1:]) + (newcomer,)
    refused(w, w.admin(RotateOracles(members=members, threshold=4)), Reason.INSUFFICIENT_BOND)
    w.keys.next_nonce -= 1
    w.apply(w.bond(ORACLE, newcomer, ORACLE_BOND))
    w.apply(w.admin(RotateOracles(members=members, threshold=4)))
    assert w.state.oracle_set.epoch == 1


# --------------------------------------------------------------------------- bonds and the unlock delay


def test_oracle_bond_unlocks_only_after_the_delay() -> None:
    w = EconWorld.build()
    o0 = w.keys.oracles[0].public_key
    refused(w, w.admin(Unbond(holder_kind=ORACLE, holder_id=o0, step=UnbondStep.REQUEST)), Reason.BOND_IN_USE)
    w.keys.next_nonce -= 1
    refused(w, w.admin(Unbond(holder_kind=ORACLE, holder_id=o0, step=UnbondStep.RELEASE)), Reason.BOND_LOCKED)
    w.keys.next_nonce -= 1
    # o0 leaves the set; it may ask to unbond, and gets the bond back only after unlock_delay_ms.
    w.apply(w.admin(RotateOracles(members=tuple(o.public_key for o in w.keys.oracles[1:]), threshold=3)))
    w.apply(w.admin(Unbond(holder_kind=ORACLE, holder_id=o0, step=UnbondStep.REQUEST)), at=T0 + HOUR)
    release = w.keys.sign(Unbond(holder_kind=ORACLE, holder_id=o0, step=UnbondStep.RELEASE), nonce=w.keys.next_nonce)
    refused(w, release, Reason.BOND_LOCKED, at=T0 + HOUR + PARAMS.unlock_delay_ms - 1)
    external = w.state.balance(EXTERNAL)
    w.keys.next_nonce += 1
    w.apply(release, at=T0 + HOUR + PARAMS.unlock_delay_ms)
    assert w.state.balance(bond_account(ORACLE, o0)) == 0
    assert w.state.balance(EXTERNAL) == external + ORACLE_BOND
    assert w.state.econ.bond(ORACLE, o0) is None
    books(w.state)


def test_device_bond_is_in_use_while_its_policy_is_open() -> None:
    w = EconWorld.build(device_bonds=(150, 0, 0))
    d0 = w.devices[0].public_key
    pid = w.issue(w.single_policy())
    refused(w, w.admin(Unbond(holder_kind=DEVICE, holder_id=d0, step=UnbondStep.REQUEST)), Reason.BOND_IN_USE)
    w.keys.next_nonce -= 1
    t = w.state.policies[pid].terms
    w.apply(ExpirePolicy(policy_id=pid), at=t.end_ms + t.claim_window_ms + 1)
    w.apply(w.admin(Unbond(holder_kind=DEVICE, holder_id=d0, step=UnbondStep.REQUEST)))
    # An unlocking bond secures nothing new: the device counts as unbonded.
    refused(w, w.keys.sign(w.single_policy(start_ms=w.now, end_ms=w.now + 30 * DAY), nonce=w.keys.next_nonce),
            Reason.INSUFFICIENT_BOND)


# --------------------------------------------------------------------------- slashing: oracles


def test_vote_equivocation_slashes_the_oracle() -> None:
    w = EconWorld.build(device_bonds=(150, 0, 0))
    pid = w.issue(w.single_policy())
    o2 = w.keys.oracles[2].public_key
    free = w.state.free
    ev = w.vote_equivocation(2, pid, kind="approve-reject")
    w.apply(ev)
    assert w.state.balance(bond_account(ORACLE, o2)) == 0
    assert w.state.balance(REWARDS) == 200  # 20 % of 1000 to the reporter
    assert w.state.free == free + 800  # the rest to the pool
    assert w.state.econ.rewards == {REPORTER: 200}
    assert o2 in w.state.econ.slashed_oracles
    books(w.state)
    # duplicate: the same evidence, or another against the same oracle
    refused(w, ev, Reason.EVIDENCE_DUPLICATE)
    refused(w, w.vote_equivocation(2, pid), Reason.EVIDENCE_DUPLICATE)
    # marked for removal: a rotation that keeps it is refused, one without it is accepted
    keep = tuple(o.public_key for o in w.keys.oracles)
    refused(w, w.keys.sign(RotateOracles(members=keep, threshold=4), nonce=w.keys.next_nonce), Reason.SLASHED_MEMBER)
    w.apply(w.admin(RotateOracles(members=tuple(k for k in keep if k != o2), threshold=3)))


def test_forged_and_non_conflicting_vote_evidence_is_refused() -> None:
    w = EconWorld.build(device_bonds=(150, 0, 0))
    pid = w.issue(w.single_policy())
    ev = w.vote_equivocation(1, pid)
    forged = ev.replace(second=ev.second.replace(signature=bytes(64)))
    refused(w, forged, Reason.EVIDENCE_INVALID)
    same = ev.replace(second=ev.first)
    refused(w, same, Reason.EVIDENCE_INVALID)  # one approval twice is not a conflict
    other_oracle = ev.replace(second=w.vote_equivocation(3, pid).second)
    refused(w, other_oracle, Reason.EVIDENCE_INVALID)
    assert not w.state.econ.slashed_oracles


def test_stale_vote_evidence_is_refused() -> None:
    w = EconWorld.build(device_bonds=(150, 0, 0))
    pid = w.issue(w.single_policy())
    ev = w.vote_equivocation(0, pid)  # epoch 0
    members = tuple(o.public_key for o in w.keys.oracles)
    w.apply(w.admin(RotateOracles(members=members, threshold=4)), at=T0 + HOUR)  # epoch 1; epoch 0 previous
    refused(w, ev, Reason.EVIDENCE_STALE, at=T0 + HOUR + PARAMS.unlock_delay_ms + 1)
    w.apply(w.admin(RotateOracles(members=members, threshold=5)))  # epoch 2: epoch 0 is gone
    refused(w, ev, Reason.EVIDENCE_STALE)


def test_previous_epoch_evidence_within_the_delay_slashes() -> None:
    w = EconWorld.build(device_bonds=(150, 0, 0))
    pid = w.issue(w.single_policy())
    ev = w.vote_equivocation(0, pid)
    w.apply(w.admin(RotateOracles(members=tuple(o.public_key for o in w.keys.oracles), threshold=4)), at=T0 + HOUR)
    w.apply(ev, at=T0 + HOUR + PARAMS.unlock_delay_ms)
    assert w.keys.oracles[0].public_key in w.state.econ.slashed_oracles


def test_contradicting_approve_slashes() -> None:
    w = EconWorld.build(device_bonds=(150, 0, 0))
    pid = w.issue(w.single_policy())
    o1 = w.keys.oracles[1].public_key
    refused(w, w.contradicting_approve(1, pid), Reason.EVIDENCE_INVALID)  # agrees with the policy
    ev = w.contradicting_approve(1, pid, beneficiary=b"\x66" * 32)
    refused(w, ev.replace(approve=ev.approve.replace(signature=bytes(64))), Reason.EVIDENCE_INVALID)
    free = w.state.free
    w.apply(ev)
    assert (w.state.balance(bond_account(ORACLE, o1)), w.state.balance(REWARDS), w.state.free) == (0, 200, free + 800)
    refused(w, w.contradicting_approve(1, pid, amount=101), Reason.EVIDENCE_DUPLICATE)
    # each of amount, device, circuit is a contradiction too
    for i, change in ((3, dict(amount=101)), (4, dict(circuit_id=b"\x01" * 32))):
        w.apply(w.contradicting_approve(i, pid, **change))
    assert len(w.state.econ.slashes) == 3
    books(w.state)


# --------------------------------------------------------------------------- slashing: devices


def test_double_signed_frames_revoke_and_slash_the_device_and_refuse_its_claims() -> None:
    w = EconWorld.build(device_bonds=(150, 0, 0))
    d0 = w.devices[0].public_key
    pid = w.issue(w.single_policy())
    body = w.incident(pid)
    now = body.end_ts + SECOND
    w.now = now
    qc = w.keys.qc(body)
    assert w.state.check(qc, now).paid == 100  # before the evidence, the claim would pay
    ev = w.double_frame(0, ts=body.end_ts - SECOND)
    free = w.state.free
    w.apply(ev)
    assert w.state.devices[d0].revoked_ms == now
    assert d0 in w.state.econ.slashed_devices
    assert w.state.balance(bond_account(DEVICE, d0)) == 0
    assert (w.state.balance(REWARDS), w.state.free) == (30, free + 120)
    # the window ended before the revocation, yet nothing unpaid is paid to a proven double-signer
    refused(w, qc, Reason.DEVICE_REVOKED)
    assert w.state.balance(PAID) == 0 and w.state.balance(locked_account(pid)) == 10_000
    refused(w, ev, Reason.EVIDENCE_DUPLICATE)
    books(w.state)


def test_forged_identical_and_stale_frame_evidence_is_refused() -> None:
    w = EconWorld.build(device_bonds=(150, 0, 0))
    ev = w.double_frame(0)
    refused(w, ev.replace(second=ev.second.replace(signature=ev.first.signature)), Reason.EVIDENCE_INVALID)
    refused(w, ev.replace(second=ev.first), Reason.EVIDENCE_INVALID)
    other_seq = w.double_frame(0, seq=6)
    refused(w, ev.replace(second=other_seq.second), Reason.EVIDENCE_INVALID)
    old = w.double_frame(0, ts=T0)
    refused(w, old, Reason.EVIDENCE_STALE, at=T0 + PARAMS.unlock_delay_ms + 1)
    w.apply(old, at=T0 + PARAMS.unlock_delay_ms)
    assert w.devices[0].public_key in w.state.econ.slashed_devices


# --------------------------------------------------------------------------- corroborated policies


def _group(w: EconWorld, **kw: int) -> bytes:
    return w.issue(w.group_policy(**kw))


def test_corroborated_claim_pays_once_for_the_group() -> None:
    w = EconWorld.build(device_bonds=(60, 60, 60))
    pid = _group(w, m=2, tolerance_ms=2 * SECOND)
    end = T0 + HOUR
    wins = [w.window(0, 0, end - 10 * SECOND, end), w.window(1, 1, end - 9 * SECOND, end + SECOND)]
    qc = w.group_qc(pid, wins)
    w.apply(qc, at=end + 2 * SECOND)
    assert w.state.balance(PAID) == 100 and w.state.balance(locked_account(pid)) == 9_900
    # the same incident again is idempotent; a third device's proof for it is another claim in
    # the same period, and is refused
    effect = w.state.check(qc, w.now)
    assert effect.existing is not None
    more = w.group_qc(pid, wins + [w.window(2, 2, end - 8 * SECOND, end)])
    refused(w, more, Reason.WINDOW_OVERLAP)
    # a plain QC for one device of the group is not a way around m
    plain = w.keys.qc(w.incident(pid, 1).replace())
    refused(w, plain, Reason.PAYOUT_MISMATCH)


def test_corroborated_claim_refusals() -> None:
    w = EconWorld.build(device_bonds=(60, 60, 60))
    pid = _group(w, m=2, tolerance_ms=2 * SECOND)
    end = T0 + HOUR
    w.now = end + 5 * SECOND
    refused(w, w.group_qc(pid, [w.window(0, 0, end - 10 * SECOND, end)]), Reason.CORROBORATION_TOO_FEW)
    refused(w, w.group_qc(pid, [w.window(0, 0, end - 10 * SECOND, end), w.window(1, 0, end - 10 * SECOND, end)]),
            Reason.CORROBORATION_SAME_AGENT)
    # windows 3 s apart with a 2 s tolerance: no common moment
    refused(w, w.group_qc(pid, [w.window(0, 0, end - 10 * SECOND, end),
                                w.window(1, 1, end + 3 * SECOND, end + 4 * SECOND)]),
            Reason.CORROBORATION_NO_OVERLAP)
    refused(w, w.group_qc(pid, [w.window(0, 0, end - 10 * SECOND, end), w.window(1, 1, end - 10 * SECOND, end)],
                          signers=[0, 1, 2]), Reason.QC_INSUFFICIENT_SIGNATURES)
    # a slashed device's proof no longer corroborates anything
    w.apply(w.double_frame(1, ts=end))
    refused(w, w.group_qc(pid, [w.window(0, 0, end - 10 * SECOND, end), w.window(1, 1, end - 10 * SECOND, end)]),
            Reason.DEVICE_REVOKED)
    w.apply(w.group_qc(pid, [w.window(0, 0, end - 10 * SECOND, end), w.window(2, 2, end - 10 * SECOND, end)]))
    assert w.state.balance(PAID) == 100
    books(w.state)


def test_corroborated_policy_parameters() -> None:
    w = EconWorld.build(device_bonds=(60, 60, 60))
    for args in (w.group_policy(m=1), w.group_policy(m=4),
                 w.group_policy().replace(group=(w.devices[1].public_key, w.devices[2].public_key)),
                 EconPolicy(terms=w.terms(), staging_cost=0, group=(), min_proofs=2, overlap_tolerance_ms=0)):
        refused(w, w.keys.sign(args, nonce=w.keys.next_nonce), Reason.INVALID_PARAMETERS)
    pid = _group(w, m=2)
    # every device of the group now has an open policy
    refused(w, w.keys.sign(w.single_policy(2), nonce=w.keys.next_nonce), Reason.ACTIVE_POLICY_EXISTS)
    t = w.state.policies[pid].terms
    w.apply(ExpirePolicy(policy_id=pid), at=t.end_ms + t.claim_window_ms + 1)
    assert not w.state.open_policy


def test_econ_policy_needs_the_rules_on() -> None:
    w = EconWorld.build()
    fresh = w.keys.new_state()
    for tx in w.setup_txs[:-1]:  # everything but set_econ_params
        fresh.apply(tx, T0)
    with pytest.raises(FaultproofError) as err:
        fresh.apply(w.keys.sign(w.single_policy(), nonce=len(w.setup_txs)), T0)
    assert err.value.reason is Reason.INVALID_STATE_TRANSITION
    assert fresh.balance(FREE) == 100_000


def test_a_slashed_device_opens_no_attack() -> None:
    w = EconWorld.build(device_bonds=(150, 0, 0))
    pid = w.issue(w.single_policy())
    policy = w.state.policies[pid]
    before = w.state.soundness(policy.terms, w.state.econ.policies[pid], (policy.device_id,))
    assert [a.path for a in before.attacks] == [economics.AttackPath.DEVICES, economics.AttackPath.ORACLES]
    w.apply(w.double_frame(0))
    after = w.state.soundness(policy.terms, w.state.econ.policies[pid], (policy.device_id,))
    assert [a.path for a in after.attacks] == [economics.AttackPath.ORACLES] and after.profit == 100 - 4_000


def test_stale_and_non_member_contradicting_approve_is_refused() -> None:
    w = EconWorld.build(device_bonds=(150, 0, 0))
    pid = w.issue(w.single_policy())
    ev = w.contradicting_approve(1, pid, amount=101)  # epoch 0
    members = tuple(o.public_key for o in w.keys.oracles)
    w.apply(w.admin(RotateOracles(members=members, threshold=4)), at=T0 + HOUR)
    w.apply(w.admin(RotateOracles(members=members, threshold=5)), at=T0 + 2 * HOUR)  # epoch 0 is gone
    refused(w, ev, Reason.EVIDENCE_STALE)
    # an approval signed by a key that was never a member of the epoch it names proves nothing
    stranger = w.incident(pid).replace(amount=101, oracle_set_epoch=2).approve(w.devices[1])
    refused(w, ev.replace(approve=stranger), Reason.EVIDENCE_INVALID)
    assert w.state.balance(REWARDS) == 0 and not w.state.econ.slashes
