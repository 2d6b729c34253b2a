"""GossipNode: the asyncio face of the gossip layer, used by the agent and the oracle alike.

It owns the process-side state of gossip: per-topic receive queues (one consumer each), the
bounded publish window, the allow-lists and pending-item providers the application installs, and
the lifecycle of the gossip thread (runtime.py). It must never call into libp2p directly (only via
the runtime's two thread-safe doors), never block the event loop, and never drop a message without
counting it.

    node = GossipNode(identity, 4001, bootstrap=[...], topics={CLAIMS: TopicPolicy(...)})
    await node.start()
    async for msg in node.subscribe(CLAIMS): ...
    await node.publish(CLAIMS, payload)
    await node.stop()
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from faultproof.errors import FaultproofError, Reason
from faultproof.gossip.keys import key_pair_for, peer_id_for_public_key
from faultproof.gossip.metrics import GossipMetrics
from faultproof.gossip.policy import TopicGate, TopicPolicy, freeze_allowed
from faultproof.gossip.runtime import GossipRuntime, Provider, ensure_port_free
from faultproof.gossip.settings import GossipSettings
from faultproof.identity import Identity

log = logging.getLogger("faultproof.gossip")


def wire_libp2p_logging(level: int) -> None:
    """Importing libp2p detaches its logger (propagate=False, no handlers unless LIBP2P_DEBUG):
    put it back under the process's logging so its warnings land with ours."""
    lg = logging.getLogger("libp2p")
    lg.handlers.clear()
    lg.propagate = True
    lg.setLevel(level)
    # A few libp2p modules pin their own level (auto_connector: INFO, every 30 s): align them.
    for name, child in logging.root.manager.loggerDict.items():
        if name.startswith("libp2p.") and isinstance(child, logging.Logger) and child.level != logging.NOTSET:
            child.setLevel(level)


@dataclass(frozen=True)
class GossipMessage:
    topic: str
    sender: bytes  # 32-byte Ed25519 public key of the authenticated origin
    data: bytes


class _Closed:
    pass


_CLOSED = _Closed()


class Subscription:
    """Async iterator over one topic's messages. Ends when the node stops."""

    def __init__(self, topic: str, queue: asyncio.Queue[GossipMessage | _Closed]) -> None:
        self.topic = topic
        self._queue = queue

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> GossipMessage:
        item = await self._queue.get()
        if isinstance(item, _Closed):
            self._queue.put_nowait(item)  # keep it for any later reader
            raise StopAsyncIteration
        return item

    def qsize(self) -> int:
        return self._queue.qsize()


