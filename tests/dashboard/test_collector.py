"""The collector against a real ledger service (in-process, real HTTP API and SQLite): it follows
the entries, checks the signed head and every receipt, wakes the pages on each change, and reports
services that do not answer instead of failing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from dashboard.collector import Collector
from faultproof.procs import free_port
from tests.ledger.helpers import Scenario, claim_for, make_ledger, serve_ledger


async def until(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


@pytest.mark.asyncio(loop_scope="session")
async def test_follows_the_ledger_checks_head_and_receipts(tmp_path: Path) -> None:
    keys = make_ledger(5)
    sc = Scenario.standard(keys, deposit=100_000, coverage=1_000, amount=400)
    async with serve_ledger(tmp_path, keys) as (env, url):
        env.clock.set(sc.now)
        await env.ok_all(sc.setup_txs)
        collector = Collector(url, [], clock=env.clock, poll_s=0.05, wait_s=0.5)
        await collector.start()
        try:
            snap = collector.snapshot
            await until(lambda: snap.replica is not None and snap.replica.height == 4 and snap.replica.head)
            assert snap.health()["ok"] and snap.health()["verified"]
            seen = snap.version

            # a payout arrives while the collector long-polls: the pages are woken, receipt checked
            env.clock.set(sc.time_after(0))
            await env.ok(keys.qc(sc.body(0)))
            cid = claim_for(sc.body(0)).hex()
            assert await collector.wait_change(seen, 5.0) != seen
            await until(lambda: cid in snap.receipts)
            assert snap.receipts[cid].ok
            await until(lambda: snap.replica is not None and snap.replica.head is not None
                        and snap.replica.head.height == 5)
            row = snap.claim_row(cid)
            assert row is not None and (row.status, row.signed_k, row.payout and row.payout.paid) == ("paid", 4, 400)
        finally:
            await collector.stop()


@pytest.mark.asyncio(loop_scope="session")
async def test_services_that_do_not_answer_are_reported(tmp_path: Path) -> None:
    oracle = f"http://127.0.0.1:{free_port()}"
    collector = Collector(f"http://127.0.0.1:{free_port()}", [oracle], clock=lambda: 1, poll_s=0.05, wait_s=0.5)
    await collector.start()
    try:
        snap = collector.snapshot
        await until(lambda: snap.ledger_error is not None and oracle in snap.oracles)
        health = snap.health()
        assert not health["ok"] and health["not_ready"] == [oracle]
        assert "unreachable" in (snap.ledger_error or "") and snap.oracles[oracle].error
    finally:
        await collector.stop()
