"""Device-history anchors end to end (issue 13 item 4, DESIGN §11): the Merkle tree, the agent's
pure choice of heads, and `agent.anchor.Anchorer` reading a real agent store and anchoring on a real
ledger over HTTP, which then shows the head at GET /v1/devices/{id}."""

from __future__ import annotations

import time
from pathlib import Path

import aiohttp

from agent.anchor import Anchorer, build_anchors, select_heads
from agent.store import Store
from faultproof.merkle import merkle_proof, merkle_root, verify_proof
from faultproof.messages import MAX_ANCHOR_HEADS, DeviceHead, EnrolAgent, RevokeDevice
from ledger.client import LedgerClient
from ledger.follower import LedgerFollower
from tests.ledger.helpers import (
    SECOND,
    T0,
    ManualClock,
    Scenario,
    chain_value,
    identity,
    make_ledger,
    serve_ledger,
)


def test_merkle_inclusion_proofs() -> None:
    for n in range(1, 10):
        leaves = [bytes([i]) * 32 for i in range(n)]
        root = merkle_root(leaves)
        for i, leaf in enumerate(leaves):
            proof = merkle_proof(leaves, i)
            assert verify_proof(leaf, proof, root)
            assert not verify_proof(b"\x99" * 32, proof, root)
    assert merkle_root([b"\x01" * 32]) == b"\x01" * 32


def _head(device: bytes, seq: int, ts: int) -> DeviceHead:
    return DeviceHead(device_id=device, epoch=0, seq=seq, ts_ms=ts, chain=chain_value(f"{device.hex()}/{seq}"))


def test_select_heads_skips_what_the_ledger_would_refuse_or_holds() -> None:
    keys = make_ledger(5)
    sc = Scenario.standard(keys)
    state, agent = sc.set_up_with_agent("agent-a")
    dev = sc.device.public_key
    held = _head(dev, 5, T0)
    state.apply(build_anchors(keys.ledger_id, agent, 1, [held])[0], T0 + SECOND)
    candidates = [
        _head(dev, 9, T0 + SECOND), held, _head(dev, 9, T0 + SECOND),  # new, anchored, duplicate
        _head(b"\x07" * 32, 1, T0),  # not enrolled
        _head(dev, 10, T0 + 3600 * SECOND),  # in the future
        DeviceHead(device_id=dev, epoch=3, seq=1, ts_ms=T0, chain=chain_value("e3")),  # unknown epoch
    ]
    assert select_heads(state, candidates, T0 + SECOND) == [_head(dev, 9, T0 + SECOND)]
    # More heads than one anchor holds become several anchors with rising rounds.
    many = sorted((_head(dev, 100 + i, T0) for i in range(MAX_ANCHOR_HEADS + 3)), key=lambda h: h.seq)
    anchors = build_anchors(keys.ledger_id, agent, 7, many)
    assert [a.body.round for a in anchors] == [7, 8] and [len(a.body.heads) for a in anchors] == [MAX_ANCHOR_HEADS, 3]
    state.apply(keys.sign(RevokeDevice(device_id=dev)), T0 + 2 * SECOND)
    assert select_heads(state, [_head(dev, 11, T0)], T0 + 2 * SECOND) == []  # history closed


async def test_agent_anchors_device_heads_and_window_ends(tmp_path: Path) -> None:
    keys = make_ledger(5)
    sc = Scenario.standard(keys)
    agent = identity("agent-a")
    ledger_clock = ManualClock(T0)
    async with serve_ledger(tmp_path, keys, clock=ledger_clock) as (env, url), LedgerClient(url) as client:
        await env.ok_all([*sc.setup_txs, keys.sign(EnrolAgent(agent_id=agent.public_key))])
        dev = sc.device.public_key
        # The agent's store: 21 linked frames, one not (yet) linked, one detected window ending at 16.
        store = Store(tmp_path / "agent.sqlite3")
        store.begin()
        d = store.dev_id(dev)
        rows = [(d, 0, s, T0 + s * SECOND, 0, chain_value(f"f{s}"), b"\x00" * 64, 1) for s in range(21)]
        rows.append((d, 0, 22, T0 + 22 * SECOND, 0, chain_value("f22"), b"\x00" * 64, 0))
        store.insert_frames(rows)
        store.insert_claim({"claim_id": b"\x01" * 32, "policy_id": sc.policy_id, "device_id": dev, "epoch": 0,
                            "start_seq": 0, "end_seq": 16, "start_ts": T0, "end_ts": T0 + 16 * SECOND, "period": 0,
                            "circuit_id": sc.circuit.circuit_id, "status": "submitted",
                            "detected_ms": int(time.time() * 1000)})
        store.commit()
        store.close()
        ledger_clock.set(T0 + 30 * SECOND)

        follower = LedgerFollower(client, 0.05, max_skew_ms=10**12)  # the manual ledger clock is years behind ours
        await follower.bootstrap()
        anchorer = Anchorer(agent, tmp_path / "agent.sqlite3", client,
                            lambda: follower.view.state if follower.view else None, interval_s=0.1)
        assert await anchorer.anchor_once() == 2  # the latest linked head (20) and the window end (16)
        history = env.state.history(dev)
        assert set(history.heads) == {(0, 16), (0, 20)}
        assert history.heads[(0, 16)].chain == chain_value("f16")
        await follower.refresh()
        assert await anchorer.anchor_once() == 0  # nothing new: no entry written

        async with aiohttp.ClientSession() as http:
            async with http.get(f"{url}/v1/devices/{dev.hex()}") as resp:
                body = await resp.json()
        assert body["anchored_head"]["seq"] == 20 and body["anchored_head"]["agent_id"] == agent.public_key.hex()
        assert body["anchored_head"]["chain"] == chain_value("f20").hex() and body["anchored_heads"] == 2
