"""Deterministic sample messages (fixed seeds), one per message type.

The JSON vectors in this folder are generated from these (`python -m tests.vectors.generate`);
the property and mutation tests start from them too.
"""

from __future__ import annotations

import hashlib

from faultproof import chain
from faultproof.errors import Reason
from faultproof.identity import Identity
from faultproof.merkle import merkle_root
from faultproof.messages import (
    AdminTx,
    AnchorBody,
    Approve,
    BondHolder,
    ChainApprove,
    ChainEvidence,
    ChainSlash,
    Claim,
    ContradictingApprove,
    CorroboratingWindow,
    Deposit,
    DeviceHead,
    DeviceReading,
    DeviceSlashShare,
    EconParams,
    EconPolicy,
    EnrolAgent,
    EnrolDevice,
    ExpirePolicy,
    Frame,
    FrameEquivocation,
    Genesis,
    GroupClaim,
    GroupPayoutBody,
    GroupQuorumCertificate,
    GroupVote,
    IssuePolicy,
    LedgerEntry,
    Message,
    PayoutBody,
    PostBond,
    QcSignature,
    QuorumCertificate,
    ReadingBatch,
    Receipt,
    RegisterCircuit,
    RejectBody,
    RevokeAgent,
    RevokeDevice,
    RotateAdmin,
    RotateOracles,
    SignedFrame,
    SignedHead,
    Unbond,
    UnbondStep,
    UnsignedReading,
    VoteBatch,
    VoteEquivocation,
    Withdraw,
    group_claim_id,
)


def identity(name: str) -> Identity:
    return Identity.from_seed(hashlib.sha256(f"faultproof test vector {name}".encode()).digest())


DEVICE = identity("device")
AGENT = identity("agent")
ADMIN = identity("admin")
LEDGER = identity("ledger")
ORACLES = [identity(f"oracle-{i}") for i in range(5)]
BLINDING_KEY = hashlib.sha256(b"faultproof test vector blinding").digest()[:31]
EPOCH = 3
READINGS = [215, -40, 2**31 - 1, -(2**31), 0, 215, 215, 215]
TIMESTAMPS = [1_700_000_000_000 + 1000 * i for i in range(1, len(READINGS) + 1)]
T0 = 1_700_000_000_000


def chain_values() -> list[int]:
    """c_0 .. c_n over READINGS (seq 0 is the anchor)."""
    c = [chain.chain_anchor(DEVICE.public_key, EPOCH)]
    for seq, (t, r) in enumerate(zip(TIMESTAMPS, READINGS, strict=True), start=1):
        c.append(chain.chain_step(c[-1], t, r, chain.blinding_value(BLINDING_KEY, seq)))
    return c


def frames() -> list[Frame]:
    c = chain_values()
    ts = [T0, *TIMESTAMPS]
    return [Frame(device_id=DEVICE.public_key, epoch=EPOCH, seq=i, ts_ms=ts[i],
                  chain=chain.chain_to_bytes(c[i])) for i in range(len(c))]


def genesis() -> Genesis:
    return Genesis(nonce=b"\x07" * 32, created_ms=T0, ledger_key=LEDGER.public_key,
                   admin=ADMIN.public_key, oracles=tuple(o.public_key for o in ORACLES), threshold=4,
                   development=1, max_skew_ms=30_000, rotation_grace_ms=3_600_000)


