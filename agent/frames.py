"""Frame checks: everything that decides whether the agent accepts a device's frame lives here.

A device sends `DeviceReading`s (a signed frame, its reading beside it). The agent accepts a frame
only if, cheap checks first:
  1. the device is enrolled on the ledger and the agent holds its blinding key (UNKNOWN_DEVICE);
  2. its signature verifies under the device key, of the type enrolled on the ledger: Ed25519 (the
     device_id) or P-256 (faultproof.signing, DESIGN §15) (BAD_FRAME_SIGNATURE);
  3. the device was not revoked at or before the frame's time (DEVICE_REVOKED);
  4. its epoch is the device's current epoch on the ledger (WRONG_EPOCH);
  5. its timestamp is not ahead of the agent's clock by more than the allowed skew
     (TIMESTAMP_IN_FUTURE);
  6. no frame with its seq is stored (REPLAYED_FRAME); a seq below the reorder window whose gap
     was given up cannot be chained any more (CHAIN_BROKEN);
  7. its timestamp lies strictly between those of the nearest stored frames before and after it
     (TIMESTAMP_NOT_INCREASING);
  8. its chain value follows from its stored predecessor and its reading,
     c_i = Poseidon(c_{i-1}, t_i, enc(r_i), Poseidon(k_blind, i)), and, for a frame that fills a
     gap late, its stored successor follows from it too (CHAIN_BROKEN). Seq 0 is the epoch's
     anchor frame: its chain value must be the c_0 enrolled on the ledger.
A frame whose predecessor is missing is accepted *unlinked*: its signed chain value and timestamp
can start a window (the start frame's reading is not part of a window), but its own reading is
not bound until the predecessor arrives. So after a gap that is never filled, the next signed
frame re-anchors the chain and windows never span the gap. A late frame that fills the gap links
its successor and the two segments merge.

An unlinked frame is *provisional* (design §12): the signature covers the frame, not the reading
beside it, so anyone who saw a signed frame can resend it with another reading while its
predecessor is late. Nothing about such a copy can be checked until the predecessor arrives, so:
  - another copy of a provisional frame (same signed frame, different reading) is kept beside it
    as an alternative (at most MAX_ALTERNATIVES), never refused as a replay;
  - the late predecessor is never refused because of its provisional successor: the copy whose
    reading links replaces the stored one; if none links, the successor stays unlinked (its
    reading refuted, its signed chain value still good for linking the frames after it);
  - a copy that arrives once the predecessor is stored replaces the stored reading if it links.
Whether the successor links depends only on signed values and the successor's reading, so a
false copy can never make a genuine frame fail.

A device provisioned to sign every s-th frame (DESIGN §16, `DeviceRecord.sign_every`) signs seq 0
and every seq ≡ 0 (mod s); the frames between arrive as `UnsignedReading`s (an empty signature
here). An unsigned frame at a seq that must be signed is BAD_FRAME_SIGNATURE. Any other gets every
other check (epoch, revocation, skew, replay, time order against stored frames, chain step from
its predecessor when that is known) and is then *held* (`ChainBook.pending`, every copy, at most
MAX_ALTERNATIVES per seq): never stored, never in `frames`, so it feeds no detection and no anchor.
The next signed frame decides the run since the newest stored frame: the copies whose chain links
through Poseidon to the signed chain value are confirmed (added linked, returned in
`Verdict.confirmed` for the caller to store), the others dropped; if no combination links, the
run is refuted (`Verdict.dropped`) and the signed frame re-anchors, as after a gap. A signed frame
that arrived before its run is confirmed when the run completes (`Verdict.relinked`). Held frames
live in memory only: after a restart a run not yet confirmed is refuted by its signed frame.

The whole state is a `FrameChecker`: the ledger's view of each device plus a `ChainBook` per
device (its recent stored frames, within a reorder window of seqs). The caller stores what was
accepted and must apply the same frames to the same checker on restart (`ChainBook.load`).

This file does no I/O and reads no clock: the time and the "is this old seq stored?" lookup are
passed in. It must never accept a frame without its signature and chain checked, nor store
anything itself.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any

from faultproof import chain as fpchain
from faultproof import signing
from faultproof.encoding import pack, unpack
from faultproof.errors import DecodeError, Reason
from faultproof.identity import domain_tag, verify
from faultproof.messages import DeviceReading, Frame, ReadingBatch, SignedFrame, UnsignedReading

FRAME_TAG = domain_tag(Frame.NAME)
U32 = 1 << 32
U48 = 1 << 48
ENC_OFFSET = fpchain.READING_OFFSET
MAX_ALTERNATIVES = 8  # other readings kept for one provisional frame until its predecessor decides
MAX_SIGN_EVERY = 64  # a device signs at least every 64th frame (DESIGN §16)

# faultproof.chain's one Poseidon entry point, called on already-validated inputs: every value
# below comes from a decoded frame (range-checked, chain < p), so the per-call checks of
# faultproof.chain would only repeat them on the hot path. tests/agent/test_frames.py checks these
# two functions against faultproof.chain bit for bit.
_poseidon_be = fpchain.poseidon_be


def blinding_int(key_int_bytes: bytes, seq: int) -> int:
    """s_i = Poseidon(k_blind, seq) with k_blind given as 32 big-endian bytes."""
    return _poseidon_be(key_int_bytes + seq.to_bytes(32, "big"), 2)


def step_int(prev: int, ts: int, enc_reading: int, s: int) -> int:
    """c_i = Poseidon(c_{i-1}, t_i, enc(r_i), s_i); all inputs already known to be in range."""
    return _poseidon_be(prev.to_bytes(32, "big") + ts.to_bytes(32, "big") + enc_reading.to_bytes(32, "big")
                        + s.to_bytes(32, "big"), 4)


def _not_following(prev_chain: int, f: Incoming, s_i: int) -> str:
    """Why a frame does not chain from its predecessor. One common sender mistake is told apart
    (one more hash, only on a refusal): the wire `reading` is enc(r) = r + 2^31, and a sender that
    put the plain r there would otherwise see a bare chain_broken."""
    plain = f.enc_reading + ENC_OFFSET
    if plain < U32 and step_int(prev_chain, f.ts, plain, s_i) == int.from_bytes(f.chain, "big"):
        return (f"seq {f.seq}: the reading {f.enc_reading} looks unencoded; the wire `reading` is "
                f"r + 2^31 (send {plain} for r = {f.enc_reading})")
    return f"seq {f.seq} does not follow from seq {f.seq - 1}"


def _verify_frame(f: Incoming) -> bool:
    """The device's signature over FRAME_TAG || body, by the one verify path (faultproof.identity)."""
    return verify(FRAME_TAG, f.body, f.signature, f.device_id)


