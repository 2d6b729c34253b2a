"""The transport seam (DESIGN §10): the only way the oracle node talks to its peers.

`Transport` is the typed interface (libocr's `NetworkEndpoint` is the model): start and stop,
publish bytes on a topic, subscribe to a topic's authenticated messages, say who may publish on a
topic, and hand the layer the payloads a (re)connecting peer should get. In production it is
`faultproof.gossip.node.GossipNode` (libp2p GossipSub in its own thread); in tests it is
`MemoryTransport` on a `MemoryNetwork`: the same node code, no sockets.

What crosses the seam is bytes and the sender's public key, nothing else: decoding, checking and
deciding stay on the node's side. This file must never decide anything about a message beyond
"is the sender allowed on this topic" (the same gate the gossip layer applies), and never drop or
reorder silently except where `MemoryNetwork` is told to (a test's partition).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, Protocol, runtime_checkable

from faultproof.errors import FaultproofError, Reason
from faultproof.gossip.node import GossipMessage

Allowed = Iterable[bytes] | Callable[[bytes], bool] | None
Provider = Callable[[], list[bytes]]


@runtime_checkable
class Transport(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, topic: str, data: bytes) -> None:
        """Best effort (gossip promises no delivery). Raises FaultproofError when down."""

    def subscribe(self, topic: str) -> AsyncIterator[GossipMessage]:
        """Messages of `topic` from allowed senders; the iterator ends when the transport stops."""

    def set_allowed(self, topic: str, allowed: Allowed) -> None: ...

    def set_pending_provider(self, topic: str, provider: Provider | None) -> None:
        """Payloads sent to a peer when it (re)connects: the catch-up of a restarted node."""

    def health(self) -> dict[str, Any]: ...

    @property
    def peer_id(self) -> str: ...


class MemoryNetwork:
    """Transports in one process: every publish reaches every other started member subscribed to
    the topic, unless a test cut the link (`cut`, `heal`)."""

    def __init__(self) -> None:
        self.members: dict[bytes, MemoryTransport] = {}
        self.cut_links: set[frozenset[bytes]] = set()

    def join(self, public_key: bytes) -> MemoryTransport:
        t = MemoryTransport(self, public_key)
        self.members[public_key] = t
        return t

    def cut(self, a: bytes, b: bytes) -> None:
        self.cut_links.add(frozenset((a, b)))

    def heal(self) -> None:
        self.cut_links.clear()

    def _connected(self, a: bytes, b: bytes) -> bool:
        return frozenset((a, b)) not in self.cut_links

    def _deliver(self, sender: MemoryTransport, topic: str, data: bytes) -> None:
        for peer in self.members.values():
            if peer is not sender and peer.running and self._connected(sender.public_key, peer.public_key):
                peer._receive(GossipMessage(topic, sender.public_key, data))

    def _started(self, joined: MemoryTransport) -> None:
        """Catch-up: a starting member gets every connected peer's pending payloads."""
        for peer in self.members.values():
            if peer is not joined and peer.running and self._connected(peer.public_key, joined.public_key):
                for topic, provider in peer._providers.items():
                    for data in provider():
                        joined._receive(GossipMessage(topic, peer.public_key, data))


class MemoryTransport:
    """One member of a MemoryNetwork: the `Transport` interface over asyncio queues."""

    def __init__(self, network: MemoryNetwork, public_key: bytes) -> None:
        self.network = network
        self.public_key = public_key
        self.running = False
        self._queues: dict[str, asyncio.Queue[GossipMessage | None]] = {}
        self._allowed: dict[str, Callable[[bytes], bool]] = {}
        self._providers: dict[str, Provider] = {}

    @property
    def peer_id(self) -> str:
        return "memory-" + self.public_key.hex()[:16]

    async def start(self) -> None:
        self.running = True
        self.network._started(self)

    async def stop(self) -> None:
        self.running = False
        for q in self._queues.values():
            q.put_nowait(None)

    async def publish(self, topic: str, data: bytes) -> None:
        if not self.running:
            raise FaultproofError(Reason.UNAVAILABLE, "transport not running")
        self.network._deliver(self, topic, data)

    def _queue(self, topic: str) -> asyncio.Queue[GossipMessage | None]:
        return self._queues.setdefault(topic, asyncio.Queue())

    def _receive(self, msg: GossipMessage) -> None:
        allowed = self._allowed.get(msg.topic)
        if allowed is not None and not allowed(msg.sender):
            return
        self._queue(msg.topic).put_nowait(msg)

    async def subscribe(self, topic: str) -> AsyncIterator[GossipMessage]:  # type: ignore[override]
        q = self._queue(topic)
        while True:
            msg = await q.get()
            if msg is None:
                return
            yield msg

    def set_allowed(self, topic: str, allowed: Allowed) -> None:
        if allowed is None:
            self._allowed.pop(topic, None)
        elif callable(allowed):
            self._allowed[topic] = allowed
        else:
            keys = frozenset(allowed)
            self._allowed[topic] = lambda k: k in keys

    def set_pending_provider(self, topic: str, provider: Provider | None) -> None:
        if provider is None:
            self._providers.pop(topic, None)
        else:
            self._providers[topic] = provider

    def health(self) -> dict[str, Any]:
        peers = [k for k, p in self.network.members.items()
                 if p is not self and p.running and self.network._connected(k, self.public_key)]
        return {"state": "running" if self.running else "stopped", "peer_id": self.peer_id, "peers": len(peers)}
