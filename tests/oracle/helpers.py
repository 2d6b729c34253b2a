"""Builders shared by the tests in this folder: incidents (a device, its policy, a triggering
window and the claim for it), further windows on a policy, and ledger-side checks."""

from __future__ import annotations

import dataclasses

from faultproof.identity import Identity
from faultproof.messages import IssuePolicy, SignedClaim
from faultproof.zk import TriggerParams
from tests.netfix import SECOND, DeviceSim, Network, now_ms

PARAMS = TriggerParams.count(80, 2)
TRIGGERING = [90, 95, 10, 12]  # two readings above 80: the policy's trigger holds


@dataclasses.dataclass
class Incident:
    dev: DeviceSim
    pid: bytes
    terms: IssuePolicy
    start: int
    claim: SignedClaim

    @property
    def claim_id(self) -> bytes:
        return self.claim.claim.claim_id


def incident(net: Network, *, window_ts: int | None = None, agent: Identity | None = None,
             **terms: int) -> Incident:
    """A fresh device with a policy and one triggering window (ending ~20 s ago by default)."""
    window_ts = window_ts if window_ts is not None else now_ms() - 25 * SECOND
    dev = net.new_device(anchor_ts=window_ts - SECOND)
    pid, policy = net.issue_policy(dev, PARAMS, **terms)
    start = dev.record(TRIGGERING, start_ts=window_ts)
    return Incident(dev, pid, policy, start, net.claim(dev, pid, policy, start, agent=agent))


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
