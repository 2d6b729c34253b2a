"""Ledger-rule attacks that need a ledger of their own: a PRODUCTION ledger (genesis
development = false) with a short oracle-rotation grace period (6 s), run as a real
`faultproof ledger serve` process next to the adversarial network's development ledger.

Cases: a development circuit on a production ledger, admin transactions from another ledger (and
replayed, and signed by the wrong keys), QCs after an oracle rotation inside and after the grace
period, QCs from the rotated-out set, and a QC of one ledger posted to another. The QCs are signed
with the member keys, as the oracles would; no oracle process is needed to test the ledger's rules.
The ledger is checked after every case and verified (`faultproof ledger verify`) at the end."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from faultproof.errors import Reason
from faultproof.identity import Identity
from faultproof.messages import (
    AdminTx,
    Deposit,
    IssuePolicy,
    PayoutBody,
    RegisterCircuit,
    RotateAdmin,
    RotateOracles,
    claim_id,
)
from faultproof.zk import export_vkey
from tests.adversarial.advnet import (
    PARAMS,
    AdvNetwork,
    LedgerBook,
    assert_unchanged,
    entries_after,
    ledger_error,
    ledger_verify,
    make_qc,
    module_end_check,
    payouts_in,
    snapshot,
    start_bare_ledger,
)
from tests.adversarial.cases import case
from tests.netfix import SECOND, DeviceSim, Network, now_ms

GRACE_MS = 6 * SECOND


@dataclass
class Prod:
    ledger: Network
    new_members: list[Identity]
    paid: list[bytes]  # claim ids this module expects paid on the production ledger


@pytest.fixture(scope="module")
def prod(net: AdvNetwork, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prod]:
    ledger = start_bare_ledger(tmp_path_factory.mktemp("adv-prod-ledger"), development=False,
                               rotation_grace_ms=GRACE_MS)
    try:
        reg = RegisterCircuit(vkey=export_vkey(net.circuit), n=net.circuit.n, layout_version=1,
                              transcript_hash=os.urandom(32), production=1)
        ledger.admin_txs([Deposit(amount=10**9), reg])
        ledger.circuit_id = reg.circuit_id
        yield Prod(ledger, [Identity.generate() for _ in range(5)], [])
    finally:
        try:
            report = ledger_verify(ledger.root / "ledger.sqlite3")
            assert report["ok"], report
        finally:
            ledger.stop()


def insured(ledger: Network) -> tuple[DeviceSim, bytes, IssuePolicy]:
    dev = ledger.new_device()
    pid, terms = ledger.issue_policy(dev, PARAMS)
    return dev, pid, terms


def body_for(ledger: Network, dev: DeviceSim, pid: bytes, terms: IssuePolicy, *, epoch: int = 0,
             start_seq: int = 0) -> PayoutBody:
    """What the oracles would sign for a window of this device that ended 20 s ago."""
    end_ts = now_ms() - 20 * SECOND
    return PayoutBody(ledger_id=ledger.ledger_id, oracle_set_epoch=epoch,
                      claim_id=claim_id(pid, dev.device_id, 0, start_seq, start_seq + 4), policy_id=pid,
                      device_id=dev.device_id, epoch=0, start_seq=start_seq, end_seq=start_seq + 4,
                      start_ts=end_ts - 4 * SECOND, end_ts=end_ts, circuit_id=terms.circuit_id,
                      beneficiary=terms.beneficiary, amount=terms.amount)


@case("ADV-PRO-05", "a development circuit (production flag 0, or no ceremony transcript) on a production ledger")
def test_development_circuit_on_production(prod: Prod, net: AdvNetwork) -> None:
    ledger = prod.ledger
    before = snapshot(ledger)
    vkey = export_vkey(net.circuit)
    for production, transcript in ((0, os.urandom(32)), (1, bytes(32)), (0, bytes(32))):
        reg = RegisterCircuit(vkey=vkey + b" ", n=4, layout_version=1, transcript_hash=transcript, production=production)
        stx = AdminTx.make(ledger.ledger_id, ledger.nonce + 1, reg).sign(ledger.admin)
        assert ledger_error(ledger.post_tx(stx)) == (409, Reason.DEVELOPMENT_CIRCUIT_ON_PRODUCTION.value)
    assert_unchanged(ledger, before)
    # The control: the same key flagged production with a ceremony transcript is accepted (the
    # module fixture registered it). The ledger cannot tell a development key that an admin
    # flags as production: registering circuits is the admin's trust (docs/security.md).
    assert ledger.ledger_get(f"/v1/circuits/{ledger.circuit_id.hex()}")[1]["production"] is True


@case("ADV-PRO-06", "an admin transaction from another ledger; replayed; signed by an oracle, the ledger key, a stranger, a former admin")
def test_admin_tx_from_another_ledger(prod: Prod, net: AdvNetwork) -> None:
    ledger = prod.ledger
    before_dev, before_prod = snapshot(net), snapshot(ledger)
    # A deposit the development ledger's admin signed for ITS ledger, posted here (and vice versa).
    theirs = AdminTx.make(net.ledger_id, ledger.nonce + 1, Deposit(amount=5)).sign(net.admin)
    assert ledger_error(ledger.post_tx(theirs)) == (409, Reason.WRONG_LEDGER.value)
    ours_for_them = AdminTx.make(net.ledger_id, net.nonce + 1, Deposit(amount=5)).sign(ledger.admin)
    assert ledger_error(net.post_tx(ours_for_them)) == (403, Reason.BAD_ADMIN_SIGNATURE.value)
    mine_elsewhere = AdminTx.make(ledger.ledger_id, net.nonce + 1, Deposit(amount=5)).sign(net.admin)
    assert ledger_error(net.post_tx(mine_elsewhere)) == (409, Reason.WRONG_LEDGER.value)
    assert_unchanged(net, before_dev)
    # Wrong keys over a well-formed transaction for this ledger.
    tx = AdminTx.make(ledger.ledger_id, ledger.nonce + 1, Deposit(amount=7))
    for key, reason in ((ledger.oracle_ids[0], Reason.NOT_ADMIN), (ledger.ledger_key, Reason.NOT_ADMIN),
                        (Identity.generate(), Reason.BAD_ADMIN_SIGNATURE)):
        assert ledger_error(ledger.post_tx(tx.sign(key)))[1] == reason.value
    # Replay of an accepted transaction, and a nonce skipped ahead.
    [(accepted, _)] = ledger.admin_txs([Deposit(amount=7)])
    assert ledger_error(ledger.post_tx(accepted)) == (409, Reason.BAD_NONCE.value)
    ahead = AdminTx.make(ledger.ledger_id, ledger.nonce + 2, Deposit(amount=7)).sign(ledger.admin)
    assert ledger_error(ledger.post_tx(ahead)) == (409, Reason.BAD_NONCE.value)
    # After an admin rotation, the former admin is refused.
    old = ledger.admin
    new = Identity.generate()
    ledger.admin_txs([RotateAdmin(new_admin=new.public_key)])
    ledger.admin = new
    stale = AdminTx.make(ledger.ledger_id, ledger.nonce + 1, Deposit(amount=7)).sign(old)
    assert ledger_error(ledger.post_tx(stale)) == (403, Reason.NOT_ADMIN.value)
    kinds = [e.entry.tx.tx.args.NAME for e in entries_after(ledger, before_prod.height)]  # type: ignore[attr-defined]
    assert kinds == ["deposit", "rotate-admin"], kinds  # exactly the two legitimate ones


@dataclass
class Rotation:
    rotated_height: int  # height of the rotate-oracles entry
    rotation_ms: int
    inside: tuple[int, dict[str, object]]  # the old set's QC posted right after the rotation
    body_a: PayoutBody
    b: tuple[DeviceSim, bytes, IssuePolicy]


@pytest.fixture(scope="module")
def rotation(prod: Prod) -> Rotation:
    """Two insured devices; the oracle set rotated to new keys (epoch 0 -> 1); then, at once, the
    old set's QC for device a's incident under the old epoch, i.e. inside the grace period."""
    ledger = prod.ledger
    a, b = insured(ledger), insured(ledger)
    body_a = body_for(ledger, *a)
    qc_a = make_qc(body_a, ledger.oracle_ids[:4])  # signed before the rotation, posted after it
    [(_, rotated)] = ledger.admin_txs([RotateOracles(members=tuple(m.public_key for m in prod.new_members),
                                                     threshold=4)])
    inside = ledger.post_tx(qc_a)
    if inside[0] == 200:
        prod.paid.append(body_a.claim_id)
    return Rotation(rotated["height"], rotated["entry"]["entry"]["time_ms"], inside, body_a, b)


@case("ADV-VQC-05", "a QC from a rotated-out oracle set (old keys under the new epoch; new keys under the old epoch)")
def test_qc_from_a_rotated_out_set(prod: Prod, rotation: Rotation) -> None:
    ledger = prod.ledger
    old, new = ledger.oracle_ids, prod.new_members
    before = snapshot(ledger)
    for epoch, signers in ((1, old[:4]), (0, new[:4]), (1, old[:2] + new[:2])):
        qc = make_qc(body_for(ledger, *rotation.b, epoch=epoch), signers)
        assert ledger_error(ledger.post_tx(qc)) == (409, Reason.QC_NON_MEMBER.value), (epoch, signers)
    assert_unchanged(ledger, before)


@case("ADV-PRO-09", "a QC after an oracle rotation: inside the grace period it pays, after it the old epoch is stale")
def test_qc_after_rotation_inside_and_after_grace(prod: Prod, rotation: Rotation) -> None:
    ledger = prod.ledger
    # Inside: the old set's QC, posted right after the rotation, paid (and within the grace).
    status, resp = rotation.inside
    assert status == 200 and not resp["existing"], resp
    [entry] = entries_after(ledger, rotation.rotated_height)[:1]
    assert payouts_in([entry]) == [(rotation.body_a.claim_id, rotation.body_a.amount)]
    assert entry.entry.time_ms <= rotation.rotation_ms + GRACE_MS
    # After: wait out the grace period (the ledger's clock is the wall clock here).
    time.sleep(max(0.0, (rotation.rotation_ms + GRACE_MS - now_ms()) / 1000) + 0.5)
    before = snapshot(ledger)
    body_b0 = body_for(ledger, *rotation.b, epoch=0)
    assert ledger_error(ledger.post_tx(make_qc(body_b0, ledger.oracle_ids[:4]))) == (409, Reason.QC_STALE_EPOCH.value)
    assert_unchanged(ledger, before)
    # The new set certifies it under the new epoch: paid once.
    body_b1 = body_b0.replace(oracle_set_epoch=1)
    status, resp = ledger.post_tx(make_qc(body_b1, prod.new_members[1:5]))
    assert status == 200 and not resp["existing"], resp
    prod.paid.append(body_b1.claim_id)
    # The incident paid under the old epoch, re-certified by the new set: the same entry, no new one.
    before = snapshot(ledger)
    status, resp = ledger.post_tx(make_qc(rotation.body_a.replace(oracle_set_epoch=1), prod.new_members[:4]))
    assert status == 200 and resp["existing"], resp
    assert_unchanged(ledger, before)


@case("ADV-PRO-10", "a QC certified on one ledger posted to another (cross-ledger replay)")
def test_qc_from_another_ledger(prod: Prod, net: AdvNetwork) -> None:
    ledger = prod.ledger
    dev, pid, terms = insured(ledger)
    body = body_for(ledger, dev, pid, terms, epoch=1)
    qc = make_qc(body, prod.new_members[:4])
    before_dev = snapshot(net)
    assert ledger_error(net.post_tx(qc)) == (409, Reason.WRONG_LEDGER.value)  # production QC on dev ledger
    assert_unchanged(net, before_dev)
    # ...and one signed by the development ledger's own members, relabelled for this ledger.
    relabelled = make_qc(body, net.oracle_ids[:4])
    before = snapshot(ledger)
    assert ledger_error(ledger.post_tx(relabelled)) == (409, Reason.QC_NON_MEMBER.value)
    assert_unchanged(ledger, before)
    # Every payout on the production ledger is one this module made on purpose.
    paid = [cid for cid, _ in payouts_in(entries_after(ledger, 0))]
    assert paid == prod.paid, (paid, prod.paid)


def test_module_end_ledger_verifies_and_paid_exactly_the_expected(net: AdvNetwork, book: LedgerBook) -> None:
    module_end_check(net, book)  # this module must not have touched the development ledger
