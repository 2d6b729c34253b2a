"""Ledger speed: durable payouts through the real HTTP service, and `ledger verify`.

ledger_payout_tx_per_s: a `faultproof ledger serve` process (SQLite WAL, synchronous=FULL, group
commit) takes QuorumCertificates (n = 5 oracles, k = 4 signatures each, the DESIGN default) in
QcBatches of BATCH QCs on POST /v1/tx/batch from BATCH_CLIENTS concurrent HTTP clients; every
acknowledged payout is fsynced. Baseline: the same server, in the same run, taking one QC per
request on POST /v1/tx from CLIENTS concurrent clients (ledger_payout_single_tx_per_s).
ledger_payout_single_tx_per_s: that one-QC-per-request run; its baseline is the same server with
max_batch = 1, i.e. one fsync per transaction.
ledger_verify_entries_per_s: `replay_store` (what `faultproof ledger verify` runs) over the ledger
the payout run produced: every entry's hash, link and ledger signature, and every QC's 4 oracle
signatures, replayed through the rules, balances compared; signature checks in one thread per core
ahead of the replay. Baseline: every signature checked in-line by the replaying thread.
ledger_payout_server_cpu_us: CPU (all threads, and the check processes that decode batches and
verify their signatures) the server spent per durable payout with batches; baseline: one QC per
request.

    python -m benchmarks.bench_ledger        # prints JSON
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from faultproof.messages import MAX_QCS_PER_BATCH, QcBatch, QuorumCertificate
from faultproof.procs import ManagedProcess, free_port
from ledger.service import wall_clock_ms
from ledger.store import LedgerStore
from ledger.verify import replay_store
from tests.ledger.helpers import DAY, SECOND, Scenario, make_ledger, write_ledger

N_PAYOUTS = int(os.environ.get("BENCH_LEDGER_PAYOUTS", "12000"))
N_BASELINE = int(os.environ.get("BENCH_LEDGER_BASELINE", "400"))
CLIENTS = int(os.environ.get("BENCH_LEDGER_CLIENTS", "64"))
BATCH = MAX_QCS_PER_BATCH
BATCH_CLIENTS = 8


def _setup(directory: Path, n_qcs: int) -> tuple[Path, Path, list[bytes]]:
    keys = make_ledger(5, max_backdate_ms=30 * DAY)  # the benchmark pays windows of the past 20 days
    now = wall_clock_ms()
    sc = Scenario.standard(keys, deposit=10**15, coverage=10**14, amount=1, premium=0,
                           start_ms=now - 20 * DAY, end_ms=now + DAY, period_ms=SECOND, claim_window_ms=60 * DAY)
    db, key = write_ledger(directory, keys, sc.setup_txs)
    qcs: list[QuorumCertificate] = [keys.qc(sc.body(i, window_ms=400)) for i in range(n_qcs)]
    return db, key, [q.encode() for q in qcs]


def _batches(bodies: list[bytes]) -> list[bytes]:
    """The same QCs as QcBatches of BATCH (built before the clock starts)."""
    qcs = [QuorumCertificate.decode(b) for b in bodies]
    return [QcBatch(qcs=tuple(qcs[i : i + BATCH])).encode() for i in range(0, len(qcs), BATCH)]


async def _burst(url: str, bodies: list[bytes], clients: int, route: str = "/v1/tx") -> float:
    queue = list(reversed(bodies))
    errors: list[str] = []
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as http:
        async def client() -> None:
            while queue:
                body = queue.pop()
                async with http.post(f"{url}{route}", data=body,
                                     headers={"Content-Type": "application/msgpack",
                                              "Accept": "application/msgpack"}) as resp:
                    answer = await resp.read()
                    if resp.status != 200:
                        errors.append(f"{resp.status}")
                    elif route != "/v1/tx":  # a batch answers 200; each QC's outcome is inside
                        errors.extend(str(r["error"]) for r in json.loads(answer)["results"] if "error" in r)
        started = time.perf_counter()
        async with asyncio.TaskGroup() as tg:
            for _ in range(clients):
                tg.create_task(client())
        elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} payouts refused, e.g. {errors[:3]}")
    return elapsed


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its live children (the ledger's check processes), from
    Linux /proc, to report cost independent of machine load."""
    proc = Path(f"/proc/{pid}")
    fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
    total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    for children in proc.glob("task/*/children"):
        for child in children.read_text().split():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                total += _cpu_seconds(int(child))
    return total


def _serve_and_burst(directory: Path, db: Path, key: Path, bodies: list[bytes], max_batch: int,
                     route: str = "/v1/tx", clients: int = CLIENTS) -> tuple[float, float]:
    port = free_port()
    config = directory / f"ledger-{max_batch}.toml"
    config.write_text(f'[ledger]\ndb = "{db}"\nledger_key = "{key}"\n[server]\nport = {port}\n'
                      f'[durability]\nsynchronous = "FULL"\nmax_batch = {max_batch}\n')
    url = f"http://127.0.0.1:{port}"
    proc = ManagedProcess(f"ledger-{max_batch}", ["-m", "cli", "ledger", "serve", "--config", str(config)],
                          directory / f"ledger-{max_batch}.log", ready_url=f"{url}/healthz")
    proc.start()
    try:
        proc.wait_ready(120)
        assert proc.pid is not None
        cpu = _cpu_seconds(proc.pid)
        elapsed = asyncio.run(_burst(url, bodies, clients, route))
        return elapsed, _cpu_seconds(proc.pid) - cpu
    finally:
        proc.stop()


def run() -> dict[str, dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        base = Path(tmp) / "baseline"
        base.mkdir()
        db, key, bodies = _setup(base, N_BASELINE)
        baseline_s, _ = _serve_and_burst(base, db, key, bodies, max_batch=1)

        grouped = Path(tmp) / "grouped"
        grouped.mkdir()
        db, key, bodies = _setup(grouped, N_PAYOUTS)
        grouped_s, single_cpu = _serve_and_burst(grouped, db, key, bodies, max_batch=1024)

        batched = Path(tmp) / "batched"
        batched.mkdir()
        bdb, bkey, bbodies = _setup(batched, N_PAYOUTS)
        batched_s, server_cpu = _serve_and_burst(batched, bdb, bkey, _batches(bbodies), max_batch=1024,
                                                 route="/v1/tx/batch", clients=BATCH_CLIENTS)

        store = LedgerStore(db, readonly=True)
        try:
            single = replay_store(store, workers=0)
            parallel = replay_store(store, workers=len(os.sched_getaffinity(0)))
        finally:
            store.close()
        assert single.ok and parallel.ok, (single.problem, parallel.problem)
    return {
        "ledger_payout_tx_per_s": {"value": round(N_PAYOUTS / batched_s, 1), "unit": "payouts/s",
                                   "baseline": round(N_PAYOUTS / grouped_s, 1)},
        "ledger_payout_single_tx_per_s": {"value": round(N_PAYOUTS / grouped_s, 1), "unit": "payouts/s",
                                          "baseline": round(N_BASELINE / baseline_s, 1)},
        # What one durable payout costs the server in CPU (all threads and processes), whatever else the machine
        # is doing: on an otherwise idle machine the throughput is bounded by it.
        "ledger_payout_server_cpu_us": {"value": round(server_cpu / N_PAYOUTS * 1e6, 1), "unit": "us/payout",
                                        "baseline": round(single_cpu / N_PAYOUTS * 1e6, 1)},
        "ledger_verify_entries_per_s": {"value": round(parallel.rate, 1), "unit": "entries/s",
                                        "baseline": round(single.rate, 1)},
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=1, sort_keys=True))
