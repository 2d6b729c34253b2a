"""The guides run as written: the quick start's and the operators' guides' command blocks, in order,
through the real command line only (no import of the project), on one network.

docs/deploy.md is the trial itself: init a deployment, start a ledger and 3 oracles from their
systemd units' commands, fund the pool, register the circuit (reading the id it prints), provision
a device and enrol it from the file provision wrote, issue a policy from an example file as
shipped, start the agent, stream a fault with the device simulator and see the claim `paid` with
`faultproof claim show`. Then, against the same network: the quick start's commands for a running
network (docs/quickstart.md), the oracle operator's (a key; the admin adds it to the oracle set)
and the agent operator's (a key, a device). The test then checks the outcome through the CLI: the
claim is paid, the pool paid exactly the policy's amount once.

How a guide's fenced `sh` block is run (other blocks are diagrams, output or Python):
- each line (`\\`-continued lines joined) runs in bash in the test's folder and must exit 0;
  `export` lines set the environment of every later line; `sudo` and `sudo -u USER` prefixes go
  (the test is the operator and the service user);
- the guides' absolute paths are rooted in the test's folder (`/etc/faultproof`,
  `/var/lib/faultproof`; the units' circuit cache is the test's FAULTPROOF_CACHE_DIR), the
  checkout's own paths (`.venv/bin/faultproof`, `configs/`) point at this checkout, and the default
  ports (87xx, 88xx) are shifted to a free range;
- words in capitals (DEVICE_ID, CIRCUIT_ID, …) and `<…>` are placeholders the guide says to fill
  from what earlier commands printed; the test fills them the same way (PLACEHOLDERS);
- an HTML comment on the line before a block changes how it runs:
  `<!-- docs-test: skip (why) -->` not run, and the reason is required;
  `<!-- docs-test: until 'TEXT' -->` re-run until it exits 0 and prints TEXT (waiting for a
  service or a claim);
  `<!-- docs-test: background (why) -->` `export` lines as above; every other line is a service
  that runs in the foreground for the reader: started in the background with the environment so
  far, stopped by pid (SIGTERM) at the end like the units;
  `<!-- docs-test: units -->` each `systemctl enable --now UNIT…` runs the unit's ExecStartPre
  (must exit 0) and its ExecStart in the background with the unit's Environment=, as systemd would
  (deploy/UNIT.service); the test stops every service it started by pid (SIGTERM) at the end.

Not re-run here: the README's `make devnet` and `make test` and quickstart.md's `make devnet`
(tests/devnet runs the devnet; make test is this suite), and the blocks marked skip with their
reason. The reference pages (ledger.md, circuits.md, …) are parsed, not run, by test_docs.py.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from faultproof.procs import free_port_block

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

# In this order, on one network: each later guide uses what the earlier ones set up.
GUIDES = ["README.md", "docs/deploy.md", "docs/quickstart.md", "docs/oracle-operator.md", "docs/agent-operator.md"]
BENEFICIARY = "be" * 32  # the policyholder's id: the test's choice, as it is the underwriter's
# placeholder in a guide -> what an earlier command printed (the key the test learned it under)
PLACEHOLDERS = {
    "VKEY_FILE": "vkey", "DEVICE_ID": "device_id", "CIRCUIT_ID": "circuit_id", "CLAIM_ID": "claim_id",
    "<claim_id>": "claim_id", "ORACLE_ID_1": "oracle-1", "ORACLE_ID_2": "oracle-2", "ORACLE_ID_3": "oracle-3",
    "YOUR_ORACLE_ID": "public_id", "<ledger port>": "ledger_port", "<oracle port>": "oracle_port",
    "<agent port>": "agent_port", "<ledger_id>": "ledger_id",
    "devnet-data/run-…/ledger/ledger.sqlite3": "ledger_db", "BENEFICIARY_ID": "beneficiary",
}
MARKER = re.compile(r"<!--\s*docs-test:\s*(skip|until|units|background)\b(.*?)-->")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def _base_port() -> int:
    """A base whose derived ports are all free: the guides' 8700-8899 map onto base .. base + 199."""
    return free_port_block(200)