# --------------------------------------------------------------------------- parsed input


class Incoming:
    """One frame with its reading as received, before any check. `body` is the signed bytes.
    An `UnsignedReading` (DESIGN §16) has an empty `signature`."""

    __slots__ = ("device_id", "epoch", "seq", "ts", "chain", "signature", "enc_reading", "body")

    def __init__(self, device_id: bytes, epoch: int, seq: int, ts: int, chain: bytes,
                 signature: bytes, enc_reading: int, body: bytes) -> None:
        self.device_id = device_id
        self.epoch = epoch
        self.seq = seq
        self.ts = ts
        self.chain = chain
        self.signature = signature
        self.enc_reading = enc_reading
        self.body = body

    @property
    def reading(self) -> int:
        return self.enc_reading - ENC_OFFSET

    @property
    def is_signed(self) -> bool:
        return bool(self.signature)

    @classmethod
    def from_message(cls, msg: DeviceReading | UnsignedReading) -> Incoming:
        if isinstance(msg, UnsignedReading):
            f = msg.frame
            return cls(f.device_id, f.epoch, f.seq, f.ts_ms, f.chain, b"", msg.reading, f.encode())
        f = msg.signed.frame
        return cls(f.device_id, f.epoch, f.seq, f.ts_ms, f.chain, msg.signed.signature, msg.reading,
                   f.encode())

    def signed_frame(self) -> SignedFrame:
        return SignedFrame(frame=Frame(device_id=self.device_id, epoch=self.epoch, seq=self.seq,
                                       ts_ms=self.ts, chain=self.chain), signature=self.signature)

    def frame(self) -> Frame:
        return Frame(device_id=self.device_id, epoch=self.epoch, seq=self.seq, ts_ms=self.ts, chain=self.chain)

    def to_message(self) -> DeviceReading | UnsignedReading:
        if not self.signature:
            return UnsignedReading(frame=self.frame(), reading=self.enc_reading)
        return DeviceReading(signed=self.signed_frame(), reading=self.enc_reading)

    def __repr__(self) -> str:
        return f"Incoming(device={self.device_id.hex()[:12]}, epoch={self.epoch}, seq={self.seq}, ts={self.ts})"


@dataclass(frozen=True)
class Undecodable:
    """Input that is not a valid DeviceReading/ReadingBatch at all (nothing to attribute)."""

    reason: Reason
    message: str


def _fast_reading(v: Any) -> Incoming | None:
    """The wire form of one DeviceReading, validated exactly as `DeviceReading.from_wire` does
    (same types, lengths and ranges), without building the message objects. None = not valid;
    the caller then lets the real decoder name the error."""
    if type(v) is not list or len(v) != 4 or v[1] != 1:
        return None
    if v[0] == DeviceReading.TYPE_ID:
        sf, reading = v[2], v[3]
        if type(sf) is not list or len(sf) != 4 or sf[0] != 2 or sf[1] != 1:
            return None
        fr, sig = sf[2], sf[3]
        if type(sig) is not bytes or len(sig) != 64:
            return None
    elif v[0] == UnsignedReading.TYPE_ID:  # DESIGN §16: a frame the device did not sign
        fr, reading, sig = v[2], v[3], b""
    else:
        return None
    if type(reading) is not int or not 0 <= reading < U32:
        return None
    if type(fr) is not list or len(fr) != 7 or fr[0] != 1 or fr[1] != 1:
        return None
    dev, epoch, seq, ts, ch = fr[2], fr[3], fr[4], fr[5], fr[6]
    if type(dev) is not bytes or len(dev) != 32 or type(ch) is not bytes or len(ch) != 32:
        return None
    if type(epoch) is not int or type(seq) is not int or type(ts) is not int:
        return None
    if not (0 <= epoch < U32 and 0 <= seq < U32 and 0 <= ts < U48):
        return None
    if int.from_bytes(ch, "big") >= fpchain.P:
        return None
    return Incoming(dev, epoch, seq, ts, ch, sig, reading, pack(fr))


