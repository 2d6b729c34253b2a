"""Batch verification of Groth16 proofs (issue 15): one random linear combination of many checks.

A proof (A, B, C) for public signals x verifies iff e(A, B) = e(α, β) · e(L(x), γ) · e(C, δ) with
L(x) = IC₀ + Σⱼ xⱼ ICⱼ. For proofs 1..N under one key and secret random rᵢ, all of them verify
(except with probability ≤ 2⁻¹²⁸ over the rᵢ) iff

    Πᵢ e(rᵢAᵢ, Bᵢ) · e(−(Σrᵢ)α, β) · e(−Σᵢ rᵢL(xᵢ), γ) · e(−Σᵢ rᵢCᵢ, δ) = 1,

one multi-Miller loop of N + 3 pairs and one final exponentiation: about one Miller loop per proof
instead of four pairings. Σᵢ rᵢL(xᵢ) folds into one 11-point multi-scalar product. When a batch
fails it is split in halves until the bad proofs are found (a batch of one is the exact check,
r = 1), so the verdicts are per proof and equal groth16py's (tests/zk/test_batch.py holds them so
on valid, tampered and out-of-subgroup proofs and on batches with one bad proof).

The random scalars. rᵢ = aᵢ + bᵢ·λ mod r with aᵢ, bᵢ uniform 64-bit from `secrets` and λ the
eigenvalue of G1's endomorphism φ(x, y) = (β·x, y) = [λ](x, y) (β a cube root of unity in Fp;
G1 has cofactor 1, so this holds for every point that passed the curve check). Then rᵢAᵢ =
[aᵢ]Aᵢ + [bᵢ]φ(Aᵢ) and Σ rᵢCᵢ = Σ [aᵢ]Cᵢ + [bᵢ]φ(Cᵢ): products with 64-bit scalars (rᵢAᵢ
~27 µs instead of ~37 µs for a 128-bit scalar here). Soundness: if proof j is bad, its factor
Xⱼ ≠ 1 in the order-r group GT and the batch passes iff Xⱼ^rⱼ equals a value fixed by the other
proofs: one residue rⱼ at most. The 2¹²⁸ pairs (a, b) give 2¹²⁸ distinct rⱼ, because a collision needs x + yλ ≡ 0 mod r
with |x|, |y| < 2⁶⁴, and the shortest such vector has a 127-bit coordinate (a Gauss-reduced
basis of that lattice is checked in tests/zk/test_batch.py). So a bad proof passes a batch with
probability ≤ 2⁻¹²⁸. A prover who could predict the rᵢ could make a bad proof pass: never seed them.

Point checks (every proof, before any pairing): 256 bytes, each coordinate < q (canonical); A and
C on y² = x³ + 3 (that is G1: cofactor 1); B on the twist and in the order-r subgroup G2. The
subgroup check is ψ(B) = [6u²]B (El Housni, Guillevic, Piellard, eprint 2022/352; ψ the
untwist-Frobenius-twist map, u the BN254 seed), ~2.5x cheaper than mcl's [r]B = 0
(`mclBnG2_isValidOrder`, a plain double-and-add by r: the reference here). But [6u²]B is computed
by `mclBnG2_mul`, and mcl multiplies on G2 by the 4-dimensional GLV method (herumi/mcl bn.hpp,
GLV2T::mul: the scalar is split as Σ kᵢλᵢ and the product taken as Σ [kᵢ]ψⁱ(B)), which equals
[6u²]B only for B in G2. For B = G + T, G ∈ G2 and T in the cofactor group H of order
c = 2q − r, the check holds iff (ψ − M)(T) = 0 for the endomorphism M that mcl applies, so the
paper's theorem alone does not cover it. c = 10069 · 5864401 · 1875725156269 · p₅₄ is squarefree,
so H is cyclic and (ψ − M) has a kernel in H iff it kills a point of prime order ℓ for some ℓ | c.
`_G2_TORSION` holds one point of each order ℓ; `_lib()` checks that the fast test refuses all four
at start-up (else it falls back to mcl's [r]B = 0), and tests/zk/test_batch.py holds the same on
G, T and G + T against groth16py and mcl. mcl's own order check on decoding is switched off
explicitly (`mclBn_verifyOrderG1/G2(0)`): it would repeat these checks at 2.5x the cost, and its
default differs between builds (this one accepts a point of the twist outside G2 in setStr).

The pairing library is mcl (PyPI `mclbn256`, pinned; mcl 1.61 inside), called through its ctypes
handle. Its package initialises mcl for a different BN curve; `_lib()` re-initialises it for BN254
as Ethereum, circom and snarkjs use it (mcl's BN_SNARK1, alias alt_bn128) once per process, and
checks the generator.

Never raises on hostile proofs or signals (False); a malformed verification key is a DecodeError.
"""

