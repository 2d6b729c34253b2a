"""The claim follow-up policy (agent/core.py) and the claim manager acting on it (agent/claims.py),
issue 13 item 5: one oracle's `rejected` is not final; n-k+1 are; a payout is always recorded.

The manager runs with a real ingest engine and SQLite store; the oracles' answers come from
`FakeOracleAnswers` (a stand-in for the HTTP/gossip client, named as such) so each answer is
chosen by the test. The real agent against real oracles is tests/agent/test_agent_net.py."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from agent.claims import ClaimManager, ClaimRecord, ManagerConfig
from agent.core import ClaimEvent, ClaimStatus, follow_up, rejection_quorum
from agent.ingest import IngestEngine
from agent.metrics import AgentMetrics
from agent.store import Store
from faultproof.identity import Identity

NOW = 1_800_000_000_000
CID = bytes([7]) * 32


def test_one_oracle_reject_is_not_final() -> None:
    """Item 5 (pure): with n=5, k=4, fewer than n-k+1 = 2 rejecting oracles decide nothing."""
    q = rejection_quorum(5, 4)
    assert q == 2
    assert follow_up(ClaimStatus.SUBMITTED, paid=None, rejecters={"o1"}, quorum=q, oracle_status="rejected") is None
    assert follow_up(ClaimStatus.SUBMITTED, paid=None, rejecters={"o1", "o2"}, quorum=q) is ClaimEvent.REJECTED
    assert follow_up(ClaimStatus.SUBMITTED, paid=None, rejecters=(), quorum=q,
                     ledger_rejection="claim_window_closed") is ClaimEvent.REJECTED
    # A payout on the ledger is recorded whatever the agent concluded before.
    assert follow_up(ClaimStatus.REJECTED, paid=10, rejecters={"o1", "o2"}, quorum=q) is ClaimEvent.PAID
    assert follow_up(ClaimStatus.PAID, paid=10, rejecters=(), quorum=q) is None
    # The quorum: n-k+1, never below the operator's floor, never above n.
    assert [rejection_quorum(n, k) for n, k in ((1, 1), (3, 2), (7, 5), (4, 4))] == [1, 2, 3, 1]
    assert rejection_quorum(4, 4, floor=2) == 2 and rejection_quorum(3, 3, floor=9) == 3


class FakeOracleAnswers:
    """Stands in for `agent.claims.ClaimSender`: answers `oracle_view` from a script of
    (oracle url, status) pairs, one per call; publishing and posting always succeed."""

    def __init__(self, answers: list[tuple[str, str]]) -> None:
        self.answers = answers

    async def oracle_view(self, claim_id: bytes) -> tuple[str, dict[str, Any] | None] | None:
        if not self.answers:
            return None
        url, status = self.answers.pop(0)
        return url, {"status": status, "reasons": ["bad_proof"] if status == "rejected" else []}

    async def publish(self, data: bytes) -> bool:
        return True

    async def post(self, data: bytes) -> tuple[str, int, dict[str, Any]] | None:
        return "http://o1", 202, {}


def _row() -> dict[str, Any]:
    return {"claim_id": CID, "policy_id": bytes(32), "device_id": bytes([1]) * 32, "epoch": 0, "start_seq": 0,
            "end_seq": 4, "start_ts": NOW - 5000, "end_ts": NOW - 1000, "period": 0, "circuit_id": bytes(32),
            "status": "submitted", "signed": b"signed-claim-bytes", "detected_ms": NOW - 900}


async def _manager(path: Path, answers: list[tuple[str, str]], paid: dict[bytes, int]) -> tuple[ClaimManager, IngestEngine]:
    store = Store(path)
    store.begin()
    store.insert_claim(_row())
    store.commit()
    store.close()
    engine = IngestEngine(path, clock=lambda: NOW)
    await asyncio.to_thread(engine.start)
    m = ClaimManager(engine=engine, store_path=path, agent=Identity.from_seed(bytes(32)), prover=None,  # type: ignore[arg-type]
                     circuits={}, blinding_keys={}, policy_params=lambda pid: None,
                     paid_amount=paid.get, sender=FakeOracleAnswers(answers), metrics=AgentMetrics(),  # type: ignore[arg-type]
                     config=ManagerConfig(backoff_initial_s=0.0, backoff_max_s=0.0), clock=lambda: NOW,
                     oracle_set=lambda: (5, 4))
    m.load(await engine.run_op_async(lambda s: s.claims()))
    return m, engine


def _stored_status(path: Path) -> str:
    s = Store(path)
    try:
        return str(s.claims()[0]["status"])
    finally:
        s.close()


async def test_one_oracle_reject_is_not_final_in_the_manager(tmp_path: Path) -> None:
    """Item 5: one oracle says rejected (twice), another approved: still submitted; a second
    oracle's rejection makes it rejected; a payout seen afterwards is recorded as paid."""
    path = tmp_path / "a.db"
    paid: dict[bytes, int] = {}
    m, engine = await _manager(path, [("http://o1", "rejected"), ("http://o1", "rejected"),
                                      ("http://o2", "pending")], paid)
    try:
        rec: ClaimRecord = m.records[CID]
        for _ in range(3):
            await m._follow(rec)  # noqa: SLF001 - one follow-up step at a time
        assert rec.status is ClaimStatus.SUBMITTED and set(rec.rejected_by) == {"http://o1"}
        assert _stored_status(path) == "submitted"

        m.sender = FakeOracleAnswers([("http://o3", "rejected")])  # type: ignore[assignment]
        await m._follow(rec)  # noqa: SLF001
        assert rec.status is ClaimStatus.REJECTED and _stored_status(path) == "rejected"

        paid[CID] = 1234  # the ledger's replica now holds the payout
        await m._follow(rec)  # noqa: SLF001
        assert rec.status is ClaimStatus.PAID and rec.paid == 1234
        assert _stored_status(path) == "paid"
    finally:
        await asyncio.to_thread(engine.stop)


