"""Byte forms of proofs and verification keys, and the cheap checks done before any pairing.

- Proof: the 256-byte EVM form `a.x a.y b.x.c1 b.x.c0 b.y.c1 b.y.c0 c.x c.y` (32-byte big-endian
  words; G2 coordinates with the Fp2 words swapped, as Solidity verifiers take them). Converted to
  and from snarkjs `proof.json` for the reference backend.
- Verification key: snarkjs `verification_key.json` reduced to the fields that define the key
  (`vk_alphabeta_12` is derived and tools disagree on including it) and canonicalised: sorted keys,
  no whitespace, UTF-8. The same key always gives the same bytes, whichever tool exported it.
  `vkey_hash` = SHA-256(b"faultproof/vkey/v1" ‖ canonical bytes) (DESIGN §2: tag ‖ canonical bytes).

No proving or verifying here; only parsing, so every function is safe on hostile bytes.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from faultproof.errors import DecodeError, Reason

# BN254 from its curve parameter u, so neither modulus can carry a typo.
_U = 4965661367192848881
Q = 36 * _U**4 + 36 * _U**3 + 24 * _U**2 + 6 * _U + 1  # base field: point coordinates
R = 36 * _U**4 + 36 * _U**3 + 18 * _U**2 + 6 * _U + 1  # scalar field: signals, "p" in DESIGN
assert R == 21888242871839275222246405745257275088548364400416034343698204186575808495617
PROOF_LEN = 256
VKEY_HASH_TAG = b"faultproof/vkey/v1"
MAX_VKEY_BYTES = 64 * 1024
_VKEY_FIELDS = (
    "protocol", "curve", "nPublic", "vk_alpha_1", "vk_beta_2", "vk_gamma_2", "vk_delta_2", "IC",
)


def proof_words(proof: bytes) -> list[int]:
    """The eight 32-byte words of an EVM proof; DecodeError unless 256 bytes of coordinates < q."""
    if not isinstance(proof, bytes | bytearray | memoryview):
        raise DecodeError(Reason.WRONG_TYPE, "proof must be bytes")
    raw = bytes(proof)
    if len(raw) != PROOF_LEN:
        raise DecodeError(Reason.WRONG_LENGTH, f"proof must be {PROOF_LEN} bytes, got {len(raw)}")
    words = [int.from_bytes(raw[i : i + 32], "big") for i in range(0, PROOF_LEN, 32)]
    if any(w >= Q for w in words):
        raise DecodeError(Reason.OUT_OF_RANGE, "proof coordinate is not < q")
    return words


def _on_g1(x: int, y: int) -> bool:
    return (y * y - x * x * x - 3) % Q == 0


# Twist coefficient b' = 3 / (9 + u) in Fp2 = Fp[u]/(u^2 + 1), as (c0, c1).
_B2 = (
    19485874751759354771024239261021720505790618469301721065564631296452457478373,
    266929791119991161246907387137283842545076965332900288569378510910307636690,
)


def _fp2_mul(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    return ((a[0] * b[0] - a[1] * b[1]) % Q, (a[0] * b[1] + a[1] * b[0]) % Q)


def _on_g2_curve(x: tuple[int, int], y: tuple[int, int]) -> bool:
    lhs = _fp2_mul(y, y)
    rhs = _fp2_mul(_fp2_mul(x, x), x)
    return lhs == ((rhs[0] + _B2[0]) % Q, (rhs[1] + _B2[1]) % Q)


def check_proof_points(proof: bytes) -> None:
    """DecodeError unless a, c are on G1 and b on the G2 twist curve (subgroup: the verifier)."""
    w = proof_words(proof)
    if not (_on_g1(w[0], w[1]) and _on_g1(w[6], w[7])):
        raise DecodeError(Reason.MALFORMED, "proof point a or c is not on the curve")
    if not _on_g2_curve((w[3], w[2]), (w[5], w[4])):
        raise DecodeError(Reason.MALFORMED, "proof point b is not on the twist curve")


def proof_to_snarkjs(proof: bytes) -> dict[str, Any]:
    """EVM bytes -> snarkjs proof.json object."""
    w = [str(v) for v in proof_words(proof)]
    return {
        "pi_a": [w[0], w[1], "1"],
        "pi_b": [[w[3], w[2]], [w[5], w[4]], ["1", "0"]],
        "pi_c": [w[6], w[7], "1"],
        "protocol": "groth16",
        "curve": "bn128",
    }


def proof_from_snarkjs(obj: dict[str, Any]) -> bytes:
    """snarkjs proof.json object (affine, z = 1) -> EVM bytes."""
    try:
        a, b, c = obj["pi_a"], obj["pi_b"], obj["pi_c"]
        words = [
            int(a[0]), int(a[1]),
            int(b[0][1]), int(b[0][0]), int(b[1][1]), int(b[1][0]),
            int(c[0]), int(c[1]),
        ]
        if (int(a[2]), int(c[2]), int(b[2][0]), int(b[2][1])) != (1, 1, 1, 0):
            raise DecodeError(Reason.NON_CANONICAL, "snarkjs proof is not affine")
    except (KeyError, IndexError, TypeError, ValueError) as e:
        raise DecodeError(Reason.MALFORMED, f"not a snarkjs groth16 proof: {e}") from None
    if any(not 0 <= v < Q for v in words):
        raise DecodeError(Reason.OUT_OF_RANGE, "proof coordinate is not < q")
    return b"".join(v.to_bytes(32, "big") for v in words)


def public_to_snarkjs(signals: list[int]) -> list[str]:
    return [str(v) for v in signals]


def canonical_vkey(vkey: str | bytes | dict[str, Any]) -> bytes:
    """Canonical bytes of a snarkjs Groth16 verification key (any exporter, any formatting)."""
    if isinstance(vkey, bytes | bytearray):
        if len(vkey) > MAX_VKEY_BYTES:
            raise DecodeError(Reason.OVERSIZE, "verification key too large")
        try:
            vkey = bytes(vkey).decode("utf-8", errors="strict")
        except UnicodeDecodeError:
            raise DecodeError(Reason.MALFORMED, "verification key is not UTF-8") from None
    if isinstance(vkey, str):
        if len(vkey) > MAX_VKEY_BYTES:
            raise DecodeError(Reason.OVERSIZE, "verification key too large")
        try:
            obj = json.loads(vkey)
        except ValueError as e:
            raise DecodeError(Reason.MALFORMED, f"verification key is not JSON: {e}") from None
    else:
        obj = vkey
    if not isinstance(obj, dict):
        raise DecodeError(Reason.WRONG_TYPE, "verification key must be a JSON object")
    missing = [k for k in _VKEY_FIELDS if k not in obj]
    if missing:
        raise DecodeError(Reason.MISSING_FIELD, f"verification key lacks {missing}")
    if obj["protocol"] != "groth16" or obj["curve"] != "bn128":
        raise DecodeError(Reason.UNSUPPORTED_VERSION, "only groth16 over bn128 is supported")

    def norm(v: Any) -> Any:
        if isinstance(v, list):
            return [norm(x) for x in v]
        if isinstance(v, str | int) and not isinstance(v, bool):
            iv = int(v)
            if not 0 <= iv < max(R, Q):
                raise DecodeError(Reason.OUT_OF_RANGE, "verification key value out of range")
            return str(iv)
        raise DecodeError(Reason.WRONG_TYPE, "verification key values are decimal strings")

    out: dict[str, Any] = {"protocol": "groth16", "curve": "bn128"}
    n_public = obj["nPublic"]
    if not isinstance(n_public, int) or isinstance(n_public, bool) or not 0 <= n_public < 1024:
        raise DecodeError(Reason.WRONG_TYPE, "nPublic must be a small int")
    out["nPublic"] = n_public
    try:
        for k in _VKEY_FIELDS[3:]:
            out[k] = norm(obj[k])
    except ValueError:
        raise DecodeError(Reason.MALFORMED, "verification key value is not a decimal") from None
    if not isinstance(out["IC"], list) or len(out["IC"]) != n_public + 1:
        raise DecodeError(Reason.WRONG_LENGTH, "IC must have nPublic + 1 points")
    return json.dumps(out, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def vkey_hash(vkey: bytes) -> bytes:
    """32-byte id of a verification key: SHA-256(tag ‖ canonical bytes)."""
    return hashlib.sha256(VKEY_HASH_TAG + canonical_vkey(vkey)).digest()
