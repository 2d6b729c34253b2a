"""Cross-checks against the reference toolchain (circom2 + snarkjs from circuits/node_modules).

- every trigger kind: a groth16py proof verifies with snarkjs (one node process for all);
- a snarkjs ceremony at the smallest n (n = 2: 1,238 constraints, powers of tau 2^11) imports
  into groth16py: same canonical verification key, groth16py proofs verify with snarkjs and
  snarkjs proofs verify with groth16py.

The first run makes the powers of tau (~30-60 s on 2 cores) and caches it, with the ceremony's
zkey, under the circuit cache dir; later runs take seconds.
"""

from __future__ import annotations

import hashlib

import pytest

from faultproof.chain import enc
from faultproof.zk import (
    BuiltCircuit,
    Kind,
    ProvingError,
    TriggerParams,
    Witness,
    build,
    prove,
    prove_unchecked,
    verify,
)
from faultproof.zk import backend_snarkjs as sjs

from .cases import CASES
from .conftest import CEREMONY_N, raw_inputs

pytestmark = [
    pytest.mark.slow,
]


@pytest.fixture(scope="module")
def honest(built: BuiltCircuit) -> list[tuple[bytes, list[int]]]:
    out = []
    for case in CASES.values():
        w = Witness.build(readings=case.readings, timestamps=case.timestamps,
                          blindings=case.blindings, c_start=case.c_start, t_start=case.t_start,
                          params=case.params)
        out.append((prove(built, w), w.public.as_list()))
    return out


def test_every_kind_verifies_with_snarkjs(built: BuiltCircuit, honest: list) -> None:
    tampered = []
    for proof, signals in honest:
        s = list(signals)
        s[6] += 1  # K
        tampered.append((proof, s))
    results, _ = sjs.verify_many(built.vkey, honest + tampered)
    assert results == [True] * len(honest) + [False] * len(tampered)
    kinds = [signals[4] for _, signals in honest]
    assert sorted(kinds) == [k.value for k in Kind]


def test_snarkjs_cli_verify(built: BuiltCircuit, honest: list) -> None:
    proof, signals = honest[0]
    assert verify(built.vkey, proof, signals, backend="snarkjs")
    assert not verify(built.vkey, proof, signals[:9] + [signals[9] + 1], backend="snarkjs")


@pytest.fixture(scope="session")
def ceremony() -> BuiltCircuit:
    """A snarkjs single-contributor ceremony for n = 2 (stands in for a production one)."""
    return build(CEREMONY_N, backend="snarkjs")


@pytest.fixture(scope="session")
def imported(ceremony: BuiltCircuit) -> BuiltCircuit:
    return build(CEREMONY_N, zkey=ceremony.zkey_path)


def stuck_window() -> Witness:
    return Witness.build(readings=(-7, -7), timestamps=(20, 30), blindings=(5, 6), c_start=77,
                         t_start=10, params=TriggerParams.stuck(2), n=CEREMONY_N)


def test_ceremony_imports_into_groth16py(ceremony: BuiltCircuit, imported: BuiltCircuit) -> None:
    assert ceremony.meta.constraints == imported.meta.constraints == 1238
    assert imported.meta.production and imported.backend == "groth16py"
    assert imported.meta.ceremony_transcript_hash == hashlib.sha256(
        ceremony.zkey_path.read_bytes()).digest()
    # snarkjs's exported key and groth16py's imported key canonicalise to the same bytes
    assert imported.vkey == ceremony.vkey
    assert imported.vkey_hash == ceremony.vkey_hash

    w = stuck_window()
    g_proof = prove(imported, w)
    s_proof = prove(ceremony, w)  # snarkjs fullprove
    signals = w.public.as_list()
    assert verify(imported.vkey, g_proof, signals)
    assert verify(imported.vkey, s_proof, signals)  # snarkjs proof, groth16py verifier
    results, _ = sjs.verify_many(ceremony.vkey, [(g_proof, signals), (s_proof, signals)])
    assert results == [True, True]


def test_snarkjs_prover_refuses_unsatisfied_witness(ceremony: BuiltCircuit) -> None:
    inputs = raw_inputs([enc(1), enc(2)], [20, 30], [5, 6], t_start=10, kind=3, K=2)
    with pytest.raises(ProvingError):
        prove_unchecked(ceremony, inputs)
