"""The circuit itself (n = 4, groth16py): honest windows prove, and nothing else does.

Every soundness test bypasses the Python pre-checks: it builds or tampers the input dict itself
(`raw_inputs`) and hands it straight to the backend's prover (`prove_unchecked`). A case passes if
the prover refuses or its proof does not verify for the claimed public signals.
"""

from __future__ import annotations

import random
import time
from typing import Any

import pytest

from faultproof.chain import enc
from faultproof.zk import (
    BuiltCircuit,
    Kind,
    ProvingError,
    Witness,
    build,
    export_vkey,
    prove,
    trigger_holds,
    verify,
    vkey_hash,
)
from faultproof.zk.circuit import CIRCUITS_DIR, main_source, public_of
from faultproof.zk.encoding import R, canonical_vkey

from .cases import CASES, Case, encoded
from .conftest import N, proves_and_verifies, raw_inputs


def case_inputs(case: Case, **over: Any) -> dict[str, Any]:
    kind, T, K, lo, hi, G = case.params.as_tuple()
    args: dict[str, Any] = {"c_start": case.c_start, "t_start": case.t_start, "kind": kind,
                            "T": T, "K": K, "lo": lo, "hi": hi, "G": G}
    r_enc = over.pop("r", encoded(case))
    ts = over.pop("t", list(case.timestamps))
    ss = over.pop("s", list(case.blindings))
    args.update(over)
    return raw_inputs(r_enc, ts, ss, **args)


def witness(case: Case) -> Witness:
    return Witness.build(readings=case.readings, timestamps=case.timestamps,
                         blindings=case.blindings, c_start=case.c_start, t_start=case.t_start,
                         params=case.params, n=N)


@pytest.fixture(scope="module")
def honest(built: BuiltCircuit) -> dict[Kind, tuple[bytes, list[int]]]:
    out = {}
    for kind, case in CASES.items():
        w = witness(case)
        out[kind] = (prove(built, w), w.public.as_list())
    return out


# ---------------------------------------------------------------- completeness


def test_meta(built: BuiltCircuit) -> None:
    m = built.meta
    assert (m.n, m.layout_version, m.production, m.kinds) == (N, 1, False, 31)
    assert m.ceremony_transcript_hash == bytes(32)
    assert 2000 < m.constraints < 2300
    assert m.vkey_hash == vkey_hash(export_vkey(built))


@pytest.mark.parametrize("kind", list(Kind))
def test_each_kind_proves_at_exactly_k(built: BuiltCircuit, honest: dict, kind: Kind) -> None:
    proof, signals = honest[kind]
    assert len(proof) == 256
    assert verify(export_vkey(built), proof, signals)
    assert signals[4] == kind


def test_raw_inputs_agree_with_witness() -> None:
    for case in CASES.values():
        assert case_inputs(case) == witness(case).to_input()


def test_cache_hit_is_fast(built: BuiltCircuit) -> None:
    t0 = time.perf_counter()
    again = build(N)
    assert time.perf_counter() - t0 < 0.5
    assert again.vkey == built.vkey and again.path == built.path


def test_shipped_main_files_match_generated() -> None:
    for n in (16, 64):
        assert (CIRCUITS_DIR / f"faultproof_n{n}.circom").read_text() == main_source(n)


def test_vkey_canonical(built: BuiltCircuit) -> None:
    import json

    vk = export_vkey(built)
    obj = json.loads(vk)
    assert canonical_vkey(json.dumps(obj, indent=3)) == vk
    assert canonical_vkey(obj | {"vk_alphabeta_12": [["1", "2"]]}) == vk
    assert b" " not in vk and b"\n" not in vk
    assert list(obj) == sorted(obj)
    assert built.vkey_path.read_bytes() == vk


