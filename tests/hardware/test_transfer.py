"""Device transfer to another agent (DESIGN §15 H9): an admin tx on the ledger, in the device's
chain of custody (`GET /v1/devices/{id}/history`, `faultproof admin transfer-device`); from its
entry on the previous agent's anchors (ledger) and claims (oracles) for the device are refused
with `device_not_in_custody`, and the new agent's are accepted."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from faultproof.errors import FaultproofError, Reason
from faultproof.identity import Identity
from faultproof.messages import DeviceHead, EnrolAgent, RevokeAgent, RevokeDevice, TransferDevice
from ledger.admin_cli import admin
from ledger.client import LedgerClient
from ledger.state import TxKind, device_history
from oracle.pipeline import check_content, check_ledger_state
from tests.ledger.helpers import T0, ManualClock, anchor, enrol, identity, make_ledger, serve_ledger
from tests.netfix import SECOND, DeviceSim, make_claim
from tests.oracle.test_pipeline import World, world  # noqa: F401 - the module-scoped replica fixture


def _refused(w: World, tx: object, reason: Reason) -> None:
    before = (w.state.height, w.state.admin_nonce, dict(w.state.hw.custodian), dict(w.state.anchor_rounds))
    with pytest.raises(FaultproofError) as e:
        w.state.apply(tx, w.now)  # type: ignore[arg-type]
    assert e.value.reason is reason
    assert (w.state.height, w.state.admin_nonce, dict(w.state.hw.custodian), dict(w.state.anchor_rounds)) == before


def test_after_a_transfer_only_the_new_agent_anchors_and_claims(world: World) -> None:  # noqa: F811
    w = world
    dev = DeviceSim.create()
    w.state.apply(w.keys.sign(dev.enrol_tx()), w.now)
    pid, terms = w.issue(dev)
    start = dev.record([90, 95, 10, 12], start_ts=w.now - 50 * SECOND)
    old = make_claim(w.circuit, dev, pid, terms, start, w.agent)
    check_content(old, w.state)  # before any transfer, any enrolled agent serves the device
    b = Identity.generate()
    w.state.apply(w.keys.sign(EnrolAgent(agent_id=b.public_key)), w.now)

    effect, _ = w.state.apply(w.keys.sign(TransferDevice(device_id=dev.device_id, to_agent=b.public_key)), w.now)
    assert effect.kind is TxKind.TRANSFER_DEVICE and w.state.hw.custodian[dev.device_id] == b.public_key
    assert device_history(w.state, dev.device_id)[-1] == (w.state.height, TxKind.TRANSFER_DEVICE)

    # The old agent's claim is refused by the oracles' content checks; the new agent's passes.
    with pytest.raises(FaultproofError) as e:
        check_content(old, w.state)
    assert e.value.reason is Reason.DEVICE_NOT_IN_CUSTODY
    new = make_claim(w.circuit, dev, pid, terms, start, b, proof=old.claim.proof)
    checked = check_content(new, w.state)
    assert check_ledger_state(checked, w.state, w.now) is None
    # Other devices are untouched: the old agent still claims for them.
    check_content(w.claim, w.state)

    # Anchors: the old agent's naming the device are refused (ledger unchanged), the new one's land.
    end = old.claim.end.frame
    head = DeviceHead(device_id=end.device_id, epoch=end.epoch, seq=end.seq, ts_ms=end.ts_ms, chain=end.chain)
    round_ = w.state.anchor_rounds.get(w.agent.public_key, 0) + 1
    _refused(w, anchor(w.keys, w.agent, round_, [head]), Reason.DEVICE_NOT_IN_CUSTODY)
    effect, _ = w.state.apply(anchor(w.keys, b, 1, [head]), w.now)
    assert effect.kind is TxKind.ANCHOR

    # Back to the first agent: the second one is then refused.
    w.state.apply(w.keys.sign(TransferDevice(device_id=dev.device_id, to_agent=w.agent.public_key)), w.now)
    with pytest.raises(FaultproofError) as e:
        check_content(new, w.state)
    assert e.value.reason is Reason.DEVICE_NOT_IN_CUSTODY
    check_content(old, w.state)


def test_refused_transfers_change_nothing(world: World) -> None:  # noqa: F811
    w = world
    dev = DeviceSim.create()
    w.state.apply(w.keys.sign(dev.enrol_tx()), w.now)
    gone = Identity.generate()
    w.state.apply(w.keys.sign(EnrolAgent(agent_id=gone.public_key)), w.now)
    w.state.apply(w.keys.sign(RevokeAgent(agent_id=gone.public_key)), w.now)

    def tx(device: bytes, agent: bytes) -> object:
        return w.keys.sign(TransferDevice(device_id=device, to_agent=agent), nonce=w.state.admin_nonce + 1)

    _refused(w, tx(b"\x07" * 32, w.agent.public_key), Reason.NOT_FOUND)
    _refused(w, tx(dev.device_id, Identity.generate().public_key), Reason.UNKNOWN_AGENT)
    _refused(w, tx(dev.device_id, gone.public_key), Reason.UNKNOWN_AGENT)
    w.state.apply(w.keys.sign(TransferDevice(device_id=dev.device_id, to_agent=w.agent.public_key)), w.now)
    _refused(w, tx(dev.device_id, w.agent.public_key), Reason.INVALID_STATE_TRANSITION)
    w.state.apply(w.keys.sign(RevokeDevice(device_id=dev.device_id)), w.now)
    other = Identity.generate()
    w.state.apply(w.keys.sign(EnrolAgent(agent_id=other.public_key)), w.now)
    _refused(w, tx(dev.device_id, other.public_key), Reason.DEVICE_REVOKED)


async def test_transfer_by_the_admin_cli_is_in_the_device_history(tmp_path: Path) -> None:
    keys = make_ledger(4)
    key_file = tmp_path / "admin.key"
    keys.admin.save(key_file)
    device, a, b = identity("device-t"), identity("agent-a"), identity("agent-b")
    async with serve_ledger(tmp_path, keys, clock=ManualClock(T0)) as (env, url):
        async with LedgerClient(url) as client:
            for args in (enrol(device), EnrolAgent(agent_id=a.public_key), EnrolAgent(agent_id=b.public_key)):
                await client.submit(keys.sign(args, nonce=env.state.next_admin_nonce))

        async def run(*args: str) -> tuple[int, str]:
            r = await asyncio.to_thread(CliRunner().invoke, admin, ["--url", url, "--key", str(key_file), *args])
            return r.exit_code, r.output

        code, out = await run("transfer-device", device.public_key.hex(), "--to", b.public_key.hex())
        assert code == 0, out
        code, out = await run("transfer-device", device.public_key.hex(), "--to", b.public_key.hex())
        assert code != 0 and "invalid_state_transition" in out and "Traceback" not in out
        code, out = await run("transfer-device", device.public_key.hex(), "--to", "zz")
        assert code != 0 and "Traceback" not in out
        async with LedgerClient(url) as client:
            hist = await client.device_history(device.public_key)
        assert [e["kind"] for e in hist["events"]] == ["enrol_device", "transfer_device"]
        assert hist["events"][1]["to_agent"] == b.public_key.hex()
        assert env.state.hw.custodian[device.public_key] == b.public_key
        assert json.loads(json.dumps(hist)) == hist
