"""The transport seam (oracle/transport.py): the unchanged OracleNode runs over an in-memory
network instead of libp2p. A real ledger process; four oracle nodes in this process, each with its
own SQLite store, HTTP server and a `MemoryTransport`; a real claim posted over HTTP is paid once.
A partitioned node hears nothing, and the other three (k = 3) decide without it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from faultproof.gossip.node import GossipNode
from faultproof.identity import Identity
from oracle.config import from_dict
from oracle.node import OracleNode
from oracle.transport import MemoryNetwork, MemoryTransport, Transport
from tests.netfix import Network, incident, memory_oracle_network, wait_until
from tests.oracle.helpers import paid_total, stall_follower


def test_both_sides_of_the_seam_implement_it() -> None:
    """mypy checks the signatures (OracleNode assigns a GossipNode to a `Transport`); this checks
    the members exist on both implementations."""
    members = [m for m in vars(Transport) if not m.startswith("_")]
    assert set(members) >= {"start", "stop", "publish", "subscribe", "set_allowed", "set_pending_provider",
                            "health", "peer_id"}
    for impl in (GossipNode, MemoryTransport):
        assert all(hasattr(impl, m) for m in members), impl


@pytest.mark.asyncio
async def test_oracle_nodes_over_the_memory_transport_pay_a_claim(ledger_only: Network, tmp_path: Path) -> None:
    net = ledger_only
    mem = MemoryNetwork()
    for o in net.oracles[:3]:  # oracle 3 partitioned away: k = 3 of the others decide alone
        mem.cut(net.oracles[3].oracle_id, o.oracle_id)
    async with memory_oracle_network(net, tmp_path, mem=mem) as nodes:
        inc = await asyncio.to_thread(incident, net)
        status, body = await asyncio.to_thread(net.post_claim, 0, inc.claim)
        assert status == 202 and body["vote"] == "approve", body
        await asyncio.to_thread(net.wait_status, inc.claim_id, "paid", oracle=0, timeout=30)
        assert await asyncio.to_thread(paid_total, net, inc.pid) == (inc.terms.amount, 1)
        await asyncio.to_thread(wait_until, lambda: all(
            (net.claim_status(i, inc.claim_id) or {}).get("status") == "paid" for i in range(3)), 20, 0.1,
            "oracles 0-2 see the payout")
        assert await asyncio.to_thread(net.claim_status, 3, inc.claim_id) is None  # it heard nothing
        assert nodes[0].status()["gossip"]["peers"] == 2 and nodes[3].status()["gossip"]["peers"] == 0


@pytest.mark.asyncio
async def test_an_accepted_claim_reaches_the_peers_after_a_restart(ledger_only: Network, tmp_path: Path) -> None:
    """Item 13.9 (oracle part): oracle 0 accepts a claim (202) while cut off from every peer, so
    nobody hears its gossip; it is stopped, the links heal, and the restarted oracle 0 gossips the
    claim from its store: the others vote and it is paid once."""
    net = ledger_only
    mem = MemoryNetwork()

    def make(i: int) -> OracleNode:
        o = net.oracles[i]
        cfg = from_dict({"oracle": {"key_file": str(net.root / "keys" / f"oracle-{i}.key"),
                                    "data_dir": str(tmp_path / f"oracle-{i}"), "ledger_url": net.ledger_url,
                                    "ledger_id": net.ledger_id.hex()},
                         "http": {"host": "127.0.0.1", "port": o.http_port}, "gossip": {"port": o.gossip_port},
                         "tuning": {"regossip_s": 0.5, "ledger_wait_s": 2.0}})
        return OracleNode(cfg, Identity.load(cfg.key_file), transport=mem.join(o.oracle_id))

    stops = [asyncio.Event() for _ in net.oracles]
    nodes = [make(i) for i in range(4)]
    tasks = {i: asyncio.create_task(nodes[i].run(stops[i])) for i in range(4)}
    try:
        for o in net.oracles[1:]:
            mem.cut(net.oracles[0].oracle_id, o.oracle_id)
        for n in nodes:
            await asyncio.wait_for(n.ready.wait(), 60)
        inc = await asyncio.to_thread(incident, net)
        status, body = await asyncio.to_thread(net.post_claim, 0, inc.claim)
        assert status == 202 and body["status"] == "pending" and body["vote"] == "approve", body
        await asyncio.sleep(1.5)  # three re-gossip rounds into the void
        views = [await asyncio.to_thread(net.claim_status, i, inc.claim_id) for i in (1, 2, 3)]
        assert views == [None, None, None]  # nobody heard of it
        stops[0].set()
        await tasks[0]
        mem.heal()
        stops[0] = asyncio.Event()
        tasks[0] = asyncio.create_task(make(0).run(stops[0]))
        await asyncio.to_thread(net.wait_status, inc.claim_id, "paid", oracle=1, timeout=30)
        assert await asyncio.to_thread(paid_total, net, inc.pid) == (inc.terms.amount, 1)
    finally:
        for s in stops:
            s.set()
        await asyncio.gather(*tasks.values(), return_exceptions=True)


@pytest.mark.asyncio
async def test_a_replica_that_lags_the_ledger_refreshes_before_it_refuses_a_claim(
        ledger_only: Network, tmp_path: Path) -> None:
    """DESIGN §4.2: a claim for a device and policy added a moment ago reaches an oracle whose
    follower has not fetched them (it backs off after a ledger restart, or is slow): the oracle
    catches up before it refuses for content, so the valid claim is accepted, not a 422."""
    net = ledger_only
    async with memory_oracle_network(net, tmp_path) as nodes:
        await stall_follower(nodes[0])
        follower = nodes[0].follower
        assert follower is not None
        inc = await asyncio.to_thread(incident, net)
        assert follower.view is not None and follower.view.state.policy(inc.pid) is None  # it lags
        status, body = await asyncio.to_thread(net.post_claim, 0, inc.claim)
        assert status == 202 and body["vote"] == "approve", body

        # A claim for a policy the ledger never issued costs one catch-up, not one per check.
        catch_ups = 0
        refresh = follower.refresh

        async def counted_refresh() -> None:
            nonlocal catch_ups
            catch_ups += 1
            await refresh()

        follower.refresh = counted_refresh  # type: ignore[method-assign]
        junk = inc.claim.claim.replace(policy_id=bytes(32)).sign(net.agent)
        status, body = await asyncio.to_thread(net.post_claim, 0, junk)
        assert (status, body["error"]["code"], catch_ups) == (422, "unknown_policy", 1), body
