"""Compile the pool's contracts with the pinned solc-js, and render Groth16 verifiers (DESIGN §13).

- `contracts()` compiles contracts/src and contracts/test with `contracts/node_modules/solc`
  (version pinned by contracts/package-lock.json; OpenZeppelin resolved from node_modules) and
  returns {name: Artifact}. The output is cached in `<repo>/.cache/evm/` under a key that hashes
  the sources, the lock file and the settings, so a second run reads one JSON file.
- `verifier(vkey)` renders snarkjs's own Groth16 Solidity template from a canonical verification
  key (faultproof.zk.export_vkey) and compiles it: a verifier per registered circuit, cached by
  the key's hash.

Nothing here is committed: build output lives only in the cache. Nothing is downloaded.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faultproof.zk.encoding import canonical_vkey

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTRACTS_DIR = REPO_ROOT / "contracts"
NODE_MODULES = CONTRACTS_DIR / "node_modules"
SOURCES = ("src/InsurancePool.sol", "src/PoolEcon.sol", "test/TestToken.sol", "test/HostileToken.sol")
SETTINGS: dict[str, Any] = {
    # The optimizer and viaIR are needed (the payout path is "stack too deep" without them, and
    # viaIR saves ~7 % gas);
    # solc 0.8.37 defaults to evmVersion osaka, which is anvil's default hardfork.
    "optimizer": {"enabled": True, "runs": 1000},
    "viaIR": True,
    "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}},
}
_CACHE_FORMAT = b"faultproof/evm-build/v1"


class BuildError(RuntimeError):
    """solc or node failed, or the toolchain is not installed (run `make setup`)."""


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str  # 0x-prefixed creation code


def cache_dir() -> Path:
    return REPO_ROOT / ".cache" / "evm"


def anvil_binary() -> Path:
    """The anvil binary the npm platform package ships (its postinstall is not needed)."""
    path = NODE_MODULES / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
    if not path.exists():
        raise BuildError(f"anvil not found at {path}: run `make setup` (npm ci in contracts/)")
    return path


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        raise BuildError("node is not on PATH (the EVM backend compiles with solc-js): install Node.js >= 18")
    return node


def _run_node(script: str, stdin: str, timeout: float = 300.0) -> str:
    if not (NODE_MODULES / "solc").exists():
        raise BuildError("contracts/node_modules is missing: run `make setup`")
    proc = subprocess.run([_node(), str(CONTRACTS_DIR / "scripts" / script)], input=stdin,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise BuildError(f"{script} failed: {proc.stderr[-2000:]}")
    return proc.stdout


def _solc(sources: dict[str, str]) -> dict[str, Artifact]:
    request = {"language": "Solidity", "sources": {k: {"content": v} for k, v in sources.items()},
               "settings": SETTINGS}
    out = json.loads(_run_node("compile.cjs", json.dumps(request)))
    errors = [e for e in out.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise BuildError("solc: " + "\n".join(e.get("formattedMessage", e.get("message", "")) for e in errors))
    arts: dict[str, Artifact] = {}
    for path in sources:
        for name, c in out["contracts"][path].items():
            arts[name] = Artifact(name, c["abi"], "0x" + c["evm"]["bytecode"]["object"])
    return arts


def _cached(key: bytes, make: Any) -> dict[str, Artifact]:
    d = cache_dir()
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{hashlib.sha256(_CACHE_FORMAT + key).hexdigest()[:32]}.json"
    with open(d / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            arts = make()
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps({n: {"abi": a.abi, "bytecode": a.bytecode} for n, a in arts.items()}))
            os.replace(tmp, path)
    raw = json.loads(path.read_text())
    return {n: Artifact(n, v["abi"], v["bytecode"]) for n, v in raw.items()}


def _toolchain_key() -> bytes:
    lock = CONTRACTS_DIR / "package-lock.json"
    return hashlib.sha256(lock.read_bytes()).digest() + json.dumps(SETTINGS, sort_keys=True).encode()


def contracts() -> dict[str, Artifact]:
    """InsurancePool, TestToken and HostileToken, compiled (cached)."""
    sources = {p: (CONTRACTS_DIR / p).read_text() for p in SOURCES}
    key = _toolchain_key() + b"".join(hashlib.sha256(p.encode() + s.encode()).digest()
                                      for p, s in sorted(sources.items()))
    return _cached(key, lambda: _solc(sources))


def verifier_source(vkey: bytes) -> str:
    return _run_node("verifier.cjs", canonical_vkey(vkey).decode())


def verifier(vkey: bytes) -> Artifact:
    """The Groth16Verifier contract for this verification key (compiled, cached)."""
    canon = canonical_vkey(vkey)
    key = _toolchain_key() + b"verifier" + hashlib.sha256(canon).digest() + \
        hashlib.sha256((CONTRACTS_DIR / "scripts" / "verifier.cjs").read_bytes()).digest()
    return _cached(key, lambda: _solc({"Groth16Verifier.sol": verifier_source(canon)}))["Groth16Verifier"]
