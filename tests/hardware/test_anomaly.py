"""The agent's anomaly monitor (agent/anomaly.py): a burst of forged frames quarantines a device
(driven through the real frame checks), each signal has its threshold in a sliding window, a
frame-rate jump counts, slowing down does not, and a quarantine holds until released."""

from __future__ import annotations

from agent.anomaly import AnomalyMonitor, Signal, Thresholds
from agent.frames import DeviceRecord, FrameChecker, Incoming
from agent.simulator import Sensor, SimDevice
from faultproof import chain
from faultproof.errors import Reason
from faultproof.identity import Identity

NOW = 1_800_000_000_000
BLIND = bytes(range(1, 32))


def test_forged_frame_burst_quarantines_through_the_frame_checks() -> None:
    dev = SimDevice(Identity.from_seed(b"\x01" * 32), BLIND, sensor=Sensor(seed=1))
    c = FrameChecker(max_skew_ms=5_000, reorder_window=64)
    c.set_device(DeviceRecord(dev.device_id, 0, chain.chain_to_bytes(chain.chain_anchor(dev.device_id, 0)),
                              None, BLIND))
    mon = AnomalyMonitor()
    good = [Incoming.from_message(dev.make(NOW - 60_000 + i * 1000)) for i in range(5)]
    for i, f in enumerate(good):
        assert c.check(f, NOW).accepted
        assert mon.accepted(f.device_id, f.ts, NOW - 60_000 + i * 1000) is None
    quarantine = None
    limit = Thresholds().limit(Signal.BAD_SIGNATURE)
    for i in range(limit):
        forged = Incoming.from_message(dev.make(NOW - 50_000 + i * 10))
        forged.signature = bytes(64)
        v = c.check(forged, NOW)
        assert v.reason is Reason.BAD_FRAME_SIGNATURE
        q = mon.refused(forged.device_id, v.reason, NOW + i)
        if i < limit - 1:
            assert q is None
        else:
            quarantine = q
    assert quarantine is not None and quarantine.signal is Signal.BAD_SIGNATURE and quarantine.count == limit
    assert mon.quarantined(dev.device_id) == quarantine
    assert mon.refused(dev.device_id, Reason.BAD_FRAME_SIGNATURE, NOW + 100) is None  # already quarantined
    mon.release(dev.device_id)
    assert mon.quarantined(dev.device_id) is None


def test_counts_are_per_window_and_per_device() -> None:
    mon = AnomalyMonitor(Thresholds(window_ms=1_000))
    a, b = b"a" * 32, b"b" * 32
    limit = Thresholds().limit(Signal.CHAIN_BREAK)
    for i in range(limit - 1):
        assert mon.refused(a, Reason.CHAIN_BROKEN, NOW + i * 2_000) is None  # spread out: never a burst
    for i in range(limit - 1):
        assert mon.refused(b, Reason.CHAIN_BROKEN, NOW + i) is None
    assert mon.refused(a, Reason.CHAIN_BROKEN, NOW + limit * 2_000) is None
    assert mon.refused(b, Reason.CHAIN_BROKEN, NOW + limit) is not None
    assert mon.refused(a, Reason.TIMESTAMP_IN_FUTURE, NOW) is None  # says nothing about compromise
    assert [q.device_id for q in mon.quarantines()] == [b]


def test_one_failed_attestation_quarantines_and_logins_count() -> None:
    mon = AnomalyMonitor()
    q = mon.refused(b"c" * 32, Reason.ATTESTATION_FAILED, NOW)
    assert q is not None and q.signal is Signal.ATTESTATION_FAILED
    for i in range(Thresholds().limit(Signal.LOGIN_REFUSED) - 1):
        assert mon.observe(b"d" * 32, Signal.LOGIN_REFUSED, NOW + i) is None
    assert mon.observe(b"d" * 32, Signal.LOGIN_REFUSED, NOW + 100) is not None


def test_frame_rate_jump_counts_and_slowdown_does_not() -> None:
    mon = AnomalyMonitor()
    dev = b"e" * 32
    ts = NOW
    for _ in range(40):  # a steady 1 Hz device
        ts += 1_000
        assert mon.accepted(dev, ts, ts) is None
    mon2 = AnomalyMonitor()
    t2 = NOW
    for _ in range(40):
        t2 += 1_000
        mon2.accepted(dev, t2, t2)
    for _ in range(40):  # slows to 0.1 Hz: a dropout, not a compromise
        t2 += 10_000
        assert mon2.accepted(dev, t2, t2) is None
    quarantine = None
    for _ in range(40):  # an injector alongside: 100 Hz
        ts += 10
        quarantine = quarantine or mon.accepted(dev, ts, ts)
    assert quarantine is not None and quarantine.signal is Signal.RATE_JUMP
    assert mon2.quarantined(dev) is None


def test_a_long_first_gap_or_a_dropout_is_not_a_rate_jump() -> None:
    mon = AnomalyMonitor()
    dev = b"f" * 32
    ts = NOW - 3_600_000  # the anchor frame, an hour before the stream
    assert mon.accepted(dev, ts, NOW) is None
    ts = NOW
    for i in range(300):
        ts += 8_000 if i == 150 else 100  # 10 Hz with one 8 s dropout
        assert mon.accepted(dev, ts, ts) is None
    assert mon.quarantined(dev) is None


def test_a_lift_on_the_ledger_ends_only_a_quarantine_that_began_before_it() -> None:
    """The agent releases a quarantine when the admin lifted the device's suspension at or after the
    quarantine began; an older lift, or another device's, leaves it in force."""
    mon = AnomalyMonitor()
    a, b = b"\x0a" * 32, b"\x0b" * 32
    limit = Thresholds().limit(Signal.BAD_SIGNATURE)
    for dev in (a, b):
        for i in range(limit):
            mon.refused(dev, Reason.BAD_FRAME_SIGNATURE, NOW + i)
    since = NOW + limit - 1
    assert {q.device_id for q in mon.quarantines()} == {a, b}
    assert mon.reinstated({a: since - 1}) == []  # lifted before this quarantine: says nothing of it
    assert mon.reinstated({b"\x0c" * 32: since + 5}) == []
    [q] = mon.reinstated({a: since, b: since - 10})
    assert q.device_id == a and q.since_ms == since
