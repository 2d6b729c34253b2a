"""A burst of detected claims reaches the prover at once, each with its claim deadline (issue 15).

The manager's own loop with the proving step stubbed at `_make_claim` (no store, no network): what
is checked is that claims are not proved one after another any more, and that the deadline handed
to the prover is the window end plus the policy's claim window.
"""

from __future__ import annotations

import asyncio
from typing import Any

from agent.claims import ClaimManager, ClaimRecord, ClaimStatus
from agent.detect import Window


def record(i: int, end_ts: int) -> ClaimRecord:
    window = Window(policy_id=bytes([i % 2]) * 32, device_id=b"\x07" * 32, epoch=0, start_seq=0, end_seq=16,
                    start_ts=0, end_ts=end_ts, period=0, circuit_id=b"\x01" * 32)
    return ClaimRecord(claim_id=bytes([i]) * 32, window=window, status=ClaimStatus.DETECTED, detected_ms=0)


async def test_burst_of_claims_is_proved_concurrently_with_deadlines() -> None:
    windows = {b"\x00" * 32: 1_000, b"\x01" * 32: 50_000}
    manager = ClaimManager(
        engine=None, store_path="unused", agent=None, prover=None, circuits={},
        blinding_keys={}, policy_params=lambda _: None, paid_amount=lambda _: None,
        sender=None, metrics=None, claim_window_ms=windows.get)  # type: ignore[arg-type]
    started: list[tuple[bytes, float]] = []
    release = asyncio.Event()

    async def make_claim(rec: ClaimRecord) -> Any:
        started.append((rec.claim_id, manager._deadline(rec)))
        await release.wait()  # never set: the test ends with every claim still "proving"

    manager._make_claim = make_claim  # type: ignore[method-assign]
    recs = [record(i, 10_000 * i) for i in range(1, 6)]
    for rec in recs:
        manager.records[rec.claim_id] = rec
        manager._to_prove.put_nowait(rec.claim_id)
    loop_task = asyncio.create_task(manager._prove_loop())
    for _ in range(50):
        await asyncio.sleep(0)
        if len(started) == len(recs):
            break
    # All five are with the prover at the same time (before: one, until it finished).
    assert sorted(started) == sorted(
        (r.claim_id, float(r.window.end_ts + windows[r.window.policy_id])) for r in recs)
    assert manager.proving in {r.claim_id for r in recs}
    loop_task.cancel()
    await asyncio.gather(loop_task, return_exceptions=True)
