"""Hardware cases for the oracle pipeline tests (DESIGN §15): P-256 devices and the ledger-state
reasons of the lockdown rules, each built on a deep copy of the test's ledger replica, because a
lockdown (breaker, attestation requirement) is ledger-wide and would leak into other cases."""

from __future__ import annotations

import copy
from typing import Any

from faultproof import attestation, signing
from faultproof.errors import Reason
from faultproof.messages import (
    EnrolDeviceKey,
    SetLockdown,
    SetMeasurement,
    SignedClaim,
    SuspendBody,
    SuspensionCertificate,
)
from ledger.state import LedgerState
from tests.netfix import HOUR, SECOND, DeviceSim, make_claim

# The ledger-state reasons of the hardware cases, here and over the network (netcases.py).
HARDWARE_STATE_REASONS = (Reason.ATTESTATION_MISSING, Reason.ATTESTATION_FAILED, Reason.ATTESTATION_STALE,
                          Reason.DEVICE_SUSPENDED, Reason.PAYOUTS_PAUSED)
GOOD = (b"boot-1", b"fw-good", b"cfg-1")


def p256_device(anchor_ts: int) -> DeviceSim:
    """A DeviceSim whose key is P-256 (its `identity` is a signing.P256KeySigner: same interface)."""
    from faultproof.chain import chain_anchor

    dev = DeviceSim.create(anchor_ts=anchor_ts)
    signer = signing.P256KeySigner.generate()
    dev.identity = signer  # type: ignore[assignment]
    dev.chains = [chain_anchor(signer.public_key, 0)]
    return dev


def enrol_p256(dev: DeviceSim) -> EnrolDeviceKey:
    signer = dev.identity
    assert isinstance(signer, signing.P256KeySigner)
    return EnrolDeviceKey(enrol=dev.enrol_tx(), key_type=int(signing.KeyType.P256), public_key=signer.public.data)


def evidence(state: LedgerState, dev: DeviceSim, firmware: bytes = b"fw-good") -> Any:
    signer = dev.identity if isinstance(dev.identity, signing.P256KeySigner) else signing.Ed25519FileSigner(dev.identity)
    log = attestation.MeasurementLog.boot(GOOD[0], firmware, GOOD[2])
    return attestation.make_evidence(signer, epoch=dev.epoch, seq=dev.last_seq, ts_ms=0, nonce=state.head_hash, log=log)


def hardware_state_case(w: Any, reason: Reason) -> tuple[SignedClaim, int, LedgerState]:
    """(claim, time, replica) where the claim passes content checks and fails `reason`. The admin
    nonces used on the copy are given back, so the shared replica's sequence continues."""
    nonce = w.keys.next_nonce
    try:
        return _case(w, reason)
    finally:
        w.keys.next_nonce = nonce


def _case(w: Any, reason: Reason) -> tuple[SignedClaim, int, LedgerState]:
    state: LedgerState = copy.deepcopy(w.state)
    now = w.now
    keys = w.keys

    def admin(args: Any) -> None:
        state.apply(keys.sign(args), now)

    window_ts = now - 10 * 60 * SECOND
    # Results are dated by their nonce entry (the replica's time, now): windows after it.
    if reason is Reason.ATTESTATION_STALE:
        window_ts = now + 2 * HOUR  # the only pass is 2 h before the window, max age 1 h
    elif reason is Reason.ATTESTATION_FAILED:
        window_ts = now + 10 * 60 * SECOND
    dev = DeviceSim.create(anchor_ts=window_ts - SECOND)
    admin(dev.enrol_tx())
    # A payout large enough to trip a 1 bps breaker on the replica's pool.
    big = dict(coverage=state.free // 100, amount=state.free // 200) if reason is Reason.PAYOUTS_PAUSED else {}
    pid, terms = _issue(w, state, dev, **big)
    start = dev.record([90, 95, 10, 12], start_ts=window_ts)
    claim = make_claim(w.circuit, dev, pid, terms, start, w.agent)
    at = dev.timestamps[-1] + SECOND
    if reason in (Reason.ATTESTATION_MISSING, Reason.ATTESTATION_FAILED, Reason.ATTESTATION_STALE):
        admin(SetLockdown(breaker_window_ms=0, breaker_share_bps=0, attestation_max_age_ms=HOUR))
        for comp, img in zip(attestation.DEVICE_STAGES, GOOD, strict=True):
            digest = attestation.measure(img)
            if not state.hw.allowlist or (int(comp), digest) not in state.hw.allowlist:
                admin(SetMeasurement(component=int(comp), digest=digest, allowed=1))
        if reason is Reason.ATTESTATION_FAILED:
            state.apply(evidence(state, dev, b"fw-tampered"), now)
        if reason is Reason.ATTESTATION_STALE:
            state.apply(evidence(state, dev), now)
    elif reason is Reason.DEVICE_SUSPENDED:
        body = SuspendBody(ledger_id=state.ledger_id, oracle_set_epoch=state.oracle_set.epoch,
                           device_id=dev.device_id, reason=Reason.BAD_FRAME_SIGNATURE, since_ms=window_ts,
                           evidence_hash=bytes(32))
        sigs = sorted((body.sign(o) for o in keys.oracles[:keys.threshold]), key=lambda q: q.oracle_id)
        state.apply(SuspensionCertificate(body=body, signatures=tuple(sigs)), now)
    elif reason is Reason.PAYOUTS_PAUSED:
        from oracle.pipeline import check_content

        admin(SetLockdown(breaker_window_ms=HOUR, breaker_share_bps=1, attestation_max_age_ms=0))
        state.apply(keys.qc(check_content(claim, state).body), now)  # paid, and trips the breaker
        nxt = dev.record([90, 95, 10, 12], start_ts=dev.timestamps[-1] + 2 * HOUR)
        claim = make_claim(w.circuit, dev, pid, terms, nxt, w.agent)
        at = dev.timestamps[-1] + SECOND
    return claim, at, state


def _issue(w: Any, state: LedgerState, dev: DeviceSim, **overrides: int) -> tuple[bytes, Any]:
    """w.issue on another replica."""
    saved = w.state
    w.state = state
    try:
        return w.issue(dev, **overrides)  # type: ignore[no-any-return]
    finally:
        w.state = saved
