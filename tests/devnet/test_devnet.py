"""`faultproof devnet --keys pkcs11 --json`: the whole system end to end, judged from the ledger,
with every key in a token.

Runs the real command (ledger, 3 oracles, broker, two agents, simulated devices as child processes)
with --keep-running, as an operator exploring it would: the JSON summary is written while the
network stays up, no service logged an ERROR line, and SIGTERM then stops it leaving no process
behind. One run serves two checks (a devnet costs ~50 s): what the devnet pays (every fault once,
no healthy device, the econ and hardware cases), and DESIGN §15's key custody: every admin,
ledger, oracle, agent and device key lives in a SoftHSM2 token, and no private key of those is in
any file of the run folder, any log, or any process's command line. The devnet with key files is
the same code with another signer (the operators' trial and the network tests run key files).

A token key cannot be read out, so the scan finds private keys by their public halves: every 64-hex
run (at every offset) and every 32-byte window of a small file or command line is taken as an
Ed25519 seed and its public key compared with the token keys' (read from the ledger). Controls
prove the scan finds what it looks for: the transport key files (the one kind of file key the
design keeps, DESIGN §15 H8) are found, and so are a planted key in a log and in a command line.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from faultproof.identity import Identity
from ledger.store import LedgerStore
from ledger.verify import replay_store
from tests.devnet.devnetfix import REPO, alive, scratch_config

HEX64 = re.compile(rb"[0-9a-fA-F]{64,}")
RAW_WINDOW_MAX = 8192  # bytes: small files (key files, configs) and command lines are also scanned raw


def _candidates(blob: bytes) -> Iterable[bytes]:
    for m in HEX64.finditer(blob):
        run = m.group()
        for i in range(len(run) - 63):
            yield bytes.fromhex(run[i:i + 64].decode())
    if len(blob) <= RAW_WINDOW_MAX:
        for i in range(len(blob) - 31):
            yield blob[i:i + 32]


def private_keys_of(blobs: Iterable[bytes], publics: set[bytes]) -> set[bytes]:
    """The public keys in `publics` whose private seed appears in one of the blobs."""
    seen: set[bytes] = set()
    found: set[bytes] = set()
    for blob in blobs:
        for seed in _candidates(blob):
            if seed in seen:
                continue
            seen.add(seed)
            pub = SigningKey(seed).verify_key.encode()
            if pub in publics:
                found.add(pub)
    return found


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return b""


def _descendants(pid: int) -> set[int]:
    out, frontier = {pid}, [pid]
    while frontier:
        p = frontier.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            for c in map(int, children):
                if c not in out:
                    out.add(c)
                    frontier.append(c)
    return out




@pytest.mark.timeout(600)
def test_devnet_pays_every_fault_once_and_no_healthy_device_with_no_key_out_of_its_token(tmp_path: Path) -> None:
    summary_path = tmp_path / "summary.json"
    # The shipped config, in a scratch data folder, with 7 devices: 5 faults (one per trigger
    # kind), 1 tampered-firmware device with a real excursion (DESIGN §15: never paid) and 1
    # healthy but noisy device; its [econ] section adds a double-signing faulty device and the 3
    # devices of a corroborated policy.
    config = scratch_config(tmp_path, readings=120)
    log = tmp_path / "devnet.out"
    planted = Identity.generate()  # control: a key the scan must find in a command line and a log
    control = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", planted.seed.hex()])
    with open(log, "wb") as sink:
        devnet = subprocess.Popen(
            [sys.executable, "-m", "cli", "devnet", "--config", str(config), "--keys", "pkcs11", "--oracles", "3",
             "--threshold", "2", "--devices", "7", "--json", str(summary_path), "--keep-running"],
            cwd=REPO, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    cmdlines: dict[int, bytes] = {}
    try:
        deadline = time.monotonic() + 540
        while not summary_path.exists() and devnet.poll() is None and time.monotonic() < deadline:
            for pid in _descendants(devnet.pid):  # command lines while they run, from start to summary
                cmdlines.setdefault(pid, _cmdline(pid))
            time.sleep(1)
        time.sleep(0.5)  # the file is written in one call; let it land
        assert summary_path.exists(), log.read_text()[-4000:]
        assert devnet.poll() is None, "--keep-running must keep the network up after the summary"
        summary = json.loads(summary_path.read_text())
        for pid in _descendants(devnet.pid):
            cmdlines[pid] = _cmdline(pid)
        cmdlines[control.pid] = _cmdline(control.pid)
    finally:
        control.kill()
        control.wait()
        if devnet.poll() is None:
            devnet.send_signal(signal.SIGTERM)
        code = devnet.wait(timeout=60)
    assert code in (0, 130), log.read_text()[-3000:]
    out = subprocess.CompletedProcess(devnet.args, 0, log.read_text(), "")
    errors = [f"{p.name}: {line}" for p in Path(summary["run_dir"]).rglob("*.log")
              for line in p.read_text(errors="replace").splitlines() if " ERROR " in line]
    assert errors == [], "a healthy devnet logs no ERROR lines:\n" + "\n".join(errors[:20])
    devices = [d for d in summary["devices"] if d["role"] == "insured"]
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
    # five single-device payouts and the corroborated policy's one group payout
    assert after["paid"] - before["paid"] == 6 * 1_000_000
    assert before["locked"] - after["locked"] == 6 * 1_000_000
    assert sum(after.values()) == sum(before.values()) == 0  # double entry
    assert summary["ok"] is True
    # The dashboard the devnet started saw the same: 5 claims paid, their receipts verified.
    assert summary["dashboard_url"].startswith("http://127.0.0.1:")
    dash = summary["dashboard"]
    assert dash["claims"]["paid"] == 5 and dash["receipts_verified"] == 5, dash
    assert dash["verified"] is True and dash["ready"] == 3
    assert dash["pool"]["paid"] == after["paid"]
    # Economic security (DESIGN §14): a faulty device that double-signed a frame is revoked, slashed
    # and paid nothing; a corroborated policy covers 2 of 3 devices; every policy's cheapest
    # attack costs more than its payout per period (the report the devnet prints).
    econ = summary["econ"]
    (equivocator,) = [d for d in summary["devices"] if d["role"] == "equivocator"]
    assert equivocator["fault"] and equivocator["payouts"] == 0 and equivocator["payout"] == 0
    assert econ["equivocator"] == {"device_id": equivocator["device_id"], "revoked": True, "slashed": True,
                                   "bond_left": 0}
    assert econ["slashes"] == [{"offender": equivocator["device_id"], "slashed": 1_500_000, "to_reporter": 300_000,
                                "to_pool": 1_200_000}]
    group = [d for d in summary["devices"] if d["role"] == "group"]
    assert len(group) == 3 and {d["policy_id"] for d in group} == {econ["group"]["policy_id"]}
    assert econ["group"]["m"] == 2 and all(d["payouts"] == 0 for d in group)  # no single-device payout
    # 2 of its 3 devices faulted at overlapping times under distinct agents: paid exactly once, for
    # the windows of the two faulty devices, each filed by its own agent
    assert econ["group"]["payouts"] == 1 and econ["group"]["payout"] == 1_000_000, econ["group"]
    assert sorted(d for d, _ in econ["group"]["windows"]) == econ["group"]["faulty"]
    assert len({a for _, a in econ["group"]["windows"]}) == 2
    assert econ["all_profits_negative"] and len(econ["policies"]) == 7 + 1 + 1
    assert all(p["profit"] < 0 for p in econ["policies"])
    assert summary["processes"] and not [p for p in summary["processes"].values() if p and alive(p)]

    run_dir = Path(summary["run_dir"])

    # Key custody (DESIGN §15).
    assert summary["ok"], log.read_text()[-3000:]
    assert summary["paid"] == summary["expected_paid"] == 5 and summary["ledger_verified"]
    assert set(summary["processes"]) >= {"ledger", "oracle-0", "oracle-1", "oracle-2", "agent"}

    # The token keys, by their public halves, from the ledger itself.
    result = replay_store(LedgerStore(run_dir / "ledger" / "ledger.sqlite3", readonly=True), workers=0)
    state = result.state
    assert state is not None and result.ok
    token_keys = {state.genesis.ledger_key, state.admin, *state.oracle_set.members, *state.agents, *state.devices}
    assert {bytes.fromhex(d["device_id"]) for d in summary["devices"]} <= set(state.devices)
    transports = {Identity.load(p).public_key for p in (run_dir / "keys").glob("*.transport.key")}
    # 3 oracles, the agent and the corroborated group's second agent (§14): each gossips on its own
    # bound transport key; the key files of a run with key files are gone: only transport keys.
    assert len(transports) == 5 and set(state.hw.transport_keys.values()) == transports
    assert sorted(p.name for p in (run_dir / "keys").iterdir()) == sorted(
        [f"oracle-{i}.transport.key" for i in range(3)] + ["agent.transport.key", "agent-2.transport.key"])

    (run_dir / "logs" / "control.log").write_text(f"INFO planted {planted.seed.hex()}\n")
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    logs = [p for p in files if p.suffix == ".log"]
    assert len(logs) >= 6 and any(p.parent.name == "tokens" or "tokens" in p.parts for p in files)
    searched = token_keys | transports | {planted.public_key}
    in_files = private_keys_of((p.read_bytes() for p in files), searched)
    in_cmdlines = private_keys_of(cmdlines.values(), searched)
    # Controls: the scan finds file keys and a planted key wherever they are.
    assert in_files == transports | {planted.public_key}
    assert in_cmdlines == {planted.public_key}
    assert len(cmdlines) >= 7, cmdlines  # the devnet, ledger, broker, 3 oracles, dashboard, agent (+ init)
    # No private token key in a file, a log or a command line.
    assert not (in_files | in_cmdlines) & token_keys
    # The configs name token keys, never a PIN (it reaches the processes in their environment).
    configs = list(run_dir.glob("*.toml"))
    assert configs and all("pkcs11:" in c.read_text() for c in configs if c.name != "ledger-init.toml")
    assert not any(re.search(r"(?m)^\s*\w*pin\s*=", c.read_text()) for c in configs)