@dataclass
class Block:
    guide: str
    line: int  # of the opening fence, for messages
    mode: str  # "run", "skip", "until", "units", "background"
    arg: str  # the skip reason or the text to wait for
    commands: list[str]


def blocks(guide: str) -> list[Block]:
    """The guide's shell blocks with their markers, in order."""
    text = (REPO / guide).read_text()
    out = []
    for m in FENCE.finditer(text):
        if m.group(1) not in ("sh", "bash"):
            continue
        before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = MARKER.search(before)
        mode, arg = (marker.group(1), marker.group(2).strip()) if marker else ("run", "")
        if mode == "until":
            quoted = re.fullmatch(r"(['\"])(.*)\1", arg)
            assert quoted, f"{guide}: until needs a quoted text: {before}"
            arg = quoted.group(2)
        joined = re.sub(r"\\\n\s*", " ", m.group(2))
        commands = [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]
        out.append(Block(guide, text[:m.start()].count("\n") + 1, mode, arg, commands))
    return out


class Operator:
    """Runs a guide's commands as an operator would, in a shell in a folder of its own."""

    def __init__(self, root: Path, base: int) -> None:
        self.root, self.base = root, base
        self.work = root / "work"  # the operator's working folder
        self.work.mkdir()
        bin_dir = root / "bin"  # `faultproof` on the PATH is this checkout's, run by this Python
        bin_dir.mkdir()
        (bin_dir / "faultproof").write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m cli \"$@\"\n")
        (bin_dir / "faultproof").chmod(0o755)
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO),
                    "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
        for name in ("FAULTPROOF_LEDGER", "FAULTPROOF_ORACLE", "FAULTPROOF_AGENT", "FAULTPROOF_ADMIN_KEY"):
            self.env.pop(name, None)
        self.cache = self.env.setdefault("FAULTPROOF_CACHE_DIR", str(root / "cache"))
        self.services: list[subprocess.Popen[bytes]] = []
        self.learned: dict[str, str] = {"beneficiary": BENEFICIARY, "ledger_port": str(base),
                                        "oracle_port": str(base + 11), "agent_port": str(base + 100),
                                        "ledger_db": str(root / "var/lib/faultproof/ledger/ledger.db")}
        self.transcript: list[str] = []

    # -- turning a guide's line into this machine's ------------------------------------------

    def localise(self, command: str) -> str:
        command = re.sub(r"^sudo (-u \S+ )?", "", command)
        command = command.replace("/usr/local/bin/faultproof", "faultproof").replace(".venv/bin/faultproof",
                                                                                     "faultproof")
        command = re.sub(r"(?<!\d)8([78]\d\d)(?!\d)", lambda m: str(self.base + int("8" + m.group(1)) - 8700),
                         command)
        command = command.replace("/var/lib/faultproof/circuits", self.cache)
        for absolute in ("/etc/faultproof", "/var/lib/faultproof"):
            command = command.replace(absolute, str(self.root) + absolute)
        command = re.sub(r"(?<![\w/.-])configs/", f"{REPO}/configs/", command)
        for placeholder in sorted(PLACEHOLDERS, key=len, reverse=True):
            if placeholder in command:
                key = PLACEHOLDERS[placeholder]
                assert key in self.learned, f"`{command}`: {placeholder} before any command printed it"
                command = command.replace(placeholder, self.learned[key])
        return command

    def learn(self, stdout: str) -> None:
        """Remember what a command printed, as an operator reads it off the screen."""
        try:
            doc = json.loads(stdout)
        except ValueError:
            doc = None
        for item in doc if isinstance(doc, list) else [doc]:
            if isinstance(item, dict):
                self.learned.update({k: v for k, v in item.items() if isinstance(v, str)})
        for line in stdout.splitlines():
            if m := re.fullmatch(r"(\w+): (\S+)", line.strip()):  # circuits build: `vkey: PATH`
                self.learned[m.group(1)] = m.group(2)
            elif m := re.fullmatch(r"\s+([\w-]+)\s+([0-9a-f]{64})", line):  # init: `  oracle-1  HEX`
                self.learned[m.group(1)] = m.group(2)
            elif re.fullmatch(r"[0-9a-f]{64}", line.strip()):  # keygen, public-key
                self.learned["public_id"] = line.strip()

    # -- running ------------------------------------------------------------------------------

    def shell(self, command: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=self.env, cwd=self.work,
                              timeout=timeout)

    def run(self, block: Block, command: str) -> None:
        if command.startswith("export "):
            for word in shlex.split(command)[1:]:
                name, _, value = word.partition("=")
                self.env[name] = value
            return
        started = time.monotonic()
        out = self.shell(command)
        self.transcript.append(f"{time.monotonic() - started:5.1f}s  {command}")
        assert out.returncode == 0, (f"{block.guide}:{block.line}: `{command}` exited {out.returncode}:\n"
                                     f"{out.stdout[-2000:]}\n{out.stderr[-2000:]}\n{self.logs()}")
        self.learn(out.stdout)

    def until(self, block: Block, timeout: float = 300) -> None:
        deadline, last = time.monotonic() + timeout, None
        started = time.monotonic()
        while time.monotonic() < deadline:
            outputs = [self.shell(self.localise(c), timeout=60) for c in block.commands]
            last = outputs[-1]
            if all(o.returncode == 0 for o in outputs) and block.arg in last.stdout:
                for o in outputs:
                    self.learn(o.stdout)
                self.transcript.append(f"{time.monotonic() - started:5.1f}s  (until {block.arg!r}) "
                                       + "; ".join(block.commands))
                return
            dead = [p.args for p in self.services if p.poll() is not None]
            assert not dead, f"{block.guide}:{block.line}: a service exited while waiting: {dead}\n{self.logs()}"
            time.sleep(1.0)
        raise AssertionError(f"{block.guide}:{block.line}: {block.commands} never printed {block.arg!r}:\n"
                             f"{last.stdout[-2000:] if last else ''}\n{last.stderr[-2000:] if last else ''}\n"
                             f"{self.logs()}")

    def units(self, block: Block) -> None:
        for command in block.commands:
            words = shlex.split(re.sub(r"^sudo ", "", command))
            if words[:3] != ["systemctl", "enable", "--now"]:
                continue  # copying the units in and daemon-reload are systemd's own steps
            for unit in words[3:]:
                self.start_unit(unit)

    def background(self, block: Block) -> None:
        for i, command in enumerate(block.commands):
            command = self.localise(command)
            if command.startswith("export "):
                self.run(block, command)
                continue
            with (self.root / f"{Path(block.guide).stem}-{block.line}-{i}.log").open("ab") as log:
                self.services.append(subprocess.Popen(["bash", "-c", f"exec {command}"], stdout=log,
                                                      stderr=subprocess.STDOUT, env=dict(self.env), cwd=self.work,
                                                      start_new_session=True))
            self.transcript.append(f"       (background) {command}")

    def start_unit(self, unit: str) -> None:
        name, _, instance = unit.partition("@")
        path = REPO / "deploy" / (f"{name}@.service" if instance else f"{name}.service")
        lines = [line.strip() for line in path.read_text().splitlines()]
        env = dict(self.env)
        for line in lines:
            if line.startswith("Environment="):
                key, _, value = line.removeprefix("Environment=").partition("=")
                env[key] = self.localise(value)

        def command(key: str) -> list[str]:
            return [self.localise(line.removeprefix(key + "=").replace("%i", instance))
                    for line in lines if line.startswith(key + "=")]

        for pre in command("ExecStartPre"):
            out = subprocess.run(["bash", "-c", pre], capture_output=True, text=True, env=env, cwd=self.work,
                                 timeout=120)
            assert out.returncode == 0, f"{unit}: ExecStartPre `{pre}` exited {out.returncode}:\n{out.stderr}"
        (start,) = command("ExecStart")
        with (self.root / f"{unit}.log").open("ab") as log:
            self.services.append(subprocess.Popen(["bash", "-c", f"exec {start}"], stdout=log,
                                                  stderr=subprocess.STDOUT, env=env, cwd=self.work,
                                                  start_new_session=True))
        self.transcript.append(f"       (unit {unit}) {start}")

    def play(self, block: Block) -> None:
        if block.mode == "skip":
            assert re.fullmatch(r"\(.+\)", block.arg), f"{block.guide}:{block.line}: skip without a (reason)"
        elif block.mode == "until":
            self.until(block)
        elif block.mode == "units":
            self.units(block)
        elif block.mode == "background":
            assert re.fullmatch(r"\(.+\)", block.arg), f"{block.guide}:{block.line}: background without a (reason)"
            self.background(block)
        else:
            for command in block.commands:
                self.run(block, self.localise(command))

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted(self.root.glob("*.log")))

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

    def cli(self, *args: str) -> Any:
        out = subprocess.run(["faultproof", *args], capture_output=True, text=True, env=self.env, cwd=self.work,
                             timeout=60)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)


