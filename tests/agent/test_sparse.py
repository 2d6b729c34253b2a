"""Frames signed every s-th reading (DESIGN §16), pure: the agent's checks on UnsignedReadings
(refused at a seq that must be signed, held until the next signed frame confirms the run through
the chain, refuted runs dropped), windows only at signed frames, and a `sign_every = 8` device
through the pure pipeline (FrameChecker + Detector) next to the same readings signed one by one.
No I/O, fast."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import pytest

from agent.detect import Detector, PolicyTerms
from agent.frames import DeviceRecord, FrameChecker, Incoming, parse_json, parse_wire
from agent.simulator import Fault, Sensor, SimDevice
from faultproof import chain
from faultproof.errors import FaultproofError, Reason
from faultproof.identity import Identity
from faultproof.messages import IssuePolicy, ReadingBatch, UnsignedReading
from faultproof.zk.params import TriggerParams
from ledger.state import Policy

NOW = 1_800_000_000_000
HOUR = 3_600_000
STEP = 1000
KEY = bytes(range(1, 32))


def device(s: int, faults: Sequence[Fault] = (), seed: int = 1) -> SimDevice:
    return SimDevice(Identity.from_seed(bytes([seed]) * 32), KEY, sensor=Sensor(base=2150, noise=40, seed=seed),
                     faults=faults, sign_every=s)


def checker(d: SimDevice, s: int | None = None) -> FrameChecker:
    c = FrameChecker(max_skew_ms=5000, reorder_window=4096)
    c.set_device(DeviceRecord(d.device_id, 0, chain.chain_to_bytes(chain.chain_anchor(d.device_id, 0)), None,
                              d.blinding_key, sign_every=d.sign_every if s is None else s))
    return c


def frames(d: SimDevice, count: int, start: int = NOW - 500 * STEP) -> list[Incoming]:
    return [Incoming.from_message(d.make(start + i * STEP)) for i in range(count)]


def unsigned_copy(f: Incoming, *, reading: int | None = None, chain_value: bytes | None = None) -> Incoming:
    """What anyone who saw a frame can send for it: the frame without a signature, any reading."""
    return Incoming(f.device_id, f.epoch, f.seq, f.ts, chain_value or f.chain, b"",
                    f.enc_reading if reading is None else chain.enc(reading), f.body)


def terms(d: SimDevice, params: TriggerParams, n: int) -> PolicyTerms:
    kind, T, K, lo, hi, G = params.as_tuple()
    ip = IssuePolicy(device_id=d.device_id, beneficiary=bytes(32), circuit_id=hashlib.sha256(b"c").digest(),
                     kind=kind, threshold=T, count=K, lo=lo, hi=hi, gap_ms=G, coverage=10, amount=1, premium=0,
                     start_ms=NOW - 30 * HOUR, end_ms=NOW + HOUR, period_ms=1, claim_window_ms=24 * HOUR)
    return PolicyTerms.from_ledger(Policy(b"\x07" * 32, ip, NOW - 30 * HOUR, 1, locked=ip.coverage), n)


# --------------------------------------------------------------------------- the wire


def test_unsigned_reading_travels_alone_and_in_a_batch_beside_signed_ones() -> None:
    d = device(4)
    msgs = [d.make(NOW - 10_000 + i) for i in range(5)]
    assert [type(m).__name__ for m in msgs] == ["DeviceReading", *["UnsignedReading"] * 3, "DeviceReading"]
    batch = ReadingBatch(readings=tuple(msgs))
    for parsed in (parse_wire(batch.encode()), parse_json(batch.to_json())):
        assert isinstance(parsed, list)
        assert [f.to_message() for f in parsed] == msgs
        assert [f.is_signed for f in parsed] == [True, False, False, False, True]
    [one] = parse_wire(msgs[1].encode())  # type: ignore[misc]
    assert one.to_message() == msgs[1] and not one.is_signed
    assert UnsignedReading.from_json(msgs[1].to_json()) == msgs[1]


# --------------------------------------------------------------------------- the checks


def test_unsigned_frame_at_a_seq_that_must_be_signed_is_refused() -> None:
    d = device(4)
    fs = frames(d, 9)
    c = checker(d)
    for f in fs[:4]:
        assert c.check(f, NOW).accepted
    stripped = unsigned_copy(fs[4])  # seq 4 must be signed: its signature stripped
    v = c.check(stripped, NOW)
    assert v.reason is Reason.BAD_FRAME_SIGNATURE
    book = c.book(d.device_id)
    assert book is not None and 4 not in book.frames and book.tail == 0
    # the genuine signed frame is still accepted and confirms the run
    assert c.check(fs[4], NOW).accepted
    # the anchor frame too, and every frame of a device that signs them all (s = 1)
    d1 = device(1, seed=2)
    c1 = checker(d1)
    g = frames(d1, 3)
    assert c1.check(unsigned_copy(g[0]), NOW).reason is Reason.BAD_FRAME_SIGNATURE
    assert c1.check(g[0], NOW).accepted
    assert c1.check(unsigned_copy(g[1]), NOW).reason is Reason.BAD_FRAME_SIGNATURE


def test_a_run_is_confirmed_by_its_signed_frame() -> None:
    d = device(4)
    fs = frames(d, 13)
    c = checker(d)
    book = c.book_for(c.devices[d.device_id])
    verdicts = [c.check(f, NOW) for f in fs]
    assert all(v.accepted for v in verdicts)
    assert [v.held for v in verdicts] == [seq % 4 != 0 for seq in range(13)]
    # held frames are never stored on their own and never in the book before their signed frame
    assert [[f.seq for f in v.confirmed] for v in verdicts if v.confirmed] == [[1, 2, 3], [5, 6, 7], [9, 10, 11]]
    assert all(v.linked for v in verdicts if not v.held)
    assert sorted(book.frames) == list(range(13)) and all(k.linked for k in book.frames.values())
    assert [book.frames[s].reading for s in range(1, 13)] == [f.reading for f in fs[1:]]
    assert book.pending == {}


def test_unsigned_frames_are_held_out_of_the_book_until_confirmed() -> None:
    d = device(8)
    fs = frames(d, 8)
    c = checker(d)
    for f in fs:
        assert c.check(f, NOW).accepted
    book = c.book(d.device_id)
    assert book is not None and sorted(book.frames) == [0] and sorted(book.pending) == list(range(1, 8))


def test_a_forged_unsigned_reading_is_refuted_at_the_next_signed_frame() -> None:
    """The genuine seq 1 is late; a forged copy of seq 2 (the genuine frame, another reading)
    arrives while its predecessor is missing, so it cannot be checked yet and is held. The signed
    seq 4 finds no combination that links: the run is refuted, seq 4 re-anchors, and nothing of
    the run is ever stored as confirmed or reaches a window."""
    d = device(4, [Fault.run(1, 3, 9000)])
    fs = frames(d, 13)
    c = checker(d)
    assert c.check(fs[0], NOW).accepted
    forged = unsigned_copy(fs[2], reading=9000 + 1)
    for f in (forged, fs[3]):
        v = c.check(f, NOW)
        assert v.accepted and v.held
    v4 = c.check(fs[4], NOW)
    assert v4.accepted and not v4.linked and v4.confirmed == () and v4.dropped == 2
    book = c.book(d.device_id)
    assert book is not None and sorted(book.frames) == [0, 4] and book.pending == {}
    late = c.check(fs[1], NOW)  # the genuine seq 1 now: its run was given up
    assert late.accepted and late.held and late.confirmed == ()
    for f in fs[5:]:
        assert c.check(f, NOW).accepted
    assert 2 not in book.frames and all(book.frames[s].linked for s in range(5, 13))
    # the forged readings held; no window covers seqs 1..4, even with a trigger they would fire
    det = Detector(terms(d, TriggerParams.count(8000, 1), 4), 0)
    windows = det.scan(book, NOW)
    assert [(w.start_seq, w.end_seq) for w in windows] == []  # 5..12 are benign


def test_a_forged_copy_next_to_the_genuine_one_loses() -> None:
    """Out of order: the genuine seq 2 and a forged copy both held with seq 1 missing; when seq 1
    and the signed seq 4 arrive, the combination that links is the genuine one."""
    d = device(4)
    fs = frames(d, 5)
    c = checker(d)
    assert c.check(fs[0], NOW).accepted
    for f in (unsigned_copy(fs[2], reading=-7), fs[2], fs[1], fs[3]):
        assert c.check(f, NOW).accepted
    # a copy that does not follow from a stored predecessor is refused on arrival
    assert c.check(unsigned_copy(fs[3], reading=5), NOW).reason is Reason.CHAIN_BROKEN
    v = c.check(fs[4], NOW)
    assert v.linked and [f.seq for f in v.confirmed] == [1, 2, 3]
    book = c.book(d.device_id)
    assert book is not None and book.frames[2].reading == fs[2].reading


def test_a_late_signed_frame_is_confirmed_by_the_run_after_it() -> None:
    d = device(4)
    fs = frames(d, 5)
    c = checker(d)
    assert c.check(fs[0], NOW).accepted
    v4 = c.check(fs[4], NOW)
    assert v4.accepted and not v4.linked
    assert c.check(fs[1], NOW).confirmed == () and c.check(fs[2], NOW).confirmed == ()
    v = c.check(fs[3], NOW)
    assert v.held and v.relinked == 4 and [f.seq for f in v.confirmed] == [1, 2, 3]
    book = c.book(d.device_id)
    assert book is not None and all(book.frames[s].linked for s in range(5))


def test_unsigned_frames_ahead_of_their_signed_frame_and_replays_are_refused() -> None:
    d = device(4)
    fs = frames(d, 9)
    c = checker(d)
    assert c.check(fs[0], NOW).accepted
    assert c.check(fs[5], NOW).reason is Reason.CHAIN_BROKEN  # its run follows seq 4, not stored
    assert c.check(fs[1], NOW).accepted
    assert c.check(fs[1], NOW).reason is Reason.REPLAYED_FRAME
    for f in fs[2:5]:
        assert c.check(f, NOW).accepted
    assert c.check(fs[2], NOW).reason is Reason.REPLAYED_FRAME  # confirmed and stored now


# --------------------------------------------------------------------------- windows


def test_windows_start_and_end_at_signed_frames_only() -> None:
    d = device(4, [Fault.run(7, 8, 9000)])
    fs = frames(d, 40)
    c = checker(d)
    for f in fs:
        assert c.check(f, NOW).accepted
    book = c.book(d.device_id)
    assert book is not None
    # with every frame signed the first window holding 8 of 8 would be (6, 14]; with s = 4 there is
    # none of 8, and the first one holding 5 of 8 is (4, 12] (7..12 high), where s = 1 finds (3, 11]
    assert Detector(terms(d, TriggerParams.count(8000, 8), 8), 0).scan(book, NOW) == []
    [w] = Detector(terms(d, TriggerParams.count(8000, 5), 8), 0).scan(book, NOW)[:1]
    assert (w.start_seq, w.end_seq) == (4, 12)
    # s must divide n: a policy with n = 6 is refused
    with pytest.raises(FaultproofError) as e:
        Detector(terms(d, TriggerParams.count(8000, 1), 6), 0).scan(book, NOW)
    assert e.value.reason is Reason.INVALID_PARAMETERS


def _pipeline(s: int, faults: Sequence[Fault], count: int, n: int, params: TriggerParams) -> list[tuple[int, int, int, int]]:
    d = device(s, faults, seed=9)
    c = checker(d)
    det = Detector(terms(d, params, n), 0)
    found = []
    for f in frames(d, count):
        assert c.check(f, NOW).accepted
        if f.is_signed:  # the engine scans after each batch; here after each signed frame
            book = c.book(d.device_id)
            assert book is not None
            found += [(w.start_seq, w.end_seq, w.start_ts, w.end_ts) for w in det.scan(book, NOW)]
    return found


def test_sign_every_8_finds_the_same_windows_as_every_frame_signed_where_they_align() -> None:
    """Same key, same sensor, same faults: s = 8 and s = 1 give byte-identical chains, so the
    windows (and the claims made of them: same seqs, timestamps, chain values) are the same
    wherever s = 1's window starts at a multiple of 8; s = 8 only misses the unaligned ones."""
    faults = [Fault.run(17, 8, 9000), Fault.run(45, 8, 9000), Fault.run(81, 16, 9000)]
    params = TriggerParams.count(8000, 8)
    every = _pipeline(1, faults, 140, 8, params)
    sparse = _pipeline(8, faults, 140, 8, params)
    assert every == [(16, 24, *every[0][2:]), (44, 52, *every[1][2:]), (80, 88, *every[2][2:]),
                     (88, 96, *every[3][2:])]
    assert sparse == [w for w in every if w[0] % 8 == 0] == [every[0], every[2], every[3]]