def test_the_ledger_rejects_only_on_facts_that_cannot_change_back() -> None:
    from agent.core import ledger_rejection

    base = {"end_ts": NOW, "claim_window_ms": 1000, "period_paid": False, "overlaps_paid": False}
    assert ledger_rejection(ledger_time_ms=NOW + 1000, **base) is None  # still inside the claim window
    assert ledger_rejection(ledger_time_ms=NOW + 1001, **base) == "claim_window_closed"
    assert ledger_rejection(ledger_time_ms=NOW, **{**base, "period_paid": True}) == "period_limit"
    assert ledger_rejection(ledger_time_ms=NOW, **{**base, "overlaps_paid": True}) == "window_overlap"
    # DESIGN §15 H11: a decommissioned device's claim is final, whatever else holds
    assert ledger_rejection(ledger_time_ms=NOW, **{**base, "decommissioned": True}) == "device_decommissioned"


def test_which_oracle_refusals_count_as_rejections() -> None:
    from agent.core import backoff_s, content_refusal
    from faultproof.errors import Reason

    assert content_refusal("bad_proof") is Reason.BAD_PROOF  # content: that oracle's rejection
    assert content_refusal("malformed") is Reason.MALFORMED  # decode: the bytes are wrong
    for code in ("rate_limited", "unavailable", "duplicate", "already_exists", "claim_window_closed",
                 "no_such_code", None, 7):
        assert content_refusal(code) is None, code  # says nothing about the claim's content
    assert [backoff_s(a, 1.0, 30.0) for a in (0, 1, 4, 5, 99)] == [1.0, 2.0, 16.0, 30.0, 30.0]


async def test_a_stored_claim_reads_back_and_serves_the_same_json(tmp_path: Path) -> None:
    """A claims-table row in memory and back out: the window the detector found is the one stored,
    loaded and served (GET /v1/claims keys and values, in this order)."""
    from agent.detect import Window
    from agent.ingest import _claim_row

    w = Window(policy_id=bytes(32), device_id=bytes([1]) * 32, epoch=0, start_seq=0, end_seq=4,
               start_ts=NOW - 5000, end_ts=NOW - 1000, period=0, circuit_id=bytes(32))
    assert _claim_row(w, NOW - 900) == {k: v for k, v in _row().items() if k != "signed"} | {
        "claim_id": w.claim_id, "status": "detected"}
    m, engine = await _manager(tmp_path / "a.db", [], {})
    try:
        rec = m.records[CID]
        assert ClaimRecord.from_row(_row()) == rec
        assert list(rec.to_json().items()) == [
            ("claim_id", CID.hex()), ("policy_id", bytes(32).hex()), ("device_id", (bytes([1]) * 32).hex()),
            ("epoch", 0), ("start_seq", 0), ("end_seq", 4), ("start_ts", NOW - 5000), ("end_ts", NOW - 1000),
            ("period", 0), ("circuit_id", bytes(32).hex()), ("status", "submitted"), ("reason", None),
            ("detected_ms", NOW - 900), ("proved_ms", None), ("prove_seconds", None), ("submitted_ms", None),
            ("decided_ms", None), ("attempts", 0), ("paid", None)]
        fresh = ClaimRecord.from_window(w, NOW - 900)  # as the detector hands it over: the same window
        assert fresh.to_json() == rec.to_json() | {"claim_id": w.claim_id.hex(), "status": "detected"}
    finally:
        await asyncio.to_thread(engine.stop)
