"""Byzantine oracles, built here from the protocol library with a member's key (oracle-4's; the
real oracle-4 is stopped meanwhile): it speaks gossip like a node but signs whatever it likes.
The real node has no option to behave like this.

Behaviours: approves everything, rejects everything, approves an inflated amount, floods votes,
equivocates. Checked: no wrongful payout (on the ledger), valid claims still paid by the four
honest oracles (k = 4), the equivocation recorded as evidence, floods counted and bounded."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from faultproof.errors import Reason
from faultproof.gossip.node import GossipNode
from faultproof.gossip.policy import TopicPolicy
from faultproof.messages import PayoutBody, RejectBody, SignedClaim, Vote, VoteBatch
from oracle.node import CLAIMS_TOPIC, VOTE_MESSAGE_MAX_BYTES, VOTES_TOPIC
from tests.netfix import MINUTE, DeviceSim, Incident, Network, http, incident, junk_proof, now_ms
from tests.oracle.helpers import paid_total

pytestmark = pytest.mark.asyncio(loop_scope="session")

BYZ = 4  # the member whose key the Byzantine node uses


class Byzantine:
    """A member's key and a gossip node, and nothing of the honest node's rules."""

    def __init__(self, net: Network, node: GossipNode) -> None:
        self.net = net
        self.node = node
        self.identity = net.oracles[BYZ].identity

    def body(self, inc: Incident, **changes: int) -> PayoutBody:
        c = inc.claim.claim
        s, e = c.start.frame, c.end.frame
        body = PayoutBody(ledger_id=self.net.ledger_id, oracle_set_epoch=0, claim_id=c.claim_id, policy_id=c.policy_id,
                          device_id=s.device_id, epoch=s.epoch, start_seq=s.seq, end_seq=e.seq, start_ts=s.ts_ms,
                          end_ts=e.ts_ms, circuit_id=inc.terms.circuit_id, beneficiary=inc.terms.beneficiary,
                          amount=inc.terms.amount, end_chain=e.chain)
        return body.replace(**changes) if changes else body

    def approve(self, inc: Incident, **changes: int) -> Vote:
        return self.body(inc, **changes).approve(self.identity)

    def reject(self, claim_id: bytes, reason: Reason = Reason.WINDOW_OVERLAP) -> Vote:
        return RejectBody(oracle_id=self.identity.public_key, ledger_id=self.net.ledger_id, oracle_set_epoch=0,
                          claim_id=claim_id, reason=reason).sign(self.identity)

    async def send(self, votes: list[Vote]) -> None:
        await self.node.publish(VOTES_TOPIC, VoteBatch(oracle_id=self.identity.public_key, votes=tuple(votes)).encode())

    async def gossip_claim(self, claim: SignedClaim) -> None:
        await self.node.publish(CLAIMS_TOPIC, claim.encode())


async def _call(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    """Blocking network helpers off the loop, so the Byzantine node's gossip keeps moving."""
    return await asyncio.to_thread(fn, *args, **kwargs)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def byz(net: Network) -> AsyncIterator[Byzantine]:
    for o in net.oracles:  # a previous test may have left one down
        if not o.alive():
            await _call(o.start)
    real = net.oracles[BYZ]
    await _call(real.stop)
    others = [o.multiaddr() for o in net.oracles if o.index != BYZ]
    node = GossipNode(real.identity, real.gossip_port, bootstrap=others,
                      topics={CLAIMS_TOPIC: TopicPolicy(max_size=4096),
                              VOTES_TOPIC: TopicPolicy(max_size=VOTE_MESSAGE_MAX_BYTES)})
    await node.start()
    try:
        # The honest nodes redial oracle-4's address. A mesh link to one of them is enough (it relays
        # to the rest); peers that pruned the departed oracle-4 may keep a GossipSub backoff on it.
        for _ in range(300):
            if len(node.peers()) >= 3 and node.mesh_size(VOTES_TOPIC) >= 1 and node.mesh_size(CLAIMS_TOPIC) >= 1:
                break
            await asyncio.sleep(0.1)
        assert node.mesh_size(VOTES_TOPIC) >= 1 and len(node.peers()) >= 3, node.health()
        yield Byzantine(net, node)
    finally:
        await node.stop()
        await _call(real.start)


def _honest() -> list[int]:
    return [i for i in range(5) if i != BYZ]


async def test_approves_everything_pays_nothing_wrong(byz: Byzantine) -> None:
    net = byz.net
    # (a) a claim the ledger state refuses: the honest oracles reject it
    late = await _call(incident, net, window_ts=now_ms() - 10 * MINUTE, claim_window_ms=MINUTE)
    await byz.send([byz.approve(late)])
    assert (await _call(net.post_claim, 0, late.claim))[0] == 202
    view = await _call(net.wait_status, late.claim_id, "rejected", oracle=0)
    assert view["reason"] == Reason.CLAIM_WINDOW_CLOSED.value
    # (b) a claim with a bad proof, approved and gossiped by the Byzantine member: the honest
    # oracles drop it (counted), never record it, never vote
    junk = await _call(incident, net)
    bad = junk.claim.claim.replace(proof=junk_proof(net.circuit, DeviceSim.create(), junk.terms)).sign(net.agent)
    await byz.send([byz.approve(junk)])
    await byz.gossip_claim(bad)
    await asyncio.sleep(2)
    for i in _honest():
        assert await _call(net.claim_status, i, junk.claim_id) is None
    _, metrics = await _call(http, "GET", net.oracles[1].url + "/metrics")
    assert b'oracle_claims_dropped_total{reason="bad_proof",source="gossip"}' in metrics
    # (c) its lone approval is not a QC the ledger would take
    qc_alone = byz.approve(junk)
    from faultproof.messages import QuorumCertificate

    status, body = await _call(net.post_tx, QuorumCertificate.from_approvals([qc_alone]))  # type: ignore[list-item]
    assert status == 409 and body["error"]["code"] == Reason.QC_INSUFFICIENT_SIGNATURES.value
    for inc in (late, junk):
        assert (await _call(paid_total, net, inc.pid)) == (0, 0)
        assert (await _call(net.receipt, inc.claim_id))[0] == 404


