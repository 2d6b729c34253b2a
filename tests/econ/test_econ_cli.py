"""`faultproof econ simulate` and `faultproof econ report` (DESIGN §14).

The Monte-Carlo with the devnet's parameters: over 1,000 seeded years the cheaters' net profit is
negative (also before premiums), the run is deterministic and fast, and with a bond the soundness
rule refuses, cheating does pay: the simulation and the rule agree. The report runs as a real
process against a real ledger served over HTTP, and prints the ledger's own soundness numbers."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import time
from pathlib import Path

from cli.econ import devnet_params, policy_reports
from cli.econ_sim import SimParams, simulate
from faultproof.messages import BondHolder
from tests.ledger.econ_world import EconWorld
from tests.ledger.helpers import T0, ManualClock, serve_ledger

ROOT = Path(__file__).resolve().parents[2]
DEVNET = ROOT / "configs" / "devnet.toml"


def test_devnet_parameters_cheaters_lose_over_1000_seeded_years() -> None:
    params = devnet_params(DEVNET)
    assert params.years == 1_000 and params.device_bond == 1_500_000 and params.payout == 1_000_000
    started = time.perf_counter()
    result = simulate(params)
    elapsed = time.perf_counter() - started
    s = result.summary()
    assert s["soundness"]["sound"]
    assert s["cheaters_net_profit"] < 0
    assert s["cheaters_profit_before_premiums"] < 0
    assert s["cheaters_profitable_years"] == 0
    assert s["slashed"]["devices"] > 0 and s["payouts_to_cheaters"] > 0
    assert s["slashed"]["to_reporters"] + s["slashed"]["to_pool"] == s["slashed"]["devices"] + s["slashed"]["oracles"]
    assert elapsed < 5, f"1000 years took {elapsed:.2f} s"
    assert simulate(params).summary() == s  # seeded: the same run again


def test_a_bond_the_rule_refuses_lets_cheating_pay() -> None:
    params = dataclasses.replace(devnet_params(DEVNET), device_bond=100_000, years=200)
    s = simulate(params).summary()
    assert not s["soundness"]["sound"]
    assert s["cheaters_profit_before_premiums"] > 0


def test_oracle_collusion_at_k_is_slashed() -> None:
    params = SimParams(years=200, dishonest_oracles=4, oracle_bond=1_000, p_detect_collusion=1.0)
    s = simulate(params).summary()
    assert s["slashed"]["oracles"] == 200 * 4 * 1_000
    assert s["cheaters_net_profit"] < 0


async def test_report_against_a_served_ledger(tmp_path: Path) -> None:
    w = EconWorld.build(device_bonds=(150, 60, 60))
    async with serve_ledger(tmp_path, w.keys, clock=ManualClock(T0)) as (env, url):
        await env.ok_all(w.setup_txs)
        w.state = env.state
        await env.ok(w.admin(w.single_policy(staging=20)))
        await env.ok(w.bond(BondHolder.DEVICE, w.devices[1].public_key, 10))
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cli", "econ", "report", "--ledger", url, "--json",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        report = json.loads(out)
        assert report["policies"] == policy_reports(env.state, env.state.time_ms)
        (p,) = report["policies"]
        assert p["payout"] == 100 and p["m"] == 1 and p["sound"]
        costs = {a["path"]: a["cost"] for a in p["attacks"]}
        assert costs == {"stage_or_forge_devices": 150 + 20, "collude_k_oracles": 4_000}
        assert p["profit"] == 100 - 170
        # a ledger that is not there: one line naming the problem, exit 1
        bad = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cli", "econ", "report", "--ledger", "http://127.0.0.1:9", stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, cwd=ROOT)
        _, bad_err = await asyncio.wait_for(bad.communicate(), 60)
        assert bad.returncode == 2 and b"Traceback" not in bad_err and b"cannot read the ledger" in bad_err
