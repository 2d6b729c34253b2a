"""A line of five processes, A - B - C - D - E: every message must be relayed hop by hop."""

from __future__ import annotations

import pytest

from tests.gossip.cluster import Cluster, metric
from tests.gossip.conftest import BULK

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def test_line_topology_delivers_end_to_end_both_ways(line5: Cluster) -> None:
    c = line5
    # It really is a line: the ends know only their one neighbour.
    assert c.nodes[0].get("/status")["peers"] == 1
    assert c.nodes[4].get("/status")["peers"] == 1

    c.nodes[0].post("/publish", {"topic": BULK, "tag": "a2e", "count": 200, "size": 2048})
    views = c.wait_received([1, 2, 3, 4], BULK, "a2e", 200, 60)
    for i, v in views.items():
        assert v["unique"] == 200 and v["duplicates"] == 0, (i, v["unique"])

    c.nodes[4].post("/publish", {"topic": BULK, "tag": "e2a", "count": 50, "size": 2048})
    back = c.wait_received([0, 1, 2, 3], BULK, "e2a", 50, 60)
    for i, v in back.items():
        assert v["unique"] == 50, (i, v["unique"])
    for node in c.nodes:
        assert metric(node.get("/metrics"), "faultproof_gossip_peer_queue_drops_total") == 0
    print(f"\nline A->E 200 x 2 KB: E latency {views[4]['latency_ms']}; E->A 50: A latency {back[0]['latency_ms']}")