@pytest.fixture
def operator(tmp_path: Path) -> Iterator[Operator]:
    op = Operator(tmp_path, _base_port())
    try:
        yield op
    finally:
        op.stop_all()


def test_every_guide_runs_as_written(operator: Operator) -> None:
    op = operator
    played: dict[str, int] = {}
    for guide in GUIDES:
        for block in blocks(guide):
            op.play(block)
            played[guide] = played.get(guide, 0) + (block.mode != "skip")
    print("\n".join(op.transcript))
    # every operators' guide had something to run
    assert all(played.get(g, 0) > 0 for g in GUIDES[1:]), played
    # the outcome, through the CLI: the claim the guides followed is paid, once, the policy's amount
    claim = op.cli("claim", "show", op.learned["claim_id"], "--json")
    assert claim["status"] == "paid" and claim["paid"] == 10_000, claim  # the example's amount per incident
    state = op.cli("pool", "status", "--json")
    assert state["balances"]["paid"] == 10_000, state["balances"]
    # the oracle guide's rotation took: the set is the three oracles and the new key, k = 3
    oracles = state["oracles"]
    assert oracles["epoch"] == 1 and oracles["threshold"] == 3 and len(oracles["members"]) == 4, oracles
    # SIGTERM stops every service promptly, with the agent and oracles still long-polling the ledger
    started = time.monotonic()
    op.stop_all()
    assert time.monotonic() - started < 5.0, "a service took more than 5 s to stop on SIGTERM"
    assert all(p.returncode == 0 for p in op.services), [(p.args, p.returncode) for p in op.services]


# The only blocks the trial does not run: what needs root or installs on the host, and the make
# targets other tests run. Everything else in the guides runs as written.
SKIPPED = [("README.md", "make devnet"), ("docs/deploy.md", "make setup"),
           ("docs/deploy.md", "sudo useradd --system --home /var/lib/faultproof --shell /usr/sbin/nologin faultproof"),
           ("docs/deploy.md", "sudo chown -R faultproof:faultproof /etc/faultproof /var/lib/faultproof"),
           ("docs/quickstart.md", "make devnet")]


def test_every_shell_block_is_run_or_says_why_not() -> None:
    """A guide's block the trial skips carries its reason; a block with none is run; the skipped
    blocks are exactly the known ones (a new skip must be argued here)."""
    skipped = []
    for guide in GUIDES:
        for block in blocks(guide):
            if block.mode in ("skip", "background"):
                assert re.fullmatch(r"\(.+\)", block.arg), f"{guide}:{block.line}: {block.mode} without a (reason)"
            if block.mode == "skip":
                skipped.append((guide, block.commands[0].split("#")[0].strip()))
            assert block.commands, f"{guide}:{block.line}: an empty block"
    assert skipped == SKIPPED, skipped
