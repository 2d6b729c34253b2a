"""Device simulator: signed, chained readings like a real sensor's secure element makes them.

A `SimDevice` holds a device key, its blinding key, its epoch, seq counter and chain state, and
turns readings into `DeviceReading`s exactly as DESIGN §2 says (seq 0 is the anchor frame with
chain c_0; c_i = Poseidon(c_{i-1}, t_i, enc(r_i), Poseidon(k_blind, i))). Timestamps are real
wall-clock ms (the ledger and the oracles judge time), strictly increasing.

What it measures comes from a `Sensor` (e.g. temperature in centi-degrees) with benign noise that
must never be claimed: the noise is bounded, and it never repeats the previous value exactly, so
no policy with a sane threshold, a stuck-count >= 2 or a dropout gap above the reading period can
fire on a healthy device. Faults start at a chosen seq: `Fault.excursion` (every other reading
above a value: the count-above trigger), `Fault.run` (consecutive readings above), `Fault.stuck`,
`Fault.out_of_range`, `Fault.dropout` (the device goes quiet for gap_ms).

It speaks like a device: MQTT (`MqttTransport`, QoS 1, topic
`faultproof/v1/devices/{device_id_hex}/frames`), HTTP (`HttpTransport`, POST /v1/frames msgpack),
or in-process (`engine_transport(agent.engine)`, or any callable via `CallbackTransport`). `run_fleet` drives many devices
at a rate against one transport.

    devs = make_fleet(tmp, 3, faults={0: [Fault.run(at_seq=40, count=20, value=9000)]})
    # enrol each d.provisioned.enrol on the ledger, put the .blind files in the agent's key dir
    async with MqttTransport("127.0.0.1", port) as t:
        await run_fleet(devs, t, readings=200, rate_hz=50)

This file must never be imported by the agent daemon's ingest path; it is a stand-in for devices.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.provision import ProvisionedDevice, load_blinding_key, provision
from faultproof import chain
from faultproof.futures import settle_from_thread
from faultproof.identity import Identity
from faultproof.messages import DeviceReading, Frame, ReadingBatch, UnsignedReading

AnyReading = DeviceReading | UnsignedReading  # what a device sends (UnsignedReading: DESIGN §16)

TOPIC_PREFIX = "faultproof/v1/devices/"


def topic_for(device_id: bytes) -> str:
    return f"{TOPIC_PREFIX}{device_id.hex()}/frames"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# --------------------------------------------------------------------------- what is measured


@dataclass(frozen=True)
class Fault:
    """A malfunction starting at reading `at_seq`."""

    kind: str  # excursion | run | stuck | out_of_range | dropout
    at_seq: int
    count: int = 0  # readings affected (0 = until the end)
    value: int = 0  # the reading while it lasts (excursion, run, out_of_range)
    every: int = 1  # excursion: every `every`-th reading is high
    gap_ms: int = 0  # dropout

    @classmethod
    def excursion(cls, at_seq: int, count: int, value: int, every: int = 2) -> Fault:
        return cls("excursion", at_seq, count=count, value=value, every=every)

    @classmethod
    def run(cls, at_seq: int, count: int, value: int) -> Fault:
        return cls("run", at_seq, count=count, value=value)

    @classmethod
    def stuck(cls, at_seq: int, count: int) -> Fault:
        return cls("stuck", at_seq, count=count)

    @classmethod
    def out_of_range(cls, at_seq: int, count: int, value: int) -> Fault:
        return cls("out_of_range", at_seq, count=count, value=value)

    @classmethod
    def dropout(cls, at_seq: int, gap_ms: int) -> Fault:
        return cls("dropout", at_seq, gap_ms=gap_ms)

    def active(self, seq: int) -> bool:
        span = self.count * max(self.every, 1) if self.count else None
        return seq >= self.at_seq and (span is None or seq < self.at_seq + span)


@dataclass
class Sensor:
    """Benign signal: a bounded random walk around `base` that never repeats the previous value."""

    base: int = 2150  # centi-degrees: 21.50 °C
    noise: int = 40  # the reading stays within base ± noise
    seed: int = 0
    _rng: random.Random = field(init=False, repr=False)
    _last: int | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.noise < 1:
            raise ValueError("noise must be >= 1 so consecutive readings differ")
        self._rng = random.Random(self.seed)

    def next(self) -> int:
        while True:
            v = self.base + self._rng.randint(-self.noise, self.noise)
            if v != self._last:
                self._last = v
                return v


class SimDevice:
    """One simulated device: key, blinding key, epoch, seq counter, chain state, faults."""

    def __init__(self, identity: Identity, blinding_key: bytes, *, epoch: int = 0,
                 sensor: Sensor | None = None, faults: Sequence[Fault] = (),
                 provisioned: ProvisionedDevice | None = None, sign_every: int = 1) -> None:
        if not 1 <= sign_every <= 64:
            raise ValueError("sign_every must be in 1..64")
        self.identity = identity
        # DESIGN §16: sign seq 0 and every seq ≡ 0 (mod sign_every); the rest go as UnsignedReadings
        self.sign_every = sign_every
        self.blinding_key = blinding_key
        self.epoch = epoch
        self.sensor = sensor or Sensor()
        self.faults = list(faults)
        self.provisioned = provisioned
        self.next_seq = 0
        self.chain = chain.chain_anchor(identity.public_key, epoch)
        self.last_ts = 0
        self.last_reading: int | None = None
        self._k = int.from_bytes(blinding_key, "big")

    @classmethod
    def load(cls, key_file: str | Path, blinding_file: str | Path, **kw: Any) -> SimDevice:
        return cls(Identity.load(key_file), load_blinding_key(blinding_file), **kw)

    @property
    def device_id(self) -> bytes:
        return self.identity.public_key

    def value_for(self, seq: int) -> int:
        """The reading at `seq`: the sensor's, unless a fault says otherwise."""
        benign = self.sensor.next()
        for f in self.faults:
            if not f.active(seq):
                continue
            if f.kind in ("run", "out_of_range"):
                return f.value
            if f.kind == "excursion" and (seq - f.at_seq) % f.every == 0:
                return f.value
            if f.kind == "stuck":
                return self.last_reading if self.last_reading is not None else benign
        return benign

    def gap_before(self, seq: int) -> int:
        return sum(f.gap_ms for f in self.faults if f.kind == "dropout" and f.at_seq == seq)

    def make(self, ts_ms: int, reading: int | None = None) -> DeviceReading | UnsignedReading:
        """The next frame at (at least) ts_ms. Seq 0 is the anchor frame (chain c_0). Signed only
        at seq ≡ 0 (mod sign_every); the others are UnsignedReadings (DESIGN §16)."""
        ts = max(ts_ms, self.last_ts + 1)
        seq = self.next_seq
        if seq == 0:
            r = 0
            c = self.chain  # c_0
        else:
            r = self.value_for(seq) if reading is None else reading
            s = chain.poseidon([self._k, seq])
            c = chain.chain_step(self.chain, ts, r, s)
        frame = Frame(device_id=self.device_id, epoch=self.epoch, seq=seq, ts_ms=ts,
                      chain=chain.chain_to_bytes(c))
        msg: DeviceReading | UnsignedReading
        if seq % self.sign_every:
            msg = UnsignedReading(frame=frame, reading=chain.enc(r))
        else:
            msg = DeviceReading(signed=frame.sign(self.identity), reading=chain.enc(r))
        self.chain, self.last_ts, self.next_seq = c, ts, seq + 1
        if seq > 0:
            self.last_reading = r
        return msg

    def new_epoch(self, epoch: int) -> None:
        """The device lost its state: start `epoch` (the underwriter must enrol it on the ledger)."""
        self.epoch = epoch
        self.next_seq = 0
        self.chain = chain.chain_anchor(self.device_id, epoch)
        self.last_reading = None


