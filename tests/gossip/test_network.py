"""Five real node processes on 127.0.0.1 (one shared network, see conftest.net5).

Order matters: the restart test runs last because it kills a node. Bounds are stated in each test
and chosen for a loaded 2-core machine; the measured values are printed (run with -s).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import aiohttp
import pytest

from tests.gossip.cluster import Cluster, metric
from tests.gossip.conftest import BULK, CATCHUP, MEMBERS

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

BURST = 1000
BURST_SIZE = 2048
HEALTHZ_P99_BOUND_MS = 50.0
# When other programs take more than this share of the machine during the burst (this is a
# shared 2-core box), the 50 ms bound measures them, not us: we then hold a looser bound and say so.
OTHERS_SHARE_LIMIT = 0.25
HEALTHZ_P99_OVERLOADED_BOUND_MS = 150.0
FLOOD = 400
# Valid MEMBERS traffic while under attack (p95, max); looser when other programs load the box.
VALID_BOUNDS_MS = (1000.0, 3000.0)
VALID_OVERLOADED_BOUNDS_MS = (3000.0, 6000.0)
REJOIN_BOUND_S = 5.0  # SIGKILL-restart: process spawn -> in a mesh again (Python start included)
REJOIN_OVERLOADED_BOUND_S = 10.0


def cpu_seconds(pids: list[int]) -> tuple[float, float]:
    """(busy CPU seconds of the whole machine, CPU seconds of `pids`), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    busy = sum(fields) - fields[3] - fields[4]  # minus idle and iowait
    ours = 0
    for pid in pids:
        stat = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        ours += int(stat[11]) + int(stat[12])  # utime, stime
    return busy / tick, ours / tick


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


async def _probe(session: aiohttp.ClientSession, url: str, stop: asyncio.Event, out: list[float]) -> None:
    while not stop.is_set():
        t0 = time.perf_counter()
        async with session.get(url) as resp:
            await resp.read()
        out.append((time.perf_counter() - t0) * 1000)
        await asyncio.sleep(0.01)


async def _burst_with_probes(c: Cluster) -> dict[str, Any]:
    """Node 0 publishes BURST x 2 KB at once while we probe /healthz of the publisher and of a relay."""
    probes: dict[int, list[float]] = {0: [], 2: []}
    stop = asyncio.Event()
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        tasks = [
            asyncio.create_task(_probe(session, c.nodes[i].url + "/healthz", stop, out)) for i, out in probes.items()
        ]
        await asyncio.sleep(0.5)  # idle samples first
        pids = [n.pid for n in c.nodes if n.pid] + [os.getpid()]
        busy0, ours0 = cpu_seconds(pids)
        t0 = time.perf_counter()
        async with session.post(
            c.nodes[0].url + "/publish",
            json={"topic": BULK, "tag": "burst", "count": BURST, "size": BURST_SIZE},
            timeout=aiohttp.ClientTimeout(total=180),
        ) as resp:
            published = await resp.json()
        # Poll in this loop with small answers: a polling thread here would compete for this
        # process's GIL and inflate the very latencies we measure.
        deadline = time.perf_counter() + 120
        while time.perf_counter() < deadline:
            counts = []
            for i in (1, 2, 3, 4):
                async with session.get(f"{c.nodes[i].url}/received?topic={BULK}&tag=burst&seqs=0") as resp:
                    counts.append((await resp.json())["unique"])
            if min(counts) >= BURST:
                break
            await asyncio.sleep(0.25)
        elapsed = time.perf_counter() - t0
        busy1, ours1 = cpu_seconds(pids)
        stop.set()
        await asyncio.gather(*tasks)
    views = {i: c.nodes[i].get(f"/received?topic={BULK}&tag=burst") for i in (1, 2, 3, 4)}
    capacity = elapsed * len(os.sched_getaffinity(0))
    others_share = max(0.0, (busy1 - busy0) - (ours1 - ours0)) / capacity
    return {"published": published, "views": views, "elapsed": elapsed, "probes": probes,
            "others_share": others_share, "our_share": (ours1 - ours0) / capacity}


@pytest.fixture(scope="module")
def burst(net5: Cluster) -> dict[str, Any]:
    return asyncio.run(_burst_with_probes(net5))


