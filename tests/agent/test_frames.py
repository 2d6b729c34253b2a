"""Pure frame checks (agent/frames.py): every acceptance rule and every rejection reason, the fast
decoder against the core's decoder, the fast hashes against faultproof.chain. No I/O, fast."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.frames import (
    DeviceRecord,
    FrameChecker,
    Incoming,
    Undecodable,
    blinding_int,
    parse_json,
    parse_wire,
    step_int,
)
from agent.simulator import Sensor, SimDevice
from faultproof import chain
from faultproof.errors import DecodeError, Reason
from faultproof.identity import Identity
from faultproof.messages import DeviceReading, Frame, ReadingBatch, UnsignedReading
from tests.strategies import for_message

NOW = 1_800_000_000_000
KEY = bytes(range(1, 32))


def device(seed: int = 1, epoch: int = 0) -> SimDevice:
    return SimDevice(Identity.from_seed(bytes([seed]) * 32), KEY, epoch=epoch, sensor=Sensor(seed=seed))


def record(d: SimDevice, *, revoked_ms: int | None = None, epoch: int | None = None) -> DeviceRecord:
    e = d.epoch if epoch is None else epoch
    return DeviceRecord(d.device_id, e, chain.chain_to_bytes(chain.chain_anchor(d.device_id, e)),
                        revoked_ms, d.blinding_key)


def stream(d: SimDevice, n: int, start: int = NOW - 100_000, step: int = 10) -> list[Incoming]:
    return [Incoming.from_message(d.make(start + i * step)) for i in range(n)]


def checker(*devs: SimDevice, window: int = 64, lookup=None) -> FrameChecker:
    c = FrameChecker(max_skew_ms=5_000, reorder_window=window, stored_lookup=lookup)
    for d in devs:
        c.set_device(record(d))
    return c


def altered(f: Incoming, *, signature: bytes | None = None, enc_reading: int | None = None) -> Incoming:
    """The frame as received with another signature or reading: what anyone who saw it can send."""
    return Incoming(f.device_id, f.epoch, f.seq, f.ts, f.chain, f.signature if signature is None else signature,
                    f.enc_reading if enc_reading is None else enc_reading, f.body)


def accept_all_but(c: FrameChecker, frames: list[Incoming], held: int) -> None:
    """Every frame is accepted but frames[held], held back (it comes late, or not at all)."""
    for f in frames[:held] + frames[held + 1:]:
        assert c.check(f, NOW).accepted


def reasons(c: FrameChecker, frames: list[Incoming]) -> list[Reason | None]:
    return [c.check(f, NOW).reason for f in frames]


# --------------------------------------------------------------------------- hashes and decoding


@given(st.integers(0, chain.P - 1), st.integers(0, 2**48 - 1), st.integers(chain.READING_MIN, chain.READING_MAX),
       st.binary(min_size=31, max_size=31), st.integers(0, 2**32 - 1))
@settings(max_examples=30, deadline=None)
def test_fast_hashes_equal_faultproof_chain(prev: int, ts: int, r: int, key: bytes, seq: int) -> None:
    s = chain.blinding_value(key, seq)
    assert blinding_int(b"\x00" + key, seq) == s
    assert step_int(prev, ts, chain.enc(r), s) == chain.chain_step(prev, ts, r, s)


@given(for_message(DeviceReading))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_fast_decoder_agrees_with_core(msg: DeviceReading) -> None:
    [got] = parse_wire(msg.encode())
    assert got.to_message() == msg
    assert got.body == msg.signed.frame.encode()


@given(for_message(ReadingBatch), st.data())
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_fast_decoder_never_accepts_what_core_refuses(batch: ReadingBatch, data: st.DataObject) -> None:
    raw = bytearray(batch.encode())
    if raw:
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    got = parse_wire(bytes(raw))
    try:
        from faultproof.messages import decode_any

        core = decode_any(bytes(raw), allowed=(DeviceReading, UnsignedReading, ReadingBatch))
    except Exception:
        assert isinstance(got, Undecodable)
        return
    items = core.readings if isinstance(core, ReadingBatch) else (core,)
    assert [g.to_message() for g in got] == list(items)


@given(st.binary(min_size=64, max_size=64), st.booleans())
@settings(max_examples=30, deadline=None)
def test_fast_signature_check_equals_identity_verify(junk: bytes, genuine: bool) -> None:
    """The one verify path (faultproof.identity.verify, libsodium's open without a key object)
    decides exactly as PyNaCl's VerifyKey does, and the frame check uses it."""
    import nacl.exceptions
    import nacl.signing

    from agent.frames import FRAME_TAG, _verify_frame
    from faultproof.identity import verify

    d = device()
    f = Incoming.from_message(d.make(NOW))
    if not genuine:
        f = altered(f, signature=junk)
    try:
        nacl.signing.VerifyKey(f.device_id).verify(FRAME_TAG + f.body, f.signature)
        reference = True
    except nacl.exceptions.BadSignatureError:
        reference = False
    assert _verify_frame(f) == verify(FRAME_TAG, f.body, f.signature, f.device_id) == reference
    assert _verify_frame(f) or not genuine


def test_json_forms_and_reading_out_of_range() -> None:
    d = device()
    msgs = [d.make(NOW - 1000 + i) for i in range(3)]
    assert [f.seq for f in parse_json(msgs[0].to_json())] == [0]
    assert [f.seq for f in parse_json(ReadingBatch(readings=tuple(msgs)).to_json())] == [0, 1, 2]
    bad = msgs[1].to_json() | {"reading": 2**32}
    assert parse_json(bad) == Undecodable(Reason.READING_OUT_OF_RANGE, parse_json(bad).message)
    assert isinstance(parse_wire(b"\xc1"), Undecodable)


# --------------------------------------------------------------------------- the checks


def test_in_order_stream_is_accepted_and_linked() -> None:
    d = device()
    c = checker(d)
    verdicts = [c.check(f, NOW) for f in stream(d, 20)]
    assert all(v.accepted and v.linked for v in verdicts)
    assert c.book(d.device_id).tail == 19


def test_each_rejection_has_its_reason() -> None:
    d, stranger = device(1), device(2)
    c = checker(d)
    frames = stream(d, 5)
    assert reasons(c, frames[:3]) == [None, None, None]

    assert c.check(stream(stranger, 1)[0], NOW).reason is Reason.UNKNOWN_DEVICE

    f = frames[3]
    forged = altered(f, signature=bytes(64))
    assert c.check(forged, NOW).reason is Reason.BAD_FRAME_SIGNATURE

    assert c.check(frames[2], NOW).reason is Reason.REPLAYED_FRAME

    tampered = altered(f, enc_reading=f.enc_reading + 1)
    assert c.check(tampered, NOW).reason is Reason.CHAIN_BROKEN

    future = Incoming.from_message(d.make(NOW + 60_000))  # seq 4, signed for a far-future time
    assert c.check(future, NOW).reason is Reason.TIMESTAMP_IN_FUTURE

    assert c.check(f, NOW).accepted  # the genuine seq 3 still goes in afterwards
    assert c.book(d.device_id).tail == 3


def test_wrong_epoch_revoked_and_bad_anchor() -> None:
    d = device()
    c = checker(d)
    c.set_device(record(d, epoch=1))
    assert c.check(stream(d, 1)[0], NOW).reason is Reason.WRONG_EPOCH

    c.set_device(record(d, revoked_ms=NOW - 200_000))
    assert c.check(stream(d, 1, start=NOW - 100_000)[0], NOW).reason is Reason.DEVICE_REVOKED

    other = device(3)
    c2 = checker(other)
    d2 = device(3, epoch=0)
    d2.chain = 12345  # an anchor frame that is not the enrolled c_0
    assert c2.check(Incoming.from_message(d2.make(NOW - 1000)), NOW).reason is Reason.CHAIN_BROKEN


def test_timestamps_must_increase() -> None:
    d = device()
    c = checker(d)
    frames = stream(d, 3)
    assert reasons(c, frames) == [None, None, None]
    # A correctly signed seq 3 whose timestamp is not after seq 2's.
    f = Frame(device_id=d.device_id, epoch=0, seq=3, ts_ms=frames[2].ts, chain=frames[2].chain)
    msg = DeviceReading(signed=f.sign(d.identity), reading=chain.enc(0))
    assert c.check(Incoming.from_message(msg), NOW).reason is Reason.TIMESTAMP_NOT_INCREASING


def test_gap_reanchors_and_late_fill_links_successor() -> None:
    d = device()
    c = checker(d)
    frames = stream(d, 10)
    accept_all_but(c, frames, 5)
    book = c.book(d.device_id)
    assert book.get(6).linked is False  # re-anchors after the gap: a window may start here
    assert all(book.get(i).linked for i in (7, 8, 9))
    v = c.check(frames[5], NOW)
    assert v.accepted and v.linked and v.relinked == 6
    assert book.get(6).linked is True


def test_late_fill_that_does_not_chain_is_refused() -> None:
    d = device()
    c = checker(d)
    frames = stream(d, 6)
    accept_all_but(c, frames, 3)
    f = frames[3]
    # A correctly signed seq 3 whose reading does not chain from seq 2.
    tampered = altered(f, enc_reading=f.enc_reading ^ 1)
    assert c.check(tampered, NOW).reason is Reason.CHAIN_BROKEN
    assert c.check(f, NOW).accepted


def test_seq_below_reorder_window_is_closed() -> None:
    d = device()
    stored: set[int] = set()
    c = checker(d, window=8, lookup=lambda dev, ep, seq: seq in stored)
    frames = stream(d, 40)
    for f in frames[:10] + frames[11:]:
        assert c.check(f, NOW).accepted
        stored.add(f.seq)
    book = c.book(d.device_id)
    assert book.floor == 39 - 8 + 1
    assert c.check(frames[10], NOW).reason is Reason.CHAIN_BROKEN  # its gap was given up
    assert c.check(frames[2], NOW).reason is Reason.REPLAYED_FRAME
    assert len(book.frames) <= 8 + 8 // 4 + 1


def test_new_epoch_starts_a_new_book() -> None:
    d = device()
    c = checker(d)
    assert all(v is None for v in reasons(c, stream(d, 4)))
    d.new_epoch(1)
    c.set_device(record(d))
    assert reasons(c, stream(d, 3, start=NOW - 50_000)) == [None, None, None]
    assert c.book(d.device_id).epoch == 1


# --------------------------------------------------------------------------- provisional frames (issue 13 item 6)


def predecessor_late() -> tuple[SimDevice, FrameChecker, list[Incoming]]:
    """Item 6's setting: a device's seqs 0..3 accepted, seq 4 (seq 5's predecessor) not yet here."""
    d = device()
    c = checker(d)
    frames = stream(d, 8)
    for f in frames[:4]:
        assert c.check(f, NOW).accepted
    return d, c, frames


def test_false_copy_while_predecessor_is_late_cannot_fail_genuine_frames() -> None:
    """Item 6: the false copy arrives first, the genuine frame after it, then the late predecessor.
    The genuine frame is kept (not refused as a replay), wins when the predecessor links it, and
    the predecessor is accepted."""
    d, c, frames = predecessor_late()
    genuine = frames[5]
    false = altered(genuine, enc_reading=genuine.enc_reading + 5000)
    assert c.check(false, NOW).accepted  # provisional: nothing can be checked yet
    v = c.check(genuine, NOW)
    assert v.accepted and v.alternative  # kept beside it, not a replay
    assert c.check(genuine, NOW).reason is Reason.REPLAYED_FRAME  # the same copy twice is one
    late = c.check(frames[4], NOW)
    assert late.accepted and late.linked and late.relinked == 5 and late.relinked_reading == genuine.reading
    book = c.book(d.device_id)
    assert book.get(5).linked and book.get(5).reading == genuine.reading and book.get(5).alts is None
    assert all(c.check(f, NOW).accepted for f in frames[6:])
    # The false copy is refused once its predecessor is stored.
    assert c.check(false, NOW).reason is Reason.REPLAYED_FRAME


def test_false_copy_alone_is_refuted_and_the_genuine_one_replaces_it_later() -> None:
    """Item 6, the other order: only the false copy was there when the predecessor came. The
    predecessor is accepted, the copy stays unlinked (never in a window), and the genuine frame
    that arrives afterwards links and replaces it; a false one after that is a chain break."""
    d, c, frames = predecessor_late()
    genuine = frames[5]
    false = altered(genuine, enc_reading=genuine.enc_reading ^ 7)
    assert c.check(false, NOW).accepted
    assert c.check(frames[6], NOW).linked  # linking 6 needs only 5's signed chain value
    late = c.check(frames[4], NOW)
    assert late.accepted and late.refuted == 5 and late.relinked is None
    assert c.book(d.device_id).get(5).linked is False
    assert c.check(altered(genuine, enc_reading=genuine.enc_reading ^ 9), NOW).reason is Reason.CHAIN_BROKEN
    v = c.check(genuine, NOW)
    assert v.accepted and v.replaced and v.linked
    assert c.book(d.device_id).get(5).reading == genuine.reading


def test_provisional_alternatives_are_bounded() -> None:
    from agent.frames import MAX_ALTERNATIVES

    d = device()
    c = checker(d)
    frames = stream(d, 4)
    assert c.check(frames[0], NOW).accepted
    f = frames[2]
    assert c.check(f, NOW).accepted
    for i in range(MAX_ALTERNATIVES):
        assert c.check(altered(f, enc_reading=f.enc_reading + 1 + i), NOW).alternative
    assert c.check(altered(f, enc_reading=f.enc_reading + 100), NOW).reason is Reason.REPLAYED_FRAME
    assert c.check(frames[1], NOW).relinked == 2  # the stored (genuine) one links


# --------------------------------------------------------------------------- decimal readings (issue 14)


def test_decimal_values_convert_exactly_or_are_refused_with_the_reason() -> None:
    from agent.frames import SensorSpec

    t = SensorSpec("degC", 100)
    assert [t.to_reading(v) for v in ("21.5", "-40.25", "0", 21.5, 3, "2.10", "1E1")] == \
        [2150, -4025, 0, 2150, 300, 210, 1000]
    assert SensorSpec("mV", 1).to_reading("-2147483648") == -(2**31)
    # 40 significant digits: more than Decimal's default precision, still exact
    assert SensorSpec("x", 10**9).to_reading("1.000000000000000000000000000000000000000") == 10**9
    for bad, words in (("21.555", "finer than the device's scale 100"), ("21474836.48", "outside int32"),
                       ("-21474836.49", "outside int32"), ("NaN", "finite"), ("1e400", "outside int32"),
                       ("0.1e-40", "finer"), ("1e-70", "finer"), ("1" * 70, "64 characters"),
                       ("0.000000000000000000000000000000000000000001", "finer"), ("abc", "not a decimal"), (True, "decimal string"),
                       (None, "decimal string"), (0.1 + 0.2, "finer")):
        with pytest.raises(DecodeError) as e:
            t.to_reading(bad)
        assert e.value.reason is Reason.READING_OUT_OF_RANGE and words in e.value.message, (bad, e.value.message)
    for rec in ({"unit": "degC"}, {"unit": "degC", "scale": 0}, {"unit": "deg C", "scale": 1},
                {"unit": "degC", "scale": 1.5}, {"unit": "degC", "scale": 1, "x": 1}):
        with pytest.raises(DecodeError):
            SensorSpec.from_json(rec)


def test_json_value_becomes_the_wire_reading_by_the_device_scale(tmp_path) -> None:
    from decimal import Decimal

    from agent.frames import SensorSpec, resolve_values
    from agent.provision import load_sensor, provision

    d = device()
    c = checker(d)
    msgs = [d.make(NOW - 1000 + i) for i in range(4)]
    as_values = []
    for m in msgs:
        j = m.to_json()
        r = j.pop("reading") - 2**31
        as_values.append(j | {"value": str(Decimal(r) / 100)})  # e.g. "21.5" for r = 2150
    spec = SensorSpec("degC", 100)
    single = resolve_values(as_values[0], lambda dev: spec if dev == d.device_id.hex() else None)
    assert single == msgs[0].to_json()
    batch = resolve_values({"readings": as_values[1:]}, lambda dev: spec)
    frames = parse_json(batch)
    assert isinstance(frames, list)
    assert [c.check(f, NOW).accepted for f in [*parse_json(single), *frames]] == [True] * 4  # type: ignore[misc]

    with pytest.raises(DecodeError) as e:  # no declared scale for this device: say what to do
        resolve_values({"readings": as_values}, lambda dev: None)
    assert e.value.reason is Reason.UNKNOWN_DEVICE and "readings[0]" in e.value.message \
        and "--scale" in e.value.message and "r + 2^31" in e.value.message
    with pytest.raises(DecodeError) as e:
        resolve_values(as_values[1] | {"value": "21.505"}, lambda dev: spec)
    assert e.value.reason is Reason.READING_OUT_OF_RANGE and "finer" in e.value.message

    # provisioning with a unit and scale writes the record the agent reads beside the .blind
    p = provision(tmp_path, sensor=SensorSpec("degC", 100))
    assert load_sensor(tmp_path, p.device_id.hex()) == SensorSpec("degC", 100)
    assert load_sensor(tmp_path, "00" * 32) is None


def test_a_plain_unencoded_reading_is_named_as_such() -> None:
    d = device()
    c = checker(d)
    frames = stream(d, 3)
    assert reasons(c, frames[:2]) == [None, None]
    f = frames[2]
    plain = altered(f, enc_reading=f.reading)  # r, not r + 2^31
    v = c.check(plain, NOW)
    assert v.reason is Reason.CHAIN_BROKEN and "looks unencoded" in v.message and str(f.enc_reading) in v.message
    wrong = altered(f, enc_reading=f.enc_reading + 7)
    assert "looks unencoded" not in c.check(wrong, NOW).message
    assert c.check(f, NOW).accepted
