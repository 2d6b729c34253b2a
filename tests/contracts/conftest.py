"""The chain of the contract tests: one `ChainWorld` (anvil, token, verifier, oracle keys) per test
module, so a module's pools and blocks never meet another module's. Stopped when the module ends;
it must never outlive it (anvil is a process)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.contracts.evmfix import ChainWorld


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChainWorld]:
    w = ChainWorld.start(tmp_path_factory.mktemp("chain"))
    yield w
    w.stop()
