"""End to end on real processes: a ledger and 5 oracles (k = 4) on 127.0.0.1 (conftest `net`).

Every claim is real: a simulated device's signed, Poseidon-chained frames and a Groth16 proof
(n = 4). Outcomes are checked where they matter: the claim's status and reason on the oracles, and
the ledger (height, receipts, what the policy paid)."""

from __future__ import annotations

import dataclasses
import json
import os
import time

import msgpack
import pytest

from faultproof.errors import Reason, Stage
from faultproof.identity import Identity
from faultproof.messages import DecommissionDevice, SignedClaim, TransferDevice
from oracle.pipeline import AGENT_ONLY_CONTENT_REASONS
from tests.hardware.claimfix import HARDWARE_STATE_REASONS
from tests.hardware.netcases import hardware_network_claim
from tests.netfix import (
    HOUR,
    MINUTE,
    SECOND,
    TRIGGERING,
    DeviceSim,
    Incident,
    Network,
    http,
    incident,
    junk_proof,
    now_ms,
    wait_until,
)
from tests.oracle.helpers import (
    next_window,
    no_record_anywhere,
    paid_total,
)

# ====================================================================== the happy path


def test_valid_claim_is_paid_once_whoever_it_is_sent_to(healthy: Network) -> None:
    net = healthy
    inc = incident(net)
    h0 = net.ledger_height()
    status, body = net.post_claim(0, inc.claim)
    assert status == 202, body
    assert body["claim_id"] == inc.claim_id.hex() and body["vote"] == "approve"
    assert body["status"] in ("pending", "approved", "paid")

    view = net.wait_status(inc.claim_id, "paid", oracle=0)
    signers = {s["oracle_id"] for s in view["qc"]["signatures"]}
    members = {o.oracle_id.hex() for o in net.oracles}
    assert len(signers) >= 4 and signers <= members
    assert view["receipt"] is not None and view["paid"]["amount"] == inc.terms.amount
    status, receipt = net.receipt(inc.claim_id)
    assert status == 200 and receipt["entry"]["entry"]["paid"] == inc.terms.amount
    assert paid_total(net, inc.pid) == (inc.terms.amount, 1)
    assert net.ledger_height() == h0 + 1

    # Again: same oracle, another oracle, JSON form, once every oracle has followed the payout
    # (oracle 0 posted it; the others learn it from the ledger a moment later).
    for o in net.oracles:
        net.wait_status(inc.claim_id, "paid", oracle=o.index, timeout=15)
    for i, as_json in ((0, False), (2, False), (3, True)):
        status, body = net.post_claim(i, inc.claim, as_json=as_json)
        assert status == 202 and body["status"] == "paid", (i, body)
    time.sleep(2.5)  # two re-gossip rounds: any duplicate QC post would have happened by now
    assert paid_total(net, inc.pid) == (inc.terms.amount, 1)
    assert net.ledger_height() == h0 + 1

    listed = http("GET", f"{net.oracles[1].url}/v1/claims?policy_id={inc.pid.hex()}&status=paid")[1]
    assert [c["claim_id"] for c in listed["claims"]] == [inc.claim_id.hex()]
    # msgpack on request: the same object
    status, raw = http("GET", f"{net.oracles[1].url}/v1/claims/{inc.claim_id.hex()}", accept="application/msgpack")
    assert status == 200 and msgpack.unpackb(raw)["status"] == "paid"


def test_status_health_and_metrics(healthy: Network) -> None:
    net = healthy
    st = net.status(0)
    assert st["synced"] and st["member"] and st["oracle_set"]["k"] == 4 and st["oracle_set"]["n"] == 5
    assert st["ledger"]["height"] >= 1 and st["ledger"]["integrity_error"] is None
    assert http("GET", net.oracles[0].url + "/healthz")[0] == 200
    status, text = http("GET", net.oracles[0].url + "/metrics")
    assert status == 200
    for name in ("faultproof_oracle_claims", "faultproof_oracle_votes_total", "faultproof_oracle_equivocations_total",
                 "faultproof_oracle_verify_seconds", "faultproof_oracle_claims_dropped_total", "faultproof_gossip_peers"):
        assert name.encode() in text, name


