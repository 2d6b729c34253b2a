"""Corroborated claims reaching an oracle whose replica lags the ledger (DESIGN §4.2, §14 G1): the
policy and the second agent were committed after the oracle's follower stalled. The oracle must
route the claims as parts of the group (not check them as lone claims) on a view refreshed after
they arrived, so they are accepted, and the group is paid once. Four oracle daemons run in this
process over the in-memory transport (k = 3) against a real ledger process with the economic rules
on; the proofs are real Groth16 proofs."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from faultproof.identity import Identity
from faultproof.messages import BondHolder, EconPolicy, PostBond, SignedClaim, policy_id
from oracle.node import OracleNode
from tests.netfix import PARAMS, SECOND, TRIGGERING, Network, memory_oracle_network, now_ms
from tests.oracle.helpers import paid_total, stall_follower

AMOUNT = 1_000


@pytest.fixture(scope="module")
def econ_ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    net = Network.start(tmp_path_factory.mktemp("group-lag"), n=4, k=3, start_oracles=False)
    try:
        net.switch_econ_on()
        yield net
    finally:
        net.stop()


@pytest.mark.asyncio
async def test_a_lagging_oracle_takes_parts_of_a_policy_issued_after_it_stalled(
        econ_ledger: Network, tmp_path: Path) -> None:
    net = econ_ledger
    async with memory_oracle_network(net, tmp_path) as nodes:
        lagging: OracleNode = nodes[0]
        await stall_follower(lagging)

        def issue_group_policy() -> tuple[bytes, list[SignedClaim]]:
            window_ts = now_ms() - 25 * SECOND
            devs = [net.new_device(anchor_ts=window_ts - SECOND) for _ in range(2)]
            agents = [net.agent, Identity.generate()]
            net.enrol_agent(agents[1])  # an agent the lagging replica has never seen either
            net.admin_txs([PostBond(holder_kind=BondHolder.DEVICE, holder_id=d.device_id, amount=1_000)
                           for d in devs])
            terms = net.policy_terms(devs[0], PARAMS, amount=AMOUNT)
            [(stx, _)] = net.admin_txs([EconPolicy(terms=terms, staging_cost=500,
                                                   group=tuple(d.device_id for d in devs), min_proofs=2,
                                                   overlap_tolerance_ms=60 * SECOND)])
            pid = policy_id(stx.tx)
            parts = []
            for i, (d, a) in enumerate(zip(devs, agents, strict=True)):
                start = d.record(TRIGGERING, start_ts=window_ts + i * 500, step_ms=SECOND)
                parts.append(net.claim(d, pid, terms, start, agent=a))
            return pid, parts

        pid, parts = await asyncio.to_thread(issue_group_policy)
        assert lagging.view.state.policy(pid) is None  # the replica lags the policy and both devices
        for signed in parts:  # both parts to the lagging oracle only: the others hear them by gossip
            status, body = await asyncio.to_thread(net.post_claim, 0, signed)
            # Before the fix, the policy's own device was checked as a lone claim and this oracle
            # signed an approve vote for a lone payout, which the ledger never makes for a
            # corroborated policy; the part was not kept for the group.
            assert status == 202 and body["status"] == "pending" and "vote" not in body, body
            assert lagging.group.book.has_part(signed) and lagging.store.claim(signed.claim.claim_id) is None

        async def paid() -> tuple[int, int]:
            while (total := await asyncio.to_thread(paid_total, net, pid))[0] == 0:
                await asyncio.sleep(0.2)
            return total

        assert await asyncio.wait_for(paid(), 60) == (AMOUNT, 1)
