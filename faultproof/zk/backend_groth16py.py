"""The default backend: groth16py (arkworks, in-process, no Node at run time).

Owns every call into groth16py: compiling a circuit and running the development single-party
setup (UNSAFE: whoever ran it could forge proofs), importing a snarkjs ceremony `.zkey`, proving,
and the prepared verifiers. groth16py's prover does not check that the witness satisfies the
constraints (an unsatisfied witness gives a proof that does not verify), and it is single-threaded.

Nothing here knows about caching or the public-signal layout; `faultproof.zk.circuit` does.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import groth16py

from faultproof.errors import FaultproofError, Reason
from faultproof.zk.encoding import canonical_vkey

NAME = "groth16py"
_T = TypeVar("_T")
_STDOUT_LOCK = threading.Lock()
_CONSTRAINTS_RE = re.compile(r"(non-linear|linear) constraints:\s*(\d+)")


def circomlib_dir() -> str:
    return groth16py.circomlib_path(2)


def _capturing_stdout(fn: Callable[[], _T]) -> tuple[_T, str]:
    """Run fn with file descriptor 1 redirected: the circom compiler inside groth16py prints its
    statistics (constraint counts) there, from Rust, bypassing sys.stdout."""
    with _STDOUT_LOCK, tempfile.TemporaryFile() as tmp:
        sys.stdout.flush()
        saved = os.dup(1)
        try:
            os.dup2(tmp.fileno(), 1)
            result = fn()
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
        tmp.seek(0)
        return result, tmp.read().decode("utf-8", errors="replace")


def constraints_from_log(log: str) -> int:
    """Total constraints (non-linear + linear) from circom's statistics output; -1 if absent."""
    found = _CONSTRAINTS_RE.findall(log)
    return sum(int(v) for _, v in found) if found else -1


def dev_setup(main_circom: Path, libs: Sequence[str]) -> tuple[groth16py.ProvingKey, bytes, int]:
    """Compile and run the single-party setup. Returns (proving key, canonical vkey, constraints)."""
    (pk, vk), log = _capturing_stdout(
        lambda: groth16py.setup_circom(str(main_circom), list(libs))
    )
    return pk, canonical_vkey(vk.to_json()), constraints_from_log(log)


def import_ceremony(
    zkey: Path, main_circom: Path, libs: Sequence[str]
) -> tuple[groth16py.ProvingKey, bytes, int]:
    """Import a snarkjs Groth16 `.zkey` for the circuit in main_circom (compiled here too).
    A file that is not such a key is FaultproofError(BAD_REQUEST) naming it."""
    try:
        (pk, vk), log = _capturing_stdout(
            lambda: groth16py.import_zkey(str(zkey), str(main_circom), list(libs))
        )
    except groth16py.SetupError as e:
        raise FaultproofError(Reason.BAD_REQUEST, f"{zkey} is not a snarkjs Groth16 .zkey for this circuit ({e}); "
                              "give the ceremony's final .zkey") from None
    return pk, canonical_vkey(vk.to_json()), constraints_from_log(log)


def save_proving_key(pk: groth16py.ProvingKey, path: Path) -> None:
    pk.save(str(path))


def load_proving_key(path: Path) -> groth16py.ProvingKey:
    return groth16py.ProvingKey.load(str(path))


def prove(pk: groth16py.ProvingKey, inputs: dict[str, Any]) -> bytes:
    """Witness (wasmi) + Groth16 proof. Raises groth16py.WitnessError on malformed inputs."""
    return bytes(groth16py.prove(pk, inputs))


def prove_wtns(pk: groth16py.ProvingKey, wtns: Path) -> bytes:
    """Groth16 proof from a ready `.wtns` witness file (no WebAssembly; releases the GIL)."""
    return bytes(groth16py.prove_wtns(pk, str(wtns)))


_VERIFIERS: OrderedDict[bytes, groth16py.Verifier] = OrderedDict()
_VERIFIERS_MAX = 32
_VERIFIERS_LOCK = threading.Lock()


def verifier(canonical: bytes) -> groth16py.Verifier:
    """A prepared verifier for a canonical vkey, cached (preparing costs a few pairings)."""
    with _VERIFIERS_LOCK:
        v = _VERIFIERS.get(canonical)
        if v is not None:
            _VERIFIERS.move_to_end(canonical)
            return v
    v = groth16py.Verifier(groth16py.VerifyingKey.from_snarkjs(canonical.decode()))
    with _VERIFIERS_LOCK:
        _VERIFIERS[canonical] = v
        while len(_VERIFIERS) > _VERIFIERS_MAX:
            _VERIFIERS.popitem(last=False)
    return v


def n_public(canonical: bytes) -> int:
    return int(groth16py.VerifyingKey.from_snarkjs(canonical.decode()).n_public)


def verify(canonical: bytes, proof: bytes, signals: Sequence[int]) -> bool:
    """Pairing check. The caller has checked lengths and ranges; groth16py errors count as False."""
    try:
        return bool(verifier(canonical).verify(proof, list(signals)))
    except Exception:
        return False
    except BaseException as e:  # pyo3 PanicException derives from BaseException
        if isinstance(e, KeyboardInterrupt | SystemExit | GeneratorExit):
            raise
        return False
