"""Device data attacks, on the gateway agent (a real `faultproof agent run` process, frames over
HTTP) and on the oracles (claims built from the same kind of bad data), and the agent's own
faults. Trusted here: the device key and firmware (DESIGN §1), so the attacker is whoever sits
between the sensor and the agent, or holds an agent key, but not the device's secret element.

After every case: the refused frame is not stored, the agent filed no claim it should not have,
and the ledger's head hash and balances are unchanged (or moved by exactly the payouts that must
happen)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.simulator import SimDevice
from agent.store import stored_seqs
from faultproof import chain
from faultproof.errors import Reason
from faultproof.identity import Identity
from faultproof.messages import DeviceReading, Frame, ReadingBatch
from faultproof.procs import free_port
from faultproof.zk import TriggerParams
from tests.adversarial.advnet import (
    NESTING_BOMBS,
    PARAMS,
    TRIGGERING,
    AdvNetwork,
    LedgerBook,
    assert_paid_once,
    entries_after,
    eventually,
    incident,
    module_end_check,
    no_record_anywhere,
    payouts_in,
    settle_gossip,
    snapshot,
    thief_proof,
    unchanged,
)
from tests.adversarial.cases import case
from tests.agent.agentfix import AgentProc
from tests.netfix import SECOND, http, now_ms, wait_until

HIGH = 9000


@pytest.fixture(scope="module")
def agent(net: AdvNetwork) -> Iterator[AgentProc]:
    # Frames arrive over HTTP in these cases: no broker, so MQTT is off (with it on and no broker,
    # the agent is alive but rightly not ready).
    a = AgentProc.create(net.root, net, free_port())
    a.write_config(net, mqtt={"enabled": False})
    a.start()
    try:
        yield a
    finally:
        a.stop()


# ====================================================================== helpers


def post(agent: AgentProc, msg: DeviceReading | ReadingBatch) -> tuple[int, Any]:
    return http("POST", agent.url + "/v1/frames", msg.encode(), "application/msgpack")


def agent_synced(agent: AgentProc, net: AdvNetwork) -> None:
    height = net.ledger_height()
    wait_until(lambda: agent.status()["ledger"]["height"] >= height, 30, 0.1, what="agent replica caught up")


def new_device(agent: AgentProc, net: AdvNetwork, *, policy: TriggerParams | None = None) -> tuple[SimDevice, DeviceReading]:
    """A device provisioned into the agent and enrolled (optionally insured); its anchor frame
    (seq 0, back-dated a minute) is accepted before this returns."""
    [dev] = agent.new_devices(net, 1)
    if policy is not None:
        agent.insure(net, dev, policy)
    agent_synced(agent, net)
    anchor = dev.make(now_ms() - 60 * SECOND)

    def accepted() -> bool:
        status, body = post(agent, anchor)
        if status == 422 and body["error"]["code"] == Reason.UNKNOWN_DEVICE.value:
            return False  # the agent has not read the new key file yet
        assert status == 200 and body["accepted"] == 1, body
        return True

    wait_until(accepted, 30, 0.2, what="agent knows the new device")
    return dev, anchor


def frames(dev: SimDevice, readings: list[int], step_ms: int = 100) -> list[DeviceReading]:
    t = dev.last_ts + step_ms
    out = []
    for r in readings:
        out.append(dev.make(t, r))
        t += step_ms
    return out


def frame_msg(dev: SimDevice, seq: int, ts: int, chain_value: int, reading: int,
              signer: Identity | None = None, epoch: int | None = None) -> DeviceReading:
    """A frame built by hand (for what SimDevice refuses to make), signed by `signer`
    (default: the device's own key, i.e. made by its firmware)."""
    f = Frame(device_id=dev.device_id, epoch=dev.epoch if epoch is None else epoch, seq=seq, ts_ms=ts,
              chain=chain.chain_to_bytes(chain_value))
    return DeviceReading(signed=f.sign(signer or dev.identity), reading=chain.enc(reading))


def chained_msg(dev: SimDevice, seq: int, ts: int, prev_chain: int, reading: int) -> DeviceReading:
    """Frame `seq` at `ts` chained on `prev_chain` as the device's firmware chains it (its blinding
    of seq), signed by the device: for the timestamps and links SimDevice refuses to make."""
    step = chain.chain_step(prev_chain, ts, reading, chain.blinding_value(dev.blinding_key, seq))
    return frame_msg(dev, seq, ts, step, reading)


def refused(agent: AgentProc, msg: DeviceReading, reason: Reason) -> None:
    status, body = post(agent, msg)
    assert (status, body.get("error", {}).get("code")) == (reason.http_status, reason.value), body


def stored(agent: AgentProc, dev: SimDevice, epoch: int = 0) -> list[int]:
    return stored_seqs(agent.store_path, dev.device_id, epoch)


def refused_at_oracles(net: AdvNetwork, claim: Any, reason: Reason, oracle: int = 0) -> None:
    """The claim is refused with `reason`, no oracle keeps a record of it, and the ledger moved nothing."""
    with unchanged(net):
        status, body = net.post_claim(oracle, claim)
        assert (status, body["error"]["code"]) == (reason.http_status, reason.value), body
        assert no_record_anywhere(net, claim.claim.claim_id)


# ====================================================================== device data


@case("ADV-DEV-01", "forged frame signature (zeroed, random, or another frame's signature)")
def test_forged_frame_signature(healthy: AdvNetwork, agent: AgentProc) -> None:
    net = healthy
    dev, _ = new_device(agent, net)
    good = frames(dev, [10, 11, 12, 13])
    with unchanged(net):
        assert post(agent, ReadingBatch(readings=tuple(good[:3])))[0] == 200
        nxt = good[3]
        for sig in (bytes(64), os.urandom(64), good[0].signed.signature):
            refused(agent, nxt.replace(signed=nxt.signed.replace(signature=sig)), Reason.BAD_FRAME_SIGNATURE)
        assert stored(agent, dev) == [0, 1, 2, 3]
        assert post(agent, nxt)[0] == 200  # the forgery did not burn the seq
    # The same forgery inside a claim, at the oracles.
    inc = incident(net)
    c = inc.claim.claim
    forged = c.replace(end=c.end.replace(signature=os.urandom(64))).sign(net.agent)
    refused_at_oracles(net, forged, Reason.BAD_FRAME_SIGNATURE)


@case("ADV-DEV-02", "a frame signed by another enrolled device (its key over our device id; its frame in our window)")
def test_frame_signed_by_another_device(healthy: AdvNetwork, agent: AgentProc) -> None:
    net = healthy
    dev, _ = new_device(agent, net)
    other, _ = new_device(agent, net)
    good = frames(dev, [10])[0]
    with unchanged(net):
        stolen = good.replace(signed=good.signed.frame.sign(other.identity))  # other's key, our device id
        refused(agent, stolen, Reason.BAD_FRAME_SIGNATURE)
        assert stored(agent, dev) == [0]
    # At the oracles: our start frame, the other device's (validly signed) end frame.
    a, b = incident(net), incident(net)
    mixed = a.claim.claim.replace(end=b.claim.claim.end).sign(net.agent)
    refused_at_oracles(net, mixed, Reason.FRAME_MISMATCH)


@case("ADV-DEV-03", "replayed frames (exact copy, alone and inside a batch)")
def test_replayed_frame(healthy: AdvNetwork, agent: AgentProc) -> None:
    net = healthy
    dev, anchor = new_device(agent, net)
    good = frames(dev, [10, 11, 12])
    with unchanged(net):
        assert post(agent, ReadingBatch(readings=tuple(good)))[0] == 200
        refused(agent, good[1], Reason.REPLAYED_FRAME)
        refused(agent, anchor, Reason.REPLAYED_FRAME)
        nxt = frames(dev, [13])[0]
        status, body = post(agent, ReadingBatch(readings=(good[0], nxt, good[2])))
        assert status == 200 and body["accepted"] == 1, body
        assert [r["code"] for r in body["rejected"]] == [Reason.REPLAYED_FRAME.value] * 2
        assert stored(agent, dev) == [0, 1, 2, 3, 4]


@case("ADV-DEV-04", "reordered frames: genuine frames delivered out of order; a proof over reordered readings")
def test_reordered_frames(healthy: AdvNetwork, agent: AgentProc) -> None:
    net = healthy
    dev, _ = new_device(agent, net)
    good = frames(dev, [10, 11, 12, 13, 14])  # seqs 1..5
    with unchanged(net):
        for i in (0, 2, 1, 4, 3):  # 1, 3, 2, 5, 4: a network that reorders loses nothing
            status, body = post(agent, good[i])
            assert status == 200 and body["accepted"] == 1, (i, body)
        assert stored(agent, dev) == [0, 1, 2, 3, 4, 5]
    # The thief reorders readings inside a window to make the trigger hold on the wrong order:
    # RUN(80, 2) is false on 90, 10, 95, 12 but true on 90, 95, 10, 12.
    run = TriggerParams.run(80, 2)
    d = net.new_device(anchor_ts=now_ms() - 30 * SECOND)
    pid, terms = net.issue_policy(d, run)
    start = d.record([90, 10, 95, 12], start_ts=now_ms() - 20 * SECOND)
    proof = thief_proof(net, d, start, readings=[90, 95, 10, 12], params=run)
    claim = net.claim(d, pid, terms, start, proof=proof)
    refused_at_oracles(net, claim, Reason.BAD_PROOF)


@case("ADV-DEV-05", "a chain that skips a reading (firmware chains frame 4 on frame 2); a window over the gap")
def test_chain_that_skips_a_reading(healthy: AdvNetwork, agent: AgentProc, book: LedgerBook) -> None:
    net = healthy
    dev, _ = new_device(agent, net, policy=PARAMS)  # any 2 readings above 80 in a window of 4
    before = snapshot(net)
    f1, f2 = frames(dev, [HIGH, HIGH])
    assert post(agent, ReadingBatch(readings=(f1, f2)))[0] == 200
    # Frame 3 is read but never chained: frame 4's chain skips it.
    c2 = int.from_bytes(f2.signed.frame.chain, "big")
    t3, t4 = dev.last_ts + 100, dev.last_ts + 200
    f3 = chained_msg(dev, 3, t3, c2, HIGH)
    f4 = chained_msg(dev, 4, t4, c2, HIGH)  # chained on frame 2: skips frame 3
    status, body = post(agent, f4)
    assert status == 200 and body["accepted"] == 1, body  # accepted unlinked (its predecessor is missing)
    # The late predecessor is accepted (a provisional successor never fails it, design §12); frame 4
    # does not follow from 3, so it stays unlinked: its reading is never part of a window.
    status, body = post(agent, f3)
    assert status == 200 and body["accepted"] == 1, body
    # The device carries on from frame 4; windows may start at 4, never span 2..4.
    dev.chain, dev.last_ts, dev.next_seq = int.from_bytes(f4.signed.frame.chain, "big"), t4, 5
    rest = frames(dev, [HIGH, HIGH, HIGH, HIGH])  # seqs 5..8
    assert post(agent, ReadingBatch(readings=tuple(rest)))[0] == 200
    [claim] = agent.wait_claims(lambda cs: cs and cs[0]["status"] in ("paid", "rejected", "failed"),
                                device_id=dev.device_id, timeout=90, what="the provable window claimed")
    assert claim["status"] == "paid" and (claim["start_seq"], claim["end_seq"]) == (4, 8), claim
    cid = bytes.fromhex(claim["claim_id"])
    book.expect(cid, "ADV-DEV-05")
    settle_gossip()
    assert_paid_once(net, before, cid, 1_000)
    assert stored(agent, dev) == [0, 1, 2, 3, 4, 5, 6, 7, 8]


@case("ADV-DEV-06", "a reading changed after signing (to the agent; and proved by a thief)")
def test_reading_changed_after_signing(healthy: AdvNetwork, agent: AgentProc) -> None:
    net = healthy
    dev, _ = new_device(agent, net)
    [f1] = frames(dev, [10])
    with unchanged(net):
        for reading in (chain.enc(HIGH), chain.enc(11), 0, 2**32 - 1):
            refused(agent, f1.replace(reading=reading), Reason.CHAIN_BROKEN)
        assert stored(agent, dev) == [0]
        assert post(agent, f1)[0] == 200
    # The thief proves the changed readings against the real signed frames.
    inc = incident(net, readings=[10, 11, 12, 13], proof=bytes(256))  # nothing happened here
    proof = thief_proof(net, inc.dev, inc.start, readings=[90, 95, 12, 13])
    forged = inc.claim.claim.replace(proof=proof).sign(net.agent)
    refused_at_oracles(net, forged, Reason.BAD_PROOF)


@case("ADV-DEV-07", "timestamps going backwards (a signed frame older than its predecessor; a window ending before it starts)")
def test_timestamps_going_backwards(healthy: AdvNetwork, agent: AgentProc) -> None:
    net = healthy
    dev, _ = new_device(agent, net)
    f1, f2 = frames(dev, [10, 11])
    with unchanged(net):
        assert post(agent, ReadingBatch(readings=(f1, f2)))[0] == 200
        back = f1.signed.frame.ts_ms - 1
        c2 = int.from_bytes(f2.signed.frame.chain, "big")
        for ts in (back, f2.signed.frame.ts_ms):
            refused(agent, chained_msg(dev, 3, ts, c2, 12), Reason.TIMESTAMP_NOT_INCREASING)
        assert stored(agent, dev) == [0, 1, 2]
    # At the oracles: the end frame is not later than the start frame.
    inc = incident(net)
    d = inc.dev
    end_seq = inc.start + net.circuit.n
    bad_end = Frame(device_id=d.device_id, epoch=0, seq=end_seq, ts_ms=d.timestamps[inc.start] - 1,
                    chain=chain.chain_to_bytes(d.chains[end_seq])).sign(d.identity)
    claim = inc.claim.claim.replace(end=bad_end).sign(net.agent)
    refused_at_oracles(net, claim, Reason.FRAME_MISMATCH)


@case("ADV-DEV-08", "timestamps far in the future (a frame an hour ahead; a claim window ending an hour ahead)")
def test_timestamps_in_the_future(healthy: AdvNetwork, agent: AgentProc) -> None:
    net = healthy
    dev, _ = new_device(agent, net)
    with unchanged(net):
        for ahead in (3600 * SECOND, 2**47 - now_ms()):
            refused(agent, chained_msg(dev, 1, now_ms() + ahead, dev.chain, 10), Reason.TIMESTAMP_IN_FUTURE)
        assert stored(agent, dev) == [0]
    # At the oracles: a real incident whose frames are an hour ahead (a device with a broken
    # clock, or a thief who got such frames signed): every oracle rejects it on ledger time.
    inc = incident(net, window_ts=now_ms() + 3600 * SECOND)
    with unchanged(net):
        status, body = net.post_claim(1, inc.claim)
        assert status == 202 and body["vote"] == "reject" and body["reason"] == Reason.END_TS_IN_FUTURE.value, body
        view = net.wait_status(inc.claim_id, "rejected", oracle=1)
        assert view["reason"] == Reason.END_TS_IN_FUTURE.value and view["qc"] is None


@case("ADV-DEV-09", "a revoked device keeps sending (frames after the revocation; a window after it)")
def test_revoked_device(healthy: AdvNetwork, agent: AgentProc) -> None:
    net = healthy
    dev, _ = new_device(agent, net)
    net.revoke_device(dev)  # type: ignore[arg-type]  # uses .device_id only
    agent_synced(agent, net)
    with unchanged(net):
        refused(agent, dev.make(now_ms(), 10), Reason.DEVICE_REVOKED)
        assert stored(agent, dev) == [0]
    # At the oracles: a window that ends after the revocation is rejected (DEVICE_REVOKED).
    inc = incident(net)
    net.revoke_device(inc.dev)
    start = inc.dev.record(TRIGGERING, start_ts=now_ms() + 100, step_ms=100)
    time.sleep(0.8)  # the window must end in the past (ledger skew is 5 s, so this is just hygiene)
    late = net.claim(inc.dev, inc.pid, inc.terms, start)
    with unchanged(net):
        status, body = net.post_claim(2, late)
        assert status == 202 and body["reason"] == Reason.DEVICE_REVOKED.value, body
        net.wait_status(late.claim.claim_id, "rejected", oracle=2)


@case("ADV-DEV-10", "a device not covered by the policy (its frames under another device's policy; an uninsured incident)")
def test_device_not_covered_by_the_policy(healthy: AdvNetwork, agent: AgentProc) -> None:
    net = healthy
    # At the oracles: device B's genuine incident claimed under device A's policy.
    a, b = incident(net), incident(net)
    stolen = b.claim.claim.replace(policy_id=a.pid).sign(net.agent)
    refused_at_oracles(net, stolen, Reason.POLICY_DEVICE_MISMATCH)
    # At the agent: an enrolled device without a policy has a real incident: stored, never claimed.
    dev, _ = new_device(agent, net)
    with unchanged(net):
        assert post(agent, ReadingBatch(readings=tuple(frames(dev, [HIGH] * 8))))[0] == 200
        assert stored(agent, dev) == list(range(9))
        time.sleep(2)
        assert agent.claims(dev.device_id) == []


@case("ADV-DEV-11", "frames of a device that was never enrolled")
def test_unknown_device(healthy: AdvNetwork, agent: AgentProc) -> None:
    net = healthy
    stranger = SimDevice(Identity.generate(), os.urandom(31))
    with unchanged(net):
        msgs = [stranger.make(now_ms() - 1000 + i) for i in range(3)]
        for m in msgs:
            refused(agent, m, Reason.UNKNOWN_DEVICE)
        status, body = post(agent, ReadingBatch(readings=tuple(msgs)))
        assert status == 200 and body["accepted"] == 0 and len(body["rejected"]) == 3, body
        assert stored(agent, stranger) == []


@case("ADV-DEV-12", "frames of an epoch the ledger does not know (a forged re-anchor)")
def test_wrong_epoch(healthy: AdvNetwork, agent: AgentProc) -> None:
    net = healthy
    dev, _ = new_device(agent, net)
    with unchanged(net):
        anchor1 = chain.chain_anchor(dev.device_id, 1)
        refused(agent, frame_msg(dev, 0, now_ms() - 500, anchor1, 0, epoch=1), Reason.WRONG_EPOCH)
        assert stored(agent, dev, epoch=1) == []
    # At the oracles: a claim whose two frames carry an epoch the device was never enrolled with.
    inc = incident(net)
    c, d = inc.claim.claim, inc.dev
    e0 = Frame(device_id=d.device_id, epoch=7, seq=c.start.frame.seq, ts_ms=c.start.frame.ts_ms,
               chain=c.start.frame.chain).sign(d.identity)
    e1 = Frame(device_id=d.device_id, epoch=7, seq=c.end.frame.seq, ts_ms=c.end.frame.ts_ms,
               chain=c.end.frame.chain).sign(d.identity)
    refused_at_oracles(net, c.replace(start=e0, end=e1).sign(net.agent), Reason.FRAME_MISMATCH)


# ====================================================================== the agent's HTTP surface


@case("ADV-FUZ-07", "random bodies, nesting bombs and paths to the agent's HTTP API (POST /v1/frames, GETs)")
def test_agent_http_fuzz(healthy: AdvNetwork, agent: AgentProc) -> None:
    net = healthy
    with unchanged(net):
        committed = agent.status()["frames"]["committed"]
        seen: list[tuple[int, str]] = []

        @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        @given(st.binary(max_size=400), st.sampled_from(["application/msgpack", "application/json", "text/plain", ""]))
        def frames_body(body: bytes, ctype: str) -> None:
            status, resp = http("POST", agent.url + "/v1/frames", body, ctype or "application/octet-stream")
            seen.append((status, ctype))
            assert status < 500, (status, resp)
            if status >= 400:
                assert isinstance(resp, dict) and resp["error"]["code"] in {r.value for r in Reason}, resp
            else:
                assert resp["accepted"] == 0, resp

        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        @given(st.text(alphabet="abcdef0123456789/?=&%xz.", max_size=80))
        def get_path(path: str) -> None:
            for base in ("/v1/claims/", "/v1/claims?", "/v1/", "/"):
                status, resp = http("GET", agent.url + base + path)
                assert status < 500, (base + path, status, resp)

        frames_body()
        get_path()
        # Nesting bombs: a 4xx with a reason, like any other undecodable body.
        for body, ctype in NESTING_BOMBS:
            status, resp = http("POST", agent.url + "/v1/frames", body, ctype)
            assert 400 <= status < 500 and isinstance(resp, dict), (body[:8], status, resp)
            assert resp["error"]["code"] in {r.value for r in Reason}, (body[:8], status, resp)
        assert agent.status()["frames"]["committed"] == committed  # nothing random was stored


# ====================================================================== the agent killed


@case("ADV-FLT-01", "kill -9 of the agent while it proves incidents; restart")
def test_agent_killed_while_proving(healthy: AdvNetwork, agent: AgentProc, book: LedgerBook) -> None:
    net = healthy
    devs = [new_device(agent, net, policy=PARAMS)[0] for _ in range(4)]
    before = snapshot(net)
    for d in devs:  # one incident each, all at once: the prover queue (1 worker) fills up
        assert post(agent, ReadingBatch(readings=tuple(frames(d, [HIGH, HIGH, 10, 10]))))[0] == 200
    killed = False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not killed:
        try:
            claims = [c for d in devs for c in agent.claims(d.device_id)]
        except (AssertionError, OSError):
            continue
        if any(c["status"] == "detected" for c in claims) and claims:
            agent.kill9()
            killed = True
        time.sleep(0.02)
    assert killed, "no claim was ever seen in 'detected' (being proved)"
    agent.start()

    def decided() -> list[dict[str, Any]] | None:
        cs = [c for d in devs for c in agent.claims(d.device_id)]
        return cs if len(cs) == len(devs) and all(c["status"] == "paid" for c in cs) else None

    claims = eventually(decided, 120, what="every incident paid after the restart")
    ids = [bytes.fromhex(c["claim_id"]) for c in claims]
    for cid in ids:
        book.expect(cid, "ADV-FLT-01")
    settle_gossip()
    paid = payouts_in(entries_after(net, before.height))
    assert sorted(paid) == sorted((cid, 1_000) for cid in ids), paid  # each exactly once
    for d in devs:  # no acknowledged frame lost in the crash
        assert stored(agent, d) == [0, 1, 2, 3, 4]


def test_module_end_ledger_verifies_and_paid_exactly_the_expected(net: AdvNetwork, book: LedgerBook) -> None:
    module_end_check(net, book)
