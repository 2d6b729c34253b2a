"""Claim attacks on the oracles (and the ledger behind them): forged signatures, proofs for other
statements, windows the policy does not cover, duplicates and floods, hostile encodings, and the
protocol-level races (sliding windows, junk under a real claim_id, skew and claim-window edges,
expiry and revocation against a pending QC).

Every case ends by comparing the ledger with a snapshot taken just before the attack: unchanged
for an attack that must pay nothing, exactly one payout entry (and balances moved by exactly its
amount) for a claim that must be paid."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from typing import Any

import aiohttp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faultproof.encoding import pack
from faultproof.errors import Reason
from faultproof.identity import Identity
from faultproof.messages import ExpirePolicy, RevokeAgent, SignedClaim
from faultproof.zk import TriggerParams
from oracle.node import CLAIMS_TOPIC
from tests.adversarial.advnet import (
    NESTING_BOMBS,
    PARAMS,
    TRIGGERING,
    AdvNetwork,
    GossipPeer,
    LedgerBook,
    agent_identity,
    assert_unchanged,
    entries_after,
    false_statement_proof,
    incident,
    ledger_error,
    make_qc,
    module_end_check,
    negated_proof,
    no_record_anywhere,
    payout_body,
    payouts_in,
    settle_gossip,
    snapshot,
    thief_proof,
    unchanged,
    wait_paid_once,
)
from tests.adversarial.cases import case
from tests.netfix import (
    HOUR,
    MINUTE,
    SECOND,
    DeviceSim,
    free_port,
    http,
    junk_proof,
    now_ms,
    wait_until,
)
from tests.strategies import any_message

REASONS = {r.value for r in Reason}


def refused(net: AdvNetwork, claim: SignedClaim, reason: Reason, oracle: int = 0) -> None:
    status, body = net.post_claim(oracle, claim)
    assert (status, body.get("error", {}).get("code")) == (reason.http_status, reason.value), body
    assert no_record_anywhere(net, claim.claim.claim_id)


def rejected(net: AdvNetwork, claim: SignedClaim, reason: Reason, oracle: int = 0) -> None:
    """A ledger-state refusal: the oracles sign Reject votes and the claim ends rejected."""
    status, body = net.post_claim(oracle, claim)
    assert status == 202 and body.get("vote") == "reject" and body.get("reason") == reason.value, body
    view = net.wait_status(claim.claim.claim_id, "rejected", oracle=oracle, timeout=30)
    assert view["reason"] == reason.value and view["qc"] is None, view


def oracles_synced(net: AdvNetwork) -> None:
    height = net.ledger_height()
    for o in net.oracles:
        wait_until(lambda o=o: (net.status(o.index).get("ledger") or {}).get("height", -1) >= height, 30, 0.1,
                   what=f"oracle-{o.index} at ledger height {height}")


def pay(net: AdvNetwork, book: LedgerBook, claim: SignedClaim, amount: int, case_id: str, oracle: int = 0) -> None:
    before = snapshot(net)
    status, body = net.post_claim(oracle, claim)
    assert status == 202 and body["vote"] == "approve", body
    book.expect(claim.claim.claim_id, case_id)
    wait_paid_once(net, before, claim.claim.claim_id, amount)


# ====================================================================== signatures and agents


@case("ADV-CLM-01", "bad agent signature (zeroed, random, or another enrolled agent's over our agent id)")
def test_bad_agent_signature(healthy: AdvNetwork) -> None:
    net = healthy
    inc = incident(net)
    other = agent_identity(net, "clm01")
    with unchanged(net):
        for sig in (bytes(64), os.urandom(64), inc.claim.claim.sign(other).signature):
            refused(net, inc.claim.replace(signature=sig), Reason.BAD_AGENT_SIGNATURE, oracle=1)


@case("ADV-CLM-02", "a claim from an agent that was never enrolled, or was revoked")
def test_unknown_and_revoked_agent(healthy: AdvNetwork) -> None:
    net = healthy
    inc = incident(net)
    stranger = Identity.generate()
    revoked = agent_identity(net, "clm02")
    net.admin_txs([RevokeAgent(agent_id=revoked.public_key)])
    oracles_synced(net)
    with unchanged(net):
        for ident in (stranger, revoked):
            claim = inc.claim.claim.replace(agent_id=ident.public_key).sign(ident)
            for i in (0, 3):
                refused(net, claim, Reason.UNKNOWN_AGENT, oracle=i)


# ====================================================================== proofs


@case("ADV-CLM-03", "a valid proof of another window of the same device and policy")
def test_proof_for_another_window(healthy: AdvNetwork) -> None:
    net = healthy
    inc = incident(net)
    other_start = inc.dev.record(TRIGGERING, start_ts=inc.dev.timestamps[-1] + SECOND)
    proof = net.claim(inc.dev, inc.pid, inc.terms, other_start).claim.proof  # verifies, for window 2
    with unchanged(net):
        refused(net, inc.claim.claim.replace(proof=proof).sign(net.agent), Reason.BAD_PROOF, oracle=2)


@case("ADV-CLM-04", "a valid proof of the same window under other trigger parameters (lower T, smaller K)")
def test_proof_for_other_parameters(healthy: AdvNetwork) -> None:
    net = healthy
    inc = incident(net, params=TriggerParams.count(80, 3), readings=[90, 10, 11, 12], proof=bytes(256))
    with unchanged(net):
        for params in (TriggerParams.count(80, 1), TriggerParams.count(5, 3)):  # both true on 90, 10, 11, 12
            proof = thief_proof(net, inc.dev, inc.start, params=params)
            refused(net, inc.claim.claim.replace(proof=proof).sign(net.agent), Reason.BAD_PROOF, oracle=3)


@case("ADV-CLM-05", "proof bytes flipped (one bit per word), zeroed, all 0xff, points off the curve, mixed proofs")
def test_flipped_proof_bytes(healthy: AdvNetwork) -> None:
    net = healthy
    inc = incident(net)
    good = inc.claim.claim.proof
    other = junk_proof(net.circuit, DeviceSim.create(), inc.terms)
    variants = [bytes(256), b"\xff" * 256, good[:64] + other[64:], other[:192] + good[192:], os.urandom(256)]
    for word in range(8):
        flipped = bytearray(good)
        flipped[word * 32 + 31] ^= 1
        variants.append(bytes(flipped))
    with unchanged(net):
        for i, proof in enumerate(variants):
            refused(net, inc.claim.claim.replace(proof=proof).sign(net.agent), Reason.BAD_PROOF, oracle=i % 5)


@case("ADV-CLM-06", "a valid proof of a trigger the policy does not have (stuck, for a count-above policy)")
def test_proof_for_a_trigger_the_policy_lacks(healthy: AdvNetwork) -> None:
    net = healthy
    inc = incident(net, readings=[10, 10, 10, 11], proof=bytes(256))  # stuck for 3, never above 80
    proof = thief_proof(net, inc.dev, inc.start, params=TriggerParams.stuck(3))
    with unchanged(net):
        refused(net, inc.claim.claim.replace(proof=proof).sign(net.agent), Reason.BAD_PROOF, oracle=4)


@case("ADV-CLM-07", "a proof of a false statement: the true window and the policy's signals, trigger false")
def test_false_statement_proof(healthy: AdvNetwork) -> None:
    net = healthy
    inc = incident(net, readings=[10, 11, 12, 13], proof=bytes(256))
    proof = false_statement_proof(net, inc.dev, inc.start, PARAMS)
    with unchanged(net):
        refused(net, inc.claim.claim.replace(proof=proof).sign(net.agent), Reason.BAD_PROOF, oracle=0)


@case("ADV-CLM-08", "a malleated proof (-A, -B, C) of an already paid claim, resubmitted")
def test_malleated_proof_of_a_paid_claim(healthy: AdvNetwork, book: LedgerBook) -> None:
    net = healthy
    inc = incident(net)
    pay(net, book, inc.claim, inc.terms.amount, "ADV-CLM-08")
    twin = inc.claim.claim.replace(proof=negated_proof(inc.claim.claim.proof)).sign(net.agent)
    assert twin.claim.claim_id == inc.claim_id and twin.encode() != inc.claim.encode()
    with unchanged(net):
        for i in range(5):
            status, body = net.post_claim(i, twin)
            assert status == 202 and body["status"] == "paid", body
        settle_gossip()


# ====================================================================== windows and time


@case("ADV-CLM-09", "a window outside the policy term (before it starts, after it ends)")
def test_window_outside_the_term(healthy: AdvNetwork) -> None:
    net = healthy
    now = now_ms()
    early = incident(net, window_ts=now - 20 * MINUTE, start_ms=now - 10 * MINUTE)
    # The term ends (10 s from now) between the window's second and third reading; the window is
    # in the near future, so the term-end rule is the one that refuses it (it is checked first).
    now = now_ms()
    late = incident(net, window_ts=now + 8500, end_ms=now + 10 * SECOND)
    with unchanged(net):
        rejected(net, early.claim, Reason.OUTSIDE_POLICY_TERM, oracle=1)
        rejected(net, late.claim, Reason.OUTSIDE_POLICY_TERM, oracle=2)


@case("ADV-CLM-10", "a claim after its deadline (claim window closed)")
def test_claim_after_the_deadline(healthy: AdvNetwork) -> None:
    net = healthy
    inc = incident(net, window_ts=now_ms() - 10 * MINUTE, claim_window_ms=MINUTE)
    with unchanged(net):
        rejected(net, inc.claim, Reason.CLAIM_WINDOW_CLOSED, oracle=3)


@case("ADV-CLM-11", "a window overlapping an already paid window, and a second window in the same period")
def test_overlapping_a_paid_window(healthy: AdvNetwork, book: LedgerBook) -> None:
    net = healthy
    window_ts = now_ms() - 3 * HOUR
    # Periods (1 h) counted from 10 min before the window: both later windows end in its period.
    inc = incident(net, window_ts=window_ts, start_ms=window_ts - 10 * MINUTE)
    pay(net, book, inc.claim, inc.terms.amount, "ADV-CLM-11")
    inc.dev.record(TRIGGERING[:2], start_ts=inc.dev.timestamps[-1] + SECOND)
    overlap = net.claim(inc.dev, inc.pid, inc.terms, inc.start + 2)
    same_period = net.claim(inc.dev, inc.pid, inc.terms,
                            inc.dev.record(TRIGGERING, start_ts=inc.dev.timestamps[-1] + SECOND))
    with unchanged(net):
        rejected(net, overlap, Reason.WINDOW_OVERLAP, oracle=4)
        rejected(net, same_period, Reason.PERIOD_LIMIT, oracle=0)


@case("ADV-CLM-12", "an unknown policy id, and a window whose length is not the circuit's n")
def test_unknown_policy_and_window_length(healthy: AdvNetwork) -> None:
    net = healthy
    inc = incident(net)
    inc.dev.record([1])
    with unchanged(net):
        refused(net, inc.claim.claim.replace(policy_id=os.urandom(32)).sign(net.agent), Reason.UNKNOWN_POLICY)
        refused(net, inc.claim.claim.replace(end=inc.dev.frame(inc.start + 5)).sign(net.agent), Reason.WINDOW_LENGTH)
        refused(net, inc.claim.claim.replace(start=inc.claim.claim.end, end=inc.claim.claim.start).sign(net.agent),
                Reason.WINDOW_LENGTH)


# ====================================================================== duplicates and floods


@case("ADV-CLM-13", "the same incident by gossip and by HTTP at once, to every oracle")
def test_same_incident_by_gossip_and_http(healthy: AdvNetwork, book: LedgerBook) -> None:
    net = healthy
    sender = agent_identity(net, "clm13")
    oracles_synced(net)
    inc = incident(net, agent=sender)
    peer = GossipPeer(sender, free_port(), [o.multiaddr() for o in net.oracles], {CLAIMS_TOPIC: 4096})
    try:
        peer.wait_mesh(CLAIMS_TOPIC, 2)
        before = snapshot(net)
        book.expect(inc.claim_id, "ADV-CLM-13")
        results: list[tuple[int, Any]] = []
        threads = [threading.Thread(target=lambda i=i: results.append(net.post_claim(i, inc.claim))) for i in range(5)]
        for t in threads:
            t.start()
        peer.publish(CLAIMS_TOPIC, inc.claim.encode())
        for t in threads:
            t.join(60)
        assert len(results) == 5 and all(s == 202 for s, _ in results), results
        wait_paid_once(net, before, inc.claim_id, inc.terms.amount)
    finally:
        peer.stop()


async def _flood(urls: list[str], bodies: list[bytes]) -> list[int]:
    conn = aiohttp.TCPConnector(limit=100)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as s:
        async def one(i: int, body: bytes) -> int:
            async with s.post(urls[i % len(urls)], data=body, headers={"Content-Type": "application/msgpack"}) as r:
                await r.read()
                return r.status

        return list(await asyncio.gather(*(one(i, b) for i, b in enumerate(bodies))))


@case("ADV-CLM-14", "a thousand copies of one claim at once (plus 100 re-signed variants), over all oracles")
def test_a_thousand_copies_at_once(healthy: AdvNetwork, book: LedgerBook) -> None:
    net = healthy
    flooder = agent_identity(net, "clm14")
    oracles_synced(net)
    inc = incident(net, agent=flooder)
    variants = [inc.claim.claim.replace(created_ms=inc.claim.claim.created_ms + i + 1).sign(flooder)
                for i in range(100)]
    bodies = [inc.claim.encode()] * 1000 + [v.encode() for v in variants]
    before = snapshot(net)
    book.expect(inc.claim_id, "ADV-CLM-14")
    statuses = asyncio.run(_flood([o.url + "/v1/claims" for o in net.oracles], bodies))
    assert set(statuses) <= {202, 429}, sorted(set(statuses))
    assert statuses.count(202) >= 1000
    wait_paid_once(net, before, inc.claim_id, inc.terms.amount)


# ====================================================================== hostile encodings over HTTP


def _services(net: AdvNetwork, agent_url: str | None) -> list[str]:
    urls = [net.oracles[0].url + "/v1/claims", net.ledger_url + "/v1/tx"]
    return urls + ([agent_url + "/v1/frames"] if agent_url else [])


def _assert_4xx_json(resp: tuple[int, Any], what: str) -> str:
    status, body = resp
    assert 400 <= status < 500, (what, status, body)
    assert isinstance(body, dict) and body["error"]["code"] in REASONS, (what, body)
    return str(body["error"]["code"])


@case("ADV-CLM-15", "oversize bodies (1 MiB, and a claim padded past its limit) to the oracle and the ledger")
def test_oversize_payloads(healthy: AdvNetwork) -> None:
    net = healthy
    inc = incident(net, proof=bytes(256))
    with unchanged(net):
        big = os.urandom(1 << 20)
        for url in _services(net, None):
            for ctype in ("application/msgpack", "application/json"):
                assert _assert_4xx_json(http("POST", url, big, ctype), url) == Reason.OVERSIZE.value
        padded = json.dumps({**inc.claim.to_json(), "pad": "a" * 100_000}).encode()
        assert _assert_4xx_json(http("POST", net.oracles[1].url + "/v1/claims", padded), "padded") == "oversize"
        assert no_record_anywhere(net, inc.claim_id)


@case("ADV-CLM-16", "deeply nested msgpack and JSON bodies to the oracle and the ledger")
def test_deeply_nested_payloads(healthy: AdvNetwork) -> None:
    net = healthy
    with unchanged(net):
        for url in _services(net, None):
            for body, ctype in NESTING_BOMBS:
                _assert_4xx_json(http("POST", url, body, ctype), f"{url} {body[:8]!r}")


@case("ADV-CLM-17", "malformed msgpack and JSON, and a valid claim in a non-canonical msgpack encoding")
def test_malformed_encodings(healthy: AdvNetwork) -> None:
    net = healthy
    inc = incident(net, proof=bytes(256))
    raw = inc.claim.encode()
    noncanon = raw[:-66] + b"\xc5\x00\x40" + raw[-64:]  # the 64-byte signature as bin16 instead of bin8
    bad = [(b"\xc1", "application/msgpack"), (b"\x92\x0b", "application/msgpack"), (raw + b"\x00", "application/msgpack"),
           (noncanon, "application/msgpack"), (b"{", "application/json"), (b'{"claim": 1, "claim": 2}', "application/json"),
           (b"\xff\xfe{}", "application/json"), (b"NaN", "application/json"), (json.dumps(inc.claim.to_json())[:-1].encode(),
                                                                          "application/json")]
    with unchanged(net):
        codes = [_assert_4xx_json(http("POST", net.oracles[2].url + "/v1/claims", body, ctype), repr(body[:16]))
                 for body, ctype in bad]
        assert codes[3] == Reason.NON_CANONICAL.value, codes
        assert no_record_anywhere(net, inc.claim_id)


@case("ADV-CLM-18", "unknown message versions and type ids (claims to the oracle, transactions to the ledger)")
def test_unknown_versions_and_types(healthy: AdvNetwork) -> None:
    net = healthy
    inc = incident(net, proof=bytes(256))
    wire = inc.claim.to_wire()
    v2 = list(wire)
    v2[1] = 2
    inner_v2 = list(wire)
    inner_v2[2] = list(wire[2])
    inner_v2[2][1] = 2
    unknown = list(wire)
    unknown[0] = 99
    with unchanged(net):
        expect = [(v2, Reason.UNSUPPORTED_VERSION), (inner_v2, Reason.UNSUPPORTED_VERSION),
                  (unknown, Reason.UNKNOWN_MESSAGE_TYPE)]
        for value, reason in expect:
            body = pack(value)
            answer = http("POST", net.oracles[3].url + "/v1/claims", body, "application/msgpack")
            assert _assert_4xx_json(answer, "oracle") in (reason.value, Reason.WRONG_TYPE.value)
            assert _assert_4xx_json(http("POST", net.ledger_url + "/v1/tx", body, "application/msgpack"), "ledger") \
                in (reason.value, Reason.WRONG_TYPE.value)
        body = pack([42, 2, os.urandom(32)])  # an expire-policy transaction of version 2
        assert _assert_4xx_json(http("POST", net.ledger_url + "/v1/tx", body, "application/msgpack"), "ledger v2") \
            == Reason.UNSUPPORTED_VERSION.value
        json_v = {"type": "signed-admin-tx", "version": 2}
        _assert_4xx_json(http("POST", net.ledger_url + "/v1/tx", json.dumps(json_v).encode()), "ledger json")
        assert no_record_anywhere(net, inc.claim_id)


# ====================================================================== HTTP fuzz on live processes


@case("ADV-FUZ-08", "random bodies and paths to the oracle's HTTP API: always 4xx JSON, no record, ledger unchanged")
def test_oracle_http_fuzz(healthy: AdvNetwork) -> None:
    net = healthy
    before = snapshot(net)
    counts_before = net.status(0)["claims"]

    @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(st.one_of(st.binary(max_size=600), any_message.map(lambda m: m.encode())),
           st.sampled_from(["application/msgpack", "application/json", "text/plain"]))
    def post_body(body: bytes, ctype: str) -> None:
        resp = http("POST", net.oracles[0].url + "/v1/claims", body, ctype)
        _assert_4xx_json(resp, repr(body[:20]))

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(st.text(alphabet="abcdefABCDEF0123456789/?=&%.xz_", max_size=90))
    def get_path(path: str) -> None:
        for base in ("/v1/claims/", "/v1/claims?policy_id=", "/v1/claims?status=", "/v1/", "/"):
            status, resp = http("GET", net.oracles[0].url + base + path)
            assert status < 500, (base + path, status, resp)

    post_body()
    get_path()
    assert net.status(0)["claims"] == counts_before
    assert_unchanged(net, before)


@case("ADV-FUZ-09", "random bodies, typed messages and paths to the ledger's HTTP API: 4xx JSON, ledger unchanged")
def test_ledger_http_fuzz(healthy: AdvNetwork) -> None:
    net = healthy
    with unchanged(net):

        @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        @given(st.one_of(st.binary(max_size=600), any_message.map(lambda m: m.encode()),
                         st.recursive(st.one_of(st.integers(), st.text(max_size=20), st.none()),
                                      lambda x: st.dictionaries(st.text(max_size=8), x, max_size=5), max_leaves=12)
                         .map(lambda o: json.dumps(o).encode())),
               st.sampled_from(["application/msgpack", "application/json", "text/plain"]))
        def post_body(body: bytes, ctype: str) -> None:
            _assert_4xx_json(http("POST", net.ledger_url + "/v1/tx", body, ctype), repr(body[:20]))

        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        @given(st.text(alphabet="abcdef0123456789/?=%.-xz_", max_size=90))  # no '&': no long-poll wait
        def get_path(path: str) -> None:
            for base in ("/v1/entries?after=", "/v1/entries?wait=", "/v1/policies/", "/v1/policies?device_id=",
                         "/v1/devices/", "/v1/circuits/", "/v1/agents/", "/v1/receipts/", "/v1/state?", "/v1/"):
                status, resp = http("GET", net.ledger_url + base + path, timeout=60)
                assert status < 500, (base + path, status, resp)

        post_body()
        get_path()


@case("ADV-FUZ-10", "junk on the claims gossip topic from an enrolled agent (random bytes, junk claims)")
def test_gossip_junk_from_an_enrolled_agent(healthy: AdvNetwork) -> None:
    net = healthy
    spammer = agent_identity(net, "fuz10")
    oracles_synced(net)
    inc = incident(net, agent=spammer)
    junk = inc.claim.claim.replace(proof=junk_proof(net.circuit, DeviceSim.create(), inc.terms)).sign(spammer)
    peer = GossipPeer(spammer, free_port(), [o.multiaddr() for o in net.oracles], {CLAIMS_TOPIC: 4096})
    try:
        peer.wait_mesh(CLAIMS_TOPIC, 2)
        with unchanged(net):
            for i in range(40):
                peer.publish(CLAIMS_TOPIC, os.urandom(50 + 37 * i))
            peer.publish(CLAIMS_TOPIC, junk.encode())
            settle_gossip()
            assert no_record_anywhere(net, inc.claim_id)
            assert all(net.status(o.index)["synced"] for o in net.oracles)
    finally:
        peer.stop()


# ====================================================================== protocol level


@case("ADV-PRO-01", "sliding windows over one long excursion: every window claimed, one payout per period")
def test_sliding_windows_pay_once_per_period(healthy: AdvNetwork, book: LedgerBook) -> None:
    net = healthy
    period = 4 * SECOND
    dev = net.new_device(anchor_ts=now_ms() - 60 * SECOND)
    t0 = dev.timestamps[0]
    # Readings at t0 + 1..8 s. A period boundary right after the 4th reading: window 0 ends in
    # period K-1, windows 1..4 in period K.
    start_ms = t0 + 4 * SECOND + 1 - 1000 * period
    pid, terms = net.issue_policy(dev, PARAMS, start_ms=start_ms, period_ms=period)
    dev.record([90] * 8, start_ts=t0 + SECOND)
    claims = [net.claim(dev, pid, terms, a) for a in range(5)]
    before = snapshot(net)
    outcomes = []
    for i, claim in enumerate(claims):
        status, body = net.post_claim(i % 5, claim)
        assert status == 202, body
        view = net.wait_status(claim.claim.claim_id, ("paid", "rejected"), oracle=i % 5, timeout=60)
        outcomes.append((view["status"], view["reason"]))
    assert outcomes == [("paid", None), ("rejected", "window_overlap"), ("rejected", "window_overlap"),
                        ("rejected", "window_overlap"), ("paid", None)], outcomes
    for c in (claims[0], claims[4]):
        book.expect(c.claim.claim_id, "ADV-PRO-01")
    settle_gossip()
    paid = payouts_in(entries_after(net, before.height))
    assert paid == [(claims[0].claim.claim_id, terms.amount), (claims[4].claim.claim_id, terms.amount)], paid
    periods = [p["period"] for p in net.policy(pid)["payouts"]]
    assert len(set(periods)) == len(periods) == 2


@case("ADV-PRO-02", "frame timestamps beyond the ledger's skew into the future (claim at the oracles; QC straight to the ledger)")
def test_beyond_the_ledger_skew(healthy: AdvNetwork) -> None:
    net = healthy
    inc = incident(net, window_ts=now_ms() + MINUTE)  # skew is 5 s
    with unchanged(net):
        rejected(net, inc.claim, Reason.END_TS_IN_FUTURE, oracle=2)
        qc = make_qc(payout_body(net, inc), net.oracle_ids[:4])
        assert ledger_error(net.post_tx(qc)) == (409, Reason.END_TS_IN_FUTURE.value)


@case("ADV-PRO-03", "a QC certified while the claim window was open, posted after it closed")
def test_qc_after_the_claim_window(healthy: AdvNetwork) -> None:
    net = healthy
    inc = incident(net, window_ts=now_ms() - 10 * SECOND, claim_window_ms=8 * SECOND)
    qc = make_qc(payout_body(net, inc), net.oracle_ids[:4])  # what k oracles signed in time
    end_ts = inc.claim.claim.end.frame.ts_ms
    time.sleep(max(0.0, (end_ts + 8 * SECOND - now_ms()) / 1000) + 0.5)
    with unchanged(net):
        assert ledger_error(net.post_tx(qc)) == (409, Reason.CLAIM_WINDOW_CLOSED.value)


@case("ADV-PRO-04", "a junk claim under a real incident's claim_id, sent first (HTTP to every oracle, and gossip)")
def test_junk_first_does_not_poison_the_incident(healthy: AdvNetwork, book: LedgerBook) -> None:
    net = healthy
    junker = agent_identity(net, "pro04")
    oracles_synced(net)
    inc = incident(net)
    junk_proof_bytes = junk_proof(net.circuit, DeviceSim.create(), inc.terms)
    junk = [inc.claim.claim.replace(proof=junk_proof_bytes, agent_id=junker.public_key).sign(junker),
            inc.claim.claim.replace(proof=junk_proof_bytes).sign(net.agent),
            inc.claim.claim.replace(end=inc.claim.claim.end.replace(signature=bytes(64))).sign(junker)]
    peer = GossipPeer(junker, free_port(), [o.multiaddr() for o in net.oracles], {CLAIMS_TOPIC: 4096})
    try:
        peer.wait_mesh(CLAIMS_TOPIC, 2)
        with unchanged(net):
            for j in junk:
                assert j.claim.claim_id == inc.claim_id
                peer.publish(CLAIMS_TOPIC, j.encode())
                for o in net.oracles:
                    status, body = net.post_claim(o.index, j)
                    assert status in (403, 422), body
            settle_gossip(1.5)
            assert no_record_anywhere(net, inc.claim_id)
    finally:
        peer.stop()
    pay(net, book, inc.claim, inc.terms.amount, "ADV-PRO-04", oracle=4)


@case("ADV-PRO-07", "policy expiry raced against a pending QC at the claim deadline")
def test_expiry_raced_against_a_pending_qc(healthy: AdvNetwork, book: LedgerBook) -> None:
    net = healthy
    now = now_ms()
    cw = 6 * SECOND
    # The term ends 6 s after the window; expiry becomes legal at end_ms + cw, the QC's deadline
    # is end_ts + cw, which is earlier: the ledger must order the two, never both pay and release.
    inc = incident(net, window_ts=now - 5 * SECOND, start_ms=now - HOUR, end_ms=now + 4 * SECOND, claim_window_ms=cw)
    qc = make_qc(payout_body(net, inc), net.oracle_ids[:4])
    end_ts = inc.claim.claim.end.frame.ts_ms
    locked_before = net.policy(inc.pid)["locked"]
    results: dict[str, list[tuple[int, Any]]] = {"qc": [], "expire": []}
    stop = threading.Event()

    def spam_expire() -> None:
        while not stop.is_set():
            results["expire"].append(net.post_tx(ExpirePolicy(policy_id=inc.pid)))
            time.sleep(0.05)

    t = threading.Thread(target=spam_expire)
    before = snapshot(net)
    t.start()
    try:
        # The QC arrives close to its deadline (half a second before it, by our clock).
        time.sleep(max(0.0, (end_ts + cw - now_ms()) / 1000 - 0.5))
        results["qc"].append(net.post_tx(qc))
        wait_until(lambda: net.policy(inc.pid)["status"] == "closed", 30, 0.2, what="policy closed")
    finally:
        stop.set()
        t.join(10)
    qc_status = results["qc"][0][0]
    policy = net.policy(inc.pid)
    new = entries_after(net, before.height)
    kinds = [e.entry.tx.NAME for e in new]
    if qc_status == 200:  # the QC made it in time: paid once, then the rest of the lock released
        book.expect(inc.claim_id, "ADV-PRO-07")
        assert kinds == ["quorum-certificate", "expire-policy"], kinds
        assert policy["paid_total"] == inc.terms.amount and policy["locked"] == 0
        assert new[0].entry.time_ms <= end_ts + cw < new[1].entry.time_ms
    else:  # too late: refused, and the whole lock went back to free capital
        assert ledger_error(results["qc"][0])[1] in (Reason.CLAIM_WINDOW_CLOSED.value, Reason.POLICY_NOT_ACTIVE.value)
        assert kinds == ["expire-policy"], kinds
        assert policy["paid_total"] == 0
    after = snapshot(net)
    paid = inc.terms.amount if qc_status == 200 else 0
    assert after.balances["paid"] - before.balances["paid"] == paid
    assert after.balances["free"] - before.balances["free"] == locked_before - paid + inc.terms.premium
    assert sum(1 for s, _ in results["expire"] if s == 200) == 1  # closed exactly once
    assert {ledger_error(r)[1] for r in results["expire"] if r[0] != 200} <= {
        Reason.EXPIRY_TOO_EARLY.value, Reason.INVALID_STATE_TRANSITION.value}


@case("ADV-PRO-08", "revocation raced against a pending claim: a window that ended (and was anchored) before "
                    "the revocation still pays")
def test_revocation_is_not_retroactive(healthy: AdvNetwork, book: LedgerBook) -> None:
    net = healthy
    inc = incident(net)
    qc_body = payout_body(net, inc)
    net.anchor_frames([inc.claim.claim.end.frame])  # the agent's device-history anchor (DESIGN §11)
    net.revoke_device(inc.dev)  # after the window ended, before anyone voted
    oracles_synced(net)
    pay(net, book, inc.claim, inc.terms.amount, "ADV-PRO-08", oracle=3)
    # ...and the QC the attacker holds for it cannot be replayed for a second payout.
    with unchanged(net):
        status, body = net.post_tx(make_qc(qc_body, net.oracle_ids[1:5]))
        assert status == 200 and body["existing"], body


def test_module_end_ledger_verifies_and_paid_exactly_the_expected(net: AdvNetwork, book: LedgerBook) -> None:
    module_end_check(net, book)
