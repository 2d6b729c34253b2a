"""Gossip claim batching (DESIGN §16, issue 15): the agent's sender puts the claims it sends within
a few ms into one ClaimBatch; oracles unpack it and check each claim alone.

Differential: the same kind of incidents sent batched and sent one message per claim (the
reference, `batch_ms=0`) are paid the same, once each, by real OracleNodes over the in-memory
transport and a real ledger process. The sender tests use `RecordingGossip`, a stand-in for the
gossip node (named as such) that records what was published.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from agent.claims import CLAIMS_TOPIC, ClaimSender
from agent.metrics import AgentMetrics
from faultproof.errors import DecodeError, Reason
from faultproof.messages import MAX_CLAIMS_PER_BATCH, ClaimBatch, SignedClaim, VoteBatch, decode_any
from oracle.node import gossiped_claims
from oracle.transport import MemoryNetwork, MemoryTransport
from tests.netfix import Network, incident, memory_oracle_network
from tests.oracle.helpers import paid_total
from tests.vectors import samples as s


def _claims(n: int) -> list[SignedClaim]:
    base = s.samples()["claim"]
    return [base.replace(created_ms=base.created_ms + i).sign(s.AGENT) for i in range(n)]


class RecordingGossip:
    """Stand-in for GossipNode on the agent side: one peer, records every publish."""

    def __init__(self) -> None:
        self.published: list[bytes] = []

    def peers(self) -> list[str]:
        return ["peer"]

    async def publish(self, topic: str, data: bytes) -> None:
        assert topic == CLAIMS_TOPIC
        self.published.append(data)


def _unpacked(published: list[bytes]) -> list[SignedClaim]:
    return [c for data in published for c in gossiped_claims(data)]


# --------------------------------------------------------------------------- decode (oracle side)


def test_the_claims_topic_takes_a_bare_claim_or_a_batch_and_nothing_else() -> None:
    claims = _claims(3)
    assert gossiped_claims(claims[0].encode()) == (claims[0],)
    assert gossiped_claims(ClaimBatch(claims=tuple(claims)).encode()) == tuple(claims)
    vb = s.samples()["vote-batch"]
    assert isinstance(vb, VoteBatch)
    with pytest.raises(DecodeError) as e:
        gossiped_claims(vb.encode())
    assert e.value.reason is Reason.WRONG_TYPE


def test_a_batch_with_a_broken_claim_or_too_many_claims_is_refused_whole() -> None:
    claims = _claims(2)
    wire = ClaimBatch(claims=tuple(claims)).to_wire()
    wire[2][1][3] = wire[2][1][3][:-1]  # the second claim's agent signature, one byte short
    from faultproof.encoding import pack

    with pytest.raises(DecodeError) as e:
        gossiped_claims(pack(wire))
    assert e.value.reason is Reason.WRONG_LENGTH
    too_many = ClaimBatch(claims=tuple(_claims(1)) * MAX_CLAIMS_PER_BATCH).to_wire()
    too_many[2].append(too_many[2][0])
    with pytest.raises(DecodeError) as e:
        gossiped_claims(pack(too_many))
    assert e.value.reason is Reason.OVERSIZE


# --------------------------------------------------------------------------- the agent's sender


@pytest.mark.asyncio
async def test_claims_sent_together_leave_in_one_batch() -> None:
    gossip = RecordingGossip()
    sender = ClaimSender(gossip, [], AgentMetrics(), batch_ms=20)
    claims = _claims(5)
    results = await asyncio.gather(*(sender.publish(c.encode()) for c in claims))
    assert results == [True] * 5
    assert len(gossip.published) == 1 and sender.gossip_messages == 1
    assert isinstance(decode_any(gossip.published[0]), ClaimBatch)
    assert _unpacked(gossip.published) == claims


@pytest.mark.asyncio
async def test_a_full_batch_leaves_at_once_and_a_lone_claim_travels_bare() -> None:
    gossip = RecordingGossip()
    sender = ClaimSender(gossip, [], AgentMetrics(), batch_ms=60_000)  # only a full batch can leave
    claims = _claims(MAX_CLAIMS_PER_BATCH)
    results = await asyncio.wait_for(asyncio.gather(*(sender.publish(c.encode()) for c in claims)), 10)
    assert results == [True] * MAX_CLAIMS_PER_BATCH and len(gossip.published) == 1
    assert _unpacked(gossip.published) == claims
    gossip.published.clear()
    sender.batch_ms = 1
    assert await sender.publish(claims[0].encode())
    assert gossip.published == [claims[0].encode()]  # a bare SignedClaim, as before batching


@pytest.mark.asyncio
async def test_the_reference_path_sends_one_message_per_claim() -> None:
    gossip = RecordingGossip()
    sender = ClaimSender(gossip, [], AgentMetrics(), batch_ms=0)
    claims = _claims(4)
    assert await asyncio.gather(*(sender.publish(c.encode()) for c in claims)) == [True] * 4
    assert gossip.published == [c.encode() for c in claims]


@pytest.mark.asyncio
async def test_a_failed_batch_publish_reports_every_claim_unsent() -> None:
    class Failing(RecordingGossip):
        async def publish(self, topic: str, data: bytes) -> None:
            from faultproof.errors import FaultproofError

            raise FaultproofError(Reason.UNAVAILABLE, "gossip down")

    sender = ClaimSender(Failing(), [], AgentMetrics(), batch_ms=5)
    assert await asyncio.gather(*(sender.publish(c.encode()) for c in _claims(3))) == [False] * 3


# --------------------------------------------------------------------------- through the oracles


class MemoryAgentGossip:
    """The agent's side of the in-memory transport (a test stand-in for its GossipNode)."""

    def __init__(self, transport: MemoryTransport) -> None:
        self.transport = transport

    def peers(self) -> list[bytes]:
        return [k for k in self.transport.network.members if k != self.transport.public_key]

    async def publish(self, topic: str, data: bytes) -> None:
        await self.transport.publish(topic, data)


@pytest.mark.asyncio
async def test_batched_and_unbatched_claims_are_paid_alike(ledger_only: Network, tmp_path: Path) -> None:
    net = ledger_only
    mem = MemoryNetwork()
    agent = mem.join(net.agent.public_key)
    async with memory_oracle_network(net, tmp_path, mem=mem, regossip_s=30) as nodes:
        await agent.start()
        incs = [await asyncio.to_thread(incident, net) for _ in range(4)]
        batched = ClaimSender(MemoryAgentGossip(agent), [], AgentMetrics(), batch_ms=50)
        reference = ClaimSender(MemoryAgentGossip(agent), [], AgentMetrics(), batch_ms=0)
        sent = await asyncio.gather(*(batched.publish(i.claim.encode()) for i in incs[:3]),
                                    reference.publish(incs[3].claim.encode()))
        assert sent == [True] * 4
        assert batched.gossip_messages == 1 and reference.gossip_messages == 1

        def all_paid() -> bool:
            return all(net.claim_status(0, i.claim_id) is not None
                       and net.claim_status(0, i.claim_id)["status"] == "paid" for i in incs)

        from tests.netfix import wait_until

        await asyncio.to_thread(wait_until, all_paid, 60, 0.2, "every claim is paid")
        for i in incs:  # the same outcome either way: the policy's amount, paid once
            assert await asyncio.to_thread(paid_total, net, i.pid) == (i.terms.amount, 1)
        counts: dict[str, Any] = nodes[1].metrics.claims_received.labels("gossip")._value.get()
        assert counts == 4  # every claim reached a peer by gossip, three of them in one message
        await agent.stop()
