"""The agent's pure core: the decisions the ingest engine and the claim manager act on.

It owns:
  - the claim lifecycle (`TRANSITIONS`) and the follow-up decision (`follow_up`): when a claim
    counts as rejected (n-k+1 oracles, or the ledger, say so; design §12) and that a payout seen
    on the ledger is always recorded, also after a rejection;
  - the ingest bookkeeping (`IngestCore`): the ledger snapshot, the frame checker, the detector
    of each insured device, the windows already claimed per policy, the open claims' frames, and
    the retention cutoff (counted from frame time, never from the wall clock);
  - the re-attestation schedule (`attestations_due`, DESIGN §15): which devices to ask for fresh
    evidence now, over which ledger head, and whether evidence that arrives answers a request.

Rules: every input is a value, time included (`now_ms` is passed in; retention counts from the
newest stored frame's timestamp). What it returns are decisions; the shell (agent.ingest's
thread and store, agent.claims' loops and HTTP) performs them and persists them before they
count. It must never import asyncio, aiohttp, sqlite3, socket, threading or libp2p, read a clock,
or touch a file: tests/agent/test_core.py scans its imports.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.detect import Detector, PolicyTerms, Window
from agent.frames import DeviceRecord, FrameChecker, Incoming, StoredLookup, Verdict
from faultproof.errors import FaultproofError, Reason, Stage

log = logging.getLogger("faultproof.agent.core")

# --------------------------------------------------------------------------- claim lifecycle


class ClaimStatus(enum.StrEnum):
    DETECTED = "detected"
    PROVED = "proved"
    SUBMITTED = "submitted"
    APPROVED = "approved"
    PAID = "paid"
    REJECTED = "rejected"
    FAILED = "failed"


class ClaimEvent(enum.StrEnum):
    PROVED = "proved"
    PROVE_FAILED = "prove_failed"
    SENT = "sent"
    APPROVED = "approved"
    REJECTED = "rejected"
    PAID = "paid"


S, E = ClaimStatus, ClaimEvent
TRANSITIONS: dict[tuple[ClaimStatus, ClaimEvent], ClaimStatus] = {
    (S.DETECTED, E.PROVED): S.PROVED,
    (S.DETECTED, E.PROVE_FAILED): S.FAILED,
    (S.PROVED, E.SENT): S.SUBMITTED,
    (S.SUBMITTED, E.SENT): S.SUBMITTED,
    (S.APPROVED, E.SENT): S.APPROVED,
    (S.PROVED, E.APPROVED): S.APPROVED,
    (S.SUBMITTED, E.APPROVED): S.APPROVED,
    (S.PROVED, E.REJECTED): S.REJECTED,
    (S.SUBMITTED, E.REJECTED): S.REJECTED,
    (S.APPROVED, E.REJECTED): S.REJECTED,
    # The ledger is the source of truth: a payout it holds is recorded whatever the agent
    # concluded before (a rejection is the agent's reading of oracle answers, never the ledger's).
    **{(s, E.PAID): S.PAID for s in (S.DETECTED, S.PROVED, S.SUBMITTED, S.APPROVED, S.REJECTED)},
}
FINAL = frozenset({S.PAID, S.REJECTED, S.FAILED})  # nothing more is sent; only PAID can follow REJECTED


def transition(status: ClaimStatus, event: ClaimEvent) -> ClaimStatus:
    try:
        return TRANSITIONS[(status, event)]
    except KeyError:
        raise FaultproofError(Reason.INVALID_STATE_TRANSITION, f"claim {status.value} cannot take {event.value}") from None


def rejection_quorum(n: int, k: int, floor: int = 1) -> int:
    """How many distinct oracles must reject a claim before the agent takes it as rejected.

    With k of n approvals needed, n-k+1 rejections leave at most k-1 oracles to approve, so no
    quorum certificate can form; fewer rejections are one faulty (or lagging) oracle's word.
    `floor` is the operator's minimum (config `content_refusals_to_reject`); never more than n.
    """
    if n <= 0:
        return max(1, floor)
    return max(1, min(n, max(floor, n - k + 1)))


def follow_up(status: ClaimStatus, *, paid: int | None, rejecters: Collection[str], quorum: int,
              ledger_rejection: str | None = None, oracle_status: str | None = None) -> ClaimEvent | None:
    """The next lifecycle event for a claim from what is known about it now, or None.

    `paid`: the amount the ledger paid for it (None: no payout entry). `rejecters`: the distinct
    oracles that answered `rejected` or refused its content. `ledger_rejection`: why the ledger
    will never pay it, if it says so. `oracle_status`: the status the oracle just asked reports.
    """
    if paid is not None:
        return ClaimEvent.PAID if status is not ClaimStatus.PAID else None
    if status in FINAL or status is ClaimStatus.DETECTED:
        return None
    if ledger_rejection is not None or len(rejecters) >= quorum:
        return ClaimEvent.REJECTED
    if oracle_status in ("approved", "paid") and status is ClaimStatus.SUBMITTED:
        return ClaimEvent.APPROVED
    return None


def content_refusal(code: object) -> Reason | None:
    """An oracle's 4xx error code -> the reason if it refused the claim's content (it counts as
    that oracle's rejection), or None for refusals that say nothing about the claim (rate limits,
    unavailability, duplicates) and for codes this agent does not know."""
    try:
        reason = Reason(code) if isinstance(code, str) and code else None
    except ValueError:
        return None
    if reason is None or reason in (Reason.RATE_LIMITED, Reason.UNAVAILABLE, Reason.DUPLICATE, Reason.ALREADY_EXISTS):
        return None
    return reason if reason.stage in (Stage.CONTENT, Stage.DECODE) else None


def backoff_s(attempts: int, initial_s: float, max_s: float) -> float:
    """Seconds until a claim is resent or polled again: doubling per attempt, capped."""
    return min(max_s, initial_s * 2 ** min(attempts, 10))


def ledger_rejection(*, end_ts: int, claim_window_ms: int, ledger_time_ms: int, period_paid: bool,
                     overlaps_paid: bool, decommissioned: bool = False) -> str | None:
    """Why the ledger will never pay a claim, from facts that cannot change back, or None.

    Ledger time only grows and payouts are never undone, so each of these is final: the claim
    window closed at the ledger's time; another payout took the claim's period; another payout's
    window overlaps it; the device was decommissioned. (Called only when this claim itself is not paid: `follow_up` checks that
    first.) Anything that may still change (e.g. the pool's capital) is left to the oracles.
    """
    if decommissioned:  # DESIGN §15 H11: never undone
        return Reason.DEVICE_DECOMMISSIONED.value
    if ledger_time_ms > end_ts + claim_window_ms:
        return Reason.CLAIM_WINDOW_CLOSED.value
    if period_paid:
        return Reason.PERIOD_LIMIT.value
    if overlaps_paid:
        return Reason.WINDOW_OVERLAP.value
    return None


# --------------------------------------------------------------------------- ingest bookkeeping


@dataclass(frozen=True)
class LedgerSnapshot:
    """The ledger as ingest needs it, immutable: swapped in whole by the daemon."""

    devices: dict[bytes, DeviceRecord] = field(default_factory=dict)
    policies: dict[bytes, PolicyTerms] = field(default_factory=dict)  # device_id -> provable policy
    height: int = -1
    attestation_failed: frozenset[bytes] = frozenset()  # DESIGN §15: latest ledger result failed


@dataclass(frozen=True)
class ClaimedWindow:
    """A window claimed under a policy: its time span and period (what excludes later ones)."""

    start_ts: int
    end_ts: int
    period: int


@dataclass(frozen=True)
class OpenClaim:
    """The frames a claim that is not final yet needs kept (retention must not delete them)."""

    device_id: bytes
    epoch: int
    start_seq: int
    end_seq: int


@dataclass(frozen=True)
class SkippedWindows:
    """Incidents the detector saw (the trigger held) but could not claim, and why: a reason code
    (outside_policy_term, claim_window_closed, period_limit, coverage_exhausted)."""

    device_id: bytes
    policy_id: bytes
    reason: str
    count: int


class IngestCore:
    """The frame checker, the detectors and the claim bookkeeping of the ingest engine.

    The engine's thread calls it; it returns what to store. `load` rebuilds it from the stored
    claims, `apply_snapshot` installs a ledger view (the caller then loads the chain books it
    names with `books_to_load`), `check` runs the frame checks, `detect` the detectors.
    """

    def __init__(self, *, max_skew_ms: int, reorder_window: int,
                 stored_lookup: StoredLookup | None = None) -> None:
        self.checker = FrameChecker(max_skew_ms=max_skew_ms, reorder_window=reorder_window,
                                    stored_lookup=stored_lookup)
        self.detectors: dict[bytes, Detector] = {}  # device_id -> detector of its policy
        self.claimed: dict[bytes, list[ClaimedWindow]] = {}  # policy_id -> windows claimed
        self.open_claims: dict[bytes, OpenClaim] = {}  # claim_id -> frames it needs
        self.newest_ts: int | None = None  # the newest accepted frame's time (retention's clock)
        self.skipped: list[SkippedWindows] = []  # since the shell last drained it (take_skipped)

    # -- claims --
    def load_claims(self, rows: Iterable[Mapping[str, Any]], final_statuses: Collection[str]) -> None:
        """The stored claims (at start-up): every one excludes its window and period from
        detection; the ones not final keep their frames from retention."""
        for row in rows:
            self.claimed.setdefault(bytes(row["policy_id"]), []).append(
                ClaimedWindow(row["start_ts"], row["end_ts"], row["period"]))
            if row["status"] not in final_statuses:
                self.open_claims[bytes(row["claim_id"])] = OpenClaim(bytes(row["device_id"]), row["epoch"],
                                                                     row["start_seq"], row["end_seq"])

    def note_stored(self, newest_ts: int | None) -> None:
        """The newest frame time already in the store (at start-up)."""
        if newest_ts is not None and (self.newest_ts is None or newest_ts > self.newest_ts):
            self.newest_ts = newest_ts

    def claim_decided(self, claim_id: bytes) -> None:
        self.open_claims.pop(claim_id, None)

    # -- the ledger view --
    def apply_snapshot(self, snapshot: LedgerSnapshot) -> list[DeviceRecord]:
        """Install a new ledger view's devices. Returns the devices whose chain book is new: the
        shell loads them from the store (`ChainBook.load`), then calls `install_detectors`."""
        checker = self.checker
        to_load: list[DeviceRecord] = []
        for device_id in list(checker.devices):
            if device_id not in snapshot.devices:
                checker.remove_device(device_id)
                self.detectors.pop(device_id, None)
        for device_id, rec in snapshot.devices.items():
            old = checker.devices.get(device_id)
            if old == rec:
                continue
            checker.set_device(rec)
            if checker.book(device_id) is None:
                checker.book_for(rec)
                to_load.append(rec)
            if old is None or old.epoch != rec.epoch:
                self.detectors.pop(device_id, None)
        return to_load

    def install_detectors(self, snapshot: LedgerSnapshot) -> set[bytes]:
        """After the books `apply_snapshot` named are loaded: a detector per insured device."""
        checker = self.checker
        dirty: set[bytes] = set()
        for device_id, terms in snapshot.policies.items():
            known = snapshot.devices.get(device_id)
            if known is None:
                continue
            det = self.detectors.get(device_id)
            if det is not None and det.terms.policy_id == terms.policy_id and det.epoch == known.epoch:
                det.update_terms(terms)
            else:
                current = checker.book(device_id)
                start = current.seqs[0] if current is not None and current.seqs else 0
                claimed = [(w.start_ts, w.end_ts, w.period) for w in self.claimed.get(terms.policy_id, ())]
                self.detectors[device_id] = Detector(terms, known.epoch, claimed, start)
            dirty.add(device_id)
        for device_id in list(self.detectors):
            if device_id not in snapshot.policies:
                del self.detectors[device_id]
        return dirty

    # -- frames --
    def check(self, f: Incoming, now_ms: int) -> Verdict:
        """The frame checks; an accepted frame that completes or mends windows marks detection."""
        v = self.checker.check(f, now_ms)
        if v.reason is None:
            if self.newest_ts is None or f.ts > self.newest_ts:
                self.newest_ts = f.ts
            if v.relinked is not None or v.replaced:
                det = self.detectors.get(f.device_id)
                if det is not None:
                    det.note_filled(f.seq)
        return v

    def detect(self, devices: Iterable[bytes], now_ms: int) -> tuple[list[Window], int]:
        """Windows to claim on these devices (recorded as claimed and open) and how many windows
        were evaluated. A detector whose parameters fail is dropped (the ledger validated them)."""
        found: list[Window] = []
        evaluated = 0
        for device_id in devices:
            det = self.detectors.get(device_id)
            book = self.checker.book(device_id)
            if det is None or book is None or book.epoch != det.epoch:
                continue
            before = det.evaluated
            skipped_before = dict(det.skipped)
            try:
                windows = det.scan(book, now_ms)
            except FaultproofError as e:
                log.error("detection disabled for %s: %s", device_id.hex()[:12], e)
                del self.detectors[device_id]
                continue
            evaluated += det.evaluated - before
            for why, count in det.skipped.items():
                if count > skipped_before.get(why, 0):
                    self.skipped.append(SkippedWindows(device_id, det.terms.policy_id, why,
                                                       count - skipped_before.get(why, 0)))
            for w in windows:
                self.claimed.setdefault(w.policy_id, []).append(ClaimedWindow(w.start_ts, w.end_ts, w.period))
                self.open_claims[w.claim_id] = OpenClaim(w.device_id, w.epoch, w.start_seq, w.end_seq)
            found.extend(windows)
        return found, evaluated

    def take_skipped(self) -> list[SkippedWindows]:
        out, self.skipped = self.skipped, []
        return out

    # -- retention --
    def retention_cutoff(self, retention_ms: int | None) -> int | None:
        """Frames with ts below this may be deleted (None: nothing). Counted from the newest
        frame's own time, so a stream replayed late, or an agent whose wall clock jumps, never
        deletes frames that are recent in the devices' time."""
        if retention_ms is None or self.newest_ts is None:
            return None
        return self.newest_ts - retention_ms

    def kept_windows(self) -> list[tuple[bytes, int, int, int]]:
        return [(c.device_id, c.epoch, c.start_seq, c.end_seq) for c in self.open_claims.values()]


# --------------------------------------------------------------------------- re-attestation (DESIGN §15)

# A claim is payable only if a passing attestation at most `attestation_max_age_ms` (ledger-wide,
# SetLockdown) before its window covers it, so the agent asks each device again well before that.
REATTEST_INTERVAL_MS = 10 * 60 * 1000  # default of [agent] attestation_interval_s
REATTEST_ANSWER_MS = 30_000  # a device that has not answered by then is asked again at the next interval


@dataclass(frozen=True)
class AttestationView:
    """What the ledger holds about a device's attestation: when its latest result was dated (the
    nonce entry's time) and the height of the last nonce it answered (H6: a new answer must name a
    later entry)."""

    last_ms: int | None
    answered_height: int = -1


@dataclass(frozen=True)
class AttestRequest:
    device_id: bytes
    nonce: bytes  # the ledger head hash the device must sign over
    nonce_height: int
    asked_ms: int


def reattest_interval_ms(configured_ms: int, max_age_ms: int) -> int:
    """The configured interval, but never more than half the ledger's freshness parameter: one
    lost or late answer must not be enough to let a device's windows go stale. 0: off."""
    if configured_ms <= 0:
        return 0
    return configured_ms if max_age_ms <= 0 else max(1, min(configured_ms, max_age_ms // 2))


def attestations_due(views: Mapping[bytes, AttestationView], pending: Mapping[bytes, AttestRequest], *,
                     now_ms: int, head_height: int, head_hash: bytes, interval_ms: int,
                     answer_ms: int = REATTEST_ANSWER_MS,
                     unanswered: Mapping[bytes, int] | None = None) -> tuple[list[AttestRequest], list[bytes]]:
    """(the devices to ask now, with the nonce to sign; the pending requests that timed out).

    A device is due when it has no result on the ledger or its latest is `interval_ms` old, unless
    it was asked less than `answer_ms` ago, or the ledger has no entry newer than the last nonce it
    answered (its answer would be refused as replayed: it waits for the ledger to move).
    `unanswered` (device -> when a request of it last timed out): such a device (e.g. one that
    speaks HTTP only and cannot be asked) is asked again only `interval_ms` later."""
    if interval_ms <= 0:
        return [], []
    expired = [d for d, r in pending.items() if now_ms - r.asked_ms >= answer_ms]
    ask: list[AttestRequest] = []
    for device_id, view in views.items():
        if device_id in pending:
            continue  # outstanding, or timed out just now (then: asked again an interval later)
        if view.last_ms is not None and now_ms - view.last_ms < interval_ms:
            continue
        timed_out = (unanswered or {}).get(device_id)
        if timed_out is not None and now_ms - timed_out < interval_ms:
            continue
        if head_height <= view.answered_height:
            continue
        ask.append(AttestRequest(device_id, head_hash, head_height, now_ms))
    return ask, expired


def gateway_quote_due(agent_id: bytes, view: AttestationView | None, *, now_ms: int, head_height: int,
                      head_hash: bytes, interval_ms: int, last_failed_ms: int | None = None) -> AttestRequest | None:
    """The gateway's own TPM quote (DESIGN §15 H10), on the devices' schedule: the gateway is one
    more attester, keyed by the agent's id, whose "answer" is immediate (the agent asks its own
    TPM), so nothing is ever outstanding. Due when the ledger holds no quote result of the gateway
    or its latest is `interval_ms` old, and the ledger has an entry newer than the last nonce the
    gateway answered; a failed attempt (TPM or ledger refused) waits `interval_ms` before the next.
    `view` None: the ledger pins no AK for this agent, nothing to do."""
    if view is None:
        return None
    unanswered = {} if last_failed_ms is None else {agent_id: last_failed_ms}
    due, _ = attestations_due({agent_id: view}, {}, now_ms=now_ms, head_height=head_height, head_hash=head_hash,
                              interval_ms=interval_ms, unanswered=unanswered)
    return due[0] if due else None


def evidence_rejection(pending: Mapping[bytes, AttestRequest], device_id: bytes, nonce: bytes) -> Reason | None:
    """Evidence arriving from a device: it must answer the request outstanding for it (else it is a
    replay, or nobody asked)."""
    req = pending.get(device_id)
    if req is None or req.nonce != nonce:
        return Reason.ATTESTATION_REPLAYED
    return None
