"""The ingest engine in-process with a real SQLite store: group commit, callbacks only after commit,
restart from the store (chain state, claims), retention. No network, a few seconds."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from agent.detect import PolicyTerms
from agent.frames import DeviceRecord, Incoming
from agent.ingest import EngineConfig, IngestEngine, IngestResult, LedgerSnapshot
from agent.simulator import AnyReading, Fault, Sensor, SimDevice, prebuilt_stream
from agent.store import Store, stored_seqs
from faultproof import chain
from faultproof.errors import Reason
from faultproof.identity import Identity
from faultproof.messages import IssuePolicy
from faultproof.zk.params import TriggerParams
from ledger.state import Policy

NOW = 1_800_000_000_000
HOUR = 3_600_000


def device(seed: int, faults: list[Fault] = ()) -> SimDevice:  # type: ignore[assignment]
    return SimDevice(Identity.from_seed(bytes([seed]) * 32), bytes([seed]) * 31, sensor=Sensor(seed=seed),
                     faults=faults)


def record(d: SimDevice) -> DeviceRecord:
    return DeviceRecord(d.device_id, 0, chain.chain_to_bytes(chain.chain_anchor(d.device_id, 0)), None, d.blinding_key)


def policy(d: SimDevice, params: TriggerParams, n: int = 4) -> PolicyTerms:
    kind, T, K, lo, hi, G = params.as_tuple()
    ip = IssuePolicy(device_id=d.device_id, beneficiary=bytes(32), circuit_id=hashlib.sha256(b"c").digest(),
                     kind=kind, threshold=T, count=K, lo=lo, hi=hi, gap_ms=G, coverage=10, amount=1, premium=0,
                     start_ms=NOW - 10 * HOUR, end_ms=NOW + HOUR, period_ms=HOUR, claim_window_ms=24 * HOUR)
    return PolicyTerms.from_ledger(Policy(hashlib.sha256(d.device_id).digest(), ip, NOW, 1, locked=ip.coverage), n)


def engine(path: Path, devs: list[SimDevice], policies: dict[bytes, PolicyTerms] | None = None,
           **cfg: object) -> tuple[IngestEngine, list]:
    found: list = []
    e = IngestEngine(path, EngineConfig(**cfg), clock=lambda: NOW, on_claims=found.extend)  # type: ignore[arg-type]
    e.start()
    e.set_ledger(LedgerSnapshot({d.device_id: record(d) for d in devs}, policies or {}))
    return e, found


def submit_all(e: IngestEngine, batches: list[list[Incoming]]) -> list[IngestResult]:
    results: list[IngestResult] = []
    done = threading.Event()

    def cb(r: IngestResult) -> None:
        results.append(r)
        if len(results) == len(batches):
            done.set()

    for b in batches:
        e.submit(b, cb)
    assert done.wait(30)
    return results


def test_group_commit_and_acknowledge_after_commit(tmp_path: Path) -> None:
    d = device(1)
    frames = [Incoming.from_message(m) for m in prebuilt_stream(d, 400, start_ts=NOW - 10_000)]
    e, _ = engine(tmp_path / "a.db", [d], commit_delay_ms=50)
    seen_committed: list[int] = []

    def cb(r: IngestResult) -> None:  # runs after the commit: the frames must be readable
        seen_committed.append(len(stored_seqs(tmp_path / "a.db", d.device_id, 0)))

    for i in range(0, 400, 10):
        e.submit(frames[i:i + 10], cb)
    e.stop()
    assert stored_seqs(tmp_path / "a.db", d.device_id, 0) == list(range(400))
    assert len(seen_committed) == 40 and all(k >= (i + 1) * 10 for i, k in enumerate(seen_committed))
    assert e.commits < 40  # many submissions shared a transaction
    assert e.committed_frames == 400


def test_restart_rebuilds_chain_state_and_claims(tmp_path: Path) -> None:
    d = device(2, [Fault.run(20, 4, 9000)])
    frames = [Incoming.from_message(m) for m in prebuilt_stream(d, 60, start_ts=NOW - 100_000, step_ms=100)]
    pol = {d.device_id: policy(d, TriggerParams.run(3000, 3))}
    e, found = engine(tmp_path / "a.db", [d], pol)
    submit_all(e, [frames[:40]])
    e.stop()
    assert [(w.start_seq, w.end_seq) for w in found] == [(18, 22)]

    e2, found2 = engine(tmp_path / "a.db", [d], pol)
    [r] = submit_all(e2, [[frames[10]] + frames[40:]])  # a replay, then the stream goes on
    e2.stop()
    assert r.verdicts[0].reason is Reason.REPLAYED_FRAME
    assert all(v.accepted and v.linked for v in r.verdicts[1:])  # chained on the stored seq 39
    assert found2 == []  # the incident was claimed before the restart: never again
    store = Store(tmp_path / "a.db")
    assert [(c["start_seq"], c["status"]) for c in store.claims()] == [(18, "detected")]
    assert store.counters() == {"accepted": 60, "rejected:replayed_frame": 1}
    store.close()


def test_retention_keeps_open_claim_windows(tmp_path: Path) -> None:
    d = device(3, [Fault.run(5, 3, 9000)])
    old = [Incoming.from_message(m) for m in prebuilt_stream(d, 30, start_ts=NOW - 2 * HOUR, step_ms=1000)]
    pol = {d.device_id: policy(d, TriggerParams.run(3000, 3))}
    e, found = engine(tmp_path / "a.db", [d], pol, retention_ms=HOUR, retention_interval_s=0.0)
    submit_all(e, [old])
    recent = Incoming.from_message(d.make(NOW - 1000))  # seq 30: frame time moves on by two hours
    submit_all(e, [[recent]])  # retention runs with this batch
    e.stop()
    [w] = found
    assert stored_seqs(tmp_path / "a.db", d.device_id, 0) == [*range(w.start_seq, w.end_seq + 1), 30]


def test_retention_counts_from_frame_time_not_the_wall_clock(tmp_path: Path) -> None:
    """Frames two hours behind the agent's clock but within the hour of each other stay: retention
    counts from the newest frame's time (a replayed backlog, a clock jump delete nothing)."""
    d = device(6)
    old = [Incoming.from_message(m) for m in prebuilt_stream(d, 30, start_ts=NOW - 2 * HOUR, step_ms=1000)]
    e, _ = engine(tmp_path / "a.db", [d], retention_ms=HOUR, retention_interval_s=0.0)
    submit_all(e, [old])
    submit_all(e, [[]])
    e.stop()
    assert stored_seqs(tmp_path / "a.db", d.device_id, 0) == list(range(30))
    # After a restart the newest stored frame time is the retention clock again.
    e, _ = engine(tmp_path / "a.db", [d], retention_ms=10_000, retention_interval_s=0.0)
    submit_all(e, [[]])
    e.stop()
    assert stored_seqs(tmp_path / "a.db", d.device_id, 0) == list(range(19, 30))


