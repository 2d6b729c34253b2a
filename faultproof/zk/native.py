"""The native witness generator (issue 15): circom2 `--c` C++ code, compiled with g++ and nasm.

groth16py computes a witness by interpreting the circuit's WebAssembly (~0.41 s at n = 64, a third
of a proof). circom2 can instead emit a C++ witness generator for the same circuit; compiled here
with Debian's g++, nasm and libgmp it computes the same witness bytes in ~0.03 s, and
`groth16py.prove_wtns` proves from them. The two compilers (circom2 2.2.3 from npm, groth16py's
circom crates) number the wires alike; tests/zk/test_native.py holds the witness bytes equal to the
WebAssembly generator's for every trigger kind and a proof from them verifying under groth16py's key.

- `ensure(root, name, ...)` builds the generator once (~20-45 s of g++) into `root/name/`;
  file-locked, atomic. `faultproof.zk.circuit.build_native(n)` names it
  `<circuit cache>/witness/n{n}-k{kinds}-<hash>` (`key`: the circuit sources, ours and the
  circomlib groth16py compiles with, n, kinds, the circom2 version); `make setup` runs it for the
  shipped window sizes. Paths and sources come from the caller: this module imports no other
  part of faultproof.zk but the two backends.
- `find(root, name)` only looks: a prover never compiles on its hot path. Without a generator
  (no compiler on this machine, or not built yet) the caller falls back to groth16py's
  WebAssembly path, which proves the same statement.
- `witness(binary, inputs)` runs the generator on an input dict and returns the `.wtns` bytes.
  Unlike groth16py's interpreter, the C++ code checks every `===` while computing, so an
  unsatisfied witness is refused here (NativeWitnessError) instead of giving a bad proof.

Never writes outside the cache directory and a private temporary directory (tmpfs when there is
one); the private inputs go through a file there, removed after the proof, never a command line.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from faultproof.zk import backend_groth16py as g16
from faultproof.zk import backend_snarkjs as sjs
from faultproof.zk.encoding import R

_KEY_FORMAT = b"faultproof/native-witness/v1"
BINARY = "main_c"  # circom names the program after the main file (main.circom -> main_c)
TOOLS = ("g++", "nasm", "node")
_CXXFLAGS = ("-std=c++11", "-O1")  # -O1: compiles ~2x faster than the Makefile's -O3, same speed here
BUILD_TIMEOUT_S = 1800.0
WITNESS_TIMEOUT_S = 120.0


class NativeWitnessError(RuntimeError):
    """The generator refused the inputs (malformed, or a constraint fails), or could not run."""


def available() -> bool:
    """Whether this machine can build generators: g++, nasm, node and circom2 present."""
    return all(shutil.which(t) for t in TOOLS) and sjs.CIRCOM_CLI.exists()


@functools.lru_cache(maxsize=1)
def _circom2_version() -> str:
    pkg = sjs.NODE_MODULES / "circom2" / "package.json"
    try:
        return str(json.loads(pkg.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return "absent"


def key(n: int, kinds: int, source_digest: bytes) -> str:
    """Directory name of the generator for (n, kinds) and these circuit sources."""
    h = hashlib.sha256(_KEY_FORMAT)
    for part in (str(n), str(kinds), _circom2_version()):
        h.update(part.encode() + b"\0")
    h.update(source_digest)
    return f"n{n}-k{kinds}-{h.hexdigest()[:20]}"


def find(root: Path, name: str) -> Path | None:
    """The built generator `root/name/main_c`, or None. Cheap: a stat."""
    binary = root / name / BINARY
    return binary if binary.is_file() and os.access(binary, os.X_OK) else None


def ensure(root: Path, name: str, main_source: str, libs: Sequence[str]) -> Path:
    """Build (once, file-locked) and return the generator `root/name/main_c` for the main
    component `main_source`, compiled with include dirs `libs`.

    Raises NativeWitnessError if a tool is missing or a step fails (with its output's tail)."""
    found = find(root, name)
    if found is not None:
        return found
    if not available():
        missing = [t for t in TOOLS if not shutil.which(t)]
        raise NativeWitnessError(
            f"cannot build the native witness generator: missing {missing or ['circom2']} "
            "(run `make setup`)"
        )
    root.mkdir(parents=True, exist_ok=True)
    final = root / name
    with open(root / f".lock-{name}", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / BINARY).is_file():
            return final / BINARY
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
        try:
            _build_into(tmp, main_source, libs)
            os.chmod(tmp, 0o755)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final / BINARY


def _run(args: list[str], cwd: Path) -> None:
    try:
        proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True,
                              timeout=BUILD_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise NativeWitnessError(f"{args[0]} could not run: {e}") from None
    if proc.returncode != 0:
        out = (proc.stdout + proc.stderr)[-2000:]
        raise NativeWitnessError(f"{Path(args[0]).name} failed ({proc.returncode}): {out}")


def _build_into(out: Path, main_source: str, libs: Sequence[str]) -> None:
    main = out / "main.circom"
    main.write_text(main_source)
    # The same sources groth16py compiles (our circuit + groth16py's vendored circomlib), so the
    # wire numbering matches its proving key. circom2 runs under WASI and sees paths relative to
    # its working directory: run it from / with absolute paths.
    lib_args = [arg for lib in libs for arg in ("-l", str(lib))]
    _run([shutil.which("node") or "node", str(sjs.CIRCOM_CLI), str(main), "--c", "--O2",
          *lib_args, "-o", str(out)], cwd=Path("/"))
    src = out / "main_c_cpp"
    _run(["nasm", "-felf64", "fr.asm", "-o", "fr_asm.o"], cwd=src)
    _run(["g++", *_CXXFLAGS, "-I.", "-o", BINARY, "main.cpp", "calcwit.cpp", "fr.cpp",
          "main_c.cpp", "fr_asm.o", "-lgmp", "-z", "noexecstack"], cwd=src)
    # Keep only the program and its constants (the generated sources are ~7 MB).
    os.replace(src / BINARY, out / BINARY)
    os.replace(src / f"{BINARY}.dat", out / f"{BINARY}.dat")
    shutil.rmtree(src)


def _json_value(name: str, v: Any) -> Any:
    if isinstance(v, list | tuple):
        return [_json_value(name, x) for x in v]
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < R:
        # groth16py refuses the same; the C++ parser would silently reduce or misread them.
        raise NativeWitnessError(f"input {name} is not a field element: {v!r}")
    return str(v)


def _generate(binary: Path, inputs: Mapping[str, Any], tmp: Path) -> Path:
    doc = {name: _json_value(name, v) for name, v in inputs.items()}
    inp, out = tmp / "input.json", tmp / "witness.wtns"
    inp.write_text(json.dumps(doc))
    try:
        proc = subprocess.run([str(binary), str(inp), str(out)], capture_output=True,
                              text=True, timeout=WITNESS_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise NativeWitnessError(f"witness generator could not run: {e}") from None
    if proc.returncode != 0 or not out.is_file():
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["no output"]
        raise NativeWitnessError(f"witness generator refused the inputs: {tail[0][:300]}")
    return out


def _private_tmp() -> str | None:
    # The inputs hold the private window (readings, blinding values): keep them in memory
    # (tmpfs) where there is one, in a directory only this user can read, removed at once.
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def witness(binary: Path, inputs: Mapping[str, Any]) -> bytes:
    """Run the generator on an input dict; the `.wtns` bytes (snarkjs/circom format)."""
    with tempfile.TemporaryDirectory(prefix="faultproof-wtns-", dir=_private_tmp()) as tmp:
        return _generate(binary, inputs, Path(tmp)).read_bytes()


def prove(pk: Any, binary: Path, inputs: Mapping[str, Any]) -> bytes:
    """Native witness, then groth16py's prover from it: the 256-byte EVM proof."""
    with tempfile.TemporaryDirectory(prefix="faultproof-wtns-", dir=_private_tmp()) as tmp:
        return g16.prove_wtns(pk, _generate(binary, inputs, Path(tmp)))
