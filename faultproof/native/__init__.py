"""Native code faultproof can use when it was built, and where the build puts it.

Each native piece has a pure-Python (or PyPI) equivalent that stays the reference: the native one
is loaded only after it computes the same values, and its absence is never an error. Sources live
here; built libraries go to `.cache/native/` (never committed), or to `$FAULTPROOF_NATIVE_DIR`.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SOURCE_DIR = Path(__file__).resolve().parent
POSEIDON_LIBRARY_NAME = "libfp_poseidon.so"


def native_dir() -> Path:
    env = os.environ.get("FAULTPROOF_NATIVE_DIR")
    return Path(env) if env else REPO_ROOT / ".cache" / "native"


def poseidon_library() -> Path:
    return native_dir() / POSEIDON_LIBRARY_NAME
