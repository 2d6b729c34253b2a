"""A gateway's TPM quote recorded on the ledger (DESIGN §15 H10), with a real swtpm: the admin pins
the gateway's attestation key, the gateway quotes PCRs 16,23 answering a recent ledger entry hash,
and the ledger appraises it against the allowlist (component 4) and records the result, passed or
failed. Replays, stale or unknown nonces, another AK and flipped bytes are refused and change
nothing; the quote travels over HTTP like any ledger transaction and replays from the store."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.tpm import GatewayTpm
from faultproof import attestation
from faultproof.errors import FaultproofError, Reason
from faultproof.identity import Identity
from faultproof.messages import EnrolAgent, EnrolGatewayKey, GatewayQuote, SetMeasurement
from ledger.client import LedgerClient
from ledger.state import LedgerState, TxKind, gateway_results
from ledger.store import LedgerStore
from ledger.verify import replay_store
from tests.hardware.tpmfix import gateway_tpm
from tests.ledger.helpers import T0, LedgerKeys, ManualClock, make_ledger, serve_ledger
from tests.netfix import http

FIRMWARE = hashlib.sha256(b"gateway firmware 2.0").digest()
GATEWAY = attestation.Component.GATEWAY_PCRS


@pytest.fixture(scope="module")
def tpm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayTpm]:
    with gateway_tpm(tmp_path_factory.mktemp("swtpm-ledger"), FIRMWARE) as t:
        yield t


def _ledger(tpm: GatewayTpm) -> tuple[LedgerKeys, LedgerState, Identity]:
    keys = make_ledger(3)
    state = keys.new_state()
    agent = Identity.generate()
    good = attestation.pcr_digest(tpm.pcr_values())
    for args in (EnrolAgent(agent_id=agent.public_key), SetMeasurement(component=int(GATEWAY), digest=good, allowed=1),
                 EnrolGatewayKey(agent_id=agent.public_key, ak_point=tpm.attestation_key())):
        state.apply(keys.sign(args), T0)
    return keys, state, agent


def _refused(state: LedgerState, q: GatewayQuote, reason: Reason, now: int | None = None) -> None:
    now = state.time_ms if now is None else now
    before = (state.height, dict(state.hw.gateway_results), dict(state.hw.gateway_nonce_height))
    with pytest.raises(FaultproofError) as e:
        state.apply(q, now)
    assert e.value.reason is reason, e.value
    assert (state.height, dict(state.hw.gateway_results), dict(state.hw.gateway_nonce_height)) == before


def test_the_ledger_appraises_and_records_a_gateway_quote(tpm: GatewayTpm) -> None:
    keys, state, agent = _ledger(tpm)
    q = tpm.quote(agent.public_key, state.head_hash)
    effect, entry = state.apply(q, T0 + 1)
    assert effect.kind is TxKind.GATEWAY_QUOTE and entry is not None and entry.tx == q
    (r,) = gateway_results(state, agent.public_key)
    assert r.passed and r.ts_ms == T0  # dated by the nonce's entry
    _refused(state, q, Reason.ATTESTATION_REPLAYED)  # the same answer again
    _refused(state, tpm.quote(agent.public_key, bytes(32)), Reason.ATTESTATION_REPLAYED)  # not a ledger entry
    # Flipped bytes, another AK, another agent's name on it, an agent with no pinned AK.
    fresh = tpm.quote(agent.public_key, state.head_hash)
    flipped = bytearray(fresh.signature)
    flipped[-1] ^= 1
    _refused(state, fresh.replace(signature=bytes(flipped)), Reason.BAD_QUOTE)
    _refused(state, fresh.replace(ak_point=b"\x04" + bytes(64)), Reason.BAD_QUOTE)
    stranger = Identity.generate()
    _refused(state, tpm.quote(stranger.public_key, state.head_hash), Reason.UNKNOWN_AGENT)
    state.apply(keys.sign(EnrolAgent(agent_id=stranger.public_key)), T0 + 2)
    _refused(state, tpm.quote(stranger.public_key, state.head_hash), Reason.NOT_FOUND, T0 + 2)
    # A nonce older than the freshness bound (and not the head) is stale.
    old = tpm.quote(agent.public_key, state.head_hash)
    state.apply(keys.sign(EnrolAgent(agent_id=Identity.generate().public_key)), T0 + 3)
    _refused(state, old, Reason.ATTESTATION_STALE, T0 + 3 + 11 * 60 * 1000)
    state.apply(old, T0 + 4)  # in time it is accepted
    assert [x.passed for x in gateway_results(state, agent.public_key)] == [True, True]


def test_a_changed_firmware_is_recorded_as_failed(tmp_path: Path) -> None:
    with gateway_tpm(tmp_path / "tpm", FIRMWARE) as t:
        keys, state, agent = _ledger(t)
        t.extend(23, hashlib.sha256(b"tampered gateway firmware").digest())
        state.apply(t.quote(agent.public_key, state.head_hash), T0 + 1)
        (r,) = gateway_results(state, agent.public_key)
        assert not r.passed and r.reason is Reason.ATTESTATION_FAILED and "allowlist" in r.detail
        bad_key = keys.sign(EnrolGatewayKey(agent_id=agent.public_key, ak_point=b"\x04" + bytes(64)),
                            nonce=state.admin_nonce + 1)
        with pytest.raises(FaultproofError) as e:
            state.apply(bad_key, T0 + 2)
        assert e.value.reason is Reason.INVALID_PARAMETERS


async def test_a_quote_over_http_is_on_the_ledger_and_replays(tpm: GatewayTpm, tmp_path: Path) -> None:
    keys = make_ledger(3)
    agent = Identity.generate()
    good = attestation.pcr_digest(tpm.pcr_values())
    async with serve_ledger(tmp_path, keys, clock=ManualClock(T0)) as (env, url):
        async with LedgerClient(url) as client:
            for args in (EnrolAgent(agent_id=agent.public_key),
                         SetMeasurement(component=int(GATEWAY), digest=good, allowed=1),
                         EnrolGatewayKey(agent_id=agent.public_key, ak_point=tpm.attestation_key())):
                await client.submit(keys.sign(args, nonce=env.state.next_admin_nonce))
            head = bytes.fromhex((await client.state())["head_hash"])
            q = tpm.quote(agent.public_key, head)
            await client.submit(q)
            with pytest.raises(FaultproofError) as e:
                await client.submit(q)
            assert e.value.reason is Reason.ATTESTATION_REPLAYED
        status, body = await asyncio.to_thread(http, "GET", f"{url}/v1/agents/{agent.public_key.hex()}")
        assert status == 200 and body["gateway"]["ak_point"] == tpm.attestation_key().hex()
        assert [(x["passed"], x["ts_ms"] > 0) for x in body["gateway"]["quotes"]] == [(True, True)]
        assert [r.passed for r in gateway_results(env.state, agent.public_key)] == [True]
        db = env.db
    replay = replay_store(LedgerStore(db, readonly=True), workers=0)
    assert replay.ok and replay.state is not None
    assert [r.passed for r in gateway_results(replay.state, agent.public_key)] == [True]


class _InProcessLedger:
    """The ledger's state machine as the agent's settlement: `submit` applies the transaction."""

    def __init__(self, state: LedgerState, clock: ManualClock) -> None:
        self.state, self.clock = state, clock

    async def submit(self, tx: GatewayQuote) -> None:
        self.state.apply(tx, self.clock())


async def test_the_agent_requotes_periodically_and_each_quote_is_recorded(tpm: GatewayTpm) -> None:
    """agent.reattest.GatewayRequoter on the pure schedule: a quote at once (none on the ledger),
    none while the last is fresh, another an interval later; each one appraised and recorded by the
    ledger; a refused quote is not retried before an interval."""
    from agent.reattest import GatewayRequoter

    keys, state, agent = _ledger(tpm)
    clock = ManualClock(T0 + 1)
    requoter = GatewayRequoter(_InProcessLedger(state, clock), lambda: state, agent.public_key, tpm.quote,
                               interval_ms=600_000, clock=clock)
    assert await requoter.tick()
    assert [r.passed for r in gateway_results(state, agent.public_key)] == [True]
    clock.advance(60_000)
    assert not await requoter.tick()  # fresh: not due
    clock.advance(600_000)
    assert await requoter.tick()  # an interval later, over the head (the first quote's entry)
    results = gateway_results(state, agent.public_key)
    assert [r.passed for r in results] == [True, True] and results[1].ts_ms > results[0].ts_ms
    assert requoter.counts == {"quoted": 2, "failed": 0}
    # A quote the ledger refuses (the AK pinned is another) is counted, and retried an interval later.
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    other = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(Encoding.X962,
                                                                              PublicFormat.UncompressedPoint)
    state.apply(keys.sign(EnrolGatewayKey(agent_id=agent.public_key, ak_point=other)), clock())
    clock.advance(600_000)
    assert not await requoter.tick() and requoter.counts["failed"] == 1
    assert len(gateway_results(state, agent.public_key)) == 2
    clock.advance(60_000)
    assert not await requoter.tick() and requoter.counts["failed"] == 1  # not before an interval
