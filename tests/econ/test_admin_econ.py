"""The economic commands against a real ledger served over HTTP (DESIGN §14): the admin's bond,
unbond, econ-params and issue-econ-policy, and anyone's `econ evidence`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from click.testing import CliRunner, Result

from cli.econ import econ
from faultproof.messages import BondHolder
from ledger.admin_cli import admin
from ledger.economics import REWARDS, bond_account
from tests.ledger.econ_world import EconWorld
from tests.ledger.helpers import T0, ManualClock, serve_ledger

REPO = Path(__file__).resolve().parents[2]
POLICY = REPO / "configs" / "policies" / "overheat.example.toml"  # amount 10 000, coverage 100 000


async def _run(group: object, *args: str) -> Result:
    return await asyncio.to_thread(CliRunner().invoke, group, list(args))  # type: ignore[arg-type]


async def test_econ_commands(tmp_path: Path) -> None:
    w = EconWorld.build(oracle_bond=5_000)  # a colluding k = 4 loses 20 000
    key = tmp_path / "admin.key"
    w.keys.admin.save(key)
    async with serve_ledger(tmp_path, w.keys, clock=ManualClock(T0)) as (env, url):
        await env.ok_all(w.setup_txs)
        base = ["--url", url, "--key", str(key)]
        d0 = w.devices[0].public_key.hex()

        async def admin_ok(*args: str) -> dict[str, object]:
            result = await _run(admin, *base, *args)
            assert result.exit_code == 0, result.output
            return dict(json.loads(result.output.strip().splitlines()[-1]))

        await admin_ok("bond", "--device", d0, "9000")
        issue = ["issue-econ-policy", str(POLICY), "--device-id", d0, "--circuit-id", w.circuit_id.hex(),
                 "--staging-cost", "500"]
        unsound = await _run(admin, *base, *issue)
        assert unsound.exit_code != 0 and "economically_unsound" in unsound.output  # 9000 + 500 <= 10 000
        await admin_ok("bond", "--device", d0, "1000")
        issued = await admin_ok(*issue)
        assert issued["kind"] == "issue_econ_policy"
        in_use = await _run(admin, *base, "unbond", "--oracle", w.keys.oracles[0].public_key.hex())
        assert in_use.exit_code != 0 and "bond_in_use" in in_use.output
        both = await _run(admin, *base, "unbond", "--oracle", "00" * 32, "--device", d0)
        assert both.exit_code != 0 and "exactly one" in both.output
        await admin_ok("econ-params", "--min-oracle-bond", "5000", "--max-staging-cost", "100",
                       "--reporter-share-bps", "1000", "--unlock-delay-ms", str(40 * 86_400_000))
        assert env.state.econ.params is not None and env.state.econ.params.reporter_share_bps == 1000

        ev = tmp_path / "evidence.json"
        ev.write_text(json.dumps({"type": "frame-equivocation", **w.double_frame(0).to_json()}))
        result = await _run(econ, "evidence", str(ev), "--ledger", url)
        assert result.exit_code == 0, result.output
        assert env.state.balance(bond_account(BondHolder.DEVICE, w.devices[0].public_key)) == 0
        assert env.state.balance(REWARDS) == 1_000  # 10 % of 10 000
        again = await _run(econ, "evidence", str(ev), "--ledger", url)
        assert again.exit_code != 0 and "evidence_duplicate" in again.output
        ev.write_text('{"type": "nonsense"}')
        junk = await _run(econ, "evidence", str(ev), "--ledger", url)
        assert junk.exit_code != 0 and "needs \"type\"" in junk.output
