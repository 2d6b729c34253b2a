"""Oracle side of a device suspension (DESIGN §15): check an agent's evidence, sign, collect k.

An agent that quarantined a device for bad signatures sends the refused frames themselves. Each
oracle checks them against its own ledger replica — every frame names the device, none verifies
under the device's enrolled key, they are distinct and at least `min_frames` — and only then signs
a `SuspendBody` whose `evidence_hash` is the hash of those frames, so k oracles that sign the same
body saw the same evidence. `SuspensionCollector` gathers signatures into the certificate the
ledger accepts (ledger/state.py H3). Pure: no I/O, no clock (times are passed in).

Anyone can make frames that name a device and do not verify, so a suspension stops payouts for a
device but never moves money, and only the admin lifts it (docs/security.md).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from faultproof.errors import FaultproofError, Reason
from faultproof.identity import Identity, domain_tag
from faultproof.identity import verify as ed25519_verify
from faultproof.messages import QcSignature, SignedFrame, SuspendBody, SuspensionCertificate
from faultproof.signing import verify_message
from ledger.state import LedgerState, active_suspension, device_key

MIN_FORGED_FRAMES = 20  # agent.anomaly.Thresholds' bad_signature limit
_SUSPEND_TAG = domain_tag(SuspendBody.NAME)


def evidence_hash(frames: Sequence[SignedFrame]) -> bytes:
    h = hashlib.sha256(b"faultproof/suspension-evidence/v1")
    for f in sorted(frames, key=lambda f: f.encode()):
        h.update(f.encode())
    return h.digest()


def check_forged_frames(state: LedgerState, device_id: bytes, frames: Sequence[SignedFrame],
                        min_frames: int = MIN_FORGED_FRAMES) -> None:
    """Raise FaultproofError unless `frames` show a burst of forgeries against this device."""
    if state.device(device_id) is None:
        raise FaultproofError(Reason.UNKNOWN_DEVICE)
    if active_suspension(state, device_id) is not None:
        raise FaultproofError(Reason.DEVICE_SUSPENDED, "already suspended")
    distinct = {f.encode() for f in frames}
    if len(distinct) < min_frames or len(distinct) != len(frames):
        raise FaultproofError(Reason.BAD_REQUEST, f"need {min_frames} distinct frames, got {len(distinct)}")
    key = device_key(state, device_id)
    for f in frames:
        if f.frame.device_id != device_id:
            raise FaultproofError(Reason.FRAME_MISMATCH, "a frame names another device")
        if verify_message(key, f.frame, f.signature):
            raise FaultproofError(Reason.BAD_REQUEST, "a frame verifies: it is not a forgery")


def sign_suspension(oracle: Identity, state: LedgerState, device_id: bytes, frames: Sequence[SignedFrame],
                    since_ms: int, min_frames: int = MIN_FORGED_FRAMES) -> tuple[SuspendBody, QcSignature]:
    """Check the evidence, then sign. `since_ms` is when the agent quarantined the device."""
    check_forged_frames(state, device_id, frames, min_frames)
    body = SuspendBody(ledger_id=state.ledger_id, oracle_set_epoch=state.oracle_set.epoch, device_id=device_id,
                       reason=Reason.BAD_FRAME_SIGNATURE, since_ms=since_ms, evidence_hash=evidence_hash(frames))
    return body, body.sign(oracle)


@dataclass
class SuspensionCollector:
    """Signatures over one body from members of its oracle-set epoch; a certificate at k."""

    body: SuspendBody
    members: frozenset[bytes]
    threshold: int
    sigs: dict[bytes, QcSignature] = field(default_factory=dict)

    def add(self, sig: QcSignature) -> SuspensionCertificate | None:
        if sig.oracle_id not in self.members:
            raise FaultproofError(Reason.QC_NON_MEMBER)
        if not ed25519_verify(_SUSPEND_TAG, self.body.encode(), sig.signature, sig.oracle_id):
            raise FaultproofError(Reason.QC_BAD_SIGNATURE)
        self.sigs[sig.oracle_id] = sig
        if len(self.sigs) < self.threshold:
            return None
        chosen = sorted(self.sigs.values(), key=lambda s: s.oracle_id)[: self.threshold]
        return SuspensionCertificate(body=self.body, signatures=tuple(chosen))