class GossipNode:
    """A libp2p GossipSub node in its own trio thread, behind an asyncio API."""

    def __init__(
        self,
        identity: Identity,
        listen_port: int,
        *,
        bootstrap: Sequence[str] = (),
        topics: Mapping[str, TopicPolicy],
        registry: CollectorRegistry | None = None,
        settings: GossipSettings | None = None,
    ) -> None:
        if not topics:
            raise ValueError("a gossip node needs at least one topic")
        for addr in bootstrap:
            if "/p2p/" not in addr:
                raise ValueError(f"bootstrap address {addr!r} must end in /p2p/<peer id>")
        self.identity = identity
        self.public_key = identity.public_key
        self.settings = settings or GossipSettings()
        self.metrics = GossipMetrics(registry)
        self.listen_port = listen_port
        self._bootstrap = list(bootstrap)
        self._gates = {t: TopicGate(p) for t, p in topics.items()}
        self._queues: dict[str, asyncio.Queue[GossipMessage | _Closed]] = {
            t: asyncio.Queue(maxsize=self.settings.receive_buffer) for t in topics
        }
        self._subscribed: set[str] = set()
        self._providers: dict[str, Provider] = {}
        self._runtime: GossipRuntime | None = None
        self._publish_slots = asyncio.Semaphore(self.settings.publish_queue_size)
        self._in_flight: set[asyncio.Future[None]] = set()
        self._publishing = 0
        self._state = "new"
        self._key_pair = key_pair_for(identity)
        wire_libp2p_logging(self.settings.libp2p_log_level)

    # ---------------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        if self._state != "new":
            raise RuntimeError(f"cannot start a node that is {self._state}")
        ensure_port_free(self.listen_port)
        interval = self.settings.gil_switch_interval
        if interval is not None and interval < sys.getswitchinterval():
            sys.setswitchinterval(interval)
        loop = asyncio.get_running_loop()
        self._runtime = GossipRuntime(
            key_pair=self._key_pair,
            listen_port=self.listen_port,
            bootstrap=self._bootstrap,
            gates=self._gates,
            settings=self.settings,
            metrics=self.metrics,
            loop=loop,
            deliver=self._on_delivery,
            providers=self._providers,
            on_exit=self._on_runtime_exit,
        )
        self._state = "starting"
        try:
            await asyncio.wrap_future(self._runtime.start_thread())
        except BaseException:
            self._state = "failed"
            self._runtime.request_stop()  # e.g. start() was cancelled: do not leave a thread behind
            raise
        self._state = "running"

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop the host and close the listener. Idempotent; ends every subscription iterator."""
        if self._state in ("stopped", "new"):
            self._state = "stopped"
            return
        self._state = "stopping"
        rt = self._runtime
        if rt is not None:
            try:
                await asyncio.wait_for(asyncio.wrap_future(rt.request_stop()), timeout)
            except TimeoutError:
                log.warning("gossip thread did not stop within %.1f s", timeout)
            await asyncio.to_thread(rt.join, 1.0)
        self._close_local()
        self._state = "stopped"

    def _close_local(self) -> None:
        """Fail whatever still waits on the gossip thread and end every subscription."""
        for fut in list(self._in_flight):
            if not fut.done():
                fut.set_exception(FaultproofError(Reason.UNAVAILABLE, "gossip stopped"))
        for q in self._queues.values():
            try:
                q.put_nowait(_CLOSED)
            except asyncio.QueueFull:
                q.get_nowait()  # lose one buffered message rather than leave a reader hanging
                q.put_nowait(_CLOSED)

    def _on_runtime_exit(self) -> None:
        """The gossip thread ended. Expected during stop(); otherwise it crashed (logged there)."""
        if self._state == "running":
            log.error("gossip thread exited unexpectedly; node is down")
            self._state = "failed"
            self._close_local()

    async def __aenter__(self) -> GossipNode:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---------------------------------------------------------------------------------- publishing

    async def publish(self, topic: str, data: bytes) -> None:
        """Hand `data` to the mesh. Awaits while the publish window or any peer send queue is full:
        a burst is delayed, never dropped. Returns once libp2p has queued it to every mesh peer.
        Raises FaultproofError(OVERSIZE) above the topic's limit, UNAVAILABLE when not running."""
        gate = self._gates.get(topic)
        if gate is None:
            raise ValueError(f"unknown topic {topic!r}")
        if len(data) > gate.policy.max_size:
            raise FaultproofError(Reason.OVERSIZE, f"{len(data)} bytes > {gate.policy.max_size} on {topic}")
        rt = self._runtime
        if self._state != "running" or rt is None:
            raise FaultproofError(Reason.UNAVAILABLE, f"gossip node is {self._state}")
        self._publishing += 1
        self.metrics.publish_queue.set(self._publishing)
        try:
            async with self._publish_slots:
                fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._in_flight.add(fut)
                try:
                    rt.submit_publish(topic, bytes(data), fut)
                    await fut
                finally:
                    self._in_flight.discard(fut)
        finally:
            self._publishing -= 1
            self.metrics.publish_queue.set(self._publishing)

    # ---------------------------------------------------------------------------------- receiving

    def subscribe(self, topic: str) -> Subscription:
        """The one consumer of `topic`. Messages are buffered from start(), so nothing is lost
        between start() and subscribe(). Own messages and duplicates never appear."""
        if topic not in self._queues:
            raise ValueError(f"unknown topic {topic!r}; topics are fixed at construction")
        if topic in self._subscribed:
            raise RuntimeError(f"topic {topic!r} already has a consumer")
        self._subscribed.add(topic)
        return Subscription(topic, self._queues[topic])

    def _on_delivery(self, topic: str, sender: bytes, data: bytes, path: str) -> None:
        """Runs on the loop (scheduled by the gossip thread)."""
        try:
            self._queues[topic].put_nowait(GossipMessage(topic, sender, data))
        except asyncio.QueueFull:
            self.metrics.receive_overflow.labels(topic).inc()
            log.warning("receive buffer of %s full (%d); dropped a message", topic, self.settings.receive_buffer)
            return
        self.metrics.delivered.labels(topic, path).inc()

    # ---------------------------------------------------------------------------------- membership

    def set_allowed(self, topic: str, allowed: Iterable[bytes] | Callable[[bytes], bool] | None) -> None:
        """Replace who may publish on `topic` (32-byte public keys, a predicate, or None = anyone).
        Takes effect for the next message validated. A predicate runs in the gossip thread."""
        gate = self._gates.get(topic)
        if gate is None:
            raise ValueError(f"unknown topic {topic!r}")
        gate.set_allowed(freeze_allowed(allowed))

    def set_pending_provider(self, topic: str, provider: Provider | None) -> None:
        """Install what this node serves on `/faultproof/1/pending` for `topic`: a callable (sync or
        async, run on this loop) returning the payloads still pending. None removes it."""
        if topic not in self._gates:
            raise ValueError(f"unknown topic {topic!r}")
        if provider is None:
            self._providers.pop(topic, None)
        else:
            self._providers[topic] = provider

    # ---------------------------------------------------------------------------------- state

    @property
    def listen_addr(self) -> str:
        """Full multiaddr with /p2p/<peer id>; known once started."""
        rt = self._runtime
        if rt is None or rt.listen_addr is None:
            raise RuntimeError("node not started")
        return rt.listen_addr

    @property
    def peer_id(self) -> str:
        return str(peer_id_for_public_key(self.public_key))

    @property
    def topics(self) -> list[str]:
        return list(self._gates)

    def peers(self) -> list[bytes]:
        """Public keys of peers we exchange pubsub messages with (sampled every ~0.2 s)."""
        rt = self._runtime
        return list(rt.snapshot.peers) if rt is not None else []

    def mesh_size(self, topic: str) -> int:
        rt = self._runtime
        return rt.snapshot.mesh.get(topic, 0) if rt is not None else 0

    def health(self) -> dict[str, Any]:
        rt = self._runtime
        snap = rt.snapshot if rt is not None else None
        return {
            "state": self._state,
            "ok": self._state == "running" and snap is not None and snap.running,
            "peer_id": self.peer_id,
            "public_key": self.public_key.hex(),
            "listen_addr": rt.listen_addr if rt is not None else None,
            "peers": len(snap.peers) if snap else 0,
            "mesh": dict(snap.mesh) if snap else {},
            "bootstrap": dict(snap.bootstrap_connected) if snap else {},
            "publishing": self._publishing,
            "publish_queue": snap.publish_queue if snap else 0,
            "receive_backlog": {t: q.qsize() for t, q in self._queues.items()},
        }