@pytest.mark.parametrize("seed", range(3))
def test_python_rule_agrees_with_circuit(built: BuiltCircuit, seed: int) -> None:
    """Random windows and parameters: the circuit proves exactly when trigger_holds says so."""
    rng = random.Random(seed)
    agreed = 0
    for _ in range(8):
        readings = [rng.choice([-2, 0, 1, 1, 5, 5, 9]) for _ in range(N)]
        ts, t = [], 100
        for _ in range(N):
            t += rng.choice([1, 2, 5])
            ts.append(t)
        kind = rng.randint(1, 5)
        T = K = lo = hi = G = 0
        if kind in (1, 2):
            T, K = enc(rng.choice([0, 1, 5])), rng.randint(1, N)
        elif kind == 3:
            K = rng.randint(2, N)
        elif kind == 4:
            lo, hi, K = enc(0), enc(rng.choice([1, 5])), rng.randint(1, N)
        else:
            G = rng.choice([2, 3, 5, 6])
        expected = trigger_holds(kind, T, K, lo, hi, G, readings, ts, 100)
        inputs = raw_inputs([enc(r) for r in readings], ts, [1, 2, 3, 4], t_start=100,
                            kind=kind, T=T, K=K, lo=lo, hi=hi, G=G)
        assert proves_and_verifies(built, inputs) == expected, (readings, ts, kind, T, K, lo, hi, G)
        agreed += 1
    assert agreed == 8


# ---------------------------------------------------------------- soundness


@pytest.mark.parametrize("kind", list(Kind))
def test_trigger_not_met(built: BuiltCircuit, kind: Kind) -> None:
    case = CASES[kind]
    k, T, K, lo, hi, G = case.not_met.as_tuple()
    assert not proves_and_verifies(built, case_inputs(case, K=K, G=G))


def test_prove_refuses_unsatisfied_witness(built: BuiltCircuit) -> None:
    case = CASES[Kind.COUNT]
    with pytest.raises(ProvingError):
        prove(built, case_inputs(case, K=3))


@pytest.mark.parametrize("field,index", [("r", 1), ("r", 3), ("t", 0), ("t", 3), ("s", 2)])
def test_private_value_changed(built: BuiltCircuit, field: str, index: int) -> None:
    """Change one private value but keep the honest public signals (c_end of the real window)."""
    case = CASES[Kind.COUNT]
    honest_inputs = case_inputs(case)
    tampered = dict(honest_inputs)
    tampered[field] = list(honest_inputs[field])
    tampered[field][index] += 1
    tampered["t_end"] = honest_inputs["t_end"]
    assert not proves_and_verifies(built, tampered)
    # and a consistent chain over the changed window does not give the honest c_end
    rechained = case_inputs(case, **{field: tampered[field]})
    assert rechained["c_end"] != honest_inputs["c_end"]


def test_c_start_c_end_swapped(built: BuiltCircuit, honest: dict) -> None:
    inputs = case_inputs(CASES[Kind.RUN])
    swapped = inputs | {"c_start": inputs["c_end"], "c_end": inputs["c_start"]}
    assert not proves_and_verifies(built, swapped)
    proof, signals = honest[Kind.RUN]
    s = list(signals)
    s[0], s[1] = s[1], s[0]
    assert not verify(built.vkey, proof, s)


@pytest.mark.parametrize("kind", list(Kind))
def test_each_public_signal_altered(built: BuiltCircuit, honest: dict, kind: Kind) -> None:
    proof, signals = honest[kind]
    for i in range(10):
        for delta in (1, R - 1):
            s = list(signals)
            s[i] = (s[i] + delta) % R
            assert not verify(built.vkey, proof, s), (i, delta)


@pytest.mark.parametrize("param,value", [("T", enc(49)), ("K", 1), ("lo", enc(1)), ("hi", enc(1)),
                                         ("G", 2), ("t_start", 900), ("t_end", 1500)])
def test_public_parameter_altered_in_witness(built: BuiltCircuit, param: str, value: int) -> None:
    """A prover that puts other parameters in the witness than its claim gets no valid proof."""
    case = CASES[Kind.COUNT]
    inputs = case_inputs(case)
    claimed = public_of(inputs)
    assert not proves_and_verifies(built, inputs | {param: value}, public=claimed)


