"""The dashboard's I/O edge: read the network's public HTTP APIs into a `Snapshot`.

  - the ledger: `GET /v1/entries?after=N&wait=S` (msgpack, long poll) replayed into the
    `LedgerReplica`; `GET /v1/state` for the signed head after each batch; `GET
    /v1/receipts/{claim_id}` once per payout, checked offline with `ledger.receipts.verify_receipt`.
  - each oracle, every `poll_s`: `/readyz` (ready or not, and its round trip), `/v1/status`,
    `/metrics` (mean proof-verification latency), `/v1/claims` and `/v1/claims/{id}` for every claim
    that changed or is still open.

Every change bumps `snapshot.version` and wakes the pages' event streams. A service that does not
answer is recorded as such (the page says so) and retried; nothing here raises past `run()`.
This module never holds a key and never sends anything but GET requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import msgpack

from dashboard.model import (
    LedgerReplica,
    OracleObservation,
    ReceiptStatus,
    Snapshot,
    oracle_fingerprint,
    parse_verify_latency,
)
from faultproof.errors import DecodeError
from faultproof.messages import Receipt, SignedEntry, SignedHead
from ledger.receipts import verify_receipt

log = logging.getLogger("faultproof.dashboard")

MSGPACK = "application/msgpack"
OPEN = ("pending", "approved")
RECEIPTS_PER_ROUND = 1000
RECEIPT_BATCH = 8


class Collector:
    def __init__(self, ledger_url: str, oracle_urls: list[str], *, clock: Callable[[], int],
                 poll_s: float = 1.0, wait_s: float = 10.0, page: int = 1000) -> None:
        self.snapshot = Snapshot(ledger_url.rstrip("/"), [u.rstrip("/") for u in oracle_urls])
        self.clock = clock
        self.poll_s, self.wait_s, self.page = poll_s, wait_s, page
        self.changed = asyncio.Condition()
        self._session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._fingerprints: dict[str, Any] = {}
        self._claim_marks: dict[tuple[str, str], Any] = {}  # (url, claim) -> (status, updated_ms)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.wait_s + 10))
        self._tasks = [asyncio.create_task(self._follow_ledger(), name="dashboard-ledger"),
                       asyncio.create_task(self._poll_oracles(), name="dashboard-oracles")]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self._session is not None:
            await self._session.close()

    async def bump(self) -> None:
        self.snapshot.version += 1
        async with self.changed:
            self.changed.notify_all()

    async def wait_change(self, version: int, timeout: float) -> int:
        """Return once the snapshot's version differs from `version` (or on timeout)."""
        async with self.changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait_for(lambda: self.snapshot.version != version), timeout)
        return self.snapshot.version

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "start() first"
        return self._session

    # ------------------------------------------------------------------ ledger

    async def _follow_ledger(self) -> None:
        snap = self.snapshot
        while True:
            try:
                after = snap.replica.height if snap.replica else -1
                if snap.replica is not None and snap.replica.problem is not None:
                    await asyncio.sleep(self.wait_s)  # a ledger that does not verify: show, do not follow
                    continue
                # Long-poll only once caught up, receipts included: a backlog is worked off first.
                backlog = snap.replica is None or len(snap.receipts) < len(snap.replica.payouts)
                wait = 0 if backlog else self.wait_s
                async with self.session.get(f"{snap.ledger_url}/v1/entries",
                                            params={"after": str(after), "limit": str(self.page), "wait": str(wait)},
                                            headers={"Accept": MSGPACK}) as resp:
                    if resp.status != 200:
                        raise RuntimeError(f"GET /v1/entries answered {resp.status}")
                    height, raws = msgpack.unpackb(await resp.read(), raw=False)
                entries = [SignedEntry.decode(r) for r in raws]
                changed = bool(entries)
                if entries:
                    if snap.replica is None:
                        snap.replica = LedgerReplica(entries[0])
                        entries = entries[1:]
                    snap.replica.apply(entries)
                    await asyncio.sleep(0)  # let pages render between pages of a long catch-up
                if snap.replica is not None and snap.replica.height >= int(height):
                    changed |= await self._read_head()
                    changed |= await self._read_receipts()
                if snap.ledger_error is not None:
                    snap.ledger_error, changed = None, True
                if changed:
                    await self.bump()
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, TimeoutError, OSError, RuntimeError, ValueError, DecodeError) as e:
                msg = _describe(e)
                if snap.ledger_error != msg:
                    snap.ledger_error = msg
                    await self.bump()
                await asyncio.sleep(self.poll_s)

    async def _read_head(self) -> bool:
        snap = self.snapshot
        assert snap.replica is not None
        async with self.session.get(f"{snap.ledger_url}/v1/state") as resp:
            if resp.status != 200:
                raise RuntimeError(f"GET /v1/state answered {resp.status}")
            body = await resp.json()
        head = SignedHead.from_json(body["signed_head"])
        before = (snap.replica.head, snap.replica.head_problem)
        snap.replica.accept_head(head)
        return before != (snap.replica.head, snap.replica.head_problem)

    async def _read_receipts(self) -> bool:
        """Fetch and verify, once, the receipt of every payout not yet checked (a few at a time:
        a long ledger's backlog is thousands)."""
        snap = self.snapshot
        assert snap.replica is not None
        # newest first: the claims page lists those first, so they are verified first
        todo = [cid for cid in reversed(snap.replica.payouts) if cid not in snap.receipts][:RECEIPTS_PER_ROUND]
        for start in range(0, len(todo), RECEIPT_BATCH):
            batch = todo[start:start + RECEIPT_BATCH]
            for cid, result in zip(batch, await asyncio.gather(*(self._receipt(c) for c in batch)), strict=True):
                snap.receipts[cid] = result
            if start and start % (RECEIPT_BATCH * 16) == 0:
                await self.bump()  # show progress on a long backlog
        return bool(todo)

    async def _receipt(self, cid: str) -> ReceiptStatus:
        snap = self.snapshot
        assert snap.replica is not None
        async with self.session.get(f"{snap.ledger_url}/v1/receipts/{cid}", headers={"Accept": MSGPACK}) as resp:
            raw = await resp.read()
            status = resp.status
        if status != 200:
            return ReceiptStatus(False, error=f"the ledger answered {status}")
        try:
            check = verify_receipt(Receipt.decode(raw), ledger_id=snap.replica.state.ledger_id)
        except DecodeError as e:
            return ReceiptStatus(False, error=f"the receipt does not decode: {e}")
        return ReceiptStatus(check.ok, tuple(check.problems), tuple(check.notes))

    # ------------------------------------------------------------------ oracles

    async def _poll_oracles(self) -> None:
        while True:
            started = time.monotonic()
            try:
                results = await asyncio.gather(*(self._poll_one(u) for u in self.snapshot.oracle_urls))
                if any(results):
                    await self.bump()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug here must not stop the dashboard; it is logged, the loop goes on
                log.exception("polling the oracles failed")
            await asyncio.sleep(max(0.05, self.poll_s - (time.monotonic() - started)))

    async def _get(self, url: str, timeout: float = 3.0) -> tuple[int, bytes]:
        async with self.session.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            return resp.status, await resp.read()

    async def _poll_one(self, url: str) -> bool:
        snap = self.snapshot
        before = snap.oracles.get(url)
        obs = OracleObservation(url, self.clock(), last_oracle_id=before.oracle_id if before else None)
        changed = False
        try:
            t0 = time.monotonic()
            code, raw = await self._get(f"{url}/readyz")
            obs.latency_ms = (time.monotonic() - t0) * 1000
            obs.healthz_status = code
            obs.healthz = _json_or_none(raw)
            code, raw = await self._get(f"{url}/v1/status")
            obs.status = _json_or_none(raw) if code == 200 else None
            code, raw = await self._get(f"{url}/metrics")
            if code == 200:
                obs.verify_mean_ms, obs.verify_count = parse_verify_latency(raw.decode(errors="replace"))
            changed |= await self._poll_claims(url)
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as e:
            obs.error = _describe(e)
        snap.oracles[url] = obs
        fp = oracle_fingerprint(obs)
        if self._fingerprints.get(url) != fp:
            self._fingerprints[url] = fp
            changed = True
        return changed

    async def _poll_claims(self, url: str) -> bool:
        snap = self.snapshot
        code, raw = await self._get(f"{url}/v1/claims", timeout=10.0)
        listing = _json_or_none(raw) if code == 200 else None
        if not listing:
            return False
        changed = False
        for item in listing.get("claims", []):
            cid = str(item["claim_id"])
            mark = (item.get("status"), item.get("updated_ms"))
            key = (url, cid)
            if self._claim_marks.get(key) == mark and item.get("status") not in OPEN:
                continue
            code, raw = await self._get(f"{url}/v1/claims/{cid}")
            view = _json_or_none(raw) if code == 200 else None
            if view is None:
                continue
            view.pop("receipt", None)  # the dashboard fetches and checks receipts from the ledger itself
            view.pop("updated_ms", None)
            self._claim_marks[key] = mark
            changed |= snap.claims.update(url, view)
        return changed


def _json_or_none(raw: bytes) -> Any:
    import json

    try:
        return json.loads(raw)
    except ValueError:
        return None


def _describe(e: BaseException) -> str:
    if isinstance(e, aiohttp.ClientConnectorError):
        return "unreachable (connection refused)"
    if isinstance(e, TimeoutError | asyncio.TimeoutError):
        return "no answer (timed out)"
    text = str(e) or type(e).__name__
    return text[:200]