def samples() -> dict[str, Message]:
    """One valid instance of every message type, keyed by type name."""
    fs = frames()
    signed = [f.sign(DEVICE) for f in fs]
    ledger_id = genesis().ledger_id
    claim = Claim(policy_id=b"\x11" * 32, start=signed[0], end=signed[-1], proof=bytes(range(256)),
                  agent_id=AGENT.public_key, created_ms=T0 + 60_000)
    register = RegisterCircuit(vkey=b'{"protocol":"groth16"}', n=8, layout_version=1,
                               transcript_hash=b"\x00" * 32, production=0)
    policy = IssuePolicy(device_id=DEVICE.public_key, beneficiary=b"\x22" * 32,
                         circuit_id=register.circuit_id, kind=1, threshold=chain.enc(100), count=3,
                         lo=0, hi=0, gap_ms=0, coverage=1_000_000, amount=250_000, premium=10_000,
                         start_ms=T0, end_ms=T0 + 86_400_000 * 30, period_ms=86_400_000,
                         claim_window_ms=86_400_000 * 7)
    body = PayoutBody(ledger_id=ledger_id, oracle_set_epoch=0, claim_id=claim.claim_id,
                      policy_id=claim.policy_id, device_id=DEVICE.public_key, epoch=EPOCH,
                      start_seq=0, end_seq=len(READINGS), start_ts=fs[0].ts_ms, end_ts=fs[-1].ts_ms,
                      circuit_id=register.circuit_id, beneficiary=b"\x22" * 32, amount=250_000,
                      end_chain=fs[-1].chain)
    approvals = [body.approve(o) for o in ORACLES[:4]]
    reject = RejectBody(oracle_id=ORACLES[4].public_key, ledger_id=ledger_id, oracle_set_epoch=0,
                        claim_id=claim.claim_id, reason=Reason.WINDOW_OVERLAP)
    admin_args: list[Message] = [
        register,
        EnrolDevice(device_id=DEVICE.public_key, epoch=EPOCH, anchor=fs[0].chain, firmware_hash=b"\x33" * 32),
        RevokeDevice(device_id=DEVICE.public_key),
        EnrolAgent(agent_id=AGENT.public_key),
        RevokeAgent(agent_id=AGENT.public_key),
        Deposit(amount=5_000_000),
        Withdraw(amount=1_000),
        policy,
        RotateOracles(members=tuple(o.public_key for o in ORACLES[1:]), threshold=3),
        RotateAdmin(new_admin=identity("admin-2").public_key),
        *hardware_admin_args(fs[0].chain),
    ]
    txs = [AdminTx.make(ledger_id, i + 1, a) for i, a in enumerate(admin_args)]
    qc = QuorumCertificate.from_approvals(approvals)
    entry = LedgerEntry(ledger_id=ledger_id, height=7, prev_hash=b"\x44" * 32, time_ms=T0 + 70_000,
                        tx=qc, paid=250_000)
    signed_entry = entry.sign(LEDGER)
    head = SignedHead.make(LEDGER, ledger_id, 7, entry.entry_hash, T0 + 70_000)
    out: dict[str, Message] = {
        "frame": fs[1],
        "signed-frame": signed[1],
        "device-reading": DeviceReading(signed=signed[1], reading=chain.enc(READINGS[0])),
        "reading-batch": ReadingBatch(readings=tuple(
            DeviceReading(signed=signed[i], reading=chain.enc(READINGS[i - 1])) for i in (1, 2, 3))),
        "claim": claim,
        "signed-claim": claim.sign(AGENT),
        "payout-approve": body,
        "approve": approvals[0],
        "vote-reject": reject,
        "reject": reject.sign(ORACLES[4]),
        "vote-batch": VoteBatch(oracle_id=ORACLES[0].public_key, votes=(approvals[0],)),
        # DESIGN §13: an EIP-712 ECDSA signature (r ‖ s ‖ v) travels as it is; no key here
        "chain-approve": ChainApprove(oracle_id=ORACLES[0].public_key, oracle_set_epoch=0,
                                      claim_id=approvals[0].body.claim_id, signature=bytes(range(64)) + b"\x1b"),
        "qc-signature": QcSignature(oracle_id=ORACLES[0].public_key, signature=approvals[0].signature),
        "quorum-certificate": qc,
        "admin-tx": txs[0],
        "signed-admin-tx": txs[7].sign(ADMIN),
        "expire-policy": ExpirePolicy(policy_id=b"\x11" * 32),
        "genesis": genesis(),
        "ledger-entry": entry,
        "signed-entry": signed_entry,
        "ledger-head": head,
        "receipt": Receipt(genesis=genesis(), entry=signed_entry, head=head),
    }
    for a in admin_args:
        out[a.NAME] = a
    out.update(_econ_samples(ledger_id, policy, body, approvals, reject, signed, fs))
    # device history anchors (DESIGN §11)
    heads = tuple(DeviceHead(device_id=DEVICE.public_key, epoch=EPOCH, seq=f.seq, ts_ms=f.ts_ms, chain=f.chain)
                  for f in fs[-2:])
    anchor = AnchorBody(ledger_id=ledger_id, agent_id=AGENT.public_key, round=1, heads=heads,
                        root=merkle_root([h.leaf_hash for h in heads]))
    out.update({"device-head": heads[0], "device-anchor": anchor, "signed-device-anchor": anchor.sign(AGENT)})
    out.update(hardware_samples())
    # fast paths (DESIGN §16)
    from faultproof.messages import ClaimBatch, QcBatch

    out["claim-batch"] = ClaimBatch(claims=(claim.sign(AGENT), claim.replace(created_ms=claim.created_ms + 1).sign(AGENT)))
    out["qc-batch"] = QcBatch(qcs=(qc,))
    # frames signed every s-th reading: an unsigned frame alone and in a batch beside signed ones
    unsigned = UnsignedReading(frame=fs[2], reading=chain.enc(READINGS[1]))
    out["unsigned-reading"] = unsigned
    out["reading-batch"] = ReadingBatch(readings=(
        DeviceReading(signed=signed[1], reading=chain.enc(READINGS[0])), unsigned,
        DeviceReading(signed=signed[3], reading=chain.enc(READINGS[2]))))
    return out


