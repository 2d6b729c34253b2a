"""GossipNode in-process (each node still runs its own trio thread and real TCP on 127.0.0.1):
API contracts, the run-time allow-list, re-gossip, and the port guard."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import generate_latest

from faultproof.errors import FaultproofError, Reason
from faultproof.gossip import GossipMessage, GossipNode, Regossiper, TopicPolicy
from faultproof.identity import Identity
from tests.gossip.cluster import free_port, metric

T = "/t/unit"
pytestmark = pytest.mark.timeout(60)


async def wait_for(cond, timeout: float = 10.0) -> None:  # noqa: ANN001
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.05)


async def next_msg(sub, timeout: float = 10.0) -> GossipMessage:  # noqa: ANN001
    async with asyncio.timeout(timeout):
        return await anext(sub)


def dropped(node: GossipNode, reason: Reason) -> float:
    return metric(generate_latest(node.metrics.registry).decode(), "faultproof_gossip_dropped_total", reason=reason.value)


async def pair(policy_b: TopicPolicy) -> tuple[GossipNode, GossipNode]:
    a = GossipNode(Identity.generate(), 0, topics={T: TopicPolicy(max_size=1024)})
    await a.start()
    b = GossipNode(Identity.generate(), 0, bootstrap=[a.listen_addr], topics={T: policy_b})
    await b.start()
    await wait_for(lambda: a.mesh_size(T) == 1 and b.mesh_size(T) == 1)
    return a, b


async def test_delivers_with_authenticated_sender_and_filters_own_messages() -> None:
    a, b = await pair(TopicPolicy())
    try:
        assert a.listen_addr.endswith("/p2p/" + a.peer_id)
        assert b.peers() == [a.public_key]
        sub_a, sub_b = a.subscribe(T), b.subscribe(T)
        await a.publish(T, b"hello")
        msg = await next_msg(sub_b)
        assert msg == GossipMessage(T, a.public_key, b"hello")
        assert sub_a.qsize() == 0  # own message never comes back
        with pytest.raises(RuntimeError):
            a.subscribe(T)  # one consumer per topic
        with pytest.raises(FaultproofError) as e:
            await a.publish(T, b"x" * 1025)
        assert e.value.reason is Reason.OVERSIZE
    finally:
        await a.stop()
        await b.stop()
    # stop ends the iterator instead of leaving the consumer hanging
    with pytest.raises(StopAsyncIteration):
        await next_msg(sub_b)
    with pytest.raises(FaultproofError):
        await a.publish(T, b"late")


async def test_allow_list_changes_at_run_time_and_regossip_repairs_the_miss() -> None:
    a, b = await pair(TopicPolicy(allowed=[]))  # nobody may publish to b yet
    try:
        sub_b = b.subscribe(T)
        regossip = Regossiper(a, [T], interval=0.3)
        await a.publish(T, b"claim-1")
        key = regossip.add(T, b"claim-1")
        await wait_for(lambda: dropped(b, Reason.SENDER_NOT_ALLOWED) >= 1)
        assert sub_b.qsize() == 0

        b.set_allowed(T, [a.public_key])  # the ledger enrolled a
        await regossip.regossip_once()  # not due yet: nothing sent
        await asyncio.sleep(0.35)
        assert await regossip.regossip_once() == 1
        msg = await next_msg(sub_b)
        assert msg.data == b"claim-1" and msg.sender == a.public_key

        # further rounds are suppressed as duplicates at b, until decided
        await asyncio.sleep(0.35)
        assert await regossip.regossip_once() == 1
        await wait_for(lambda: dropped(b, Reason.DUPLICATE) >= 1)
        assert sub_b.qsize() == 0
        regossip.decided(key)
        assert len(regossip) == 0 and regossip.pending(T) == []
    finally:
        await a.stop()
        await b.stop()


async def test_a_joining_node_pulls_pending_items_through_the_same_validators() -> None:
    a = GossipNode(Identity.generate(), 0, topics={T: TopicPolicy()})
    a.set_pending_provider(T, lambda: [b"pending-1"])  # never gossiped: a signs it on request
    await a.start()
    b = GossipNode(Identity.generate(), 0, bootstrap=[a.listen_addr], topics={T: TopicPolicy(allowed=[])})
    c = GossipNode(Identity.generate(), 0, bootstrap=[a.listen_addr], topics={T: TopicPolicy()})
    try:
        await b.start()
        await c.start()
        sub_c = c.subscribe(T)
        msg = await next_msg(sub_c)
        assert msg == GossipMessage(T, a.public_key, b"pending-1")
        text = generate_latest(c.metrics.registry).decode()
        assert metric(text, "faultproof_gossip_delivered_total", path="catchup") == 1
        # b does not accept a on this topic: the pulled item is refused and counted, not delivered
        await wait_for(lambda: dropped(b, Reason.SENDER_NOT_ALLOWED) >= 1)
        assert b.subscribe(T).qsize() == 0
    finally:
        for n in (a, b, c):
            await n.stop()


async def test_refuses_a_port_another_node_listens_on() -> None:
    port = free_port()
    a = GossipNode(Identity.generate(), port, topics={T: TopicPolicy()})
    await a.start()
    try:
        b = GossipNode(Identity.generate(), port, topics={T: TopicPolicy()})
        with pytest.raises(FaultproofError) as e:
            await b.start()
        assert e.value.reason is Reason.UNAVAILABLE
    finally:
        await a.stop()
    # and the listener is really closed after stop: the port is free again. A shared static peer
    # list that names the node itself is fine: it never dials itself.
    ident = Identity.generate()
    own = f"/ip4/127.0.0.1/tcp/{port}/p2p/{GossipNode(ident, port, topics={T: TopicPolicy()}).peer_id}"
    c = GossipNode(ident, port, bootstrap=[own], topics={T: TopicPolicy()})
    await c.start()
    try:
        assert c.listen_addr == own
        assert c.health()["bootstrap"] == {}
    finally:
        await c.stop()


def _send_malformed_pubsub_rpc(target_addr: str) -> None:
    """A raw libp2p peer (its own trio loop) that opens a GossipSub stream and writes bytes that
    are not a protobuf RPC: what a buggy or hostile peer can always do."""
    import multiaddr
    import trio
    from libp2p import new_host
    from libp2p.custom_types import TProtocol
    from libp2p.peer.peerinfo import info_from_p2p_addr

    async def main() -> None:
        host = new_host()
        async with host.run(listen_addrs=[multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
            info = info_from_p2p_addr(multiaddr.Multiaddr(target_addr))
            await host.connect(info)
            stream = await host.new_stream(info.peer_id, [TProtocol("/meshsub/1.1.0")])
            junk = b"\xff\xff\xff\xff\x0f"  # an invalid protobuf field tag
            await stream.write(bytes([len(junk)]) + junk)
            await trio.sleep(1.0)

    trio.run(main)


async def test_a_malformed_rpc_from_one_peer_does_not_stop_gossip() -> None:
    a, b = await pair(TopicPolicy())
    try:
        sub_b = b.subscribe(T)
        await asyncio.to_thread(_send_malformed_pubsub_rpc, b.listen_addr)
        await a.publish(T, b"still here")
        assert (await next_msg(sub_b)).data == b"still here"
        assert b.health()["state"] != "failed"
    finally:
        await a.stop()
        await b.stop()