async def test_rejects_everything_cannot_block_a_valid_claim(byz: Byzantine) -> None:
    net = byz.net
    inc = await _call(incident, net)
    await byz.send([byz.reject(inc.claim_id)])  # before any honest vote
    assert (await _call(net.post_claim, 1, inc.claim))[0] == 202
    view = await _call(net.wait_status, inc.claim_id, "paid", oracle=1)
    assert byz.identity.public_key.hex() not in {s["oracle_id"] for s in view["qc"]["signatures"]}
    assert (await _call(paid_total, net, inc.pid)) == (inc.terms.amount, 1)


async def test_inflated_amount_is_never_certified(byz: Byzantine) -> None:
    net = byz.net
    inc = await _call(incident, net)
    await byz.send([byz.approve(inc, amount=inc.terms.amount * 100)])
    assert (await _call(net.post_claim, 2, inc.claim))[0] == 202
    view = await _call(net.wait_status, inc.claim_id, "paid", oracle=2)
    assert view["qc"]["body"]["amount"] == inc.terms.amount
    assert (await _call(paid_total, net, inc.pid)) == (inc.terms.amount, 1)


async def test_equivocation_is_recorded_and_does_not_count(byz: Byzantine) -> None:
    net = byz.net
    inc = await _call(incident, net)
    a, r = byz.approve(inc), byz.reject(inc.claim_id, Reason.PERIOD_LIMIT)
    await byz.send([a])
    await byz.send([r])
    assert (await _call(net.post_claim, 0, inc.claim))[0] == 202
    view = await _call(net.wait_status, inc.claim_id, "paid", oracle=0)
    me = byz.identity.public_key.hex()
    assert me not in {s["oracle_id"] for s in view["qc"]["signatures"]}

    def evidence_everywhere() -> bool:
        for i in _honest():
            st = net.status(i)
            if not any(e["claim_id"] == inc.claim_id.hex() and e["oracle_id"] == me and e["votes"] == 2
                       for e in st["equivocations"]):
                return False
            v = net.claim_status(i, inc.claim_id)
            if v is None or me not in v["equivocators"]:
                return False
        return True

    for _ in range(100):
        if await _call(evidence_everywhere):
            break
        await asyncio.sleep(0.1)
    assert await _call(evidence_everywhere)
    _, metrics = await _call(http, "GET", net.oracles[0].url + "/metrics")
    line = next(x for x in metrics.decode().splitlines() if x.startswith("oracle_equivocations_total "))
    assert float(line.split()[1]) >= 1
    assert (await _call(paid_total, net, inc.pid)) == (inc.terms.amount, 1)


async def test_vote_flood_is_bounded_and_valid_claims_still_paid(byz: Byzantine) -> None:
    """Last in this file: afterwards the flooding member is at its cap of open claims, and a
    capped member can no longer open new tallies (its votes on claims others opened still count)."""
    net = byz.net
    inc = await _call(incident, net)
    # 2560 signed approvals of made-up claims (the cap per voter is 1000 here), in messages of 64
    # votes: what the honest nodes' votes topic admits (64 KB).
    junk = [byz.body(inc, claim_id=os.urandom(32)).approve(byz.identity) for _ in range(2560)]
    batches = [junk[i : i + 64] for i in range(0, len(junk), 64)]
    forged = [v.replace(signature=os.urandom(64)) for v in junk[:256]]  # type: ignore[union-attr]
    batches += [forged[i : i + 64] for i in range(0, 256, 64)]
    # Repeats in a new order: identical message bytes would already be dropped by the gossip layer.
    batches += [list(reversed(junk[i : i + 64])) for i in range(0, 512, 64)]
    for batch in batches[:8]:  # the first 512 open tallies (under the cap) before the rest arrive
        await byz.send(batch)
    flood = asyncio.gather(*(byz.send(batch) for batch in batches[8:]))
    posted = _call(net.post_claim, 3, inc.claim)
    _, (status, _) = await asyncio.gather(flood, posted)
    assert status == 202
    await _call(net.wait_status, inc.claim_id, "paid", oracle=3, timeout=30)
    assert (await _call(paid_total, net, inc.pid)) == (inc.terms.amount, 1)

    async def ignored() -> dict[str, int]:
        return (await _call(net.status, 0))["ignored_votes"]

    for _ in range(100):
        counts = await ignored()
        if counts.get("bad_signature", 0) >= 256 and counts.get("duplicate", 0) >= 2 * 256:
            break
        await asyncio.sleep(0.1)
    assert counts.get("bad_signature", 0) >= 256, counts
    assert counts.get("over_limit", 0) > 0, counts  # the cap held
    assert counts.get("duplicate", 0) >= 2 * 256, counts
