"""The agent's ingest engine with its anomaly monitor (real SQLite store, in-process): a burst of
forged frames quarantines the device, the quarantine is counted and kept in the store (a restart
ends none), genuine frames are still stored, another device is untouched, and the claim manager
holds the device's claims."""

from __future__ import annotations

from pathlib import Path

from agent.anomaly import Signal, Thresholds
from agent.frames import Incoming
from agent.simulator import prebuilt_stream
from agent.store import Store, pending_suspension_reports
from tests.agent.test_ingest import NOW, device, engine, submit_all


def test_forged_burst_quarantines_in_the_engine(tmp_path: Path) -> None:
    d, other = device(3), device(4)
    e, _ = engine(tmp_path / "q.db", [d, other])
    try:
        good = [Incoming.from_message(m) for m in prebuilt_stream(d, 30, start_ts=NOW - 60_000)]
        forged = [Incoming.from_message(m) for m in prebuilt_stream(d, 60, start_ts=NOW - 30_000)][30:]
        for f in forged:
            f.signature = bytes(64)
        fine = [Incoming.from_message(m) for m in prebuilt_stream(other, 10, start_ts=NOW - 60_000)]
        results = submit_all(e, [good, forged, fine])
        assert results[0].accepted == 30 and results[1].accepted == 0 and results[2].accepted == 10
        q = e.anomaly.quarantined(d.device_id)
        assert q is not None and q.signal is Signal.BAD_SIGNATURE and q.count == Thresholds().limit(Signal.BAD_SIGNATURE)
        assert e.anomaly.quarantined(other.device_id) is None
    finally:
        e.stop()
    store = Store(tmp_path / "q.db")
    try:
        assert store.counters().get("quarantined:bad_signature") == 1
        assert store.counters().get("suspension_report") == 1
    finally:
        store.close()
    # The report the agent owes its oracles was committed with the batch that quarantined the
    # device (a kill -9 after the commit cannot lose it): the forged frames, distinct, and the
    # quarantine's time; none of the other device's.
    [report] = pending_suspension_reports(tmp_path / "q.db")
    assert report.device_id == d.device_id and report.since_ms == q.since_ms and report.attempts == 0
    assert sorted(report.frames) == sorted(f.signed_frame().encode() for f in forged)


def test_a_quarantine_outlives_a_restart_until_the_ledger_reinstates_the_device(tmp_path: Path) -> None:
    """Nothing lost: the quarantine is committed with the batch that began it (so a kill -9 after
    that commit cannot end it either), and a restarted engine holds the device's claims again with
    no new forgery; the ledger's lift ends it, for good."""
    import threading

    d = device(8)
    db = tmp_path / "r.db"
    e, _ = engine(db, [d])
    try:
        forged = [Incoming.from_message(m) for m in prebuilt_stream(d, 60, start_ts=NOW - 30_000)][30:]
        for f in forged:
            f.signature = bytes(64)
        assert submit_all(e, [forged])[0].accepted == 0
        q = e.anomaly.quarantined(d.device_id)
        assert q is not None and q.signal is Signal.BAD_SIGNATURE
    finally:
        e.stop()
    e, _ = engine(db, [d])  # the store alone remembers: nothing forged reaches this engine
    try:
        assert e.anomaly.quarantines() == [q]
        e.reinstated({d.device_id: q.since_ms})
        released = threading.Event()
        e.run_op(lambda store: None, lambda value, exc: released.set())  # after the lift's op
        assert released.wait(30) and e.anomaly.quarantined(d.device_id) is None
    finally:
        e.stop()
    e, _ = engine(db, [d])
    try:
        assert e.anomaly.quarantines() == []
    finally:
        e.stop()


async def test_claim_manager_holds_a_quarantined_devices_claims(tmp_path: Path) -> None:
    from agent.claims import ClaimManager, ClaimRecord, ClaimStatus
    from agent.detect import Window
    from agent.metrics import AgentMetrics
    from faultproof.errors import Reason
    from faultproof.identity import Identity

    d = device(5)
    e, _ = engine(tmp_path / "h.db", [d])
    try:
        # No sender and no prover: a held claim must not reach either.
        mgr = ClaimManager(engine=e, store_path=tmp_path / "h.db", agent=Identity.generate(), prover=None,  # type: ignore[arg-type]
                           circuits={}, blinding_keys={}, policy_params=lambda p: None,
                           paid_amount=lambda c: None, sender=None, metrics=AgentMetrics())  # type: ignore[arg-type]
        rec = ClaimRecord(b"\x01" * 32, Window(b"\x02" * 32, d.device_id, 0, 1, 5, NOW - 5_000, NOW, 0, b"\x03" * 32),
                          ClaimStatus.PROVED, NOW, signed=b"signed claim bytes")
        assert not mgr.held(d.device_id)
        assert e.anomaly.refused(d.device_id, Reason.ATTESTATION_FAILED, NOW) is not None
        assert mgr.held(d.device_id)
        await mgr._follow(rec)  # returns without sending: the claim is held
        assert rec.status is ClaimStatus.PROVED and rec.attempts == 0
        e.anomaly.release(d.device_id)
        assert not mgr.held(d.device_id)
    finally:
        e.stop()


