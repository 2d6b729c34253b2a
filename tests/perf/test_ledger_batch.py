"""POST /v1/tx/batch (DESIGN §16, issue 15): several QCs per request, decoded and their signatures
checked together (in the verify threads, or in check processes: `ledger/checkpool.py`), each
applied as its own transaction.

Differential: real ledgers on the same manual clock, one fed each QC by POST /v1/tx (the reference),
the others the same QCs in one batch, checked by threads or by processes: the same answers per QC
(entry or reason code) and byte-identical signed entries. Bad batches are a 4xx and change nothing,
whichever side decodes them.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from faultproof.messages import MAX_QCS_PER_BATCH, QcBatch, QcSignature, QuorumCertificate
from ledger.client import LedgerClient
from tests.ledger.helpers import T0, LedgerEnv, ManualClock, Scenario, make_ledger, serve_ledger

MSGPACK = {"Content-Type": "application/msgpack"}
REFUSALS = {"empty": "missing_field", "too_many": "oversize", "json_empty": "missing_field", "wrong_type": "wrong_type",
            "media": "unsupported_media_type", "truncated": "malformed"}


def _qcs(sc: Scenario) -> list[QuorumCertificate]:
    keys = sc.keys
    good = [keys.qc(sc.body(i)) for i in range(5)]
    forged = keys.qc(sc.body(5))
    sig = forged.signatures[0]
    forged = forged.replace(signatures=(QcSignature(oracle_id=sig.oracle_id, signature=bytes(64)),
                                        *forged.signatures[1:]))
    few = keys.qc(sc.body(6), signers=keys.oracles[: keys.threshold - 1])
    # paid twice in one batch (the second is an idempotent repeat), a forged signature, too few signers
    return [good[0], good[1], good[0], forged, good[2], few, good[3], good[4]]


def _answer(body: dict[str, Any]) -> dict[str, Any]:
    """What a QC got, from a /v1/tx answer or one result of a batch: its entry, or its reason code."""
    if "error" in body:
        return {"error": body["error"]["code"]}
    return {"height": body["height"], "existing": body["existing"], "paid": body["paid"]}


@asynccontextmanager
async def _ledger(root: Path, sc: Scenario, *, after_window: int,
                  check_processes: int = 0) -> AsyncIterator[tuple[LedgerEnv, str]]:
    """A real ledger under root with the scenario's setup applied, its clock just after window
    `after_window` (so that many claims are payable): (env, URL). `check_processes`: the service's
    batch check processes (0: decoded and checked in the ledger process)."""
    clock = ManualClock(T0)
    async with serve_ledger(root, sc.keys, clock=clock, check_processes=check_processes) as (env, url), \
            LedgerClient(url) as client:
        for tx in sc.setup_txs:
            await client.submit(tx)
        clock.set(sc.time_after(after_window))
        yield env, url


async def _entries(url: str) -> list[bytes]:
    async with LedgerClient(url) as client:
        _, entries = await client.entries(-1)
    return [e.encode() for e in entries]


async def test_a_batch_pays_exactly_as_one_qc_per_request(tmp_path: Path) -> None:
    keys = make_ledger(5)
    sc = Scenario.standard(keys)
    qcs = _qcs(sc)
    answers: dict[str, list[dict[str, Any]]] = {}
    entries: dict[str, list[bytes]] = {}
    for mode in ("single", "batch", "batch-processes"):
        processes = 2 if mode == "batch-processes" else 0
        async with _ledger(tmp_path / mode, sc, after_window=4, check_processes=processes) as (_, url):
            async with aiohttp.ClientSession() as http:
                if mode == "single":
                    out = []
                    for qc in qcs:
                        async with http.post(f"{url}/v1/tx", data=qc.encode(), headers=MSGPACK) as r:
                            out.append(_answer(await r.json()))
                else:
                    async with http.post(f"{url}/v1/tx/batch", data=QcBatch(qcs=tuple(qcs)).encode(),
                                         headers=MSGPACK) as r:
                        assert r.status == 200
                        out = [_answer(x) for x in (await r.json())["results"]]
            answers[mode] = out
            entries[mode] = await _entries(url)
    assert answers["batch"] == answers["single"] == answers["batch-processes"]
    assert [a.get("error") for a in answers["batch"]] == [
        None, None, None, "qc_bad_signature", None, "qc_insufficient_signatures", None, None]
    assert answers["batch"][2]["existing"] is True
    # byte for byte: same entries, same ledger signatures
    assert entries["batch"] == entries["single"] == entries["batch-processes"]


@pytest.mark.parametrize("processes", [0, 1])
@pytest.mark.parametrize("case", ["empty", "too_many", "json_empty", "wrong_type", "media", "truncated"])
async def test_a_bad_batch_is_refused_whole_and_changes_nothing(tmp_path: Path, case: str, processes: int) -> None:
    keys = make_ledger(5)
    sc = Scenario.standard(keys)
    async with _ledger(tmp_path, sc, after_window=0, check_processes=processes) as (_, url):
        before = await _entries(url)
        qc = keys.qc(sc.body(0))
        from faultproof.encoding import pack

        headers, data = MSGPACK, b""
        if case == "empty":
            data = pack([QcBatch.TYPE_ID, 1, []])
        elif case == "too_many":
            data = pack([QcBatch.TYPE_ID, 1, [qc.to_wire()] * (MAX_QCS_PER_BATCH + 1)])
        elif case == "json_empty":
            headers, data = {"Content-Type": "application/json"}, json.dumps({"qcs": []}).encode()
        elif case == "wrong_type":
            data = qc.encode()  # a bare QC belongs on /v1/tx
        elif case == "truncated":
            data = QcBatch(qcs=(qc, qc)).encode()[:-10]
        else:
            headers, data = {"Content-Type": "text/plain"}, QcBatch(qcs=(qc,)).encode()
        async with aiohttp.ClientSession() as http, http.post(f"{url}/v1/tx/batch", data=data, headers=headers) as r:
            body = await r.json()
            assert 400 <= r.status < 500 and set(body["error"]) == {"code", "message"}, (r.status, body)
        assert body["error"]["code"] == REFUSALS[case]
        assert await _entries(url) == before


async def test_the_json_form_is_accepted(tmp_path: Path) -> None:
    keys = make_ledger(5)
    sc = Scenario.standard(keys)
    async with _ledger(tmp_path, sc, after_window=1) as (_, url):
        batch = QcBatch(qcs=(keys.qc(sc.body(0)), keys.qc(sc.body(1))))
        async with aiohttp.ClientSession() as http, http.post(
                f"{url}/v1/tx/batch", data=json.dumps(batch.to_json()).encode(),
                headers={"Content-Type": "application/json"}) as r:
            results = (await r.json())["results"]
        assert r.status == 200 and [x["paid"] for x in results] == [sc.terms.amount] * 2
        assert [x["claim_id"] for x in results] == [sc.body(i).claim_id.hex() for i in (0, 1)]


async def test_a_dead_check_process_costs_no_batch(tmp_path: Path) -> None:
    """A check process killed (as the OOM killer would) fails no batch: that batch is checked in the
    ledger's process, a new pool takes the next ones, and every payout is answered as usual."""
    keys = make_ledger(5)
    sc = Scenario.standard(keys)
    async with _ledger(tmp_path, sc, after_window=5, check_processes=1) as (env, url):
        paid = []
        async with aiohttp.ClientSession() as http:
            for first in (0, 2, 4):
                if first == 2:  # the first batch spawned the check process: kill it
                    (pid,) = env.service.check_pids
                    os.kill(pid, signal.SIGKILL)
                    await asyncio.to_thread(_wait_gone, pid)
                batch = QcBatch(qcs=(keys.qc(sc.body(first)), keys.qc(sc.body(first + 1))))
                async with http.post(f"{url}/v1/tx/batch", data=batch.encode(), headers=MSGPACK) as r:
                    assert r.status == 200, await r.text()
                    paid += [x["paid"] for x in (await r.json())["results"]]
        assert paid == [sc.terms.amount] * 6
        assert len(await _entries(url)) == len(sc.setup_txs) + 1 + 6


def _wait_gone(pid: int) -> None:
    """Wait until the killed process is gone, or a zombie its pool has not reaped yet."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return
        except FileNotFoundError:
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} did not die")


async def test_check_processes_start_with_the_first_batch_not_with_the_service(tmp_path: Path) -> None:
    """Most ledgers (every test's, the devnet's) never see a batch: they start no check process.
    The first batch spawns them and is answered from them."""
    keys = make_ledger(5)
    sc = Scenario.standard(keys)
    async with _ledger(tmp_path, sc, after_window=1, check_processes=2) as (env, url):
        assert env.service.check_pids == set()
        async with aiohttp.ClientSession() as http:
            batch = QcBatch(qcs=(keys.qc(sc.body(0)), keys.qc(sc.body(1))))
            async with http.post(f"{url}/v1/tx/batch", data=batch.encode(), headers=MSGPACK) as r:
                assert r.status == 200
                assert [x["paid"] for x in (await r.json())["results"]] == [sc.terms.amount] * 2
        # the pids that answered the start-up (one process may answer for both)
        assert 1 <= len(env.service.check_pids) <= 2 and os.getpid() not in env.service.check_pids