def _econ_samples(ledger_id: bytes, policy: IssuePolicy, body: PayoutBody, approvals: list[Approve],
                  reject: RejectBody, signed: list[SignedFrame], fs: list[Frame]) -> dict[str, Message]:
    """Economic security (DESIGN §14): bonds, evidence, corroborated payouts."""
    other = fs[1].replace(chain=fs[2].chain)
    windows = tuple(sorted((CorroboratingWindow(device_id=d.public_key, agent_id=AGENT.public_key, epoch=EPOCH,
                                                start_seq=0, end_seq=len(READINGS), start_ts=fs[0].ts_ms,
                                                end_ts=fs[-1].ts_ms) for d in (DEVICE, identity("device-2"))),
                           key=lambda w: w.device_id))
    group_body = GroupPayoutBody(ledger_id=ledger_id, oracle_set_epoch=0,
                                 claim_id=group_claim_id(b"\x11" * 32, windows), policy_id=b"\x11" * 32,
                                 windows=windows, circuit_id=policy.circuit_id, beneficiary=policy.beneficiary,
                                 amount=policy.amount)
    msgs: list[Message] = [
        EconParams(min_oracle_bond=1_000_000, max_staging_cost=50_000, reporter_share_bps=2_000,
                   unlock_delay_ms=86_400_000 * 14),
        PostBond(holder_kind=BondHolder.DEVICE, holder_id=DEVICE.public_key, amount=300_000),
        Unbond(holder_kind=BondHolder.ORACLE, holder_id=ORACLES[0].public_key, step=UnbondStep.REQUEST),
        EconPolicy(terms=policy, staging_cost=20_000, group=(DEVICE.public_key, identity("device-2").public_key),
                   min_proofs=2, overlap_tolerance_ms=60_000),
        VoteEquivocation(reporter=b"\x55" * 32, first=approvals[0],
                         second=body.replace(amount=1).approve(ORACLES[0])),
        ContradictingApprove(reporter=b"\x55" * 32, approve=body.replace(amount=1).approve(ORACLES[1])),
        FrameEquivocation(reporter=b"\x55" * 32, first=signed[1], second=other.sign(DEVICE)),
        # an oracle's share of a device slashing certificate for the pool contract (DESIGN §13)
        DeviceSlashShare(oracle_id=ORACLES[0].public_key, oracle_set_epoch=0,
                         evidence=FrameEquivocation(reporter=b"\x55" * 32, first=signed[1], second=other.sign(DEVICE)),
                         signature=bytes(range(64)) + b"\x1c"),
        windows[0],
        group_body,
        GroupQuorumCertificate(body=group_body, signatures=tuple(group_body.sign(o) for o in ORACLES[:4])),
        # a slash the pool contract decided, as its mirror records it (DESIGN §13)
        ChainSlash(holder_kind=BondHolder.DEVICE, offender=DEVICE.public_key, reporter=b"\x55" * 32,
                   evidence=ChainEvidence.FRAMES, amount=300_000, to_reporter=60_000, to_pool=240_000),
        # corroborated claims, the oracle side (econ2)
        GroupVote.make(group_body, ORACLES[0]),
        GroupClaim(policy_id=b"\x11" * 32, parts=(Claim(policy_id=b"\x11" * 32, start=signed[0], end=signed[-1],
                                                        proof=bytes(range(256)), agent_id=AGENT.public_key,
                                                        created_ms=fs[-1].ts_ms).sign(AGENT),)),
    ]
    return {m.NAME: m for m in msgs}


