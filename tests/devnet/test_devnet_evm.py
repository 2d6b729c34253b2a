"""`faultproof devnet --settlement evm --keys pkcs11 --json`: the whole network on the pool contract
(DESIGN §13), its chain, agent and device keys in a SoftHSM2 token.

Runs the real command (anvil, the InsurancePool and its token, 5 oracle processes with chain keys
in the token bound on the pool, broker, two agents, simulated devices) with the shipped config (its
[econ] table: bonds and the corroborated policy), 7 devices plus the double-signing one and the
group's 3 and a shorter stream: the evm run leaves out the tampered-firmware device (the contract
enforces no attestation) and says so; the double-signing device's frames go to an oracle over HTTP
and the oracles slash it on the contract (revoked, its whole bond taken, the reporter's share
rewarded, one transaction by one member), and its fault is never paid; every other injected fault is paid exactly
once on the contract (books and token balances to the unit), the healthy device is never paid, the
corroborated policy is paid once by the oracles (m = 2 windows of distinct agents, to its payee),
every event replays through the rules, one member sends each payout (the others see its Paid
event and stop), no service logs an ERROR, and no process is left behind.

Key custody (DESIGN §13, §15): the oracles' chain keys, the agents' and the devices' keys are in the
token; the configs name them `pkcs11:faultproof-devnet/LABEL` and no PIN; `keys/` holds only the
oracles' Ed25519 files (their libp2p keys: the contract records no transport-key binding; the
summary says so); no file of the run folder holds a chain key's private half (every 64-hex run,
and every 32-byte window of a key-sized file, taken as a secp256k1 key and its address compared with the
oracles'; control: a chain key planted in a log is found). One devnet run (~35 s) serves both: the
evm devnet with key files is the same code with file signers (the SQLite devnet and tests/contracts
run key files and file chain keys).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from eth_keys import keys as eth_keys

from faultproof.identity import Identity
from tests.devnet.devnetfix import REPO, alive, scratch_config

AMOUNT = 1_000_000  # configs/devnet.toml [policy] amount
HEX64 = re.compile(rb"[0-9a-fA-F]{64,}")
RAW_WINDOW_MAX = 256  # bytes: key-sized files (key files, blinding keys) are also scanned raw


def chain_keys_in(blobs: list[bytes], addresses: set[str]) -> set[str]:
    """The addresses in `addresses` whose secp256k1 private key appears in a blob (as hex, or raw in a small blob)."""
    found: set[str] = set()
    for blob in blobs:
        candidates = {bytes.fromhex(run[i:i + 64].decode()) for m in HEX64.finditer(blob)
                      for run in [m.group()] for i in range(len(run) - 63)}
        if len(blob) <= RAW_WINDOW_MAX:
            candidates |= {blob[i:i + 32] for i in range(len(blob) - 31)}
        for c in candidates:
            try:
                address = eth_keys.PrivateKey(c).public_key.to_checksum_address()
            except Exception:  # noqa: BLE001, S112 - not a valid scalar: not a key
                continue
            if address in addresses:
                found.add(address)
    return found


@pytest.mark.timeout(300)
def test_devnet_on_the_pool_contract_pays_every_fault_once_and_no_healthy_device(tmp_path: Path) -> None:
    summary_path = tmp_path / "summary.json"
    config = scratch_config(tmp_path, readings=110)
    out = subprocess.run([sys.executable, "-m", "cli", "devnet", "--config", str(config), "--settlement", "evm",
                          "--keys", "pkcs11", "--devices", "7", "--json", str(summary_path)],
                         cwd=REPO, capture_output=True, text=True, timeout=280)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "does not set one up yet" not in out.stdout + out.stderr  # the old refusal
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

    # Key custody: what the summary says, then what the run folder holds.
    keys = s["keys"]
    assert keys["mode"] == "pkcs11" and keys["token"] == "faultproof-devnet"
    chain_specs = [f"pkcs11:faultproof-devnet/oracle-{i}-chain" for i in range(5)]
    assert keys["in_token"]["chain_keys"] == chain_specs
    assert keys["in_token"]["agents"] == ["pkcs11:faultproof-devnet/agent", "pkcs11:faultproof-devnet/agent-2"]
    assert keys["in_token"]["devices"] == len(s["devices"]) == 10  # 7, the group's 3, the double-signing one
    assert set(keys["not_in_token"]) == {"oracle_ed25519", "blinding_keys"} and "transport-key" in keys[
        "not_in_token"]["oracle_ed25519"]
    assert keys["contract_admin"].startswith("anvil's unlocked account 0x")
    run_dir = Path(s["run_dir"])
    oracle_files = [f"oracle-{i}.key" for i in range(5)]
    assert keys["files"] == sorted(p.name for p in (run_dir / "keys").iterdir()) == oracle_files
    assert not list(run_dir.rglob("*.chain.key")) and not list(run_dir.rglob("agent*.key"))
    device_files = [p for d in ("agent", "agent-2") for p in (run_dir / d / "devices").iterdir()]
    assert len(device_files) == 2 * 10 and all(p.name.endswith((".blind", ".enrol.json")) for p in device_files)
    for i in range(5):
        oracle = (run_dir / f"oracle-{i}.toml").read_text()
        assert f'chain_key_file = "{chain_specs[i]}"' in oracle and "transport_key_file" not in oracle
        assert Identity.load(run_dir / "keys" / f"oracle-{i}.key")  # the one file key, named as such
    for name in ("agent", "agent-2"):
        agent = (run_dir / f"{name}.toml").read_text()
        assert f'key_file = "pkcs11:faultproof-devnet/{name}"' in agent and "enabled = false" in agent
    configs = list(run_dir.glob("*.toml"))
    assert len(configs) == 7 and not any(re.search(r"(?m)^\s*\w*pin\s*=", c.read_text()) for c in configs)
    addresses = set(keys["in_token"]["chain_addresses"])
    assert len(addresses) == 5
    planted = eth_keys.PrivateKey(bytes(31) + b"\x07")
    (run_dir / "logs" / "control.log").write_text(f"INFO planted {planted.to_hex()[2:]}\n")
    blobs = [p.read_bytes() for p in run_dir.rglob("*") if p.is_file()]
    assert chain_keys_in(blobs, addresses | {planted.public_key.to_checksum_address()}) == {
        planted.public_key.to_checksum_address()}  # control found; no chain key in any file
