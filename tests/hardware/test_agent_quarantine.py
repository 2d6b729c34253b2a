"""The agent's ingest engine with its anomaly monitor (real SQLite store, in-process): a burst of
forged frames quarantines the device, the quarantine is counted in the store, genuine frames are
still stored, another device is untouched, and the claim manager holds the device's claims."""

from __future__ import annotations

from pathlib import Path

from agent.anomaly import Signal, Thresholds
from agent.frames import Incoming
from agent.simulator import prebuilt_stream
from agent.store import Store
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
    finally:
        store.close()


async def test_claim_manager_holds_a_quarantined_devices_claims(tmp_path: Path) -> None:
    from agent.claims import ClaimManager, ClaimRecord, ClaimStatus
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
        rec = ClaimRecord(b"\x01" * 32, b"\x02" * 32, d.device_id, 0, 1, 5, NOW - 5_000, NOW, 0, b"\x03" * 32,
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