def make_fleet(directory: str | Path, count: int, *, faults: dict[int, Sequence[Fault]] | None = None,
               base: int = 2150, noise: int = 40, seed: int = 0, sign_every: int = 1) -> list[SimDevice]:
    """Provision `count` devices in `directory` (key, blinding key, enrolment JSON each)."""
    out = []
    for i in range(count):
        p = provision(directory)
        out.append(SimDevice(p.identity, p.blinding_key, sensor=Sensor(base=base, noise=noise, seed=seed + i),
                             faults=(faults or {}).get(i, ()), provisioned=p, sign_every=sign_every))
    return out


# --------------------------------------------------------------------------- transports


class Transport:
    """Where a device's readings go. `send` returns once the transport accepted them."""

    async def send(self, device: SimDevice, readings: Sequence[AnyReading]) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Transport:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        return None


class CallbackTransport(Transport):
    """In-process: hands the readings to a callable (the devnet's agent, a benchmark)."""

    def __init__(self, fn: Callable[[Sequence[AnyReading]], Awaitable[Any] | Any]) -> None:
        self.fn = fn

    async def send(self, device: SimDevice, readings: Sequence[AnyReading]) -> None:
        result = self.fn(readings)
        if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
            await result


def engine_transport(engine: Any) -> CallbackTransport:
    """In-process straight into an agent's `IngestEngine` (`Agent.engine` in the devnet): the same
    checks, store and acknowledgement-after-commit as MQTT/HTTP, without a socket."""
    from agent.ingest import frames_of

    async def send(readings: Sequence[AnyReading]) -> None:
        result = await engine.submit_async(frames_of(readings), transport="simulator")
        if result.error is not None:
            raise RuntimeError(f"agent ingest failed: {result.error}")

    return CallbackTransport(send)


