"""Pure detection (agent/detect.py) over frames accepted by the pure checks: each fault kind the
simulator makes is found at the first window it can be, benign noise never is, an incident is
claimed once (also after a restart), gaps are never spanned until filled. Fast, no I/O."""

from __future__ import annotations

import hashlib

from agent.detect import Detector, PolicyTerms
from agent.frames import DeviceRecord, FrameChecker, Incoming
from agent.simulator import Fault, Sensor, SimDevice
from faultproof import chain
from faultproof.identity import Identity
from faultproof.messages import IssuePolicy
from faultproof.zk.params import TriggerParams, trigger_holds
from ledger.state import Policy

NOW = 1_800_000_000_000
HOUR = 3_600_000
N = 8
STEP = 1000  # ms between readings


def device(faults: list[Fault] = (), seed: int = 1) -> SimDevice:  # type: ignore[assignment]
    return SimDevice(Identity.from_seed(bytes([seed]) * 32), bytes(range(1, 32)),
                     sensor=Sensor(base=2150, noise=40, seed=seed), faults=faults)


def terms(d: SimDevice, params: TriggerParams, *, start_ms: int = NOW - 30 * HOUR, end_ms: int = NOW + HOUR,
          period_ms: int = HOUR, claim_window_ms: int = 24 * HOUR, n: int = N) -> PolicyTerms:
    kind, T, K, lo, hi, G = params.as_tuple()
    ip = IssuePolicy(device_id=d.device_id, beneficiary=bytes(32), circuit_id=hashlib.sha256(b"c").digest(),
                     kind=kind, threshold=T, count=K, lo=lo, hi=hi, gap_ms=G, coverage=10, amount=1, premium=0,
                     start_ms=start_ms, end_ms=end_ms, period_ms=period_ms, claim_window_ms=claim_window_ms)
    return PolicyTerms.from_ledger(Policy(b"\x07" * 32, ip, start_ms, 1, locked=ip.coverage), n)


def feed(d: SimDevice, count: int, start: int, *, skip: set[int] = frozenset()) -> tuple[FrameChecker, list[Incoming]]:  # type: ignore[assignment]
    c = FrameChecker(max_skew_ms=5000, reorder_window=4096)
    c.set_device(DeviceRecord(d.device_id, 0, chain.chain_to_bytes(chain.chain_anchor(d.device_id, 0)), None,
                              d.blinding_key))
    frames = []
    ts = start
    for _ in range(count):
        ts += d.gap_before(d.next_seq)
        frames.append(Incoming.from_message(d.make(ts)))
        ts += STEP
    for f in frames:
        if f.seq not in skip:
            assert c.check(f, NOW).accepted
    return c, frames


def scan(c: FrameChecker, d: SimDevice, det: Detector) -> list[tuple[int, int]]:
    return [(w.start_seq, w.end_seq) for w in det.scan(c.book(d.device_id), NOW)]


def test_benign_noise_is_never_claimed() -> None:
    d = device()
    c, _ = feed(d, 600, NOW - 700 * STEP)
    for params in (TriggerParams.count(2300, 1), TriggerParams.run(2300, 2), TriggerParams.stuck(2),
                   TriggerParams.outside(2000, 2300, 1), TriggerParams.dropout(5 * STEP)):
        det = Detector(terms(d, params), 0)
        assert scan(c, d, det) == [], params
        assert det.evaluated == 600 - N


def test_each_fault_kind_is_found_at_its_first_window() -> None:
    cases = [
        (Fault.excursion(100, 3, 4000), TriggerParams.count(3000, 3), 104 - N),  # 100, 102, 104 high
        (Fault.run(100, 5, 4000), TriggerParams.run(3000, 4), 103 - N),
        (Fault.stuck(100, 6), TriggerParams.stuck(4), 102 - N),  # 99 = 100 = 101 = 102
        (Fault.out_of_range(100, 2, -500), TriggerParams.outside(0, 5000, 2), 101 - N),
        (Fault.dropout(100, 10 * STEP), TriggerParams.dropout(5 * STEP), 100 - N),
    ]
    for fault, params, first_start in cases:
        d = device([fault])
        c, _ = feed(d, 200, NOW - 300 * STEP)
        windows = scan(c, d, Detector(terms(d, params), 0))
        assert windows[:1] == [(first_start, first_start + N)], fault.kind
        book = c.book(d.device_id)
        rs = [book.get(s) for s in range(first_start + 1, first_start + N + 1)]
        assert trigger_holds(*params.as_tuple(), [f.reading for f in rs], [f.ts for f in rs],
                             book.get(first_start).ts)