# ====================================================================== refusals: content and decode


def _content_claim(net: Network, reason: Reason) -> tuple[SignedClaim, bytes | None]:
    """A claim failing `reason` (and the real incident's claim_id it shares, if any)."""
    inc = incident(net)
    c = inc.claim.claim
    if reason is Reason.UNKNOWN_AGENT:
        stranger = Identity.generate()
        return c.replace(agent_id=stranger.public_key).sign(stranger), inc.claim_id
    if reason is Reason.BAD_AGENT_SIGNATURE:
        return dataclasses.replace(inc.claim, signature=bytes(64)), inc.claim_id
    if reason is Reason.BAD_FRAME_SIGNATURE:
        return c.replace(start=dataclasses.replace(c.start, signature=bytes(64))).sign(net.agent), inc.claim_id
    if reason is Reason.FRAME_MISMATCH:
        other = incident(net)
        return c.replace(end=other.dev.frame(other.start + 4)).sign(net.agent), None
    if reason is Reason.UNKNOWN_POLICY:
        return c.replace(policy_id=os.urandom(32)).sign(net.agent), None
    if reason is Reason.POLICY_DEVICE_MISMATCH:
        other = incident(net)
        return c.replace(policy_id=other.pid).sign(net.agent), None
    if reason is Reason.WINDOW_LENGTH:
        inc.dev.record([1])
        return c.replace(end=inc.dev.frame(inc.start + 5)).sign(net.agent), None
    if reason is Reason.BAD_PROOF:
        return c.replace(proof=junk_proof(net.circuit, DeviceSim.create(), inc.terms)).sign(net.agent), inc.claim_id
    if reason is Reason.DEVICE_NOT_IN_CUSTODY:  # DESIGN §15 H9: the device went to another agent
        other_agent = Identity.generate()
        net.enrol_agent(other_agent)
        net.admin_txs([TransferDevice(device_id=inc.dev.device_id, to_agent=other_agent.public_key)])
        height = net.ledger_height()
        wait_until(lambda: net.status(1)["ledger"]["height"] >= height, 10, 0.05, "oracle 1 sees the transfer")
        return inc.claim, inc.claim_id
    raise AssertionError(reason)


ORACLE_REASONS = [r for r in Reason
                  if (r.stage is Stage.CONTENT and r not in AGENT_ONLY_CONTENT_REASONS) or r.stage is Stage.LEDGER_STATE]
# UNKNOWN_CIRCUIT cannot happen against a real ledger (a policy needs a registered circuit and
# circuits are never removed): it is covered on a replica in test_pipeline.py::test_every_content_reason.
CONTENT_REASONS = [r for r in ORACLE_REASONS if r.stage is Stage.CONTENT and r is not Reason.UNKNOWN_CIRCUIT]
LEDGER_STATE_REASONS = [r for r in ORACLE_REASONS if r.stage is Stage.LEDGER_STATE]


@pytest.mark.parametrize("reason", CONTENT_REASONS, ids=lambda r: r.value)
def test_content_reason_gets_its_4xx_and_leaves_no_trace(healthy: Network, reason: Reason) -> None:
    net = healthy
    if reason is Reason.RATE_LIMITED:
        _rate_limited(net)
        return
    claim, real_id = _content_claim(net, reason)
    h0 = net.ledger_height()
    status, body = net.post_claim(1, claim)
    assert status == reason.http_status and status // 100 == 4, body
    assert body["error"]["code"] == reason.value
    assert "Traceback" not in json.dumps(body)
    assert net.claim_status(1, claim.claim.claim_id) is None
    if real_id is not None:
        assert no_record_anywhere(net, real_id)
    assert net.ledger_height() == h0


def _rate_limited(net: Network) -> None:
    """One agent sending junk faster than its budget (burst 40, 5/s here) is told to slow down;
    the limit is checked before the proof, so the flood costs no pairings past the budget."""
    agent = Identity.generate()
    net.enrol_agent(agent)
    inc = incident(net, agent=agent)
    junk = junk_proof(net.circuit, DeviceSim.create(), inc.terms)
    h0 = net.ledger_height()
    codes = []
    for i in range(60):
        claim = inc.claim.claim.replace(proof=junk, created_ms=now_ms() + i).sign(agent)
        status, body = net.post_claim(2, claim)
        codes.append((status, body["error"]["code"]))
    assert (429, Reason.RATE_LIMITED.value) in codes
    assert {c for _, c in codes} <= {Reason.BAD_PROOF.value, Reason.RATE_LIMITED.value}
    assert net.ledger_height() == h0
    assert no_record_anywhere(net, inc.claim_id)


