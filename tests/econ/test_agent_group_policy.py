"""The agent files no single-device claim on a corroborated policy (DESIGN §14): such a policy pays
only a group claim, so its devices get no detector (a claim would be refused anyway)."""

from __future__ import annotations

from agent.ledger_link import snapshot
from tests.ledger.econ_world import EconWorld, N


def test_snapshot_skips_corroborated_policies() -> None:
    w = EconWorld.build(device_bonds=(60, 60, 150))
    w.issue(w.group_policy(m=2).replace(group=(w.devices[0].public_key, w.devices[1].public_key)))
    single = w.issue(w.single_policy(2))
    keys = {d.public_key: b"\x01" * 31 for d in w.devices}
    snap = snapshot(w.state, keys, {w.circuit_id: N}, w.now)
    assert set(snap.devices) == set(keys)
    assert set(snap.policies) == {w.devices[2].public_key}
    assert snap.policies[w.devices[2].public_key].policy_id == single
