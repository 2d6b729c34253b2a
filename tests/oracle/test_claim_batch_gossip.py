"""A ClaimBatch (DESIGN §16) over real libp2p to the real oracle processes of tests/oracle: an
enrolled agent's gossip node publishes three claims, each twice, in one message (larger than the
claims topic's old 4 KB limit) and every incident is paid once."""

from __future__ import annotations

from faultproof.gossip import CLAIMS_TOPIC
from faultproof.messages import ClaimBatch
from faultproof.procs import free_port
from tests.adversarial.advnet import GossipPeer
from tests.netfix import Network, incident
from tests.oracle.helpers import paid_total


def test_a_gossiped_claim_batch_is_unpacked_and_every_claim_paid_once(healthy: Network) -> None:
    net = healthy
    incs = [incident(net) for _ in range(3)]
    batch = ClaimBatch(claims=tuple(i.claim for i in incs) * 2)
    assert len(batch.encode()) > 4096
    peer = GossipPeer(net.agent, free_port(), [o.multiaddr() for o in net.oracles],
                      {CLAIMS_TOPIC: ClaimBatch.MAX_SIZE})
    try:
        peer.wait_mesh(CLAIMS_TOPIC, 2)
        peer.publish(CLAIMS_TOPIC, batch.encode())
        for i in incs:
            view = net.wait_status(i.claim_id, "paid", oracle=1, timeout=60)
            assert view["paid"]["amount"] == i.terms.amount
        for i in incs:
            assert paid_total(net, i.pid) == (i.terms.amount, 1)
    finally:
        peer.stop()
