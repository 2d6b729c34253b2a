"""The service around the rules: a failed durable write fails its batch and leaves the state as the
disk says; concurrent submissions are group-committed in order; readers never see uncommitted
state; a restart replays to the same state."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from faultproof.errors import FaultproofError, Reason
from faultproof.messages import Deposit
from ledger.service import LedgerService
from tests.ledger.helpers import T0, ManualClock, Scenario, make_ledger, running_ledger


async def test_failed_write_fails_the_batch_and_keeps_state_consistent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = make_ledger(3)
    async with running_ledger(tmp_path, keys) as env:
        await env.ok(keys.sign(Deposit(amount=10)))
        real_append = env.service.store.append

        def broken(*args: object, **kw: object) -> None:
            raise sqlite3.OperationalError("disk I/O error")

        monkeypatch.setattr(env.service.store, "append", broken)
        tx = keys.sign(Deposit(amount=5))
        with pytest.raises(FaultproofError) as info:
            await env.service.submit(tx)
        assert info.value.reason is Reason.UNAVAILABLE
        assert env.state.height == 1 and env.state.free == 10 and env.state.admin_nonce == 1
        monkeypatch.setattr(env.service.store, "append", real_append)
        await env.ok(tx)  # the same nonce is still next: nothing of the failed batch survived
        assert env.state.free == 15


async def test_group_commit_orders_and_batches(tmp_path: Path) -> None:
    keys = make_ledger(3)
    async with running_ledger(tmp_path, keys) as env:
        txs = [keys.sign(Deposit(amount=i + 1)) for i in range(200)]
        results = await env.ok_all(txs)
        assert [r.entry.entry.height for r in results] == list(range(1, 201))
        assert env.service.batches < 20  # 200 transactions, far fewer fsyncs
        views = await asyncio.gather(*(env.service.view() for _ in range(5)))
        assert all(v.height == env.service.committed_height for v in views)


async def test_reads_wait_for_the_commit(tmp_path: Path) -> None:
    keys = make_ledger(3)
    async with running_ledger(tmp_path, keys) as env:
        pending = asyncio.ensure_future(env.service.submit(keys.sign(Deposit(amount=3))))
        for _ in range(50):  # while the batch is in flight, a reader only sees committed heights
            view = await env.service.view()
            assert view.height == env.service.committed_height
            await asyncio.sleep(0)
        await pending


async def test_restart_replays_to_the_same_state(tmp_path: Path) -> None:
    keys = make_ledger(5)
    sc = Scenario.standard(keys)
    async with running_ledger(tmp_path, keys, clock=ManualClock(T0)) as env:
        await env.ok_all(sc.setup_txs)
        env.clock.set(sc.time_after(1))
        await env.ok_all([keys.qc(sc.body(0)), keys.qc(sc.body(1))])
        head, balances = env.state.head_hash, dict(env.state.balances)
    reopened = LedgerService.open(tmp_path / "ledger.db", keys.ledger_key)
    try:
        assert reopened.state.head_hash == head and reopened.state.balances == balances
        assert reopened.state.next_admin_nonce == 5 and len(reopened.state.claims) == 2
    finally:
        reopened.close()
    with pytest.raises(Exception, match="does not match"):
        LedgerService.open(tmp_path / "ledger.db", keys.admin)  # the wrong key file