# --------------------------------------------------------------------------- the engine and its store


def test_engine_stores_confirmed_runs_only_and_claims_at_signed_frames(tmp_path: Path) -> None:
    """The ingest engine with a real SQLite store: held frames are not stored until confirmed, a
    refuted run is never stored, the window found starts and ends on signed stored frames, and a
    restart rebuilds the chain from the stored (confirmed) frames."""
    from agent.ingest import EngineConfig, IngestEngine, LedgerSnapshot
    from agent.store import load_window, stored_seqs
    from tests.agent.test_ingest import submit_all

    d = device(4, [Fault.run(21, 8, 9000)])
    fs = frames(d, 41)
    forged_run = [unsigned_copy(fs[14], reading=9000), fs[15]]  # seq 13 lost: held, cannot be checked yet
    rec = DeviceRecord(d.device_id, 0, chain.chain_to_bytes(chain.chain_anchor(d.device_id, 0)), None,
                       d.blinding_key, sign_every=4)
    pol = {d.device_id: terms(d, TriggerParams.count(8000, 8), 8)}

    found: list = []
    db = tmp_path / "a.db"
    e = IngestEngine(db, EngineConfig(), clock=lambda: NOW, on_claims=found.extend)
    e.start()
    e.set_ledger(LedgerSnapshot({d.device_id: rec}, pol))
    # seqs 0..12, then seq 13 lost: a forged 14 and the genuine 15 are held, seq 16 refutes the run
    r = submit_all(e, [fs[:10], fs[10:13], forged_run, fs[16:30]])
    assert all(v.accepted for res in r for v in res.verdicts)
    assert [v.dropped for v in r[3].verdicts][:1] == [2]
    assert stored_seqs(db, d.device_id, 0)[:19] == [*range(13), *range(16, 22)]
    e.stop()
    # restart: the chain state comes back from the store; seq 29 was held in memory only, so its
    # run (29..31) is refuted by seq 32, which re-anchors, and the stream links on from there
    e = IngestEngine(db, EngineConfig(), clock=lambda: NOW, on_claims=found.extend)
    e.start()
    e.set_ledger(LedgerSnapshot({d.device_id: rec}, pol))
    submit_all(e, [fs[30:]])
    e.stop()
    assert stored_seqs(db, d.device_id, 0) == [*range(13), *range(16, 29), *range(32, 41)]
    # the run 21..28 high: s = 1 would claim (20, 28]; with s = 4 it is (20, 28] as well (aligned)
    assert [(w.start_seq, w.end_seq) for w in found] == [(20, 28)]
    rows = load_window(db, d.device_id, 0, 20, 28)
    assert [bool(r.signature) for r in rows] == [s % 4 == 0 for s in range(20, 29)]
    assert all(r.linked for r in rows) and [r.reading for r in rows[1:]] == [9000] * 8