def test_proof_with_another_windows_signals(built: BuiltCircuit, honest: dict) -> None:
    proof_a, signals_a = honest[Kind.COUNT]
    for kind in (Kind.RUN, Kind.STUCK, Kind.OUTSIDE, Kind.DROPOUT):
        proof_b, signals_b = honest[kind]
        assert not verify(built.vkey, proof_a, signals_b)
        assert not verify(built.vkey, proof_b, signals_a)
    # same parameters, another window
    other = Witness.build(readings=(90, 90, 1, 1), timestamps=(1100, 1200, 1300, 1400),
                          blindings=(5, 6, 7, 8), c_start=1, t_start=1000,
                          params=CASES[Kind.COUNT].params)
    assert not verify(built.vkey, proof_a, other.public.as_list())


@pytest.mark.parametrize("ts", [(1100, 1100, 1300, 1400), (1100, 1050, 1300, 1400),
                                (1000, 1200, 1300, 1400), (1100, 1200, 1300, 1300)])
def test_timestamps_not_increasing(built: BuiltCircuit, ts: tuple[int, ...]) -> None:
    case = CASES[Kind.COUNT]
    assert not proves_and_verifies(built, case_inputs(case, t=list(ts)))


@pytest.mark.parametrize("t_end", [1300, 1399, 1401, 1500])
def test_t_end_is_the_last_timestamp(built: BuiltCircuit, t_end: int) -> None:
    case = CASES[Kind.DROPOUT]
    assert not proves_and_verifies(built, case_inputs(case) | {"t_end": t_end})


def test_timestamp_wraps_the_field(built: BuiltCircuit) -> None:
    """t_2 = t_1 - 1 taken mod p would be 'larger' if the check were on field values."""
    case = CASES[Kind.COUNT]
    assert not proves_and_verifies(built, case_inputs(case, t=[1100, R - 5, 1300, 1400]))
    assert not proves_and_verifies(built, case_inputs(case, t=[1100, 1200, 1300, 2**48]),)


@pytest.mark.parametrize("bad", [2**32, 2**32 + 60, R - 1, R - 2**31])
def test_reading_outside_32_bits(built: BuiltCircuit, bad: int) -> None:
    """Readings outside int32 (enc(r) >= 2^32, or negative mod p) cannot be proved, even where
    the out-of-range value would make the trigger hold."""
    case = CASES[Kind.COUNT]
    r = encoded(case)
    r[3] = bad
    assert not proves_and_verifies(built, case_inputs(case, r=r))
    stuck = CASES[Kind.STUCK]
    assert not proves_and_verifies(built, case_inputs(stuck, r=[1, bad, bad, bad]))


def test_public_value_at_or_above_p(built: BuiltCircuit, honest: dict) -> None:
    proof, signals = honest[Kind.STUCK]
    for i in range(10):
        s = list(signals)
        s[i] += R  # the same field element, but not < p
        assert not verify(built.vkey, proof, s)
    # a prover handed c_start + p reduces it: the proof is for c_start, never for c_start + p
    inputs = case_inputs(CASES[Kind.STUCK])
    bumped = inputs | {"c_start": inputs["c_start"] + R}
    assert not proves_and_verifies(built, bumped)


@pytest.mark.parametrize("kind", [0, 6, 7, R - 1, 2**32])
def test_unknown_kind(built: BuiltCircuit, kind: int) -> None:
    case = CASES[Kind.COUNT]
    k, T, K, lo, hi, G = case.params.as_tuple()
    assert not proves_and_verifies(built, case_inputs(case, kind=kind))
    assert not proves_and_verifies(built, case_inputs(case, kind=kind, T=0, K=0))


