"""Hostile proof bytes and signals: verify answers False (never raises, never hangs)."""

from __future__ import annotations

import os
import random
import time
from typing import Any

import pytest

from faultproof.errors import DecodeError
from faultproof.zk import BuiltCircuit, TriggerParams, Witness, prove, verify
from faultproof.zk.encoding import Q, R, check_proof_points

from .cases import CASES
from .twist import pack, twist_point_outside_g2, with_b, words


@pytest.fixture(scope="module")
def good(built: BuiltCircuit) -> tuple[bytes, list[int]]:
    case = CASES[TriggerParams.count(0, 1).kind]
    w = Witness.build(readings=case.readings, timestamps=case.timestamps,
                      blindings=case.blindings, c_start=case.c_start, t_start=case.t_start,
                      params=case.params)
    return prove(built, w), w.public.as_list()


def garbage_proofs(proof: bytes) -> dict[str, Any]:
    w = words(proof)
    out: dict[str, Any] = {
        "empty": b"",
        "truncated": proof[:255],
        "one byte more": proof + b"\0",
        "double": proof * 2,
        "zeros": bytes(256),
        "ones": b"\xff" * 256,
        "random": random.Random(1).randbytes(256),
        "str": proof.hex(),
        "none": None,
        "int": 12345,
        "list": list(proof),
    }
    for i in range(8):
        ws = list(w)
        ws[i] = (ws[i] + 1) % Q
        out[f"word {i} + 1 (off curve)"] = pack(ws)
        ws = list(w)
        ws[i] = ws[i] + Q  # same residue, not canonical
        if ws[i] < 2**256:
            out[f"word {i} + q"] = pack(ws)
    ws = list(w)
    ws[2], ws[3], ws[4], ws[5] = ws[3], ws[2], ws[5], ws[4]
    out["G2 words unswapped"] = pack(ws)
    ws = list(w)
    ws[1] = (Q - ws[1]) % Q  # -a: on the curve, wrong proof
    out["a negated"] = pack(ws)
    ws = list(w)
    ws[0:2] = ws[6:8]
    out["a = c"] = pack(ws)
    out["b on twist, not in G2"] = with_b(proof, twist_point_outside_g2(7))
    return out


def test_twist_point_is_on_curve_but_rejected(good: tuple[bytes, list[int]]) -> None:
    proof, _ = good
    check_proof_points(proof)
    bad = garbage_proofs(proof)["b on twist, not in G2"]
    check_proof_points(bad)  # on the twist curve: only the subgroup check can catch it


def test_garbage_proofs_are_false(built: BuiltCircuit, good: tuple[bytes, list[int]]) -> None:
    proof, signals = good
    assert verify(built.vkey, proof, signals)
    for name, bad in garbage_proofs(proof).items():
        t0 = time.perf_counter()
        assert verify(built.vkey, bad, signals) is False, name
        assert time.perf_counter() - t0 < 1.0, name


def test_garbage_signals_are_false(built: BuiltCircuit, good: tuple[bytes, list[int]]) -> None:
    proof, signals = good
    cases: dict[str, Any] = {
        "none": [],
        "nine": signals[:9],
        "eleven": signals + [0],
        "twenty": signals * 2,
        "p": [R] + signals[1:],
        "p + x": [signals[0] + R] + signals[1:],
        "huge": signals[:9] + [2**4000],
        "negative": signals[:9] + [-1],
        "negative alias": [signals[0] - R] + signals[1:],
        "float": [float(signals[0])] + signals[1:],
        "str": [str(v) for v in signals],
        "bool": [True] + signals[1:],
        "bytes": b"\x00" * 10,
        "string": "0123456789",
        "none-type": None,
        "nested": [signals],
    }
    for name, bad in cases.items():
        t0 = time.perf_counter()
        assert verify(built.vkey, proof, bad) is False, name
        assert time.perf_counter() - t0 < 1.0, name


def test_random_bytes_never_crash(built: BuiltCircuit, good: tuple[bytes, list[int]]) -> None:
    _, signals = good
    for _ in range(200):
        assert verify(built.vkey, os.urandom(256), signals) is False


def test_bad_verification_key_is_decode_error(good: tuple[bytes, list[int]]) -> None:
    proof, signals = good
    for bad in (b"", b"{", b"[]", b'{"protocol":"groth16"}', b"\xff\xfe", b"x" * 100_000):
        with pytest.raises(DecodeError):
            verify(bad, proof, signals)
