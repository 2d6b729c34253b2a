"""EVM settlement: gas per payout and claim-to-payout latency on anvil (issue 16, DESIGN §13).

evm_payout_gas: gasUsed of `InsurancePool.payout` with a QC of k = 4 of n = 5 ECDSA signatures
over the EIP-712 body AND the Groth16 proof verified on chain by the circuit's snarkjs verifier
(median of PAYOUTS payouts to a payee that already holds the token; the first payout to a new
payee costs ~12k more for its new balance slot). Target (issue 16): <= 400k.
evm_quorum_gas: `verifyQuorum` (the same QC check alone) as a transaction's gas estimate, i.e.
including the 21k base cost and its calldata. Target: <= 150k.
evm_claim_to_payout_p50_s: from a claim whose proof is ready to its Paid event seen by another
oracle: one oracle's off-chain proof check (the oracles check in parallel), k EIP-712
signatures, the completing oracle's `post_chain_qc` and the other oracle's `events()` poll, both
through the settlement interface (`connect("evm+http://…")`, DESIGN §13) on anvil (auto-mining,
0 confirmations). Gossip between the oracles and the daemons are not included (the daemons do not
run on a chain yet). Target: p50 < 1 s.

    python -m benchmarks.bench_evm          # prints JSON
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from faultproof.zk import TriggerParams, verify
from ledger.evm.pool import ChainQc
from ledger.evm.settlement import EvmSettlement
from ledger.settlement import connect
from tests.contracts.evmfix import ChainWorld, N, oracle_key

PAYOUTS = int(os.environ.get("BENCH_EVM_PAYOUTS", "15"))


def run() -> dict[str, dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="bench-evm-") as tmp:
        world = ChainWorld.start(Path(tmp))
        try:
            return _measure(world)
        finally:
            world.stop()


def _measure(world: ChainWorld) -> dict[str, dict[str, Any]]:
    pool = world.new_pool()
    dev = world.new_device(pool)
    pid, terms = world.issue(pool, dev, TriggerParams.count(80, 2), period_ms=1000, coverage=10**9)
    windows = []
    dev.record([0], start_ts=world.now_ms() - 120_000)
    for _ in range(PAYOUTS + 1):
        start = dev.record([90, 95, 10, 12])
        windows.append(world.window(pool, dev, pid, terms, start))  # proofs made before timing
    body0, proof0 = windows[0]
    first = pool.post_qc(world.qc(pool, body0), proof0, world.poster).gas_used  # the payee's first token

    gas: list[int] = []
    latency: list[float] = []
    quorum_gas = 0
    base = f"evm+{world.node.url}?contract={pool.address}"
    poster, other = connect(f"{base}&from={world.poster}"), connect(base)
    assert isinstance(poster, EvmSettlement) and isinstance(other, EvmSettlement)

    async def timed() -> None:
        await other.events()  # history up to now
        for body, proof in windows[1:]:
            nonlocal quorum_gas
            quorum_gas = pool.quorum_call(world.qc(pool, body)).estimate_gas()
            started = time.perf_counter()
            b = body.body
            public = [body.c_start, body.c_end, b.start_ts, b.end_ts, terms.kind, terms.threshold, terms.count,
                      terms.lo, terms.hi, terms.gap_ms]
            assert verify(world.vkey, proof, public)  # an oracle's own check before it signs
            sigs = tuple(oracle_key(i).sign_body(body, pool.chain_id, pool.address) for i in range(world.threshold))
            result = await poster.post_chain_qc(ChainQc(body, sigs), proof)
            while other.paid(b.claim_id) is None:  # the other oracle sees the Paid event and stops
                await other.events(wait=1.0, poll_s=0.005)
            latency.append(time.perf_counter() - started)
            gas.append(result.gas_used)
        await poster.close()
        await other.close()

    asyncio.run(timed())
    latency.sort()
    return {
        "evm_payout_gas": {"value": int(statistics.median(gas)), "unit": "gas",
                           "first_payout_to_new_payee": first, "target": 400_000, "k": world.threshold,
                           "n": world.n_oracles, "window_n": N},
        "evm_quorum_gas": {"value": int(quorum_gas), "unit": "gas (tx estimate)", "target": 150_000},
        "evm_claim_to_payout_p50_s": {"value": round(latency[len(latency) // 2], 4), "unit": "s",
                                      "p95": round(latency[int(len(latency) * 0.95) - 1], 4), "target": 1.0,
                                      "path": "settlement interface, no daemons or gossip"},
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