def test_provisioning_records_s_beside_the_blinding_key(tmp_path: Path) -> None:
    from agent.provision import SIGN_EVERY_SUFFIX, load_sign_every, provision

    p8 = provision(tmp_path, sign_every=8)
    p1 = provision(tmp_path)
    assert load_sign_every(tmp_path, p8.device_id.hex()) == 8
    assert load_sign_every(tmp_path, p1.device_id.hex()) == 1  # no file: every frame signed
    assert not (tmp_path / f"{p1.device_id.hex()}{SIGN_EVERY_SUFFIX}").exists()
    (tmp_path / f"{p1.device_id.hex()}{SIGN_EVERY_SUFFIX}").write_text("65\n")
    with pytest.raises(ValueError, match="1..64"):
        load_sign_every(tmp_path, p1.device_id.hex())
    with pytest.raises(ValueError):
        provision(tmp_path, sign_every=0)


def test_a_refuted_run_drops_only_its_own_held_frames() -> None:
    """Signed seq 4 arrived early; run 1..3 is still incomplete (seq 2 late) when signed seq 8
    arrives without seq 7: the run 5..6 is refuted, the run 1..3 is kept and still confirmed."""
    d = device(4)
    fs = frames(d, 9)
    c = checker(d)
    for f in (fs[0], fs[4], fs[1], fs[3], fs[5], fs[6]):
        assert c.check(f, NOW).accepted
    v8 = c.check(fs[8], NOW)
    assert v8.accepted and not v8.linked and v8.dropped == 2
    v2 = c.check(fs[2], NOW)
    assert v2.relinked == 4 and [f.seq for f in v2.confirmed] == [1, 2, 3]
    book = c.book(d.device_id)
    assert book is not None and sorted(book.frames) == [0, 1, 2, 3, 4, 8] and book.pending == {}


