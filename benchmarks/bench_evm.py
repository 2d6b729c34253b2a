"""EVM settlement: gas per payout and claim-to-payout latency on anvil (issue 16, DESIGN §13).

evm_payout_gas: gasUsed of `InsurancePool.payout` with a QC of k = 4 of n = 5 ECDSA signatures
over the EIP-712 body AND the Groth16 proof verified on chain by the circuit's snarkjs verifier
(median of PAYOUTS payouts to a payee that already holds the token; the first payout to a new
payee costs ~12k more for its new balance slot). Target (issue 16): <= 400k.
evm_quorum_gas: `verifyQuorum` (the same QC check alone) as a transaction's gas estimate, i.e.
including the 21k base cost and its calldata. Target: <= 150k.
evm_claim_to_payout_p50_s: through the real daemons (DESIGN §13): n = 5 oracle processes (k = 4)
following the pool's mirror on anvil (auto-mining, 0 confirmations) over libp2p gossip; the time
from POST /v1/claims of a claim with a ready proof at one oracle to its payout on the contract
(every oracle checks it, votes, gossips its Ed25519 Approve and its ChainApprove, the member whose
turn it is assembles the chain QC and sends it). Median of DAEMON_CLAIMS claims after one warm-up.
Target: p50 < 1 s. `evm_interface_claim_to_payout_p50_s` is the same path without daemons or
gossip (one proof check, k signatures, `post_chain_qc`, another oracle's `events()` poll).

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
DAEMON_CLAIMS = int(os.environ.get("BENCH_EVM_DAEMON_CLAIMS", "8"))


def run() -> dict[str, dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="bench-evm-") as tmp:
        world = ChainWorld.start(Path(tmp))
        try:
            out = _measure(world)
        finally:
            world.stop()
        out["evm_claim_to_payout_p50_s"] = _through_daemons(Path(tmp) / "daemons")
        return out


def _through_daemons(root: Path) -> dict[str, Any]:
    """Claim to payout through n oracle processes on the pool contract (see the module docstring)."""
    from cli.devnet.chain import ChainNetwork, payee_of
    from faultproof.messages import IssuePolicy, RegisterCircuit
    from faultproof.zk import LAYOUT_VERSION, build, export_vkey
    from ledger.evm.pool import beneficiary_of
    from tests.netfix import DAY, DeviceSim, http, make_claim, now_ms, params_of, wait_until

    circuit = build(N)
    net = ChainNetwork(root, oracles=5, threshold=4, window=N)
    try:
        net.prepare()
        net.start_ledger()
        net.setup_pool(10**12, RegisterCircuit(vkey=export_vkey(circuit), n=N, layout_version=LAYOUT_VERSION,
                                               transcript_hash=bytes(32), production=0))
        now = now_ms()
        dev = DeviceSim.create(anchor_ts=now - DAY)
        net.admin_txs([dev.enrol_tx()])
        kind, T, K, lo, hi, G = TriggerParams.count(80, 2).as_tuple()
        terms = IssuePolicy(device_id=dev.device_id, beneficiary=beneficiary_of(payee_of(dev.device_id)),
                            circuit_id=net.circuit_id, kind=kind, threshold=T, count=K, lo=lo, hi=hi, gap_ms=G,
                            start_ms=now - DAY, end_ms=now + 30 * DAY, period_ms=1000, claim_window_ms=7 * DAY,
                            coverage=10**9, amount=100, premium=0)
        (pid,) = net.admin_txs([terms])
        net.start_oracles()
        dev.record([0], start_ts=now_ms() - 300_000)
        claims = []
        for _ in range(DAEMON_CLAIMS + 1):  # proofs made before timing
            start = dev.record([90, 95, 10, 12])
            claims.append(make_claim(circuit, dev, pid, terms, start, net.agent_identity))
        assert params_of(terms).as_tuple() == TriggerParams.count(80, 2).as_tuple()
        latency = []
        for i, claim in enumerate(claims):
            cid = claim.claim.claim_id
            started = time.perf_counter()
            code, body = http("POST", f"{net.oracle_urls[i % net.oracles]}/v1/claims", claim.encode(),
                              "application/msgpack")
            assert code == 202, (code, body)
            wait_until(lambda c=cid: net.pool.paid_claim(c) is not None, 60, interval=0.01, what="payout on chain")
            if i:  # the first one warms the mesh up
                latency.append(time.perf_counter() - started)
    finally:
        net.stop()
    latency.sort()
    return {"value": round(latency[len(latency) // 2], 4), "unit": "s", "p95": round(latency[-1], 4),
            "target": 1.0, "claims": len(latency), "n": 5, "k": 4,
            "path": "POST /v1/claims at one oracle -> 5 oracle processes (libp2p gossip, chain votes) -> payout on anvil"}


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
        "evm_interface_claim_to_payout_p50_s": {"value": round(latency[len(latency) // 2], 4), "unit": "s",
                                      "p95": round(latency[int(len(latency) * 0.95) - 1], 4), "target": 1.0,
                                      "path": "settlement interface, no daemons or gossip"},
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
