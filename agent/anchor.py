"""Device-history anchors (DESIGN §11): the agent writes each device's head onto the ledger.

At a fixed interval the agent sends one SignedAnchor (more only past MAX_ANCHOR_HEADS heads): the
latest chain-linked frame of every device it serves, and the end frame of every window it detected,
that the ledger does not hold yet. After a device is revoked, the ledger pays only windows whose
end it holds from such an anchor; a leaked device key cannot sign its way into that history
afterwards, because the anchor is the agent's statement of what the real device sent.

The decisions are pure (`select_heads`, `next_round`, `build_anchors`: values in, values out, the
time included); `Anchorer` is the shell that reads the agent's store, asks the ledger replica what is
anchored, and posts through the ledger client.

This file must never anchor a frame that is not chain-linked (a frame the agent could not check
against its predecessor), never a head the ledger would refuse (the batch would be refused whole),
and never block the ingest path: it reads the store through its own read-only connection.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from faultproof.errors import FaultproofError, Reason
from faultproof.identity import Identity
from faultproof.merkle import merkle_root
from faultproof.messages import MAX_ANCHOR_HEADS, AnchorBody, DeviceHead, SignedAnchor
from ledger.settlement import Settlement
from ledger.state import LedgerState

log = logging.getLogger("faultproof.agent.anchor")

# One anchor entry per agent per interval: short enough that a window is anchored well before an
# operator can react to a leaked key, long enough that the ledger grows by one entry per agent per
# minute and the ledger's per-device head history (MAX_ANCHORED_HEADS) spans days.
ANCHOR_INTERVAL_S = 60.0
# Window ends of claims detected this long ago or less are anchored (if the ledger lacks them).
WINDOW_END_HORIZON_MS = 7 * 24 * 3600 * 1000


def select_heads(state: LedgerState, candidates: Iterable[DeviceHead], now_ms: int) -> list[DeviceHead]:
    """The candidates the ledger would accept and does not hold yet, sorted as the rules require
    (by device, epoch, seq), one per (device, epoch, seq)."""
    skew = state.genesis.max_skew_ms
    out: dict[tuple[bytes, int, int], DeviceHead] = {}
    for h in candidates:
        device = state.device(h.device_id)
        if device is None or device.revoked_ms is not None or h.epoch not in device.epochs:
            continue
        if h.ts_ms > now_ms + skew:
            continue
        history = state.device_history.get(h.device_id)
        if history is not None and (h.epoch, h.seq) in history.heads:
            continue  # anchored already (by us, or another agent: never conflict with it)
        out.setdefault((h.device_id, h.epoch, h.seq), h)
    return [out[k] for k in sorted(out)]


def next_round(state: LedgerState, agent_id: bytes, now_ms: int) -> int:
    """Rounds must rise on the ledger; the clock gives room for restarts, the ledger the floor."""
    return max(now_ms, state.anchor_rounds.get(agent_id, 0) + 1)


def build_anchors(ledger_id: bytes, agent: Identity, first_round: int, heads: Sequence[DeviceHead]) -> list[SignedAnchor]:
    """Signed anchors over `heads` (already selected and sorted), MAX_ANCHOR_HEADS per anchor."""
    anchors: list[SignedAnchor] = []
    for i in range(0, len(heads), MAX_ANCHOR_HEADS):
        chunk = tuple(heads[i:i + MAX_ANCHOR_HEADS])
        body = AnchorBody(ledger_id=ledger_id, agent_id=agent.public_key, round=first_round + len(anchors),
                          heads=chunk, root=merkle_root([h.leaf_hash for h in chunk]))
        anchors.append(body.sign(agent))
    return anchors


# --------------------------------------------------------------------------- the shell

# Per device, a backward walk of the primary key (dev, epoch, seq) to its newest linked frame.
_LATEST_HEAD = """
SELECT epoch, seq, ts, chain FROM frames WHERE dev = ? AND linked = 1 ORDER BY epoch DESC, seq DESC LIMIT 1
"""
_WINDOW_ENDS = """
SELECT c.device_id, c.epoch, c.end_seq, f.ts, f.chain FROM claims c
JOIN devices d ON d.device_id = c.device_id
JOIN frames f ON f.dev = d.dev AND f.epoch = c.epoch AND f.seq = c.end_seq
WHERE c.detected_ms >= ? AND f.linked = 1
"""


def read_candidates(store_path: Path, now_ms: int) -> list[DeviceHead]:
    """Latest linked head of every device, and the end frames of recently detected windows."""
    conn = sqlite3.connect(f"file:{store_path}?mode=ro", uri=True, timeout=5.0)
    try:
        rows = []
        for dev, device_id in conn.execute("SELECT dev, device_id FROM devices").fetchall():
            latest = conn.execute(_LATEST_HEAD, (dev,)).fetchone()
            if latest is not None:
                rows.append((device_id, *latest))
        rows += conn.execute(_WINDOW_ENDS, (now_ms - WINDOW_END_HORIZON_MS,)).fetchall()
    except sqlite3.OperationalError as e:  # no tables yet (a brand-new store)
        log.debug("no heads to anchor yet: %s", e)
        return []
    finally:
        conn.close()
    return [DeviceHead(device_id=bytes(d), epoch=e, seq=s, ts_ms=t, chain=bytes(c)) for d, e, s, t, c in rows]


class Anchorer:
    """Anchors this agent's device heads every `interval_s` until cancelled."""

    def __init__(self, agent: Identity, store_path: Path, settlement: Settlement,
                 state: Callable[[], LedgerState | None], *, interval_s: float = ANCHOR_INTERVAL_S) -> None:
        self.agent, self.store_path, self.settlement = agent, store_path, settlement
        self.state_source, self.interval_s = state, interval_s
        self.anchored_heads = 0
        self.last_error: str | None = None

    async def anchor_once(self) -> int:
        """One interval's anchors; returns the number of heads the ledger accepted."""
        state = self.state_source()
        if state is None or not state.agent_enrolled(self.agent.public_key):
            return 0
        now = int(time.time() * 1000)
        candidates = await asyncio.to_thread(read_candidates, self.store_path, now)
        heads = select_heads(state, candidates, now)
        if not heads:
            return 0
        sent = 0
        for anchor in build_anchors(state.ledger_id, self.agent, next_round(state, self.agent.public_key, now), heads):
            await self.settlement.submit(anchor)
            sent += len(anchor.body.heads)
        self.anchored_heads += sent
        return sent

    async def anchor_device(self, device_id: bytes) -> DeviceHead | None:
        """Anchor the device's latest chain-linked head now, if the ledger does not hold it yet
        (DESIGN §15 H11: the final head before a decommission). Returns that head, or None when
        the agent holds no linked frame of the device. Raises the ledger's refusal."""
        state = self.state_source()
        if state is None or not state.agent_enrolled(self.agent.public_key):
            raise FaultproofError(Reason.UNKNOWN_AGENT, "this agent is not enrolled on the ledger (or no replica yet)")
        now = int(time.time() * 1000)
        mine = [h for h in await asyncio.to_thread(read_candidates, self.store_path, now) if h.device_id == device_id]
        if not mine:
            return None
        latest = max(mine, key=lambda h: (h.epoch, h.seq))
        for anchor in build_anchors(state.ledger_id, self.agent, next_round(state, self.agent.public_key, now),
                                    select_heads(state, [latest], now)):
            await self.settlement.submit(anchor)
            self.anchored_heads += len(anchor.body.heads)
        return latest

    async def run(self) -> None:
        while True:
            try:
                await self.anchor_once()
                self.last_error = None
            except FaultproofError as e:  # the ledger down or a refusal: retry at the next interval
                self.last_error = str(e)
                log.warning("device-history anchor failed: %s", e)
            await asyncio.sleep(self.interval_s)