def test_held_runs_outside_the_reorder_window_are_forgotten() -> None:
    d = device(4)
    fs = frames(d, 30)
    c = FrameChecker(max_skew_ms=5000, reorder_window=8)
    c.set_device(DeviceRecord(d.device_id, 0, chain.chain_to_bytes(chain.chain_anchor(d.device_id, 0)), None,
                              d.blinding_key, sign_every=4))
    for f in fs:
        if f.seq != 2:  # run 1..3 never completes
            assert c.check(f, NOW).accepted
    book = c.book(d.device_id)
    assert book is not None and 1 not in book.pending and 3 not in book.pending


def test_the_agent_refuses_a_policy_whose_n_is_not_a_multiple_of_s() -> None:
    """The ledger snapshot the daemon hands to ingest (agent.ledger_link.snapshot): each device's
    s goes into its DeviceRecord; its policy on an n = 4 circuit is kept for s = 1, 2, 4 and left
    out for s = 8 (no window of it could end on a signed frame)."""
    from agent.ledger_link import snapshot
    from faultproof.messages import Deposit, RegisterCircuit
    from faultproof.zk import build, export_vkey
    from tests.ledger.helpers import make_ledger
    from tests.netfix import DAY, DeviceSim, now_ms

    now = now_ms()
    keys = make_ledger(n=5, created_ms=now - 3 * DAY, max_backdate_ms=3 * DAY)
    state = keys.new_state()
    reg = RegisterCircuit(vkey=export_vkey(build(4)), n=4, layout_version=1, transcript_hash=bytes(32), production=0)
    dev = DeviceSim.create()
    for args in (Deposit(amount=10**9), reg, dev.enrol_tx()):
        state.apply(keys.sign(args), now)
    params = TriggerParams.count(80, 2).as_tuple()
    ip = IssuePolicy(device_id=dev.device_id, beneficiary=b"\xbe" * 32, circuit_id=reg.circuit_id, kind=params[0],
                     threshold=params[1], count=params[2], lo=params[3], hi=params[4], gap_ms=params[5],
                     coverage=5_000, amount=1_000, premium=0, start_ms=now - DAY, end_ms=now + DAY,
                     period_ms=HOUR, claim_window_ms=DAY)
    state.apply(keys.sign(ip), now)
    held = {dev.device_id: dev.blinding_key}
    for s, kept in ((1, True), (2, True), (4, True), (8, False)):
        snap = snapshot(state, held, {reg.circuit_id: 4}, now, {dev.device_id: s})
        assert snap.devices[dev.device_id].sign_every == s
        assert (dev.device_id in snap.policies) is kept, s
    assert snapshot(state, held, {reg.circuit_id: 4}, now).devices[dev.device_id].sign_every == 1