def test_a_failed_attestation_on_the_ledger_quarantines(tmp_path: Path) -> None:
    from agent.ingest import LedgerSnapshot
    from tests.agent.test_ingest import record

    d, other = device(6), device(7)
    e, _ = engine(tmp_path / "a.db", [d, other])
    try:
        e.set_ledger(LedgerSnapshot({x.device_id: record(x) for x in (d, other)}, {}, 5, frozenset({d.device_id})))
        frames = [Incoming.from_message(m) for m in prebuilt_stream(d, 5, start_ts=NOW - 10_000)]
        assert submit_all(e, [frames])[0].accepted == 5  # frames still checked and kept
        q = e.anomaly.quarantined(d.device_id)
        assert q is not None and q.signal is Signal.ATTESTATION_FAILED
        assert e.anomaly.quarantined(other.device_id) is None
    finally:
        e.stop()


def test_forgery_evidence_reports_once_with_enough_distinct_frames() -> None:
    """The pure rule: a report is due for a device quarantined for bad signatures once 20 distinct
    forged frames are kept (the oracles' minimum), at most 64, once per quarantine."""
    from agent.anomaly import ForgeryEvidence, Quarantine

    ev = ForgeryEvidence()
    dev = b"\x07" * 32
    q = Quarantine(dev, NOW, Signal.BAD_SIGNATURE, 20, bytes(32))
    for i in range(19):
        ev.forged(dev, bytes([i]))
        ev.forged(dev, bytes([i]))  # a repeat counts once
    assert ev.due(q) is None  # 19 distinct: an oracle would refuse it
    assert ev.due(Quarantine(dev, NOW, Signal.REPLAY, 50, bytes(32))) is None  # not a forgery case
    for i in range(19, 100):
        ev.forged(dev, bytes([i]))
    report = ev.due(q)
    assert report is not None and report.since_ms == NOW and len(report.frames) == 64
    assert report.frames == tuple(bytes([i]) for i in range(64))
    assert ev.due(q) is None  # once
    ev.forget(dev)
    for i in range(20):
        ev.forged(dev, bytes([i]))
    assert ev.due(Quarantine(dev, NOW + 1, Signal.BAD_SIGNATURE, 20, bytes(32))) is not None  # a new case


def test_the_operator_releases_a_quarantine_the_ledger_never_lifts(tmp_path: Path) -> None:
    """A quarantine outlives restarts, so one no ledger lift ends (replays, rate jumps, refused
    logins) needs the operator: `faultproof agent release DEVICE_ID` deletes it from the store
    (counted), and the next engine holds nothing; a device not quarantined, or a bad id, is one
    line and exit 2, and changes nothing."""
    from click.testing import CliRunner

    from agent.anomaly import Quarantine
    from cli import main

    d, other = device(9), device(10)
    config = tmp_path / "agent.toml"
    config.write_text('[agent]\nkey_file = "a.key"\ndata_dir = "data"\nblinding_keys_dir = "dev"\n'
                      'ledger_url = "http://127.0.0.1:9"\n')
    db = tmp_path / "data" / "agent.sqlite3"
    runner = CliRunner()
    missing = runner.invoke(main, ["agent", "release", d.device_id.hex(), "--config", str(config)])
    assert missing.exit_code == 2 and "no agent store" in missing.output and "Traceback" not in missing.output
    store = Store(db)
    q = Quarantine(d.device_id, NOW, Signal.RATE_JUMP, 3, bytes(32))
    store.save_quarantines([q, Quarantine(other.device_id, NOW, Signal.REPLAY, 50, bytes(32))])
    store.close()
    for arg, words in ((d.device_id.hex()[:10], "not a device id"), (device(11).device_id.hex(), "is not quarantined")):
        bad = runner.invoke(main, ["agent", "release", arg, "--config", str(config)])
        assert bad.exit_code == 2 and words in bad.output and "Traceback" not in bad.output, bad.output
    ok = runner.invoke(main, ["agent", "release", d.device_id.hex(), "--config", str(config)])
    assert ok.exit_code == 0 and f"released device {d.device_id.hex()}" in ok.output and "rate_jump" in ok.output
    e, _ = engine(db, [d, other])
    try:
        assert [x.device_id for x in e.anomaly.quarantines()] == [other.device_id]
    finally:
        e.stop()
    store = Store(db)
    try:
        assert store.counters().get("released:rate_jump") == 1
    finally:
        store.close()