def parse_wire(data: bytes) -> list[Incoming] | Undecodable:
    """msgpack bytes of a DeviceReading or a ReadingBatch -> its readings, or why not.

    The bytes are decoded once by the strict canonical decoder; the fields are then validated by
    a fast path that accepts only what `DeviceReading.from_wire` accepts. Anything it does not
    accept goes to the real decoder, so errors carry exactly the core's reasons.
    """
    try:
        value = unpack(data, ReadingBatch.MAX_SIZE)
    except DecodeError as e:
        return Undecodable(e.reason, e.message)
    out: list[Incoming] = []
    if type(value) is list and len(value) == 3 and value[0] == ReadingBatch.TYPE_ID and value[1] == 1 \
            and type(value[2]) is list and len(value[2]) <= 1000:
        for item in value[2]:
            r = _fast_reading(item)
            if r is None:
                break
            out.append(r)
        else:
            return out
    elif len(data) <= DeviceReading.MAX_SIZE:
        r = _fast_reading(value)
        if r is not None:
            return [r]
    return _slow_parse(data)


def _slow_parse(data: bytes) -> list[Incoming] | Undecodable:
    from faultproof.messages import decode_any

    try:
        msg = decode_any(data, allowed=(DeviceReading, UnsignedReading, ReadingBatch))
    except DecodeError as e:
        return Undecodable(e.reason, e.message)
    if isinstance(msg, ReadingBatch):
        return [Incoming.from_message(m) for m in msg.readings]
    assert isinstance(msg, DeviceReading | UnsignedReading)
    return [Incoming.from_message(msg)]


def parse_json(obj: Any) -> list[Incoming] | Undecodable:
    """The JSON form (DESIGN §7): a DeviceReading object (an UnsignedReading: `frame` instead of
    `signed`, DESIGN §16), or a ReadingBatch `{"readings": [...]}` of them."""
    try:
        if isinstance(obj, dict) and "readings" in obj:
            batch = ReadingBatch.from_json(obj)
            return [Incoming.from_message(m) for m in batch.readings]
        if isinstance(obj, dict) and "frame" in obj and "signed" not in obj:
            return [Incoming.from_message(UnsignedReading.from_json(obj))]
        return [Incoming.from_message(DeviceReading.from_json(obj))]
    except DecodeError as e:
        # A reading outside [0, 2^32) is not an encoded int32 reading: name it as such.
        if e.reason is Reason.OUT_OF_RANGE and ".reading" in e.message:
            return Undecodable(Reason.READING_OUT_OF_RANGE, e.message)
        return Undecodable(e.reason, e.message)


# --------------------------------------------------------------------------- decimal readings

UNIT_RE = re.compile(r"^[A-Za-z0-9%/._-]{1,16}$")
MAX_SCALE = 10**9
READING_MIN, READING_MAX = -(1 << 31), (1 << 31) - 1


@dataclass(frozen=True)
class SensorSpec:
    """A device's declared unit and scale (its `<device_id>.sensor.json`, written at provisioning):
    the integer reading r is value × scale, e.g. unit "degC", scale 100: 21.5 degC is r = 2150."""

    unit: str
    scale: int

    @classmethod
    def from_json(cls, obj: Any) -> SensorSpec:
        if not isinstance(obj, dict) or set(obj) != {"unit", "scale"}:
            raise DecodeError(Reason.MALFORMED, 'a sensor record is exactly {"unit": "...", "scale": N}')
        unit, scale = obj["unit"], obj["scale"]
        if not isinstance(unit, str) or not UNIT_RE.match(unit):
            raise DecodeError(Reason.MALFORMED, "sensor unit: 1-16 characters of A-Z a-z 0-9 % / . _ -")
        if type(scale) is not int or not 1 <= scale <= MAX_SCALE:
            raise DecodeError(Reason.MALFORMED, f"sensor scale: an integer in 1..{MAX_SCALE}")
        return cls(unit, scale)

    def to_json(self) -> dict[str, Any]:
        return {"unit": self.unit, "scale": self.scale}

    def to_reading(self, value: Any) -> int:
        """value (a decimal string, exact; or a JSON number) in `unit` -> the int32 reading r,
        exactly (decimal arithmetic, no float rounding), or DecodeError(READING_OUT_OF_RANGE)
        saying why: not a number, finer than the scale allows, or outside int32."""
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise DecodeError(Reason.READING_OUT_OF_RANGE, "a value is a decimal string or a number")
        # a float goes through its shortest repr ("21.5"), i.e. what the sender wrote
        text = value if isinstance(value, str) else repr(value)
        if len(text) > 64:
            raise DecodeError(Reason.READING_OUT_OF_RANGE, "a value has at most 64 characters")
        try:
            d = Decimal(text)
        except InvalidOperation:
            raise DecodeError(Reason.READING_OUT_OF_RANGE, f"value {text[:40]!r} is not a decimal number") from None
        if not d.is_finite():
            raise DecodeError(Reason.READING_OUT_OF_RANGE, "a value must be a finite decimal number")
        if d.adjusted() > 20:  # far outside int32 at any scale; also keeps the exponent small
            raise DecodeError(Reason.READING_OUT_OF_RANGE, f"value {text[:40]} is outside int32 at scale {self.scale}")
        if d.as_tuple().exponent < -64:  # type: ignore[operator]
            raise DecodeError(Reason.READING_OUT_OF_RANGE, f"value {text[:40]} is finer than the device's scale")
        with localcontext(prec=200):  # exact: ≤ 64 digits times a ≤ 10-digit scale, never rounded
            scaled = d * self.scale
        if scaled != scaled.to_integral_value():
            raise DecodeError(Reason.READING_OUT_OF_RANGE,
                              f"value {value} {self.unit} is finer than the device's scale {self.scale} "
                              f"(steps of {Decimal(1) / self.scale} {self.unit})")
        r = int(scaled)
        if not READING_MIN <= r <= READING_MAX:
            raise DecodeError(Reason.READING_OUT_OF_RANGE,
                              f"value {value} {self.unit} × {self.scale} = {r} is outside int32")
        return r


