"""kill -9 of a real `faultproof ledger serve` process in the middle of a burst of payouts from
several clients: after a restart, `ledger verify` passes and every acknowledged payout is present
with the entry it was acknowledged with; requests in flight at the kill failed. Then SIGTERM stops
it within 2 s even while a follower's long poll is open (an operator's restart must not hang).
The same kill in a burst of QC batches (decoded and checked in the ledger's check processes, which
must not outlive it) loses no acknowledged payout either."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import aiohttp

from faultproof.errors import FaultproofError
from faultproof.messages import QcBatch, QuorumCertificate
from faultproof.procs import ManagedProcess, free_port
from ledger.client import LedgerClient
from ledger.service import wall_clock_ms
from ledger.store import LedgerStore
from ledger.verify import replay_store
from tests.ledger.helpers import DAY, SECOND, Scenario, make_ledger, write_ledger

CLIENTS = 8
KILL_AFTER_ACKS = 300


def _prepare(tmp_path: Path) -> tuple[Path, Path, list[QuorumCertificate]]:
    keys = make_ledger(5)
    now = wall_clock_ms()
    start = now - 5 * DAY
    sc = Scenario.standard(keys, deposit=10**12, coverage=10**11, amount=1, premium=0, start_ms=start,
                           end_ms=now + 5 * DAY, period_ms=SECOND, claim_window_ms=30 * DAY)
    # issued when its term starts (a term may not start in the past); the served ledger then runs
    # on the wall clock, days later
    db, key_path = write_ledger(tmp_path, keys, sc.setup_txs, clock=lambda: start)
    port = free_port()
    config = tmp_path / "ledger.toml"
    config.write_text(f'[ledger]\ndb = "{db}"\nledger_key = "{key_path}"\n[server]\nport = {port}\n')
    # One incident per second of the term so far: every QC is a distinct, valid payout.
    qcs = [keys.qc(sc.body(i, window_ms=400)) for i in range(2_000)]
    return config, db, qcs


async def test_kill9_during_a_burst_loses_no_acknowledged_payout(tmp_path: Path) -> None:
    config, db, qcs = await asyncio.to_thread(_prepare, tmp_path)
    url = f"http://127.0.0.1:{config.read_text().split('port = ')[1].strip()}"
    proc = ManagedProcess("ledger", ["-m", "cli", "ledger", "serve", "--config", str(config)],
                          tmp_path / "ledger.log", ready_url=f"{url}/readyz")
    proc.start()
    try:
        await asyncio.to_thread(proc.wait_ready, 60)
        async with LedgerClient(url) as client:
            status = await client.status()
        assert status["durability"]["synchronous"] == "FULL" and status["durability"]["durable"] is True

        acked: dict[bytes, tuple[int, bytes]] = {}
        failed = 0
        enough = asyncio.Event()

        async def burst(mine: list[QuorumCertificate]) -> None:
            nonlocal failed
            async with LedgerClient(url, timeout=10) as c:
                for qc in mine:
                    try:
                        result = await c.submit(qc)
                    except FaultproofError:
                        failed += 1
                        return
                    acked[qc.body.claim_id] = (result.height, result.entry_hash)
                    if len(acked) >= KILL_AFTER_ACKS:
                        enough.set()

        async with asyncio.TaskGroup() as tg:
            for i in range(CLIENTS):
                tg.create_task(burst(qcs[i::CLIENTS]))
            await asyncio.wait_for(enough.wait(), 60)
            proc.kill9()
        assert failed >= 1, "no request was in flight at the kill"
        assert len(acked) >= KILL_AFTER_ACKS

        proc.start()  # restart on the same database: recovery happens on open
        await asyncio.to_thread(proc.wait_ready, 60)
        async with LedgerClient(url) as client:
            for cid in list(acked)[:20]:
                receipt = await client.receipt(cid)
                assert receipt.entry.entry.height == acked[cid][0]
            # SIGTERM while a follower's long poll is open: the ledger does not wait the poll out
            height = int((await client.status())["height"])
            poll = asyncio.create_task(client.entries(after=height, wait=30.0))
            await asyncio.sleep(0.3)
            started = time.monotonic()
            code = await asyncio.to_thread(proc.stop)
            stopped_in = time.monotonic() - started
            poll.cancel()
        assert code == 0 and stopped_in < 2.0, f"SIGTERM took {stopped_in:.1f} s (exit {code})"
    finally:
        proc.kill9()
    store = LedgerStore(db, readonly=True)
    try:
        result = replay_store(store)
        assert result.ok, f"{result.problem}\n{proc.tail()}"
        assert result.state is not None
        for cid, (height, entry_hash) in acked.items():
            paid = result.state.paid_claim(cid)
            assert paid is not None and paid.height == height, "an acknowledged payout is missing"
            row = store.row(height)
            assert row is not None and row.entry_hash == entry_hash
    finally:
        store.close()
    print(f"acknowledged {len(acked)}, failed in flight {failed}, height after restart {result.state.height}")
    heights = {h for h, _ in acked.values()}
    assert len(heights) == len(acked)


def _children(pid: int) -> set[int]:
    return {int(c) for f in Path(f"/proc/{pid}/task").glob("*/children") for c in f.read_text().split()}


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie nobody reaps has exited


async def test_kill9_during_a_burst_of_batches_loses_nothing_and_leaves_no_check_process(tmp_path: Path) -> None:
    config, db, qcs = await asyncio.to_thread(_prepare, tmp_path)
    url = f"http://127.0.0.1:{config.read_text().split('port = ')[1].strip()}"
    proc = ManagedProcess("ledger", ["-m", "cli", "ledger", "serve", "--config", str(config)],
                          tmp_path / "ledger.log", ready_url=f"{url}/readyz")
    batches = [QcBatch(qcs=tuple(qcs[i : i + 16])) for i in range(0, len(qcs), 16)]
    acked: dict[bytes, int] = {}
    failed = 0
    enough = asyncio.Event()
    proc.start()
    try:
        await asyncio.to_thread(proc.wait_ready, 60)
        assert proc.pid is not None

        async def burst(mine: list[QcBatch]) -> None:
            nonlocal failed
            async with aiohttp.ClientSession() as http:
                for batch in mine:
                    try:
                        async with http.post(f"{url}/v1/tx/batch", data=batch.encode(),
                                             headers={"Content-Type": "application/msgpack"}) as r:
                            results = json.loads(await r.read())["results"]
                    except aiohttp.ClientError:
                        failed += 1
                        return
                    for qc, result in zip(batch.qcs, results, strict=True):
                        acked[qc.body.claim_id] = result["height"]
                    if len(acked) >= KILL_AFTER_ACKS:
                        enough.set()

        async with asyncio.TaskGroup() as tg:
            for i in range(4):
                tg.create_task(burst(batches[i::4]))
            await asyncio.wait_for(enough.wait(), 60)
            checkers = _children(proc.pid)  # spawned by the first batch
            assert len(checkers) >= len(os.sched_getaffinity(0)), checkers  # one per core (+ spawn's tracker)
            # the ledger process alone (an OOM kill), not its group: its check processes are left to notice
            os.kill(proc.pid, signal.SIGKILL)
            await asyncio.to_thread(proc.proc.wait, 10)  # type: ignore[union-attr]
        assert failed >= 1, "no request was in flight at the kill"
        deadline = time.monotonic() + 5
        while any(_running(p) for p in checkers) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert not any(_running(p) for p in checkers), "a check process outlived the ledger"

        proc.start()  # restart on the same database: recovery happens on open
        await asyncio.to_thread(proc.wait_ready, 60)
        async with LedgerClient(url) as client:
            for cid in list(acked)[:5]:
                assert (await client.receipt(cid)).entry.entry.height == acked[cid]
    finally:
        proc.kill9()
    store = LedgerStore(db, readonly=True)
    try:
        result = replay_store(store)
        assert result.ok and result.state is not None, f"{result.problem}\n{proc.tail()}"
        for cid, height in acked.items():
            paid = result.state.paid_claim(cid)
            assert paid is not None and paid.height == height, "an acknowledged payout is missing"
    finally:
        store.close()