class HttpTransport(Transport):
    """POST /v1/frames, msgpack: one DeviceReading, or a ReadingBatch when sending several."""

    def __init__(self, base_url: str, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._session: Any = None
        self.responses: list[dict[str, Any]] = []

    async def send(self, device: SimDevice, readings: Sequence[AnyReading]) -> None:
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        body = readings[0].encode() if len(readings) == 1 else ReadingBatch(readings=tuple(readings)).encode()
        async with self._session.post(f"{self.base_url}/v1/frames", data=body,
                                      headers={"Content-Type": "application/msgpack"}) as resp:
            payload = await resp.json()
            if resp.status >= 500:
                raise RuntimeError(f"agent answered {resp.status}: {payload}")
            self.responses.append(payload)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class MqttTransport(Transport):
    """Publishes each DeviceReading (or a ReadingBatch when batching) QoS 1 to the device's topic;
    `send` returns when the broker acknowledged every message (PUBACK)."""

    def __init__(self, host: str, port: int, *, client_id: str | None = None, username: str = "device",
                 password: str | None = None, tls_ca_file: str | None = None, batch: bool = False,
                 max_inflight: int = 1000) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.batch = batch
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: dict[int, asyncio.Future[None]] = {}
        self._early: set[int] = set()
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"sim-{random.getrandbits(48):x}")
        self.client.username_pw_set(username, password)
        if tls_ca_file:
            self.client.tls_set(ca_certs=tls_ca_file)
        self.client.max_inflight_messages_set(max_inflight)
        self.client.max_queued_messages_set(0)
        self.client.on_publish = self._on_publish
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self._attesters: dict[str, tuple[SimDevice, bool]] = {}  # attest topic -> (device, tampered boot)
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()

    async def __aenter__(self) -> MqttTransport:
        self._loop = asyncio.get_running_loop()
        if not await asyncio.to_thread(self._connected.wait, 10):
            raise TimeoutError("MQTT broker did not accept the connection")
        return self

    def answer_attestation(self, device: SimDevice, *, tampered: bool = False) -> None:
        """DESIGN §15: answer the agent's attestation requests for this device (a nonce on
        `.../<id>/attest`) with evidence of its measured boot on `.../<id>/evidence`, as a device's
        secure element does. `tampered`: the device booted another firmware."""
        topic = f"{TOPIC_PREFIX}{device.device_id.hex()}/attest"
        self._attesters[topic] = (device, tampered)
        if self._connected.is_set():
            self.client.subscribe(topic, qos=1)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        # paho's thread; answer_attestation may add a device meanwhile. Connected first, then a
        # copy of the topics: a device added before the copy is subscribed here, one added after
        # subscribes itself (seeing connected); never iterate the dict itself (seen: "dictionary
        # changed size during iteration" killed this thread before it set connected).
        self._connected.set()
        for topic in list(self._attesters):
            client.subscribe(topic, qos=1)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        from agent.boot import ledger_evidence
        from faultproof.signing import Ed25519FileSigner

        found = self._attesters.get(msg.topic)
        nonce = bytes(msg.payload)
        if found is None or len(nonce) != 32:
            return
        device, tampered = found
        ev = ledger_evidence(Ed25519FileSigner(device.identity), epoch=device.epoch, seq=max(device.next_seq - 1, 0),
                             ts_ms=now_ms(), head_hash=nonce, tampered=tampered)
        client.publish(f"{TOPIC_PREFIX}{device.device_id.hex()}/evidence", ev.encode(), qos=1)

    def _on_publish(self, client: Any, userdata: Any, mid: int, rc: Any, props: Any) -> None:
        # Runs on paho's thread, which may hold paho's own locks: never call paho from here, and
        # never hold our lock across a paho call elsewhere (that order inversion deadlocks).
        with self._lock:
            fut = self._pending.pop(mid, None)
            if fut is None:
                self._early.add(mid)  # PUBACK before send() registered the mid
                return
        settle_from_thread(fut)

    async def send(self, device: SimDevice, readings: Sequence[AnyReading]) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        payloads = [ReadingBatch(readings=tuple(readings)).encode()] if self.batch and len(readings) > 1 \
            else [r.encode() for r in readings]
        topic = topic_for(device.device_id)
        futures = []
        for p in payloads:
            info = self.client.publish(topic, p, qos=1)
            if info.rc != 0:
                raise RuntimeError(f"MQTT publish failed with rc {info.rc}")
            fut = self._loop.create_future()
            with self._lock:
                if info.mid in self._early:
                    self._early.discard(info.mid)
                    fut.set_result(None)
                else:
                    self._pending[info.mid] = fut
            futures.append(fut)
        await asyncio.gather(*futures)

    async def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


