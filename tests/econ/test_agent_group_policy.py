"""The agent files its PART of a corroborated policy (DESIGN §14, "Group claims"): each device of
the group it holds gets the group policy, under its own device_id, and detection runs for it; a
device outside the group keeps its own policy."""

from __future__ import annotations

from agent.ledger_link import snapshot
from tests.ledger.econ_world import EconWorld, N


def test_snapshot_gives_group_devices_their_part() -> None:
    w = EconWorld.build(device_bonds=(60, 60, 150))
    group = w.issue(w.group_policy(m=2).replace(group=(w.devices[0].public_key, w.devices[1].public_key)))
    single = w.issue(w.single_policy(2))
    keys = {d.public_key: b"\x01" * 31 for d in w.devices}
    snap = snapshot(w.state, keys, {w.circuit_id: N}, w.now)
    assert set(snap.devices) == set(keys)
    assert set(snap.policies) == set(keys)
    for d in w.devices[:2]:
        assert snap.policies[d.public_key].policy_id == group
        assert snap.policies[d.public_key].device_id == d.public_key
    assert snap.policies[w.devices[2].public_key].policy_id == single
