"""Tunable settings of the gossip layer, with the reason for each default.

Most defaults undo a py-libp2p 0.8.1 default that silently loses messages (measured; see
/work/shared/notes/libp2p.md and docs/gossip.md). This file holds values and their validation only;
it must never import libp2p, so a config loader can use it without starting anything.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass


@dataclass(frozen=True)
class GossipSettings:
    # -- GossipSub --
    # v1.1 only: v1.2 adds an IDONTWANT control RPC per message per mesh peer, which on this CPU-
    # bound stack costs more than the duplicate 2 KB payloads it saves (measured, docs/gossip.md).
    protocols: tuple[str, ...] = ("/meshsub/1.1.0",)
    heartbeat_interval: int = 1  # libp2p default 120 s: the mesh would take minutes to repair
    degree: int = 6  # D=3 left a node with an empty mesh at 10 nodes
    degree_low: int = 5
    degree_high: int = 12
    seen_ttl: int = 120  # libp2p's seen-cache (peer+seqno ids): stops relay loops
    gossip_window: int = 3
    gossip_history: int = 5

    # -- flow control --
    # Each peer's send queue; libp2p's 32 drops a burst silently. Relays cannot slow their
    # upstream (libp2p spawns a task per received message), so they get generous room.
    peer_queue_size: int = 1024
    # The publisher waits while any peer send queue holds this many RPCs (half of libp2p's own 32):
    # a burst leaves the origin no faster than the slowest peer drains, so relays never fill up.
    publish_high_water: int = 16
    # A peer whose queue stays at the high-water mark this long is treated as stuck and no longer
    # holds everyone else back; what it misses reaches it by catch-up / re-gossip.
    publish_stall_timeout: float = 5.0
    publish_queue_size: int = 256  # publishes in flight before `publish()` itself waits
    receive_buffer: int = 100_000  # per topic, asyncio side; overflow is counted, never silent

    # -- de-duplication and catch-up --
    dedup_ttl: float = 600.0  # longer than any re-gossip interval, so repeats are suppressed
    dedup_max_entries: int = 200_000
    envelope_cache_ttl: float = 3600.0  # signed envelopes kept to serve pending items onward
    envelope_cache_max_entries: int = 20_000
    envelope_cache_max_bytes: int = 64 * 1024 * 1024  # vote batches can be ~140 KB each
    catchup_delays: tuple[float, ...] = (0.0, 3.0)  # ask each new peer now and once the mesh formed
    catchup_timeout: float = 15.0
    catchup_max_items: int = 20_000
    catchup_max_bytes: int = 64 * 1024 * 1024
    catchup_max_concurrent_serves: int = 4

    # -- connectivity --
    reconnect_initial: float = 0.25
    reconnect_max: float = 2.0  # a restarted peer is redialled within ~2 s
    dial_timeout: float = 5.0
    snapshot_interval: float = 0.2  # how often peers/mesh are sampled for health and metrics

    # Memoise libp2p's repeated per-RPC signature checks and address lookups, and stop yamux's
    # per-read window updates (libp2p_tuning.py): ~3x less CPU per message. Process-wide.
    libp2p_cpu_patches: bool = True
    libp2p_log_level: int = logging.WARNING  # libp2p is chatty at INFO
    # The gossip thread is CPU-bound; with CPython's default 5 ms switch interval the asyncio
    # thread waits up to 5 ms for the GIL at every hand-off, several times per HTTP request.
    # start() lowers the *process-wide* interval to this (never raises it); None leaves it alone.
    gil_switch_interval: float | None = 0.001

    def __post_init__(self) -> None:
        if not (0 < self.degree_low <= self.degree <= self.degree_high):
            raise ValueError("need 0 < degree_low <= degree <= degree_high")
        if self.heartbeat_interval < 1:
            raise ValueError("heartbeat_interval is whole seconds, >= 1")
        if not (0 < self.publish_high_water <= self.peer_queue_size):
            raise ValueError("need 0 < publish_high_water <= peer_queue_size")
        if self.publish_queue_size < 1 or self.receive_buffer < 1:
            raise ValueError("queue sizes must be positive")
        if self.reconnect_initial <= 0 or self.reconnect_max < self.reconnect_initial:
            raise ValueError("need 0 < reconnect_initial <= reconnect_max")