ALWAYS_TRUE = [
    # (name, case kind, overrides): each would make (or look like it makes) the trigger hold
    ("count K=0", Kind.COUNT, {"K": 0}),
    ("run K=0", Kind.RUN, {"K": 0}),
    ("stuck K=1", Kind.STUCK, {"K": 1}),
    ("stuck K=0", Kind.STUCK, {"K": 0}),
    ("outside K=0", Kind.OUTSIDE, {"K": 0}),
    ("outside lo>hi", Kind.OUTSIDE, {"lo": enc(11), "hi": enc(-6), "K": 4}),
    ("dropout G=1", Kind.DROPOUT, {"G": 1}),
    ("dropout G=0", Kind.DROPOUT, {"G": 0}),
    ("dropout G=p-1 (negative)", Kind.DROPOUT, {"G": R - 1}),
    ("count K=p-1 (negative)", Kind.COUNT, {"K": R - 1}),
    ("count K>n", Kind.COUNT, {"K": N + 1}),
    ("count T>=2^32", Kind.COUNT, {"T": 2**32 + 55, "K": 4}),
    ("count T=p-1 (negative)", Kind.COUNT, {"T": R - 1, "K": 4}),
    ("outside lo>=2^32", Kind.OUTSIDE, {"lo": 2**32 + 5, "K": 4}),
    ("outside hi>=2^32 with lo", Kind.OUTSIDE, {"lo": 2**32, "hi": 2**32 + 3, "K": 4}),
    ("dropout G>=2^48", Kind.DROPOUT, {"G": 2**48 + 2}),
    ("count with unused lo", Kind.COUNT, {"lo": enc(100), "K": 4}),
    ("count with unused hi", Kind.COUNT, {"hi": enc(-100), "K": 4}),
    ("run with unused G", Kind.RUN, {"G": 5}),
    ("stuck with unused T", Kind.STUCK, {"T": 1}),
    ("outside with unused T", Kind.OUTSIDE, {"T": enc(-100), "K": 4}),
    ("dropout with unused K", Kind.DROPOUT, {"K": 1}),
    ("dropout with unused T", Kind.DROPOUT, {"T": 1}),
]


@pytest.mark.parametrize("name,kind,over", ALWAYS_TRUE, ids=[a[0] for a in ALWAYS_TRUE])
def test_invalid_or_always_true_parameters(built: BuiltCircuit, name: str, kind: Kind,
                                           over: dict[str, int]) -> None:
    assert not proves_and_verifies(built, case_inputs(CASES[kind], **over))


@pytest.mark.parametrize("sel", [[0, 0, 0, 0], [1, 1, 0, 0], [0, 1, 0, 0], [2, 0, R - 1, 0],
                                 [0, 0, 1, 1]])
def test_dropout_selector_tampered(built: BuiltCircuit, sel: list[int]) -> None:
    """The prover picks the gap; picking a short one, several, or a non-bit fails."""
    case = CASES[Kind.DROPOUT]  # gaps 100, 100, 300, 100; G = 300
    assert not proves_and_verifies(built, case_inputs(case, drop_sel=sel))
    # two 100 ms gaps do not add up to a 200 ms dropout
    assert not proves_and_verifies(built, case_inputs(case, G=200, drop_sel=[1, 1, 0, 0]))


def test_dropout_selector_not_bits(built: BuiltCircuit) -> None:
    """gaps 100, 100, 150, 100 and G = 200: -1 * 100 + 2 * 150 = 200 with a selector summing to
    1; only the booleanity of each selector entry refuses it."""
    ts = [1100, 1200, 1350, 1450]
    honest = raw_inputs([enc(1)] * 4, ts, [1, 2, 3, 4], t_start=1000, kind=5, G=150)
    assert proves_and_verifies(built, honest)
    sneaky = raw_inputs([enc(1)] * 4, ts, [1, 2, 3, 4], t_start=1000, kind=5, G=200,
                        drop_sel=[0, R - 1, 2, 0])
    assert not proves_and_verifies(built, sneaky)
