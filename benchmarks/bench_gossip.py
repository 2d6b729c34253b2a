"""Gossip speed with 5 real node processes on 127.0.0.1 (full mesh, 2 KB messages).

gossip_delivery_p50_ms: publish-to-delivery latency, pooled over the 4 receivers, for 100 messages
  paced at 25 msg/s (light load: the latency of one message, not of a queue).
gossip_msgs_per_s: a 2,000-message burst from one publisher with back-pressure; messages / seconds
  until the last receiver holds all of them. Loss is checked: a lossy run raises instead of reporting.
gossip_claims_per_s / gossip_votes_per_s (DESIGN §16): items delivered network-wide per second in a
  burst from one publisher, every receiver holding all of them (no loss), when items travel in
  batches (a ClaimBatch of 32 claims, a VoteBatch of 64 votes, at their real encoded sizes); the
  baseline is one item per gossip message on the same tuned stack in the same run. Only the
  transport is timed (test payloads of those sizes; decoding a batch is ~1 ms, not the limit).
gossip_claims_per_cpu_s / gossip_votes_per_cpu_s: the same bursts per CPU second summed over the
  5 node processes (/proc), so a busy shared machine does not hide the gain.
gossip_claim_p50_ms: delivery p50 of claim-sized messages paced at 100/s, plus the agent's batch
  fill time (CLAIM_BATCH_MS: at 100 claims/s nearly every batch holds one claim that waits that
  long); the baseline is the same without the fill time (one claim per message).
baseline (first two metrics): the same stack with libp2p's own per-RPC behaviour (no libp2p_tuning patches, yamux
  release-on-read, GossipSub v1.2 IDONTWANT) but our loss fixes kept; the naive stack loses messages
  (spam protection, 32-slot queues), so it has no meaningful throughput at all.

    python -m benchmarks.bench_gossip      # prints JSON

Reuses the test harness (tests/gossip/cluster.py, node_main.py): one way to run a node process.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from agent.claims import CLAIM_BATCH_MS
from faultproof.messages import MAX_CLAIMS_PER_BATCH
from oracle.node import VOTES_PER_MESSAGE
from tests.gossip.cluster import Cluster, metric

TOPIC = "/bench/bulk"
N = 5
SIZE = 2048
LATENCY_COUNT, LATENCY_RATE = 100, 25
BURST = 2000

TUNED: dict[str, Any] = {}
UNTUNED: dict[str, Any] = {"libp2p_cpu_patches": False, "protocols": ["/meshsub/1.2.0", "/meshsub/1.1.0"]}


def _measure(settings: dict[str, Any]) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-gossip-") as tmp:
        c = Cluster(Path(tmp), N).configure(
            links={i: list(range(i)) for i in range(N)},
            topics={TOPIC: {"max_size": 4096, "rate": 10_000, "burst": 10_000}},
            settings=settings,
        )
        try:
            c.start()
            c.wait_mesh(TOPIC, {i: N - 1 for i in range(N)})
            receivers = list(range(1, N))

            c.nodes[0].post("/publish", {"topic": TOPIC, "tag": "lat", "count": LATENCY_COUNT, "size": SIZE,
                                         "rate": LATENCY_RATE})
            c.wait_received(receivers, TOPIC, "lat", LATENCY_COUNT, 60)
            lat: list[float] = []
            for i in receivers:
                view = c.nodes[i].get(f"/received?topic={TOPIC}&tag=lat&full=1")
                if view["unique"] != LATENCY_COUNT:
                    raise RuntimeError(f"node{i} lost messages: {view['unique']}/{LATENCY_COUNT}")
                lat.extend(view["latencies"])

            t0 = time.perf_counter()
            c.nodes[0].post("/publish", {"topic": TOPIC, "tag": "burst", "count": BURST, "size": SIZE}, timeout=600)
            views = c.wait_received(receivers, TOPIC, "burst", BURST, 300)
            elapsed = time.perf_counter() - t0
            lost = {i: BURST - v["unique"] for i, v in views.items() if v["unique"] != BURST}
            if lost:
                raise RuntimeError(f"burst lost messages: {lost}")
            drops = sum(metric(n.get("/metrics"), "faultproof_gossip_peer_queue_drops_total") for n in c.nodes)
            if drops:
                raise RuntimeError(f"libp2p dropped {drops} RPCs")
            return {"p50_ms": statistics.median(lat), "msgs_per_s": BURST / elapsed}
        finally:
            c.stop()


# Encoded sizes (tests/vectors samples): a SignedClaim, an Approve, and full batches of them.
CLAIM_BYTES, VOTE_BYTES = 710, 373
CLAIM_BATCH_BYTES, VOTE_BATCH_BYTES = 22_726, 23_912
BATCH_MSGS, SINGLE_MSGS = 60, 400
ITEM_LAT_COUNT, ITEM_LAT_RATE = 200, 100


def _cpu_s(c: Cluster) -> float:
    """CPU seconds (user + system) the node processes have used so far, summed."""
    total = 0
    for n in c.nodes:
        fields = Path(f"/proc/{n.pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / os.sysconf("SC_CLK_TCK")


def _burst(c: Cluster, tag: str, count: int, size: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds summed over the nodes) until every receiver holds the burst."""
    receivers = list(range(1, N))
    cpu0 = _cpu_s(c)
    t0 = time.perf_counter()
    c.nodes[0].post("/publish", {"topic": TOPIC, "tag": tag, "count": count, "size": size}, timeout=600)
    views = c.wait_received(receivers, TOPIC, tag, count, 300)
    elapsed = time.perf_counter() - t0
    lost = {i: count - v["unique"] for i, v in views.items() if v["unique"] != count}
    if lost:
        raise RuntimeError(f"{tag}: lost messages: {lost}")
    return elapsed, _cpu_s(c) - cpu0


