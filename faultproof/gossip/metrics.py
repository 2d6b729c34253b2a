"""Prometheus metrics of one gossip node, in a registry the process passes in (or a fresh one).

Names are stable: dashboards and tests read them. prometheus_client objects are thread-safe, so the
gossip thread updates them directly. This file must never register into the global default
registry: two nodes in one process (tests) would collide.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class GossipMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.peers = Gauge("faultproof_gossip_peers", "Connected pubsub peers", registry=r)
        self.mesh = Gauge("faultproof_gossip_mesh_peers", "GossipSub mesh size per topic", ["topic"], registry=r)
        self.published = Counter(
            "faultproof_gossip_published_total", "Messages handed to libp2p by this node", ["topic"], registry=r
        )
        self.delivered = Counter(
            "faultproof_gossip_delivered_total",
            "Messages delivered to the application (after validation and de-duplication)",
            ["topic", "path"],
            registry=r,
        )
        self.dropped = Counter(
            "faultproof_gossip_dropped_total",
            "Messages refused before the application saw them, by faultproof Reason value",
            ["topic", "reason"],
            registry=r,
        )
        self.publish_queue = Gauge(
            "faultproof_gossip_publish_queue_depth", "Publishes accepted but not yet handed to libp2p", registry=r
        )
        self.publish_waits = Counter(
            "faultproof_gossip_publish_backpressure_seconds_total",
            "Time the publish queue waited for peer send queues to drain",
            registry=r,
        )
        self.peer_queue_drops = Counter(
            "faultproof_gossip_peer_queue_drops_total",
            "RPCs libp2p dropped because a peer send queue was full or the RPC oversized "
            "(expected 0; catch-up and re-gossip repair it)",
            ["kind"],
            registry=r,
        )
        self.receive_overflow = Counter(
            "faultproof_gossip_receive_overflow_total",
            "Messages dropped because the application did not drain its subscription",
            ["topic"],
            registry=r,
        )
        self.catchup_requests = Counter(
            "faultproof_gossip_catchup_requests_total", "Pending-item requests made to peers", ["result"], registry=r
        )
        self.catchup_served = Counter(
            "faultproof_gossip_catchup_served_items_total", "Pending items served to peers", ["topic"], registry=r
        )
        self.regossiped = Counter(
            "faultproof_gossip_regossiped_total", "Pending items re-published by the Regossiper", ["topic"], registry=r
        )
        self.dials = Counter("faultproof_gossip_dials_total", "Bootstrap dials", ["result"], registry=r)
