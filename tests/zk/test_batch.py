"""Batch verification (mcl, random linear combination, split on failure) against groth16py.

Every test compares per-proof verdicts of `faultproof.zk.batch` (through `circuit.verify_many`)
with groth16py's one-at-a-time `verify`, the reference: valid proofs, tampered proofs, a G2 point
on the twist but outside the prime-order subgroup, and batches with one bad proof among many.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

import pytest

from faultproof.errors import DecodeError, FaultproofError
from faultproof.zk import BuiltCircuit, Witness, batch, prove, verify
from faultproof.zk.circuit import verify_many
from faultproof.zk.encoding import Q, R, check_proof_points
from faultproof.zk.pool import ProofPool

from .cases import CASES
from .conftest import N

Item = tuple[bytes, list[int]]


@pytest.fixture(scope="module")
def honest(built: BuiltCircuit) -> list[Item]:
    out = []
    for case in CASES.values():
        w = Witness.build(readings=case.readings, timestamps=case.timestamps,
                          blindings=case.blindings, c_start=case.c_start, t_start=case.t_start,
                          params=case.params, n=N)
        out.append((prove(built, w), w.public.as_list()))
    return out


def reference(built: BuiltCircuit, items: Sequence[Item]) -> list[bool]:
    return [verify(built.vkey, p, s) for p, s in items]


def words(proof: bytes) -> list[int]:
    return [int.from_bytes(proof[i : i + 32], "big") for i in range(0, 256, 32)]


def pack(w: Sequence[int]) -> bytes:
    return b"".join(v.to_bytes(32, "big") for v in w)


def tampered(honest: list[Item]) -> list[Item]:
    """40+ bad items: bit flips in every word, swapped and negated points, wrong signals."""
    out: list[Item] = []
    for k, (proof, signals) in enumerate(honest):
        w = words(proof)
        for j in range(8):  # a flipped low bit: off the curve, or another point
            v = list(w)
            v[j] ^= 1
            out.append((pack(v), signals))
        out.append((pack(w[6:8] + w[2:6] + w[0:2]), signals))  # A and C swapped: both on G1
        out.append((pack([w[0], (Q - w[1]) % Q] + w[2:]), signals))  # -A
        bumped = list(signals)
        bumped[k] = (bumped[k] + 1) % R
        out.append((proof, bumped))
        other = honest[(k + 1) % len(honest)]
        out.append((proof, other[1]))  # another kind's statement
    return out


def _fp2_mul(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    return ((a[0] * b[0] - a[1] * b[1]) % Q, (a[0] * b[1] + a[1] * b[0]) % Q)


def _fp_sqrt(v: int) -> int | None:
    r = pow(v, (Q + 1) // 4, Q)
    return r if r * r % Q == v % Q else None


def _fp2_sqrt(a: tuple[int, int]) -> tuple[int, int] | None:
    a0, a1 = a
    norm = _fp_sqrt((a0 * a0 + a1 * a1) % Q)
    if norm is None:
        return None
    inv2 = pow(2, Q - 2, Q)
    for d in ((a0 + norm) * inv2 % Q, (a0 - norm) * inv2 % Q):
        x0 = _fp_sqrt(d)
        if x0:
            x1 = a1 * pow(2 * x0, Q - 2, Q) % Q
            if _fp2_mul((x0, x1), (x0, x1)) == (a0 % Q, a1 % Q):
                return (x0, x1)
    return None


def twist_point_outside_g2(seed: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """A point on y^2 = x^3 + 3/(9+u) that is (overwhelmingly likely) not in the r-torsion."""
    b2 = (19485874751759354771024239261021720505790618469301721065564631296452457478373,
          266929791119991161246907387137283842545076965332900288569378510910307636690)
    rng = random.Random(seed)
    while True:
        x = (rng.randrange(Q), rng.randrange(Q))
        x3 = _fp2_mul(_fp2_mul(x, x), x)
        y = _fp2_sqrt(((x3[0] + b2[0]) % Q, (x3[1] + b2[1]) % Q))
        if y is not None:
            return x, y


def test_batch_verifier_loads_for_alt_bn128() -> None:
    assert batch.available()


def test_valid_proofs_verify_in_one_batch(built: BuiltCircuit, honest: list[Item]) -> None:
    items = [honest[i % len(honest)] for i in range(64)]
    assert verify_many(built, items, engine="batch") == [True] * 64
    assert reference(built, honest) == [True] * len(honest)


def test_tampered_proofs_get_the_reference_verdicts(built: BuiltCircuit,
                                                    honest: list[Item]) -> None:
    bad = tampered(honest)
    assert len(bad) >= 40
    mixed = bad + honest
    random.Random(7).shuffle(mixed)
    want = reference(built, mixed)
    assert want.count(True) == len(honest)  # every tampered item is refused by groth16py
    assert verify_many(built, mixed, engine="batch") == want
    assert verify_many(built, mixed, engine="groth16py") == want


def test_a_g2_point_outside_the_subgroup_is_refused(built: BuiltCircuit,
                                                    honest: list[Item]) -> None:
    proof, signals = honest[0]
    w = words(proof)
    (x0, x1), (y0, y1) = twist_point_outside_g2(1)
    evil = pack(w[:2] + [x1, x0, y1, y0] + w[6:])
    check_proof_points(evil)  # on the twist curve: only the subgroup check can refuse it
    items = [honest[1], (evil, signals), honest[2]]
    assert reference(built, items) == [True, False, True]
    assert verify_many(built, items, engine="batch") == [True, False, True]


@pytest.mark.parametrize("where", [0, 31, 63])
def test_one_bad_proof_in_a_batch_is_found(built: BuiltCircuit, honest: list[Item],
                                           where: int) -> None:
    items = [honest[i % len(honest)] for i in range(64)]
    proof, signals = items[where]
    items[where] = (proof, [signals[0], (signals[1] + 1) % R, *signals[2:]])
    want = [i != where for i in range(64)]
    assert reference(built, items) == want
    assert verify_many(built, items, engine="batch") == want


def test_garbage_items_are_false_and_a_bad_key_raises(built: BuiltCircuit,
                                                      honest: list[Item]) -> None:
    proof, signals = honest[0]
    items: list[tuple[bytes, list[int]]] = [
        (proof[:-1], signals), (b"\xff" * 256, signals), (proof, signals[:-1]),
        (proof, [*signals[:-1], R]), (proof, [*signals[:-1], -1]), (proof, signals)]
    assert verify_many(built, items, engine="batch") == [False] * 5 + [True]
    with pytest.raises(DecodeError):
        verify_many(b'{"protocol": "groth16"}', items)


def test_pool_coalesces_concurrent_verifies(built: BuiltCircuit, honest: list[Item]) -> None:
    async def run() -> list[bool]:
        async with ProofPool(2, verify_batch=16) as pool:
            jobs = []
            for i in range(48):
                proof, signals = honest[i % len(honest)]
                if i == 20:
                    signals = [(signals[0] + 1) % R, *signals[1:]]
                jobs.append(pool.verify(built.vkey, proof, signals))
            return list(await asyncio.gather(*jobs))

    assert asyncio.run(run()) == [i != 20 for i in range(48)]



def test_fast_g2_subgroup_check_equals_mcls(honest: list[Item]) -> None:
    points = []
    for proof, _ in honest:  # in G2
        w = words(proof)
        points.append((w[3], w[2], w[5], w[4]))
    for seed in range(12):  # on the twist, not in G2
        (x0, x1), (y0, y1) = twist_point_outside_g2(seed)
        points.append((x0, x1, y0, y1))
    got = [batch.g2_in_subgroup(*p) for p in points]
    assert got == [batch.g2_in_subgroup_reference(*p) for p in points]
    assert got == [True] * len(honest) + [False] * 12


def test_without_mcl_verify_many_falls_back_to_groth16py(
    built: BuiltCircuit, honest: list[Item], monkeypatch: pytest.MonkeyPatch
) -> None:
    def unusable(_: bytes) -> batch.BatchVerifier:
        raise batch.BatchUnavailable("mclbn256 is not usable: test")

    monkeypatch.setattr(batch, "verifier", unusable)
    items = [*honest, (honest[0][0], honest[1][1])]
    want = [True] * len(honest) + [False]
    assert verify_many(built, items) == want  # auto: groth16py, one by one
    with pytest.raises(FaultproofError):
        verify_many(built, items, engine="batch")
