"""Corroborated claims on real processes (DESIGN §14, "Group claims"): a ledger with the economic
rules on and 5 oracle processes (k = 4) meshed by gossip; three devices under three agents share
one corroborated policy (m = 2). Agents POST their parts (real frames, real Groth16 proofs) to
different oracles; the oracles verify every part, assemble the group, vote over gossip and post
the GroupQuorumCertificate. The ledger pays the group exactly once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from faultproof.identity import Identity
from faultproof.messages import (
    BondHolder,
    CorroboratingWindow,
    EconPolicy,
    PostBond,
    group_claim_id,
    policy_id,
)
from tests.netfix import PARAMS, SECOND, TRIGGERING, Network, junk_proof, now_ms, wait_until

AMOUNT = 1_000


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    n = Network.start(Path(tmp_path_factory.mktemp("group-net")))
    try:
        n.switch_econ_on()
        yield n
    finally:
        n.stop()


def test_two_of_three_devices_under_distinct_agents_pay_the_group_once(net: Network) -> None:
    window_ts = now_ms() - 25 * SECOND
    devs = [net.new_device(anchor_ts=window_ts - SECOND) for _ in range(3)]
    agents = [net.agent, Identity.generate(), Identity.generate()]
    for a in agents[1:]:
        net.enrol_agent(a)
    net.admin_txs([PostBond(holder_kind=BondHolder.DEVICE, holder_id=d.device_id, amount=1_000) for d in devs])
    terms = net.policy_terms(devs[0], PARAMS, amount=AMOUNT)
    [(stx, _)] = net.admin_txs([EconPolicy(terms=terms, staging_cost=500, group=tuple(d.device_id for d in devs),
                                           min_proofs=2, overlap_tolerance_ms=60 * SECOND)])
    pid = policy_id(stx.tx)
    starts = [d.record(TRIGGERING, start_ts=window_ts + i * 500, step_ms=SECOND) for i, d in enumerate(devs)]

    # A junk proof for a part is refused like a claim's (4xx, nothing kept).
    junk = net.claim(devs[2], pid, terms, starts[2], agent=agents[2], proof=junk_proof(net.circuit, devs[2], terms))
    status, body = net.post_claim(0, junk)
    assert status == 422 and body["error"]["code"] == "bad_proof", body

    # One part alone (m - 1), and a second part for device 1 filed by the SAME agent: no group.
    part0 = net.claim(devs[0], pid, terms, starts[0], agent=agents[0])
    status, body = net.post_claim(0, part0)
    assert status == 202 and body["status"] == "pending", body
    same_agent = net.claim(devs[1], pid, terms, starts[1], agent=agents[0])
    assert net.post_claim(1, same_agent)[0] == 202
    time.sleep(3)
    assert net.policy(pid)["paid_total"] == 0

    # Device 1's own agent files its part at another oracle: the group forms and is paid.
    part1 = net.claim(devs[1], pid, terms, starts[1], agent=agents[1])
    assert net.post_claim(2, part1)[0] == 202
    paid = wait_until(lambda: (p := net.policy(pid))["paid_total"] and p, 60, 0.2, what="the group payout")
    assert paid["paid_total"] == AMOUNT and len(paid["payouts"]) == 1
    windows = sorted((CorroboratingWindow(device_id=devs[i].device_id, agent_id=agents[i].public_key, epoch=0,
                                          start_seq=starts[i], end_seq=starts[i] + net.circuit.n,
                                          start_ts=devs[i].timestamps[starts[i]],
                                          end_ts=devs[i].timestamps[starts[i] + net.circuit.n])
                      for i in (0, 1)), key=lambda w: w.device_id)
    cid = group_claim_id(pid, windows)
    assert paid["payouts"][0]["claim_id"] == cid.hex()
    status, receipt = net.receipt(cid)
    assert status == 200, receipt

    # The third device's part in the same period: accepted as a part, never paid a second time.
    part2 = net.claim(devs[2], pid, terms, starts[2], agent=agents[2])
    assert net.post_claim(3, part2)[0] == 202
    time.sleep(4)
    again = net.policy(pid)
    assert again["paid_total"] == AMOUNT and len(again["payouts"]) == 1