def resolve_values(obj: Any, sensor_of: Callable[[str], SensorSpec | None]) -> Any:
    """The JSON form may carry `"value"` (a decimal in the device's declared unit) in place of the
    wire `"reading"` (enc(r) = r + 2^31): each such value becomes its wire reading, by the
    device's scale. Raises DecodeError naming the reading (its index in a batch) otherwise."""
    batch = isinstance(obj, dict) and "readings" in obj
    items = obj["readings"] if batch else [obj]
    if not isinstance(items, list):
        return obj
    out = []
    for i, item in enumerate(items):
        if isinstance(item, dict) and "value" in item:
            where = f"readings[{i}]" if batch else "reading"
            if "reading" in item:
                raise DecodeError(Reason.MALFORMED, f"{where}: give `value` or `reading`, not both")
            frame = (item.get("signed") or {}).get("frame") if isinstance(item.get("signed"), dict) \
                else item.get("frame")
            dev = frame.get("device_id") if isinstance(frame, dict) else None
            spec = sensor_of(dev) if isinstance(dev, str) and re.fullmatch(r"[0-9a-f]{64}", dev) else None
            if spec is None:
                raise DecodeError(Reason.UNKNOWN_DEVICE,
                                  f"{where}: device {str(dev)[:64]} has no declared unit and scale here "
                                  "(provision it with --unit and --scale), so send the wire `reading` (r + 2^31)")
            try:
                r = spec.to_reading(item["value"])
            except DecodeError as e:
                raise DecodeError(e.reason, f"{where}: {e.message}") from None
            item = {k: v for k, v in item.items() if k != "value"} | {"reading": r + ENC_OFFSET}
        out.append(item)
    return obj | {"readings": out} if batch else out[0]


# --------------------------------------------------------------------------- ledger view


@dataclass(frozen=True)
class DeviceRecord:
    """What the checks need to know about a device: the ledger's view plus the agent's key."""

    device_id: bytes
    epoch: int  # current epoch on the ledger
    anchor: bytes  # c_0 of that epoch, as enrolled
    revoked_ms: int | None
    blinding_key: bytes  # 31 bytes, shared with the device at provisioning
    # The device's keys by the frame time they take effect from, if not just Ed25519 = device_id
    # (P-256 devices, rotated keys: DESIGN §15).
    keys: tuple[tuple[int, signing.PublicKey], ...] = ()
    # The device signs seq 0 and every seq ≡ 0 (mod sign_every); the frames between travel as
    # UnsignedReadings (DESIGN §16). Part of its provisioning at this agent; 1 = every frame signed.
    sign_every: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.sign_every <= MAX_SIGN_EVERY:
            raise ValueError(f"sign_every must be in 1..{MAX_SIGN_EVERY}")

    def key_at(self, ts_ms: int) -> signing.PublicKey | None:
        """The key for a frame at ts_ms; None for the Ed25519 key that is the device_id."""
        key = None
        for since, k in self.keys:
            if since <= ts_ms:
                key = k
        if key is None and self.keys:
            key = self.keys[0][1]
        if key is not None and key.key_type is signing.KeyType.ED25519 and key.data == self.device_id:
            return None
        return key

    @property
    def blinding_key_be32(self) -> bytes:
        return b"\x00" + self.blinding_key


# --------------------------------------------------------------------------- chain state


class Known:
    """A stored frame as later checks and detection need it."""

    __slots__ = ("ts", "chain", "reading", "linked", "alts")

    def __init__(self, ts: int, chain: int, reading: int, linked: bool, alts: list[int] | None = None) -> None:
        self.ts = ts
        self.chain = chain  # as an int
        self.reading = reading  # signed int32
        self.linked = linked  # its reading is bound: chained from its stored predecessor (or seq 0)
        self.alts = alts  # other readings received for this (provisional) frame, not yet decided

    def __repr__(self) -> str:
        return f"Known(ts={self.ts}, reading={self.reading}, linked={self.linked})"