@pytest.mark.parametrize(
    ("body", "ctype", "code", "status"),
    [
        (b"\x92\x0b\x01", "application/msgpack", Reason.MISSING_FIELD, 400),
        (b"\xc1", "application/msgpack", Reason.MALFORMED, 400),
        (b"{", "application/json", Reason.MALFORMED, 400),
        (b'{"claim": 1}', "application/json", Reason.MISSING_FIELD, 400),
        (b"hello", "text/plain", Reason.UNSUPPORTED_MEDIA_TYPE, 415),
        (b"\x00" * 70_000, "application/msgpack", Reason.OVERSIZE, 413),
    ],
    ids=["missing-field", "malformed-msgpack", "malformed-json", "json-schema", "media-type", "oversize"],
)
def test_undecodable_requests(healthy: Network, body: bytes, ctype: str, code: Reason, status: int) -> None:
    got, resp = http("POST", healthy.oracles[0].url + "/v1/claims", body, ctype)
    assert (got, resp["error"]["code"]) == (status, code.value)


# ====================================================================== refusals: ledger state


def _ledger_state_claim(net: Network, reason: Reason) -> tuple[Incident, SignedClaim]:
    now = now_ms()
    if reason is Reason.POLICY_NOT_ACTIVE:  # issued, its term not started
        inc = incident(net, start_ms=now + HOUR)
        return inc, inc.claim
    if reason is Reason.OUTSIDE_POLICY_TERM:  # the window started before the term
        inc = incident(net, window_ts=now - 20 * MINUTE, start_ms=now - 10 * MINUTE)
        return inc, inc.claim
    if reason is Reason.CLAIM_WINDOW_CLOSED:
        inc = incident(net, window_ts=now - 10 * MINUTE, claim_window_ms=MINUTE)
        return inc, inc.claim
    if reason is Reason.END_TS_IN_FUTURE:  # the genesis allows 5 s of skew
        inc = incident(net, window_ts=now + 10 * MINUTE)
        return inc, inc.claim
    if reason is Reason.DEVICE_REVOKED:  # revoked, then a window ending after the revocation
        inc = incident(net)
        net.revoke_device(inc.dev)
        start = inc.dev.record(TRIGGERING, start_ts=now_ms() + 50, step_ms=50)
        time.sleep(0.3)
        return inc, net.claim(inc.dev, inc.pid, inc.terms, start)
    if reason in (Reason.REVOKED_WINDOW_NOT_ANCHORED, Reason.ANCHOR_MISMATCH,  # DESIGN §11
                  Reason.DEVICE_DECOMMISSIONED):  # §15 H11: not even a window that ended before
        inc = incident(net)
        end = inc.claim.claim.end.frame
        if reason is Reason.DEVICE_DECOMMISSIONED:  # it never had an anchored head: all zero
            net.admin_txs([DecommissionDevice(device_id=inc.dev.device_id, epoch=0, seq=0, chain=bytes(32))])
        elif reason is Reason.ANCHOR_MISMATCH:  # the agent anchored another frame at the end's seq
            net.anchor_frames([end.replace(chain=(int.from_bytes(end.chain, "big") ^ 1).to_bytes(32, "big"))])
        else:  # revoked after the window ended; its end was never anchored
            net.revoke_device(inc.dev)
        height = net.ledger_height()
        wait_until(lambda: all(net.status(o.index).get("ledger", {}).get("height", -1) >= height
                               for o in net.oracles), 30, 0.1, what="oracles saw the anchor or revocation")
        return inc, inc.claim
    # The rest need a paid window first.
    kw = {"coverage": 1_000, "amount": 1_000} if reason is Reason.COVERAGE_EXHAUSTED else {}
    inc = incident(net, window_ts=now - 3 * HOUR, **kw)
    assert net.post_claim(0, inc.claim)[0] == 202
    net.wait_status(inc.claim_id, "paid", oracle=0)
    if reason is Reason.WINDOW_OVERLAP:
        return inc, next_window(net, inc, overlap=2)
    if reason is Reason.PERIOD_LIMIT:  # periods are one hour here
        return inc, next_window(net, inc, gap_ms=SECOND)
    assert reason is Reason.COVERAGE_EXHAUSTED
    return inc, next_window(net, inc, gap_ms=2 * HOUR)


