"""Oracle side of a device suspension (DESIGN §15): check an agent's evidence, sign, collect k.

An agent that quarantined a device for bad signatures sends the refused frames themselves. Each
oracle checks them against its own ledger replica — every frame names the device, none verifies
under the device's enrolled key, they are distinct and at least `min_frames` — and only then signs
a `SuspendBody` whose `evidence_hash` is the hash of those frames, so k oracles that sign the same
body saw the same evidence. `SuspensionCollector` gathers signatures into the certificate the
ledger accepts (ledger/state.py H3). Pure: no I/O, no clock (times are passed in).

Anyone can make frames that name a device and do not verify, so a suspension stops payouts for a
device but never moves money, and only the admin lifts it (docs/security.md).

`SuspensionDesk` (round 2) is the gossip side, as a pure machine: an agent's report or a peer's
`SuspensionShare` in, `PublishShare` / `SubmitCertificate` actions out. An oracle signs a body only
after checking its frames itself, and adds a peer's signature only if it verifies under a member of
the body's epoch; with k signatures it submits the certificate once (oracle/suspension_gossip.py
runs it over a Transport).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from faultproof.errors import FaultproofError, Reason
from faultproof.identity import Identity, domain_tag
from faultproof.identity import verify as ed25519_verify
from faultproof.messages import (
    QcSignature,
    SignedFrame,
    SuspendBody,
    SuspensionCertificate,
    SuspensionShare,
)
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


# ------------------------------------------------------------------ gossip of signatures (round 2)


@dataclass(frozen=True)
class PublishShare:
    share: SuspensionShare


@dataclass(frozen=True)
class SubmitCertificate:
    certificate: SuspensionCertificate


SuspensionAction = PublishShare | SubmitCertificate


@dataclass
class _Case:
    collector: SuspensionCollector
    frames: tuple[SignedFrame, ...]
    signed: bool = False
    submitted: bool = False


class SuspensionDesk:
    """One oracle's open suspensions, keyed by body. Pure: the replica and time are passed in."""

    MAX_OPEN = 1024  # bodies in flight; beyond it new ones are ignored (a flood of junk bodies)

    def __init__(self, oracle: Identity, *, max_skew_ms: int = 30_000, min_frames: int = MIN_FORGED_FRAMES) -> None:
        self.oracle = oracle
        self.max_skew_ms = max_skew_ms
        self.min_frames = min_frames
        self.cases: dict[bytes, _Case] = {}

    def report(self, state: LedgerState, device_id: bytes, frames: Sequence[SignedFrame],
               since_ms: int) -> list[SuspensionAction]:
        """An agent's evidence: check it, sign, share. Raises FaultproofError if it does not hold."""
        body, sig = sign_suspension(self.oracle, state, device_id, frames, since_ms, self.min_frames)
        case = self._case(state, body, frames)
        if case is None:
            return []
        return self._sign_into(case, body, sig)

    def on_share(self, state: LedgerState, share: SuspensionShare, now_ms: int) -> list[SuspensionAction]:
        """A peer's share. Raises FaultproofError for a share to drop (bad signature, non-member,
        evidence that does not hold on our replica); returns what to do otherwise."""
        body = share.body
        if body.ledger_id != state.ledger_id or body.oracle_set_epoch != state.oracle_set.epoch:
            raise FaultproofError(Reason.QC_STALE_EPOCH, "the share is for another ledger or oracle-set epoch")
        if body.since_ms > now_ms + self.max_skew_ms:
            raise FaultproofError(Reason.INVALID_PARAMETERS, "a suspension cannot start in the future")
        if evidence_hash(share.frames) != body.evidence_hash:
            raise FaultproofError(Reason.BAD_REQUEST, "the frames are not the evidence the body names")
        case = self._case(state, body, share.frames)
        if case is None:
            return []
        actions: list[SuspensionAction] = []
        cert = case.collector.add(share.signature)  # QC_NON_MEMBER / QC_BAD_SIGNATURE raise
        if not case.signed:
            # Our own check of the frames, on our replica, for the same body: else we do not sign.
            mine, sig = sign_suspension(self.oracle, state, body.device_id, share.frames, body.since_ms,
                                        self.min_frames)
            if mine != body:
                raise FaultproofError(Reason.BAD_REQUEST, "the body differs from the one the evidence gives")
            return actions + self._sign_into(case, body, sig)  # submits if our signature makes k
        return self._maybe_submit(case, cert)

    def done(self, body: SuspendBody) -> None:
        """The ledger recorded a suspension of this device (ours or another oracle's): forget it."""
        self.cases.pop(body.encode(), None)

    def _case(self, state: LedgerState, body: SuspendBody, frames: Sequence[SignedFrame]) -> _Case | None:
        key = body.encode()
        case = self.cases.get(key)
        if case is None:
            if len(self.cases) >= self.MAX_OPEN:
                return None
            case = _Case(SuspensionCollector(body, frozenset(state.oracle_set.members), state.oracle_set.threshold),
                         tuple(frames))
            self.cases[key] = case
        return case

    def _sign_into(self, case: _Case, body: SuspendBody, sig: QcSignature) -> list[SuspensionAction]:
        if case.signed:
            return []
        case.signed = True
        cert = case.collector.add(sig)
        actions: list[SuspensionAction] = [PublishShare(SuspensionShare(body=body, signature=sig, frames=case.frames))]
        return actions + self._maybe_submit(case, cert)

    def _maybe_submit(self, case: _Case, cert: SuspensionCertificate | None) -> list[SuspensionAction]:
        if cert is None or case.submitted:
            return []
        case.submitted = True
        return [SubmitCertificate(cert)]
