"""Trigger kinds, their parameter rules and their semantics: the one place both live in Python.

The circuit (`circuits/faultproof.circom`) enforces exactly these rules; the ledger calls
`validate_parameters` when it issues a policy, the agent calls `trigger_holds` to decide whether a
window is worth proving. Neither may keep its own copy of a rule.

Values are as they appear in the public signals: T, lo and hi are enc()-encoded u32 values
(`faultproof.chain.enc`), K is a count of readings, G is a gap in milliseconds. Readings handed to
`trigger_holds` are the signed 32-bit readings; it encodes them itself.

Pure functions only; no I/O, no proving.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from faultproof.chain import READING_MAX, READING_MIN, TIME_LIMIT, enc
from faultproof.errors import FaultproofError, Reason
from faultproof.messages import TriggerKind

U32_LIMIT = 2**32


Kind = TriggerKind  # one enum for the ledger, the policy files and the circuit


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def validate_parameters(kind: int, T: int, K: int, lo: int, hi: int, G: int, n: int) -> None:
    """Refuse a parameter set the circuit would refuse, including any that is always true.

    Raises FaultproofError(Reason.INVALID_PARAMETERS) naming the first broken rule.
    """

    def bad(msg: str) -> FaultproofError:
        return FaultproofError(Reason.INVALID_PARAMETERS, msg)

    values = {"kind": kind, "T": T, "K": K, "lo": lo, "hi": hi, "G": G, "n": n}
    for name, v in values.items():
        if not _is_int(v):
            raise bad(f"{name} must be an int, got {type(v).__name__}")
    if n < 2:
        raise bad(f"window size n must be >= 2, got {n}")
    if kind not in {k.value for k in Kind}:
        raise bad(f"unknown trigger kind {kind}")
    for name, v in (("T", T), ("lo", lo), ("hi", hi)):
        if not 0 <= v < U32_LIMIT:
            raise bad(f"{name} must be an enc()-encoded u32 (0 <= {name} < 2^32), got {v}")
    if not 0 <= G < TIME_LIMIT:
        raise bad(f"G must satisfy 0 <= G < 2^48, got {G}")
    if K < 0:
        raise bad(f"K must be >= 0, got {K}")

    unused: dict[Kind, tuple[str, ...]] = {
        Kind.COUNT: ("lo", "hi", "G"),
        Kind.RUN: ("lo", "hi", "G"),
        Kind.STUCK: ("T", "lo", "hi", "G"),
        Kind.OUTSIDE: ("T", "G"),
        Kind.DROPOUT: ("T", "K", "lo", "hi"),
    }
    k = Kind(kind)
    for name in unused[k]:
        if values[name] != 0:
            raise bad(f"kind {k.name.lower()} does not use {name}; it must be 0, got {values[name]}")

    if k in (Kind.COUNT, Kind.RUN, Kind.OUTSIDE) and not 1 <= K <= n:
        raise bad(f"kind {k.name.lower()} needs 1 <= K <= n (n={n}), got K={K}")
    if k is Kind.STUCK and not 2 <= K <= n:
        raise bad(f"kind stuck needs 2 <= K <= n (n={n}), got K={K} (K=1 is always true)")
    if k is Kind.OUTSIDE and lo > hi:
        raise bad(f"kind outside needs lo <= hi, got lo={lo} > hi={hi}")
    if k is Kind.DROPOUT and G < 2:
        raise bad(f"kind dropout needs G >= 2 (G <= 1 is always true), got G={G}")


def _longest_run(flags: Sequence[bool]) -> int:
    best = cur = 0
    for f in flags:
        cur = cur + 1 if f else 0
        best = max(best, cur)
    return best


def trigger_holds(
    kind: int,
    T: int,
    K: int,
    lo: int,
    hi: int,
    G: int,
    readings: Sequence[int],
    timestamps: Sequence[int],
    t_start: int,
) -> bool:
    """Whether the trigger holds on a window, exactly as the circuit decides it.

    `readings` are signed 32-bit readings, `timestamps` their ms timestamps (same length n),
    `t_start` the timestamp of the window's start frame. Parameters are validated first
    (FaultproofError INVALID_PARAMETERS); readings outside int32 raise READING_OUT_OF_RANGE.
    Timestamp order is not checked here (the witness builder does that).
    """
    n = len(readings)
    if len(timestamps) != n:
        raise FaultproofError(Reason.WINDOW_LENGTH, "readings and timestamps differ in length")
    validate_parameters(kind, T, K, lo, hi, G, n)
    for r in readings:
        if not _is_int(r) or not READING_MIN <= r <= READING_MAX:
            raise FaultproofError(Reason.READING_OUT_OF_RANGE, f"reading {r!r} is not int32")
    e = [enc(r) for r in readings]
    k = Kind(kind)
    if k is Kind.COUNT:
        return sum(1 for x in e if x > T) >= K
    if k is Kind.RUN:
        return _longest_run([x > T for x in e]) >= K
    if k is Kind.STUCK:
        # K equal readings in a row are K - 1 equal neighbours in a row.
        return _longest_run([i > 0 and e[i] == e[i - 1] for i in range(n)]) >= K - 1
    if k is Kind.OUTSIDE:
        return sum(1 for x in e if x < lo or x > hi) >= K
    prev = t_start
    for t in timestamps:
        if t - prev >= G:
            return True
        prev = t
    return False


@dataclass(frozen=True)
class TriggerParams:
    """A trigger kind and its public parameters, as they appear in the public signals.

    Build one with the kind-named constructors, which take human units (signed readings, ms) and
    encode them; `validate(n)` applies `validate_parameters`.
    """

    kind: int
    T: int = 0
    K: int = 0
    lo: int = 0
    hi: int = 0
    G: int = 0

    @classmethod
    def count(cls, threshold: int, k: int) -> TriggerParams:
        """At least k readings strictly above `threshold` (a signed reading)."""
        return cls(Kind.COUNT, T=enc(threshold), K=k)

    @classmethod
    def run(cls, threshold: int, k: int) -> TriggerParams:
        """At least k consecutive readings strictly above `threshold`."""
        return cls(Kind.RUN, T=enc(threshold), K=k)

    @classmethod
    def stuck(cls, k: int) -> TriggerParams:
        """At least k consecutive equal readings (k >= 2)."""
        return cls(Kind.STUCK, K=k)

    @classmethod
    def outside(cls, lo: int, hi: int, k: int) -> TriggerParams:
        """At least k readings outside [lo, hi] (signed readings, inclusive bounds)."""
        return cls(Kind.OUTSIDE, K=k, lo=enc(lo), hi=enc(hi))

    @classmethod
    def dropout(cls, gap_ms: int) -> TriggerParams:
        """Two consecutive readings (or the start frame and the first reading) >= gap_ms apart."""
        return cls(Kind.DROPOUT, G=gap_ms)

    def as_tuple(self) -> tuple[int, int, int, int, int, int]:
        return (int(self.kind), self.T, self.K, self.lo, self.hi, self.G)

    def validate(self, n: int) -> None:
        validate_parameters(*self.as_tuple(), n)

    def holds(self, readings: Sequence[int], timestamps: Sequence[int], t_start: int) -> bool:
        return trigger_holds(*self.as_tuple(), readings, timestamps, t_start)
