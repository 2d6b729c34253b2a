"""Hardware ledger-state cases for the oracle network tests (DESIGN §15): a claim the oracles must
reject with an attestation, suspension or breaker reason on a real ledger and 5 oracle processes.
Lockdowns are ledger-wide, so each case returns an `undo` the test runs afterwards."""

from __future__ import annotations

import time
from collections.abc import Callable

from agent.boot import allowlist_txs, ledger_evidence
from faultproof.errors import Reason
from faultproof.messages import (
    Lift,
    LiftTarget,
    SetLockdown,
    SignedClaim,
    SuspendBody,
    SuspensionCertificate,
)
from faultproof.signing import Ed25519FileSigner
from tests.netfix import HOUR, SECOND, TRIGGERING, Incident, Network, incident, now_ms
from tests.oracle.helpers import next_window

_OFF = SetLockdown(breaker_window_ms=0, breaker_share_bps=0, attestation_max_age_ms=0)


def _allow_genuine_boot(net: Network) -> None:
    for tx in allowlist_txs():
        try:
            net.admin_txs([tx])
        except RuntimeError as e:  # allowed by an earlier case
            assert "already_exists" in str(e), e


def _attest(net: Network, inc: Incident, *, tampered: bool = False) -> None:
    status, state = net.ledger_get("/v1/state")
    assert status == 200, state
    ev = ledger_evidence(Ed25519FileSigner(inc.dev.identity), epoch=inc.dev.epoch, seq=inc.dev.last_seq,
                         ts_ms=now_ms(), head_hash=bytes.fromhex(state["head_hash"]), tampered=tampered)
    status, body = net.post_tx(ev)
    assert status in (200, 201), body


def _window_after_now(net: Network, inc: Incident) -> SignedClaim:
    """A triggering window that starts now, once it has ended (so its end is not in the future)."""
    start = inc.dev.record(TRIGGERING, start_ts=now_ms() + 50, step_ms=50)
    time.sleep(max(0.0, (inc.dev.timestamps[-1] - now_ms()) / 1000) + 0.3)
    return net.claim(inc.dev, inc.pid, inc.terms, start)


def hardware_network_claim(net: Network, reason: Reason) -> tuple[Incident, SignedClaim, Callable[[], None]]:
    def lockdown_off() -> None:
        net.admin_txs([_OFF])

    if reason is Reason.ATTESTATION_MISSING:
        net.admin_txs([SetLockdown(breaker_window_ms=0, breaker_share_bps=0, attestation_max_age_ms=HOUR)])
        inc = incident(net)  # never attested
        return inc, inc.claim, lockdown_off
    if reason in (Reason.ATTESTATION_FAILED, Reason.ATTESTATION_STALE):
        _allow_genuine_boot(net)
        max_age = HOUR if reason is Reason.ATTESTATION_FAILED else SECOND
        net.admin_txs([SetLockdown(breaker_window_ms=0, breaker_share_bps=0, attestation_max_age_ms=max_age)])
        inc = incident(net)
        _attest(net, inc, tampered=reason is Reason.ATTESTATION_FAILED)
        if reason is Reason.ATTESTATION_STALE:
            time.sleep(2 * max_age / 1000)  # the only pass is older than max_age before the window
            inc.dev.record([50], start_ts=now_ms())  # the next window's start frame: after the sleep
        return inc, _window_after_now(net, inc), lockdown_off
    if reason is Reason.DEVICE_SUSPENDED:
        inc = incident(net)
        status, oracles = net.ledger_get("/v1/oracles")
        assert status == 200, oracles
        members = {bytes.fromhex(m) for m in oracles["members"]}
        signers = [o for o in net.oracle_ids if o.public_key in members][: oracles["threshold"]]
        body = SuspendBody(ledger_id=net.ledger_id, oracle_set_epoch=oracles["epoch"], device_id=inc.dev.device_id,
                           reason=Reason.BAD_FRAME_SIGNATURE, since_ms=inc.dev.timestamps[inc.start] - SECOND,
                           evidence_hash=bytes(32))
        cert = SuspensionCertificate(body=body, signatures=tuple(sorted((body.sign(o) for o in signers),
                                                                        key=lambda s: s.oracle_id)))
        status, resp = net.post_tx(cert)
        assert status in (200, 201), resp
        return inc, inc.claim, lambda: None
    assert reason is Reason.PAYOUTS_PAUSED
    # One payout above 1 bps of the pool trips the breaker; the next window is paused.
    net.admin_txs([SetLockdown(breaker_window_ms=HOUR, breaker_share_bps=1, attestation_max_age_ms=0)])
    inc = incident(net, window_ts=now_ms() - 3 * HOUR, coverage=10**9, amount=5 * 10**8)
    assert net.post_claim(0, inc.claim)[0] == 202
    net.wait_status(inc.claim_id, "paid", oracle=0)

    def resume() -> None:
        net.admin_txs([Lift(target=int(LiftTarget.PAYOUTS), device_id=bytes(32), note=b"test over"), _OFF])

    return inc, next_window(net, inc, gap_ms=2 * HOUR), resume
