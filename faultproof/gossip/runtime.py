"""Everything that runs inside the gossip thread: the libp2p host, GossipSub, the validators, the
publish pump, the reconnect loops and both ends of the catch-up protocol.

py-libp2p 0.8.1 is trio-only, so it lives in one daemon thread running `trio.run`, and the rest of
the process (asyncio) talks to it through exactly two doors:
  asyncio -> trio : `TrioToken.run_sync_soon` (never blocks the loop)
  trio -> asyncio : `loop.call_soon_threadsafe` (never blocks the gossip thread)
All libp2p objects, the rate limiters and the caches are touched only from this thread. The one
exception is read-only: `snapshot`, an immutable value rebuilt here and swapped atomically.

This file must never block on the asyncio loop (the provider call awaits a trio Event, it does not
wait on a future), never decode application payloads, and never drop a message without counting
it by reason.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import inspect
import logging
import math
import random
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import multiaddr
import trio
from libp2p import create_yamux_muxer_option, new_host
from libp2p.abc import IHost, INetStream
from libp2p.crypto.keys import KeyPair
from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo, info_from_p2p_addr
from libp2p.pubsub.gossipsub import GossipSub
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub
from libp2p.pubsub.rpc_queue import RpcQueue
from libp2p.pubsub.validators import PUBSUB_SIGNING_PREFIX, signature_validator
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.tools.anyio_service import background_trio_service
from libp2p.utils.varint import encode_varint_prefixed, read_varint_prefixed_bytes_limited

from faultproof.errors import FaultproofError, Reason
from faultproof.futures import settle_from_thread
from faultproof.gossip import catchup, libp2p_tuning
from faultproof.gossip.keys import public_key_of
from faultproof.gossip.metrics import GossipMetrics
from faultproof.gossip.policy import TopicGate, TTLCache, content_hash
from faultproof.gossip.settings import GossipSettings

log = logging.getLogger("faultproof.gossip")

LISTEN_HOST = "127.0.0.1"

# Called on the asyncio loop: (topic, 32-byte sender key, payload, path "gossip" | "catchup").
DeliverFn = Callable[[str, bytes, bytes, str], None]
Provider = Callable[[], Awaitable[Sequence[bytes]] | Sequence[bytes]]


@dataclass(frozen=True)
class Snapshot:
    """What the asyncio side may read without asking the gossip thread."""

    running: bool = False
    peers: tuple[bytes, ...] = ()  # public keys of peers with a pubsub stream
    mesh: dict[str, int] = field(default_factory=dict)
    publish_queue: int = 0
    bootstrap_connected: dict[str, bool] = field(default_factory=dict)


def ensure_port_free(port: int) -> None:
    """Refuse to start on a port another process already listens on.

    libp2p sets SO_REUSEPORT, so a second node on the same port binds without error and the kernel
    splits incoming connections between the two. A probe socket without SO_REUSEPORT fails with
    EADDRINUSE if anything listens there. SO_REUSEADDR keeps TIME_WAIT leftovers of a killed
    predecessor from blocking a restart. (A start racing ours between probe and bind is not caught.)
    """
    if port == 0:
        return
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((LISTEN_HOST, port))
    except OSError as e:
        raise FaultproofError(Reason.UNAVAILABLE, f"port {LISTEN_HOST}:{port} is already in use: {e}") from None
    finally:
        probe.close()


class _SizedPeerQueues(dict[ID, RpcQueue]):
    """`Pubsub.peer_queues` with room for bursts: libp2p builds each RpcQueue with 32 slots and
    drops silently past that; we resize each queue as libp2p registers it (instance-local)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def __setitem__(self, peer_id: ID, queue: RpcQueue) -> None:
        queue._queue.max_size = self.size  # noqa: SLF001 - no public knob in 0.8.1
        super().__setitem__(peer_id, queue)


