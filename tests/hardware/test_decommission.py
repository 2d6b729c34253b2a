"""Decommission (DESIGN §15 H11): one admin entry that checks the device's final anchored head,
closes its policies (coverage back to the pool), revokes it, and joins the final anchor to its
history; none of its windows is paid after, not even one anchored before (the design's choice)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from faultproof.errors import FaultproofError, Reason
from faultproof.messages import DecommissionDevice, Deposit, EnrolAgent
from ledger.state import FREE, PolicyStatus, TxKind, device_history, payout_rejection
from tests.ledger.helpers import (
    HOUR,
    T0,
    Scenario,
    anchor,
    chain_value,
    enrol,
    head_of,
    identity,
    make_ledger,
    payout_body,
)


def _refused(state, tx, now: int) -> Reason:  # type: ignore[no-untyped-def]
    height, free = state.height, state.balance(FREE)
    with pytest.raises(FaultproofError) as e:
        state.apply(tx, now)
    assert (state.height, state.balance(FREE)) == (height, free)  # a refusal changes nothing
    return e.value.reason


def test_decommission_closes_revokes_and_the_device_is_never_paid() -> None:
    keys = make_ledger(4)
    sc = Scenario.standard(keys)
    state, agent = sc.set_up_with_agent("agent")
    did, pid = sc.device.public_key, sc.policy_id
    early, late = sc.body(0), sc.body(2)
    now = sc.time_after(0)
    state.apply(anchor(keys, agent, 1, [head_of(early)]), now)
    anchor_height = state.height
    assert payout_rejection(state, early, now) is None  # payable while the device is in service

    head = head_of(early)
    wrong = keys.sign(DecommissionDevice(device_id=did, epoch=0, seq=head.seq + 1, chain=chain_value("newer")),
                      nonce=keys.next_nonce)
    assert _refused(state, wrong, now) is Reason.ANCHOR_MISMATCH  # not the final anchored head
    locked, premium, free = state.policy(pid).locked, sc.terms.premium, state.balance(FREE)
    assert locked > 0
    state.apply(keys.sign(DecommissionDevice(device_id=did, epoch=head.epoch, seq=head.seq, chain=head.chain)), now)

    policy = state.policy(pid)
    assert policy.status is PolicyStatus.CLOSED and policy.locked == 0 and policy.closed_ms == now
    assert state.balance(FREE) == free + locked + premium  # coverage back to the pool, premium earned
    assert state.device(did).revoked_ms == now
    # Every window is refused with its reason: one after the decommission, and one before the final
    # head even though it was anchored (claims in flight must be settled before decommissioning).
    assert payout_rejection(state, late, sc.time_after(2)) is Reason.DEVICE_DECOMMISSIONED
    assert payout_rejection(state, early, now) is Reason.DEVICE_DECOMMISSIONED
    assert _refused(state, keys.qc(late), sc.time_after(2)) is Reason.DEVICE_DECOMMISSIONED
    # The history shows each step: enrolment, policy, the final anchor, the decommission.
    kinds = device_history(state, did)
    assert (anchor_height, TxKind.ANCHOR) in kinds and kinds[-1] == (state.height, TxKind.DECOMMISSION_DEVICE)
    assert [k for _, k in kinds] == [TxKind.ENROL_DEVICE, TxKind.ISSUE_POLICY, TxKind.ANCHOR,
                                     TxKind.DECOMMISSION_DEVICE]
    again = keys.sign(DecommissionDevice(device_id=did, epoch=head.epoch, seq=head.seq, chain=head.chain),
                      nonce=keys.next_nonce)
    assert _refused(state, again, now + HOUR) is Reason.INVALID_STATE_TRANSITION


def test_a_device_that_never_anchored_names_no_head() -> None:
    keys = make_ledger(4)
    state = keys.new_state()
    dev = identity("quiet")
    state.apply(keys.sign(enrol(dev)), T0)
    named = keys.sign(DecommissionDevice(device_id=dev.public_key, epoch=0, seq=3, chain=chain_value("x")),
                      nonce=keys.next_nonce)
    assert _refused(state, named, T0) is Reason.ANCHOR_MISMATCH
    state.apply(keys.sign(DecommissionDevice(device_id=dev.public_key, epoch=0, seq=0, chain=bytes(32))), T0)
    assert state.device(dev.public_key).revoked_ms == T0
    assert _refused(state, keys.sign(DecommissionDevice(device_id=b"\x09" * 32, epoch=0, seq=0, chain=bytes(32)),
                                     nonce=keys.next_nonce), T0) is Reason.NOT_FOUND


async def test_device_decommission_command_end_to_end(tmp_path: Path, token_store: dict[str, str]) -> None:
    """The agent anchors the device's final head; `faultproof device decommission` closes its
    policy, revokes it and destroys its token key; the history shows each step; a claim for a
    later window is refused by the ledger with its reason."""
    from agent.anchor import Anchorer
    from agent.cli import device as device_cli
    from agent.store import Store
    from faultproof import signing
    from faultproof.messages import EnrolDevice, policy_id
    from ledger.client import LedgerClient
    from tests.hardware.conftest import token_cfg
    from tests.ledger.helpers import SECOND, ManualClock, fake_circuit, policy_terms, serve_ledger

    keys = make_ledger(4)
    key_file = tmp_path / "admin.key"
    keys.admin.save(key_file)
    token_key = signing.token_generate(token_cfg("decommissioned-device"), signing.KeyType.ED25519)
    did = token_key.key_id  # the device's key lives in the token
    circuit = fake_circuit(16)
    terms = policy_terms(did, circuit.circuit_id)
    agent = identity("agent-decom")
    clock = ManualClock(T0)
    async with serve_ledger(tmp_path, keys, clock=clock) as (env, url), LedgerClient(url) as client:
        setup = [keys.sign(Deposit(amount=10_000)), keys.sign(circuit),
                 keys.sign(EnrolDevice(device_id=did, epoch=0, anchor=chain_value("c0"), firmware_hash=bytes(32))),
                 keys.sign(terms), keys.sign(EnrolAgent(agent_id=agent.public_key))]
        issue = setup[3]
        await env.ok_all(setup)
        pid = policy_id(issue.tx)
        store = Store(tmp_path / "agent.sqlite3")
        store.begin()
        d = store.dev_id(did)
        store.insert_frames([(d, 0, s, T0 + s * SECOND, 0, chain_value(f"f{s}"), b"\x00" * 64, 1) for s in range(21)])
        store.commit()
        store.close()
        clock.set(T0 + 30 * SECOND)
        anchorer = Anchorer(agent, tmp_path / "agent.sqlite3", client, lambda: env.state)
        head = await anchorer.anchor_device(did)  # what POST /v1/devices/{id}/anchor does
        assert head is not None and head.seq == 20
        assert env.state.history(did).last_head.seq == 20  # type: ignore[union-attr]
        assert await anchorer.anchor_device(b"\x07" * 32) is None  # no frame of it held

        result = await asyncio.to_thread(CliRunner().invoke, device_cli, [
            "decommission", did.hex(), "--ledger", url, "--key", str(key_file),
            "--token-key", f"pkcs11:{token_store['token']}/decommissioned-device"])
        assert result.exit_code == 0, result.output
        out = json.loads(result.output)
        assert out["final_head"]["seq"] == 20 and out["token_key_destroyed"] == 2  # the pair: public + private
        kinds = [e["kind"] for e in out["history"]]
        assert kinds == ["enrol_device", "issue_policy", "anchor", "decommission_device"]
        anchor_ev, decom = out["history"][2], out["history"][3]
        assert anchor_ev["heads"] == [{"epoch": 0, "seq": 20, "ts_ms": T0 + 20 * SECOND,
                                       "chain": chain_value("f20").hex()}]
        assert decom["final_head"]["anchor_height"] == anchor_ev["height"] and decom["revoked"] is True
        assert decom["policies_closed"] == [{"policy_id": pid.hex(), "released": terms.coverage}]
        assert (await client.device(did))["decommissioned_ms"] == T0 + 30 * SECOND
        assert (await client.policy(pid))["status"] == "closed"
        assert signing.token_destroy(token_cfg("decommissioned-device")) == 0  # gone from the token

        # A claim for a window after the decommission: refused with its reason, nothing paid.
        body = payout_body(keys.ledger_id, pid, terms, n=16, start_seq=30, start_ts=T0 + 40 * SECOND,
                           end_ts=T0 + 50 * SECOND)
        clock.set(T0 + 60 * SECOND)
        with pytest.raises(FaultproofError) as e:
            await client.submit(keys.qc(body))
        assert e.value.reason is Reason.DEVICE_DECOMMISSIONED
        again = await asyncio.to_thread(CliRunner().invoke, device_cli, [
            "decommission", did.hex(), "--ledger", url, "--key", str(key_file)])
        assert again.exit_code != 0 and "invalid_state_transition" in again.output and "Traceback" not in again.output
