"""The one way to follow the ledger (oracles and agents alike): replay, signed heads, the clock.

`LedgerView` (pure) holds a `LedgerState` built from the signed genesis entry and advanced only by
`apply`, which checks each entry's ledger signature (key from genesis), its chain link (prev_hash,
height) and replays it through the ledger's own rules (`ledger.state`), so a follower and the
ledger cannot disagree about a rule. It checks the ledger's signed heads against the entries it
replayed (a head naming another entry at a height is a rewritten history) and keeps the newest,
for receipts.

`entry_time_problem` (pure) is the follower's clock rule (DESIGN §11): the ledger's time decides
payouts (claim windows, skew) and expiry, so a follower refuses an entry whose time is further
from its own clock than `max_skew_ms`: ahead of now, or behind the moment we last saw the ledger
without it (an entry appended after that moment cannot honestly be dated before it). A dishonest
operator could otherwise date entries to accept a late QC or expire a policy early.

`LedgerFollower` (I/O) long-polls the settlement backend (`ledger.settlement.Settlement`; the HTTP
`LedgerClient` today), feeds the view, fetches signed heads, reconnects with jittered backoff (`faultproof.retry`: one log line when
the ledger goes away, one when it is back), and reports:
`problem` says why it does not follow (an integrity error, permanent; or an entry refused for its
time, retried: a clock that was wrong may come right), `healthy` is False meanwhile, and the
`faultproof_follower_*` metrics count it. `refresh()` is the "refresh the ledger view before a
Reject" of DESIGN §4.3.

This file must never accept an entry that fails a check, never decide anything about claims, and
never write to the ledger.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge

from faultproof.errors import FaultproofError, Reason
from faultproof.messages import Genesis, Receipt, SignedEntry, SignedHead
from faultproof.retry import Reachability
from ledger.settlement import Settlement
from ledger.state import Effect, IntegrityError, LedgerState, TxKind

log = logging.getLogger("faultproof.ledger.follower")

# Default allowed distance between an entry's time and our clock when the genesis does not say
# more: clocks of a small deployment agree within seconds (NTP); a minute leaves room for a slow
# disk or a loaded host without letting an operator move time by hours.
DEFAULT_FOLLOWER_SKEW_MS = 60_000


class LedgerView:
    """The replicated state plus the signed heads. Pure: entries in, effects out."""

    def __init__(self, genesis_entry: SignedEntry,
                 start: Callable[[SignedEntry], LedgerState] = LedgerState.from_genesis_entry) -> None:
        # `start`: the backend's way to begin a replay (Settlement.replay_state): the SQLite
        # ledger's genesis, or a chain mirror's (ledger/evm/mirror.py: the contract's policy ids)
        self.state = start(genesis_entry)
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


def entry_time_problem(entry_time_ms: int, now_ms: int, seen_without_ms: int | None, max_skew_ms: int) -> str | None:
    """Why an entry's time is not believable, or None. `seen_without_ms` is our clock when we last
    asked for entries and the ledger had none beyond what we hold (None: not yet known, e.g. while
    replaying history, when only the future bound applies)."""
    if entry_time_ms > now_ms + max_skew_ms:
        return f"dated {entry_time_ms - now_ms} ms ahead of our clock (allowed skew {max_skew_ms} ms)"
    if seen_without_ms is not None and entry_time_ms < seen_without_ms - max_skew_ms:
        return (f"dated {seen_without_ms - entry_time_ms} ms before we last saw the ledger without it "
                f"(allowed skew {max_skew_ms} ms)")
    return None


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


EffectsCallback = Callable[[list[Effect]], None]


class LedgerFollower:
    """Keeps a `LedgerView` current. `bootstrap` once, then `run` until cancelled."""

    def __init__(self, client: Settlement, wait_s: float, on_effects: EffectsCallback | None = None,
                 on_head: Callable[[SignedHead], None] | None = None, *,
                 max_skew_ms: int | None = None, clock: Callable[[], int] = wall_clock_ms,
                 registry: CollectorRegistry | None = None) -> None:
        self.client = client
        self.wait_s = wait_s
        self.on_effects = on_effects
        self.on_head = on_head
        self.clock = clock
        self._max_skew_ms = max_skew_ms
        self.view: LedgerView | None = None
        self._lock = asyncio.Lock()  # one poll applies at a time (refresh vs the long poll)
        self._refresh_lock = asyncio.Lock()  # one catch-up at a time; callers share them
        self._refreshes_started = 0
        self.connected = False
        self.time_refusal: str | None = None  # set while an entry is refused for its time
        self._seen_without_ms: int | None = None
        self._last_head_fetch = 0.0
        # One line when the ledger goes away and one when it is back, not one per retry.
        self.reach = Reachability("ledger", log)
        registry = registry if registry is not None else CollectorRegistry()
        self.refused_metric = Counter("faultproof_follower_entries_refused_total",
                                      "Ledger entries this follower refused, by reason", ["reason"],
                                      registry=registry)
        self.reachable_metric = Gauge("faultproof_follower_ledger_reachable",
                                      "1 while the last request to the ledger was answered", registry=registry)
        self.skew_metric = Gauge("faultproof_follower_time_skew_refusing",
                                 "1 while an entry is refused because its time is off our clock",
                                 registry=registry)

    # -- state ------------------------------------------------------------------------------

    @property
    def max_skew_ms(self) -> int:
        if self._max_skew_ms is not None:
            return self._max_skew_ms
        g = self.view.genesis.max_skew_ms if self.view is not None else 0
        return max(g, DEFAULT_FOLLOWER_SKEW_MS)

    @property
    def integrity_error(self) -> IntegrityError | None:
        return self.view.integrity_error if self.view is not None else None

    @property
    def problem(self) -> str | None:
        """Why we are not following the ledger right now, or None."""
        if self.integrity_error is not None:
            return f"ledger integrity error: {self.integrity_error}"
        if self.time_refusal is not None:
            return f"{Reason.LEDGER_TIME_SKEW.value}: {self.time_refusal}"
        return None

    @property
    def healthy(self) -> bool:
        return self.view is not None and self.problem is None

    # -- following --------------------------------------------------------------------------

    async def bootstrap(self, expected_ledger_id: bytes | None = None,
                        timeout: float | None = None) -> LedgerView:
        """Fetch the genesis entry and everything after it; retries while the ledger is down (up
        to `timeout` s if given). A ledger that is not `expected_ledger_id` is an IntegrityError."""
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        while True:
            try:
                _, entries = await self.client.entries(-1, 0)
                if not entries:
                    raise FaultproofError(Reason.UNAVAILABLE, "ledger returned no genesis entry")
                view = LedgerView(entries[0], self.client.replay_state)
                if expected_ledger_id is not None and view.state.ledger_id != expected_ledger_id:
                    raise IntegrityError(0, f"the ledger at this URL is {view.state.ledger_id.hex()}, not the "
                                         f"configured ledger_id {expected_ledger_id.hex()}")
                self.view = view
                self._reached(None)
                break
            except FaultproofError as e:
                if deadline is not None and asyncio.get_running_loop().time() > deadline:
                    raise FaultproofError(Reason.UNAVAILABLE, f"ledger not reachable: {e}") from None
                delay = self._reached(e)
                if deadline is not None:  # never sleep past the caller's deadline
                    delay = max(0.0, min(delay, deadline - asyncio.get_running_loop().time()))
                await asyncio.sleep(delay)
        await self._accept(entries[1:], asked_ms=None, committed=None)
        await self.refresh()
        self.connected = True
        return view

    def _reached(self, error: FaultproofError | None) -> float:
        """Record one request's outcome; the backoff before the next try after a failure."""
        self.reachable_metric.set(0 if error is not None else 1)
        if error is None:
            self.reach.succeeded()
            return 0.0
        return self.reach.failed(error)

    async def poll(self, wait: float) -> list[Effect]:
        """One request for entries after our height; applies what came back and believable."""
        assert self.view is not None
        asked = self.clock()
        committed, entries = await self.client.entries(self.view.height, wait)
        return await self._accept(entries, asked_ms=asked, committed=committed)

    async def _accept(self, entries: Sequence[SignedEntry], *, asked_ms: int | None,
                      committed: int | None) -> list[Effect]:
        assert self.view is not None
        view = self.view
        async with self._lock:
            now = self.clock()
            fresh = [e for e in entries if e.entry.height > view.height]
            believable: list[SignedEntry] = []
            refusal = None
            for signed in fresh:
                problem = entry_time_problem(signed.entry.time_ms, now, self._seen_without_ms, self.max_skew_ms)
                if problem is not None:
                    refusal = f"entry {signed.entry.height}: {problem}"
                    break
                believable.append(signed)
            try:
                effects = view.apply(believable)
            except IntegrityError as e:
                view.integrity_error = e
                self.refused_metric.labels("integrity").inc()
                raise
            if refusal is not None:
                if self.time_refusal != refusal:
                    log.error("refusing to follow the ledger: %s", refusal)
                    self.refused_metric.labels(Reason.LEDGER_TIME_SKEW.value).inc()
                self.time_refusal = refusal
                self.skew_metric.set(1)
            else:
                if self.time_refusal is not None:
                    log.warning("ledger entry times agree with our clock again")
                self.time_refusal = None
                self.skew_metric.set(0)
                if asked_ms is not None and committed is not None and view.height >= committed:
                    # Anything appended from now on was appended after we asked.
                    self._seen_without_ms = asked_ms
        if effects:
            # A payout's receipt needs a signed head at or above it: fetch one now, unthrottled.
            await self._fetch_head(force=any(e.kind is TxKind.PAYOUT for e in effects))
            if self.on_effects is not None:
                self.on_effects(effects)
        return effects

    async def _fetch_head(self, force: bool = False) -> None:
        """The ledger's signed head, checked against our replica (DESIGN §1: followers keep signed
        heads, so a rewritten history cannot go unnoticed). At most a few times per second."""
        now = time.monotonic()
        if (not force and now - self._last_head_fetch < 0.2) or self.view is None:
            return
        self._last_head_fetch = now
        try:
            head = await self.client.signed_head()
        except FaultproofError as e:
            log.debug("no signed head: %s", e)
            return
        try:
            self.view.accept_head(head)
        except IntegrityError as e:
            self.view.integrity_error = e
            self.refused_metric.labels("integrity").inc()
            raise
        if self.on_head is not None:
            self.on_head(head)

    async def refresh(self) -> None:
        """Catch up now (no waiting), to a ledger height at least as new as at this call. Transport
        errors are logged: we then decide on the view we have (a Reject is only ever signed on a
        view at least as new as the last good poll).

        Concurrent callers share catch-ups, so a flood of claims that each ask for one costs the
        ledger one request at a time: a caller waits for the catch-up under way (it may have asked
        before what this caller needs) and then shares the next one with every caller that came
        meanwhile."""
        wanted = self._refreshes_started + 1  # a catch-up that starts after this call
        async with self._refresh_lock:
            if self._refreshes_started >= wanted:
                return  # one started after this call and has finished while we waited
            self._refreshes_started += 1
            await self._catch_up()

    async def _catch_up(self) -> None:
        try:
            while await self.poll(0):
                pass
        except FaultproofError as e:
            log.warning("ledger refresh failed: %s", e)

    async def run(self) -> None:
        """Follow until cancelled. An integrity error stops following for good (the process stays
        up so /healthz and /v1/status can say why); an entry refused for its time is retried."""
        backoff = 0.2
        while True:
            try:
                if self.integrity_error is not None:
                    await asyncio.Event().wait()
                await self.poll(self.wait_s if self.time_refusal is None else 0)
                self._reached(None)
                self.connected = self.time_refusal is None
                if self.time_refusal is not None:
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                else:
                    backoff = 0.2
            except IntegrityError as e:
                log.error("ledger integrity error; no longer following: %s", e)
                self.connected = False
            except FaultproofError as e:
                self.connected = False
                await asyncio.sleep(self._reached(e))
