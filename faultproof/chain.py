"""The reading chain of DESIGN §2, bit for bit as the circuits compute it.

    enc(r)  = r + 2^31                          signed 32-bit reading -> [0, 2^32)
    s_i     = Poseidon(k_blind, seq_i)          per-frame blinding value
    c_0     = Poseidon(TAG, id_hi128, id_lo128, epoch)
    c_i     = Poseidon(c_{i-1}, t_i, enc(r_i), s_i)

Poseidon is circomlib's (BN254, x^5, the circomlibjs constants). Every hash goes through
`poseidon_be`, which computes it with the native library `make setup` builds from
faultproof/native/poseidon.c when that library is present and gives the same values as
`light-poseidon` at load, and with `light-poseidon` (its 32-byte big-endian API; its integer API
overflows above 2^64) otherwise. `POSEIDON_BACKEND` says which. Every input is checked to be a
field element: `poseidon` checks in Python, the native library refuses one >= p itself, and
light-poseidon, which silently reduces values >= p (two different inputs would hash alike), is
only reached through `poseidon` or by callers whose inputs are range-checked already.

Pure functions only; no I/O besides loading the library once at import.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Sequence
from pathlib import Path

import light_poseidon_python as _lp

from faultproof.errors import FaultproofError, Reason
from faultproof.native import poseidon_library

# BN254 scalar field modulus.
P = 21888242871839275222246405745257275088548364400416034343698204186575808495617

READING_MIN = -(2**31)
READING_MAX = 2**31 - 1
READING_OFFSET = 2**31
TIME_LIMIT = 2**48  # ms since epoch, exclusive
SEQ_LIMIT = 2**32
EPOCH_LIMIT = 2**32
BLINDING_KEY_LEN = 31  # bytes; 248 bits < p, so any key is a field element

# c_0's domain tag: the ASCII bytes of "faultproof/c0/v1" read as a big-endian integer (< 2^128).
CHAIN_ANCHOR_TAG = int.from_bytes(b"faultproof/c0/v1", "big")

_HASHERS = {k: _lp.Hasher(k) for k in (1, 2, 3, 4)}

# A hash of n inputs given as n concatenated 32-byte big-endian field elements.
PoseidonBE = Callable[[bytes, int], int]


def _light_poseidon_be(data: bytes, n: int) -> int:
    return int(_HASHERS[n].hash_bytes_be([data[i:i + 32] for i in range(0, 32 * n, 32)]), 16)


def load_native(path: Path) -> PoseidonBE | None:
    """The native Poseidon in the library at `path`, or None when it is missing, does not load,
    or differs from light-poseidon on a fixed input of every width (a stale or foreign build)."""
    try:
        lib = ctypes.CDLL(str(path))
        fn = lib.fp_poseidon
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p]
    fn.restype = ctypes.c_int
    out_type = ctypes.c_char * 32  # a fresh buffer per call: threads may hash at once

    def native_be(data: bytes, n: int) -> int:
        if len(data) != 32 * n:  # the library reads 32 * n bytes: never past the end of `data`
            raise FaultproofError(Reason.WRONG_LENGTH, f"poseidon of {n} inputs takes {32 * n} bytes")
        out = out_type()
        rc = fn(data, n, out)
        if rc:
            raise FaultproofError(Reason.OUT_OF_RANGE, "poseidon input is not a field element"
                                  if rc == 2 else f"poseidon takes 1 to 4 inputs, not {n}")
        return int.from_bytes(out.raw, "big")

    probe = b"".join((P - 1 - 7 * k).to_bytes(32, "big") for k in range(4))
    try:
        if any(native_be(probe[:32 * n], n) != _light_poseidon_be(probe[:32 * n], n) for n in (1, 2, 3, 4)):
            return None
    except FaultproofError:  # a library that refuses valid inputs is as wrong as one that hashes wrongly
        return None
    return native_be


_native = load_native(poseidon_library())
poseidon_be: PoseidonBE = _native or _light_poseidon_be
"""Poseidon over n (1..4) concatenated 32-byte big-endian inputs, each already known to be < p."""
POSEIDON_BACKEND = "native" if _native is not None else "light-poseidon"


def poseidon(inputs: Sequence[int]) -> int:
    """circomlib Poseidon over 1..4 field elements."""
    if not 1 <= len(inputs) <= 4:
        raise ValueError("poseidon takes 1 to 4 inputs")
    for x in inputs:
        if not isinstance(x, int) or isinstance(x, bool) or not 0 <= x < P:
            raise FaultproofError(Reason.OUT_OF_RANGE, f"poseidon input is not a field element: {x!r}")
    return poseidon_be(b"".join(x.to_bytes(32, "big") for x in inputs), len(inputs))


def enc(reading: int) -> int:
    """Signed 32-bit reading (or threshold) -> unsigned field value, order preserving."""
    if not READING_MIN <= reading <= READING_MAX:
        raise FaultproofError(Reason.READING_OUT_OF_RANGE, f"reading {reading} is not int32")
    return reading + READING_OFFSET


def dec(value: int) -> int:
    """Inverse of `enc`."""
    if not 0 <= value < 2**32:
        raise FaultproofError(Reason.OUT_OF_RANGE, f"{value} is not an encoded int32")
    return value - READING_OFFSET


def blinding_value(blinding_key: bytes, seq: int) -> int:
    """s_i = Poseidon(k_blind, seq_i). k_blind is a 31-byte per-device secret."""
    if len(blinding_key) != BLINDING_KEY_LEN:
        raise FaultproofError(Reason.WRONG_LENGTH, "blinding key must be 31 bytes")
    if not 0 <= seq < SEQ_LIMIT:
        raise FaultproofError(Reason.OUT_OF_RANGE, f"seq {seq} out of range")
    return poseidon([int.from_bytes(blinding_key, "big"), seq])


def chain_anchor(device_id: bytes, epoch: int) -> int:
    """c_0 = Poseidon(TAG, device_id_hi128, device_id_lo128, epoch)."""
    if len(device_id) != 32:
        raise FaultproofError(Reason.WRONG_LENGTH, "device_id must be 32 bytes")
    if not 0 <= epoch < EPOCH_LIMIT:
        raise FaultproofError(Reason.OUT_OF_RANGE, f"epoch {epoch} out of range")
    hi = int.from_bytes(device_id[:16], "big")
    lo = int.from_bytes(device_id[16:], "big")
    return poseidon([CHAIN_ANCHOR_TAG, hi, lo, epoch])


def chain_step(prev: int, ts_ms: int, reading: int, blinding: int) -> int:
    """c_i = Poseidon(c_{i-1}, t_i, enc(r_i), s_i)."""
    if not 0 <= ts_ms < TIME_LIMIT:
        raise FaultproofError(Reason.OUT_OF_RANGE, f"timestamp {ts_ms} out of range")
    return poseidon([prev, ts_ms, enc(reading), blinding])


def chain_to_bytes(value: int) -> bytes:
    """A chain value as it travels in a Frame: 32 bytes big-endian."""
    return value.to_bytes(32, "big")

