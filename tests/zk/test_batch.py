"""Batch verification (mcl, random linear combination, split on failure) against groth16py.

Every test compares per-proof verdicts of `faultproof.zk.batch` (through `circuit.verify_many`)
with groth16py's one-at-a-time `verify`, the reference: valid proofs, tampered proofs, G2 points
on the twist but outside the prime-order subgroup (random ones, and G + T with T of each prime
order dividing the cofactor: the points the fast subgroup check has to be shown to refuse), and
batches with one or two bad proofs among many. The twist arithmetic here and in tests/zk/twist.py
is plain Python, apart from mcl and groth16py, so it can judge both.
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
from .twist import Fp2, b_point, fp2_mul, pack, twist_point_outside_g2, with_b, words

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


Point = tuple[Fp2, Fp2] | None  # affine; None is the point at infinity


def _fp2_inv(a: Fp2) -> Fp2:
    n = pow((a[0] * a[0] + a[1] * a[1]) % Q, Q - 2, Q)
    return (a[0] * n % Q, -a[1] * n % Q)


def _fp2_sub(a: Fp2, b: Fp2) -> Fp2:
    return ((a[0] - b[0]) % Q, (a[1] - b[1]) % Q)


def ec_add(p: Point, q: Point) -> Point:
    """Affine addition on the twist (any short Weierstrass curve with a = 0)."""
    if p is None:
        return q
    if q is None:
        return p
    (x1, y1), (x2, y2) = p, q
    if x1 == x2:
        if (y1[0] + y2[0]) % Q == 0 and (y1[1] + y2[1]) % Q == 0:
            return None
        slope = fp2_mul(fp2_mul((3, 0), fp2_mul(x1, x1)), _fp2_inv(((2 * y1[0]) % Q,
                                                                     (2 * y1[1]) % Q)))
    else:
        slope = fp2_mul(_fp2_sub(y2, y1), _fp2_inv(_fp2_sub(x2, x1)))
    x3 = _fp2_sub(_fp2_sub(fp2_mul(slope, slope), x1), x2)
    return x3, _fp2_sub(fp2_mul(slope, _fp2_sub(x1, x3)), y1)


def ec_mul(p: Point, k: int) -> Point:
    out: Point = None
    while k:
        if k & 1:
            out = ec_add(out, p)
        p = ec_add(p, p)
        k >>= 1
    return out


def is_probable_prime(n: int) -> bool:
    if n < 4:
        return n in (2, 3)
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for a in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41):
        x = pow(a, d, n)
        if x in (1, n - 1) or a % n == 0:
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


COFACTOR = 2 * Q - R  # #E'(Fp2) = r·c for the BN254 twist


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
    evil = with_b(proof, twist_point_outside_g2(1))
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


def test_the_cofactor_torsion_points_have_the_orders_batch_assumes() -> None:
    """batch._G2_TORSION: one point of each prime order l | c, and those l are all of c, each
    once (so the cofactor group is cyclic and these four points generate every subgroup)."""
    orders = [t[0] for t in batch._G2_TORSION]
    assert all(is_probable_prime(order) for order in orders)
    product = 1
    for order in orders:
        product *= order
    assert product == COFACTOR
    some = twist_point_outside_g2(5)
    assert ec_mul(some, R * COFACTOR) is None  # the group order divides r·c
    assert ec_mul(some, COFACTOR) is not None and ec_mul(some, R) is not None
    for order, x0, x1, y0, y1 in batch._G2_TORSION:
        t = ((x0, x1), (y0, y1))
        assert ec_mul(t, order) is None and t is not None


def test_the_fast_g2_check_refuses_every_cofactor_component(honest: list[Item]) -> None:
    """mcl computes [6u^2]B by GLV, exact only on G2; for B = G + T the fast check holds iff mcl's
    map agrees with psi on T. With the cofactor group cyclic of squarefree order, refusing T of
    each prime order (alone and added to a subgroup point) is refusing every B outside G2."""
    assert batch.g2_fast_check_in_use()
    g = b_point(honest[0][0])
    assert ec_mul(g, R) is None
    for order, x0, x1, y0, y1 in batch._G2_TORSION:
        t = ((x0, x1), (y0, y1))
        g_plus_t = ec_add(g, t)
        assert g_plus_t is not None
        for (a0, a1), (b0, b1) in (t, g_plus_t):
            assert batch._g2_set(a0, a1, b0, b1) is not None  # on the twist: mcl decodes it
            assert not batch.g2_in_subgroup(a0, a1, b0, b1), order
            assert not batch.g2_in_subgroup_reference(a0, a1, b0, b1), order
    (x0, x1), (y0, y1) = g
    assert batch.g2_in_subgroup(x0, x1, y0, y1)


def test_proofs_with_b_outside_g2_are_refused_in_a_batch_as_groth16py_does(
        built: BuiltCircuit, honest: list[Item]) -> None:
    """A valid proof whose B gains a torsion component T (B + T, so only the subgroup check
    can tell), among 60 valid proofs, for every prime order of T: the batch finds each."""
    items = [honest[i % len(honest)] for i in range(64)]
    bad_at = [3, 17, 40, 58]
    for k, (_, x0, x1, y0, y1) in zip(bad_at, batch._G2_TORSION, strict=True):
        proof, signals = items[k]
        moved = ec_add(b_point(proof), ((x0, x1), (y0, y1)))
        assert moved is not None
        items[k] = (with_b(proof, moved), signals)
        check_proof_points(items[k][0])  # on the twist: the encoding checks pass it
    want = [i not in bad_at for i in range(64)]
    assert reference(built, items) == want
    assert verify_many(built, items, engine="batch") == want


def test_two_bad_proofs_in_a_batch_are_both_found(built: BuiltCircuit,
                                                  honest: list[Item]) -> None:
    items = [honest[i % len(honest)] for i in range(64)]
    for where in (5, 6):
        proof, signals = items[where]
        w = words(proof)
        items[where] = (pack(w[6:8] + w[2:6] + w[0:2]), signals)  # A and C swapped
    want = [i not in (5, 6) for i in range(64)]
    assert reference(built, items) == want
    assert verify_many(built, items, engine="batch") == want


def test_points_at_infinity_are_refused_like_groth16py(built: BuiltCircuit,
                                                       honest: list[Item]) -> None:
    proof, signals = honest[0]
    w = words(proof)
    items = [(pack([0, 0] + w[2:]), signals), (pack(w[:2] + [0, 0, 0, 0] + w[6:]), signals),
             (pack(w[:6] + [0, 0]), signals), honest[1]]
    assert reference(built, items) == [False, False, False, True]
    assert verify_many(built, items, engine="batch") == [False, False, False, True]


def test_the_random_scalars_take_2_to_the_128_distinct_values() -> None:
    """r = a + b*lambda mod r with a, b < 2^64 collides only if x + y*lambda = 0 mod r for some
    |x|, |y| < 2^64; a Gauss-reduced basis of that lattice shows its shortest vector is far
    longer, so no such (x, y) exists."""
    assert batch.available()
    lam = batch._STATE["lambda"]
    assert lam in batch._LAMBDAS and pow(lam, 3, R) == 1 and lam != 1
    u, v = (R, 0), (-lam % R, 1)

    def norm2(t: tuple[int, int]) -> int:
        return t[0] * t[0] + t[1] * t[1]

    while True:
        if norm2(u) < norm2(v):
            u, v = v, u
        m = (2 * (u[0] * v[0] + u[1] * v[1]) + norm2(v)) // (2 * norm2(v))  # round(<u,v>/|v|^2)
        if m == 0:
            break
        u = (u[0] - m * v[0], u[1] - m * v[1])
    assert (v[0] + v[1] * lam) % R == 0
    assert norm2(v) >= 2 * (1 << batch.HALF_BITS) ** 2  # every nonzero vector is at least this long
    assert norm2(v) >= 1 << 250


def test_a_batch_falls_back_to_mcls_order_check_if_the_self_test_fails(
        built: BuiltCircuit, honest: list[Item], monkeypatch: pytest.MonkeyPatch) -> None:
    """A pairing library whose G2 product made the fast check accept a torsion point: _lib()
    notices at start-up and every B then goes through mcl's [r]B = 0."""
    accepting = batch._g2_set  # on the twist is enough: what a broken fast check would do
    monkeypatch.setattr(batch, "_g2_fast", accepting)
    monkeypatch.delitem(batch._STATE, "lib")
    monkeypatch.setattr(batch, "_VERIFIERS", {})
    try:
        assert not batch.g2_fast_check_in_use()
        _, x0, x1, y0, y1 = batch._G2_TORSION[0]
        assert not batch.g2_in_subgroup(x0, x1, y0, y1)
        proof, signals = honest[0]
        moved = ec_add(b_point(proof), ((x0, x1), (y0, y1)))
        assert moved is not None
        items = [(with_b(proof, moved), signals), honest[1]]
        assert verify_many(built, items, engine="batch") == [False, True]
    finally:
        monkeypatch.undo()
        batch._STATE.pop("lib", None)
        assert batch.g2_fast_check_in_use()  # re-initialised with the real check


def test_random_proof_bytes_get_the_reference_verdicts(built: BuiltCircuit,
                                                       honest: list[Item]) -> None:
    """Junk through every decoding step of the batch path: random bytes, random words < q,
    words with A and C on the curve and B random on the twist (outside G2), zero words."""
    rng = random.Random(15)
    proof, signals = honest[0]
    w = words(proof)
    items: list[Item] = []
    for i in range(40):
        items.append((rng.randbytes(256), signals))
        items.append((pack([rng.randrange(Q) for _ in range(8)]), signals))
        items.append((with_b(proof, twist_point_outside_g2(100 + i)), signals))
        zeroed = list(w)
        zeroed[rng.randrange(8)] = 0
        items.append((pack(zeroed), signals))
    items.append(honest[1])
    want = reference(built, items)
    assert want == [False] * (len(items) - 1) + [True]
    assert verify_many(built, items, engine="batch") == want
