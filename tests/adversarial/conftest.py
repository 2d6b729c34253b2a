"""One adversarial network for the whole package: a ledger and 5 oracles (k = 4) on 127.0.0.1 whose
oracle-to-oracle links all run through proxies the tests can cut (advnet.py). Cases use fresh
devices, policies and agent keys instead of fresh networks; a case that kills, stops or cuts
something puts it back (`healthy`). Package scope: the network is stopped as soon as the last
adversarial test ran, so it never overlaps another suite's network for longer than needed.

`book` is the list of claims the suite expects paid; test_z_final.py checks that the ledger paid
exactly those, once each, and that `faultproof ledger verify` passes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.adversarial.advnet import AdvNetwork, LedgerBook


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "adv_case(case_id): an adversarial case listed in docs/security.md")


@pytest.fixture(scope="package")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdvNetwork]:
    with AdvNetwork.running(
        tmp_path_factory.mktemp("adv-net"), n=5, k=4,
        # The per-agent budget stays at its default (20/s, burst 200): floods use their own agents.
        oracle_tuning={"verify_workers": 1},
    ) as network:
        yield network


@pytest.fixture(scope="package")
def book() -> LedgerBook:
    return LedgerBook()


@pytest.fixture
def healthy(net: AdvNetwork) -> AdvNetwork:
    """The network with every link up and every process running (whatever the last case did)."""
    net.ensure_healthy()
    return net


def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> None:
    """On failure, attach the processes' log tails: a network case is undebuggable without them."""
    if call.excinfo is not None and call.when == "call":
        funcargs = getattr(item, "funcargs", {})
        network = funcargs.get("net") or funcargs.get("healthy")
        if isinstance(network, AdvNetwork):
            item.add_report_section("call", "network logs", network.logs(25))
