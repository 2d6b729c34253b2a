"""One test per ledger rule (DESIGN §6): try to break it against a running, durable ledger, then
check that the refusal carries the right reason and that head hash, balances and the database file
are exactly as before (LedgerEnv.refused). Accepted transactions are checked for the money
invariants (LedgerEnv.ok). The last test checks that every LEDGER_TX and LEDGER_STATE reason was
produced by some test."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from faultproof import attestation, signing
from faultproof.chain import enc
from faultproof.errors import Reason, Stage
from faultproof.identity import Identity, domain_tag
from faultproof.merkle import merkle_root
from faultproof.messages import (
    AdminKind,
    AdminTx,
    BondHolder,
    DecommissionDevice,
    Deposit,
    EnrolAgent,
    EnrolDevice,
    EnrolDeviceKey,
    ExpirePolicy,
    Lift,
    LiftTarget,
    QcSignature,
    QuorumCertificate,
    RegisterCircuit,
    RevokeAgent,
    RevokeDevice,
    RotateAdmin,
    RotateDeviceKey,
    RotateOracles,
    SetLockdown,
    SetMeasurement,
    SignedAdminTx,
    SignedEvidence,
    SuspendBody,
    SuspensionCertificate,
    TriggerKind,
    Unbond,
    UnbondStep,
    Withdraw,
    policy_id,
    rotation_message,
)
from ledger.receipts import verify_receipt
from ledger.service import LedgerService
from ledger.state import (
    EVIDENCE_FRESH_MS,
    LedgerState,
    attestation_results,
    device_key,
    measurement_allowed,
)
from tests.ledger.econ_world import EconWorld
from tests.ledger.helpers import (
    DAY,
    HOUR,
    PRODUCED_REASONS,
    SECOND,
    T0,
    LedgerEnv,
    ManualClock,
    Scenario,
    anchor,
    chain_value,
    enrol,
    fake_circuit,
    head_of,
    identity,
    make_ledger,
    payout_body,
    policy_terms,
    running_ledger,
)


@contextlib.asynccontextmanager
async def funded(tmp_path: Path, *, development: bool = True, **terms: int) -> AsyncIterator[tuple[LedgerEnv, Scenario]]:
    """A durable ledger with a deposit, a circuit, a device and one policy (Scenario.standard)."""
    keys = make_ledger(5, development=development)
    sc = Scenario.standard(keys, **terms)
    async with running_ledger(tmp_path, keys, clock=ManualClock(T0)) as env:
        await env.ok_all(sc.setup_txs)
        yield env, sc


# --------------------------------------------------------------------------- money


async def test_overdraw(tmp_path: Path) -> None:
    async with funded(tmp_path) as (env, sc):
        free = env.state.free
        await env.refused(env.keys.sign(Withdraw(amount=free + 1), nonce=env.keys.next_nonce),
                          Reason.INSUFFICIENT_FREE_CAPITAL)
        await env.refused(env.keys.sign(Withdraw(amount=0), nonce=env.keys.next_nonce), Reason.INVALID_PARAMETERS)
        await env.refused(env.keys.sign(Deposit(amount=0), nonce=env.keys.next_nonce), Reason.INVALID_PARAMETERS)


async def test_withdraw_of_locked_capital(tmp_path: Path) -> None:
    async with funded(tmp_path, deposit=10_000, coverage=4_000) as (env, sc):
        assert env.state.free == 6_000 and env.state.balance(f"locked:{sc.policy_id.hex()}") == 4_000
        await env.refused(env.keys.sign(Withdraw(amount=6_001), nonce=env.keys.next_nonce),
                          Reason.INSUFFICIENT_FREE_CAPITAL)
        await env.ok(env.keys.sign(Withdraw(amount=6_000)))
        assert env.state.free == 0 and env.state.pool_total == 4_000 + sc.terms.premium


async def test_policy_beyond_free_capital(tmp_path: Path) -> None:
    async with funded(tmp_path, deposit=1_500, coverage=1_000) as (env, sc):
        keys = env.keys
        device = identity("device-1")
        await env.ok(keys.sign(enrol(device)))
        too_big = policy_terms(device.public_key, sc.circuit.circuit_id, coverage=501)
        await env.refused(keys.sign(too_big, nonce=keys.next_nonce), Reason.INSUFFICIENT_FREE_CAPITAL)
        await env.ok(keys.sign(too_big.replace(coverage=500)))
        assert env.state.free == 0


# --------------------------------------------------------------------------- admin authority


async def test_admin_nonce_replayed_skipped_or_cross_ledger(tmp_path: Path) -> None:
    async with funded(tmp_path) as (env, sc):
        keys = env.keys
        await env.refused(sc.setup_txs[0], Reason.BAD_NONCE)  # a replay of nonce 1
        await env.refused(keys.sign(Deposit(amount=5), nonce=keys.next_nonce + 1), Reason.BAD_NONCE)  # skipped
        other = make_ledger(5, seed=99)
        await env.refused(keys.sign(Deposit(amount=5), nonce=keys.next_nonce, ledger_id=other.ledger_id),
                          Reason.WRONG_LEDGER)
        await env.ok(keys.sign(Deposit(amount=5)))
        assert env.state.admin_nonce == keys.next_nonce - 1


async def test_admin_args_not_of_the_kind_s_type(tmp_path: Path) -> None:
    """A tx whose arguments are not the type its kind takes can only be built in memory (the decoder
    refuses it): the admin table refuses it WRONG_TYPE, whichever check the kind leads to, and nothing
    changes."""
    async with funded(tmp_path) as (env, sc):
        keys = env.keys
        for args, kind in ((Deposit(amount=5), AdminKind.WITHDRAW), (Withdraw(amount=5), AdminKind.LIFT)):
            tx = AdminTx.make(keys.ledger_id, keys.next_nonce, args)
            object.__setattr__(tx, "kind", int(kind))  # past AdminTx's own check, as no decoded tx gets
            await env.refused(tx.sign(keys.admin), Reason.WRONG_TYPE)
        await env.ok(keys.sign(Deposit(amount=5)))


async def test_admin_signature(tmp_path: Path) -> None:
    async with funded(tmp_path) as (env, sc):
        keys = env.keys
        await env.refused(keys.sign(Deposit(amount=5), nonce=keys.next_nonce, admin=keys.oracles[0]), Reason.NOT_ADMIN)
        good = keys.sign(Deposit(amount=5), nonce=keys.next_nonce)
        forged = SignedAdminTx(tx=good.tx, signature=bytes(64))
        await env.refused(forged, Reason.BAD_ADMIN_SIGNATURE)
        stranger = identity("stranger")
        await env.refused(keys.sign(Deposit(amount=5), nonce=keys.next_nonce, admin=stranger),
                          Reason.BAD_ADMIN_SIGNATURE)
        new_admin = identity("admin-2")
        await env.refused(keys.sign(RotateAdmin(new_admin=keys.admin.public_key), nonce=keys.next_nonce),
                          Reason.INVALID_PARAMETERS)
        await env.ok(keys.sign(RotateAdmin(new_admin=new_admin.public_key)))
        await env.refused(keys.sign(Deposit(amount=5), nonce=keys.next_nonce), Reason.NOT_ADMIN)  # the old admin
        await env.ok(keys.sign(Deposit(amount=5), admin=new_admin))


# --------------------------------------------------------------------------- registry


async def test_duplicates_and_unknowns(tmp_path: Path) -> None:
    async with funded(tmp_path) as (env, sc):
        keys = env.keys
        await env.refused(keys.sign(sc.circuit, nonce=keys.next_nonce), Reason.ALREADY_EXISTS)
        await env.refused(keys.sign(enrol(sc.device), nonce=keys.next_nonce), Reason.ALREADY_EXISTS)
        await env.ok(keys.sign(enrol(sc.device, epoch=1)))  # a re-anchor
        assert env.state.device(sc.device.public_key).epochs.keys() == {0, 1}
        agent = identity("agent-0")
        await env.ok(keys.sign(EnrolAgent(agent_id=agent.public_key)))
        assert env.state.agent_enrolled(agent.public_key)
        await env.refused(keys.sign(EnrolAgent(agent_id=agent.public_key), nonce=keys.next_nonce), Reason.ALREADY_EXISTS)
        await env.refused(keys.sign(RevokeDevice(device_id=b"\x07" * 32), nonce=keys.next_nonce), Reason.NOT_FOUND)
        await env.refused(keys.sign(RevokeAgent(agent_id=b"\x07" * 32), nonce=keys.next_nonce), Reason.NOT_FOUND)
        unknown_circuit = policy_terms(identity("device-9").public_key, b"\x01" * 32)
        await env.ok(keys.sign(enrol(identity("device-9"))))
        await env.refused(keys.sign(unknown_circuit, nonce=keys.next_nonce), Reason.NOT_FOUND)
        await env.refused(ExpirePolicy(policy_id=b"\x05" * 32), Reason.NOT_FOUND)


async def test_revocation_is_final_and_not_retroactive(tmp_path: Path) -> None:
    async with funded(tmp_path) as (env, sc):
        keys = env.keys
        agent = identity("agent-0")
        await env.ok(keys.sign(EnrolAgent(agent_id=agent.public_key)))
        env.clock.set(T0 + 10 * SECOND)
        await env.ok(keys.sign(RevokeAgent(agent_id=agent.public_key)))
        assert env.state.agent_enrolled(agent.public_key, at_ms=T0 + 5 * SECOND)  # not retroactive
        assert not env.state.agent_enrolled(agent.public_key)
        await env.refused(keys.sign(RevokeAgent(agent_id=agent.public_key), nonce=keys.next_nonce),
                          Reason.INVALID_STATE_TRANSITION)
        await env.refused(keys.sign(EnrolAgent(agent_id=agent.public_key), nonce=keys.next_nonce),
                          Reason.INVALID_STATE_TRANSITION)
        # The device is revoked just after incident 0 ended: incident 0 (its end anchored by the
        # agent before the revocation, DESIGN §11) stays payable, 1 does not.
        env.clock.set(sc.body(0).end_ts + 1)
        anchoring = identity("agent-1")
        await env.ok(keys.sign(EnrolAgent(agent_id=anchoring.public_key)))
        await env.ok(anchor(keys, anchoring, 1, [head_of(sc.body(0))]))
        await env.ok(keys.sign(RevokeDevice(device_id=sc.device.public_key)))
        await env.refused(keys.sign(RevokeDevice(device_id=sc.device.public_key), nonce=keys.next_nonce),
                          Reason.INVALID_STATE_TRANSITION)
        await env.refused(keys.sign(enrol(sc.device, epoch=5), nonce=keys.next_nonce), Reason.INVALID_STATE_TRANSITION)
        env.clock.set(sc.time_after(1))
        await env.ok(keys.qc(sc.body(0)))
        await env.refused(keys.qc(sc.body(1)), Reason.DEVICE_REVOKED)
        # A new policy for the revoked device is refused too.
        env.clock.set(sc.terms.end_ms + sc.terms.claim_window_ms + 1)
        await env.ok(ExpirePolicy(policy_id=sc.policy_id))
        renewal = policy_terms(sc.device.public_key, sc.circuit.circuit_id, start_ms=env.clock.now_ms,
                               end_ms=env.clock.now_ms + 30 * DAY)
        await env.refused(keys.sign(renewal, nonce=keys.next_nonce), Reason.DEVICE_REVOKED)


async def test_development_circuit_on_production_ledger(tmp_path: Path) -> None:
    keys = make_ledger(5, development=False)
    async with running_ledger(tmp_path, keys) as env:
        await env.refused(keys.sign(fake_circuit(16), nonce=keys.next_nonce), Reason.DEVELOPMENT_CIRCUIT_ON_PRODUCTION)
        no_ceremony = fake_circuit(16, production=True).replace(transcript_hash=bytes(32))
        await env.refused(keys.sign(no_ceremony, nonce=keys.next_nonce), Reason.DEVELOPMENT_CIRCUIT_ON_PRODUCTION)
        await env.refused(keys.sign(RegisterCircuit(vkey=b"k", n=0, layout_version=1, transcript_hash=b"\x01" * 32,
                                                    production=1), nonce=keys.next_nonce), Reason.INVALID_PARAMETERS)
        await env.ok(keys.sign(fake_circuit(16, production=True)))


async def test_oracle_set_bounds(tmp_path: Path) -> None:
    with pytest.raises(Exception) as info:
        LedgerState(make_ledger(4, k=2).genesis)  # floor(4/2)+1 = 3 > 2
    assert getattr(info.value, "reason", None) is Reason.INVALID_ORACLE_SET
    async with funded(tmp_path) as (env, sc):
        keys = env.keys
        members = tuple(o.public_key for o in keys.oracles)
        for m, k in ((members, 2), (members, 6), (members[:1] * 2, 1), ((), 0)):
            await env.refused(keys.sign(RotateOracles(members=m, threshold=k), nonce=keys.next_nonce),
                              Reason.INVALID_ORACLE_SET)


# --------------------------------------------------------------------------- policies


BAD_PARAMETERS = {
    "count_above K=0 (always true)": dict(count=0),
    "K above n": dict(count=17),
    "stuck K=1 (always true)": dict(kind=TriggerKind.STUCK, threshold=0, count=1),
    "dropout G=1 (always true)": dict(kind=TriggerKind.DROPOUT, threshold=0, count=0, gap_ms=1),
    "outside_range lo > hi": dict(kind=TriggerKind.OUTSIDE_RANGE, threshold=0, lo=enc(10), hi=enc(5)),
    "unused parameter set": dict(lo=enc(3)),
    "unknown kind": dict(kind=9),
    "start not before end": dict(start_ms=T0 + DAY, end_ms=T0 + DAY),
    "term already over": dict(start_ms=T0 - 2 * DAY, end_ms=T0 - DAY),
    "amount above coverage": dict(amount=1_001, coverage=1_000),
    "amount 0": dict(amount=0),
    "period 0": dict(period_ms=0),
}


@pytest.mark.parametrize("name", sorted(BAD_PARAMETERS))
async def test_invalid_policy_parameters(tmp_path: Path, name: str) -> None:
    async with funded(tmp_path) as (env, sc):
        keys = env.keys
        device = identity("device-p")
        await env.ok(keys.sign(enrol(device)))
        terms = policy_terms(device.public_key, sc.circuit.circuit_id, **BAD_PARAMETERS[name])
        await env.refused(keys.sign(terms, nonce=keys.next_nonce), Reason.INVALID_PARAMETERS)


async def test_one_active_policy_per_device(tmp_path: Path) -> None:
    async with funded(tmp_path) as (env, sc):
        keys = env.keys
        second = policy_terms(sc.device.public_key, sc.circuit.circuit_id, start_ms=T0 + 40 * DAY, end_ms=T0 + 70 * DAY)
        await env.refused(keys.sign(second, nonce=keys.next_nonce), Reason.ACTIVE_POLICY_EXISTS)
        env.clock.set(sc.terms.end_ms + sc.terms.claim_window_ms + 1)
        await env.ok(ExpirePolicy(policy_id=sc.policy_id))
        await env.ok(keys.sign(second))  # once the first is closed


async def test_policy_lifecycle_and_early_expiry(tmp_path: Path) -> None:
    async with funded(tmp_path, start_ms=T0 + DAY, premium=10, coverage=1_000, amount=100) as (env, sc):
        policy = env.state.policy(sc.policy_id)
        assert policy is not None
        t = sc.terms
        assert policy.status_at(T0).value == "issued"
        assert policy.status_at(t.start_ms).value == "active"
        assert policy.status_at(t.end_ms + t.claim_window_ms).value == "active"
        assert policy.status_at(t.end_ms + t.claim_window_ms + 1).value == "expired"
        await env.refused(ExpirePolicy(policy_id=sc.policy_id), Reason.EXPIRY_TOO_EARLY)  # issued
        env.clock.set(t.end_ms + t.claim_window_ms)
        await env.refused(ExpirePolicy(policy_id=sc.policy_id), Reason.EXPIRY_TOO_EARLY)  # still in the claim window
        free_before = env.state.free
        env.clock.set(t.end_ms + t.claim_window_ms + 1)
        await env.ok(ExpirePolicy(policy_id=sc.policy_id))
        assert env.state.free == free_before + 1_000 + 10  # the lock comes back, the premium is earned
        assert env.state.policy(sc.policy_id).status_at(env.clock.now_ms).value == "closed"
        await env.refused(ExpirePolicy(policy_id=sc.policy_id), Reason.INVALID_STATE_TRANSITION)


async def test_payout_before_the_term_starts(tmp_path: Path) -> None:
    async with funded(tmp_path, start_ms=T0 + 2 * SECOND) as (env, sc):
        body = sc.body(0).replace(start_ts=T0 + 2 * SECOND, end_ts=T0 + 4 * SECOND)
        await env.refused(env.keys.qc(body), Reason.POLICY_NOT_ACTIVE)  # still issued at T0


# --------------------------------------------------------------------------- payouts


async def test_payout_and_idempotency(tmp_path: Path) -> None:
    async with funded(tmp_path) as (env, sc):
        keys = env.keys
        env.clock.set(sc.time_after(0))
        first = await env.ok(keys.qc(sc.body(0)))
        assert not first.existing and first.entry.entry.paid == sc.terms.amount
        again = await env.ok(keys.qc(sc.body(0)))
        assert again.existing and again.signed_bytes == first.signed_bytes
        other_signers = await env.ok(keys.qc(sc.body(0), keys.oracles[1:]))
        assert other_signers.existing and other_signers.entry.entry.height == first.entry.entry.height
        assert env.state.balance("paid") == sc.terms.amount


async def test_different_body_for_a_paid_claim(tmp_path: Path) -> None:
    async with funded(tmp_path) as (env, sc):
        env.clock.set(sc.time_after(0))
        await env.ok(env.keys.qc(sc.body(0)))
        await env.refused(env.keys.qc(sc.body(0, window_ms=5 * SECOND)), Reason.CLAIM_CONFLICT)


async def test_qc_with_k_minus_1_signatures(tmp_path: Path) -> None:
    async with funded(tmp_path) as (env, sc):
        env.clock.set(sc.time_after(0))
        k = env.keys.threshold
        await env.refused(env.keys.qc(sc.body(0), env.keys.oracles[: k - 1]), Reason.QC_INSUFFICIENT_SIGNATURES)


async def test_qc_with_a_duplicated_signer(tmp_path: Path) -> None:
    async with funded(tmp_path) as (env, sc):
        env.clock.set(sc.time_after(0))
        qc = env.keys.qc(sc.body(0))
        k = env.keys.threshold
        doubled = QuorumCertificate(body=qc.body, signatures=(qc.signatures[0],) + qc.signatures[: k - 1])
        await env.refused(doubled, Reason.QC_DUPLICATE_SIGNER)


async def test_qc_with_a_non_member(tmp_path: Path) -> None:
    async with funded(tmp_path) as (env, sc):
        env.clock.set(sc.time_after(0))
        k = env.keys.threshold
        signers = env.keys.oracles[: k - 1] + [identity("not-an-oracle")]
        await env.refused(env.keys.qc(sc.body(0), signers), Reason.QC_NON_MEMBER)


async def test_qc_with_a_signature_over_another_body(tmp_path: Path) -> None:
    async with funded(tmp_path) as (env, sc):
        env.clock.set(sc.time_after(1))
        qc = env.keys.qc(sc.body(0))
        elsewhere = sc.body(1).approve(env.keys.oracles[0])
        sigs = (QcSignature(oracle_id=elsewhere.oracle_id, signature=elsewhere.signature),) + tuple(
            s for s in qc.signatures if s.oracle_id != elsewhere.oracle_id)
        await env.refused(QuorumCertificate(body=qc.body, signatures=sigs), Reason.QC_BAD_SIGNATURE)


async def test_old_epoch_within_and_after_the_grace_period(tmp_path: Path) -> None:
    async with funded(tmp_path) as (env, sc):
        keys = env.keys
        new_set = [identity(f"oracle-new-{i}") for i in range(4)]
        env.clock.set(sc.time_after(2))
        await env.ok(keys.sign(RotateOracles(members=tuple(o.public_key for o in new_set), threshold=3)))
        rotated = env.clock.now_ms
        assert env.state.oracle_set.epoch == 1 and env.state.previous_oracle_set is not None
        # Within the grace period the old set still certifies (incident 0 ended before the rotation).
        await env.ok(keys.qc(sc.body(0)))
        env.clock.set(rotated + keys.genesis.rotation_grace_ms + 1)
        await env.refused(keys.qc(sc.body(1)), Reason.QC_STALE_EPOCH)
        # Rotation is not retroactive: the new set certifies the same (older) incident.
        await env.ok(keys.qc(sc.body(1, oracle_set_epoch=1), new_set[:3]))
        await env.refused(keys.qc(sc.body(2, oracle_set_epoch=7)), Reason.QC_STALE_EPOCH)


async def test_overlapping_window(tmp_path: Path) -> None:
    async with funded(tmp_path, period_ms=HOUR) as (env, sc):
        env.clock.set(sc.time_after(3))
        paid = sc.body(0)
        await env.ok(env.keys.qc(paid))
        # A later window (another period) that starts inside the paid one.
        overlapping = sc.body(0).replace(start_seq=paid.start_seq + 5, end_seq=paid.end_seq + 5,
                                         start_ts=paid.end_ts - SECOND, end_ts=paid.end_ts + HOUR)
        overlapping = _rederive(overlapping)
        await env.refused(env.keys.qc(overlapping), Reason.WINDOW_OVERLAP)
        # Sharing only the boundary frame is not an overlap: windows are (start, end].
        # (in time and in seq: the boundary frame ends one window and starts the next)
        adjacent = _rederive(overlapping.replace(start_ts=paid.end_ts, start_seq=paid.end_seq,
                                                 end_seq=paid.end_seq + sc.circuit.n))
        await env.ok(env.keys.qc(adjacent))


def _rederive(body):  # type: ignore[no-untyped-def]
    from faultproof.messages import claim_id

    return body.replace(claim_id=claim_id(body.policy_id, body.device_id, body.epoch, body.start_seq, body.end_seq))


async def test_second_payout_inside_the_period(tmp_path: Path) -> None:
    async with funded(tmp_path) as (env, sc):
        env.clock.set(sc.time_after(0) + 2 * HOUR)
        first = sc.body(0)
        await env.ok(env.keys.qc(first))
        later_same_day = _rederive(first.replace(start_seq=first.start_seq + 100, end_seq=first.end_seq + 100,
                                                 start_ts=first.end_ts + HOUR, end_ts=first.end_ts + HOUR + 10 * SECOND))
        await env.refused(env.keys.qc(later_same_day), Reason.PERIOD_LIMIT)


async def test_coverage_is_paid_down_then_exhausted(tmp_path: Path) -> None:
    async with funded(tmp_path, coverage=150, amount=100) as (env, sc):
        env.clock.set(sc.time_after(2))
        assert (await env.ok(env.keys.qc(sc.body(0)))).entry.entry.paid == 100
        assert (await env.ok(env.keys.qc(sc.body(1)))).entry.entry.paid == 50  # min(amount, coverage left)
        await env.refused(env.keys.qc(sc.body(2)), Reason.COVERAGE_EXHAUSTED)
        assert env.state.balance(f"locked:{sc.policy_id.hex()}") == 0


async def test_payout_after_the_claim_window(tmp_path: Path) -> None:
    async with funded(tmp_path) as (env, sc):
        env.clock.set(sc.body(0).end_ts + sc.terms.claim_window_ms + 1)
        await env.refused(env.keys.qc(sc.body(0)), Reason.CLAIM_WINDOW_CLOSED)
        env.clock.set(sc.terms.end_ms + sc.terms.claim_window_ms + 1)
        await env.refused(env.keys.qc(sc.body(1)), Reason.POLICY_NOT_ACTIVE)  # expired


async def test_payout_with_end_ts_in_the_future(tmp_path: Path) -> None:
    async with funded(tmp_path) as (env, sc):
        body = sc.body(0)
        env.clock.set(body.end_ts - env.keys.genesis.max_skew_ms - 1)
        await env.refused(env.keys.qc(body), Reason.END_TS_IN_FUTURE)
        env.clock.set(body.end_ts - env.keys.genesis.max_skew_ms)
        await env.ok(env.keys.qc(body))  # within the skew


async def test_window_outside_the_term(tmp_path: Path) -> None:
    async with funded(tmp_path, start_ms=T0 + DAY) as (env, sc):
        env.clock.set(T0 + 2 * DAY)
        early = _rederive(sc.body(0).replace(start_ts=T0 + DAY - SECOND, end_ts=T0 + DAY + SECOND))
        await env.refused(env.keys.qc(early), Reason.OUTSIDE_POLICY_TERM)


PAYOUT_MISMATCHES = {
    "beneficiary": dict(beneficiary=b"\x66" * 32),
    "amount": dict(amount=99),
    "device": dict(device_id=b"\x67" * 32),
    "circuit": dict(circuit_id=b"\x68" * 32),
    "claim_id derivation": dict(claim_id=b"\x69" * 32),
    "window length": dict(end_seq=16_000),
    "unknown device epoch": dict(epoch=3),
    "empty time window": dict(start_ts=T0 + HOUR),
}


@pytest.mark.parametrize("name", sorted(PAYOUT_MISMATCHES))
async def test_payout_body_must_match_the_policy(tmp_path: Path, name: str) -> None:
    async with funded(tmp_path) as (env, sc):
        env.clock.set(sc.time_after(0))
        body = sc.body(0).replace(**PAYOUT_MISMATCHES[name])
        if name in ("window length", "unknown device epoch", "empty time window"):
            body = _rederive(body)
        await env.refused(env.keys.qc(body), Reason.PAYOUT_MISMATCH)


async def test_payout_for_another_ledger_or_unknown_policy(tmp_path: Path) -> None:
    async with funded(tmp_path) as (env, sc):
        env.clock.set(sc.time_after(0))
        await env.refused(env.keys.qc(sc.body(0, ledger_id=b"\x01" * 32)), Reason.WRONG_LEDGER)
        await env.refused(env.keys.qc(_rederive(sc.body(0, policy_id=b"\x02" * 32))), Reason.NOT_FOUND)


# --------------------------------------------------------------------------- economic security (§14)
# One durable refusal per economic reason (the pure rules are tested case by case in
# test_economics.py); accepted slashes and group payouts keep the money invariants, and a restart
# replays them to the same state.


@contextlib.asynccontextmanager
async def econ_ledger(tmp_path: Path, **kw: Any) -> AsyncIterator[tuple[LedgerEnv, EconWorld]]:
    w = EconWorld.build(**kw)
    async with running_ledger(tmp_path, w.keys, clock=ManualClock(T0)) as env:
        await env.ok_all(w.setup_txs)
        w.state = env.state  # the builders read the service's state from here on
        yield env, w


async def test_econ_bonds_and_soundness(tmp_path: Path) -> None:
    async with econ_ledger(tmp_path, device_bonds=(100, 0, 0)) as (env, w):
        nonce = w.keys.next_nonce
        await env.refused(w.keys.sign(w.single_policy(), nonce=nonce), Reason.ECONOMICALLY_UNSOUND)
        await env.ok(w.bond(BondHolder.DEVICE, w.devices[0].public_key, 1))
        await env.ok(w.admin(w.single_policy()))
        nonce = w.keys.next_nonce
        o0 = w.keys.oracles[0].public_key
        await env.refused(w.keys.sign(RotateOracles(members=(b"\x09" * 32, *w.genesis_members()[1:]), threshold=4),
                                      nonce=nonce), Reason.INSUFFICIENT_BOND)
        await env.refused(w.keys.sign(Unbond(holder_kind=BondHolder.ORACLE, holder_id=o0, step=UnbondStep.REQUEST),
                                      nonce=nonce), Reason.BOND_IN_USE)
        await env.refused(w.keys.sign(Unbond(holder_kind=BondHolder.ORACLE, holder_id=o0, step=UnbondStep.RELEASE),
                                      nonce=nonce), Reason.BOND_LOCKED)


async def test_econ_slashing_evidence(tmp_path: Path) -> None:
    async with econ_ledger(tmp_path, device_bonds=(150, 0, 0)) as (env, w):
        await env.ok(w.admin(w.single_policy()))
        pid = next(iter(env.state.policies))
        ev = w.vote_equivocation(0, pid)
        await env.refused(ev.replace(second=ev.first), Reason.EVIDENCE_INVALID)
        await env.ok(ev)
        assert env.state.balance("rewards") == 200
        await env.refused(ev, Reason.EVIDENCE_DUPLICATE)
        await env.refused(w.keys.sign(RotateOracles(members=w.genesis_members(), threshold=4),
                                      nonce=w.keys.next_nonce), Reason.SLASHED_MEMBER)
        env.clock.set(T0 + DAY)
        await env.ok(w.double_frame(0))
        env.clock.set(T0 + DAY + 31 * DAY)
        await env.refused(w.double_frame(1, ts=T0), Reason.EVIDENCE_STALE)
        head, balances = env.state.head_hash, dict(env.state.balances)
    reopened = LedgerService.open(tmp_path / "ledger.db", w.keys.ledger_key)
    try:
        assert reopened.state.head_hash == head and reopened.state.balances == balances
        assert len(reopened.state.econ.slashes) == 2 and reopened.state.econ.bond_total == 4 * 1_000
    finally:
        reopened.close()


async def test_econ_corroborated_claims(tmp_path: Path) -> None:
    async with econ_ledger(tmp_path, device_bonds=(60, 60, 60)) as (env, w):
        await env.ok(w.admin(w.group_policy(m=2)))
        pid = next(iter(env.state.policies))
        end = T0 + HOUR
        env.clock.set(end + SECOND)
        a, b = w.window(0, 0, end - 10 * SECOND, end), w.window(1, 1, end - 10 * SECOND, end)
        await env.refused(w.group_qc(pid, [a]), Reason.CORROBORATION_TOO_FEW)
        await env.refused(w.group_qc(pid, [a, w.window(1, 0, end - 10 * SECOND, end)]),
                          Reason.CORROBORATION_SAME_AGENT)
        await env.refused(w.group_qc(pid, [a, w.window(1, 1, end, end + SECOND)]), Reason.CORROBORATION_NO_OVERLAP)
        qc = w.group_qc(pid, [a, b])
        accepted = await env.ok(qc)
        assert accepted.effect.paid == 100 and env.state.balance("paid") == 100
        check = verify_receipt(await env.service.receipt(qc.body.claim_id), ledger_id=w.keys.ledger_id)
        assert check.ok, check.problems
        forged = qc.replace(signatures=qc.signatures[:-1] + (qc.signatures[0],))
        receipt = await env.service.receipt(qc.body.claim_id)
        bad = receipt.replace(entry=receipt.entry.entry.replace(tx=forged).sign(w.keys.ledger_key))
        assert not verify_receipt(bad).ok


# --------------------------------------------------------------------------- hardware (DESIGN §15)
# P-256 device keys, the measurement allowlist, device evidence, oracle suspensions, the breaker.


def _hw_evidence(device: Identity | signing.P256KeySigner, nonce: bytes, firmware: bytes = b"fw-good",
                 epoch: int = 0) -> SignedEvidence:
    signer = device if isinstance(device, signing.P256KeySigner) else signing.Ed25519FileSigner(device)
    log = attestation.MeasurementLog.boot(b"boot-1", firmware, b"cfg-1")
    return attestation.make_evidence(signer, epoch=epoch, seq=1, ts_ms=T0, nonce=nonce, log=log)


def _hw_allow_good(env: LedgerEnv) -> list[SignedAdminTx]:
    m = attestation.measure
    return [env.keys.sign(SetMeasurement(component=int(c), digest=m(img), allowed=1))
            for c, img in ((attestation.Component.BOOTLOADER, b"boot-1"),
                           (attestation.Component.FIRMWARE, b"fw-good"), (attestation.Component.CONFIG, b"cfg-1"))]


async def test_p256_device_enrolment_binds_its_key(tmp_path: Path) -> None:
    async with funded(tmp_path) as (env, sc):
        dev = signing.P256KeySigner.generate()
        e = EnrolDevice(device_id=dev.public_key, epoch=0, anchor=enrol(sc.device).anchor, firmware_hash=bytes(32))
        other = signing.P256KeySigner.generate()
        await env.refused(env.keys.sign(EnrolDeviceKey(enrol=e, key_type=2, public_key=other.public.data),
                                        nonce=env.keys.next_nonce), Reason.INVALID_PARAMETERS)
        await env.refused(env.keys.sign(EnrolDeviceKey(enrol=e, key_type=9, public_key=dev.public.data),
                                        nonce=env.keys.next_nonce), Reason.INVALID_PARAMETERS)
        await env.refused(env.keys.sign(EnrolDeviceKey(enrol=e, key_type=2, public_key=b"\x02" + b"\xff" * 32),
                                        nonce=env.keys.next_nonce), Reason.INVALID_PARAMETERS)
        await env.ok(env.keys.sign(EnrolDeviceKey(enrol=e, key_type=2, public_key=dev.public.data)))
        assert device_key(env.state, dev.public_key) == dev.public
        assert device_key(env.state, sc.device.public_key) == signing.PublicKey.ed25519(sc.device.public_key)
        # A re-anchor: the same key at a higher epoch (another key would be another device_id).
        e1 = e.replace(epoch=1)
        await env.refused(env.keys.sign(EnrolDeviceKey(enrol=e, key_type=2, public_key=dev.public.data),
                                        nonce=env.keys.next_nonce), Reason.ALREADY_EXISTS)
        await env.ok(env.keys.sign(EnrolDeviceKey(enrol=e1, key_type=2, public_key=dev.public.data)))
        assert env.state.device(dev.public_key).epoch == 1


async def test_allowlist_allow_and_deny(tmp_path: Path) -> None:
    async with funded(tmp_path) as (env, sc):
        d = attestation.measure(b"fw-good")
        await env.ok(env.keys.sign(SetMeasurement(component=2, digest=d, allowed=1)))
        assert measurement_allowed(env.state, 2, d)
        await env.refused(env.keys.sign(SetMeasurement(component=2, digest=d, allowed=1), nonce=env.keys.next_nonce),
                          Reason.ALREADY_EXISTS)
        await env.refused(env.keys.sign(SetMeasurement(component=77, digest=d, allowed=1), nonce=env.keys.next_nonce),
                          Reason.INVALID_PARAMETERS)
        await env.ok(env.keys.sign(SetMeasurement(component=2, digest=d, allowed=0)))
        assert not measurement_allowed(env.state, 2, d)
        await env.refused(env.keys.sign(SetMeasurement(component=2, digest=d, allowed=0), nonce=env.keys.next_nonce),
                          Reason.NOT_FOUND)


async def test_device_evidence_rules(tmp_path: Path) -> None:
    async with funded(tmp_path) as (env, sc):
        await env.ok_all(_hw_allow_good(env))
        forged = _hw_evidence(identity("not-the-device"), env.state.head_hash)
        forged = SignedEvidence(body=forged.body.replace(device_id=sc.device.public_key), signature=forged.signature)
        await env.refused(forged, Reason.BAD_ATTESTATION_SIGNATURE)
        await env.refused(_hw_evidence(sc.device, b"\x09" * 32), Reason.ATTESTATION_REPLAYED)
        await env.refused(_hw_evidence(sc.device, env.state.head_hash, epoch=4), Reason.WRONG_EPOCH)
        await env.refused(_hw_evidence(identity("unknown-device"), env.state.head_hash), Reason.NOT_FOUND)
        nonce = env.state.head_hash
        good = _hw_evidence(sc.device, nonce)
        await env.ok(good)
        await env.refused(good, Reason.ATTESTATION_REPLAYED)  # the same evidence again
        await env.refused(_hw_evidence(sc.device, nonce), Reason.ATTESTATION_REPLAYED)  # the same nonce
        # Bad firmware is recorded as a failed result, not refused.
        await env.ok(_hw_evidence(sc.device, env.state.head_hash, firmware=b"fw-tampered"))
        results = attestation_results(env.state, sc.device.public_key)
        assert [r.passed for r in results] == [True, False]
        assert results[1].reason is Reason.ATTESTATION_FAILED and "firmware" in results[1].detail
        # A nonce older than EVIDENCE_FRESH_MS that is not the head is stale.
        old = env.state.head_hash
        env.clock.advance(SECOND)
        await env.ok(env.keys.sign(Deposit(amount=1)))
        env.clock.advance(EVIDENCE_FRESH_MS + SECOND)
        await env.refused(_hw_evidence(sc.device, old), Reason.ATTESTATION_STALE)
        await env.ok(_hw_evidence(sc.device, env.state.head_hash))  # the head is never stale


async def test_payout_needs_a_passing_attestation_covering_the_window(tmp_path: Path) -> None:
    async with funded(tmp_path) as (env, sc):
        await env.ok_all(_hw_allow_good(env))
        await env.ok(env.keys.sign(SetLockdown(breaker_window_ms=0, breaker_share_bps=0,
                                               attestation_max_age_ms=2 * HOUR)))
        b0, b1, b2 = sc.body(0), sc.body(1), sc.body(2)
        env.clock.set(sc.time_after(0))
        await env.refused(env.keys.qc(b0), Reason.ATTESTATION_MISSING)
        # Attest at day 1 (before window 1), then pay window 1.
        env.clock.set(b1.start_ts - HOUR)
        await env.ok(env.keys.sign(Deposit(amount=1)))
        await env.ok(_hw_evidence(sc.device, env.state.head_hash))
        env.clock.set(sc.time_after(1))
        await env.ok(env.keys.qc(b1))
        # Window 0 ended before any attestation: still missing. Window 2 is a day after: stale.
        await env.refused(env.keys.qc(b0), Reason.ATTESTATION_MISSING)
        env.clock.set(sc.time_after(2))
        await env.refused(env.keys.qc(b2), Reason.ATTESTATION_STALE)
        # A pass, then a failure before window 3 ends: failed.
        b3 = sc.body(3)
        env.clock.set(b3.start_ts - HOUR)
        await env.ok(env.keys.sign(Deposit(amount=1)))
        await env.ok(_hw_evidence(sc.device, env.state.head_hash))
        env.clock.advance(SECOND)
        await env.ok(_hw_evidence(sc.device, env.state.head_hash, firmware=b"fw-tampered"))
        env.clock.set(sc.time_after(3))
        await env.refused(env.keys.qc(b3), Reason.ATTESTATION_FAILED)


async def test_device_key_rotation_is_endorsed_by_the_old_key(tmp_path: Path) -> None:
    async with funded(tmp_path) as (env, sc):
        did = sc.device.public_key
        new = signing.P256KeySigner.generate()
        when = env.clock.now_ms + HOUR

        def rotation(signer: Identity | signing.P256KeySigner, effective: int = when,
                     key: bytes = new.public.data, key_type: int = 2) -> RotateDeviceKey:
            msg = rotation_message(env.keys.ledger_id, did, key_type, key, effective)
            return RotateDeviceKey(device_id=did, key_type=key_type, public_key=key, effective_ms=effective,
                                   endorsement=signer.sign(domain_tag(RotateDeviceKey.NAME), msg))

        def nonce() -> int:
            return env.keys.next_nonce

        await env.refused(env.keys.sign(rotation(new), nonce=nonce()), Reason.INVALID_PARAMETERS)  # not the old key
        await env.refused(env.keys.sign(rotation(sc.device, effective=env.clock.now_ms - 1), nonce=nonce()),
                          Reason.INVALID_PARAMETERS)  # retroactive
        await env.refused(env.keys.sign(rotation(sc.device, key=new.public.data, key_type=1), nonce=nonce()),
                          Reason.WRONG_KEY_TYPE)
        await env.refused(env.keys.sign(rotation(sc.device, key=did, key_type=1), nonce=nonce()),
                          Reason.INVALID_PARAMETERS)  # the current key
        await env.ok(env.keys.sign(rotation(sc.device)))
        assert device_key(env.state, did) == new.public
        assert device_key(env.state, did, when - 1) == signing.PublicKey.ed25519(did)
        assert device_key(env.state, did, when) == new.public
        # The next rotation must be endorsed by the new key and come later.
        newer = signing.P256KeySigner.generate()
        await env.refused(env.keys.sign(rotation(sc.device, effective=when + 1, key=newer.public.data), nonce=nonce()),
                          Reason.INVALID_PARAMETERS)
        await env.refused(env.keys.sign(rotation(new, effective=when, key=newer.public.data), nonce=nonce()),
                          Reason.INVALID_PARAMETERS)
        await env.ok(env.keys.sign(rotation(new, effective=when + 1, key=newer.public.data)))
        await env.ok(env.keys.sign(RevokeDevice(device_id=did)))
        await env.refused(env.keys.sign(rotation(newer, effective=when + 2, key=new.public.data), nonce=nonce()),
                          Reason.INVALID_STATE_TRANSITION)


def _suspend(env: LedgerEnv, device_id: bytes, since_ms: int, signers: int | None = None) -> SuspensionCertificate:
    body = SuspendBody(ledger_id=env.keys.ledger_id, oracle_set_epoch=0, device_id=device_id,
                       reason=Reason.BAD_FRAME_SIGNATURE, since_ms=since_ms, evidence_hash=b"\x01" * 32)
    k = env.keys.threshold if signers is None else signers
    sigs = sorted((body.sign(o) for o in env.keys.oracles[:k]), key=lambda q: q.oracle_id)
    return SuspensionCertificate(body=body, signatures=tuple(sigs))


async def test_k_oracles_suspend_a_device_until_the_admin_reinstates_it(tmp_path: Path) -> None:
    async with funded(tmp_path) as (env, sc):
        did = sc.device.public_key
        b0, b1, b2 = sc.body(0), sc.body(1), sc.body(2)
        env.clock.set(b1.start_ts - SECOND)
        await env.refused(_suspend(env, did, env.clock.now_ms, signers=env.keys.threshold - 1),
                          Reason.QC_INSUFFICIENT_SIGNATURES)
        await env.refused(_suspend(env, identity("nobody").public_key, env.clock.now_ms), Reason.NOT_FOUND)
        await env.refused(_suspend(env, did, env.clock.now_ms + HOUR), Reason.INVALID_PARAMETERS)
        forged = _suspend(env, did, env.clock.now_ms)
        forged = forged.replace(body=forged.body.replace(since_ms=T0))
        await env.refused(forged, Reason.QC_BAD_SIGNATURE)
        await env.ok(_suspend(env, did, env.clock.now_ms))
        await env.refused(_suspend(env, did, env.clock.now_ms), Reason.INVALID_STATE_TRANSITION)
        env.clock.set(sc.time_after(1))
        await env.ok(env.keys.qc(b0))  # ended before the suspension: payable
        await env.refused(env.keys.qc(b1), Reason.DEVICE_SUSPENDED)
        reinstate = Lift(target=int(LiftTarget.SUSPENSION), device_id=did, note=b"reviewed")
        await env.ok(env.keys.sign(reinstate))
        await env.refused(env.keys.sign(reinstate, nonce=env.keys.next_nonce), Reason.INVALID_STATE_TRANSITION)
        await env.refused(env.keys.qc(b1), Reason.DEVICE_SUSPENDED)  # never retroactive
        env.clock.set(sc.time_after(2))
        await env.ok(env.keys.qc(b2))  # after the reinstatement


async def test_circuit_breaker_trips_and_resumes(tmp_path: Path) -> None:
    # capital 10_000 + premium 10; each payout 100 (1%); the breaker allows 1.5% per 10 days.
    async with funded(tmp_path) as (env, sc):
        await env.refused(env.keys.sign(SetLockdown(breaker_window_ms=0, breaker_share_bps=150,
                                                    attestation_max_age_ms=0), nonce=env.keys.next_nonce),
                          Reason.INVALID_PARAMETERS)
        await env.refused(env.keys.sign(SetLockdown(breaker_window_ms=DAY, breaker_share_bps=10_001,
                                                    attestation_max_age_ms=0), nonce=env.keys.next_nonce),
                          Reason.INVALID_PARAMETERS)
        await env.ok(env.keys.sign(SetLockdown(breaker_window_ms=10 * DAY, breaker_share_bps=150,
                                               attestation_max_age_ms=0)))
        resume = Lift(target=int(LiftTarget.PAYOUTS), device_id=bytes(32), note=b"ok")
        await env.refused(env.keys.sign(resume, nonce=env.keys.next_nonce), Reason.INVALID_STATE_TRANSITION)
        env.clock.set(sc.time_after(3))
        await env.ok(env.keys.qc(sc.body(0)))
        assert env.state.hw.paused_ms is None
        await env.ok(env.keys.qc(sc.body(1)))  # 200 > 1.5% of the capital: paid, and trips
        assert env.state.hw.paused_ms == env.clock.now_ms
        await env.refused(env.keys.qc(sc.body(2)), Reason.PAYOUTS_PAUSED)
        await env.ok(env.keys.sign(resume))
        await env.ok(env.keys.qc(sc.body(2)))
        await env.refused(env.keys.sign(Lift(target=9, device_id=bytes(32), note=b""), nonce=env.keys.next_nonce),
                          Reason.INVALID_PARAMETERS)


# --------------------------------------------------------------------------- meta


# --------------------------------------------------------------------------- ledger soundness
# (DESIGN §11; issue 13 items 3 and 4)


async def test_second_policy_cannot_repay_incident(tmp_path: Path) -> None:
    """Item 3: an incident is unique per device, not per policy."""
    async with funded(tmp_path, end_ms=T0 + 2 * DAY, claim_window_ms=DAY) as (env, sc):
        keys = env.keys
        first = sc.body(0)
        env.clock.set(sc.time_after(0))
        await env.ok(keys.qc(first))
        env.clock.set(sc.terms.end_ms + sc.terms.claim_window_ms + 1)
        await env.ok(ExpirePolicy(policy_id=sc.policy_id))
        now = env.clock.now_ms
        # A second policy whose term starts in the past (it would cover the paid frames) is refused.
        backdated = policy_terms(sc.device.public_key, sc.circuit.circuit_id, start_ms=T0, end_ms=now + 30 * DAY)
        await env.refused(keys.sign(backdated, nonce=keys.next_nonce), Reason.TERM_STARTS_IN_PAST)
        # Within the allowed skew is fine (the admin's clock may lag the ledger's a little).
        renewal = policy_terms(sc.device.public_key, sc.circuit.circuit_id,
                               start_ms=now - keys.genesis.max_skew_ms, end_ms=now + 30 * DAY)
        issue = keys.sign(renewal)
        await env.ok(issue)
        pid2 = policy_id(issue.tx)
        # The same frames (same epoch, overlapping seqs) under the new policy, re-dated into its
        # term, are the same incident: refused.
        again = payout_body(keys.ledger_id, pid2, renewal, n=sc.circuit.n, start_seq=first.start_seq + 2,
                            start_ts=now + HOUR, end_ts=now + HOUR + 10 * SECOND)
        env.clock.set(again.end_ts + SECOND)
        await env.refused(keys.qc(again), Reason.WINDOW_OVERLAP)
        # Later frames of the device are a new incident and pay.
        fresh = payout_body(keys.ledger_id, pid2, renewal, n=sc.circuit.n, start_seq=first.end_seq,
                            start_ts=now + HOUR, end_ts=now + HOUR + 10 * SECOND)
        assert (await env.ok(keys.qc(fresh))).effect.paid == renewal.amount


async def _anchored_device(env: LedgerEnv, sc: Scenario) -> Identity:
    agent = identity("agent-anchor")
    await env.ok(env.keys.sign(EnrolAgent(agent_id=agent.public_key)))
    return agent


async def test_revoked_key_cannot_forge_earlier_window(tmp_path: Path) -> None:
    """Item 4: after revoke_device, a window signed with the leaked key and dated before the
    revocation is refused; a genuine window anchored before the revocation still pays."""
    async with funded(tmp_path) as (env, sc):
        keys = env.keys
        agent = await _anchored_device(env, sc)
        genuine = sc.body(0, end_chain=chain_value("genuine-0"))
        env.clock.set(genuine.end_ts + SECOND)
        # The agent anchors the device's head (here: the genuine window's end) at its interval.
        await env.ok(anchor(keys, agent, 1, [head_of(genuine)]))
        assert env.state.history(sc.device.public_key).last_head is not None
        env.clock.set(genuine.end_ts + 2 * SECOND)
        await env.ok(keys.sign(RevokeDevice(device_id=sc.device.public_key)))
        revoked_ms = env.clock.now_ms
        env.clock.set(revoked_ms + HOUR)
        # The key holder signs a made-up window in another period, ending before the revocation.
        forged = sc.body(1, end_chain=chain_value("forged"))
        forged = _rederive(forged.replace(start_ts=genuine.end_ts + 100, end_ts=revoked_ms - 1,
                                          start_seq=5000, end_seq=5000 + sc.circuit.n))
        await env.refused(keys.qc(forged), Reason.REVOKED_WINDOW_NOT_ANCHORED)
        # Reusing the anchored seq with another chain value (other readings) does not help.
        twisted = genuine.replace(end_chain=chain_value("twisted"))
        await env.refused(keys.qc(twisted), Reason.ANCHOR_MISMATCH)
        # The genuine, anchored window pays.
        assert (await env.ok(keys.qc(genuine))).effect.paid == sc.terms.amount
        # And the device's history is closed: no more anchors for it.
        later = head_of(genuine).replace(seq=genuine.end_seq + 10, ts_ms=revoked_ms + 1)
        await env.refused(anchor(keys, agent, 2, [later]), Reason.DEVICE_REVOKED)


async def test_anchor_rules(tmp_path: Path) -> None:
    async with funded(tmp_path) as (env, sc):
        keys = env.keys
        agent = await _anchored_device(env, sc)
        b0 = sc.body(0, end_chain=chain_value("b0"))
        env.clock.set(b0.end_ts + SECOND)
        h0 = head_of(b0)
        await env.ok(anchor(keys, agent, 5, [h0]))
        # Rounds only go up.
        await env.refused(anchor(keys, agent, 5, [h0.replace(seq=h0.seq + 1)]), Reason.ANCHOR_STALE)
        # The root must be the heads' root.
        bad = anchor(keys, agent, 6, [h0])
        bad_body = bad.body.replace(root=bytes(32))
        await env.refused(bad_body.sign(agent), Reason.ANCHOR_BAD_ROOT)
        # An anchored (device, epoch, seq) cannot be re-anchored with another frame.
        await env.refused(anchor(keys, agent, 6, [h0.replace(chain=chain_value("other"))]), Reason.ANCHOR_CONFLICT)
        # The same head again is fine (an idle device), and a later head moves the last head on.
        later = h0.replace(seq=h0.seq + 5, ts_ms=h0.ts_ms + 5 * SECOND, chain=chain_value("later"))
        await env.ok(anchor(keys, agent, 6, [h0, later]))
        last = env.state.history(sc.device.public_key).last_head
        assert last is not None and last.seq == later.seq
        # Unsorted heads, unknown devices, foreign ledgers and strangers are refused.
        unsorted = anchor(keys, agent, 7, [h0]).body.replace(heads=(later, h0))
        unsorted = unsorted.replace(root=merkle_root([h.leaf_hash for h in unsorted.heads]))
        await env.refused(unsorted.sign(agent), Reason.INVALID_PARAMETERS)
        await env.refused(anchor(keys, agent, 7, [h0.replace(device_id=b"\x09" * 32)]), Reason.NOT_FOUND)
        foreign = anchor(keys, agent, 7, [h0]).body.replace(ledger_id=b"\x01" * 32)
        await env.refused(foreign.sign(agent), Reason.WRONG_LEDGER)
        await env.refused(anchor(keys, identity("stranger"), 1, [h0]), Reason.UNKNOWN_AGENT)
        # An anchored window end carrying another chain is refused even before any revocation.
        await env.refused(keys.qc(b0.replace(end_chain=chain_value("not-b0"))), Reason.ANCHOR_MISMATCH)
        assert (await env.ok(keys.qc(b0))).effect.paid == sc.terms.amount


async def test_decommission_rules(tmp_path: Path) -> None:
    """DESIGN §15 H11 through the service (money invariants checked on every entry): the final
    anchored head is named, the policy closes, and the device's windows are refused after."""
    async with funded(tmp_path) as (env, sc):
        keys = env.keys
        agent = await _anchored_device(env, sc)
        did = sc.device.public_key
        b0 = sc.body(0, end_chain=chain_value("b0"))
        env.clock.set(b0.end_ts + SECOND)
        h0 = head_of(b0)
        await env.ok(anchor(keys, agent, 1, [h0]))
        named = DecommissionDevice(device_id=did, epoch=h0.epoch, seq=h0.seq, chain=h0.chain)
        await env.refused(keys.sign(named.replace(seq=h0.seq - 1), nonce=keys.next_nonce), Reason.ANCHOR_MISMATCH)
        await env.ok(keys.sign(named))
        await env.refused(keys.qc(b0), Reason.DEVICE_DECOMMISSIONED)  # anchored before, still never paid
        await env.refused(keys.sign(named, nonce=keys.next_nonce), Reason.INVALID_STATE_TRANSITION)
        await env.refused(anchor(keys, agent, 2, [h0.replace(seq=h0.seq + 1, chain=chain_value("b1"))]),
                          Reason.DEVICE_REVOKED)


LEDGER_REASONS = sorted(r for r in Reason if r.stage in (Stage.LEDGER_TX, Stage.LEDGER_STATE))


@pytest.mark.parametrize("reason", LEDGER_REASONS, ids=[r.value for r in LEDGER_REASONS])
def test_every_ledger_reason_is_produced_by_some_test(reason: Reason, request: pytest.FixtureRequest) -> None:
    """Runs last in this file: each LEDGER_TX / LEDGER_STATE reason was seen in a refusal above."""
    if not PRODUCED_REASONS:
        pytest.skip("run with the rule tests of this file (they record the reasons they produce)")
    assert reason in PRODUCED_REASONS, f"no test makes the ledger refuse with {reason.value}"