def _measure_items() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-gossip-items-") as tmp:
        c = Cluster(Path(tmp), N).configure(
            links={i: list(range(i)) for i in range(N)},
            topics={TOPIC: {"max_size": 64 * 1024, "rate": 10_000, "burst": 10_000}},
            settings=TUNED,
        )
        try:
            c.start()
            c.wait_mesh(TOPIC, {i: N - 1 for i in range(N)})
            out: dict[str, float] = {}
            for name, tag, msgs, per_msg, size in (
                ("claims_batched", "cb", BATCH_MSGS, MAX_CLAIMS_PER_BATCH, CLAIM_BATCH_BYTES),
                ("claims_single", "c1", SINGLE_MSGS, 1, CLAIM_BYTES),
                ("votes_batched", "vb", BATCH_MSGS, VOTES_PER_MESSAGE, VOTE_BATCH_BYTES),
                ("votes_single", "v1", SINGLE_MSGS, 1, VOTE_BYTES),
            ):
                wall, cpu = _burst(c, tag, msgs, size)
                out[name] = msgs * per_msg / wall
                out[name + "_cpu"] = msgs * per_msg / cpu  # items per CPU second over all 5 nodes
            c.nodes[0].post("/publish", {"topic": TOPIC, "tag": "cl", "count": ITEM_LAT_COUNT, "size": CLAIM_BYTES,
                                         "rate": ITEM_LAT_RATE})
            c.wait_received(list(range(1, N)), TOPIC, "cl", ITEM_LAT_COUNT, 60)
            lat: list[float] = []
            for i in range(1, N):
                view = c.nodes[i].get(f"/received?topic={TOPIC}&tag=cl&full=1")
                if view["unique"] != ITEM_LAT_COUNT:
                    raise RuntimeError(f"node{i} lost messages: {view['unique']}/{ITEM_LAT_COUNT}")
                lat.extend(view["latencies"])
            drops = sum(metric(n.get("/metrics"), "gossip_peer_queue_drops_total") for n in c.nodes)
            if drops:
                raise RuntimeError(f"libp2p dropped {drops} RPCs")
            out["claim_p50_ms"] = statistics.median(lat)
            return out
        finally:
            c.stop()


def _versus(value: float, unit: str, baseline: float) -> dict[str, Any]:
    return {"value": round(value, 1), "unit": unit, "baseline": round(baseline, 1)}


def run() -> dict[str, dict[str, Any]]:
    tuned = _measure(TUNED)
    untuned = _measure(UNTUNED)
    items = _measure_items()
    return {
        "gossip_claims_per_s": _versus(items["claims_batched"], "claims/s", items["claims_single"]),
        "gossip_votes_per_s": _versus(items["votes_batched"], "votes/s", items["votes_single"]),
        # Items per CPU second summed over the 5 nodes: what the wall numbers become when the
        # machine is not shared (2 idle cores carry about twice this).
        "gossip_claims_per_cpu_s": _versus(items["claims_batched_cpu"], "claims/cpu-s", items["claims_single_cpu"]),
        "gossip_votes_per_cpu_s": _versus(items["votes_batched_cpu"], "votes/cpu-s", items["votes_single_cpu"]),
        "gossip_claim_p50_ms": _versus(items["claim_p50_ms"] + CLAIM_BATCH_MS, "ms", items["claim_p50_ms"]),
        "gossip_delivery_p50_ms": _versus(tuned["p50_ms"], "ms", untuned["p50_ms"]),
        "gossip_msgs_per_s": _versus(tuned["msgs_per_s"], "msg/s", untuned["msgs_per_s"]),
    }


if __name__ == "__main__":
    json.dump(run(), sys.stdout, indent=1)
    print()
