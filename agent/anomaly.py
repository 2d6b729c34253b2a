"""Signs of compromise per device, and the quarantine decision (DESIGN §15). Pure: no clock, no I/O.

The agent feeds every frame verdict, every attestation result and every refused broker login in;
the monitor counts signals per device in a sliding window and quarantines a device when a count
reaches its threshold:

  bad_signature       a frame (or evidence) that claims the device but is not signed by its key
  replay              a frame whose seq is already stored
  chain_break         a frame whose chain value does not follow
  rate_jump           frames (by their own timestamps) `rate_factor` times closer together than the
                      device's usual median gap: a clone or an injector alongside the real device.
                      Slowing down is not a sign of compromise (dropouts are an insured malfunction),
                      and medians keep one long gap from looking like a change of rate.
  attestation_failed  the device's measured boot is not on the allowlist (threshold 1 by default)
  login_refused       the broker refused a login naming the device, or (debug logging) one of its
                      publishes: agent/brokerlog.py reads them from mosquitto's log

A quarantined device stays quarantined until `release` (the ledger reinstating it), across
restarts (the engine stores each quarantine and `restore`s them): its frames are still checked and stored, its claims are held, and the agent reports it (the
`Quarantine` carries a digest of what was seen, which oracles sign in a suspension). Anyone can send
forged frames naming a device, so a quarantine holds claims but never moves money; only k oracles'
suspension on the ledger refuses windows, and only the admin lifts it.

This file must never drop a frame or decide a claim: it only says which devices are quarantined.
"""

from __future__ import annotations

import enum
import hashlib
import statistics
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from faultproof.errors import Reason


class Signal(enum.StrEnum):
    BAD_SIGNATURE = "bad_signature"
    REPLAY = "replay"
    CHAIN_BREAK = "chain_break"
    RATE_JUMP = "rate_jump"
    ATTESTATION_FAILED = "attestation_failed"
    LOGIN_REFUSED = "login_refused"


# What a refusal reason says about the device (other reasons say nothing).
SIGNAL_OF_REASON: dict[Reason, Signal] = {
    Reason.BAD_FRAME_SIGNATURE: Signal.BAD_SIGNATURE,
    Reason.BAD_ATTESTATION_SIGNATURE: Signal.BAD_SIGNATURE,
    Reason.REPLAYED_FRAME: Signal.REPLAY,
    Reason.ATTESTATION_REPLAYED: Signal.REPLAY,
    Reason.CHAIN_BROKEN: Signal.CHAIN_BREAK,
    Reason.ATTESTATION_FAILED: Signal.ATTESTATION_FAILED,
}


@dataclass(frozen=True)
class Thresholds:
    window_ms: int = 60_000
    limits: tuple[tuple[Signal, int], ...] = (
        (Signal.BAD_SIGNATURE, 20),
        (Signal.REPLAY, 50),
        (Signal.CHAIN_BREAK, 10),
        (Signal.RATE_JUMP, 3),
        (Signal.ATTESTATION_FAILED, 1),
        (Signal.LOGIN_REFUSED, 10),
    )
    rate_factor: float = 4.0  # frames this many times faster than usual is a jump
    rate_warmup: int = 32  # gaps between frames before a device's usual rate counts

    def limit(self, signal: Signal) -> int:
        return dict(self.limits)[signal]


@dataclass(frozen=True)
class Quarantine:
    device_id: bytes
    since_ms: int
    signal: Signal
    count: int
    evidence_hash: bytes  # SHA-256 over what was seen (signal, time) in order

    def to_json(self) -> dict[str, object]:
        return {"device_id": self.device_id.hex(), "since_ms": self.since_ms, "signal": self.signal.value,
                "count": self.count, "evidence_hash": self.evidence_hash.hex()}


# Medians, not means: a dropout (an insured malfunction) or the gap since provisioning must not
# look like a change of rate.
_MAX_SEEN = 1024
_BASELINE_GAPS, _RECENT_GAPS, _REFRESH = 64, 8, 16


@dataclass
class _Device:
    events: dict[Signal, deque[int]] = field(default_factory=dict)
    seen: list[tuple[Signal, int]] = field(default_factory=list)  # bounded: the evidence
    last_ts: int | None = None
    gaps: deque[int] = field(default_factory=lambda: deque(maxlen=_BASELINE_GAPS))  # ms between frames
    recent: deque[int] = field(default_factory=lambda: deque(maxlen=_RECENT_GAPS))
    baseline: float = 0.0  # median gap of the last _BASELINE_GAPS, refreshed every _REFRESH frames
    since_refresh: int = 0
    quarantine: Quarantine | None = None


