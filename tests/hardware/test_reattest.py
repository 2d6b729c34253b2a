"""Periodic re-attestation (DESIGN §15): the pure schedule (agent.core.attestations_due), and the
agent's shell (agent.reattest.Reattester) asking a simulated device over a real mosquitto for
evidence over the ledger head and submitting it to a real ledger over HTTP, so that a window long
after enrolment is still covered by a fresh passing attestation (and would be stale without)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from agent.core import (
    AttestationView,
    AttestRequest,
    attestations_due,
    evidence_rejection,
    gateway_quote_due,
    reattest_interval_ms,
)
from faultproof.errors import Reason

MIN = 60_000
H = 60 * MIN
D1, D2, D3 = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32
HEAD = b"\xaa" * 32


def test_interval_is_capped_below_the_ledgers_freshness() -> None:
    assert reattest_interval_ms(10 * MIN, 0) == 10 * MIN  # no freshness rule: as configured
    assert reattest_interval_ms(10 * MIN, H) == 10 * MIN
    assert reattest_interval_ms(10 * MIN, 8 * MIN) == 4 * MIN  # never more than half the max age
    assert reattest_interval_ms(0, H) == 0  # off


def test_schedule_asks_due_devices_over_the_head() -> None:
    now = 1_000 * H
    views = {D1: AttestationView(None), D2: AttestationView(now - 5 * MIN, answered_height=7),
             D3: AttestationView(now - 11 * MIN, answered_height=7)}
    ask, expired = attestations_due(views, {}, now_ms=now, head_height=9, head_hash=HEAD, interval_ms=10 * MIN)
    # never attested: ask now; 5 min old: not yet; 11 min old: due
    assert [r.device_id for r in ask] == [D1, D3] and expired == []
    assert all(r.nonce == HEAD and r.nonce_height == 9 and r.asked_ms == now for r in ask)


def test_schedule_waits_for_a_fresh_nonce_and_for_outstanding_answers() -> None:
    now = 1_000 * H
    views = {D1: AttestationView(now - 20 * MIN, answered_height=9), D2: AttestationView(None)}
    pending = {D2: AttestRequest(D2, HEAD, 9, now - 10_000)}
    # D1: the ledger has not moved since its last answer (it would be refused as replayed);
    # D2: asked 10 s ago, not answered yet: not asked twice.
    assert attestations_due(views, pending, now_ms=now, head_height=9, head_hash=HEAD, interval_ms=10 * MIN) == ([], [])
    # 30 s without an answer: the request expires; the device is asked again an interval later
    # (a device that cannot be asked is not asked every 30 s).
    ask, expired = attestations_due(views, pending, now_ms=now + 20_000, head_height=10, head_hash=b"\xbb" * 32,
                                    interval_ms=10 * MIN)
    assert expired == [D2] and [r.device_id for r in ask] == [D1]
    ask, _ = attestations_due(views, {}, now_ms=now + 10 * MIN, head_height=10, head_hash=HEAD, interval_ms=10 * MIN,
                              unanswered={D2: now + 20_000})
    assert [r.device_id for r in ask] == [D1]
    ask, _ = attestations_due(views, {}, now_ms=now + 20_000 + 10 * MIN, head_height=10, head_hash=HEAD,
                              interval_ms=10 * MIN, unanswered={D2: now + 20_000})
    assert [r.device_id for r in ask] == [D1, D2]
    assert attestations_due(views, {}, now_ms=now, head_height=10, head_hash=HEAD, interval_ms=0) == ([], [])


def test_gateway_quote_schedule_is_the_devices_schedule_keyed_by_the_agent() -> None:
    """The gateway's own quote (H10): due with no result or an old one, never over a nonce it
    already answered, never without a pinned AK, and a failed attempt waits an interval."""
    now, agent = 1_000 * H, b"\x0a" * 32

    def due(view: AttestationView | None, **kw: int) -> AttestRequest | None:
        args = {"now_ms": now, "head_height": 9, "head_hash": HEAD, "interval_ms": 10 * MIN, **kw}
        return gateway_quote_due(agent, view, **args)  # type: ignore[arg-type]

    assert due(None) is None  # no AK pinned on the ledger: nothing to quote for
    assert due(AttestationView(None)) == AttestRequest(agent, HEAD, 9, now)  # never quoted: now
    assert due(AttestationView(now - 5 * MIN, answered_height=7)) is None  # fresh enough
    assert due(AttestationView(now - 11 * MIN, answered_height=7)) == AttestRequest(agent, HEAD, 9, now)
    assert due(AttestationView(now - 11 * MIN, answered_height=9)) is None  # wait for the ledger to move
    assert due(AttestationView(now - 11 * MIN, answered_height=7), last_failed_ms=now - MIN) is None
    assert due(AttestationView(now - 11 * MIN, answered_height=7), last_failed_ms=now - 10 * MIN) is not None
    assert due(AttestationView(None), interval_ms=0) is None  # off


def test_only_an_answer_to_the_outstanding_request_is_taken() -> None:
    pending = {D1: AttestRequest(D1, HEAD, 9, 0)}
    assert evidence_rejection(pending, D1, HEAD) is None
    assert evidence_rejection(pending, D1, b"\xbb" * 32) is Reason.ATTESTATION_REPLAYED  # an old nonce
    assert evidence_rejection(pending, D2, HEAD) is Reason.ATTESTATION_REPLAYED  # nobody asked D2


async def test_reattestation_keeps_a_long_running_devices_later_window_payable(tmp_path: Path) -> None:
    from agent.boot import allowlist_txs
    from agent.metrics import AgentMetrics
    from agent.mqtt import MqttIngest, MqttSettings
    from agent.reattest import Reattester
    from agent.simulator import MqttTransport, SimDevice
    from faultproof.attestation import coverage_rejection
    from faultproof.messages import Deposit, SetLockdown
    from ledger.client import LedgerClient
    from ledger.state import attestation_results, hardware_rejection
    from tests.agent.agentfix import start_broker
    from tests.agent.test_ingest import engine
    from tests.ledger.helpers import (
        T0,
        ManualClock,
        Scenario,
        enrol,
        identity,
        make_ledger,
        serve_ledger,
    )

    keys = make_ledger(4)
    sc = Scenario.standard(keys)
    clock = ManualClock(T0)
    broker, port = start_broker(tmp_path)
    e, _ = engine(tmp_path / "agent.db", [])
    mq: MqttIngest | None = None
    try:
        async with serve_ledger(tmp_path, keys, clock=clock) as (env, url), LedgerClient(url) as client:
            for tx in [*sc.setup_txs, *(keys.sign(a) for a in allowlist_txs()),
                       keys.sign(SetLockdown(breaker_window_ms=0, breaker_share_bps=0, attestation_max_age_ms=H))]:
                await client.submit(tx)
            dev = SimDevice(sc.device, bytes(31))
            loop = asyncio.get_running_loop()
            answers: asyncio.Queue[bytes] = asyncio.Queue()
            mq = MqttIngest(MqttSettings(port=port, client_id="agent-reattest", username=None), e, AgentMetrics(),
                            on_evidence=lambda data: loop.call_soon_threadsafe(answers.put_nowait, data))
            mq.start()
            assert await asyncio.to_thread(mq.connected.wait, 10)
            refused: list[tuple[bytes, Reason]] = []
            served = {dev.device_id}
            r = Reattester(client, lambda: env.state, lambda: served, mq.ask_attestation,
                           interval_ms=30 * MIN, clock=clock, on_refused=lambda d, why: refused.append((d, why)))
            device = MqttTransport("127.0.0.1", port, client_id="devices", username="devices")
            device.answer_attestation(dev)
            bad = SimDevice(identity("device-tampered"), bytes(31))
            device.answer_attestation(bad, tampered=True)  # booted another firmware
            async with device:
                await asyncio.sleep(0.3)  # the device's subscription is in place

                async def attest_round() -> None:
                    assert r.tick() == [dev.device_id]
                    assert await r.on_evidence(await asyncio.wait_for(answers.get(), 10)) is None

                await attest_round()  # enrolment: never attested
                first = attestation_results(env.state, dev.device_id)
                assert [(x.ts_ms, x.passed) for x in first] == [(T0, True)]
                clock.advance(10 * MIN)
                await client.submit(keys.sign(Deposit(amount=1)))  # the ledger moves on
                assert r.tick() == []  # 10 min old: not due (interval 30 min)
                clock.advance(40 * MIN)
                await client.submit(keys.sign(Deposit(amount=1)))
                await attest_round()  # 50 min after the first: due
                # A device whose answer fails appraisal is quarantined, and its failure recorded.
                await client.submit(keys.sign(enrol(bad.identity)))
                served.add(bad.device_id)
                assert r.tick() == [bad.device_id]
                assert await r.on_evidence(await asyncio.wait_for(answers.get(), 10)) is None
                assert refused == [(bad.device_id, Reason.ATTESTATION_FAILED)]
                assert [x.passed for x in attestation_results(env.state, bad.device_id)] == [False]
            results = attestation_results(env.state, dev.device_id)
            assert [x.passed for x in results] == [True, True] and results[-1].ts_ms == T0 + 50 * MIN
            # A window 100 min after enrolment: the first pass alone is stale (max age 1 h); the
            # re-attestation 50 min before it covers it.
            body = sc.body(0).replace(start_ts=T0 + 100 * MIN, end_ts=T0 + 101 * MIN)
            assert coverage_rejection(first, body.start_ts, body.end_ts, H) is Reason.ATTESTATION_STALE  # P9's rule
            assert hardware_rejection(env.state, body) is None
            assert r.counts["submitted"] == 3 and r.counts["failed"] == 1
    finally:
        if mq is not None:
            mq.stop()
        e.stop()
        broker.stop()


def test_a_device_added_while_the_simulator_connects_is_subscribed_and_connect_completes() -> None:
    """agent.simulator.MqttTransport: paho's thread runs `_on_connect` while the test's thread may
    add an attesting device (`answer_attestation`). It iterated the live dict, so an addition in
    between killed paho's thread before it marked the connection up (seen in a full run: "MQTT
    broker did not accept the connection"). Here the addition happens inside the subscription."""
    import threading

    from agent.simulator import MqttTransport

    t = MqttTransport.__new__(MqttTransport)  # no broker: only the callback's bookkeeping
    t._attesters = {"a/attest": (None, False)}  # type: ignore[dict-item]
    t._connected = threading.Event()
    subscribed: list[str] = []

    class Client:
        def subscribe(self, topic: str, qos: int) -> None:
            subscribed.append(topic)
            t._attesters[f"{len(t._attesters)}/attest"] = (None, False)  # type: ignore[assignment]

    t._on_connect(Client(), None, None, 0, None)
    assert t._connected.is_set() and subscribed == ["a/attest"]
