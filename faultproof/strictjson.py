"""The one JSON parser for bytes that arrive over HTTP (ledger, oracle, agent).

JSON is the human-facing form of the protocol's messages (design §7); the canonical form is
msgpack. A JSON body is accepted only if it means exactly one thing:
  - UTF-8, no byte-order mark (Python's `json.loads(bytes)` would quietly accept UTF-16, UTF-32
    and a BOM, so two byte strings would parse to one message);
  - no duplicate object keys (which of two values a parser keeps is implementation-defined);
  - no NaN, Infinity or -Infinity (not JSON; they would reach amounts and thresholds as floats);
  - nesting no deeper than MAX_DEPTH (TOO_DEEP), counted by a linear scan before parsing: the C
    parser recurses on the machine stack, and a library that raises the interpreter's recursion
    limit (seen here) turns a nesting bomb into a segmentation fault instead of a RecursionError;
    within the caller's size limit (checked before the body is read).
Every refusal is a `DecodeError` with a reason code (MALFORMED, TOO_DEEP), so the HTTP layer
answers 400 with the code, never a traceback.

This file must never accept what a strict reading of RFC 8259 refuses, nor guess an encoding.
"""

from __future__ import annotations

import json
from typing import Any

from faultproof.errors import DecodeError, Reason


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for k, v in pairs:
        if k in obj:
            raise DecodeError(Reason.MALFORMED, f"duplicate JSON key {k!r}")
        obj[k] = v
    return obj


MAX_DEPTH = 64  # far above any message (the deepest nests a handful of levels)


def _depth_exceeds(text: str, limit: int) -> bool:
    """Whether arrays/objects nest deeper than `limit` (brackets inside strings do not count)."""
    depth = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def _no_constant(name: str) -> Any:
    raise DecodeError(Reason.MALFORMED, f"{name} is not allowed in JSON")


def loads(raw: bytes | bytearray | memoryview) -> Any:
    """Parse one JSON document strictly (see the module docstring) or raise DecodeError."""
    data = bytes(raw)
    if data.startswith(b"\xef\xbb\xbf"):
        raise DecodeError(Reason.MALFORMED, "JSON must be UTF-8 without a byte-order mark")
    try:
        text = data.decode("utf-8")  # strict: UTF-16/32 and broken UTF-8 fail here
    except UnicodeDecodeError:
        raise DecodeError(Reason.MALFORMED, "JSON must be UTF-8") from None
    if _depth_exceeds(text, MAX_DEPTH):
        raise DecodeError(Reason.TOO_DEEP, f"JSON nests deeper than {MAX_DEPTH}")
    try:
        return json.loads(text, object_pairs_hook=_object, parse_constant=_no_constant)
    except DecodeError:
        raise
    except RecursionError:
        raise DecodeError(Reason.TOO_DEEP, "JSON nests too deep") from None
    except ValueError:  # JSONDecodeError, or an integer too long to convert
        raise DecodeError(Reason.MALFORMED, "not valid JSON") from None
