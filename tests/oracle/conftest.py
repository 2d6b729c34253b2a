"""One real network for every test in tests/oracle: a ledger and 5 oracles (k = 4) on 127.0.0.1,
started once for the folder (tests/netfix.py) and stopped after its last test, so six idle
processes do not share the machine with the rest of the run. Tests that kill or replace an oracle
put it back (`healthy` restarts whatever is down before each test that asks for it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.netfix import Network


@pytest.fixture(scope="package")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with Network.running(
        tmp_path_factory.mktemp("oracle-net"), n=5, k=4,
        # Small per-agent budget so RATE_LIMITED is reachable; honest test agents stay far below it.
        # A low cap on claims one member may open with votes, so the flood test reaches it.
        oracle_tuning={"agent_rate_per_s": 5.0, "agent_burst": 40, "max_open_per_voter": 1000},
    ) as network:
        yield network


@pytest.fixture
def healthy(net: Network) -> Network:
    """The network with every oracle running (restarting any a previous test left down)."""
    for o in net.oracles:
        if not o.alive():
            o.start()
    return net


def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> None:
    """On failure, attach the processes' log tails: a network test is undebuggable without them."""
    if call.excinfo is not None and call.when == "call":
        network = item.funcargs.get("net") or item.funcargs.get("healthy")  # type: ignore[attr-defined]
        if isinstance(network, Network):
            item.add_report_section("call", "network logs", network.logs(25))
