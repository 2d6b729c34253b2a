"""The native (C++) witness generator against the WebAssembly reference (issue 15).

For every trigger kind the C++ generator must give the same `.wtns` bytes as circom's WebAssembly
generator of the same sources (run by snarkjs), and a proof from them must verify under the
groth16py key (so its wire numbering is groth16py's). Without a generator the prover falls back to
groth16py's WebAssembly path, and a refused witness is a ProvingError on both paths.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from faultproof.zk import BuiltCircuit, Kind, ProvingError, Witness, circuit, native, prove, verify
from faultproof.zk import backend_groth16py as g16
from faultproof.zk import backend_snarkjs as sjs
from faultproof.zk.circuit import ALL_KINDS, main_source, prove_unchecked
from faultproof.zk.encoding import R

from .cases import CASES, Case
from .conftest import N


def witness_of(case: Case) -> Witness:
    return Witness.build(readings=case.readings, timestamps=case.timestamps,
                         blindings=case.blindings, c_start=case.c_start, t_start=case.t_start,
                         params=case.params, n=N)


@pytest.fixture(scope="module")
def generator() -> Path:
    return circuit.build_native(N)  # built once into the circuit cache (~20-60 s)


@pytest.fixture(scope="module")
def wasm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """circom's WebAssembly witness generator for the same sources groth16py compiles."""
    out = tmp_path_factory.mktemp("wasm")
    main = out / "main.circom"
    main.write_text(main_source(N, ALL_KINDS))
    _, wasm_path, _ = sjs.compile_circuit(main, out, [str(circuit.CIRCUITS_DIR), g16.circomlib_dir()])
    return wasm_path


def wasm_witness(wasm_path: Path, inputs: dict[str, Any], tmp: Path) -> bytes:
    (tmp / "in.json").write_text(json.dumps(
        {k: [str(x) for x in v] if isinstance(v, list) else str(v) for k, v in inputs.items()}))
    sjs.snarkjs("wtns", "calculate", wasm_path, tmp / "in.json", tmp / "w.wtns")
    return (tmp / "w.wtns").read_bytes()


@pytest.mark.parametrize("kind", list(Kind), ids=lambda k: k.name.lower())
def test_same_witness_bytes_as_webassembly(kind: Kind, generator: Path, wasm: Path,
                                           tmp_path: Path) -> None:
    inputs = witness_of(CASES[kind]).to_input()
    got = native.witness(generator, inputs)
    assert got[:4] == b"wtns"
    assert got == wasm_witness(wasm, inputs, tmp_path)


@pytest.mark.parametrize("kind", list(Kind), ids=lambda k: k.name.lower())
def test_native_proof_verifies_under_the_groth16py_key(kind: Kind, built: BuiltCircuit,
                                                       generator: Path) -> None:
    w = witness_of(CASES[kind])
    proof = prove(built, w, engine="native")
    assert verify(built.vkey, proof, w.public.as_list())
    # ... and only for its own statement.
    other = w.public.as_list()
    other[1] = (other[1] + 1) % R
    assert not verify(built.vkey, proof, other)


def test_auto_uses_native_when_built_and_webassembly_otherwise(
    built: BuiltCircuit, generator: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert circuit.native_generator(built) == generator
    calls: list[str] = []
    real_native, real_wasm = native.prove, g16.prove
    monkeypatch.setattr(native, "prove", lambda *a: calls.append("native") or real_native(*a))
    monkeypatch.setattr(g16, "prove", lambda *a: calls.append("wasm") or real_wasm(*a))
    w = witness_of(CASES[Kind.COUNT])
    assert verify(built.vkey, prove(built, w), w.public.as_list())
    monkeypatch.setattr(native, "find", lambda *a: None)  # as on a machine without a compiler
    assert verify(built.vkey, prove(built, w), w.public.as_list())
    assert calls == ["native", "wasm"]
    with pytest.raises(ProvingError, match="no native witness generator"):
        prove(built, w, engine="native")


def test_native_refuses_an_unsatisfied_witness(built: BuiltCircuit, generator: Path) -> None:
    case = CASES[Kind.COUNT]
    inputs = witness_of(case).to_input()
    inputs["K"] = case.not_met.K  # the window has 2 readings above T, not 3
    with pytest.raises(ProvingError, match="refused"):
        prove_unchecked(built, inputs, engine="native")
    inputs = witness_of(case).to_input()
    inputs["c_end"] = (inputs["c_end"] + 1) % R  # the chain does not end there
    with pytest.raises(ProvingError):
        prove_unchecked(built, inputs, engine="native")


@pytest.mark.parametrize("bad", [-1, R, "12", 1.5, True], ids=repr)
def test_native_refuses_values_that_are_not_field_elements(built: BuiltCircuit, generator: Path,
                                                           bad: Any) -> None:
    inputs = witness_of(CASES[Kind.STUCK]).to_input()
    inputs["s"][0] = bad
    with pytest.raises(ProvingError, match="not a field element"):
        prove_unchecked(built, inputs, engine="native")


def test_native_refuses_missing_and_misshapen_inputs(built: BuiltCircuit, generator: Path) -> None:
    inputs = witness_of(CASES[Kind.RUN]).to_input()
    del inputs["drop_sel"]
    with pytest.raises(ProvingError):
        prove_unchecked(built, inputs, engine="native")
    inputs = witness_of(CASES[Kind.RUN]).to_input()
    inputs["r"] = inputs["r"][:-1]
    with pytest.raises(ProvingError):
        prove_unchecked(built, inputs, engine="native")
