"""Shared fixtures for the zk tests: small circuits built once per run (disk cache + session
fixtures), and a raw input builder that bypasses every Python check so soundness tests can hand
tampered witnesses straight to the prover."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import light_poseidon_python as _lp
import pytest

from faultproof.zk import BuiltCircuit, ProvingError, build, prove_unchecked, verify
from faultproof.zk.circuit import public_of
from faultproof.zk.encoding import R
from faultproof.zk.statement import drop_selector

N = 4  # window size of the test circuit
CEREMONY_N = 2  # smallest circuit: 1,238 constraints, fits a 2^11 powers of tau


_HASHER4 = _lp.Hasher(4)


def field_poseidon(inputs: Sequence[int]) -> int:
    """circomlib Poseidon(4) of any four integers, each reduced mod p first."""
    return int(_HASHER4.hash_bytes_be([(x % R).to_bytes(32, "big") for x in inputs]), 16)


@pytest.fixture(scope="session")
def built() -> BuiltCircuit:
    return build(N)


def raw_inputs(
    r_enc: Sequence[int],
    ts: Sequence[int],
    ss: Sequence[int],
    *,
    c_start: int = 1234567,
    t_start: int = 1_000,
    kind: int,
    T: int = 0,
    K: int = 0,
    lo: int = 0,
    hi: int = 0,
    G: int = 0,
    drop_sel: Sequence[int] | None = None,
) -> dict[str, Any]:
    """A circuit input dict with a consistent chain and NO validity checks of any kind.

    Readings are given already encoded (any field element); the chain is hashed with the same
    light-poseidon call faultproof.chain uses, minus its range checks (and it accepts every
    element of the field, up to p - 1).
    """
    c = c_start
    for t, r, s in zip(ts, r_enc, ss, strict=True):
        c = field_poseidon([c, t, r, s])
    return {
        "c_start": c_start, "c_end": c, "t_start": t_start, "t_end": ts[-1], "kind": kind,
        "T": T, "K": K, "lo": lo, "hi": hi, "G": G,
        "r": list(r_enc), "t": list(ts), "s": list(ss),
        "drop_sel": list(drop_sel) if drop_sel is not None else drop_selector(ts, t_start, kind, G),
    }


def proves_and_verifies(built: BuiltCircuit, inputs: dict[str, Any],
                        public: Sequence[int] | None = None) -> bool:
    """Whether the backend's prover, handed these inputs with no checks, yields a proof that
    verifies for `public` (default: the public part of the inputs).

    Always groth16py's WebAssembly witness path: it checks no constraint, so a tampered witness
    reaches the verifier and the test exercises the R1CS itself (the native generator would
    refuse most of them before proving)."""
    try:
        proof = prove_unchecked(built, inputs, engine="wasm")
    except ProvingError:
        return False
    signals = list(public) if public is not None else public_of(inputs)
    return verify(built.vkey, proof, signals)
