"""faultproof.retry: jittered exponential backoff, and one log line per state change (the agent's
claim sender uses it against oracles that do not answer)."""

from __future__ import annotations

import asyncio
import logging
import statistics

import pytest

from agent.claims import ClaimSender
from agent.metrics import AgentMetrics
from faultproof.procs import free_port
from faultproof.retry import Reachability, backoff_delay


def test_backoff_doubles_to_the_cap_with_jitter_everywhere() -> None:
    for attempt, base in ((1, 0.2), (2, 0.4), (3, 0.8), (6, 5.0), (40, 5.0)):
        delays = [backoff_delay(attempt, 0.2, 5.0) for _ in range(200)]
        jitter = min(base / 2, 1.25)
        assert all(base <= d <= base + jitter for d in delays), (attempt, min(delays), max(delays))
        # spread, also at the cap: n followers of a restarted ledger do not reconnect in step
        assert statistics.pstdev(delays) > jitter / 10, (attempt, statistics.pstdev(delays))


def test_one_line_down_one_line_back(caplog: pytest.LogCaptureFixture) -> None:
    reach = Reachability("the ledger", logging.getLogger("test.retry"))
    with caplog.at_level(logging.INFO, logger="test.retry"):
        for _ in range(50):
            reach.failed("connection refused")
        reach.succeeded()
        reach.succeeded()
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["the ledger unreachable (connection refused); retrying with backoff",
                     "the ledger reachable again after 50 failed attempts"]
    assert reach.reachable


def test_claim_sender_says_once_that_the_oracles_are_unreachable(caplog: pytest.LogCaptureFixture) -> None:
    async def run() -> None:
        sender = ClaimSender(None, [f"http://127.0.0.1:{free_port()}"], AgentMetrics(), timeout=1.0)
        try:
            for _ in range(5):
                assert await sender.post(b"x") is None
                assert await sender.oracle_view(b"\x00" * 32) is None
        finally:
            await sender.close()
        assert sender.reach.failures == 10

    with caplog.at_level(logging.INFO, logger="faultproof"):
        asyncio.run(run())
    assert sum("unreachable" in r.getMessage() for r in caplog.records if r.levelno >= logging.INFO) == 1