# hardware (DESIGN §15) -------------------------------------------------------------------------

# A fixed P-256 point (the scalar 7's public key): the vectors need no P-256 signature, and
# ECDSA signatures are randomised.
P256_POINT_7 = bytes.fromhex("028e533b6fa0bf7b4625bb30667c01fb607ef9f8b8a80fef5b300628703187b2a3")


def hardware_admin_args(anchor: bytes) -> list[Message]:
    from faultproof.messages import (
        EnrolDeviceKey,
        Lift,
        RotateDeviceKey,
        SetLockdown,
        SetMeasurement,
    )
    from faultproof.signing import KeyType, key_id

    did = key_id(KeyType.P256, P256_POINT_7)
    return [
        EnrolDeviceKey(enrol=EnrolDevice(device_id=did, epoch=EPOCH, anchor=anchor, firmware_hash=b"\x33" * 32),
                       key_type=int(KeyType.P256), public_key=P256_POINT_7),
        SetMeasurement(component=2, digest=b"\x55" * 32, allowed=1),
        RotateDeviceKey(device_id=did, key_type=int(KeyType.ED25519), public_key=b"\x56" * 32,
                        effective_ms=T0 + 1_000, endorsement=b"\x57" * 64),
        SetLockdown(breaker_window_ms=86_400_000, breaker_share_bps=2_000, attestation_max_age_ms=3_600_000),
        Lift(target=1, device_id=bytes(32), note=b"reviewed"),
        *hardware2_admin_args(did),
    ]


def hardware2_admin_args(device_id: bytes) -> list[Message]:
    """DESIGN §15 round 2: transport-key binding, device transfer, gateway AK; round 3: decommission."""
    from faultproof.messages import (
        BindTransportKey,
        DecommissionDevice,
        EnrolGatewayKey,
        TransferDevice,
    )

    return [
        BindTransportKey(principal=AGENT.public_key, transport_key=b"\x58" * 32, endorsement=b"\x59" * 64),
        TransferDevice(device_id=device_id, to_agent=AGENT.public_key),
        EnrolGatewayKey(agent_id=AGENT.public_key, ak_point=b"\x04" + b"\x5a" * 64),
        DecommissionDevice(device_id=device_id, epoch=0, seq=20, chain=b"\x00" + b"\x5b" * 31),  # round 3 (H11)
    ]


def hardware_samples() -> dict[str, Message]:
    from faultproof.attestation import EVIDENCE_TAG, MeasurementLog
    from faultproof.messages import (
        EvidenceBody,
        GatewayQuote,
        SignedEvidence,
        SuspendBody,
        SuspensionCertificate,
        SuspensionReport,
        SuspensionShare,
    )

    log = MeasurementLog.boot(b"bootloader", b"firmware", b"config")
    body = EvidenceBody(device_id=DEVICE.public_key, epoch=EPOCH, seq=9, ts_ms=T0 + 9_000, nonce=b"\x66" * 32,
                        measurements=tuple(log.measurements), composite=log.composite)
    suspend = SuspendBody(ledger_id=genesis().ledger_id, oracle_set_epoch=0, device_id=DEVICE.public_key,
                          reason=Reason.BAD_FRAME_SIGNATURE, since_ms=T0 + 50_000, evidence_hash=b"\x77" * 32)
    report = SuspensionReport(agent_id=AGENT.public_key, device_id=DEVICE.public_key, since_ms=T0 + 50_000,
                              frames=tuple(f.sign(DEVICE) for f in frames()[:2]))
    return {
        "device-evidence": body,
        "signed-evidence": SignedEvidence(body=body, signature=DEVICE.sign(EVIDENCE_TAG, body.encode())),
        "gateway-quote": GatewayQuote(agent_id=AGENT.public_key, attest=b"\xff\x54\x43\x47" + bytes(60),
                                      signature=bytes(72), ak_point=b"\x04" + bytes(64)),
        "suspend-device": suspend,
        "suspension-certificate": SuspensionCertificate(
            body=suspend, signatures=tuple(sorted((suspend.sign(o) for o in ORACLES[:4]), key=lambda q: q.oracle_id))),
        "suspension-share": SuspensionShare(body=suspend, signature=suspend.sign(ORACLES[0]),
                                            frames=tuple(f.sign(DEVICE) for f in frames()[:2])),
        "suspension-report": report,
        "signed-suspension-report": report.sign(AGENT),
    }
