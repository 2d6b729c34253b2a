"""The oracle's replica of the ledger: follow, check, replay.

`LedgerView` (pure) holds a `LedgerState` built from the signed genesis entry and advanced only by
`apply`, which checks each entry's ledger signature (key from genesis), its chain link (prev_hash,
height) and replays it through the ledger's own state machine (`ledger.state`), so the view
and the ledger cannot disagree about a rule. It also checks the ledger's signed heads against the entries it replayed (a head naming another
entry at a height is a rewritten history) and keeps the newest, for receipts; the node stores them.

`LedgerFollower` (I/O) long-polls `GET /v1/entries?after=N&wait=S` through the ledger team's
`LedgerClient` and feeds the view; `refresh()` is the "refresh the ledger view before a Reject" of
DESIGN §4.3.

This file must never accept an entry that fails a check (an `IntegrityError` stops the follower and
is reported on /healthz), never decide anything about claims, and never write to the ledger except
through the node's QC poster.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from faultproof.errors import FaultproofError, Reason
from faultproof.messages import Genesis, Receipt, SignedEntry, SignedHead
from ledger.client import LedgerClient
from ledger.state import Effect, IntegrityError, LedgerState, TxKind

log = logging.getLogger("faultproof.oracle.view")


class LedgerView:
    """The replicated state plus the signed heads. Pure: entries in, effects out."""

    def __init__(self, genesis_entry: SignedEntry) -> None:
        self.state = LedgerState.from_genesis_entry(genesis_entry)
        self.head: SignedHead | None = None
        # claim_id -> its payout entry (for receipts); bounded by the number of payouts
        self.payout_entries: dict[bytes, SignedEntry] = {}
        self.integrity_error: IntegrityError | None = None
        # height -> entry hash of every entry replayed (32 bytes each): signed heads are checked
        # against the entry we hold at their height
        self.entry_hashes: list[bytes] = [self.state.head_hash]

    @property
    def genesis(self) -> Genesis:
        return self.state.genesis

    @property
    def height(self) -> int:
        return self.state.height

    def apply(self, entries: Sequence[SignedEntry]) -> list[Effect]:
        """Replay entries in order. Stops at the first bad one (IntegrityError, state unchanged
        by it); entries before it stay applied."""
        effects = []
        for signed in entries:
            if signed.entry.height <= self.state.height:
                continue  # already applied (a retried poll)
            effect = self.state.apply_entry(signed)
            self.entry_hashes.append(self.state.head_hash)
            if effect.kind is TxKind.PAYOUT and effect.claim_id is not None:
                self.payout_entries[effect.claim_id] = signed
            effects.append(effect)
        return effects

    def accept_head(self, head: SignedHead) -> None:
        """Keep a signed head if it is the ledger's, for our ledger, and agrees with our replica."""
        if head.ledger_id != self.state.ledger_id or not head.verify(self.genesis.ledger_key):
            raise IntegrityError(head.height, "signed head does not verify under the ledger key")
        if head.height > self.state.height:
            return  # not checkable yet; a later poll brings us there and a later head with us
        if head.entry_hash != self.entry_hashes[head.height]:
            raise IntegrityError(head.height, "the ledger signed a head naming another entry than the one "
                                 "we replayed at that height (rewritten history)")
        if self.head is None or head.height >= self.head.height:
            self.head = head

    def receipt(self, claim_id: bytes) -> Receipt | None:
        entry = self.payout_entries.get(claim_id)
        if entry is None or self.head is None or self.head.height < entry.entry.height:
            return None
        return Receipt(genesis=self.genesis, entry=entry, head=self.head)


EffectsCallback = Callable[[list[Effect]], None]


class LedgerFollower:
    """Keeps a `LedgerView` current. `bootstrap` once, then `run` until cancelled."""

    def __init__(self, client: LedgerClient, wait_s: float, on_effects: EffectsCallback,
                 on_head: Callable[[SignedHead], None] | None = None) -> None:
        self.client = client
        self.wait_s = wait_s
        self.on_effects = on_effects
        self.on_head = on_head
        self.view: LedgerView | None = None
        self._lock = asyncio.Lock()  # one poll applies at a time (refresh vs the long poll)
        self.connected = False
        self._last_head_fetch = 0.0

    async def bootstrap(self, expected_ledger_id: bytes | None = None, retry_s: float = 0.5) -> LedgerView:
        """Fetch the genesis entry and everything after it. Retries until the ledger answers."""
        while True:
            try:
                _, entries = await self.client.entries(-1, 0)
                if not entries:
                    raise FaultproofError(Reason.UNAVAILABLE, "ledger returned no genesis entry")
                view = LedgerView(entries[0])
                if expected_ledger_id is not None and view.state.ledger_id != expected_ledger_id:
                    raise IntegrityError(0, "the ledger at this URL is not the one this node's data belongs to")
                view.apply(entries[1:])
                self.view = view
                break
            except FaultproofError as e:
                log.info("waiting for the ledger: %s", e)
                await asyncio.sleep(retry_s)
        await self.refresh()
        self.connected = True
        return view

    async def poll(self, wait: float) -> list[Effect]:
        """One GET /v1/entries after our height; applies what came back."""
        assert self.view is not None
        view = self.view
        _, entries = await self.client.entries(view.height, wait)
        async with self._lock:
            try:
                effects = view.apply(entries)
            except IntegrityError as e:
                view.integrity_error = e
                raise
        if effects:
            # A payout's receipt needs a signed head at or above it: fetch one now, unthrottled.
            await self._fetch_head(force=any(e.kind is TxKind.PAYOUT for e in effects))
            self.on_effects(effects)
        return effects

    async def _fetch_head(self, force: bool = False) -> None:
        """The ledger's signed head, checked against our replica (DESIGN §1: oracles keep signed
        heads, so a rewritten history cannot go unnoticed). At most a few times per second."""
        now = time.monotonic()
        if (not force and now - self._last_head_fetch < 0.2) or self.view is None:
            return
        self._last_head_fetch = now
        try:
            head = SignedHead.from_json((await self.client.state())["signed_head"])
        except (FaultproofError, KeyError, TypeError) as e:
            log.debug("no signed head: %s", e)
            return
        try:
            self.view.accept_head(head)
        except IntegrityError as e:
            self.view.integrity_error = e
            raise
        if self.on_head is not None:
            self.on_head(head)

    async def refresh(self) -> None:
        """Catch up now (no waiting). Transport errors are logged: we then decide on the view we
        have (a Reject is only ever signed on a view at least as new as the last good poll)."""
        try:
            while await self.poll(0):
                pass
        except FaultproofError as e:
            log.warning("ledger refresh failed: %s", e)

    async def run(self) -> None:
        backoff = 0.2
        while True:
            try:
                await self.poll(self.wait_s)
                self.connected = True
                backoff = 0.2
            except IntegrityError as e:
                # Never follow a ledger whose history does not check out; stay up so /healthz and
                # /v1/status can say why, and refuse claims (UNAVAILABLE) from here on.
                log.error("ledger integrity error; no longer following: %s", e)
                self.connected = False
                await asyncio.Event().wait()
            except FaultproofError as e:
                self.connected = False
                log.warning("ledger poll failed (%s); retrying in %.1f s", e, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
