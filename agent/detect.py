"""Detection: the first window of a device's stored frames that its policy's trigger holds on.

A window is a start frame at seq a and the n readings a+1..a+n (n = the policy circuit's size):
every frame a..a+n stored, a+1..a+n linked (each reading bound by the chain from its predecessor;
`agent.frames`). Whether the trigger holds is decided by `faultproof.zk.trigger_holds`, the same
function the circuit mirrors; this file keeps no copy of any trigger rule.

A window is filed only if no earlier claim excludes it. The ledger decides payouts; these checks
only avoid filing a claim it would certainly refuse, and above all never file one incident twice:
  - inside the policy term: start_ms <= t_start and t_end <= end_ms;
  - the claim window still open: now <= t_end + claim_window_ms;
  - no overlap with a window already claimed by this agent or paid on the ledger, windows being
    (t_start, t_end] as the ledger compares them;
  - no claim or payout yet in the window's period (the ledger's `Policy.period_of(t_end)`).
Every filed claim counts, whatever became of it, so a rejected incident is not filed again.

`Detector.scan` walks start seqs upward from where it stopped and returns the windows to claim.
Windows that span a gap are skipped (the frame after a gap can start a window); a late frame that
fills a gap moves the scan back so the windows it completes are looked at.

A device that signs only every s-th frame (DESIGN §16, `ChainBook.sign_every`) gets windows that
start and end at signed frames only: a ≡ 0 (mod s), and s must divide n (otherwise the policy is
refused: `scan` raises invalid_parameters and the core drops the detector, logged). Only confirmed frames
are in the book, so an unsigned reading no signed frame confirmed never reaches a window.

Pure: no I/O, no clock (time is passed in).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from agent.frames import ChainBook
from faultproof.errors import FaultproofError, Reason
from faultproof.messages import claim_id
from faultproof.zk.params import TriggerParams


def trigger_params(terms: object) -> TriggerParams:
    """The trigger of a policy's terms (`IssuePolicy` fields, duck-typed) as one value."""
    t = terms
    return TriggerParams(t.kind, t.threshold, t.count, t.lo, t.hi, t.gap_ms)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class PolicyTerms:
    """What detection needs of a policy: the trigger, its circuit size, its time rules."""

    policy_id: bytes
    device_id: bytes
    circuit_id: bytes
    n: int
    params: TriggerParams  # the trigger as in the public signals: one value, never a tuple
    start_ms: int
    end_ms: int
    claim_window_ms: int
    period_of: Callable[[int], int] = field(compare=False)  # the ledger's Policy.period_of
    paid: tuple[tuple[int, int, int], ...] = ()  # (start_ts, end_ts, period) paid on the ledger
    coverage_left: int | None = None  # the policy's lock; 0: nothing left to pay (None: unknown)

    @classmethod
    def from_ledger(cls, policy: object, n: int) -> PolicyTerms:
        """From an `ledger.state.Policy` (duck-typed so this module imports no ledger)."""
        t = policy.terms  # type: ignore[attr-defined]
        paid = tuple((w.start_ts, w.end_ts, w.period) for w in policy.payouts)  # type: ignore[attr-defined]
        return cls(policy.policy_id, t.device_id, t.circuit_id, n,  # type: ignore[attr-defined]
                   trigger_params(t), t.start_ms, t.end_ms,
                   t.claim_window_ms, policy.period_of, paid,  # type: ignore[attr-defined]
                   getattr(policy, "locked", None))


@dataclass(frozen=True)
class Window:
    """An incident to claim: frames start_seq..end_seq of a device's epoch under a policy."""

    policy_id: bytes
    device_id: bytes
    epoch: int
    start_seq: int
    end_seq: int
    start_ts: int
    end_ts: int
    period: int
    circuit_id: bytes

    @property
    def claim_id(self) -> bytes:
        return claim_id(self.policy_id, self.device_id, self.epoch, self.start_seq, self.end_seq)


@dataclass
class Claimed:
    """Windows already claimed under one policy (by this agent, or paid on the ledger)."""

    windows: list[tuple[int, int]] = field(default_factory=list)  # (start_ts, end_ts)
    periods: set[int] = field(default_factory=set)

    def add(self, start_ts: int, end_ts: int, period: int) -> None:
        self.windows.append((start_ts, end_ts))
        self.periods.add(period)

    def excludes(self, start_ts: int, end_ts: int, period: int) -> bool:
        if period in self.periods:
            return True
        return any(start_ts < e and s < end_ts for s, e in self.windows)


