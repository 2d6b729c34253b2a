"""EVM settlement: gas per payout and claim-to-payout latency on anvil (issue 16, DESIGN §13).

evm_payout_gas: gasUsed of `InsurancePool.payout` with a QC of k = 4 of n = 5 ECDSA signatures
over the EIP-712 body AND the Groth16 proof verified on chain by the circuit's snarkjs verifier
(median of PAYOUTS payouts to a payee that already holds the token; the first payout to a new
payee costs ~12k more for its new balance slot). Target (issue 16): <= 400k.
evm_quorum_gas: `verifyQuorum` (the same QC check alone) as a transaction's gas estimate, i.e.
including the 21k base cost and its calldata. Target: <= 150k.
evm_claim_to_payout_p50_s: from a claim whose proof is ready to its Paid event seen by a follower
polling the contract's logs: one oracle's off-chain proof check (the oracles check in parallel),
k EIP-712 signatures, the completing oracle's transaction on anvil (auto-mining, 0
confirmations) and the follower's log poll. Gossip between the oracles is not included (the
devnet over the chain is not wired yet). Target: p50 < 1 s.

    python -m benchmarks.bench_evm          # prints JSON
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from faultproof.zk import TriggerParams, verify
from ledger.evm.pool import ChainQc
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
    follow_from = world.w3.eth.block_number + 1
    for body, proof in windows[1:]:
        quorum_gas = pool.quorum_call(world.qc(pool, body)).estimate_gas()
        started = time.perf_counter()
        b = body.body
        public = [body.c_start, body.c_end, b.start_ts, b.end_ts, terms.kind, terms.threshold, terms.count,
                  terms.lo, terms.hi, terms.gap_ms]
        assert verify(world.vkey, proof, public)  # an oracle's own check before it signs
        sigs = tuple(oracle_key(i).sign_body(body, pool.chain_id, pool.address) for i in range(world.threshold))
        result = pool.post_qc(ChainQc(body, sigs), proof, world.poster)
        seen = False
        while not seen:  # the follower: the pool's logs since its last poll
            for name, args, blk in pool.events(follow_from):
                follow_from = blk + 1
                seen = seen or (name == "Paid" and bytes(args["claimId"]) == b.claim_id)
        latency.append(time.perf_counter() - started)
        gas.append(result.gas_used)
    latency.sort()
    return {
        "evm_payout_gas": {"value": int(statistics.median(gas)), "unit": "gas",
                           "first_payout_to_new_payee": first, "target": 400_000, "k": world.threshold,
                           "n": world.n_oracles, "window_n": N},
        "evm_quorum_gas": {"value": int(quorum_gas), "unit": "gas (tx estimate)", "target": 150_000},
        "evm_claim_to_payout_p50_s": {"value": round(latency[len(latency) // 2], 4), "unit": "s",
                                      "p95": round(latency[int(len(latency) * 0.95) - 1], 4), "target": 1.0},
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
