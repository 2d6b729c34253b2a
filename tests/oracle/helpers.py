"""Builders shared by the tests in this folder: incidents (a device, its policy, a triggering
window and the claim for it), further windows on a policy, ledger-side checks, and an in-process
oracle whose replica lags the ledger."""

from __future__ import annotations

import asyncio
from typing import Any

from faultproof.messages import SignedClaim
from oracle.node import OracleNode
from tests.netfix import SECOND, TRIGGERING, Incident, Network


def next_window(net: Network, inc: Incident, *, gap_ms: int = SECOND, overlap: int = 0) -> SignedClaim:
    """Another window on the same policy: after the last one (gap_ms later), or sharing `overlap`
    readings with it."""
    if overlap:
        inc.dev.record(TRIGGERING[:overlap], start_ts=inc.dev.timestamps[-1] + SECOND)
        start = inc.start + overlap
    else:
        start = inc.dev.record(TRIGGERING, start_ts=inc.dev.timestamps[-1] + gap_ms)
    return net.claim(inc.dev, inc.pid, inc.terms, start)


def paid_total(net: Network, pid: bytes) -> tuple[int, int]:
    p = net.policy(pid)
    return p["paid_total"], len(p["payouts"])


def no_record_anywhere(net: Network, claim_id: bytes) -> bool:
    return all(net.claim_status(o.index, claim_id) is None for o in net.oracles if o.alive())


async def stall_follower(node: OracleNode) -> None:
    """From now on the node's follower long-polls forever, as one backing off after a ledger
    restart (or a slow one) would: only a refresh (a poll with wait = 0) still reaches the ledger.
    Returns once the long poll in flight has returned, so the replica lags whatever is committed
    after this."""
    follower = node.follower
    assert follower is not None
    following = follower.poll
    stalled = asyncio.Event()

    async def stalled_long_poll(wait: float) -> list[Any]:
        if wait > 0:  # the follower's own loop: stuck from now on
            stalled.set()
            await asyncio.Event().wait()
        return await following(wait)

    follower.poll = stalled_long_poll  # type: ignore[method-assign]
    await asyncio.wait_for(stalled.wait(), 30)


class RecordingTransport:
    """Stand-in for the gossip transport of a node under test: records what it publishes."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    async def publish(self, topic: str, data: bytes) -> None:
        self.sent.append((topic, data))