class AnomalyMonitor:
    def __init__(self, thresholds: Thresholds | None = None) -> None:
        self.t = thresholds or Thresholds()
        self._devices: dict[bytes, _Device] = {}

    def _dev(self, device_id: bytes) -> _Device:
        d = self._devices.get(device_id)
        if d is None:
            d = self._devices[device_id] = _Device()
        return d

    def quarantined(self, device_id: bytes) -> Quarantine | None:
        d = self._devices.get(device_id)
        return d.quarantine if d is not None else None

    def quarantines(self) -> list[Quarantine]:
        return [d.quarantine for d in self._devices.values() if d.quarantine is not None]

    def restore(self, quarantines: Iterable[Quarantine]) -> None:
        """The quarantines in force when the agent stopped (from its store): held again, with
        fresh counts (a restart must not end a quarantine; only a release does)."""
        for q in quarantines:
            self._dev(q.device_id).quarantine = q

    def release(self, device_id: bytes) -> None:
        """Lift a quarantine and forget the counts (the operator has looked)."""
        self._devices.pop(device_id, None)

    def reinstated(self, lifted_ms: Mapping[bytes, int]) -> list[Quarantine]:
        """The quarantines the ledger has ended: the admin lifted a suspension of the device
        (`lifted_ms`: device -> latest lift, ledger time) at or after the quarantine began. The
        admin reinstates after looking at the same evidence, so the agent stops holding the
        device's claims; a lift from before the quarantine says nothing about it."""
        return [q for q in self.quarantines() if lifted_ms.get(q.device_id, -1) >= q.since_ms]

    def refused(self, device_id: bytes, reason: Reason, now_ms: int) -> Quarantine | None:
        """A refusal naming this device. Returns the quarantine if this one started it."""
        signal = SIGNAL_OF_REASON.get(reason)
        return None if signal is None else self.observe(device_id, signal, now_ms)

    def observe(self, device_id: bytes, signal: Signal, now_ms: int) -> Quarantine | None:
        d = self._dev(device_id)
        q = d.events.setdefault(signal, deque())
        q.append(now_ms)
        while q and q[0] <= now_ms - self.t.window_ms:
            q.popleft()
        if len(d.seen) < _MAX_SEEN:
            d.seen.append((signal, now_ms))
        if d.quarantine is None and len(q) >= self.t.limit(signal):
            h = hashlib.sha256(b"faultproof/quarantine/v1" + device_id)
            for s, t in d.seen:
                h.update(s.value.encode() + t.to_bytes(8, "big"))
            d.quarantine = Quarantine(device_id, now_ms, signal, len(q), h.digest())
            return d.quarantine
        return None

    def accepted(self, device_id: bytes, ts_ms: int, now_ms: int) -> Quarantine | None:
        """An accepted frame (its own timestamp): tracks the device's frame rate. A jump is the
        median of the last few gaps `rate_factor` times below the device's usual median gap."""
        d = self._dev(device_id)
        last, d.last_ts = d.last_ts, ts_ms if d.last_ts is None else max(ts_ms, d.last_ts)
        if last is None or ts_ms <= last:
            return None  # the first frame, or a late one filling a gap
        d.gaps.append(ts_ms - last)
        d.recent.append(ts_ms - last)
        if len(d.gaps) < self.t.rate_warmup:
            return None
        d.since_refresh += 1
        if d.baseline == 0.0 or d.since_refresh >= _REFRESH:
            d.baseline, d.since_refresh = statistics.median(d.gaps), 0
        recent = statistics.median(d.recent)
        if recent * self.t.rate_factor < d.baseline:
            return self.observe(device_id, Signal.RATE_JUMP, now_ms)
        return None


# The fewest distinct forged frames an oracle signs a suspension for (oracle/suspension.py's
# MIN_FORGED_FRAMES), and the most one report carries (messages.SuspensionReport).
REPORT_MIN_FRAMES = 20
REPORT_MAX_FRAMES = 64


@dataclass(frozen=True)
class ForgeryReport:
    """What the agent sends its oracles for a device quarantined for bad signatures: the refused
    frames (encoded SignedFrames, distinct, at most REPORT_MAX_FRAMES) and when it quarantined."""

    device_id: bytes
    since_ms: int
    frames: tuple[bytes, ...]


class ForgeryEvidence:
    """Keeps the frames refused as `bad_frame_signature` per device (distinct, bounded) and says
    when a device quarantined for bad signatures has enough of them for a suspension report (once
    per device). Pure: the engine feeds it refused frames and asks after each batch."""

    def __init__(self, min_frames: int = REPORT_MIN_FRAMES, max_frames: int = REPORT_MAX_FRAMES) -> None:
        self.min_frames, self.max_frames = min_frames, max_frames
        self._frames: dict[bytes, dict[bytes, None]] = {}  # device -> encoded frames, in arrival order
        self._reported: set[bytes] = set()

    def forged(self, device_id: bytes, encoded_frame: bytes) -> None:
        if device_id in self._reported:
            return
        seen = self._frames.setdefault(device_id, {})
        if len(seen) < self.max_frames:
            seen[encoded_frame] = None

    def due(self, quarantine: Quarantine | None) -> ForgeryReport | None:
        """The report to send now, if `quarantine` is for bad signatures, not reported yet, and
        enough distinct forged frames of the device are kept."""
        if quarantine is None or quarantine.signal is not Signal.BAD_SIGNATURE:
            return None
        d = quarantine.device_id
        frames = self._frames.get(d, {})
        if d in self._reported or len(frames) < self.min_frames:
            return None
        self._reported.add(d)
        del self._frames[d]
        return ForgeryReport(d, quarantine.since_ms, tuple(frames))

    def forget(self, device_id: bytes) -> None:
        """The quarantine was released: a later burst is a new case."""
        self._frames.pop(device_id, None)
        self._reported.discard(device_id)
