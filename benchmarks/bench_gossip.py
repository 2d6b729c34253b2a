"""Gossip speed with 5 real node processes on 127.0.0.1 (full mesh, 2 KB messages).

gossip_delivery_p50_ms: publish-to-delivery latency, pooled over the 4 receivers, for 100 messages
  paced at 25 msg/s (light load: the latency of one message, not of a queue).
gossip_msgs_per_s: a 2,000-message burst from one publisher with back-pressure; messages / seconds
  until the last receiver holds all of them. Loss is checked: a lossy run raises instead of reporting.
baseline: the same stack with libp2p's own per-RPC behaviour (no libp2p_tuning patches, yamux
  release-on-read, GossipSub v1.2 IDONTWANT) but our loss fixes kept; the naive stack loses messages
  (spam protection, 32-slot queues), so it has no meaningful throughput at all.

    python -m benchmarks.bench_gossip      # prints JSON

Reuses the test harness (tests/gossip/cluster.py, node_main.py): one way to run a node process.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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


def run() -> dict[str, dict[str, Any]]:
    tuned = _measure(TUNED)
    untuned = _measure(UNTUNED)
    return {
        "gossip_delivery_p50_ms": {
            "value": round(tuned["p50_ms"], 1),
            "unit": "ms",
            "baseline": round(untuned["p50_ms"], 1),
        },
        "gossip_msgs_per_s": {
            "value": round(tuned["msgs_per_s"], 1),
            "unit": "msg/s",
            "baseline": round(untuned["msgs_per_s"], 1),
        },
    }


if __name__ == "__main__":
    json.dump(run(), sys.stdout, indent=1)
    print()