class _Pubsub(Pubsub):
    """Pubsub that hands validated messages straight to our sink instead of libp2p's per-topic
    channel (32 slots, drops when full): the sink de-duplicates and forwards to asyncio."""

    def __init__(self, *args: Any, sink: Callable[[rpc_pb2.Message], None], peer_queue_size: int, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._sink = sink
        self.peer_queues = _SizedPeerQueues(peer_queue_size)

    def notify_subscriptions(self, publish_message: rpc_pb2.Message) -> None:
        self._sink(publish_message)


class _GossipSub(GossipSub):
    """GossipSub that counts the RPCs it drops (libp2p only logs them at DEBUG)."""

    def __init__(self, *args: Any, on_drop: Callable[[rpc_pb2.RPC, str], None], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._on_drop = on_drop

    def _handle_dropped_rpc(self, peer_id: ID, rpc: rpc_pb2.RPC, reason: str) -> None:
        self._on_drop(rpc, reason)
        super()._handle_dropped_rpc(peer_id, rpc, reason)


class GossipRuntime:
    """The trio half of a GossipNode. Constructed on the asyncio side, then runs in its thread."""

    def __init__(
        self,
        *,
        key_pair: KeyPair,
        listen_port: int,
        bootstrap: Sequence[str],
        gates: dict[str, TopicGate],
        settings: GossipSettings,
        metrics: GossipMetrics,
        loop: asyncio.AbstractEventLoop,
        deliver: DeliverFn,
        providers: dict[str, Provider],
        on_exit: Callable[[], None],
    ) -> None:
        self.key_pair = key_pair
        self.peer_id = ID.from_pubkey(key_pair.public_key)
        self._my_id_bytes = self.peer_id.to_bytes()
        self.listen_port = listen_port
        # One static peer list is usually shared by every node: skip our own entry.
        infos = [(info_from_p2p_addr(multiaddr.Multiaddr(a)), a) for a in bootstrap]
        infos = [(info, a) for info, a in infos if info.peer_id != self.peer_id]
        self.bootstrap: list[PeerInfo] = [info for info, _ in infos]
        self._bootstrap_text = {info.peer_id: a for info, a in infos}
        self.gates = gates
        self.settings = settings
        self.metrics = metrics
        self.loop = loop
        self._deliver_cb = deliver
        # Deliveries cross to asyncio in batches: one loop wake-up per batch, not per message
        # (each wake-up is a GIL hand-off that stalls this thread under load).
        self._outbox: collections.deque[tuple[str, bytes, bytes, str]] = collections.deque()
        self._flush_scheduled = False
        self.providers = providers  # mutated by the asyncio side (atomic dict ops); read here
        self._on_exit = on_exit  # called on the loop when the thread ends, for whatever reason

        self.snapshot = Snapshot()
        self.listen_addr: str | None = None
        self.token: trio.lowlevel.TrioToken | None = None
        self._thread: threading.Thread | None = None
        self._started: concurrent.futures.Future[str] = concurrent.futures.Future()
        self._stopped: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._stop_event: trio.Event | None = None
        self._stop_requested = False

        self._dedup = TTLCache(settings.dedup_ttl, settings.dedup_max_entries)
        self._envelopes = TTLCache(
            settings.envelope_cache_ttl,
            settings.envelope_cache_max_entries,
            max_bytes=settings.envelope_cache_max_bytes,
        )
        self._seqno = time.time_ns()
        self._full_since: dict[ID, float] = {}
        self._serve_slots: trio.Semaphore | None = None
        self._known_peers: set[ID] = set()

        self.host: IHost | None = None
        self.pubsub: _Pubsub | None = None
        self.router: _GossipSub | None = None
        pub_send, pub_recv = trio.open_memory_channel[tuple[str, bytes, asyncio.Future[None]]](math.inf)
        self._pub_send = pub_send
        self._pub_recv = pub_recv
        self._max_frame = catchup.max_frame_bytes(max(g.policy.max_size for g in gates.values()))

    # ------------------------------------------------------------------ thread lifecycle (asyncio side)

    def start_thread(self) -> concurrent.futures.Future[str]:
        if self.settings.libp2p_cpu_patches:
            libp2p_tuning.apply()
        self._thread = threading.Thread(target=self._thread_main, name=f"gossip-{self.listen_port}", daemon=True)
        self._thread.start()
        return self._started

    def request_stop(self) -> concurrent.futures.Future[None]:
        self._stop_requested = True  # seen by _main if it has not created its stop event yet
        token, event = self.token, self._stop_event
        if token is not None and event is not None and not self._stopped.done():
            try:
                token.run_sync_soon(event.set)
            except trio.RunFinishedError:
                pass
        return self._stopped

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def submit_publish(self, topic: str, data: bytes, fut: asyncio.Future[None]) -> None:
        """From asyncio: queue one publish. The caller bounds how many are in flight."""
        if self.token is None:
            raise FaultproofError(Reason.UNAVAILABLE, "gossip is not running")
        try:
            self.token.run_sync_soon(self._pub_send.send_nowait, (topic, data, fut))
        except trio.RunFinishedError:
            raise FaultproofError(Reason.UNAVAILABLE, "gossip has stopped") from None

    def _thread_main(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as e:  # noqa: BLE001 - reported to the asyncio side, not lost
            log.exception("gossip thread failed")
            if not self._started.done():
                self._started.set_exception(e)
        finally:
            if not self._started.done():
                self._started.set_exception(FaultproofError(Reason.UNAVAILABLE, "gossip stopped before start"))
            self.snapshot = Snapshot()
            if not self._stopped.done():
                self._stopped.set_result(None)
            try:
                self.loop.call_soon_threadsafe(self._on_exit)
            except RuntimeError:
                pass  # loop already closed

    # ------------------------------------------------------------------ trio side

    def _resolve(self, fut: asyncio.Future[Any], result: Any = None, exc: BaseException | None = None) -> None:
        try:
            settle_from_thread(fut, result, exc)
        except RuntimeError:  # loop closed: nobody is waiting any more
            pass

    async def _main(self) -> None:
        self.token = trio.lowlevel.current_trio_token()
        self._stop_event = trio.Event()
        s = self.settings
        self._serve_slots = trio.Semaphore(s.catchup_max_concurrent_serves)
        noise = NoiseTransport(self.key_pair, noise_privkey=create_x25519_key_pair().private_key)
        listen = multiaddr.Multiaddr(f"/ip4/{LISTEN_HOST}/tcp/{self.listen_port}")
        host = new_host(
            key_pair=self.key_pair,
            # Noise only: libp2p's default also offers TLS, SECIO and *plaintext*.
            sec_opt={NOISE_PROTOCOL_ID: noise},
            muxer_opt=create_yamux_muxer_option(),
            listen_addrs=[listen],
        )
        # Our reconnect loop paces dials; libp2p's own retries would hide a dead peer for seconds.
        host.get_network().retry_config.max_retries = 0  # type: ignore[attr-defined]
        self.host = host
        router = _GossipSub(
            protocols=[TProtocol(p) for p in s.protocols],
            degree=s.degree,
            degree_low=s.degree_low,
            degree_high=s.degree_high,
            heartbeat_interval=s.heartbeat_interval,
            heartbeat_initial_delay=0.1,
            gossip_window=s.gossip_window,
            gossip_history=s.gossip_history,
            # Spam protection drops > ~10 msg/s per forwarding peer, our own publishes included;
            # our validators rate-limit per origin instead.
            spam_protection_enabled=False,
            # Adaptive gossip stretches the 1 s heartbeat to 60 s after ~30 s.
            adaptive_gossip_enabled=False,
            # Every node of a devnet shares 127.0.0.1: IP diversity means nothing here, and the
            # membership allow-list is our eclipse defence.
            eclipse_protection_enabled=False,
            on_drop=self._on_rpc_dropped,
        )
        self.router = router
        pubsub = _Pubsub(
            host,
            router,
            strict_signing=True,
            seen_ttl=s.seen_ttl,
            sink=self._on_pubsub_message,
            peer_queue_size=s.peer_queue_size,
        )
        self.pubsub = pubsub
        try:
            async with host.run(listen_addrs=[listen]):
                try:
                    async with background_trio_service(pubsub), background_trio_service(router):
                        await pubsub.wait_until_ready()
                        for topic, gate in self.gates.items():
                            pubsub.set_topic_validator(topic, self._make_validator(topic, gate), False)
                            await pubsub.subscribe(topic)
                        host.set_stream_handler(catchup.PENDING_PROTOCOL, self._serve_pending)
                        async with trio.open_nursery() as nursery:
                            nursery.start_soon(self._publish_pump)
                            nursery.start_soon(self._snapshot_loop, nursery)
                            for info in self.bootstrap:
                                nursery.start_soon(self._keep_connected, info)
                            self.listen_addr = self._own_addr()
                            if not self._started.done():  # done = start() gave up waiting
                                self._started.set_result(self.listen_addr)
                            log.info("gossip listening on %s", self.listen_addr)
                            if self._stop_requested:
                                self._stop_event.set()
                            await self._stop_event.wait()
                            nursery.cancel_scope.cancel()
                finally:
                    self._fail_pending_publishes()
                    with trio.move_on_after(3) as cs:
                        cs.shield = True
                        await host.close()  # the TCP listener stays open until this
        finally:
            self.snapshot = Snapshot()

    def _own_addr(self) -> str:
        assert self.host is not None
        for addr in self.host.get_addrs():
            text = str(addr)
            if text.startswith(f"/ip4/{LISTEN_HOST}/tcp/"):
                return text if "/p2p/" in text else f"{text}/p2p/{self.peer_id}"
        return f"/ip4/{LISTEN_HOST}/tcp/{self.listen_port}/p2p/{self.peer_id}"

    def _fail_pending_publishes(self) -> None:
        while True:
            try:
                _topic, _data, fut = self._pub_recv.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                return
            self._resolve(fut, exc=FaultproofError(Reason.UNAVAILABLE, "gossip stopped"))

    # -- validation and delivery ------------------------------------------------------------------

    def _count_drop(self, topic: str, reason: Reason) -> None:
        self.metrics.dropped.labels(topic, reason.value).inc()

    def _make_validator(self, topic: str, gate: TopicGate) -> Callable[[ID, rpc_pb2.Message], bool]:
        my_id = self._my_id_bytes

        def validate(_forwarder: ID, msg: rpc_pb2.Message) -> bool:
            # Runs after libp2p checked the origin's signature (strict signing) and before any
            # delivery or relay. It judges the origin, never the relaying peer.
            if msg.from_id == my_id:
                return True  # our own publish: the application is trusted locally
            if len(msg.topicIDs) != 1:
                self._count_drop(topic, Reason.MALFORMED)
                return False
            sender = public_key_of(msg.from_id)
            if sender is None:
                self._count_drop(topic, Reason.MALFORMED)
                return False
            reason = gate.check(sender, len(msg.data), time.monotonic())
            if reason is not None:
                self._count_drop(topic, reason)
                return False
            return True

        return validate

    def _on_pubsub_message(self, msg: rpc_pb2.Message) -> None:
        """A message that passed signature and validators (ours included)."""
        if len(msg.topicIDs) != 1:
            return
        topic = msg.topicIDs[0]
        if topic not in self.gates:
            return
        h = content_hash(topic, msg.data)
        self._envelopes.add(h, msg.SerializeToString())
        if msg.from_id == self._my_id_bytes:
            # Own publishes are never delivered back; remembering the content also hides our
            # own items when a peer re-gossips them under its name.
            self._dedup.add(h)
            return
        sender = public_key_of(msg.from_id)
        if sender is None:  # the validator refused these already; belt and braces
            return
        self._deliver(topic, sender, msg.data, h, "gossip")

    def _deliver(self, topic: str, sender: bytes, data: bytes, h: bytes, path: str) -> None:
        if not self._dedup.add(h):
            self._count_drop(topic, Reason.DUPLICATE)
            return
        self._outbox.append((topic, sender, data, path))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            try:
                self.loop.call_soon_threadsafe(self._flush_outbox)
            except RuntimeError:
                pass  # the asyncio loop is gone: the process is exiting

    def _flush_outbox(self) -> None:
        """On the asyncio loop. Clear the flag before draining, so an append racing the drain
        schedules another flush instead of being stranded."""
        self._flush_scheduled = False
        outbox, deliver = self._outbox, self._deliver_cb
        while outbox:
            deliver(*outbox.popleft())

    def _on_rpc_dropped(self, rpc: rpc_pb2.RPC, reason: str) -> None:
        if len(rpc.publish):
            self.metrics.peer_queue_drops.labels(reason).inc(len(rpc.publish))

    # -- publishing ---------------------------------------------------------------------------

    async def _publish_pump(self) -> None:
        """The one publish queue: strictly in order, waiting for room instead of dropping."""
        assert self.pubsub is not None
        async for topic, data, fut in self._pub_recv:
            if fut.cancelled():
                continue
            try:
                await self._wait_for_room()
                await self.pubsub.publish(topic, data)
            except trio.Cancelled:
                self._resolve(fut, exc=FaultproofError(Reason.UNAVAILABLE, "gossip stopped"))
                raise
            except Exception as e:  # noqa: BLE001 - handed to the awaiting caller
                self._resolve(fut, exc=e)
            else:
                self.metrics.published.labels(topic).inc()
                self._resolve(fut)

    async def _wait_for_room(self) -> None:
        assert self.pubsub is not None
        s = self.settings
        started = trio.current_time()
        while True:
            now = trio.current_time()
            blocked = False
            for pid, queue in list(self.pubsub.peer_queues.items()):
                if len(queue) >= s.publish_high_water:
                    since = self._full_since.setdefault(pid, now)
                    if now - since < s.publish_stall_timeout:
                        blocked = True
                    elif now - since < s.publish_stall_timeout + 0.01:
                        log.warning("peer %s send queue stuck for %.0f s; publishing past it", pid, now - since)
                else:
                    self._full_since.pop(pid, None)
            if not blocked:
                if now > started:
                    self.metrics.publish_waits.inc(now - started)
                return
            await trio.sleep(0.002)

    # -- connectivity -------------------------------------------------------------------------

    def _connected(self, peer_id: ID) -> bool:
        assert self.host is not None
        conns = self.host.get_network().get_connections(peer_id)
        return any(not getattr(c, "is_closed", False) for c in conns)

    async def _keep_connected(self, info: PeerInfo) -> None:
        """Our own bootstrap loop: libp2p's gives up after ~3 failures and its negative dial cache
        would keep a restarted peer out for 60 s."""
        assert self.host is not None
        s = self.settings
        swarm = self.host.get_network()
        backoff = s.reconnect_initial
        while True:
            if self._connected(info.peer_id):
                backoff = s.reconnect_initial
                await trio.sleep(0.25)
                continue
            try:
                with trio.fail_after(s.dial_timeout):
                    if swarm.get_connections(info.peer_id):
                        # Only closed connections left: `host.connect` would "succeed" on them
                        # without dialling, so purge them first.
                        await swarm.close_peer(info.peer_id)
                    swarm.unblock_peer(info.peer_id)  # type: ignore[attr-defined]
                    self.host.get_peerstore().add_addrs(info.peer_id, info.addrs, 3600)
                    await self.host.connect(info)
                if not self._connected(info.peer_id):
                    raise ConnectionError("connection closed right after dialling")
            except Exception as e:  # noqa: BLE001 - a failed dial is routine; we retry
                self.metrics.dials.labels("failed").inc()
                log.debug("dial %s failed: %s", info.peer_id, e)
                await trio.sleep(backoff * random.uniform(0.8, 1.2))
                backoff = min(backoff * 2, s.reconnect_max)
            else:
                self.metrics.dials.labels("ok").inc()
                log.info("connected to bootstrap peer %s", info.peer_id)

    async def _snapshot_loop(self, nursery: trio.Nursery) -> None:
        assert self.pubsub is not None and self.router is not None
        while True:
            peers = tuple(self.pubsub.peers)
            current = set(peers)
            for pid in current - self._known_peers:
                for delay in self.settings.catchup_delays:
                    nursery.start_soon(self._request_pending, pid, delay)
            self._known_peers = current
            for pid in list(self._full_since):
                if pid not in self.pubsub.peer_queues:
                    del self._full_since[pid]
            mesh = {t: len(self.router.mesh.get(t, ())) for t in self.gates}
            keys = tuple(k for k in (public_key_of(p.to_bytes()) for p in peers) if k is not None)
            self.snapshot = Snapshot(
                running=True,
                peers=keys,
                mesh=mesh,
                publish_queue=self._pub_recv.statistics().current_buffer_used,
                bootstrap_connected={self._bootstrap_text[i.peer_id]: self._connected(i.peer_id) for i in self.bootstrap},
            )
            self.metrics.peers.set(len(peers))
            for t, n in mesh.items():
                self.metrics.mesh.labels(t).set(n)
            await trio.sleep(self.settings.snapshot_interval)

    # -- catch-up: responder ------------------------------------------------------------------

    async def _serve_pending(self, stream: INetStream) -> None:
        s = self.settings
        sent = 0
        assert self._serve_slots is not None
        try:
            self._serve_slots.acquire_nowait()
        except trio.WouldBlock:
            # Busy serving others: refuse rather than queue (a requester retries on its next
            # connection and re-gossip covers it meanwhile). Bounds what strangers can make us do.
            await stream.reset()
            return
        try:
            with trio.fail_after(s.catchup_timeout):
                raw = await read_varint_prefixed_bytes_limited(stream, catchup.MAX_REQUEST_BYTES)
                for topic in catchup.decode_request(raw):
                    if topic not in self.gates or topic not in self.providers:
                        continue
                    for data in await self._call_provider(topic):
                        if sent >= s.catchup_max_items:
                            break
                        h = content_hash(topic, data)
                        env = self._envelopes.get(h) or self._sign_envelope(topic, data)
                        await stream.write(encode_varint_prefixed(env))
                        sent += 1
                        self.metrics.catchup_served.labels(topic).inc()
                await stream.write(encode_varint_prefixed(catchup.END_OF_RESPONSE))
                await stream.close()
        except Exception as e:  # noqa: BLE001 - one peer's failed request must not hurt us
            log.debug("serving pending items failed after %d: %s", sent, e)
            try:
                await stream.reset()
            except Exception:  # noqa: BLE001
                pass
        finally:
            self._serve_slots.release()

    def _sign_envelope(self, topic: str, data: bytes) -> bytes:
        """A pubsub envelope we sign ourselves, for an item whose origin envelope we no longer hold
        (e.g. learned before our own restart). Receivers then judge it as coming from us."""
        self._seqno += 1
        msg = rpc_pb2.Message(
            data=data, topicIDs=[topic], from_id=self._my_id_bytes, seqno=self._seqno.to_bytes(8, "big")
        )
        signature = self.key_pair.private_key.sign(PUBSUB_SIGNING_PREFIX.encode() + msg.SerializeToString())
        msg.key = self.key_pair.public_key.serialize()
        msg.signature = signature
        return msg.SerializeToString()

    async def _call_provider(self, topic: str) -> Sequence[bytes]:
        """Run the application's provider on the asyncio loop and await it without blocking trio."""
        provider = self.providers.get(topic)
        if provider is None:
            return []

        async def invoke() -> list[bytes]:
            try:
                result = provider()
                if inspect.isawaitable(result):
                    result = await result
                return [bytes(x) for x in result]
            except Exception:
                log.exception("pending-item provider for %s failed", topic)
                raise

        cfut = asyncio.run_coroutine_threadsafe(invoke(), self.loop)
        done = trio.Event()
        token = trio.lowlevel.current_trio_token()

        def wake(_f: object) -> None:
            try:
                token.run_sync_soon(done.set)
            except trio.RunFinishedError:
                pass

        cfut.add_done_callback(wake)
        try:
            await done.wait()
        finally:
            if not cfut.done():
                cfut.cancel()
        return cfut.result()

    # -- catch-up: requester ------------------------------------------------------------------

    async def _request_pending(self, peer_id: ID, delay: float) -> None:
        assert self.host is not None
        s = self.settings
        await trio.sleep(delay)
        if self.pubsub is None or peer_id not in self.pubsub.peers:
            return
        items = 0
        total = 0
        try:
            with trio.fail_after(s.catchup_timeout):
                stream = await self.host.new_stream(peer_id, [catchup.PENDING_PROTOCOL])
                await stream.write(encode_varint_prefixed(catchup.encode_request(list(self.gates))))
                while True:
                    frame = await read_varint_prefixed_bytes_limited(stream, self._max_frame)
                    if frame == catchup.END_OF_RESPONSE:
                        break
                    items += 1
                    total += len(frame)
                    if items > s.catchup_max_items or total > s.catchup_max_bytes:
                        log.warning("peer %s sent more pending items than allowed; stopped reading", peer_id)
                        await stream.reset()
                        break
                    self._accept_pulled(frame)
                else:  # pragma: no cover - loop exits by break only
                    pass
                try:
                    await stream.close()
                except Exception:  # noqa: BLE001
                    pass
        except Exception as e:  # noqa: BLE001 - best effort; re-gossip and the next peer cover it
            self.metrics.catchup_requests.labels("failed").inc()
            log.debug("catch-up from %s failed after %d items: %s", peer_id, items, e)
            return
        self.metrics.catchup_requests.labels("ok").inc()
        if items:
            log.info("caught up %d pending items from %s", items, peer_id)

    def _accept_pulled(self, frame: bytes) -> None:
        """One pulled envelope: the same checks as a gossiped message, minus the per-origin rate
        limit (we asked for these, and the response is bounded by count and bytes)."""
        msg = rpc_pb2.Message()
        try:
            msg.ParseFromString(frame)
        except Exception:  # noqa: BLE001 - protobuf raises DecodeError and friends
            self._count_drop("?", Reason.MALFORMED)
            return
        if len(msg.topicIDs) != 1 or msg.topicIDs[0] not in self.gates:
            self._count_drop("?", Reason.MALFORMED)
            return
        topic = msg.topicIDs[0]
        try:
            signed = signature_validator(msg)
        except Exception:  # noqa: BLE001 - a key that does not even deserialize
            signed = False
        sender = public_key_of(msg.from_id) if signed else None
        if sender is None:
            self._count_drop(topic, Reason.MALFORMED)
            return
        h = content_hash(topic, msg.data)
        if msg.from_id == self._my_id_bytes:
            self._dedup.add(h)
            return
        reason = self.gates[topic].check_static(sender, len(msg.data))
        if reason is not None:
            self._count_drop(topic, reason)
            return
        self._envelopes.add(h, frame)
        self._deliver(topic, sender, msg.data, h, "catchup")