class Detector:
    """Scans one device's current epoch for windows to claim under one policy."""

    def __init__(self, terms: PolicyTerms, epoch: int, claimed: Iterable[tuple[int, int, int]] = (),
                 scan_from: int = 0) -> None:
        self.terms = terms
        self.epoch = epoch
        self.claimed = Claimed()
        for s, e, p in (*claimed, *terms.paid):
            self.claimed.add(s, e, p)
        self.scan_from = scan_from
        self.evaluated = 0  # windows whose trigger was evaluated (for metrics and tests)
        # Windows where the trigger held but that cannot be claimed, by reason code (outside the
        # term, claim window closed, period already paid, coverage exhausted): an operator must see
        # why a malfunction was not claimed, and the agent must not prove what the ledger refuses.
        self.skipped: dict[str, int] = {}

    def update_terms(self, terms: PolicyTerms) -> None:
        """New ledger view of the same policy (payouts made since)."""
        self.terms = terms
        for s, e, p in terms.paid:
            if (s, e) not in self.claimed.windows:
                self.claimed.add(s, e, p)

    def note_filled(self, seq: int) -> None:
        """A late frame at `seq` was stored: windows up to n before it may have become complete."""
        self.scan_from = min(self.scan_from, max(0, seq - self.terms.n))

    def _eligible(self, start_ts: int, end_ts: int, now_ms: int) -> tuple[int | None, str | None]:
        """(period, None) for a claimable window, else (None, why): a reason code to count when the
        trigger holds there, or None when the window is part of an incident already claimed."""
        t = self.terms
        if start_ts < t.start_ms or end_ts > t.end_ms:
            return None, "outside_policy_term"
        if now_ms > end_ts + t.claim_window_ms:
            return None, "claim_window_closed"
        period = t.period_of(end_ts)
        if any(start_ts < e and s < end_ts for s, e in self.claimed.windows):
            return None, None  # the same incident, claimed already
        if period in self.claimed.periods:
            return None, "period_limit"
        if t.coverage_left is not None and t.coverage_left <= 0:
            return None, "coverage_exhausted"
        return period, None

    def scan(self, book: ChainBook, now_ms: int) -> list[Window]:
        """Windows to claim among the book's frames, lowest start seq first; each one returned is
        recorded as claimed (the caller must persist it in the same transaction as the frames)."""
        n = self.terms.n
        params = self.terms.params
        frames = book.frames
        tail = book.tail
        s = book.sign_every
        if n % s:
            raise FaultproofError(Reason.INVALID_PARAMETERS,
                                  f"the device signs every {s}th frame, which does not divide the policy's n = {n}")
        a = max(self.scan_from, book.seqs[0] if book.seqs else 0)
        ok_to = a  # frames a+1..ok_to are known stored and linked
        found: list[Window] = []
        while a + n <= tail:
            if s > 1 and a % s:
                a += s - a % s  # windows start (and so end) at signed frames only
                continue
            start = frames.get(a)
            if start is None:
                a += 1
                continue
            if ok_to < a:
                ok_to = a
            while ok_to < a + n:
                f = frames.get(ok_to + 1)
                if f is None or not f.linked:
                    break
                ok_to += 1
            if ok_to < a + n:
                # Frame ok_to+1 is missing or unbound: no window starting before it is complete;
                # if it is stored (re-anchored after a gap) it can start the next one.
                a = ok_to + 1
                continue
            end = frames[a + n]
            period, why = self._eligible(start.ts, end.ts, now_ms)
            if period is None and why is not None:
                window_frames = [frames[s] for s in range(a + 1, a + n + 1)]
                if params.holds([f.reading for f in window_frames], [f.ts for f in window_frames], start.ts):
                    self.skipped[why] = self.skipped.get(why, 0) + 1
                    a += n  # one count per incident, not per overlapping window
                    continue
            if period is not None:
                window_frames = [frames[s] for s in range(a + 1, a + n + 1)]
                self.evaluated += 1
                if params.holds([f.reading for f in window_frames], [f.ts for f in window_frames], start.ts):
                    w = Window(self.terms.policy_id, book.device_id, self.epoch, a, a + n, start.ts, end.ts,
                               period, self.terms.circuit_id)
                    self.claimed.add(start.ts, end.ts, period)
                    found.append(w)
                    # The next incident cannot overlap this one: resume at its end frame.
                    a += n
                    continue
            a += 1
        self.scan_from = a
        return found
