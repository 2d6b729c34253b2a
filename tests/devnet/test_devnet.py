"""`faultproof devnet --json`: the whole system end to end, judged from the ledger.

Runs the real command (ledger, 5 oracles, broker, agent, simulated devices as child processes)
and checks its summary and that it leaves no process behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purposes; check /proc for its state
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.timeout(600)
def test_devnet_pays_every_fault_once_and_no_healthy_device(tmp_path: Path) -> None:
    summary_path = tmp_path / "summary.json"
    config = tmp_path / "devnet.toml"
    # The shipped config, in a scratch data folder, with 7 devices: 5 faults (one per trigger
    # kind), 1 tampered-firmware device with a real excursion (DESIGN §15: never paid) and 1
    # healthy but noisy device.
    text = (REPO / "configs" / "devnet.toml").read_text()
    config.write_text(text.replace('data_dir = "devnet-data"', f'data_dir = "{tmp_path / "data"}"'))
    out = subprocess.run(
        [sys.executable, "-m", "cli", "devnet", "--config", str(config), "--devices", "7",
         "--json", str(summary_path)],
        cwd=REPO, capture_output=True, text=True, timeout=580)
    assert summary_path.exists(), out.stdout[-3000:] + out.stderr[-3000:]
    summary = json.loads(summary_path.read_text())
    assert out.returncode == (0 if summary["ok"] else 1)
    devices = summary["devices"]
    tampered = [d for d in devices if d["fault"] == "tampered_firmware"]
    faulty = [d for d in devices if d["fault"] and d not in tampered]
    healthy = [d for d in devices if not d["fault"]]
    assert {d["fault"] for d in faulty} == {"excursion", "run", "stuck", "out_of_range", "dropout"}
    assert len(tampered) == 1 and tampered[0]["attestation"] == "failed"
    assert tampered[0]["payouts"] == 0 and tampered[0]["payout"] == 0 and tampered[0]["status"] != "paid"
    assert all(d["attestation"] == "passed" for d in faulty + healthy)
    assert len(healthy) == 1
    for d in faulty:
        assert d["status"] == "paid" and d["payouts"] == 1 and d["payout"] == 1_000_000, (d, out.stdout[-3000:])
        assert d["claim_id"] and len(d["claim_id"]) == 64
    for d in healthy:
        assert d["payouts"] == 0 and d["payout"] == 0 and d["claim_id"] is None
    assert summary["ledger_verified"] is True
    assert summary["receipts_verified"] is True
    assert summary["paid"] == summary["expected_paid"] == 5
    before, after = summary["pool"]["before"], summary["pool"]["after"]
    assert after["paid"] - before["paid"] == 5 * 1_000_000
    assert before["locked"] - after["locked"] == 5 * 1_000_000
    assert sum(after.values()) == sum(before.values()) == 0  # double entry
    assert summary["ok"] is True and out.returncode == 0
    assert summary["processes"] and not [p for p in summary["processes"].values() if p and _alive(p)]
