"""From quarantine to suspension (DESIGN §15): an agent's burst of forged frames, checked by each
oracle on its replica, k signatures make a certificate, the ledger suspends the device and refuses
its later windows until the admin reinstates it. Fewer than k, or genuine frames, suspend nothing."""

from __future__ import annotations

import pytest

from agent.anomaly import AnomalyMonitor
from faultproof.errors import FaultproofError, Reason
from faultproof.messages import Frame, Lift, LiftTarget, SignedFrame
from ledger.state import active_suspension, payout_rejection
from oracle.suspension import SuspensionCollector, sign_suspension
from tests.ledger.helpers import HOUR, SECOND, Scenario, make_ledger


def _forged(sc: Scenario, n: int, ts: int) -> list[SignedFrame]:
    did = sc.device.public_key
    return [SignedFrame(frame=Frame(device_id=did, epoch=0, seq=100 + i, ts_ms=ts + i, chain=bytes(32)),
                        signature=bytes([i + 1]) * 64) for i in range(n)]


def test_k_oracles_suspend_and_later_windows_are_refused() -> None:
    keys = make_ledger(5)
    sc = Scenario.standard(keys)
    state = sc.set_up()
    b0, b1 = sc.body(0), sc.body(1)
    t_quarantine = b1.start_ts - HOUR
    # The agent quarantines on the burst.
    mon = AnomalyMonitor()
    frames = _forged(sc, 20, t_quarantine - 20)
    qs = [mon.refused(f.frame.device_id, Reason.BAD_FRAME_SIGNATURE, t_quarantine) for f in frames]
    assert qs[-1] is not None and all(q is None for q in qs[:-1])
    # Each oracle checks the frames itself and signs the same body.
    collector = None
    cert = None
    for oracle in keys.oracles[: keys.threshold]:
        body, sig = sign_suspension(oracle, state, sc.device.public_key, frames, t_quarantine)
        collector = collector or SuspensionCollector(body, frozenset(state.oracle_set.members), state.oracle_set.threshold)
        cert = collector.add(sig)
    assert cert is not None and len(cert.signatures) == keys.threshold
    now = t_quarantine + SECOND
    state.apply(cert, now)
    assert active_suspension(state, sc.device.public_key) is not None
    at = b1.end_ts + SECOND
    assert payout_rejection(state, b0, at) is None  # before the quarantine: still payable
    assert payout_rejection(state, b1, at) is Reason.DEVICE_SUSPENDED
    state.apply(keys.sign(Lift(target=int(LiftTarget.SUSPENSION), device_id=sc.device.public_key, note=b"")), at)
    assert payout_rejection(state, b1, at) is Reason.DEVICE_SUSPENDED  # never retroactive
    assert payout_rejection(state, sc.body(2), sc.body(2).end_ts + SECOND) is None


def test_too_few_signatures_or_genuine_frames_suspend_nothing() -> None:
    keys = make_ledger(5)
    sc = Scenario.standard(keys)
    state = sc.set_up()
    frames = _forged(sc, 20, sc.now)
    body, sig = sign_suspension(keys.oracles[0], state, sc.device.public_key, frames, sc.now)
    coll = SuspensionCollector(body, frozenset(state.oracle_set.members), state.oracle_set.threshold)
    for o in keys.oracles[: keys.threshold - 1]:
        assert coll.add(sign_suspension(o, state, sc.device.public_key, frames, sc.now)[1]) is None
    with pytest.raises(FaultproofError) as e:
        sign_suspension(keys.oracles[0], state, sc.device.public_key, frames[:19], sc.now)
    assert e.value.reason is Reason.BAD_REQUEST
    genuine = Frame(device_id=sc.device.public_key, epoch=0, seq=1, ts_ms=sc.now, chain=bytes(32)).sign(sc.device)
    with pytest.raises(FaultproofError, match="not a forgery"):
        sign_suspension(keys.oracles[0], state, sc.device.public_key, [*frames[:19], genuine], sc.now)
    with pytest.raises(FaultproofError) as e:
        coll.add(sig.replace(signature=bytes(64)))
    assert e.value.reason is Reason.QC_BAD_SIGNATURE
