"""Plain-Python arithmetic for building hostile Groth16 proofs: the 256-byte proof as eight
32-byte words, Fp2 = Fp[u]/(u² + 1) over the BN254 base field, and points of the G2 twist
y² = x³ + 3/(9 + u) that are on the curve but outside the prime-order subgroup.

Shared by tests/zk/test_batch.py and tests/zk/test_garbage.py. It is written apart from mcl,
groth16py and faultproof.zk.batch on purpose, so it can judge them: it must never import the code
under test.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from faultproof.zk.encoding import Q

Fp2 = tuple[int, int]
# b of the twist, 3/(9 + u)
B2: Fp2 = (19485874751759354771024239261021720505790618469301721065564631296452457478373,
           266929791119991161246907387137283842545076965332900288569378510910307636690)


def words(proof: bytes) -> list[int]:
    """A proof's eight coordinates: A (x, y), B (x1, x0, y1, y0: the imaginary part first), C (x, y)."""
    return [int.from_bytes(proof[i : i + 32], "big") for i in range(0, 256, 32)]


def pack(w: Sequence[int]) -> bytes:
    return b"".join(v.to_bytes(32, "big") for v in w)


def b_point(proof: bytes) -> tuple[Fp2, Fp2]:
    w = words(proof)
    return (w[3], w[2]), (w[5], w[4])


def with_b(proof: bytes, b: tuple[Fp2, Fp2]) -> bytes:
    """The proof with B replaced (A and C kept)."""
    w = words(proof)
    (x0, x1), (y0, y1) = b
    return pack(w[:2] + [x1, x0, y1, y0] + w[6:])


def fp2_mul(a: Fp2, b: Fp2) -> Fp2:
    return ((a[0] * b[0] - a[1] * b[1]) % Q, (a[0] * b[1] + a[1] * b[0]) % Q)


def _fp_sqrt(v: int) -> int | None:
    r = pow(v, (Q + 1) // 4, Q)  # q = 3 mod 4
    return r if r * r % Q == v % Q else None


def fp2_sqrt(a: Fp2) -> Fp2 | None:
    a0, a1 = a
    norm = _fp_sqrt((a0 * a0 + a1 * a1) % Q)
    if norm is None:
        return None
    inv2 = pow(2, Q - 2, Q)
    for d in ((a0 + norm) * inv2 % Q, (a0 - norm) * inv2 % Q):
        x0 = _fp_sqrt(d)
        if x0:
            x1 = a1 * pow(2 * x0, Q - 2, Q) % Q
            if fp2_mul((x0, x1), (x0, x1)) == (a0 % Q, a1 % Q):
                return (x0, x1)
    return None


def twist_point_outside_g2(seed: int) -> tuple[Fp2, Fp2]:
    """A point on the twist that is (overwhelmingly likely) not in the r-torsion: a random point
    of the twist is in it with probability about 1/q."""
    rng = random.Random(seed)
    while True:
        x = (rng.randrange(Q), rng.randrange(Q))
        x3 = fp2_mul(fp2_mul(x, x), x)
        y = fp2_sqrt(((x3[0] + B2[0]) % Q, (x3[1] + B2[1]) % Q))
        if y is not None:
            return x, y
