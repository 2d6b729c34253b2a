"""Corroborated policies on the agent's side (DESIGN §14, "Group claims"): which of this agent's
claims are parts of a group payout the ledger made.

An agent files its part of a corroborated claim as an ordinary claim for its own device (its
frames, its proof, its signature); the oracles assemble the group and the ledger pays the group's
claim_id, never the part's. `GroupPayouts` maps each window of every paid group back to the part's
own claim_id, so the agent records its part as paid. Pure: reads a `LedgerState`, keeps a cache by
ledger height, does no I/O.
"""

from __future__ import annotations

from faultproof.messages import GroupPayoutBody, claim_id
from ledger.state import LedgerState


class GroupPayouts:
    """part claim_id -> the amount the group payout that included it paid."""

    def __init__(self) -> None:
        self._height = -2
        self._seen = 0
        self._paid: dict[bytes, int] = {}

    def paid(self, state: LedgerState, part_claim_id: bytes) -> int | None:
        if state.height != self._height:
            self._refresh(state)
        return self._paid.get(part_claim_id)

    def _refresh(self, state: LedgerState) -> None:
        # Paid claims only grow (the ledger is append-only): scan only what is new since last time.
        claims = list(state.claims.values())
        for pc in claims[self._seen:]:
            if isinstance(pc.body, GroupPayoutBody):
                for w in pc.body.windows:
                    self._paid[claim_id(pc.policy_id, w.device_id, w.epoch, w.start_seq, w.end_seq)] = pc.paid
        self._seen = len(claims)
        self._height = state.height
