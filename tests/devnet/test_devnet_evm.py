"""`faultproof devnet --settlement evm --json`: the whole network on the pool contract (DESIGN §13).

Runs the real command (anvil, the InsurancePool and its token, 5 oracle processes with bound chain
keys, broker, two agents, simulated devices) with the shipped config (its [econ] table: bonds and
the corroborated policy), 7 devices plus the double-signing one and the group's 3 and a shorter
stream: the evm run leaves out the tampered-firmware device (the contract enforces no attestation)
and says so; the double-signing device's frames go to an oracle over HTTP and the oracles slash it
on the contract (revoked, its whole bond taken, the reporter's share rewarded, one transaction by
one member), and its fault is never paid; every other injected fault is paid exactly
once on the contract (books and token balances to the unit), the healthy device is never paid, the
corroborated policy is paid once by the oracles (m = 2 windows of distinct agents, to its payee),
every event replays through the rules, one member sends each payout (the others see its Paid
event and stop), no service logs an ERROR, and no process is left behind.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.devnet.devnetfix import REPO, alive, scratch_config

AMOUNT = 1_000_000  # configs/devnet.toml [policy] amount


@pytest.mark.timeout(300)
def test_devnet_on_the_pool_contract_pays_every_fault_once_and_no_healthy_device(tmp_path: Path) -> None:
    summary_path = tmp_path / "summary.json"
    config = scratch_config(tmp_path, readings=110)
    out = subprocess.run([sys.executable, "-m", "cli", "devnet", "--config", str(config), "--settlement", "evm",
                          "--devices", "7", "--json", str(summary_path)],
                         cwd=REPO, capture_output=True, text=True, timeout=280)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    s = json.loads(summary_path.read_text())
    assert s["ok"] and s["settlement"] == "evm" and re.fullmatch(r"0x[0-9a-fA-F]{40}", s["contract"])
    assert s["skipped"]["devices"] == ["tampered_firmware"] and "device_slash" not in s["skipped"]
    assert "econ" not in s["skipped"]  # the corroborated group runs on the chain

    insured = [d for d in s["devices"] if d["role"] == "insured"]
    faulty = [d for d in insured if d["fault"]]
    healthy = [d for d in insured if not d["fault"]]
    assert {d["fault"] for d in faulty} == {"excursion", "run", "stuck", "out_of_range", "dropout"}
    assert len(healthy) == 1
    for d in faulty:
        assert (d["status"], d["payouts"], d["payout"], d["payee_token_balance"]) == ("paid", 1, AMOUNT, AMOUNT), d
    for d in healthy:
        assert (d["payouts"], d["payout"], d["payee_token_balance"]) == (0, 0, 0), d

    # the corroborated policy: paid once by the oracles' groupPayout, to its own payee
    group = s["econ"]["group"]
    members = [d for d in s["devices"] if d["role"] == "group"]
    assert group["ok"] and (group["devices"], group["m"], len(members)) == (3, 2, 3)
    assert (group["payouts"], group["payout"], group["payee_token_balance"]) == (1, AMOUNT, AMOUNT), group
    assert sorted(d["device_id"] for d in members if d["fault"]) == group["faulty"]
    assert len(group["windows"]) == 2 and {w[0] for w in group["windows"]} == set(group["faulty"])
    assert len({w[1] for w in group["windows"]}) == 2  # two agents' parts
    assert all(d["payouts"] == 0 and d["payee_token_balance"] == 0 for d in members)  # no device's own payee
    assert len(group["gas"]) == 1 and 600_000 < group["gas"][0] < 900_000, group["gas"]

    # the double-signing device: the oracles certified its two frames and slashed it on the contract
    eq = s["econ"]["equivocator"]
    assert eq["ok"] and eq["revoked"] and eq["slashed"] and eq["bond_left"] == 0 and eq["slashes"] == 1, eq
    assert eq["amount"] > 0 and eq["to_reporter"] == eq["reporter_reward"] > 0, eq
    assert eq["to_reporter"] + eq["to_pool"] == eq["amount"], eq
    assert len(eq["gas"]) == 1 and 50_000 < eq["gas"][0] < 400_000, eq["gas"]
    (equivocating,) = [d for d in s["devices"] if d["role"] == "equivocator"]
    assert equivocating["fault"] and (equivocating["payouts"], equivocating["payee_token_balance"]) == (0, 0)
    assert s["econ"]["rewards"] >= eq["to_reporter"]

    before, after = s["pool"]["before"], s["pool"]["after"]
    paid = AMOUNT * (len(faulty) + 1)
    assert after["paid"] == before["paid"] + paid and after["locked"] == before["locked"] - paid
    assert after["free"] == before["free"] and after["premiums"] == before["premiums"]
    assert after["bonds"] == before["bonds"] == s["econ"]["bonds"] > 0 and after["rewards"] == before["rewards"]
    assert after["token_balance"] == before["token_balance"] - paid == s["token"]["pool_balance"]
    assert after["token_balance"] == sum(after[k] for k in ("free", "premiums", "locked", "bonds", "rewards"))
    assert sum(s["token"]["payees"].values()) == paid and s["token"]["payees"][group["payee"]] == AMOUNT
    assert len(s["gas_per_payout"]) == len(faulty) and all(300_000 < g < 450_000 for g in s["gas_per_payout"])
    assert s["mirror_verified"] and s["ledger_verify"]["problem"] is None
    assert s["ledger_verify"]["books"]["paid"] == after["paid"]

    logs = list(Path(s["run_dir"]).rglob("*.log"))
    errors = [f"{p.name}: {line}" for p in logs for line in p.read_text(errors="replace").splitlines()
              if " ERROR " in line]
    assert errors == [], "a healthy devnet logs no ERROR lines:\n" + "\n".join(errors[:20])
    sent = [line for p in logs if p.name.startswith("oracle-") for line in p.read_text().splitlines()
            if "paid on chain" in line]
    ours = [line for line in sent if "our transaction" in line]
    assert len(ours) == len(faulty) + 1, "\n".join(sent)  # one payout transaction per claim, the group's too...
    assert len(sent) - len(ours) <= 1, "\n".join(sent)  # ...and the others saw it and stopped
    assert sum(f"group {group['claim_id'][:16]} paid on chain" in line for line in ours) == 1, "\n".join(sent)
    slashed = [line for p in logs if p.name.startswith("oracle-") for line in p.read_text().splitlines()
               if f"device {eq['device_id'][:16]} slashed on chain: our transaction" in line]
    assert len(slashed) == 1, slashed  # one member sent the certificate; the others saw it and stopped
    left = [name for name, pid in s["processes"].items() if pid and alive(pid)]
    assert left == [], f"processes left running: {left}"