def test_a_late_signed_frame_resent_with_a_false_reading_is_confirmed_with_the_true_one(tmp_path: Path) -> None:
    """Signed seq 4 arrives before its run, first with a false reading (anyone may resend a signed
    frame with another reading, §12), then with the true one (kept as an alternative). When the
    run completes, the reading that links wins, in the checker and in the store."""
    from agent.ingest import EngineConfig, IngestEngine, LedgerSnapshot
    from agent.store import load_window
    from tests.agent.test_ingest import submit_all

    d = device(4)
    fs = frames(d, 5)
    g = fs[4]
    false4 = Incoming(g.device_id, g.epoch, g.seq, g.ts, g.chain, g.signature, chain.enc(9000), g.body)
    order = [fs[0], false4, g, fs[1], fs[2], fs[3]]
    c = checker(d)
    verdicts = [c.check(f, NOW) for f in order]
    assert all(v.accepted for v in verdicts) and verdicts[2].alternative
    last = verdicts[-1]
    assert last.relinked == 4 and last.relinked_reading == g.reading and [f.seq for f in last.confirmed] == [1, 2, 3]
    book = c.book(d.device_id)
    assert book is not None and book.frames[4].reading == g.reading and book.frames[4].linked

    db = tmp_path / "a.db"
    e = IngestEngine(db, EngineConfig(), clock=lambda: NOW)
    e.start()
    e.set_ledger(LedgerSnapshot({d.device_id: c.devices[d.device_id]}, {}))
    submit_all(e, [[f] for f in order])
    e.stop()
    rows = load_window(db, d.device_id, 0, 0, 4)
    assert [(r.seq, r.reading, r.linked) for r in rows] == [(f.seq, f.reading, True) for f in fs]


