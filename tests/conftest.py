"""Fixtures shared across test folders. Keep this small: a fixture lives here only when tests in
more than one folder start the same real processes, so one copy of them serves the whole run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.netfix import Network


@pytest.fixture(scope="session")
def ledger_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    """A ledger process with a 4-member oracle set (k = 3) whose oracles are NOT started: tests run
    the oracle daemons in-process (`tests.netfix.memory_oracle_nodes`). Each test uses its own
    devices and policies, so they share it."""
    network = Network.start(tmp_path_factory.mktemp("ledger-only"), n=4, k=3, start_oracles=False)
    try:
        yield network
    finally:
        network.stop()
