"""`faultproof devnet --settlement evm --json`: the whole network on the pool contract (DESIGN §13).

Runs the real command (anvil, the InsurancePool and its token, 5 oracle processes with bound chain
keys, broker, agent, simulated devices) with the shipped config, 7 devices and a shorter stream:
the evm run leaves out the tampered-firmware device (the contract enforces no attestation) and
says so; every other injected fault is paid exactly once on the contract (books and token balances
to the unit), the healthy device is never paid, every event replays through the rules, one member
sends each payout (the others see its Paid event and stop), no service logs an ERROR, and no
process is left behind.
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
    assert s["skipped"]["devices"] == ["tampered_firmware"] and "econ" in s["skipped"]

    faulty = [d for d in s["devices"] if d["fault"]]
    healthy = [d for d in s["devices"] if not d["fault"]]
    assert {d["fault"] for d in faulty} == {"excursion", "run", "stuck", "out_of_range", "dropout"}
    assert len(healthy) == 1
    for d in faulty:
        assert (d["status"], d["payouts"], d["payout"], d["payee_token_balance"]) == ("paid", 1, AMOUNT, AMOUNT), d
    for d in healthy:
        assert (d["payouts"], d["payout"], d["payee_token_balance"]) == (0, 0, 0), d

    before, after = s["pool"]["before"], s["pool"]["after"]
    paid = AMOUNT * len(faulty)
    assert after["paid"] == before["paid"] + paid and after["locked"] == before["locked"] - paid
    assert after["free"] == before["free"] and after["premiums"] == before["premiums"]
    assert after["token_balance"] == before["token_balance"] - paid == s["token"]["pool_balance"]
    assert after["token_balance"] == after["free"] + after["premiums"] + after["locked"]
    assert sum(s["token"]["payees"].values()) == paid
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
    assert len(ours) == len(faulty), "\n".join(sent)  # one payout transaction per claim...
    assert len(sent) - len(ours) <= 1, "\n".join(sent)  # ...and the others saw it and stopped
    left = [name for name, pid in s["processes"].items() if pid and alive(pid)]
    assert left == [], f"processes left running: {left}"