class Pending:
    """An unsigned frame held until a signed frame decides it (DESIGN §16). `parent` is the chain
    value of the predecessor it chained from on arrival (None: the predecessor was missing)."""

    __slots__ = ("frame", "chain", "parent")

    def __init__(self, frame: Incoming, chain: int, parent: int | None) -> None:
        self.frame = frame
        self.chain = chain
        self.parent = parent


class ChainBook:
    """One device's stored frames of its current epoch, within `window` seqs of the newest.

    Frames older than the window are forgotten here (they stay in the store); a gap older than
    the window can no longer be filled. `pending` holds the unsigned frames (every copy received,
    at most MAX_ALTERNATIVES per seq) after the newest signed frame that no signed frame has
    confirmed yet: they are in memory only, never in `frames`, so nothing provisional feeds
    detection or anchors.
    """

    def __init__(self, device_id: bytes, epoch: int, window: int, sign_every: int = 1) -> None:
        if window < 2:
            raise ValueError("the reorder window must be at least 2 seqs")
        self.device_id = device_id
        self.epoch = epoch
        self.window = window
        self.sign_every = sign_every
        self.pending: dict[int, list[Pending]] = {}
        self.frames: dict[int, Known] = {}
        self.seqs: list[int] = []  # sorted keys of `frames`
        self.floor = 0  # seqs below this are closed: stored ones are replays, missing ones lost

    @property
    def tail(self) -> int:
        return self.seqs[-1] if self.seqs else -1

    def get(self, seq: int) -> Known | None:
        return self.frames.get(seq)

    def neighbours(self, seq: int) -> tuple[int | None, int | None]:
        """Nearest stored seqs below and above `seq` (which is not stored)."""
        i = bisect.bisect_left(self.seqs, seq)
        before = self.seqs[i - 1] if i > 0 else None
        after = self.seqs[i] if i < len(self.seqs) else None
        return before, after

    def add(self, seq: int, known: Known) -> None:
        if not self.seqs or seq > self.seqs[-1]:
            self.seqs.append(seq)  # the common case: in order
        else:
            bisect.insort(self.seqs, seq)
        self.frames[seq] = known
        self._prune()

    def _prune(self) -> None:
        limit = self.seqs[-1] - self.window + 1
        if limit > self.floor:
            self.floor = limit
            if self.pending:  # held runs that fell out of the reorder window can never be decided
                for k in [k for k in self.pending if k < limit]:
                    del self.pending[k]
        # Forget closed seqs in chunks so the list shift is amortised; until then they are still
        # answered from memory (a replay is a replay either way).
        if self.seqs[0] < self.floor - self.window // 4:
            cut = bisect.bisect_left(self.seqs, self.floor)
            for s in self.seqs[:cut]:
                del self.frames[s]
            del self.seqs[:cut]

    def load(self, rows: Iterable[tuple[int, int, bytes | int, int, bool]],
             alternatives: Iterable[tuple[int, int]] = ()) -> None:
        """Rebuild from the store after a restart: (seq, ts, chain, reading, linked), any order,
        and the provisional frames' alternative readings (seq, reading)."""
        for seq, ts, ch, reading, linked in sorted(rows):
            c = int.from_bytes(ch, "big") if isinstance(ch, bytes) else ch
            self.frames[seq] = Known(ts, c, reading, bool(linked))
            self.seqs.append(seq)
        for seq, reading in sorted(alternatives):
            k = self.frames.get(seq)
            if k is not None and not k.linked:
                k.alts = [*(k.alts or ()), reading]
        if self.seqs:
            self.floor = max(0, self.seqs[-1] - self.window + 1)
            cut = bisect.bisect_left(self.seqs, self.floor)
            for s in self.seqs[:cut]:
                del self.frames[s]
            del self.seqs[:cut]


# --------------------------------------------------------------------------- the checks


@dataclass(frozen=True)
class Verdict:
    """The outcome for one frame. `reason` None means accepted."""

    reason: Reason | None
    message: str = ""
    linked: bool = False
    relinked: int | None = None  # seq of a stored successor that this frame linked
    # What the caller must store, beside inserting the frame (the default):
    replaced: bool = False  # the frame's seq was stored provisional: overwrite its reading, linked
    alternative: bool = False  # store the reading only, as an alternative of the provisional frame
    relinked_reading: int | None = None  # the reading of `relinked` that linked (an alternative won)
    refuted: int | None = None  # seq of a successor whose stored reading and alternatives failed
    # Frames signed every s-th reading (DESIGN §16):
    held: bool = False  # an unsigned frame: never stored itself (held in memory until confirmed)
    confirmed: tuple[Incoming, ...] = ()  # unsigned frames a signed frame confirmed: store them, linked
    dropped: int = 0  # unsigned frames refuted by this signed frame (no combination linked)

    @property
    def accepted(self) -> bool:
        return self.reason is None


def _reject(reason: Reason, message: str = "") -> Verdict:
    return Verdict(reason, message or reason.description)