# --------------------------------------------------------------------------- driving devices


async def run_device(device: SimDevice, transport: Transport, *, readings: int, rate_hz: float,
                     batch: int = 1) -> None:
    """Send `readings` frames (the anchor frame first, if the device is at seq 0) at `rate_hz`
    readings per second, in groups of `batch`. A dropout fault makes the device wait its gap.

    A frame is stamped with the time it was due, as a sensor samples on its own schedule: when the
    sender falls behind (a loaded machine), it catches up by sending faster, never by stamping
    frames closer together, which the agent rightly takes for an injector (`rate_jump`)."""
    period = 1.0 / rate_hz if rate_hz > 0 else 0.0
    started = origin = time.monotonic()
    origin_ms = now_ms()
    sent = 0
    pending: list[AnyReading] = []
    while sent < readings:
        gap = device.gap_before(device.next_seq)
        if gap:
            if pending:
                await transport.send(device, pending)
                pending = []
            await asyncio.sleep(gap / 1000)
            started += gap / 1000
        due_ms = origin_ms + round((started + sent * period - origin) * 1000) if period else now_ms()
        pending.append(device.make(due_ms))
        sent += 1
        if len(pending) >= batch or sent == readings:
            await transport.send(device, pending)
            pending = []
        if period:
            delay = started + sent * period - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)


async def run_fleet(devices: Iterable[SimDevice], transport: Transport, *, readings: int,
                    rate_hz: float, batch: int = 1) -> None:
    """Run every device concurrently (one task each, all awaited)."""
    async with asyncio.TaskGroup() as tg:
        for d in devices:
            tg.create_task(run_device(d, transport, readings=readings, rate_hz=rate_hz, batch=batch))


def prebuilt_stream(device: SimDevice, count: int, *, start_ts: int | None = None,
                    step_ms: int = 1) -> list[AnyReading]:
    """`count` frames with back-dated timestamps `step_ms` apart (benchmarks and unit tests)."""
    ts = start_ts if start_ts is not None else now_ms() - count * step_ms - 1000
    out = []
    for _ in range(count):
        out.append(device.make(ts))
        ts += step_ms
    return out
