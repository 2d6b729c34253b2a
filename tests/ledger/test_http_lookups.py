"""GET /v1/{policies,devices,circuits,agents}/{id}: one thing by its id, over the real HTTP API.

The four routes share one lookup (ledger/http.py `_by_id`); this holds what each answers alike:
the thing with its id when the ledger has it, and otherwise the exact 4xx error shape (404 with
"no such <thing>", 400 for an id that is not 64 lowercase hex or for any query parameter)."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from faultproof.messages import EnrolAgent
from tests.ledger.helpers import T0, ManualClock, Scenario, identity, make_ledger, serve_ledger

KINDS = ["policy", "device", "circuit", "agent"]


@pytest.mark.parametrize("kind", KINDS)
async def test_one_thing_by_id_or_the_exact_error(tmp_path: Path, kind: str) -> None:
    keys = make_ledger(5)
    sc = Scenario.standard(keys)
    agent = identity("agent-0")
    known = {"policy": sc.policy_id, "device": sc.device.public_key, "circuit": sc.circuit.circuit_id,
             "agent": agent.public_key}[kind]
    route = {"policy": "policies", "device": "devices", "circuit": "circuits", "agent": "agents"}[kind]
    async with serve_ledger(tmp_path, keys, clock=ManualClock(T0)) as (env, url), aiohttp.ClientSession() as http:
        await env.ok_all([*sc.setup_txs, keys.sign(EnrolAgent(agent_id=agent.public_key))])

        async with http.get(f"{url}/v1/{route}/{known.hex()}") as resp:
            assert resp.status == 200
            assert (await resp.json())[f"{kind}_id"] == known.hex()

        refusals = [
            (f"/v1/{route}/{'01' * 32}", 404, {"code": "not_found", "message": f"no such {kind}"}),
            (f"/v1/{route}/{known.hex().upper()}", 400,
             {"code": "bad_request", "message": "id must be 64 lowercase hex characters"}),
            (f"/v1/{route}/{'zz' * 32}", 400, {"code": "bad_request", "message": "id is not hex"}),
            (f"/v1/{route}/{known.hex()}?limit=1", 400,
             {"code": "unknown_field", "message": "unknown query parameter(s) ['limit']"}),
        ]
        for path, status, error in refusals:
            async with http.get(url + path) as resp:
                assert (resp.status, await resp.json()) == (status, {"error": error}), path
