"""What is proved: the public signals (layout version 1) and the private witness of a window.

`PublicSignals` is the ten-value statement an oracle rebuilds from two frames and a policy; its
order is fixed by DESIGN §2 and by the declaration order in `circuits/faultproof.circom`.
`Witness.build` turns a window (signed readings, timestamps, blinding values, c_start) and a
`TriggerParams` into the circuit's input dict; all hashing goes through `faultproof.chain`, so the
agent, the oracle and the circuit agree bit for bit.

No proving here and no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from faultproof.chain import READING_MAX, READING_MIN, TIME_LIMIT, chain_step, enc
from faultproof.errors import DecodeError, FaultproofError, Reason
from faultproof.zk.encoding import R
from faultproof.zk.params import Kind, TriggerParams, trigger_holds, validate_parameters

LAYOUT_VERSION = 1
SIGNAL_NAMES: tuple[str, ...] = (
    "c_start", "c_end", "t_start", "t_end", "kind", "T", "K", "lo", "hi", "G",
)
N_PUBLIC = len(SIGNAL_NAMES)

CircuitInput = dict[str, Any]  # signal name -> int or list[int]


@dataclass(frozen=True)
class PublicSignals:
    """The public signals in layout order. Every value is checked to be a field element (< p)."""

    c_start: int
    c_end: int
    t_start: int
    t_end: int
    kind: int
    T: int
    K: int
    lo: int
    hi: int
    G: int

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < R:
                raise FaultproofError(
                    Reason.OUT_OF_RANGE, f"public signal {f.name} is not a field element: {v!r}"
                )

    def as_list(self) -> list[int]:
        return [int(getattr(self, name)) for name in SIGNAL_NAMES]

    @classmethod
    def from_list(cls, values: Sequence[int]) -> PublicSignals:
        if len(values) != N_PUBLIC:
            raise DecodeError(Reason.WRONG_LENGTH, f"expected {N_PUBLIC} public signals")
        try:
            return cls(*values)
        except FaultproofError as e:
            raise DecodeError(Reason.OUT_OF_RANGE, e.message) from None

    @classmethod
    def make(
        cls, *, c_start: int, c_end: int, t_start: int, t_end: int, params: TriggerParams
    ) -> PublicSignals:
        """What an oracle does: the two frames' chain values and timestamps plus the policy."""
        kind, T, K, lo, hi, G = params.as_tuple()
        return cls(c_start, c_end, t_start, t_end, kind, T, K, lo, hi, G)


def drop_selector(timestamps: Sequence[int], t_start: int, kind: int, G: int) -> list[int]:
    """The circuit's private one-hot `drop_sel`: the first gap >= G for kind 5, else index 0."""
    n = len(timestamps)
    idx = 0
    if kind == Kind.DROPOUT:
        prev = t_start
        for i, t in enumerate(timestamps):
            if t - prev >= G:
                idx = i
                break
            prev = t
    return [1 if i == idx else 0 for i in range(n)]


@dataclass(frozen=True)
class Witness:
    """A window and its statement: everything the prover needs. Build with `Witness.build`."""

    public: PublicSignals
    readings: tuple[int, ...]  # signed int32
    timestamps: tuple[int, ...]
    blindings: tuple[int, ...]

    @property
    def n(self) -> int:
        return len(self.readings)

    @classmethod
    def build(
        cls,
        *,
        readings: Sequence[int],
        timestamps: Sequence[int],
        blindings: Sequence[int],
        c_start: int,
        t_start: int,
        params: TriggerParams,
        n: int | None = None,
    ) -> Witness:
        """Chain the window from c_start and check everything the circuit will check.

        Raises FaultproofError: WINDOW_LENGTH (lengths differ or != n), READING_OUT_OF_RANGE,
        OUT_OF_RANGE (timestamp >= 2^48, blinding or c_start not a field element),
        TIMESTAMP_NOT_INCREASING, INVALID_PARAMETERS (bad parameters, or the trigger does not
        hold on this window).
        """
        size = len(readings)
        if len(timestamps) != size or len(blindings) != size or (n is not None and size != n):
            raise FaultproofError(
                Reason.WINDOW_LENGTH,
                f"window needs n={n if n is not None else size} readings, timestamps and blindings",
            )
        kind, T, K, lo, hi, G = params.as_tuple()
        validate_parameters(kind, T, K, lo, hi, G, size)
        for r in readings:
            if not isinstance(r, int) or not READING_MIN <= r <= READING_MAX:
                raise FaultproofError(Reason.READING_OUT_OF_RANGE, f"reading {r!r} is not int32")
        if not 0 <= t_start < TIME_LIMIT:
            raise FaultproofError(Reason.OUT_OF_RANGE, f"t_start {t_start} out of range")
        prev_t = t_start
        for t in timestamps:
            if t <= prev_t:
                raise FaultproofError(
                    Reason.TIMESTAMP_NOT_INCREASING, f"timestamp {t} does not exceed {prev_t}"
                )
            prev_t = t
        if not trigger_holds(kind, T, K, lo, hi, G, readings, timestamps, t_start):
            raise FaultproofError(Reason.INVALID_PARAMETERS, "the trigger does not hold on this window")
        c = c_start
        for t, r, s in zip(timestamps, readings, blindings, strict=True):
            c = chain_step(c, t, r, s)  # checks ranges and field membership
        public = PublicSignals(c_start, c, t_start, timestamps[-1], kind, T, K, lo, hi, G)
        return cls(public, tuple(readings), tuple(timestamps), tuple(blindings))

    def to_input(self) -> CircuitInput:
        """The circuit input dict (field elements only, as groth16py and snarkjs take them)."""
        pub = self.public
        out: CircuitInput = {name: v for name, v in zip(SIGNAL_NAMES, pub.as_list(), strict=True)}
        out["r"] = [enc(r) for r in self.readings]
        out["t"] = list(self.timestamps)
        out["s"] = list(self.blindings)
        out["drop_sel"] = drop_selector(self.timestamps, pub.t_start, pub.kind, pub.G)
        return out