def test_undecodable_and_unknown_are_counted_not_stored(tmp_path: Path) -> None:
    from agent.frames import Undecodable

    d, stranger = device(4), device(5)
    e, _ = engine(tmp_path / "a.db", [d])
    [r1, r2] = submit_all(e, [Undecodable(Reason.MALFORMED, "x"),
                              [Incoming.from_message(stranger.make(NOW - 1000))]])
    e.stop()
    assert r1.undecodable is not None and r2.verdicts[0].reason is Reason.UNKNOWN_DEVICE
    store = Store(tmp_path / "a.db")
    assert store.counters() == {"undecodable:malformed": 1, "rejected:unknown_device": 1}
    store.close()


async def test_simulator_feeds_an_engine_in_process(tmp_path: Path) -> None:
    """The devnet's in-process path: simulated devices straight into an agent's ingest engine."""
    from agent.simulator import engine_transport, run_fleet

    devs = [device(6), device(7, [Fault.dropout(20, 50)])]
    e, _ = engine(tmp_path / "a.db", devs)
    await run_fleet(devs, engine_transport(e), readings=40, rate_hz=0, batch=10)
    e.stop()
    for d in devs:
        assert stored_seqs(tmp_path / "a.db", d.device_id, 0) == list(range(40))


async def test_a_sender_that_falls_behind_stamps_frames_on_schedule() -> None:
    """A starved simulator (loaded machine) catches up by sending faster, not by stamping frames
    closer together: 1 ms apart after a stall read as an injector (`rate_jump`), and a devnet
    quarantined its group's devices that way."""
    from agent.simulator import CallbackTransport, run_device

    stamps: list[int] = []

    def starved_send(readings: Sequence[AnyReading]) -> None:
        stamps.extend(Incoming.from_message(m).ts for m in readings)
        if len(stamps) == 3:
            time.sleep(0.4)  # the event loop gets no CPU for 8 periods

    await run_device(device(8), CallbackTransport(starved_send), readings=16, rate_hz=20)
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    assert len(stamps) == 16 and all(45 <= g <= 55 for g in gaps), gaps


def test_provisional_frame_alternatives_survive_a_restart_and_the_genuine_reading_wins(tmp_path: Path) -> None:
    """Issue 13 item 6 through the engine and its store: a false copy of seq 6 arrives first, the
    genuine one second (kept as an alternative, durably); after a restart the late seq 5 links
    the genuine reading, which replaces the stored one; nothing of the false copy remains."""
    from agent.store import load_window

    d = device(7)
    frames = [Incoming.from_message(m) for m in prebuilt_stream(d, 10, start_ts=NOW - 10_000, step_ms=10)]
    g = frames[6]
    false = Incoming(g.device_id, g.epoch, g.seq, g.ts, g.chain, g.signature, g.enc_reading + 4321, g.body)
    e, _ = engine(tmp_path / "a.db", [d])
    r = submit_all(e, [frames[:5], [false], [g], frames[7:]])
    e.stop()
    assert [v.accepted for res in r for v in res.verdicts] == [True] * 10
    assert r[2].verdicts[0].alternative

    e, _ = engine(tmp_path / "a.db", [d])
    [late] = submit_all(e, [[frames[5]]])
    [again] = submit_all(e, [[false]])
    e.stop()
    v = late.verdicts[0]
    assert v.accepted and v.relinked == 6 and v.relinked_reading == g.reading
    assert again.verdicts[0].reason is Reason.REPLAYED_FRAME
    rows = load_window(tmp_path / "a.db", d.device_id, 0, 0, 9)
    assert [(r.seq, r.reading, r.linked) for r in rows] == [(f.seq, f.reading, True) for f in frames]
    store = Store(tmp_path / "a.db")
    assert store.conn.execute("SELECT COUNT(*) FROM frame_alts").fetchone()[0] == 0
    store.close()
