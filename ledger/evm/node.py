"""A local chain for the devnet and the tests: anvil from the npm platform package (DESIGN §13).

`Anvil.start(log_dir)` runs the binary itself (not npx's node wrapper, whose pid is not anvil's)
on 127.0.0.1 with a free port, in its own session, and waits until the RPC answers. `stop()`
signals that pid only. Auto-mining: one transaction, one block.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from faultproof.procs import free_port
from ledger.evm.build import anvil_binary


def rpc(url: str, method: str, params: list[object] | None = None, timeout: float = 5.0) -> object:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
    resp = httpx.post(url, content=body, headers={"Content-Type": "application/json"}, timeout=timeout)
    resp.raise_for_status()
    out = resp.json()
    if "error" in out:
        raise RuntimeError(f"{method}: {out['error']}")
    return out.get("result")


@dataclass
class Anvil:
    url: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    @classmethod
    def start(cls, log_dir: Path, *, timestamp_s: int | None = None, timeout: float = 20.0) -> Anvil:
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / "anvil.log"
        port = free_port()
        args = [str(anvil_binary()), "--host", "127.0.0.1", "--port", str(port), "--silent"]
        if timestamp_s is not None:
            args += ["--timestamp", str(timestamp_s)]
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        node = cls(f"http://127.0.0.1:{port}", port, proc, log_path)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"anvil exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
            try:
                rpc(node.url, "eth_chainId", timeout=0.5)
                return node
            except httpx.TransportError:  # not listening yet
                time.sleep(0.05)
        node.stop()
        raise TimeoutError(f"anvil did not answer on {node.url} within {timeout} s")

    def set_next_timestamp(self, seconds: int) -> None:
        rpc(self.url, "evm_setNextBlockTimestamp", [seconds])

    def mine(self, seconds: int | None = None) -> None:
        rpc(self.url, "evm_mine", [seconds] if seconds is not None else [])

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)  # the session we created: anvil alone
            except ProcessLookupError:
                return
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