def _time_order(book: ChainBook, seq: int, ts: int, before: int | None, after: int | None) -> Verdict | None:
    """A frame's time must fall strictly between its stored neighbours' (signed or unsigned alike)."""
    if before is not None and book.frames[before].ts >= ts:
        return _reject(Reason.TIMESTAMP_NOT_INCREASING, f"seq {seq} at {ts}, seq {before} at {book.frames[before].ts}")
    if after is not None and book.frames[after].ts <= ts:
        return _reject(Reason.TIMESTAMP_NOT_INCREASING, f"seq {seq} at {ts}, seq {after} at {book.frames[after].ts}")
    return None


StoredLookup = Callable[[bytes, int, int], bool]  # (device_id, epoch, seq) -> stored?


class FrameChecker:
    """The agent's frame-acceptance state machine (see the module docstring for the rules).

    `check` decides and, on acceptance, records the frame in the device's `ChainBook`; the caller
    must then store it (and must not store anything that was refused).
    """

    def __init__(self, *, max_skew_ms: int, reorder_window: int = 4096,
                 stored_lookup: StoredLookup | None = None) -> None:
        self.max_skew_ms = max_skew_ms
        self.reorder_window = reorder_window
        self.devices: dict[bytes, DeviceRecord] = {}
        self.books: dict[bytes, ChainBook] = {}
        self._stored_lookup = stored_lookup or (lambda d, e, s: False)

    # -- the ledger view --
    def set_device(self, record: DeviceRecord) -> None:
        """Add or update a device. A new epoch starts an empty book (the old epoch is closed)."""
        self.devices[record.device_id] = record
        book = self.books.get(record.device_id)
        if book is not None and book.epoch != record.epoch:
            del self.books[record.device_id]
        elif book is not None:
            book.sign_every = record.sign_every

    def remove_device(self, device_id: bytes) -> None:
        self.devices.pop(device_id, None)
        self.books.pop(device_id, None)

    def book(self, device_id: bytes) -> ChainBook | None:
        return self.books.get(device_id)

    def book_for(self, record: DeviceRecord) -> ChainBook:
        book = self.books.get(record.device_id)
        if book is None:
            book = self.books[record.device_id] = ChainBook(record.device_id, record.epoch, self.reorder_window,
                                                            record.sign_every)
        return book

    # -- the checks --
    def check(self, f: Incoming, now_ms: int) -> Verdict:
        dev = self.devices.get(f.device_id)
        if dev is None:
            return _reject(Reason.UNKNOWN_DEVICE, f"device {f.device_id.hex()} is not enrolled for this agent")
        if not f.signature:
            return self._unsigned(f, dev, now_ms)
        sig_key = dev.key_at(f.ts) if dev.keys else None
        if sig_key is None:
            if not _verify_frame(f):
                return _reject(Reason.BAD_FRAME_SIGNATURE)
        elif not signing.verify(sig_key, FRAME_TAG, f.body, f.signature):
            return _reject(Reason.BAD_FRAME_SIGNATURE, f"not signed by the device's {sig_key.key_type.name} key")
        refused = self._device_and_time(f, dev, now_ms)
        if refused is not None:
            return refused
        book = self.book_for(dev)
        seq = f.seq
        stored = book.frames.get(seq)
        if stored is not None:
            return self._copy(f, dev, book, stored)
        if seq < book.floor:
            if self._stored_lookup(f.device_id, f.epoch, seq):
                return _reject(Reason.REPLAYED_FRAME, f"seq {seq} is already stored")
            return _reject(Reason.CHAIN_BROKEN,
                           f"seq {seq} arrived after its gap was given up (reorder window {book.window})")
        if seq > book.tail:  # the common case: the next frame in order
            before, after = (book.tail if book.seqs else None), None
        else:
            before, after = book.neighbours(seq)
        refused = _time_order(book, seq, f.ts, before, after)
        if refused is not None:
            return refused

        c = int.from_bytes(f.chain, "big")
        key = dev.blinding_key_be32
        confirmed: tuple[Incoming, ...] = ()
        dropped = 0
        if seq == 0:
            if f.chain != dev.anchor:
                return _reject(Reason.CHAIN_BROKEN, "the anchor frame's chain value is not the enrolled c_0")
            linked = True
        else:
            prev = book.frames.get(seq - 1)
            if prev is not None:
                s_i = blinding_int(key, seq)
                if step_int(prev.chain, f.ts, f.enc_reading, s_i) != c:
                    return _reject(Reason.CHAIN_BROKEN, _not_following(prev.chain, f, s_i))
                linked = True
            elif book.pending:  # unsigned frames before this one: this signed frame decides them
                run = self._confirm(book, dev, seq, c, f.ts, f.enc_reading)
                if run is not None:
                    confirmed, linked = run, True
                else:
                    dropped = _drop_run(book, seq)
                    linked = False  # refuted: re-anchors, as after a gap
            else:
                linked = False  # re-anchors: a window may start here, its reading is not bound yet
        relinked = relinked_reading = refuted = None
        succ = book.frames.get(seq + 1)
        if succ is not None:
            s_next = blinding_int(key, seq + 1)
            if step_int(c, succ.ts, succ.reading + ENC_OFFSET, s_next) == succ.chain:
                if not succ.linked:
                    succ.linked = True
                    succ.alts = None
                    relinked = seq + 1
            elif succ.linked:  # cannot happen: a linked successor chained from this very seq
                return _reject(Reason.CHAIN_BROKEN, f"stored seq {seq + 1} does not follow from late seq {seq}")
            else:
                # The successor is provisional and its stored reading is false: a copy that links
                # replaces it; none does, the successor stays unlinked. This frame is good either way.
                won = next((r for r in succ.alts or () if step_int(c, succ.ts, r + ENC_OFFSET, s_next) == succ.chain),
                           None)
                if won is not None:
                    succ.reading, succ.linked = won, True
                    relinked, relinked_reading = seq + 1, won
                else:
                    refuted = seq + 1
                succ.alts = None
        book.add(seq, Known(f.ts, c, f.reading, linked))
        if book.pending and seq + 1 in book.pending:  # a late signed frame: the run after it may link
            late = self._confirm_after(book, dev, seq + 1)
            if late is not None:
                relinked, confirmed, relinked_reading = late
        return Verdict(None, "", linked, relinked, relinked_reading=relinked_reading, refuted=refuted,
                       confirmed=confirmed, dropped=dropped)

    # -- frames signed every s-th reading (DESIGN §16) --
    def _device_and_time(self, f: Incoming, dev: DeviceRecord, now_ms: int) -> Verdict | None:
        """What a signed and an unsigned frame both pass: the device not revoked at the frame's
        time, its current epoch, and a time not ahead of ours by more than the skew."""
        if dev.revoked_ms is not None and f.ts >= dev.revoked_ms:
            return _reject(Reason.DEVICE_REVOKED, f"device revoked at {dev.revoked_ms}, frame at {f.ts}")
        if f.epoch != dev.epoch:
            return _reject(Reason.WRONG_EPOCH, f"frame epoch {f.epoch}, device epoch {dev.epoch}")
        if f.ts > now_ms + self.max_skew_ms:
            return _reject(Reason.TIMESTAMP_IN_FUTURE,
                           f"frame at {f.ts} is {f.ts - now_ms} ms ahead (allowed {self.max_skew_ms})")
        return None

    def _unsigned(self, f: Incoming, dev: DeviceRecord, now_ms: int) -> Verdict:
        """An UnsignedReading: refused at a seq the device must sign; otherwise every other check,
        then held (never stored) until a signed frame confirms or refutes its run."""
        s = dev.sign_every
        seq = f.seq
        if seq % s == 0:
            return _reject(Reason.BAD_FRAME_SIGNATURE,
                           f"seq {seq} carries no signature; this device signs seq 0 and every {s}th frame"
                           if s > 1 else f"seq {seq} carries no signature; this device signs every frame")
        refused = self._device_and_time(f, dev, now_ms)
        if refused is not None:
            return refused
        book = self.book_for(dev)
        if seq in book.frames:
            return _reject(Reason.REPLAYED_FRAME, f"seq {seq} is already stored")
        if seq < book.floor:
            if self._stored_lookup(f.device_id, f.epoch, seq):
                return _reject(Reason.REPLAYED_FRAME, f"seq {seq} is already stored")
            return _reject(Reason.CHAIN_BROKEN,
                           f"seq {seq} arrived after its gap was given up (reorder window {book.window})")
        last_signed = seq - seq % s  # the signed frame this run follows
        if last_signed > book.tail:
            return _reject(Reason.CHAIN_BROKEN,
                           f"unsigned seq {seq} arrived before signed seq {last_signed}, which its run follows")
        before, after = book.neighbours(seq)
        refused = _time_order(book, seq, f.ts, before, after)
        if refused is not None:
            return refused
        copies = book.pending.get(seq)
        if copies is not None:
            if any(p.frame.ts == f.ts and p.frame.chain == f.chain and p.frame.enc_reading == f.enc_reading
                   for p in copies):
                return _reject(Reason.REPLAYED_FRAME, f"seq {seq} was already received")
            if len(copies) >= MAX_ALTERNATIVES:
                return _reject(Reason.REPLAYED_FRAME,
                               f"seq {seq} already has {MAX_ALTERNATIVES} unconfirmed copies; its signed frame decides")
        c = int.from_bytes(f.chain, "big")
        s_i = blinding_int(dev.blinding_key_be32, seq)
        parent: int | None = None
        prev = book.frames.get(seq - 1)
        if prev is not None:
            if step_int(prev.chain, f.ts, f.enc_reading, s_i) != c:
                return _reject(Reason.CHAIN_BROKEN, _not_following(prev.chain, f, s_i))
            parent = prev.chain
        else:
            prev_copies = book.pending.get(seq - 1)
            if prev_copies:
                parent = next((p.chain for p in prev_copies
                               if step_int(p.chain, f.ts, f.enc_reading, s_i) == c), None)
                if parent is None:
                    return _reject(Reason.CHAIN_BROKEN, f"seq {seq} follows from no copy of seq {seq - 1}")
        book.pending.setdefault(seq, []).append(Pending(f, c, parent))
        late = self._confirm_after(book, dev, seq)
        if late is not None:
            return Verdict(None, "", False, late[0], held=True, confirmed=late[1], relinked_reading=late[2])
        return Verdict(None, "", False, held=True)

    def _confirm_after(self, book: ChainBook, dev: DeviceRecord,
                       seq: int) -> tuple[int, tuple[Incoming, ...], int | None] | None:
        """A run around pending `seq` whose signed end frame is stored unlinked (it arrived first):
        confirm it now if it links, with the end frame's stored reading or one of its alternatives
        (§12: anyone may have resent that signed frame with another reading). Returns (the signed
        frame's seq, the confirmed frames, the alternative reading that won or None)."""
        _, m = book.neighbours(seq)
        if m is None or book.frames[m].linked:
            return None
        end = book.frames[m]
        for r in (end.reading, *(end.alts or ())):
            run = self._confirm(book, dev, m, end.chain, end.ts, r + ENC_OFFSET)
            if run is not None:
                won = None if r == end.reading else r
                end.reading, end.linked, end.alts = r, True, None
                return m, run, won
        return None

    def _confirm(self, book: ChainBook, dev: DeviceRecord, m: int, c_m: int, ts_m: int,
                 enc_m: int) -> tuple[Incoming, ...] | None:
        """The unsigned run before signed seq m, confirmed through the chain: one copy per seq from
        the newest stored frame L < m to m, each chaining from the one before, and c_m from the
        last. None if a seq is missing or no combination links (nothing changes then). On success
        the held frames between L and m are forgotten, the run is added to the book (linked) and
        returned in seq order."""
        i = bisect.bisect_left(book.seqs, m)
        before = book.seqs[i - 1] if i > 0 else None
        if before is None or before == m - 1:
            return None
        last = before
        if any(k not in book.pending for k in range(last + 1, m)):
            return None
        key = dev.blinding_key_be32
        start = book.frames[last]

        def link(i: int, want: int, ts_after: int) -> list[Pending] | None:
            """A copy at seq i with chain `want` whose own reading chains from seq i-1."""
            for p in book.pending[i]:
                if p.chain != want or p.frame.ts >= ts_after:
                    continue
                if i - 1 == last:
                    ok = p.parent == start.chain if p.parent is not None else \
                        step_int(start.chain, p.frame.ts, p.frame.enc_reading, blinding_int(key, i)) == p.chain
                    if ok and start.ts < p.frame.ts:
                        return [p]
                    continue
                if p.parent is not None:
                    wants = [p.parent]
                else:
                    s_i = blinding_int(key, i)
                    wants = list({q.chain for q in book.pending[i - 1]
                                  if step_int(q.chain, p.frame.ts, p.frame.enc_reading, s_i) == p.chain})
                for w in wants:
                    rest = link(i - 1, w, p.frame.ts)
                    if rest is not None:
                        return [*rest, p]
            return None

        s_m = blinding_int(key, m)
        for w in {p.chain for p in book.pending[m - 1]}:
            if step_int(w, ts_m, enc_m, s_m) == c_m:
                run = link(m - 1, w, ts_m)
                if run is not None:
                    _drop_run(book, m)
                    for k, p in enumerate(run, start=last + 1):
                        book.add(k, Known(p.frame.ts, p.chain, p.frame.reading, True))
                    return tuple(p.frame for p in run)
        return None


    def _copy(self, f: Incoming, dev: DeviceRecord, book: ChainBook, stored: Known) -> Verdict:
        """A frame whose seq is stored: a replay, unless the stored one is provisional and this is
        the same signed frame with another reading (see the module docstring)."""
        seq = f.seq
        reading = f.reading
        if stored.linked or stored.ts != f.ts or stored.chain != int.from_bytes(f.chain, "big") \
                or reading == stored.reading or reading in (stored.alts or ()):
            return _reject(Reason.REPLAYED_FRAME, f"seq {seq} is already stored")
        prev = book.frames.get(seq - 1)
        if prev is None:
            if len(stored.alts or ()) >= MAX_ALTERNATIVES:
                return _reject(Reason.REPLAYED_FRAME,
                               f"seq {seq} already has {MAX_ALTERNATIVES} unverified copies; its predecessor decides")
            stored.alts = [*(stored.alts or ()), reading]
            return Verdict(None, "", False, alternative=True)
        s_i = blinding_int(dev.blinding_key_be32, seq)
        if step_int(prev.chain, f.ts, f.enc_reading, s_i) != stored.chain:
            return _reject(Reason.CHAIN_BROKEN, _not_following(prev.chain, f, s_i))
        stored.reading, stored.linked, stored.alts = reading, True, None
        return Verdict(None, "", True, replaced=True)


def _drop_run(book: ChainBook, m: int) -> int:
    """Forget the held frames between the newest stored frame below seq m and m (the run a signed
    frame at m decided); returns how many copies were held. Runs before that stored frame stay:
    they wait for their own late frames."""
    i = bisect.bisect_left(book.seqs, m)
    last = book.seqs[i - 1] if i > 0 else -1
    gone = [k for k in book.pending if last < k < m]
    count = sum(len(book.pending[k]) for k in gone)
    for k in gone:
        del book.pending[k]
    return count
