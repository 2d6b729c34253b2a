"""The one strict JSON parser refuses a nesting bomb by reason code even when some library has
raised the interpreter's recursion limit (the C parser would then overflow the machine stack:
seen as a segmentation fault in this suite before the depth scan)."""

from __future__ import annotations

import subprocess
import sys


def test_nesting_bomb_is_too_deep_even_with_a_raised_recursion_limit() -> None:
    code = """
import sys
sys.setrecursionlimit(10**6)
from faultproof import strictjson
from faultproof.errors import DecodeError
for bomb in (b'[' * 200000 + b']' * 200000, b'{"a":' * 100000 + b'1' + b'}' * 100000):
    try:
        strictjson.loads(bomb)
    except DecodeError as e:
        assert e.reason.value == "too_deep", e.reason
    else:
        raise SystemExit("a nesting bomb parsed")
assert strictjson.loads(b'{"s": "[[[[{{{{", "n": [[1]]}') == {"s": "[[[[{{{{", "n": [[1]]}
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
