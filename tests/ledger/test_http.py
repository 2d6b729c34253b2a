"""The ledger's HTTP API and its async client: every endpoint, long polling, receipts, and bad input
(malformed, oversize, wrong types, unknown fields) answered with a 4xx JSON error and no change."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from faultproof.errors import FaultproofError, Reason
from faultproof.messages import Deposit, EnrolAgent, Receipt, SignedEntry
from ledger.client import LedgerClient
from ledger.receipts import verify_receipt
from tests.ledger.helpers import T0, ManualClock, Scenario, identity, make_ledger, serve_ledger


async def test_endpoints_through_the_client(tmp_path: Path) -> None:
    keys = make_ledger(5)
    sc = Scenario.standard(keys)
    async with serve_ledger(tmp_path, keys, clock=ManualClock(T0)) as (env, url), LedgerClient(url) as client:
        for tx in sc.setup_txs:
            result = await client.submit(tx)
            assert not result.existing
        assert result.policy_id == sc.policy_id and result.kind == "issue_policy"
        agent = identity("agent-0")
        await client.submit(keys.sign(EnrolAgent(agent_id=agent.public_key)))
        env.clock.set(sc.time_after(0))
        paid = await client.submit(keys.qc(sc.body(0)))
        assert paid.paid == sc.terms.amount and paid.claim_id == sc.body(0).claim_id
        again = await client.submit(keys.qc(sc.body(0)))
        assert again.existing and again.height == paid.height

        state = await client.state()
        assert state["ledger_id"] == keys.ledger_id.hex() and state["height"] == paid.height
        assert state["balances"]["paid"] == sc.terms.amount and state["next_admin_nonce"] == 6
        assert state["durability"]["synchronous"] == "FULL" and state["durability"]["durable"] is True
        assert SignedEntry  # the signed head verifies under the ledger key:
        from faultproof.messages import SignedHead

        assert SignedHead.from_json(state["signed_head"]).verify(keys.ledger_key.public_key)
        status = await client.status()
        assert status["durability"]["journal_mode"] == "wal" and status["durability"]["group_commit"] is True
        assert (await client.genesis()) == keys.genesis
        oracles = await client.oracles()
        assert oracles["epoch"] == 0 and oracles["threshold"] == keys.threshold and oracles["previous"] is None
        policy = await client.policy(sc.policy_id)
        assert policy["status"] == "active" and policy["locked"] == sc.terms.coverage - sc.terms.amount
        assert [p["policy_id"] for p in await client.policies(sc.device.public_key)] == [sc.policy_id.hex()]
        assert len(await client.policies()) == 1
        assert (await client.device(sc.device.public_key))["epoch"] == 0
        assert (await client.circuit(sc.circuit.circuit_id))["n"] == sc.circuit.n
        assert (await client.agent(agent.public_key))["enrolled"] is True
        with pytest.raises(FaultproofError) as info:
            await client.policy(b"\x01" * 32)
        assert info.value.reason is Reason.NOT_FOUND

        height, entries = await client.entries(after=-1)
        assert height == paid.height and [e.entry.height for e in entries] == list(range(height + 1))
        assert all(e.verify(keys.ledger_key.public_key) for e in entries)
        receipt = await client.receipt(sc.body(0).claim_id)
        assert verify_receipt(receipt, ledger_id=keys.ledger_id).ok
        tampered = Receipt(genesis=receipt.genesis, entry=receipt.entry.replace(signature=bytes(64)),
                           head=receipt.head)
        assert not verify_receipt(tampered).ok

        async with aiohttp.ClientSession() as http:
            async with http.get(f"{url}/v1/entries", params={"after": "2", "limit": "2"}) as resp:
                page = await resp.json()
            assert [e["entry"]["height"] for e in page["entries"]] == [3, 4]
            async with http.get(f"{url}/metrics") as resp:
                assert "faultproof_ledger_height" in await resp.text()
            async with http.get(f"{url}/healthz") as resp:
                assert (await resp.json())["ok"] is True
            async with http.get(f"{url}/v1/receipts/{sc.body(0).claim_id.hex()}") as resp:
                assert Receipt.from_json(await resp.json()) == receipt


async def test_long_poll_wakes_on_commit(tmp_path: Path) -> None:
    keys = make_ledger(3)
    async with serve_ledger(tmp_path, keys) as (env, url), LedgerClient(url) as client:
        waiter = asyncio.create_task(client.entries(after=0, wait=10))
        await asyncio.sleep(0.2)
        assert not waiter.done()
        await client.submit(keys.sign(Deposit(amount=7)))
        height, entries = await asyncio.wait_for(waiter, 5)
        assert height == 1 and entries[0].entry.height == 1
        t = asyncio.get_running_loop().time()
        assert (await client.entries(after=1, wait=0.3))[1] == []  # times out empty
        assert asyncio.get_running_loop().time() - t >= 0.25


async def test_json_transaction_with_type(tmp_path: Path) -> None:
    keys = make_ledger(3)
    async with serve_ledger(tmp_path, keys) as (env, url), aiohttp.ClientSession() as http:
        tx = keys.sign(Deposit(amount=11))
        async with http.post(f"{url}/v1/tx", json={"type": "signed-admin-tx", **tx.to_json()}) as resp:
            assert resp.status == 200, await resp.text()
            body = await resp.json()
        assert body["kind"] == "deposit" and body["height"] == 1 and env.state.free == 11


def _deposit_json(keys: Any, amount: int = 5) -> dict[str, Any]:
    return {"type": "signed-admin-tx", **keys.sign(Deposit(amount=amount), nonce=1).to_json()}


def _bad_inputs(keys: Any) -> dict[str, tuple[dict[str, str], bytes, int, str]]:
    good = _deposit_json(keys)
    wrong_type = json.loads(json.dumps(good))
    wrong_type["tx"]["nonce"] = "1"
    unknown_field = json.loads(json.dumps(good))
    unknown_field["extra"] = 1
    nested_unknown = json.loads(json.dumps(good))
    nested_unknown["tx"]["args"]["bonus"] = 5
    tx_bytes = keys.sign(Deposit(amount=5), nonce=1).encode()
    j, m = {"Content-Type": "application/json"}, {"Content-Type": "application/msgpack"}
    return {
        "malformed json": (j, b"{not json", 400, "malformed"),
        "json array": (j, b"[1, 2]", 400, "wrong_type"),
        "json without type": (j, json.dumps({k: v for k, v in good.items() if k != "type"}).encode(), 400,
                              "unknown_message_type"),
        "json wrong field type": (j, json.dumps(wrong_type).encode(), 400, "wrong_type"),
        "json unknown field": (j, json.dumps(unknown_field).encode(), 400, "unknown_field"),
        "json nested unknown field": (j, json.dumps(nested_unknown).encode(), 400, "unknown_field"),
        "json duplicate key": (j, b'{"type": "expire-policy", "type": "expire-policy"}', 400, "malformed"),
        "json NaN": (j, b'{"type": "expire-policy", "policy_id": NaN}', 400, "malformed"),
        "json too deep": (j, b"[" * 10_000 + b"]" * 10_000, 400, "too_deep"),
        "malformed msgpack": (m, b"\xc1\xc1\xc1", 400, "malformed"),
        "truncated msgpack": (m, tx_bytes[:-3], 400, "malformed"),
        "trailing bytes": (m, tx_bytes + b"\x00", 400, "malformed"),
        "non-canonical msgpack": (m, tx_bytes[:1] + b"\xcc" + tx_bytes[1:], 400, "non_canonical"),  # uint8 41
        "not a transaction": (m, keys.genesis.encode(), 400, "wrong_type"),
        "oversize": (m, b"\x00" * 200_000, 413, "oversize"),
        "empty body": (m, b"", 400, "malformed"),
        "wrong content type": ({"Content-Type": "text/plain"}, b"hello", 415, "unsupported_media_type"),
    }


BAD_INPUT_NAMES = sorted(_bad_inputs(make_ledger(3)))


@pytest.mark.parametrize("name", BAD_INPUT_NAMES)
async def test_bad_http_input_is_refused_and_changes_nothing(tmp_path: Path, name: str) -> None:
    keys = make_ledger(3)
    headers, body, status, code = _bad_inputs(keys)[name]
    async with serve_ledger(tmp_path, keys) as (env, url), aiohttp.ClientSession() as http:
        before = env.snapshot()
        async with http.post(f"{url}/v1/tx", data=body, headers=headers) as resp:
            text = await resp.text()
            assert resp.status == status, text
            assert resp.content_type == "application/json"
            err = json.loads(text)["error"]
        assert err["code"] == code, err
        assert set(err) == {"code", "message"} and "Traceback" not in text
        after = env.snapshot()
        assert after.files == before.files and after.head_hash == before.head_hash


@pytest.mark.parametrize("path", [
    "/v1/entries?after=x", "/v1/entries?wait=1000", "/v1/entries?limit=0", "/v1/entries?bogus=1",
    "/v1/policies/zz", "/v1/policies/" + "AB" * 32, "/v1/devices/00", "/v1/policies?device_id=12",
    "/v1/nope", "/v1/receipts/" + "00" * 32,
])
async def test_bad_queries_are_4xx_json(tmp_path: Path, path: str) -> None:
    keys = make_ledger(3)
    async with serve_ledger(tmp_path, keys) as (env, url), aiohttp.ClientSession() as http:
        async with http.get(url + path) as resp:
            assert 400 <= resp.status < 500
            assert "code" in (await resp.json())["error"]
        async with http.delete(url + "/v1/state") as resp:
            assert resp.status == 405 and (await resp.json())["error"]["code"] == "bad_request"


async def test_client_reports_unavailable_when_the_ledger_is_down() -> None:
    async with LedgerClient("http://127.0.0.1:9", timeout=2) as client:
        with pytest.raises(FaultproofError) as info:
            await client.state()
    assert info.value.reason is Reason.UNAVAILABLE


async def test_circuits_are_listed_with_their_ids(tmp_path: Path) -> None:
    keys = make_ledger(5)
    sc = Scenario.standard(keys)
    async with serve_ledger(tmp_path, keys) as (env, url), aiohttp.ClientSession() as http:
        async with http.get(f"{url}/v1/circuits") as r:
            assert r.status == 200 and (await r.json()) == {"circuits": []}
        await env.ok_all(sc.setup_txs)
        async with http.get(f"{url}/v1/circuits") as r:
            listed = (await r.json())["circuits"]
    assert [c["circuit_id"] for c in listed] == [cid.hex() for cid in env.state.circuits]
    assert listed[0]["n"] == 16 and "vkey" not in listed[0]
