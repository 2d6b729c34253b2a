"""The dashboard's view-model and pages from values alone: signed ledger entries built with the
ledger's own rules, oracle JSON as the oracles answer it, and a fixed time. No process, no network."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from dashboard import charts, model
from dashboard.collector import Collector
from dashboard.model import (
    ClaimBook,
    LedgerReplica,
    OracleObservation,
    ReceiptStatus,
    Snapshot,
    parse_verify_latency,
    trigger_words,
)
from dashboard.server import COLLECTOR, make_app
from faultproof.chain import enc
from faultproof.messages import IssuePolicy, Message, SignedEntry, SignedHead, TriggerKind
from ledger.state import LedgerState
from tests.ledger.helpers import HOUR, LedgerKeys, Scenario, claim_for, make_ledger, policy_terms

ORACLE_URLS = [f"http://127.0.0.1:{9000 + i}" for i in range(5)]


def signed_entries(keys: LedgerKeys, txs: Sequence[tuple[Message, int]]) -> list[SignedEntry]:
    """What the ledger would serve: each tx applied by the rules at its time, signed by the ledger key."""
    state = LedgerState.from_genesis_entry(keys.genesis_entry())
    out = [keys.genesis_entry()]
    for tx, now in txs:
        _, entry = state.apply(tx, now)
        assert entry is not None
        out.append(entry.sign(keys.ledger_key))
    return out


@pytest.fixture
def world() -> dict[str, Any]:
    keys = make_ledger(5)  # k = 4
    sc = Scenario.standard(keys, deposit=100_000, coverage=1_000, amount=400, premium=25)
    setup = [(tx, sc.now) for tx in sc.setup_txs]
    qc0 = keys.qc(sc.body(0))  # the first 4 oracles sign
    qc1 = keys.qc(sc.body(1), keys.oracles[1:])  # all but oracle 0: 4 signers too
    entries = signed_entries(keys, [*setup, (qc0, sc.time_after(0)), (qc1, sc.time_after(1))])
    return {"keys": keys, "sc": sc, "entries": entries, "paid": [claim_for(sc.body(0)), claim_for(sc.body(1))]}


def replica_of(entries: list[SignedEntry]) -> LedgerReplica:
    r = LedgerReplica(entries[0])
    r.apply(entries[1:])
    return r


def oracle_obs(i: int, keys: LedgerKeys, *, ready: bool = True, height: int = 6, error: str | None = None) -> OracleObservation:
    oid = keys.oracles[i].public_key.hex()
    if error:  # it answered before: the collector remembers its id
        return OracleObservation(ORACLE_URLS[i], 1, error=error, last_oracle_id=oid)
    return OracleObservation(
        ORACLE_URLS[i], 1, healthz={"ok": ready, "synced": ready, "oracle_id": oid}, healthz_status=200 if ready else 503,
        status={"oracle_id": oid, "synced": ready, "member": True, "ledger": {"height": height},
                "oracle_set": {"epoch": 0}, "claims": {"paid": 2}}, latency_ms=3.0, verify_mean_ms=12.5,
        verify_count=4)


def claim_view(cid: bytes, keys: LedgerKeys, sc: Scenario, status: str, votes: list[tuple[int, str]],
               reason: str | None = None, received_ms: int = 0) -> dict[str, Any]:
    return {"claim_id": cid.hex(), "policy_id": sc.policy_id.hex(), "device_id": sc.device.public_key.hex(),
            "agent_id": "ab" * 32, "start_seq": 0, "end_seq": 16, "status": status, "reason": reason,
            "received_ms": received_ms,
            "votes": [{"oracle_id": keys.oracles[i].public_key.hex(), "vote": v,
                       **({"reason": reason} if v == "reject" else {"amount": sc.terms.amount})} for i, v in votes]}


# --------------------------------------------------------------------------- the ledger replica


def test_replica_puts_every_unit_of_money_where_the_ledger_does(world: dict[str, Any]) -> None:
    r = replica_of(world["entries"])
    snap = Snapshot("http://ledger", [], replica=r)
    pool = model.pool_summary(snap)
    # deposit 100,000; policy locks 1,000 and takes a 25 premium; two payouts of 400 each
    assert pool == {"free": 99_000, "locked": 200, "premiums": 25, "paid": 800, "total": 100_025,
                    "external": -100_025}
    assert pool["free"] + pool["locked"] + pool["premiums"] + pool["paid"] == pool["total"]
    assert [p.paid for p in r.pool][-3:] == [0, 400, 800]
    paid0, paid1 = (r.payouts[c.hex()] for c in world["paid"])
    assert (paid0.paid, paid0.members, paid0.threshold, len(paid0.signers)) == (400, 5, 4, 4)
    assert world["keys"].oracles[0].public_key.hex() not in paid1.signers
    assert r.verified is False  # every row replayed, but no signed head checked yet
    assert r.problem is None and r.height == 6


def test_entries_rows_carry_their_hashes_and_link(world: dict[str, Any]) -> None:
    r = replica_of(world["entries"])
    for prev, row, signed in zip(r.rows[:-1], r.rows[1:], world["entries"][1:], strict=True):
        assert row.prev_hash == prev.entry_hash
        assert row.entry_hash == signed.entry.entry_hash.hex()
    kinds = [row.kind for row in r.rows]
    assert kinds == ["genesis", "deposit", "register_circuit", "enrol_device", "issue_policy", "payout", "payout"]
    page = model.ledger_page(Snapshot("http://l", [], replica=r))
    assert [e.height for e in page["entries"]["rows"]] == [6, 5, 4, 3, 2, 1, 0]  # newest first


def test_a_forged_entry_stops_the_replay_and_says_where(world: dict[str, Any]) -> None:
    entries = list(world["entries"])
    forged = entries[5].entry.sign(world["keys"].admin)  # signed by someone other than the ledger key
    r = replica_of([*entries[:5], forged, *entries[6:]])
    assert r.height == 4 and r.problem is not None and r.problem.height == 5
    snap = Snapshot("http://l", [], replica=r)
    health = snap.health()
    assert not health["ok"] and any("does not verify" in p for p in health["problems"])
    assert model.ledger_page(snap)["verify"]["ok"] is False


def test_signed_head_checked_against_the_replayed_entry(world: dict[str, Any]) -> None:
    keys = world["keys"]
    r = replica_of(world["entries"])
    last = world["entries"][-1].entry
    good = SignedHead.make(keys.ledger_key, keys.ledger_id, last.height, last.entry_hash, last.time_ms)
    r.accept_head(good)
    assert r.verified and r.head_problem is None
    other = SignedHead.make(keys.ledger_key, keys.ledger_id, 3, bytes(32), last.time_ms)
    r.accept_head(other)
    assert not r.verified and "rewritten history" in (r.head_problem or "")
    wrong_key = SignedHead.make(keys.admin, keys.ledger_id, last.height, last.entry_hash, last.time_ms)
    r.accept_head(wrong_key)
    assert not r.verified and "does not verify" in (r.head_problem or "")


# --------------------------------------------------------------------------- claims


def test_claim_status_votes_and_amounts(world: dict[str, Any]) -> None:
    keys, sc = world["keys"], world["sc"]
    r = replica_of(world["entries"])
    snap = Snapshot("http://l", ORACLE_URLS, replica=r)
    pending = claim_for(sc.body(2))
    rejected = claim_for(sc.body(3))
    snap.claims.update(ORACLE_URLS[0], claim_view(pending, keys, sc, "pending", [(0, "approve"), (1, "approve")],
                                                  received_ms=sc.time_after(2)))
    snap.claims.update(ORACLE_URLS[1], claim_view(rejected, keys, sc, "pending", [(1, "reject")],
                                                  reason=None, received_ms=10))
    snap.claims.update(ORACLE_URLS[2], claim_view(rejected, keys, sc, "rejected",
                                                  [(i, "reject") for i in range(4)], reason="window_overlap",
                                                  received_ms=5))
    paid0 = world["paid"][0]
    snap.claims.update(ORACLE_URLS[0], claim_view(paid0, keys, sc, "approved", [(i, "approve") for i in range(5)],
                                                  received_ms=sc.time_after(0) - 1500))
    snap.receipts[paid0.hex()] = ReceiptStatus(True)
    rows = {c.claim_id: c for c in snap.claim_rows()}
    assert set(rows) == {pending.hex(), rejected.hex(), *(c.hex() for c in world["paid"])}

    p = rows[pending.hex()]
    assert (p.status, p.signed_k, p.n, p.k, p.payout) == ("pending", 2, 5, 4, None)

    rj = rows[rejected.hex()]
    assert (rj.status, rj.reason, rj.rejects, rj.received_ms) == ("rejected", "window_overlap", 4, 5)
    assert [v.oracle_label for v in rj.votes] == ["oracle-0", "oracle-1", "oracle-2", "oracle-3"]

    paid = rows[paid0.hex()]
    # the ledger decides "paid", whatever an oracle still says; k of n comes from the QC
    assert (paid.status, paid.signed_k, paid.approvals, paid.n, paid.k) == ("paid", 4, 5, 5, 4)
    assert paid.payout is not None and paid.payout.paid == 400 and paid.claim_to_payout_ms == 1500
    assert paid.receipt == ReceiptStatus(True)

    only_ledger = rows[world["paid"][1].hex()]  # no oracle reported it: the ledger still shows it
    assert (only_ledger.status, only_ledger.signed_k, only_ledger.votes) == ("paid", 4, [])
    assert only_ledger.device_id == sc.device.public_key.hex()

    counts = model.overview_page(snap, sc.now)["claims"]
    assert counts == {"pending": 1, "approved": 0, "rejected": 1, "paid": 2}
    series = model.claims_chart_series(snap)
    assert series["payouts"][-1][1] == 2 and series["claims"][-1][1] == 4


def test_claimbook_reports_changes_only() -> None:
    book = ClaimBook()
    view = {"claim_id": "aa" * 32, "status": "pending", "votes": []}
    assert book.update("u", view) is True
    assert book.update("u", dict(view)) is False
    assert book.update("u", {**view, "status": "paid"}) is True
    assert book.status_of("aa" * 32, "u") == "paid"


# --------------------------------------------------------------------------- oracles and health


def test_oracle_rows_ready_not_ready_unreachable_and_unconfigured(world: dict[str, Any]) -> None:
    keys = world["keys"]
    r = replica_of(world["entries"])
    urls = ORACLE_URLS[:4]  # oracle-4 has no URL configured
    snap = Snapshot("http://l", urls, replica=r)
    snap.oracles = {urls[0]: oracle_obs(0, keys), urls[1]: oracle_obs(1, keys, height=4),
                    urls[2]: oracle_obs(2, keys, ready=False), urls[3]: oracle_obs(3, keys, error="unreachable")}
    rows = model.oracle_rows(snap, 10)
    by_label = {row["label"]: row for row in rows}
    assert [row["state"] for row in rows] == ["ready", "ready", "not ready", "not ready", "no URL configured"]
    assert [row["error"] for row in rows[:4]] == [None, None, "not synced with the ledger", "unreachable"]
    assert by_label["oracle-1"]["behind"] == 2 and by_label["oracle-0"]["behind"] == 0
    assert by_label["oracle-0"]["member"] is True and by_label["oracle-0"]["verify_mean_ms"] == 12.5
    assert rows[3]["label"] == "oracle-3"  # no answer now: the id it gave before names it
    assert by_label["oracle-4"]["url"] is None
    health = snap.health()
    assert (health["ready"], health["configured"], health["k"]) == (2, 4, 4)
    assert not health["ok"] and "only 2 oracles ready, a quorum needs 4" in health["problems"]
    snap.oracles = {u: oracle_obs(i, keys) for i, u in enumerate(urls)}
    assert snap.health()["ok"] is False  # no head read yet
    last = world["entries"][-1].entry
    r.accept_head(SignedHead.make(keys.ledger_key, keys.ledger_id, last.height, last.entry_hash, last.time_ms))
    assert snap.health()["ok"] is True


def test_fingerprint_ignores_latency(world: dict[str, Any]) -> None:
    a, b = oracle_obs(0, world["keys"]), oracle_obs(0, world["keys"])
    b.latency_ms, b.observed_ms = 99.0, 5
    assert model.oracle_fingerprint(a) == model.oracle_fingerprint(b)
    b.healthz_status = 503
    assert model.oracle_fingerprint(a) != model.oracle_fingerprint(b)


def test_parse_verify_latency() -> None:
    text = ("# HELP x\nfaultproof_oracle_verify_seconds_bucket{le=\"0.1\"} 3.0\n"
            "faultproof_oracle_verify_seconds_count 4.0\nfaultproof_oracle_verify_seconds_sum 0.2\n")
    assert parse_verify_latency(text) == (50.0, 4)
    assert parse_verify_latency("faultproof_oracle_verify_seconds_count 0.0\n"
                                "faultproof_oracle_verify_seconds_sum 0.0\n") == (None, 0)
    assert parse_verify_latency("") == (None, 0)


# --------------------------------------------------------------------------- words and numbers


@pytest.mark.parametrize(("kind", "extra", "words"), [
    (TriggerKind.COUNT_ABOVE, {"threshold": enc(80), "count": 3}, "at least 3 of 16 readings above 80"),
    (TriggerKind.RUN_ABOVE, {"threshold": enc(-5), "count": 4}, "4 consecutive readings above -5 (window 16)"),
    (TriggerKind.STUCK, {"threshold": 0, "count": 5}, "stuck: 5 consecutive equal readings (window 16)"),
    (TriggerKind.OUTSIDE_RANGE, {"threshold": 0, "count": 2, "lo": enc(10), "hi": enc(20)},
     "at least 2 of 16 readings outside [10, 20]"),
    (TriggerKind.DROPOUT, {"threshold": 0, "count": 1, "gap_ms": 30_000},
     "dropout: a gap of at least 30.0 s between readings (window 16)"),
])
def test_trigger_in_words(kind: TriggerKind, extra: dict[str, int], words: str) -> None:
    terms: IssuePolicy = policy_terms(b"\x01" * 32, b"\x02" * 32, kind=kind, **extra)
    assert trigger_words(terms, 16) == words


def test_policies_and_devices_pages(world: dict[str, Any]) -> None:
    sc = world["sc"]
    snap = Snapshot("http://l", [], replica=replica_of(world["entries"]))
    [p] = model.policy_rows(snap, sc.now + HOUR)
    assert (p["coverage"], p["left"], p["paid"], p["payouts"], p["status"]) == (1_000, 200, 800, 2, "active")
    assert p["trigger"] == "at least 3 of 16 readings above 80"
    [d] = model.device_rows(snap, sc.now)
    assert d["device_id"] == sc.device.public_key.hex() and d["status"] == "enrolled"
    assert d["last_frame_seq"] == 1016  # the newest paid window ends at seq 1000 + n
    assert d["entries"] == [3, 4, 5, 6]


def test_paginate_and_downsample() -> None:
    t = model.paginate(list(range(250)), 3, size=100)
    assert (t["rows"], t["page"], t["pages"], t["total"]) == (list(range(200, 250)), 3, 3, 250)
    assert model.paginate([], 7)["page"] == 1
    pts = list(range(1000))
    ds = model.downsample(pts, 10)
    assert len(ds) == 10 and ds[0] == 0 and ds[-1] == 999


def test_chart_geometry() -> None:
    assert charts.step_chart({"a": []}).empty
    c = charts.step_chart({"claims": [(1000, 1), (2000, 3)], "payouts": [(1500, 1)]})
    assert not c.empty and [line.last for line in c.lines] == [3, 1]
    assert c.lines[0].dash != c.lines[1].dash  # lines differ without colour
    xs = [float(p.split(",")[0]) for p in c.lines[0].points.split()]
    assert min(xs) == charts.PAD_L and max(xs) == charts.WIDTH - charts.PAD_R
    assert [label for _, label in c.y_labels] == ["0", "1", "3"]
    assert [label for _, label, _ in c.x_labels] == ["00:00:01", "00:00:01", "00:00:02"]
    days = charts.step_chart({"a": [(0, 1), (3 * 86_400_000, 2)]})
    assert [label for _, label, _ in days.x_labels] == ["01-01 00:00", "01-02 12:00", "01-04 00:00"]
    assert charts.compact(1_500) == "1.5k" and charts.compact(10**12) == "1T" and charts.compact(7) == "7"


# --------------------------------------------------------------------------- the pages (in-process)


@pytest.fixture
async def client(world: dict[str, Any]) -> Any:
    keys, sc = world["keys"], world["sc"]
    collector = Collector("http://127.0.0.1:1", ORACLE_URLS[:2], clock=lambda: sc.now + HOUR)
    snap = collector.snapshot
    snap.replica = replica_of(world["entries"])
    snap.oracles = {ORACLE_URLS[0]: oracle_obs(0, keys), ORACLE_URLS[1]: oracle_obs(1, keys, error="unreachable")}
    rejected = claim_for(sc.body(3))
    snap.claims.update(ORACLE_URLS[0], claim_view(rejected, keys, sc, "rejected", [(0, "reject")],
                                                  reason="<b>period_limit</b>"))
    app = make_app(collector, clock=lambda: sc.now + HOUR, run_collector=False)
    async with TestClient(TestServer(app)) as c:
        c.world = {**world, "rejected": rejected}
        yield c


@pytest.mark.asyncio(loop_scope="session")
async def test_every_page_renders(client: Any) -> None:
    w = client.world
    r = w["rejected"].hex()
    paths = ["/", "/pool", "/policies", f"/policies/{w['sc'].policy_id.hex()}", "/claims", f"/claims/{r}",
             "/oracles", "/devices", f"/devices/{w['sc'].device.public_key.hex()}", "/ledger", "/ledger/5"]
    for path in paths:
        resp = await client.get(path)
        text = await resp.text()
        assert resp.status == 200, (path, text[:500])
        assert "<table" in text or "<dl" in text
    text = await (await client.get(f"/claims/{r}")).text()
    assert "&lt;b&gt;period_limit&lt;/b&gt;" in text and "<b>period_limit" not in text  # escaped
    assert model.reason_words("window_overlap") == "The window overlaps a window already paid under this policy."
    assert model.reason_words("<b>period_limit</b>") == "" and model.reason_words(None) == ""
    claims = await (await client.get("/claims")).text()
    for cid in w["paid"]:
        row = re.search(rf'<tr data-claim="{cid.hex()}" data-status="paid">(.*?)</tr>', claims, re.S)
        assert row and "4 of 5" in row.group(1) and ">400<" in row.group(1)
    oracles = await (await client.get("/oracles")).text()
    row = re.search(rf'<tr data-url="{ORACLE_URLS[1]}" data-ready="no">(.*?)</tr>', oracles, re.S)
    assert row and "not ready" in row.group(1) and "unreachable" in row.group(1)


@pytest.mark.asyncio(loop_scope="session")
async def test_partial_is_only_the_live_region(client: Any) -> None:
    full = await (await client.get("/claims")).text()
    part = await (await client.get("/claims?partial=1")).text()
    assert full.startswith("<!doctype html>") and "<html" not in part and "<h1>Claims</h1>" in part


@pytest.mark.asyncio(loop_scope="session")
async def test_bad_requests_get_clear_errors(client: Any) -> None:
    resp = await client.get("/claims/xyz", headers={"Accept": "text/html"})
    assert resp.status == 400 and "64 lowercase hex" in await resp.text()
    resp = await client.get("/claims/" + "ab" * 32, headers={"Accept": "application/json"})
    assert resp.status == 404 and (await resp.json())["error"]["code"] == "not_found"
    resp = await client.get("/claims?bogus=1", headers={"Accept": "application/json"})
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "unknown_field"
    resp = await client.get("/ledger?page=0", headers={"Accept": "application/json"})
    assert resp.status == 400
    resp = await client.post("/claims", data=b"x")
    assert resp.status == 405


@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.parametrize("path", ["/policies", "/devices"])
async def test_listing_pages_render_a_page_and_refuse_a_bad_query(client: Any, path: str) -> None:
    part = await (await client.get(f"{path}?page=1&partial=1")).text()
    assert "<table" in part and "<html" not in part
    for query, code in (("page=0", "bad_request"), ("page=x", "bad_request"), ("bogus=1", "unknown_field")):
        resp = await client.get(f"{path}?{query}", headers={"Accept": "application/json"})
        assert resp.status == 400 and (await resp.json())["error"]["code"] == code, (path, query)


@pytest.mark.asyncio(loop_scope="session")
async def test_events_stream_announces_changes(client: Any) -> None:
    collector: Collector = client.server.app[COLLECTOR]
    resp = await client.get("/events")
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    first = await resp.content.readuntil(b"\n\n")
    assert b"event: update" in first
    await collector.bump()
    second = await asyncio.wait_for(resp.content.readuntil(b"\n\n"), 5)
    assert f'"version": {collector.snapshot.version}'.encode() in second
    resp.close()
