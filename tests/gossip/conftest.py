"""Shared multi-process networks for the gossip tests. Each fixture starts its processes once per
module and stops exactly those (by pid) at the end, even when a test fails."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.gossip.cluster import Cluster

BULK = "/t/bulk"  # anyone, 4 KB, generous rate: the burst test
MEMBERS = "/t/members"  # nodes 0-3 only, 4 KB, 20 msg/s burst 40: the refusal tests
CATCHUP = "/t/catchup"  # pending items, served on /faultproof/1/pending


@pytest.fixture(scope="module")
def net5(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Five nodes, each dialling every lower-numbered one (a full mesh). Node 3 is misconfigured
    with a 64 KB limit on MEMBERS (so it can send oversize); node 4 is not a member."""
    c = Cluster(tmp_path_factory.mktemp("net5"), 5)
    members = [c.hex(i) for i in range(4)]
    c.configure(
        links={i: list(range(i)) for i in range(5)},
        topics={
            BULK: {"max_size": 4096, "rate": 5000, "burst": 5000},
            MEMBERS: {"max_size": 4096, "allowed": members, "rate": 20, "burst": 40},
            CATCHUP: {"max_size": 4096, "rate": 200, "burst": 1000},
        },
        pending_topics=[CATCHUP],
        overrides={3: {MEMBERS: {"max_size": 65536}}},
        regossip_interval=600.0,  # so the restart test proves the pull path, not re-gossip
    )
    try:
        c.start()
        c.wait_mesh(BULK, {i: 4 for i in range(5)})
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def line5(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A - B - C - D - E: each node dials only its predecessor."""
    c = Cluster(tmp_path_factory.mktemp("line5"), 5)
    c.configure(
        links={i: [i - 1] for i in range(1, 5)},
        topics={BULK: {"max_size": 4096, "rate": 5000, "burst": 5000}},
    )
    try:
        c.start()
        c.wait_mesh(BULK, {0: 1, 1: 2, 2: 2, 3: 2, 4: 1})
        yield c
    finally:
        c.stop()