def test_burst_of_1000_arrives_complete_at_every_other_node(net5: Cluster, burst: dict[str, Any]) -> None:
    assert burst["published"]["published"] == BURST, burst["published"]
    for i, view in burst["views"].items():
        assert view["unique"] == BURST, f"node{i} got {view['unique']}/{BURST}"
        assert view["duplicates"] == 0
        assert view["seqs"] == list(range(BURST))
    own = net5.nodes[0].get(f"/received?topic={BULK}&tag=burst")
    assert own["unique"] == 0  # the publisher never receives its own messages
    for node in net5.nodes:
        text = node.get("/metrics")
        assert metric(text, "faultproof_gossip_peer_queue_drops_total") == 0, node.name
        assert metric(text, "faultproof_gossip_receive_overflow_total") == 0, node.name
    assert metric(net5.nodes[0].get("/metrics"), "faultproof_gossip_published_total", topic=BULK) == BURST
    lat = {i: v["latency_ms"] for i, v in burst["views"].items()}
    print(f"\nburst {BURST} x {BURST_SIZE} B: {burst['elapsed']:.1f} s to complete everywhere "
          f"({BURST / burst['elapsed']:.0f} msg/s), publish returned after "
          f"{burst['published']['elapsed_s']:.1f} s; latency per receiver {lat}")


def test_loop_stays_responsive_while_relaying_the_burst(burst: dict[str, Any]) -> None:
    others = burst["others_share"]
    bound = HEALTHZ_P99_BOUND_MS if others <= OTHERS_SHARE_LIMIT else HEALTHZ_P99_OVERLOADED_BOUND_MS
    print(f"\nCPU during the burst: this test {burst['our_share']:.0%} of the machine, other programs "
          f"{others:.0%} -> p99 bound {bound:.0f} ms")
    for i, samples in burst["probes"].items():
        assert len(samples) >= 50, f"too few /healthz samples on node{i}: {len(samples)}"
        p50, p99 = pct(samples, 0.5), pct(samples, 0.99)
        print(f"node{i} /healthz under burst: n={len(samples)} p50={p50:.1f} ms p99={p99:.1f} ms max={max(samples):.1f} ms")
        assert p99 < bound


def test_refused_messages_are_dropped_counted_and_do_not_stall_valid_ones(net5: Cluster) -> None:
    c = net5
    c.wait_mesh(MEMBERS, {i: 4 for i in range(5)})
    receivers = [0, 1, 2, 4]  # node 4 may read MEMBERS, just not publish there; 3 is the attacker
    # Baseline: valid member traffic alone.
    c.nodes[1].post("/publish", {"topic": MEMBERS, "tag": "base", "count": 40, "size": 512, "rate": 20})
    base = c.wait_received([0, 2, 4], MEMBERS, "base", 40, 30)
    assert all(v["unique"] == 40 for v in base.values()), base

    # Attack while node 1 keeps publishing valid messages at the same pace.
    pids = [n.pid for n in c.nodes if n.pid] + [os.getpid()]
    busy0, ours0 = cpu_seconds(pids)
    t0 = time.time()
    c.nodes[4].post("/publish", {"topic": MEMBERS, "tag": "forged", "count": 100, "size": 512, "wait": False})
    c.nodes[3].post("/publish", {"topic": MEMBERS, "tag": "big", "count": 5, "size": 8000, "wait": False})
    c.nodes[3].post("/publish", {"topic": MEMBERS, "tag": "flood", "count": FLOOD, "size": 512, "wait": False})
    c.nodes[1].post("/publish", {"topic": MEMBERS, "tag": "valid", "count": 40, "size": 512, "rate": 20, "wait": False})
    valid = c.wait_received([0, 2, 4], MEMBERS, "valid", 40, 60)
    busy1, ours1 = cpu_seconds(pids)
    others = max(0.0, (busy1 - busy0) - (ours1 - ours0)) / ((time.time() - t0) * len(os.sched_getaffinity(0)))
    deadline = time.time() + 60
    while any(c.nodes[i].get("/status")["background"] for i in (1, 3, 4)):
        assert time.time() < deadline, "attack publishers did not finish"
        time.sleep(0.2)
    time.sleep(1.0)  # let the last relays land

    for i in (0, 1, 2, 3):
        assert c.nodes[i].get(f"/received?topic={MEMBERS}&tag=forged")["unique"] == 0
    report = {}
    for i in receivers:
        # Every one of the FLOOD is judged exactly once per node, delivered or refused; a loaded
        # node may still be working through its backlog, so wait for the books to balance.
        deadline = time.time() + 30
        while True:
            text = c.nodes[i].get("/metrics")
            window = time.time() - t0  # whatever this node judged, it judged before now
            flood = c.nodes[i].get(f"/received?topic={MEMBERS}&tag=flood")["unique"]
            limited = metric(text, "faultproof_gossip_dropped_total", topic=MEMBERS, reason="rate_limited")
            if limited + flood >= FLOOD or time.time() > deadline:
                break
            time.sleep(0.25)
        assert limited + flood == FLOOD, (i, limited, flood)
        big = c.nodes[i].get(f"/received?topic={MEMBERS}&tag=big")["unique"]
        oversize = metric(text, "faultproof_gossip_dropped_total", topic=MEMBERS, reason="oversize")
        report[i] = {"flood_delivered": flood, "rate_limited": limited, "oversize": oversize}
        assert big == 0 and oversize >= 5, (i, big, oversize)
        # The token bucket lets burst + rate x time through, never the whole flood.
        assert 40 <= flood <= 40 + 20 * window, (i, flood, window)
    for i in (0, 1, 2, 3):
        text = c.nodes[i].get("/metrics")
        report.setdefault(i, {})["not_allowed"] = metric(
            text, "faultproof_gossip_dropped_total", topic=MEMBERS, reason="sender_not_allowed"
        )
        assert report[i]["not_allowed"] >= 1
    assert sum(report[i]["not_allowed"] for i in (0, 1, 2, 3)) >= 100 * 3  # each forgery refused at (at least) three members

    base_p95 = max(v["latency_ms"]["p95"] for v in base.values())
    for i, v in valid.items():
        assert v["unique"] == 40, (i, v["unique"])
    p95_bound, max_bound = VALID_BOUNDS_MS if others <= OTHERS_SHARE_LIMIT else VALID_OVERLOADED_BOUNDS_MS
    print(f"\nrefusals {report}; valid p95 before {base_p95:.0f} ms, under attack "
          f"{ {i: round(v['latency_ms']['p95']) for i, v in valid.items()} } ms, max "
          f"{ {i: round(v['latency_ms']['max']) for i, v in valid.items()} } ms (bounds {p95_bound:.0f}/{max_bound:.0f}; "
          f"other programs used {others:.0%} of the machine)")
    for v in valid.values():
        assert v["latency_ms"]["p95"] < p95_bound and v["latency_ms"]["max"] < max_bound, v["latency_ms"]