from __future__ import annotations

import ctypes
import json
import secrets
import threading
from collections.abc import Sequence
from typing import Any

from faultproof.errors import DecodeError, Reason
from faultproof.zk.encoding import PROOF_LEN, Q, R

MCL_BN_SNARK1 = 4  # mcl's curve id of alt_bn128 (the mclbn256 package's default, 0, is not it)
HALF_BITS = 64  # rᵢ = aᵢ + bᵢλ with aᵢ, bᵢ of this many bits: 2¹²⁸ distinct rᵢ
_IO_EC_AFFINE_SERIALIZE = 4096  # mcl's IoEcAffineSerialize
_INIT_LOCK = threading.Lock()
_STATE: dict[str, Any] = {}

# One point of each prime order ℓ | c on the twist y² = x³ + 3/(9 + u), as (ℓ, x0, x1, y0, y1);
# tests/zk/test_batch.py recomputes their orders.
_G2_TORSION = (
    (10069,
     15149523961633404972988025896028320971714458845511211917740067536580146327169,
     1735419755277546621153711394301804950753311953601132873852953942981222781231,
     19708715795314625321786836131027732252052916014094444083338561104342248597196,
     9594937902945310003264004071077143592487355200882289385935083565717474466459),
    (5864401,
     2920504695336681999925246429624712695779292508611739585253627273152044251805,
     19809390775176479637209603665796574496285619660410044184857573854010703704187,
     10116675696381996357939691194896743989212768352645747064446018059769455859225,
     16234097949711072614514782690819591128597227059353418205634647315099305339531),
    (1875725156269,
     4616451889509530701836869708830772608833510266136471343342581361339247423178,
     7759145162511564347980662319350247439951685289442610888628653262443788703145,
     13992984003766452776102706900406920569271990979865023010235468320703119662702,
     15951666143232707371075783355042935789109420702929448935455348766459115350432),
    (197620364512881247228717050342013327560683201906968909,
     12791390832509348366159521650174806819344041539869465064346142407902194893593,
     17744674816970087021836522001606378571812823074132304950028528066046645021478,
     14942711286491616337720023700080420675327421090679941516177930375533601682816,
     13219396280859563242184905793706898028986292378898227773125918269473938411196),
)


