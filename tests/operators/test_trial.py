"""The operators' trial, played by hand through the command line only (no import of the project):
init a deployment, start a ledger, 3 oracles and an agent from their configs, fund the pool,
register the circuit (reading the id it prints), provision a device and enrol it from the file
provision wrote, issue a policy from an example file as shipped, stream a fault with the device
simulator, and see the claim `paid` with `faultproof claim show`. docs/deploy.md is this path.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _base_port() -> int:
    """A base whose derived ports (ledger, oracles, gossip, agent) are all free."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 40000, 10)
        if all(_free(base + d) for d in (0, 11, 12, 13, 41, 42, 43, 100)):
            return base
    raise RuntimeError("no free port range")


class Operator:
    """Runs `faultproof …` as an operator would, in a shell with FAULTPROOF_* variables set."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.services: list[subprocess.Popen[bytes]] = []

    def run(self, *args: str) -> str:
        out = subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True, env=self.env,
                             cwd=self.root, timeout=300)
        assert out.returncode == 0, f"faultproof {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}"
        return out.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args))

    def start(self, name: str, *args: str) -> None:
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
        self.services.append(subprocess.Popen([sys.executable, "-m", "cli", *args], stdout=log,
                                              stderr=subprocess.STDOUT, env=self.env, cwd=self.root,
                                              start_new_session=True))
        log.close()

    def stop_all(self) -> None:
        for proc in self.services:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.services:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait(what: str, check: Callable[[], Any], timeout: float, root: Path) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    logs = "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted(root.glob("*.log")))
    raise AssertionError(f"timed out waiting for {what}\n{logs}")


def _listening(port: int) -> bool:
    return not _free(port)


@pytest.fixture
def operator(tmp_path: Path) -> Iterator[Operator]:
    op = Operator(tmp_path)
    try:
        yield op
    finally:
        op.stop_all()


def test_operator_trial_through_the_cli_only(operator: Operator, tmp_path: Path) -> None:
    op, site, base = operator, tmp_path / "site", _base_port()
    printed = op.run("init", str(site), "--oracles", "3", "--base-port", str(base))
    assert "next:" in printed and "ledger_id" in printed
    ledger_url, agent_url = f"http://127.0.0.1:{base}", f"http://127.0.0.1:{base + 100}"
    op.env.update(FAULTPROOF_LEDGER=ledger_url, FAULTPROOF_ADMIN_KEY=str(site / "keys" / "admin.key"),
                  FAULTPROOF_AGENT=agent_url)
    op.run("config", "validate", "--offline", *map(str, sorted(site.glob("*.toml"))))

    op.start("ledger", "ledger", "serve", "--config", str(site / "ledger.toml"))
    _wait("the ledger", lambda: _listening(base), 60, tmp_path)
    for i in (1, 2, 3):
        op.start(f"oracle-{i}", "oracle", "run", "--config", str(site / f"oracle-{i}.toml"))

    op.json("admin", "deposit", "1000000")
    agent_id = op.run("public-key", str(site / "keys" / "agent.key")).strip()
    op.json("admin", "enrol-agent", agent_id)
    built = dict(line.split(": ", 1) for line in op.run("circuits", "build", "--n", "16").splitlines()
                 if ": " in line)
    registered = op.json("admin", "register-circuit", "--vkey-file", built["vkey"], "--n", "16")
    assert registered["circuit_id"] == built["circuit_id"]
    device = op.json("device", "provision", "--out", str(site / "devices"))
    enrolled = op.json("admin", "enrol-device", "--from", device["enrolment"])
    assert enrolled["device_id"] == device["device_id"]
    beneficiary = "be" * 32
    issued = op.json("admin", "issue-policy", str(REPO / "configs" / "policies" / "overheat.example.toml"),
                     "--device-id", device["device_id"], "--beneficiary", beneficiary,
                     "--circuit-id", registered["circuit_id"])
    policy_id = issued["policy_id"]

    for i in (1, 2, 3):
        _wait(f"oracle-{i}", lambda i=i: _listening(base + 10 + i), 90, tmp_path)
    op.start("agent", "agent", "run", "--config", str(site / "agent.toml"))
    _wait("the agent", lambda: _listening(base + 100), 120, tmp_path)

    def policy_active() -> bool:
        listing = op.json("admin", "policies", "--json")
        return any(p["policy_id"] == policy_id and p["status"] == "active" for p in listing)

    _wait("the policy's term to start", policy_active, 60, tmp_path)
    # a healthy signal around 21.50 C, then 8 readings at 35.00 C (the example pays 3 above 30.00 C)
    op.run("device", "simulate", "--key", device["key_file"], "--blind", device["blinding_key_file"],
           "--http", agent_url, "--readings", "120", "--rate", "40", "--fault", "excursion:60:8:3500")

    def paid_claim() -> str | None:
        claims = op.json("claim", "list", "--json")
        return next((c["claim_id"] for c in claims if c["status"] == "paid"), None)

    claim_id = _wait("a paid claim", paid_claim, 240, tmp_path)
    shown = op.run("claim", "show", claim_id)
    assert f"claim {claim_id}: paid" in shown
    assert "paid 10,000" in shown  # the example's amount per incident
    state = op.json("pool", "status", "--json")
    assert state["balances"]["paid"] == 10_000  # the pool paid once, exactly the amount
