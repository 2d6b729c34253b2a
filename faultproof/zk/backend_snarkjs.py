"""The reference backend: circom2 (circom 2.2 as WebAssembly) and snarkjs from circuits/node_modules.

Used for ceremonies (powers of tau, phase 2, `.zkey` export), as a second opinion in tests
(a groth16py proof must verify here, and a ceremony key must prove in groth16py), and as the
benchmark baseline. Every call is a `node` subprocess with a timeout; nothing stays running.
Development setup here is a single-contributor ceremony: as UNSAFE as groth16py's.

Owns nothing on disk except what it is told to write, plus the cached powers of tau under
`<cache dir>/ptau/` (preparing phase 2 is the slow step: ~1 minute at 2^12).
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import re
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from faultproof.zk.encoding import (
    canonical_vkey,
    proof_from_snarkjs,
    proof_to_snarkjs,
    public_to_snarkjs,
)

NAME = "snarkjs"
REPO_ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = REPO_ROOT / "circuits" / "node_modules"
CIRCOM_CLI = NODE_MODULES / "circom2" / "cli.js"
SNARKJS_CLI = NODE_MODULES / "snarkjs" / "cli.js"
CIRCOMLIB_DIR = NODE_MODULES / "circomlib" / "circuits"
_VERIFY_MANY_JS = Path(__file__).with_name("js") / "verify_many.mjs"
_CONSTRAINTS_RE = re.compile(r"(non-linear|linear) constraints:\s*(\d+)")


class SnarkjsError(RuntimeError):
    """A node tool failed; carries its output."""


def available() -> bool:
    return shutil.which("node") is not None and SNARKJS_CLI.exists() and CIRCOM_CLI.exists()


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        raise SnarkjsError("node is not on PATH (the snarkjs backend needs Node.js >= 18)")
    return node


def run(args: Sequence[str], *, timeout: float = 3600.0, cwd: Path | None = None) -> str:
    """Run `node <args>`; return stdout+stderr, raise SnarkjsError on a non-zero exit."""
    proc = subprocess.run(
        [_node(), *args], capture_output=True, text=True, timeout=timeout, cwd=cwd,
        stdin=subprocess.DEVNULL,
    )
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise SnarkjsError(f"node {' '.join(map(str, args[:3]))} failed ({proc.returncode}):\n{out[-2000:]}")
    return out


def snarkjs(*args: str | Path, timeout: float = 3600.0) -> str:
    return run([str(SNARKJS_CLI), *map(str, args)], timeout=timeout)


def compile_circuit(main_circom: Path, out_dir: Path, libs: Sequence[str]) -> tuple[Path, Path, int]:
    """circom2 --O2 -> (r1cs, wasm, constraints)."""
    out_dir.mkdir(parents=True, exist_ok=True)  # circom fails obscurely without it
    lib_args: list[str] = []
    for lib in libs:
        lib_args += ["-l", str(lib)]
    log = run([str(CIRCOM_CLI), str(main_circom), "--r1cs", "--wasm", "--O2", *lib_args,
               "-o", str(out_dir)], timeout=1800)
    stem = main_circom.stem
    found = _CONSTRAINTS_RE.findall(log)
    constraints = sum(int(v) for _, v in found) if found else -1
    return out_dir / f"{stem}.r1cs", out_dir / f"{stem}_js" / f"{stem}.wasm", constraints


def ptau_power(constraints: int, n_public: int) -> int:
    """Smallest power of tau snarkjs accepts for a circuit (domain > constraints + publics)."""
    return max(8, math.ceil(math.log2(constraints + n_public + 2)))


def ensure_ptau(power: int, cache_dir: Path) -> Path:
    """A prepared (phase 2) powers-of-tau file of 2^power, single contributor, cached.

    UNSAFE for production: the one contributor's entropy is discarded but unverifiable.
    """
    ptau_dir = cache_dir / "ptau"
    ptau_dir.mkdir(parents=True, exist_ok=True)
    final = ptau_dir / f"pot{power}_dev_final.ptau"
    if final.exists():
        return final
    for bigger in range(power + 1, 29):  # snarkjs takes any prepared ptau at least as large
        candidate = ptau_dir / f"pot{bigger}_dev_final.ptau"
        if candidate.exists():
            return candidate
    with open(ptau_dir / f".lock-{power}", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if final.exists():
            return final
        with tempfile.TemporaryDirectory(dir=ptau_dir) as tmp:
            t = Path(tmp)
            snarkjs("powersoftau", "new", "bn128", str(power), t / "pot0.ptau")
            snarkjs("powersoftau", "contribute", t / "pot0.ptau", t / "pot1.ptau",
                    "--name=faultproof-dev", f"-e={secrets.token_hex(32)}")
            snarkjs("powersoftau", "prepare", "phase2", t / "pot1.ptau", t / "final.ptau")
            os.replace(t / "final.ptau", final)
    return final


def dev_setup(r1cs: Path, ptau: Path, out_zkey: Path) -> None:
    """Groth16 phase 2 with one random contribution (UNSAFE, development only)."""
    z0 = out_zkey.with_suffix(".0.zkey")
    snarkjs("groth16", "setup", r1cs, ptau, z0)
    snarkjs("zkey", "contribute", z0, out_zkey, "--name=faultproof-dev",
            f"-e={secrets.token_hex(32)}")
    z0.unlink()


def export_vkey(zkey: Path) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "vk.json"
        snarkjs("zkey", "export", "verificationkey", zkey, out)
        return canonical_vkey(out.read_text())


def _stringify(v: Any) -> Any:
    if isinstance(v, list):
        return [_stringify(x) for x in v]
    return str(int(v))


def prove(wasm: Path, zkey: Path, inputs: dict[str, Any], *, timeout: float = 600.0) -> bytes:
    """`snarkjs groth16 fullprove` (witness + proof). Raises SnarkjsError if the witness fails."""
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        # Decimal strings: JSON numbers above 2^53 lose precision in node.
        (t / "input.json").write_text(json.dumps({k: _stringify(v) for k, v in inputs.items()}))
        snarkjs("groth16", "fullprove", t / "input.json", wasm, zkey, t / "proof.json",
                t / "public.json", timeout=timeout)
        return proof_from_snarkjs(json.loads((t / "proof.json").read_text()))


def verify(vkey: bytes, proof: bytes, signals: Sequence[int], *, timeout: float = 120.0) -> bool:
    """`snarkjs groth16 verify` in a fresh node process (the CLI baseline)."""
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        (t / "vk.json").write_bytes(canonical_vkey(vkey))
        (t / "proof.json").write_text(json.dumps(proof_to_snarkjs(proof)))
        (t / "public.json").write_text(json.dumps(public_to_snarkjs(list(signals))))
        proc = subprocess.run(
            [_node(), str(SNARKJS_CLI), "groth16", "verify", str(t / "vk.json"),
             str(t / "public.json"), str(t / "proof.json")],
            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        )
        return proc.returncode == 0 and "OK!" in proc.stdout


def verify_many(
    vkey: bytes, items: Sequence[tuple[bytes, Sequence[int]]], *, timeout: float = 600.0
) -> tuple[list[bool], float]:
    """Verify many proofs in ONE node process with snarkjs's API.

    Returns (results, seconds spent verifying inside node, excluding start-up and key loading).
    """
    payload = {
        "snarkjs": str(NODE_MODULES / "snarkjs" / "build" / "main.cjs"),
        "vkey": json.loads(canonical_vkey(vkey)),
        "items": [
            {"proof": proof_to_snarkjs(p), "public": public_to_snarkjs(list(s))} for p, s in items
        ],
    }
    proc = subprocess.run(
        [_node(), str(_VERIFY_MANY_JS)], input=json.dumps(payload), capture_output=True,
        text=True, timeout=timeout,
    )
    if proc.returncode != 0:
        raise SnarkjsError(f"verify_many.mjs failed:\n{proc.stderr[-2000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return [bool(x) for x in out["results"]], float(out["seconds"])
