"""`faultproof ledger verify` and replay: a clean ledger verifies; a corrupted cached balance, a
corrupted signature (bytes flipped in the database file) and two swapped entries are each named by
height; an oracle replaying the signed entries ends in the same state as the ledger."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from faultproof.messages import Deposit, EnrolAgent, ExpirePolicy, RotateOracles, SignedEntry
from ledger import verify as verify_module
from ledger.cli import ledger
from ledger.service import LedgerService
from ledger.state import LedgerState
from ledger.store import TRIGGERS, LedgerStore, StoreError
from ledger.verify import replay_store
from tests.ledger.helpers import (
    T0,
    LedgerKeys,
    ManualClock,
    Scenario,
    anchor,
    head_of,
    identity,
    make_ledger,
    running_ledger,
)


def _build(directory: Path) -> tuple[LedgerKeys, Path, dict[str, object]]:
    keys = make_ledger(5)
    sc = Scenario.standard(keys, coverage=5_000, amount=100)

    async def go() -> dict[str, object]:
        async with running_ledger(directory, keys, clock=ManualClock(T0)) as env:
            await env.ok_all(sc.setup_txs)
            await env.ok(keys.sign(EnrolAgent(agent_id=identity("agent").public_key)))
            env.clock.set(sc.time_after(5))
            await env.ok_all([keys.qc(sc.body(i)) for i in range(5)])
            new_set = [identity(f"n{i}") for i in range(3)]
            await env.ok(keys.sign(RotateOracles(members=tuple(o.public_key for o in new_set), threshold=2)))
            env.clock.set(sc.time_after(6))
            await env.ok(keys.qc(sc.body(6, oracle_set_epoch=1), new_set[:2]))
            env.clock.set(sc.terms.end_ms + sc.terms.claim_window_ms + 1)
            await env.ok(ExpirePolicy(policy_id=sc.policy_id))
            await env.ok(anchor(keys, identity("agent"), 1, [head_of(sc.body(7))]))  # replayed like the rest
            await env.ok(keys.sign(Deposit(amount=3)))
            return {"height": env.service.committed_height, "head": env.state.head_hash,
                    "balances": dict(env.state.balances), "free_touch": env.service.committed_height}

    facts = asyncio.run(go())
    return keys, directory / "ledger.db", facts


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[LedgerKeys, Path, dict[str, object]]:
    return _build(tmp_path_factory.mktemp("built"))


def _copy(built: tuple[LedgerKeys, Path, dict[str, object]], tmp_path: Path) -> Path:
    db = tmp_path / "ledger.db"
    shutil.copy(built[1], db)
    return db


def _verify(db: Path) -> tuple[int, dict[str, object]]:
    result = CliRunner().invoke(ledger, ["verify", "--db", str(db), "--json"])
    return result.exit_code, json.loads(result.output.strip().splitlines()[-1])


def test_clean_ledger_verifies(built: tuple[LedgerKeys, Path, dict[str, object]], tmp_path: Path) -> None:
    db = _copy(built, tmp_path)
    code, report = _verify(db)
    assert code == 0 and report["ok"] and report["height"] == built[2]["height"]
    assert report["head_hash"] == built[2]["head"].hex()  # type: ignore[union-attr]
    text = CliRunner().invoke(ledger, ["verify", "--db", str(db)])
    assert text.exit_code == 0 and text.output.startswith("OK:")


def test_corrupted_cached_balance_is_named(built: tuple[LedgerKeys, Path, dict[str, object]], tmp_path: Path) -> None:
    db = _copy(built, tmp_path)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE balances SET balance = balance + 1 WHERE account = 'free'")
    code, report = _verify(db)
    assert code == 1 and report["bad_height"] == built[2]["free_touch"]
    assert "cached balance of 'free'" in str(report["problem"])
    with pytest.raises(StoreError):  # and the service refuses to serve it
        LedgerService.open(db, built[0].ledger_key)


def test_corrupted_signature_in_the_file_is_named(built: tuple[LedgerKeys, Path, dict[str, object]], tmp_path: Path) -> None:
    db = _copy(built, tmp_path)
    store = LedgerStore(db, readonly=True)
    row = store.row(7)
    store.close()
    assert row is not None
    raw = bytearray(db.read_bytes())
    at = raw.find(row.signature)
    assert at > 0 and raw.find(row.signature, at + 1) == -1
    raw[at + 10] ^= 0x01
    db.write_bytes(bytes(raw))
    code, report = _verify(db)
    assert code == 1 and report["bad_height"] == 7 and "signature" in str(report["problem"])


def test_swapped_entries_are_named(built: tuple[LedgerKeys, Path, dict[str, object]], tmp_path: Path) -> None:
    db = _copy(built, tmp_path)
    with sqlite3.connect(db) as conn:
        for name in TRIGGERS:
            conn.execute(f"DROP TRIGGER {name}")
        a = conn.execute("SELECT entry, signature, entry_hash FROM entries WHERE height = 5").fetchone()
        b = conn.execute("SELECT entry, signature, entry_hash FROM entries WHERE height = 6").fetchone()
        conn.execute("UPDATE entries SET entry = ?, signature = ?, entry_hash = ? WHERE height = 5", b)
        conn.execute("UPDATE entries SET entry = ?, signature = ?, entry_hash = ? WHERE height = 6", a)
        for sql in TRIGGERS.values():
            conn.execute(sql)
    code, report = _verify(db)
    assert code == 1 and report["bad_height"] == 5 and "order" in str(report["problem"])


def test_append_only_triggers_refuse_rewrites(built: tuple[LedgerKeys, Path, dict[str, object]], tmp_path: Path) -> None:
    db = _copy(built, tmp_path)
    with sqlite3.connect(db) as conn:
        for sql in ("UPDATE entries SET signature = zeroblob(64) WHERE height = 3", "DELETE FROM entries WHERE height = 9",
                    "INSERT INTO entries (height, entry, signature, entry_hash) VALUES (1000, x'00', x'00', x'00')"):
            with pytest.raises(sqlite3.DatabaseError, match="append"):
                conn.execute(sql)
    assert _verify(db)[0] == 0


def test_oracle_replay_reaches_the_same_state(built: tuple[LedgerKeys, Path, dict[str, object]]) -> None:
    keys, db, facts = built
    store = LedgerStore(db, readonly=True)
    rows = store.rows()
    store.close()
    signed = [SignedEntry.decode(r.signed_bytes) for r in rows]
    view = LedgerState.from_genesis_entry(signed[0])
    for s in signed[1:]:
        view.apply_entry(s)
    assert view.head_hash == facts["head"] and view.balances == facts["balances"]
    assert view.oracle_set.epoch == 1 and len(view.claims) == 6
    assert len(next(iter(view.device_history.values())).heads) == 1  # the anchor
    assert sum(view.balances.values()) == 0


def test_threaded_and_inline_verify_agree(built: tuple[LedgerKeys, Path, dict[str, object]], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify_module, "CHUNK", 4)
    store = LedgerStore(built[1], readonly=True)
    try:
        threaded = replay_store(store, workers=2)
        inline = replay_store(store, workers=0)
    finally:
        store.close()
    for result in (threaded, inline):
        assert result.ok and result.state is not None and result.state.head_hash == built[2]["head"]
