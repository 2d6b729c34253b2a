"""The native Poseidon (faultproof/native/poseidon.c) against light-poseidon, and faultproof.chain's
choice between them: built here from source into a temporary folder, so the test does not depend
on `make setup` having run. Values must be equal bit for bit at every width faultproof uses
(1..4 inputs), including 0 and p - 1; an input >= p is refused, never reduced; without the library
faultproof.chain falls back to light-poseidon with the same values."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import light_poseidon_python as lp
import pytest

from faultproof import chain
from faultproof.errors import FaultproofError, Reason
from faultproof.native import POSEIDON_LIBRARY_NAME, REPO_ROOT, build

P = chain.P


@pytest.fixture(scope="module", params=["cpu", "portable"])
def native(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> chain.PoseidonBE:
    """The library as `make setup` builds it (BMI2/ADX multiplier when this CPU has it) and its
    portable C path."""
    lib = tmp_path_factory.mktemp("native") / POSEIDON_LIBRARY_NAME
    build.build(lib, portable=request.param == "portable")
    fn = chain.load_native(lib)
    assert fn is not None
    return fn


def _reference(xs: list[int]) -> int:
    return int(lp.Hasher(len(xs)).hash_bytes_be([x.to_bytes(32, "big") for x in xs]), 16)


def _be(xs: list[int]) -> bytes:
    return b"".join(x.to_bytes(32, "big") for x in xs)


def test_native_equals_light_poseidon_on_random_and_edge_inputs(native: chain.PoseidonBE) -> None:
    rng = random.Random(20261130)
    edges = [0, 1, P - 1, P - 2, 2**64 - 1, 2**128, 2**254 - 1 - (2**254 - P)]
    for n in (1, 2, 3, 4):
        cases = [[e] * n for e in edges] + [[rng.choice(edges + [rng.randrange(P)]) for _ in range(n)]
                                           for _ in range(150)]
        for xs in cases:
            assert native(_be(xs), n) == _reference(xs), (n, xs)


def test_native_matches_circomlib_known_value(native: chain.PoseidonBE) -> None:
    # circomlibjs poseidon([1, 2]), the value in circomlib's own tests
    assert native(_be([1, 2]), 2) == 0x115CC0F5E7D690413DF64C6B9662E9CF2A3617F2743245519E19607A4417189A


@pytest.mark.parametrize("bad", [P, P + 1, 2**256 - 1])
def test_native_refuses_an_input_that_is_not_a_field_element(native: chain.PoseidonBE, bad: int) -> None:
    for pos in range(4):
        xs = [5, 6, 7, 8]
        xs[pos] = bad
        with pytest.raises(FaultproofError) as e:
            native(_be(xs), 4)
        assert e.value.reason is Reason.OUT_OF_RANGE


@pytest.mark.parametrize("n", [0, 5, 16])
def test_native_refuses_a_width_it_does_not_know(native: chain.PoseidonBE, n: int) -> None:
    with pytest.raises(FaultproofError):
        native(bytes(32 * n), n)


@pytest.mark.parametrize("size", [0, 31, 96, 160])
def test_native_refuses_input_bytes_that_are_not_32_per_input(native: chain.PoseidonBE, size: int) -> None:
    with pytest.raises(FaultproofError) as e:
        native(bytes(size), 4)
    assert e.value.reason is Reason.WRONG_LENGTH


def test_a_missing_or_wrong_library_is_not_loaded(tmp_path: Path) -> None:
    assert chain.load_native(tmp_path / "absent.so") is None
    other = tmp_path / "other.so"
    src = tmp_path / "other.c"  # the right symbol, the wrong values: a stale or foreign build
    src.write_text("#include <stddef.h>\nint fp_poseidon(const unsigned char *i, size_t n, unsigned char *o)"
                   " { for (int k = 0; k < 32; k++) o[k] = 0; return 0; }\n")
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(other), str(src)], check=True)
    assert chain.load_native(other) is None
    refusing = tmp_path / "refusing.so"  # one that refuses valid inputs is not loaded either
    src.write_text("#include <stddef.h>\nint fp_poseidon(const unsigned char *i, size_t n, unsigned char *o)"
                   " { return 2; }\n")
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(refusing), str(src)], check=True)
    assert chain.load_native(refusing) is None


def test_chain_falls_back_to_light_poseidon_without_the_library(tmp_path: Path) -> None:
    code = ("from faultproof import chain; "
            "print(chain.POSEIDON_BACKEND, chain.poseidon([1, 2]), chain.chain_step(3, 4, 5, 6))")
    env = {**os.environ, "FAULTPROOF_NATIVE_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO_ROOT, check=True,
                         capture_output=True, text=True).stdout.split()
    assert out == ["light-poseidon", str(_reference([1, 2])), str(_reference([3, 4, 5 + 2**31, 6]))]
    # and the library built into that folder is picked up by a fresh process
    build.build(tmp_path / POSEIDON_LIBRARY_NAME)
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO_ROOT, check=True,
                         capture_output=True, text=True).stdout.split()
    assert out == ["native", str(_reference([1, 2])), str(_reference([3, 4, 5 + 2**31, 6]))]


def test_chain_poseidon_checks_inputs_on_either_backend() -> None:
    with pytest.raises(FaultproofError):
        chain.poseidon([P])
    with pytest.raises(ValueError):
        chain.poseidon([1, 2, 3, 4, 5])