def _paid_through_the_pipeline(s: int, now: int) -> tuple[list[tuple[int, int, int, int]], int]:
    """One device's readings (a 16-reading fault) through the agent (engine, SQLite store), a real
    proof from the stored window, an oracle's checks on a ledger replica and the ledger's payout.
    Returns the policy's paid windows (start_seq, end_seq, start_ts, end_ts) and its paid total."""
    from pathlib import Path as _P
    from tempfile import TemporaryDirectory

    from agent.detect import Window
    from agent.ingest import EngineConfig, IngestEngine
    from agent.ledger_link import snapshot
    from agent.provision import enrolment
    from agent.store import FrameRow, load_window
    from faultproof.messages import (
        Claim,
        Deposit,
        EnrolAgent,
        Frame,
        RegisterCircuit,
        SignedFrame,
        policy_id,
    )
    from faultproof.zk import Witness, build, export_vkey, prove, verify
    from oracle.pipeline import check_content, check_ledger_state
    from tests.agent.test_ingest import submit_all
    from tests.ledger.helpers import make_ledger
    from tests.netfix import DAY

    keys = make_ledger(n=5, created_ms=now - 3 * DAY, max_backdate_ms=3 * DAY)
    state = keys.new_state()
    circuit = build(16)
    reg = RegisterCircuit(vkey=export_vkey(circuit), n=16, layout_version=1, transcript_hash=bytes(32), production=0)
    agent = Identity.from_seed(b"\x05" * 32)
    d = device(s, [Fault.run(17, 16, 9000)], seed=11)
    for args in (Deposit(amount=10**9), reg, EnrolAgent(agent_id=agent.public_key), enrolment(d.device_id, 0, bytes(32))):
        state.apply(keys.sign(args), now)
    params = TriggerParams.count(8000, 16)
    kind, T, K, lo, hi, G = params.as_tuple()
    stx = keys.sign(IssuePolicy(device_id=d.device_id, beneficiary=b"\xbe" * 32, circuit_id=reg.circuit_id, kind=kind,
                                threshold=T, count=K, lo=lo, hi=hi, gap_ms=G, coverage=5_000, amount=1_000, premium=0,
                                start_ms=now - 2 * DAY, end_ms=now + DAY, period_ms=HOUR, claim_window_ms=DAY))
    state.apply(stx, now)
    pid = policy_id(stx.tx)
    found: list[Window] = []
    with TemporaryDirectory() as tmp:
        db = _P(tmp) / "agent.db"
        e = IngestEngine(db, EngineConfig(), clock=lambda: now, on_claims=found.extend)
        e.start()
        e.set_ledger(snapshot(state, {d.device_id: d.blinding_key}, {reg.circuit_id: 16}, now, {d.device_id: s}))
        [r] = submit_all(e, [frames(d, 65, start=now - 100 * STEP)])
        assert all(v.accepted for v in r.verdicts)
        e.stop()
        for w in found:  # what the agent's claim manager does with a detected window
            rows = load_window(db, w.device_id, w.epoch, w.start_seq, w.end_seq)
            witness = Witness.build(readings=[r.reading for r in rows[1:]], timestamps=[r.ts for r in rows[1:]],
                                    blindings=[chain.blinding_value(d.blinding_key, r.seq) for r in rows[1:]],
                                    c_start=int.from_bytes(rows[0].chain, "big"), t_start=rows[0].ts, params=params,
                                    n=16)

            def signed(r: FrameRow) -> SignedFrame:
                return SignedFrame(frame=Frame(device_id=d.device_id, epoch=0, seq=r.seq, ts_ms=r.ts, chain=r.chain),
                                   signature=r.signature)

            claim = Claim(policy_id=pid, start=signed(rows[0]), end=signed(rows[-1]), proof=prove(circuit, witness),
                          agent_id=agent.public_key, created_ms=now).sign(agent)
            checked = check_content(claim, state)
            assert check_ledger_state(checked, state, now) is None
            assert verify(checked.job.vkey, checked.job.proof, checked.job.signals.as_list())
            state.apply(keys.qc(checked.body), now)
    policy = state.policy(pid)
    assert policy is not None
    return [(w.start_seq, w.end_seq, w.start_ts, w.end_ts) for w in found], policy.paid_total


def test_sign_every_8_is_paid_like_every_frame_signed_through_the_pipeline() -> None:
    """DESIGN §16's differential test: the same readings from a device signing every frame and one
    signing every 8th (the fault's window starts at a multiple of 8) are claimed, proved, checked
    and paid alike: same window, same amount."""
    from tests.netfix import now_ms

    now = now_ms()
    every, paid_every = _paid_through_the_pipeline(1, now)
    sparse, paid_sparse = _paid_through_the_pipeline(8, now)
    assert len(every) == 1 and every[0][:2] == (16, 32)
    assert sparse == every and paid_sparse == paid_every == 1_000
