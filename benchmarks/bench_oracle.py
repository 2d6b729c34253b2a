"""Oracle speed on real processes (tests/netfix.py), proofs made in advance.

oracle_claims_verified_per_s: one oracle (n = k = 1) taking valid claims over HTTP with 16 in
  flight: decode, content and ledger-state checks, Groth16 verification in the worker pool, the
  claim and its vote committed to SQLite, the QC posted to the ledger. Baseline: the same claims
  one request at a time (what a client that waits for each answer gets).
e2e_claim_to_payout_p50_s / _p95_s: 5 oracles, k = 4; one claim at a time posted to a rotating
  oracle; the time from the POST to that oracle reporting `paid` (the payout entry replayed from
  the ledger), polled every 20 ms. Baseline: the p50 of the verification step alone (the time
  the posting oracle takes to answer 202), i.e. what quorum, gossip and the ledger add on top.

    python -m benchmarks.bench_oracle
"""

from __future__ import annotations

import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from faultproof.messages import SignedClaim
from faultproof.zk import TriggerParams
from tests.netfix import SECOND, Network, http, now_ms

PARAMS = TriggerParams.count(80, 2)
N_THROUGHPUT = 60
N_E2E = 30
IN_FLIGHT = 16


def _claims(net: Network, count: int) -> list[SignedClaim]:
    """`count` valid claims, each on its own device and policy (so none limits another)."""
    out = []
    for _ in range(count):
        ts = now_ms() - 30 * SECOND
        dev = net.new_device(anchor_ts=ts - SECOND)
        pid, terms = net.issue_policy(dev, PARAMS)
        start = dev.record([90, 95, 10, 12], start_ts=ts)
        out.append(net.claim(dev, pid, terms, start))
    return out


def _post_all(net: Network, claims: list[SignedClaim], in_flight: int) -> float:
    """Post every claim to oracle 0 with `in_flight` concurrent clients; seconds until all 202."""
    lock = threading.Lock()
    queue = list(claims)
    failures: list[Any] = []

    def worker() -> None:
        while True:
            with lock:
                if not queue:
                    return
                claim = queue.pop()
            status, body = net.post_claim(0, claim)
            if status != 202:
                failures.append(body)

    threads = [threading.Thread(target=worker) for _ in range(in_flight)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    elapsed = time.perf_counter() - t
    if failures:
        raise RuntimeError(f"{len(failures)} claims refused, e.g. {failures[0]}")
    return elapsed


def claims_verified(root: Path) -> dict[str, Any]:
    net = Network.start(root / "one", n=1, k=1)
    try:
        claims = _claims(net, 2 * N_THROUGHPUT)
        _post_all(net, claims[:4], 1)  # warm the verifier process and the caches
        naive = _post_all(net, claims[4:N_THROUGHPUT], 1)
        fast = _post_all(net, claims[N_THROUGHPUT:], IN_FLIGHT)
    finally:
        net.stop()
    return {"oracle_claims_verified_per_s": {
        "value": round(N_THROUGHPUT / fast, 1), "unit": "claims/s",
        "baseline": round((N_THROUGHPUT - 4) / naive, 1)}}


def claim_to_payout(root: Path) -> dict[str, Any]:
    net = Network.start(root / "five", n=5, k=4)
    try:
        claims = _claims(net, N_E2E + 2)
        latencies, answers = [], []
        for i, claim in enumerate(claims):
            target = i % 5
            cid = claim.claim.claim_id.hex()
            t = time.perf_counter()
            status, body = net.post_claim(target, claim)
            answered = time.perf_counter() - t
            assert status == 202, body
            while True:
                s, view = http("GET", f"{net.oracles[target].url}/v1/claims/{cid}")
                if s == 200 and view["status"] == "paid":
                    break
                if time.perf_counter() - t > 30:
                    raise TimeoutError(f"claim {cid} not paid after 30 s: {view}")
                time.sleep(0.02)
            if i >= 2:  # the first two warm the verifier processes
                latencies.append(time.perf_counter() - t)
                answers.append(answered)
    finally:
        net.stop()
    q = statistics.quantiles(latencies, n=20)
    return {
        "e2e_claim_to_payout_p50_s": {"value": round(statistics.median(latencies), 3), "unit": "s",
                                      "baseline": round(statistics.median(answers), 3)},
        "e2e_claim_to_payout_p95_s": {"value": round(q[18], 3), "unit": "s"},
    }


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-oracle-") as tmp:
        root = Path(tmp)
        out = claims_verified(root)
        out.update(claim_to_payout(root))
        return out


if __name__ == "__main__":
    print(json.dumps(run(), indent=1, sort_keys=True))
