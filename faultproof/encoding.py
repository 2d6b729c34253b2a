"""Canonical encoding and strict decoding (DESIGN §2): the only place bytes become values.

Canonical bytes are a msgpack array in a fixed field order holding only non-negative integers,
byte strings and nested arrays. msgpack-python always writes the shortest form of each int, bin and
array header, so a byte string is canonical exactly when re-encoding its decoded value gives the same
bytes back. The decoder insists on that, which makes `encode(decode(b)) == b` hold for every `b` it
accepts and gives every value exactly one encoding (so hashes and signatures over it are stable).

Every failure is a `DecodeError` with a DECODE-stage reason. Nothing else escapes: msgpack's own
exceptions, recursion errors and type errors are all caught here.

This module knows nothing about message types; `faultproof.messages` defines them on top of it.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgpack

from faultproof.errors import DecodeError, Reason

# The deepest nesting any message uses is QC/VoteBatch -> vote -> body (well under this).
MAX_DEPTH = 8
# Absolute ceiling for any single encoded message; each type sets a smaller limit.
MAX_MESSAGE_SIZE = 1 << 20

Wire = int | bytes | list[Any]


def pack(value: Wire) -> bytes:
    """Canonical bytes of a wire value (ints, bytes, lists)."""
    return msgpack.packb(value, use_bin_type=True)


def _check_shape(value: Any, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise DecodeError(Reason.TOO_DEEP, f"nesting deeper than {MAX_DEPTH}")
    if isinstance(value, bool) or value is None:
        raise DecodeError(Reason.WRONG_TYPE, "booleans and nil are not allowed")
    if isinstance(value, int):
        if value < 0:
            raise DecodeError(Reason.OUT_OF_RANGE, "negative integers are not allowed")
        return
    if isinstance(value, bytes):
        return
    if isinstance(value, list):
        for item in value:
            _check_shape(item, depth + 1)
        return
    raise DecodeError(Reason.WRONG_TYPE, f"{type(value).__name__} is not allowed (ints, bytes, arrays only)")


def unpack(data: bytes, max_size: int = MAX_MESSAGE_SIZE) -> Wire:
    """Strictly decode one canonical wire value. Raises only DecodeError."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError(Reason.WRONG_TYPE, "input must be bytes")
    data = bytes(data)
    if len(data) > max_size:
        raise DecodeError(Reason.OVERSIZE, f"{len(data)} bytes exceeds the limit of {max_size}")
    if not data:
        raise DecodeError(Reason.MALFORMED, "empty input")
    try:
        value = msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=False,  # maps are refused below as WRONG_TYPE
            max_str_len=max_size,
            max_bin_len=max_size,
            max_array_len=max_size,
            max_map_len=max_size,
            max_ext_len=max_size,
        )
    except msgpack.exceptions.ExtraData:
        raise DecodeError(Reason.MALFORMED, "trailing bytes after the message") from None
    except msgpack.exceptions.StackError:
        raise DecodeError(Reason.TOO_DEEP, "nesting too deep") from None
    except (ValueError, TypeError, OverflowError, RecursionError, msgpack.exceptions.UnpackException):
        raise DecodeError(Reason.MALFORMED, "not a valid msgpack value") from None
    _check_shape(value, 0)
    if pack(value) != data:
        raise DecodeError(Reason.NON_CANONICAL, "valid msgpack, but not the canonical encoding")
    return value


def hash_id(tag: str, data: bytes) -> bytes:
    """SHA-256 over `faultproof/<tag>/v1 || data`: every id and hash in the protocol."""
    return hashlib.sha256(f"faultproof/{tag}/v1".encode() + data).digest()
