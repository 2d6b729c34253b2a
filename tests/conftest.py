"""Fixtures shared across test folders, and how the suite splits over parallel workers.

Keep this small: a fixture lives here only when tests in more than one folder start the same real
processes, so one copy of them serves the whole run. `make test` runs pytest-xdist workers; the
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
# The units that take longest, longest first (a serial run's --durations, 2026-11-30: 190 s down to
# 17 s). Workers take them first and the many short files fill in after, so no long unit starts
# last while the other workers idle. A stale list costs only time, never a result.
_LONGEST_FIRST = (
    "tests/adversarial", "tests/oracle", "tests/conformance/test_settlement_conformance.py",
    "tests/zk/test_snarkjs.py", "tests/agent/test_agent_net.py", "tests/devnet/test_devnet.py",
    "tests/devnet/test_devnet_evm.py", "tests/operators/test_trial.py", "tests/gossip/test_network.py",
    "tests/zk/test_native.py", "tests/operators/test_services.py", "tests/dashboard/test_browser.py",
    "tests/sim/test_sim.py", "tests/operators/test_metrics.py", "tests/zk/test_circuit.py",
)


def pytest_configure(config: pytest.Config) -> None:
    """A parallel worker (pytest-xdist, `make test` runs several) hands out ports only from its own slice,
    and so do the services it starts: two workers never give one port to two services."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw") and procs.PORT_RANGE_ENV not in os.environ:
        count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
        os.environ[procs.PORT_RANGE_ENV] = procs.port_slice(int(worker[2:]), count)


def _unit(nodeid: str) -> str:
    """The part of the suite one parallel worker runs whole: a shared-network folder, else a file."""
    path = nodeid.split("::", 1)[0]
    parts = path.split("/")
    return "/".join(parts[:2]) if len(parts) > 2 and parts[1] in _SHARED_NETWORK_FOLDERS else path


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The longest units first (stable: each unit's own order is kept, test_z_final last)."""
    rank = {unit: i for i, unit in enumerate(_LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(_unit(item.nodeid), len(rank)))


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Parallel workers take whole units, in the collection's order (module fixtures are started
    once). A scheduler rather than `xdist_group` marks: pytest 9 ignores the node-id suffix xdist
    3.8 writes for those marks, and the tests were split test by test. xdist's own reordering
    (most tests first) is off: it put the one-test devnet units last."""
    from xdist.scheduler import LoadScopeScheduling

    class UnitScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _unit(nodeid)

    config.option.loadscopereorder = False
    return UnitScheduling(config, log)


@pytest.fixture(scope="session")
def ledger_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    """A ledger process with a 4-member oracle set (k = 3) whose oracles are NOT started: tests run
    the oracle daemons in-process (`tests.netfix.memory_oracle_network`). Each test uses its own
    devices and policies, so they share it."""
    network = Network.start(tmp_path_factory.mktemp("ledger-only"), n=4, k=3, start_oracles=False)
    try:
        yield network
    finally:
        network.stop()