@pytest.mark.parametrize("reason", LEDGER_STATE_REASONS, ids=lambda r: r.value)
def test_ledger_state_reason_ends_rejected(healthy: Network, reason: Reason, request: pytest.FixtureRequest) -> None:
    net = healthy
    if reason in HARDWARE_STATE_REASONS:  # DESIGN §15: lockdowns are ledger-wide, undone after
        inc, claim, undo = hardware_network_claim(net, reason)
        request.addfinalizer(undo)
    else:
        inc, claim = _ledger_state_claim(net, reason)
    cid = claim.claim.claim_id
    paid_before = paid_total(net, inc.pid)
    h0 = net.ledger_height()
    target = LEDGER_STATE_REASONS.index(reason) % 5
    status, body = net.post_claim(target, claim)
    assert status == 202 and body["vote"] == "reject" and body["reason"] == reason.value, body
    view = net.wait_status(cid, "rejected", oracle=target)
    assert view["reason"] == reason.value
    assert view["rejects"] >= 2 and view["qc"] is None
    assert net.ledger_height() == h0
    assert net.receipt(cid)[0] == 404
    assert paid_total(net, inc.pid) == paid_before


# ====================================================================== junk cannot poison


def test_junk_claim_first_does_not_stop_the_real_one(healthy: Network) -> None:
    """Valid frames, a bad proof, a fresh (enrolled) agent key and an unenrolled one, sent to every
    oracle before the real claim: same claim_id, no record, no vote; the real one is paid."""
    net = healthy
    inc = incident(net)
    fresh = Identity.generate()
    net.enrol_agent(fresh)
    junk = junk_proof(net.circuit, DeviceSim.create(), inc.terms)
    junk_claims = [inc.claim.claim.replace(proof=junk, agent_id=fresh.public_key).sign(fresh),
                   inc.claim.claim.replace(proof=junk).sign(net.agent)]
    stranger = Identity.generate()
    junk_claims.append(inc.claim.claim.replace(agent_id=stranger.public_key).sign(stranger))
    for j in junk_claims:
        assert j.claim.claim_id == inc.claim_id
        for o in net.oracles:
            status, body = net.post_claim(o.index, j)
            assert status in (403, 422), body
    assert no_record_anywhere(net, inc.claim_id)
    status, body = net.post_claim(4, inc.claim)
    assert status == 202 and body["vote"] == "approve", body
    net.wait_status(inc.claim_id, "paid", oracle=4)
    assert paid_total(net, inc.pid) == (inc.terms.amount, 1)


# ====================================================================== crashes
# n - k down (and one more), recovery by re-gossip, and a restarted oracle keeping its vote are
# covered by the simulator (tests/sim: crash/restart in every scenario, invariants S3 and L1) and on
# real processes by the adversarial suite (ADV-FLT-02, ADV-FLT-04); their multi-process versions here
# were removed (DESIGN §10).


# ====================================================================== protocol soundness (issue 13)


def test_junk_proofs_do_not_spend_device_budget(healthy: Network) -> None:
    """Item 13.2: an enrolled agent replays a device's public frames with junk proofs until its own
    budget is gone (burst 40, 5/s here). The sender pays before the proof check, the device only
    for a proven claim: the honest agent's valid claim for that device is still taken at once."""
    net = healthy
    inc = incident(net)
    thief = Identity.generate()
    net.enrol_agent(thief)
    junk = junk_proof(net.circuit, DeviceSim.create(), inc.terms)
    codes = []
    for i in range(70):
        forged = inc.claim.claim.replace(proof=junk, agent_id=thief.public_key, created_ms=now_ms() + i).sign(thief)
        status, body = net.post_claim(2, forged)
        codes.append(body["error"]["code"])
    assert Reason.RATE_LIMITED.value in codes  # the thief ran out of its own budget
    assert set(codes) == {Reason.BAD_PROOF.value, Reason.RATE_LIMITED.value}
    status, body = net.post_claim(2, inc.claim)
    assert status == 202 and body["vote"] == "approve", body
    net.wait_status(inc.claim_id, "paid", oracle=2)
    assert paid_total(net, inc.pid) == (inc.terms.amount, 1)


