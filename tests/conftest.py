"""Fixtures shared across test folders, and how the suite splits over parallel workers.

Keep this small: a fixture lives here only when tests in more than one folder start the same real
processes, so one copy of them serves the whole run. `make test` runs two pytest-xdist workers; the
hooks below keep a shared network's folder on one worker and give each worker its own ports."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from faultproof import procs
from tests.netfix import Network

# Folders whose tests share one network for the whole folder (a session or package fixture): each
# runs whole on one parallel worker, so the network is started once. Every other file is its own unit.
_SHARED_NETWORK_FOLDERS = ("adversarial", "oracle")


def pytest_configure(config: pytest.Config) -> None:
    """A parallel worker (pytest-xdist, `make test` runs two) hands out ports only from its own slice,
    and so do the services it starts: two workers never give one port to two services."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw") and procs.PORT_RANGE_ENV not in os.environ:
        count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
        os.environ[procs.PORT_RANGE_ENV] = procs.port_slice(int(worker[2:]), count)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Parallel workers take whole units: a shared-network folder, else a file (module fixtures are
    started once). A scheduler rather than `xdist_group` marks: pytest 9 ignores the node-id suffix
    xdist 3.8 writes for those marks, and the tests were split test by test."""
    from xdist.scheduler import LoadScopeScheduling

    class FolderOrFileScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            parts = path.split("/")
            return "/".join(parts[:2]) if len(parts) > 2 and parts[1] in _SHARED_NETWORK_FOLDERS else path

    return FolderOrFileScheduling(config, log)


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
