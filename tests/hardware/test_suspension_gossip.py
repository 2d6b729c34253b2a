"""Oracles gossip suspension signatures (DESIGN §15, round 2): an agent reports a burst of forged
frames to ONE oracle; the oracles exchange `SuspensionShare`s over the transport seam
(oracle.transport.MemoryNetwork), each checks the frames on its own replica and signs, and a
certificate of k signatures reaches the real ledger over HTTP with no test collecting them; the
same with the unchanged OracleNode daemons against a real ledger process. Fewer than k reachable
oracles, genuine frames, or forged shares suspend nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from faultproof.errors import FaultproofError, Reason
from faultproof.identity import Identity
from faultproof.messages import (
    Frame,
    QcSignature,
    SignedFrame,
    SignedSuspensionReport,
    SuspensionReport,
    SuspensionShare,
)
from ledger.client import LedgerClient
from ledger.state import LedgerState, active_suspension
from oracle.store import now_ms
from oracle.suspension import SuspensionDesk, evidence_hash, sign_suspension
from oracle.suspension_gossip import SUSPENSIONS_TOPIC, SuspensionGossip
from oracle.transport import MemoryNetwork
from tests.ledger.helpers import SECOND, T0, ManualClock, Scenario, make_ledger, serve_ledger
from tests.netfix import Network, http, memory_oracle_network


def _forged(device_id: bytes, n: int, ts: int) -> list[SignedFrame]:
    return [SignedFrame(frame=Frame(device_id=device_id, epoch=0, seq=100 + i, ts_ms=ts + i, chain=bytes(32)),
                        signature=bytes([i + 1]) * 64) for i in range(n)]


@asynccontextmanager
async def _network(tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    keys = make_ledger(5)  # k = 4
    sc = Scenario.standard(keys)
    async with serve_ledger(tmp_path, keys, clock=ManualClock(T0)) as (env, url):
        async with LedgerClient(url) as client:
            for tx in sc.setup_txs:
                await client.submit(tx)
            net = MemoryNetwork()
            nodes: list[SuspensionGossip] = []
            for oracle in keys.oracles:
                replica = sc.set_up()  # each oracle's own replica of the ledger
                transport = net.join(oracle.public_key)
                await transport.start()
                node = SuspensionGossip(SuspensionDesk(oracle), transport, (lambda r=replica: r),
                                        client.submit, lambda: T0)
                node.start()
                nodes.append(node)
            await asyncio.sleep(0)  # every reader subscribed
            try:
                yield {"keys": keys, "sc": sc, "env": env, "net": net, "nodes": nodes}
            finally:
                for n in nodes:
                    await n.stop()


async def _settle(cond: Any, timeout: float = 5.0) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if cond():
            return True
        await asyncio.sleep(0.02)
    return bool(cond())


async def test_one_report_gets_k_signatures_to_the_ledger(tmp_path: Path) -> None:
    async with _network(tmp_path) as w:
        ledger: LedgerState = w["env"].state
        device = w["sc"].device.public_key
        since = T0 - 10 * SECOND
        await w["nodes"][0].report(device, _forged(device, 20, since - 30), since)
        assert await _settle(lambda: active_suspension(ledger, device) is not None)
        s = active_suspension(ledger, device)
        assert s is not None and s.since_ms == since and s.reason is Reason.BAD_FRAME_SIGNATURE
        # The submitter records its certificate when the ledger's HTTP answer lands (just after).
        assert await _settle(lambda: any(n.submitted for n in w["nodes"]))
        certs = [c for n in w["nodes"] for c in n.submitted]
        assert len(certs[0].signatures) == 4
        members = set(ledger.oracle_set.members)
        assert {sig.oracle_id for sig in certs[0].signatures} <= members
        # Every oracle signed after its own check (submitters forgot the case), none dropped a share.
        assert all(c.signed for n in w["nodes"] for c in n.desk.cases.values())
        assert all(not n.dropped for n in w["nodes"])


async def test_fewer_than_k_reachable_oracles_suspend_nothing(tmp_path: Path) -> None:
    async with _network(tmp_path) as w:
        ledger: LedgerState = w["env"].state
        device = w["sc"].device.public_key
        oracles = [o.public_key for o in w["keys"].oracles]
        for far in oracles[3:]:  # oracles 3 and 4 hear nobody: 3 of 5 sign, k = 4
            for o in oracles:
                if o != far:
                    w["net"].cut(far, o)
        since = T0 - 10 * SECOND
        await w["nodes"][0].report(device, _forged(device, 20, since - 30), since)
        await asyncio.sleep(0.3)
        assert active_suspension(ledger, device) is None
        assert all(not n.submitted for n in w["nodes"])
        assert sum(1 for n in w["nodes"] for c in n.desk.cases.values() if c.signed) == 3


async def test_genuine_frames_and_forged_shares_are_refused(tmp_path: Path) -> None:
    async with _network(tmp_path) as w:
        ledger: LedgerState = w["env"].state
        sc = w["sc"]
        device = sc.device.public_key
        # Frames that verify under the device's key are no evidence of forgery.
        genuine = [Frame(device_id=device, epoch=0, seq=i, ts_ms=T0 + i, chain=bytes(32)).sign(sc.device)
                   for i in range(20)]
        with pytest.raises(FaultproofError):
            await w["nodes"][0].report(device, genuine, T0)
        with pytest.raises(FaultproofError):
            await w["nodes"][0].report(device, _forged(device, 5, T0), T0)  # too few frames
        # A share signed by a stranger, and one whose frames are not the named evidence: dropped.
        frames = _forged(device, 20, T0 - 100)
        replica = sc.set_up()
        stranger = Identity.generate()
        body, sig = sign_suspension(stranger, replica, device, frames, T0 - 50)
        outsider = w["net"].join(stranger.public_key)
        await outsider.start()
        await outsider.publish(SUSPENSIONS_TOPIC, SuspensionShare(body=body, signature=sig, frames=tuple(frames)).encode())
        member = w["keys"].oracles[0]
        _, msig = sign_suspension(member, replica, device, frames, T0 - 50)
        other = _forged(device, 21, T0 - 200)
        assert evidence_hash(other) != body.evidence_hash
        await outsider.publish(SUSPENSIONS_TOPIC, SuspensionShare(body=body, signature=msig, frames=tuple(other)).encode())
        bad = QcSignature(oracle_id=member.public_key, signature=bytes(64))
        await outsider.publish(SUSPENSIONS_TOPIC, SuspensionShare(body=body, signature=bad, frames=tuple(frames)).encode())
        await asyncio.sleep(0.3)
        # Each real oracle dropped the stranger's, the mismatched and the badly signed share.
        for n in w["nodes"]:
            assert n.dropped.get("qc_non_member", 0) >= 1 and n.dropped.get("bad_request", 0) >= 1
            assert n.dropped.get("qc_bad_signature", 0) >= 1
        assert active_suspension(ledger, device) is None


@pytest.mark.asyncio
async def test_oracle_daemons_gossip_shares_and_the_ledger_suspends(ledger_only: Network, tmp_path: Path) -> None:
    """The unchanged OracleNode (4 in this process, k = 3, each with its own store, HTTP server and
    ledger follower) against a real ledger process: one node gets the agent's report, the shares
    travel over the transport seam, and the device is suspended on the ledger. The report arrives
    as the agent sends it: `POST /v1/suspensions`, signed by an enrolled agent."""
    net = ledger_only
    mem = MemoryNetwork()
    dev = await asyncio.to_thread(net.new_device)
    async with memory_oracle_network(net, tmp_path, mem=mem) as nodes:
        await _settle(lambda: all(n.view.state.device(dev.device_id) is not None for n in nodes), 10)
        since = now_ms() - 5 * SECOND
        report = SuspensionReport(agent_id=net.agent.public_key, device_id=dev.device_id, since_ms=since,
                                  frames=tuple(_forged(dev.device_id, 20, since - 100)))
        url = f"{net.oracles[0].url}/v1/suspensions"
        # A stranger's report, a bad signature and too few frames are refused, 4xx, nothing shared.
        stranger = Identity.generate()
        for bad, code in ((report.replace(agent_id=stranger.public_key).sign(stranger), "unknown_agent"),
                          (SignedSuspensionReport(body=report, signature=bytes(64)), "bad_agent_signature"),
                          (report.replace(frames=report.frames[:5]).sign(net.agent), "bad_request")):
            status, body = await asyncio.to_thread(http, "POST", url, bad.encode(), "application/msgpack")
            assert status // 100 == 4 and body["error"]["code"] == code, body
        assert all(not n.suspensions or not n.suspensions.desk.cases for n in nodes)
        status, body = await asyncio.to_thread(http, "POST", url, report.sign(net.agent).encode(),
                                               "application/msgpack")
        assert status == 202 and body == {"device_id": dev.device_id.hex(), "status": "signed"}, body

        def suspended() -> bool:
            status, body = http("GET", f"{net.ledger_url}/v1/devices/{dev.device_id.hex()}/history")
            return status == 200 and any(e["kind"] == "suspend_device" for e in body["events"])

        assert await _settle(lambda: suspended(), 20)
        status, body = http("GET", f"{net.ledger_url}/v1/devices/{dev.device_id.hex()}/history")
        (event,) = [e for e in body["events"] if e["kind"] == "suspend_device"]
        assert event["signers"] == 3 and event["since_ms"] == since
        # (the submitter's HTTP answer may land just after the entry is visible)
        assert await _settle(lambda: sum(len(n.suspensions.submitted) for n in nodes if n.suspensions) >= 1)
