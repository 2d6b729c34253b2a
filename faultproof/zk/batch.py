"""Batch verification of Groth16 proofs (issue 15): one random linear combination of many checks.

A proof (A, B, C) for public signals x verifies iff e(A, B) = e(α, β) · e(L(x), γ) · e(C, δ) with
L(x) = IC₀ + Σⱼ xⱼ ICⱼ. For proofs 1..N under one key and secret random 128-bit rᵢ, all of them
verify (except with probability ≤ 2⁻¹²⁸ over the rᵢ) iff

    Πᵢ e(rᵢAᵢ, Bᵢ) · e(−(Σrᵢ)α, β) · e(−Σᵢ rᵢL(xᵢ), γ) · e(−Σᵢ rᵢCᵢ, δ) = 1,

one multi-Miller loop of N + 3 pairs and one final exponentiation: about one Miller loop per proof
instead of four pairings. Σᵢ rᵢL(xᵢ) folds into one 11-point multi-scalar product. When a batch
fails it is split in halves until the bad proofs are found (a batch of one is the exact check,
r = 1), so the verdicts are per proof and equal groth16py's (tests/zk/test_batch.py holds them so
on valid, tampered and out-of-subgroup proofs and on batches with one bad proof).

The pairing library is mcl (PyPI `mclbn256`), called through its ctypes handle. Its package
initialises mcl for a different BN curve; `_lib()` re-initialises it for BN254 as Ethereum, circom
and snarkjs use it (mcl's BN_SNARK1, alias alt_bn128) once per process, and checks the generator.

Never raises on hostile proofs or signals (False); a malformed verification key is a DecodeError.
The rᵢ come from `secrets`: a prover who could predict them could make a bad proof pass in a batch.
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
RANDOM_BITS = 128
_INIT_LOCK = threading.Lock()
_STATE: dict[str, Any] = {}


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
        _STATE["types"] = (mcl.mclBnG1_bytes, mcl.mclBnG2_bytes, mcl.mclBnGT_bytes,
                           mcl.mclBnFr_bytes)
        _STATE["lib"] = lib
        # The curve check: e(g1, g2)^(r) = 1 is not enough to tell curves apart, the generator
        # (1, 2) being on y^2 = x^3 + 3 is (mcl's BN254 has y^2 = x^3 + 2).
        if _g1(1, 2) is None:
            del _STATE["lib"]
            raise BatchUnavailable("mcl is not on alt_bn128 after initialisation")
        return lib


def available() -> bool:
    try:
        _lib()
        return True
    except BatchUnavailable:
        return False


def _g1(x: int, y: int) -> Any:
    """A G1 point from affine coordinates < q, None if not on the curve. (G1 of alt_bn128 has
    cofactor 1: on the curve is in the subgroup.) The coordinates are set directly with z = 1:
    mcl's own string parser spends ~60 µs per point on a check this curve does not need."""
    if (y * y - x * x * x - 3) % Q != 0:
        return None
    lib = _STATE["lib"]
    p = _STATE["types"][0]()
    base = ctypes.addressof(p)
    for k, v in enumerate((x, y)):
        if lib.mclBnFp_setLittleEndian(ctypes.c_void_p(base + 32 * k), v.to_bytes(32, "little"),
                                       32) != 0:
            return None
    lib.mclBnFp_setInt(ctypes.c_void_p(base + 64), ctypes.c_int64(1))
    return p


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
# with ξ = 9 + u. A point Q of the twist is in G2 iff ψ(Q) = [6u²]Q (El Housni, Guillevic,
# Piellard, eprint 2022/352, for BN curves; u the BN254 seed): a 125-bit multiplication instead of
# mcl's multiplication by r (~2.5x faster). `g2_in_subgroup_reference` is mcl's own check, and
# tests/zk/test_batch.py holds the two equal on subgroup and non-subgroup points.
_PSI_X = _fp2_pow((9, 1), (Q - 1) // 3)
_PSI_Y = _fp2_pow((9, 1), (Q - 1) // 2)
_SEED = 4965661367192848881
_SIX_U2 = 6 * _SEED * _SEED


def _psi(x: tuple[int, int], y: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    return _fp2_mul((x[0], -x[1] % Q), _PSI_X), _fp2_mul((y[0], -y[1] % Q), _PSI_Y)


def _g2_set(x0: int, x1: int, y0: int, y1: int) -> Any:
    """A point of the twist curve (x = x0 + x1·u, ...), None if not on it."""
    lib = _STATE["lib"]
    p = _STATE["types"][1]()
    s = b"1 %d %d %d %d" % (x0, x1, y0, y1)
    ref = ctypes.byref(p)
    if lib.mclBnG2_setStr(ref, s, len(s), 10) != 0 or not lib.mclBnG2_isValid(ref):
        return None
    return p


def _g2(x0: int, x1: int, y0: int, y1: int) -> Any:
    """A G2 point, None unless on the twist AND in the order-r subgroup (ψ(Q) = [6u²]Q)."""
    p = _g2_set(x0, x1, y0, y1)
    if p is None:
        return None
    (a0, a1), (b0, b1) = _psi((x0, x1), (y0, y1))
    image = _g2_set(a0, a1, b0, b1)  # ψ maps the twist to itself
    if image is None:
        return None
    lib = _STATE["lib"]
    prod = _STATE["types"][1]()
    lib.mclBnG2_mul(ctypes.byref(prod), ctypes.byref(p), ctypes.byref(_six_u2()))
    return p if lib.mclBnG2_isEqual(ctypes.byref(prod), ctypes.byref(image)) else None


def _six_u2() -> Any:
    fr = _STATE.get("six_u2")
    if fr is None:
        fr = _STATE["six_u2"] = _fr(_SIX_U2)
    return fr


def g2_in_subgroup_reference(x0: int, x1: int, y0: int, y1: int) -> bool:
    """mcl's subgroup check ([r]Q = 0), the reference for the fast one in `_g2`."""
    _lib()
    p = _g2_set(x0, x1, y0, y1)
    return p is not None and bool(_STATE["lib"].mclBnG2_isValidOrder(ctypes.byref(p)))


def g2_in_subgroup(x0: int, x1: int, y0: int, y1: int) -> bool:
    _lib()
    return _g2(x0, x1, y0, y1) is not None


def _fr(v: int) -> Any:
    fr = _STATE["types"][3]()
    raw = (v % R).to_bytes(32, "little")
    if _STATE["lib"].mclBnFr_setLittleEndian(ctypes.byref(fr), raw, 32) != 0:
        raise ValueError("scalar does not load")
    return fr


class _Proof:
    __slots__ = ("a", "b", "c", "signals")

    def __init__(self, a: Any, b: Any, c: Any, signals: list[int]) -> None:
        self.a, self.b, self.c, self.signals = a, b, c, signals


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
        a = _g1(w[0], w[1])
        b = _g2(w[3], w[2], w[5], w[4])  # EVM order: x.c1 x.c0 y.c1 y.c0
        c = _g1(w[6], w[7])
        if a is None or b is None or c is None:
            return None
        return _Proof(a, b, c, sig)

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
        lib = _STATE["lib"]
        g1_t, g2_t, gt_t, fr_t = _STATE["types"]
        n = len(proofs)
        rs = [1] if n == 1 else [secrets.randbits(RANDOM_BITS) | 1 for _ in range(n)]
        g1s = (g1_t * (n + 3))()
        g2s = (g2_t * (n + 3))()
        ic_coeff = [0] * len(self._ic)
        r_sum = 0
        c_arr = (g1_t * n)()
        for k, (p, r) in enumerate(zip(proofs, rs, strict=True)):
            if r == 1:
                g1s[k] = p.a
            else:
                lib.mclBnG1_mul(ctypes.byref(g1s[k]), ctypes.byref(p.a), ctypes.byref(_fr(r)))
            g2s[k] = p.b
            c_arr[k] = p.c
            r_sum += r
            for j, x in enumerate(p.signals):
                ic_coeff[j + 1] += r * x
        ic_coeff[0] = r_sum
        # -(Σr)·α with β
        lib.mclBnG1_mul(ctypes.byref(g1s[n]), ctypes.byref(self._alpha), ctypes.byref(_fr(-r_sum)))
        g2s[n] = self._beta
        # -Σ rᵢ L(xᵢ) = Σⱼ (−coeffⱼ)·ICⱼ with γ
        coeffs = (fr_t * len(self._ic))(*[_fr(-c) for c in ic_coeff])
        lib.mclBnG1_mulVec(ctypes.byref(g1s[n + 1]), self._ic_arr, coeffs, len(self._ic))
        g2s[n + 1] = self._gamma
        # -Σ rᵢ Cᵢ with δ
        neg_r = (fr_t * n)(*[_fr(-r) for r in rs])
        lib.mclBnG1_mulVec(ctypes.byref(g1s[n + 2]), c_arr, neg_r, n)
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