def test_passing_conditions_do_not_become_permanent_rejections(healthy: Network) -> None:
    """Item 13.7: a window whose end is 8 s ahead of the oracles' clocks (past the ledger's 5 s skew,
    within the 30 s retry horizon) is not rejected for good: no oracle votes Reject, each rechecks once the
    clock has moved, and the claim is paid once."""
    net = healthy
    inc = incident(net, window_ts=now_ms() + 12 * SECOND)  # 4 readings 1 s apart: ends at +15 s
    end_ts = inc.claim.claim.end.frame.ts_ms
    time.sleep(max(0.0, (end_ts - 8 * SECOND - now_ms()) / 1000))  # post it 8 s ahead of its end
    status, body = net.post_claim(0, inc.claim)
    assert status == 202 and body["status"] == "pending" and "vote" not in body, body
    view = net.wait_status(inc.claim_id, "paid", oracle=0, timeout=40)
    assert view["rejects"] == 0
    assert paid_total(net, inc.pid) == (inc.terms.amount, 1)


# ====================================================================== the one oracle client


def test_the_command_line_and_the_agent_use_one_oracle_client(healthy: Network, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`faultproof claim submit|status`, `faultproof oracle status|claim` and the agent's
    AsyncOracleClient (faultproof/oracle_client.py) against real nodes: the claim is paid, a
    refusal is one line naming the reason code, an unreachable node is named."""
    import asyncio
    import socket

    from click.testing import CliRunner

    from cli import main
    from faultproof.oracle_client import AsyncOracleClient, OracleUnreachable

    net = healthy
    inc = incident(net)
    path = tmp_path / "claim.msgpack"
    path.write_bytes(inc.claim.encode())
    url = net.oracles[1].url
    run = CliRunner().invoke
    submitted = run(main, ["claim", "submit", str(path), "--oracle", url])
    assert submitted.exit_code == 0, submitted.output
    assert json.loads(submitted.output)["claim_id"] == inc.claim_id.hex()
    view = net.wait_status(inc.claim_id, "paid", oracle=1)
    shown = run(main, ["claim", "status", inc.claim_id.hex(), "--oracle", url])
    assert shown.exit_code == 0 and json.loads(shown.output)["status"] == view["status"] == "paid"
    node = run(main, ["oracle", "claim", "--url", url, inc.claim_id.hex().upper()])
    assert node.exit_code == 0 and json.loads(node.output)["status"] == "paid"
    status = run(main, ["oracle", "status", "--url", url])
    assert status.exit_code == 0 and isinstance(json.loads(status.output), dict)
    missing = run(main, ["claim", "status", "ab" * 32, "--oracle", url])
    assert missing.exit_code == 2 and missing.output.startswith("error: 404 ") and "Traceback" not in missing.output

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"  # bound, not listening: refused
        gone = run(main, ["claim", "status", inc.claim_id.hex(), "--oracle", dead])
        assert gone.exit_code == 2 and f"cannot reach {dead}/v1/claims/" in gone.output

        async def agent_side() -> tuple[int, object, int]:
            client = AsyncOracleClient(timeout=5)
            try:
                again = await client.submit(url, inc.claim.encode())  # the same claim twice: answered, not lost
                seen = await client.claim(url, inc.claim_id)
                try:
                    await client.status(dead)
                except OracleUnreachable as e:
                    assert e.url == dead + "/v1/status"
                else:
                    raise AssertionError("a dead node answered")
                return again.status, seen.body["status"], (await client.claim(url, b"\x01" * 32)).status
            finally:
                await client.aclose()

        again, seen, unknown = asyncio.run(agent_side())
    assert again < 500 and seen == "paid" and unknown == 404
