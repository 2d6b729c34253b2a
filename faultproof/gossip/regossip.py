"""Regossiper: re-publishes pending items until the application says they are decided, and serves
them to peers that ask on the catch-up path.

Gossip is best-effort (DESIGN §5): a peer that was down or partitioned never sees what was
published meanwhile. So a claim or vote batch stays registered here until its claim is decided;
every `interval` seconds each due item is published again (receivers that already hold it
suppress it as a duplicate but still relay it, so it crosses peers that already had it), and a
peer that (re)connects pulls the whole pending set at once instead of waiting for a round.

This file owns the pending set and its timer only. It must never decide when an item is done
(that is the application's `decided`), never decode payloads, and never publish faster than the
node's back-pressure allows (it awaits `publish`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from faultproof.errors import FaultproofError
from faultproof.gossip.node import GossipNode
from faultproof.gossip.policy import content_hash

log = logging.getLogger("faultproof.gossip")


@dataclass
class _Item:
    topic: str
    data: bytes
    due: float


class Regossiper:
    def __init__(
        self,
        node: GossipNode,
        topics: Iterable[str],
        *,
        interval: float = 10.0,
        max_per_round: int = 256,
        serve_catchup: bool = True,
    ) -> None:
        """`max_per_round` bounds a round's burst: peers rate-limit every origin, re-gossip included."""
        if interval <= 0 or max_per_round < 1:
            raise ValueError("interval must be > 0 and max_per_round >= 1")
        self.node = node
        self.topics = frozenset(topics)
        unknown = self.topics - set(node.topics)
        if unknown:
            raise ValueError(f"topics not configured on the node: {sorted(unknown)}")
        self.interval = interval
        self.max_per_round = max_per_round
        self._items: OrderedDict[bytes, _Item] = OrderedDict()
        if serve_catchup:
            for topic in self.topics:
                node.set_pending_provider(topic, self._provider(topic))

    def _provider(self, topic: str):  # noqa: ANN202 - a zero-argument closure
        return lambda: self.pending(topic)

    def add(self, topic: str, data: bytes, key: bytes | None = None) -> bytes:
        """Register a pending item (already published once by the caller, or received). Returns
        its key (content hash unless given), which `decided` takes. Adding twice is a no-op."""
        if topic not in self.topics:
            raise ValueError(f"topic {topic!r} is not re-gossiped here")
        k = key if key is not None else content_hash(topic, data)
        if k not in self._items:
            self._items[k] = _Item(topic, bytes(data), time.monotonic() + self.interval)
        return k

    def decided(self, key: bytes) -> None:
        self._items.pop(key, None)

    def pending(self, topic: str) -> list[bytes]:
        return [it.data for it in self._items.values() if it.topic == topic]

    def __len__(self) -> int:
        return len(self._items)

    async def regossip_once(self) -> int:
        """Publish every due item (at most `max_per_round`), oldest first. Returns how many."""
        now = time.monotonic()
        due = [(k, it) for k, it in self._items.items() if it.due <= now][: self.max_per_round]
        sent = 0
        for key, item in due:
            if key not in self._items:  # decided while we were publishing
                continue
            try:
                await self.node.publish(item.topic, item.data)
            except FaultproofError as e:
                log.warning("re-gossip stopped: %s", e)
                break
            item.due = time.monotonic() + self.interval
            self._items.move_to_end(key)  # round-robin when more than max_per_round are due
            self.node.metrics.regossiped.labels(item.topic).inc()
            sent += 1
        return sent

    async def run(self) -> None:
        """The timer. Run it inside the owning service's TaskGroup; cancel to stop."""
        while True:
            await asyncio.sleep(min(self.interval, 1.0))
            await self.regossip_once()
