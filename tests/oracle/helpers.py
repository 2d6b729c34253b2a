"""Builders shared by the tests in this folder: incidents (a device, its policy, a triggering
window and the claim for it), further windows on a policy, and ledger-side checks."""

from __future__ import annotations

from faultproof.messages import SignedClaim
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