def test_sigkilled_peer_restarts_rejoins_and_catches_up(net5: Cluster) -> None:
    c = net5
    victim = c.nodes[1]  # dials node 0 and is dialled by 2, 3, 4: both reconnect paths
    victim.kill()
    deadline = time.time() + 15
    while c.nodes[0].get("/status")["peers"] != 3:
        assert time.time() < deadline, "peers did not notice the kill"
        time.sleep(0.1)

    c.nodes[0].post("/publish", {"topic": CATCHUP, "tag": "down", "count": 20, "size": 1024, "pending": True})
    published_at = time.time()
    views = c.wait_received([2, 3, 4], CATCHUP, "down", 20, 30)
    assert all(v["unique"] == 20 for v in views.values()), views
    # Outlast GossipSub's message cache (5 heartbeats), so only our catch-up path can deliver.
    time.sleep(max(0.0, published_at + 6.5 - time.time()))

    pids = [n.pid for n in c.nodes if n.pid and n is not victim] + [os.getpid()]
    busy0, ours0 = cpu_seconds(pids)
    victim.start()
    victim.wait_http(30)
    deadline = victim.spawned_at + 20
    while (status := victim.get("/status"))["first_mesh"] is None:
        assert time.time() < deadline, f"restarted node never joined a mesh: {status}"
        time.sleep(0.1)
    rejoin_from_spawn = status["first_mesh"] - victim.spawned_at
    rejoin_from_listen = status["first_mesh"] - status["gossip_started"]
    busy1, ours1 = cpu_seconds(pids + [victim.pid])
    window = time.time() - victim.spawned_at
    others = max(0.0, (busy1 - busy0) - (ours1 - ours0)) / (window * len(os.sched_getaffinity(0)))

    got = c.wait_received([1], CATCHUP, "down", 20, 15)[1]
    caught_up_after = time.time() - victim.spawned_at
    assert got["unique"] == 20, got
    text = victim.get("/metrics")
    via_catchup = metric(text, "faultproof_gossip_delivered_total", topic=CATCHUP, path="catchup")
    assert via_catchup == 20
    assert metric(c.nodes[0].get("/metrics"), "faultproof_gossip_regossiped_total") == 0  # not re-gossip

    deadline = time.time() + 10
    while c.nodes[0].get("/status")["peers"] != 4 or c.nodes[4].get("/status")["peers"] != 4:
        assert time.time() < deadline, "the others did not reconnect to the restarted node"
        time.sleep(0.1)
    print(f"\nrestart: mesh {rejoin_from_spawn:.2f} s after spawn ({rejoin_from_listen:.2f} s after "
          f"listening); all 20 pending items {caught_up_after:.2f} s after spawn, via catch-up {via_catchup:.0f}; "
          f"other programs used {others:.0%} of the machine")
    assert rejoin_from_listen < REJOIN_BOUND_S
    assert rejoin_from_spawn < (REJOIN_BOUND_S if others <= OTHERS_SHARE_LIMIT else REJOIN_OVERLOADED_BOUND_S)