def _primitive_cube_root(m: int) -> int:
    return next(w for w in (pow(g, (m - 1) // 3, m) for g in range(2, 64)) if w != 1)


BETA = _primitive_cube_root(Q)  # φ(x, y) = (β·x, y) on G1
_LAMBDAS = (_primitive_cube_root(R), pow(_primitive_cube_root(R), 2, R))  # the one for β: _lib()


class BatchUnavailable(RuntimeError):
    """mclbn256 is not installed or does not initialise for alt_bn128 here."""


def _lib() -> Any:
    """The mcl library handle, initialised for alt_bn128 in this process (once)."""
    lib = _STATE.get("lib")
    if lib is not None:
        return lib
    with _INIT_LOCK:
        if "lib" in _STATE:
            return _STATE["lib"]
        try:
            from mclbn256 import mclbn256 as mcl
        except Exception as e:  # ImportError, or the package failing to load its library
            raise BatchUnavailable(f"mclbn256 is not usable: {e}") from None
        lib = mcl.lib
        if lib.mclBn_init(MCL_BN_SNARK1, mcl.MCLBN_COMPILED_TIME_VAR) != 0:
            raise BatchUnavailable("mcl does not initialise for alt_bn128")
        lib.mclBn_verifyOrderG1(0)  # our checks, explicitly (module docstring)
        lib.mclBn_verifyOrderG2(0)
        _STATE["types"] = (mcl.mclBnG1_bytes, mcl.mclBnG2_bytes, mcl.mclBnGT_bytes,
                           mcl.mclBnFr_bytes)
        _STATE["mcl"] = lib  # for the helpers; "lib" (ready) only once the self-test passed
        _self_test(lib)
        _STATE["lib"] = lib
        return lib


def _self_test(lib: Any) -> None:
    """The curve, λ for β, and the fast G2 check on the cofactor torsion (module docstring)."""
    # e(g1, g2)^r = 1 does not tell curves apart; the generator (1, 2) being on y² = x³ + 3 does
    # (mcl's BN254 has y² = x³ + 2).
    g = _g1(1, 2)
    if g is None:
        raise BatchUnavailable("mcl is not on alt_bn128 after initialisation")
    beta = _STATE["beta"] = (ctypes.c_uint64 * 4)()
    if not _set_fp(ctypes.addressof(beta), 0, BETA):
        raise BatchUnavailable("mcl does not take beta")
    phi_g = _STATE["types"][0]()
    _phi_into(phi_g, g)
    if not _STATE["mcl"].mclBnG1_isValid(ctypes.byref(phi_g)):
        raise BatchUnavailable("phi does not map G1 to itself")
    prod = _STATE["types"][0]()
    for lam in _LAMBDAS:
        lib.mclBnG1_mul(ctypes.byref(prod), ctypes.byref(g), ctypes.byref(_fr(lam)))
        if lib.mclBnG1_isEqual(ctypes.byref(prod), ctypes.byref(phi_g)):
            _STATE["lambda"] = lam
            break
    else:
        raise BatchUnavailable("no cube root of unity mod r matches the G1 endomorphism")
    _STATE["g2_fast"] = not any(_g2_fast(*t[1:]) for t in _G2_TORSION)


def available() -> bool:
    try:
        _lib()
        return True
    except BatchUnavailable:
        return False


def _set_fp(base: int, k: int, v: int) -> bool:
    return _STATE["mcl"].mclBnFp_setLittleEndian(ctypes.c_void_p(base + 32 * k),
                                                 v.to_bytes(32, "little"), 32) == 0


def _g1_into(p: Any, x: int, y: int) -> bool:
    """Set p = (x, y) with z = 1 if on y² = x³ + 3; coordinates < q. (G1 of alt_bn128 has
    cofactor 1: on the curve is in the subgroup.) The coordinates are set directly: mcl's own
    string parser spends ~60 µs per point on an order check this curve does not need."""
    if (y * y - x * x * x - 3) % Q != 0:
        return False
    base = ctypes.addressof(p)
    if not (_set_fp(base, 0, x) and _set_fp(base, 1, y)):
        return False
    _STATE["mcl"].mclBnFp_setInt(ctypes.c_void_p(base + 64), ctypes.c_int64(1))
    return True


def _phi_into(dst: Any, src: Any) -> None:
    """dst = φ(src) = (β·x, y, z) for a G1 point src (Jacobian coordinates work alike)."""
    ctypes.memmove(dst, src, ctypes.sizeof(src))
    _STATE["mcl"].mclBnFp_mul(dst, src, _STATE["beta"])  # x is the first coordinate


def _g1(x: int, y: int) -> Any:
    """A G1 point from affine coordinates < q, None if not on the curve."""
    p = _STATE["types"][0]()
    return p if _g1_into(p, x, y) else None


def _fp2_mul(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    return ((a[0] * b[0] - a[1] * b[1]) % Q, (a[0] * b[1] + a[1] * b[0]) % Q)


def _fp2_pow(a: tuple[int, int], e: int) -> tuple[int, int]:
    out = (1, 0)
    while e:
        if e & 1:
            out = _fp2_mul(out, a)
        a = _fp2_mul(a, a)
        e >>= 1
    return out


# ψ, the untwist-Frobenius-twist endomorphism of the twist: ψ(x, y) = (x̄·ξ^((q−1)/3), ȳ·ξ^((q−1)/2))
# with ξ = 9 + u. Q ∈ G2 iff ψ(Q) = [6u²]Q, as computed by mcl (module docstring).
_PSI_X = _fp2_pow((9, 1), (Q - 1) // 3)
_PSI_Y = _fp2_pow((9, 1), (Q - 1) // 2)
_SEED = 4965661367192848881
_SIX_U2 = 6 * _SEED * _SEED


def _psi(x: tuple[int, int], y: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    return _fp2_mul((x[0], -x[1] % Q), _PSI_X), _fp2_mul((y[0], -y[1] % Q), _PSI_Y)


def _g2_set(x0: int, x1: int, y0: int, y1: int) -> Any:
    """A point of the twist curve (x = x0 + x1·u, ...; each < q), None if not on it. mcl's
    affine serialization (IoEcAffineSerialize: x0 x1 y0 y1, 32-byte little-endian each) checks
    the curve; all-zero bytes would be its point at infinity, which is no proof's B."""
    if not (x0 or x1 or y0 or y1):
        return None
    p = _STATE["types"][1]()
    raw = b"".join(v.to_bytes(32, "little") for v in (x0, x1, y0, y1))
    if _STATE["mcl"].mclBnG2_setStr(ctypes.byref(p), raw, 128, _IO_EC_AFFINE_SERIALIZE) != 0:
        return None
    return p


def _g2_fast(x0: int, x1: int, y0: int, y1: int) -> Any:
    """The point if on the twist and ψ(Q) = [6u²]Q (by mcl's GLV product), else None."""
    p = _g2_set(x0, x1, y0, y1)
    if p is None:
        return None
    (a0, a1), (b0, b1) = _psi((x0, x1), (y0, y1))
    image = _g2_set(a0, a1, b0, b1)  # ψ maps the twist to itself
    if image is None:
        return None
    lib = _STATE["mcl"]
    prod = _STATE["types"][1]()
    lib.mclBnG2_mul(ctypes.byref(prod), ctypes.byref(p), ctypes.byref(_six_u2()))
    return p if lib.mclBnG2_isEqual(ctypes.byref(prod), ctypes.byref(image)) else None


def _g2(x0: int, x1: int, y0: int, y1: int) -> Any:
    """A G2 point, None unless on the twist AND in the order-r subgroup."""
    if _STATE.get("g2_fast"):
        return _g2_fast(x0, x1, y0, y1)
    p = _g2_set(x0, x1, y0, y1)
    return p if p is not None and _STATE["mcl"].mclBnG2_isValidOrder(ctypes.byref(p)) else None


def _six_u2() -> Any:
    fr = _STATE.get("six_u2")
    if fr is None:
        fr = _STATE["six_u2"] = _fr(_SIX_U2)
    return fr


def g2_in_subgroup_reference(x0: int, x1: int, y0: int, y1: int) -> bool:
    """mcl's subgroup check ([r]Q = 0), the reference for the fast one."""
    _lib()
    p = _g2_set(x0, x1, y0, y1)
    return p is not None and bool(_STATE["mcl"].mclBnG2_isValidOrder(ctypes.byref(p)))


def g2_in_subgroup(x0: int, x1: int, y0: int, y1: int) -> bool:
    """The check every proof's B passes through (the fast one after a good self-test)."""
    _lib()
    return _g2(x0, x1, y0, y1) is not None


def g2_fast_check_in_use() -> bool:
    _lib()
    return bool(_STATE.get("g2_fast"))


def _fr(v: int) -> Any:
    fr = _STATE["types"][3]()
    raw = (v % R).to_bytes(32, "little")
    if _STATE["mcl"].mclBnFr_setLittleEndian(ctypes.byref(fr), raw, 32) != 0:
        raise ValueError("scalar does not load")
    return fr


class _Proof:
    """A decoded proof: g1 = [A, φ(A), C, φ(C)], b = B, and the signals."""

    __slots__ = ("b", "g1", "signals")

    def __init__(self, g1: Any, b: Any, signals: list[int]) -> None:
        self.g1, self.b, self.signals = g1, b, signals


class BatchVerifier:
    """Prepared for one canonical verification key (snarkjs JSON, as `canonical_vkey` gives)."""

    def __init__(self, canonical: bytes) -> None:
        _lib()
        try:
            vk = json.loads(canonical)
            self.n_public = int(vk["nPublic"])
            alpha = self._key_g1(vk["vk_alpha_1"])
            self._beta, self._gamma, self._delta = (
                self._key_g2(vk[k]) for k in ("vk_beta_2", "vk_gamma_2", "vk_delta_2"))
            self._ic = [self._key_g1(p) for p in vk["IC"]]
        except (ValueError, KeyError, TypeError, IndexError) as e:
            raise DecodeError(Reason.MALFORMED, f"verification key does not load: {e}") from None
        if len(self._ic) != self.n_public + 1:
            raise DecodeError(Reason.WRONG_LENGTH, "IC must have nPublic + 1 points")
        self._alpha = alpha
        g1_t = _STATE["types"][0]
        self._ic_arr = (g1_t * len(self._ic))(*self._ic)

    @staticmethod
    def _key_g1(p: Sequence[str]) -> Any:
        x, y, z = (int(v) for v in p)
        pt = _g1(x, y) if z == 1 and x < Q and y < Q else None
        if pt is None:
            raise ValueError("a G1 point of the key is not on the curve")
        return pt

    @staticmethod
    def _key_g2(p: Sequence[Sequence[str]]) -> Any:
        (x0, x1), (y0, y1), (z0, z1) = ((int(a), int(b)) for a, b in p)
        pt = _g2(x0, x1, y0, y1) if (z0, z1) == (1, 0) and max(x0, x1, y0, y1) < Q else None
        if pt is None:
            raise ValueError("a G2 point of the key is not in the subgroup")
        return pt

    def _parse(self, proof: Any, signals: Any) -> _Proof | None:
        """Decode one item; None for anything malformed (it then verifies False)."""
        if not isinstance(proof, bytes | bytearray | memoryview):
            return None
        raw = bytes(proof)
        if len(raw) != PROOF_LEN:
            return None
        if (not isinstance(signals, Sequence) or isinstance(signals, str | bytes)
                or len(signals) != self.n_public):
            return None
        sig: list[int] = []
        for v in signals:
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < R:
                return None
            sig.append(v)
        w = [int.from_bytes(raw[i : i + 32], "big") for i in range(0, PROOF_LEN, 32)]
        if any(v >= Q for v in w):
            return None
        g1 = (_STATE["types"][0] * 4)()
        if not (_g1_into(g1[0], w[0], w[1]) and _g1_into(g1[2], w[6], w[7])):
            return None
        _phi_into(g1[1], g1[0])
        _phi_into(g1[3], g1[2])
        b = _g2(w[3], w[2], w[5], w[4])  # EVM order: x.c1 x.c0 y.c1 y.c0
        if b is None:
            return None
        return _Proof(g1, b, sig)

    def verify_many(self, items: Sequence[tuple[bytes, Sequence[int]]]) -> list[bool]:
        """One verdict per (proof, signals), equal to verifying each alone."""
        out = [False] * len(items)
        parsed: list[tuple[int, _Proof]] = []
        for i, (proof, signals) in enumerate(items):
            p = self._parse(proof, signals)
            if p is not None:
                parsed.append((i, p))
        self._settle(parsed, out)
        return out

    def verify(self, proof: bytes, signals: Sequence[int]) -> bool:
        return self.verify_many([(proof, signals)])[0]

    def _settle(self, group: list[tuple[int, _Proof]], out: list[bool]) -> None:
        # Split on failure: a batch that holds is all valid; one that fails is halved until the
        # bad proofs stand alone (k bad proofs in N cost about 2k·log2(N) extra batch checks).
        stack = [group]
        while stack:
            g = stack.pop()
            if not g:
                continue
            if self._check([p for _, p in g]):
                for i, _ in g:
                    out[i] = True
            elif len(g) > 1:
                mid = len(g) // 2
                stack.append(g[mid:])
                stack.append(g[:mid])

    def _check(self, proofs: list[_Proof]) -> bool:
        lib = _STATE["mcl"]
        g1_t, g2_t, gt_t, fr_t = _STATE["types"]
        lam = _STATE["lambda"]
        n = len(proofs)
        # (aᵢ, bᵢ) as Fr scalars side by side: [a₀, b₀, a₁, b₁, ...]; one proof alone: r = 1.
        halves = [1, 0] if n == 1 else [secrets.randbits(HALF_BITS) for _ in range(2 * n)]
        scalars = (fr_t * (2 * n))()
        fr_size = ctypes.sizeof(fr_t)
        g1_size = ctypes.sizeof(g1_t)
        set_le = lib.mclBnFr_setLittleEndian
        for k, h in enumerate(halves):
            set_le(ctypes.byref(scalars, k * fr_size), h.to_bytes(8, "little"), 8)
        g1s = (g1_t * (n + 3))()
        g2s = (g2_t * (n + 3))()
        cs = (g1_t * (2 * n))()  # [C₀, φ(C₀), C₁, φ(C₁), ...]
        ic_coeff = [0] * len(self._ic)
        r_sum = 0
        for k, p in enumerate(proofs):
            r = (halves[2 * k] + halves[2 * k + 1] * lam) % R
            # rₖAₖ = [aₖ]Aₖ + [bₖ]φ(Aₖ)
            lib.mclBnG1_mulVec(ctypes.byref(g1s[k]), p.g1, ctypes.byref(scalars, 2 * k * fr_size),
                               2)
            g2s[k] = p.b
            ctypes.memmove(ctypes.byref(cs, 2 * k * g1_size), ctypes.byref(p.g1, 2 * g1_size),
                           2 * g1_size)
            r_sum += r
            for j, x in enumerate(p.signals, 1):
                ic_coeff[j] += r * x
        ic_coeff[0] = r_sum
        # -(Σr)·α with β
        lib.mclBnG1_mul(ctypes.byref(g1s[n]), ctypes.byref(self._alpha), ctypes.byref(_fr(-r_sum)))
        g2s[n] = self._beta
        # -Σ rᵢ L(xᵢ) = Σⱼ (−coeffⱼ)·ICⱼ with γ
        coeffs = (fr_t * len(self._ic))(*[_fr(-c) for c in ic_coeff])
        lib.mclBnG1_mulVec(ctypes.byref(g1s[n + 1]), self._ic_arr, coeffs, len(self._ic))
        g2s[n + 1] = self._gamma
        # -Σ rᵢ Cᵢ = -Σ [aᵢ]Cᵢ + [bᵢ]φ(Cᵢ) with δ (short scalars, then one negation)
        c_sum = g1_t()
        lib.mclBnG1_mulVec(ctypes.byref(c_sum), cs, scalars, 2 * n)
        lib.mclBnG1_neg(ctypes.byref(g1s[n + 2]), ctypes.byref(c_sum))
        g2s[n + 2] = self._delta
        f = gt_t()
        lib.mclBn_millerLoopVec(ctypes.byref(f), g1s, g2s, n + 3)
        e = gt_t()
        lib.mclBn_finalExp(ctypes.byref(e), ctypes.byref(f))
        return bool(lib.mclBnGT_isOne(ctypes.byref(e)))


_VERIFIERS: dict[bytes, BatchVerifier] = {}
_VERIFIERS_LOCK = threading.Lock()


def verifier(canonical: bytes) -> BatchVerifier:
    """A cached BatchVerifier for a canonical key (BatchUnavailable without mcl)."""
    with _VERIFIERS_LOCK:
        v = _VERIFIERS.get(canonical)
    if v is None:
        v = BatchVerifier(canonical)
        with _VERIFIERS_LOCK:
            if len(_VERIFIERS) >= 32:
                _VERIFIERS.pop(next(iter(_VERIFIERS)))
            _VERIFIERS[canonical] = v
    return v
