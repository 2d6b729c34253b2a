"""JSON shapes of the ledger's state objects, as the HTTP API serves them (bytes as lowercase hex).

Pure formatting of `state.py` objects; the client and the CLIs read these shapes. This module must
never change state or decide a rule.
"""

from __future__ import annotations

from typing import Any

from faultproof.messages import (
    DecommissionDevice,
    EnrolDevice,
    EnrolDeviceKey,
    ExpirePolicy,
    IssuePolicy,
    Message,
    QuorumCertificate,
    RotateDeviceKey,
    SignedAdminTx,
    SignedAnchor,
    SignedEvidence,
    SuspensionCertificate,
    TransferDevice,
    policy_id,
)
from faultproof.signing import KeyType
from ledger.state import Agent, Circuit, Device, LedgerState, OracleSet, Policy, device_key_schedule


def policy_json(policy: Policy, now_ms: int) -> dict[str, Any]:
    return {
        "policy_id": policy.policy_id.hex(),
        "status": policy.status_at(now_ms).value,
        "terms": policy.terms.to_json(),
        "issued_ms": policy.issued_ms,
        "issued_height": policy.issued_height,
        "locked": policy.locked,
        "paid_total": policy.paid_total,
        "closed_ms": policy.closed_ms,
        "payouts": [{"claim_id": w.claim_id.hex(), "start_ts": w.start_ts, "end_ts": w.end_ts,
                     "period": w.period, "paid": w.paid, "height": w.height} for w in policy.payouts],
    }


def device_json(device: Device, state: LedgerState) -> dict[str, Any]:
    return {
        "device_id": device.device_id.hex(),
        "epoch": device.epoch,
        "anchor": device.anchor.hex(),
        "firmware_hash": device.firmware_hash.hex(),
        "epochs": {str(e): a.hex() for e, a in sorted(device.epochs.items())},
        "enrolled_ms": device.enrolled_ms,
        "revoked_ms": device.revoked_ms,
        # DESIGN §15 H11: when it was decommissioned (never paid after), or null
        "decommissioned_ms": d.time_ms if (d := state.hw.decommissioned.get(device.device_id)) else None,
        "policies": [p.hex() for p in state.device_policies.get(device.device_id, ())],
        **anchored_json(device, state),
    }


def anchored_json(device: Device, state: LedgerState) -> dict[str, Any]:
    """The device's anchored history (DESIGN §11): its latest anchored head and how many are held."""
    history = state.device_history.get(device.device_id)
    head = history.last_head if history is not None else None
    return {
        "anchored_head": None if head is None else {
            "epoch": head.epoch, "seq": head.seq, "ts_ms": head.ts_ms, "chain": head.chain.hex(),
            "agent_id": head.agent_id.hex(), "anchored_ms": head.anchored_ms, "height": head.height},
        "anchored_heads": len(history.heads) if history is not None else 0,
    }


def circuit_json(circuit: Circuit) -> dict[str, Any]:
    return {
        "circuit_id": circuit.circuit_id.hex(),
        "vkey": circuit.vkey.hex(),
        "n": circuit.n,
        "layout_version": circuit.layout_version,
        "transcript_hash": circuit.transcript_hash.hex(),
        "production": circuit.production,
        "registered_ms": circuit.registered_ms,
    }


def agent_json(agent: Agent, now_ms: int) -> dict[str, Any]:
    return {"agent_id": agent.agent_id.hex(), "enrolled_ms": agent.enrolled_ms, "revoked_ms": agent.revoked_ms,
            "enrolled": agent.enrolled_at(now_ms)}


def oracle_set_json(oset: OracleSet) -> dict[str, Any]:
    return {"epoch": oset.epoch, "members": [m.hex() for m in oset.members], "threshold": oset.threshold,
            "since_ms": oset.since_ms}


def oracles_json(state: LedgerState) -> dict[str, Any]:
    prev = state.previous_oracle_set
    return {
        **oracle_set_json(state.oracle_set),
        "rotation_grace_ms": state.genesis.rotation_grace_ms,
        "previous": None if prev is None else {**oracle_set_json(prev), "rotated_ms": state.oracle_set.since_ms},
    }


# hardware (DESIGN §15) -------------------------------------------------------------------------


def device_key_json(state: LedgerState, device_id: bytes) -> list[dict[str, Any]]:
    """The device's key schedule: each key with the frame time it takes effect from."""
    return [{"since_ms": since, "key_type": key.key_type.name.lower(), "public_key": key.data.hex()}
            for since, key in device_key_schedule(state, device_id)]


def history_detail(tx: Message, device_id: bytes | None = None, state: LedgerState | None = None) -> dict[str, Any]:
    """A short, safe summary of a history entry's transaction (for `device_id`'s history)."""
    if isinstance(tx, SignedAnchor):  # the device's final anchored head (DESIGN §15 H11)
        heads = [h for h in tx.body.heads if h.device_id == device_id]
        return {"agent_id": tx.body.agent_id.hex(),
                "heads": [{"epoch": h.epoch, "seq": h.seq, "ts_ms": h.ts_ms, "chain": h.chain.hex()} for h in heads]}
    if isinstance(tx, SignedAdminTx):
        a = tx.tx.args
        if isinstance(a, DecommissionDevice):
            d = state.hw.decommissioned.get(a.device_id) if state is not None else None
            return {"final_head": {"epoch": a.epoch, "seq": a.seq, "chain": a.chain.hex(),
                                   "anchor_height": d.final_head.height if d and d.final_head else None},
                    "policies_closed": [{"policy_id": pid.hex(), "released": released}
                                        for pid, released in (d.closed if d else ())],
                    "revoked": True}
        if isinstance(a, RotateDeviceKey):
            return {"new_key_type": KeyType(a.key_type).name.lower(), "new_public_key": a.public_key.hex(),
                    "effective_ms": a.effective_ms}
        if isinstance(a, EnrolDeviceKey):
            return {"key_type": KeyType(a.key_type).name.lower(), "public_key": a.public_key.hex(),
                    "epoch": a.enrol.epoch}
        if isinstance(a, EnrolDevice):
            return {"epoch": a.epoch, "firmware_hash": a.firmware_hash.hex()}
        if isinstance(a, IssuePolicy):
            return {"policy_id": policy_id(tx.tx).hex()}
        if isinstance(a, TransferDevice):  # DESIGN §15 H9
            return {"to_agent": a.to_agent.hex()}
        return {}
    if isinstance(tx, QuorumCertificate):
        return {"claim_id": tx.body.claim_id.hex(), "policy_id": tx.body.policy_id.hex()}
    if isinstance(tx, SignedEvidence):
        return {"nonce": tx.body.nonce.hex(), "measurements": [m.hex() for m in tx.body.measurements]}
    if isinstance(tx, SuspensionCertificate):
        return {"reason": tx.body.reason.value, "since_ms": tx.body.since_ms, "signers": len(tx.signatures)}
    if isinstance(tx, ExpirePolicy):
        return {"policy_id": tx.policy_id.hex()}
    return {}