def test_one_incident_one_claim_per_period_also_after_restart() -> None:
    d = device([Fault.run(50, 0, 4000)])  # high from seq 50 on
    c, _ = feed(d, 400, NOW - 8000 * STEP)  # 400 readings 1 s apart; periods of 100 s
    pt = terms(d, TriggerParams.run(3000, 2), period_ms=100 * STEP)
    det = Detector(pt, 0)
    first = det.scan(c.book(d.device_id), NOW)
    periods = [w.period for w in first]
    assert len(periods) == len(set(periods))  # at most one per period
    assert len(first) >= 3 and all(b.start_ts >= a.end_ts for a, b in zip(first, first[1:], strict=False))
    # A restarted agent with the same claims on file finds nothing new.
    again = Detector(pt, 0, claimed=[(w.start_ts, w.end_ts, w.period) for w in first])
    assert again.scan(c.book(d.device_id), NOW) == []


def test_windows_never_span_a_gap_until_it_is_filled() -> None:
    d = device([Fault.run(100, 3, 4000)])
    c, frames = feed(d, 130, NOW - 200 * STEP, skip={101})
    det = Detector(terms(d, TriggerParams.run(3000, 3)), 0)
    found = scan(c, d, det)
    # 100..102 is the only run of 3; with 101 missing no complete window holds it.
    assert found == []
    assert c.check(frames[101], NOW).accepted  # the late frame links 102
    det.note_filled(101)
    assert scan(c, d, det) == [(102 - N, 102)]


def test_term_and_claim_window_limit_detection() -> None:
    d = device([Fault.run(100, 3, 4000)])
    c, _ = feed(d, 130, NOW - 200 * STEP)
    later_term = terms(d, TriggerParams.run(3000, 3), start_ms=NOW - 50 * STEP)
    assert scan(c, d, Detector(later_term, 0)) == []
    closed = terms(d, TriggerParams.run(3000, 3), claim_window_ms=10 * STEP)
    assert scan(c, d, Detector(closed, 0)) == []


def test_ledger_payouts_exclude_their_period() -> None:
    d = device([Fault.run(100, 3, 4000)])
    c, _ = feed(d, 130, NOW - 200 * STEP)
    pt = terms(d, TriggerParams.run(3000, 3))
    paid = PolicyTerms(**{**pt.__dict__, "paid": ((NOW - 10 * HOUR, NOW - 10 * HOUR + 1, pt.period_of(NOW - 150 * STEP)),)})
    assert scan(c, d, Detector(paid, 0)) == []


def test_unclaimable_incidents_are_counted_with_their_reason() -> None:
    """A malfunction the policy cannot pay is not silently dropped (nor proved for nothing): the
    detector counts it by reason, once per incident."""
    d = device([Fault.excursion(100, 3, 4000), Fault.excursion(300, 3, 4000)])
    c, frames = feed(d, 400, NOW - 500 * STEP)
    t100 = frames[100].ts
    params = TriggerParams.count(3000, 3)
    cases = {
        "outside_policy_term": terms(d, params, start_ms=t100 + 10 * STEP),  # starts after the 1st
        "claim_window_closed": terms(d, params, claim_window_ms=STEP),
        "coverage_exhausted": None,
        "period_limit": terms(d, params, period_ms=24 * HOUR),  # one payout covers both incidents
    }
    spent = terms(d, params)
    cases["coverage_exhausted"] = PolicyTerms(**{**spent.__dict__, "coverage_left": 0})
    for why, t in cases.items():
        det = Detector(t, 0)
        found = scan(c, d, det)
        assert det.skipped.get(why, 0) >= 1, (why, det.skipped)
        if why == "period_limit":
            assert len(found) == 1 and det.skipped == {"period_limit": 1}
        if why in ("claim_window_closed", "coverage_exhausted"):
            assert found == [] and det.skipped == {why: 2}  # both incidents, once each
    healthy = Detector(terms(device(), params), 0)
    c2, _ = feed(device(), 400, NOW - 500 * STEP)
    assert scan(c2, device(), healthy) == [] and healthy.skipped == {}
