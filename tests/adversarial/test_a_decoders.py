"""Every decoder of faultproof fuzzed in-process (hypothesis, bounded examples): whatever bytes or
JSON an attacker sends, a decoder either returns a valid message whose canonical encoding is
exactly the input, or refuses it with a reason code. Nothing else may escape (no msgpack, JSON,
recursion or type errors), because each of these sits behind an HTTP handler or a gossip
validator that must answer 4xx / drop, never crash. The HTTP side of the same promise is fuzzed on
the live processes in the other modules."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from agent.frames import Undecodable, parse_json, parse_wire
from faultproof.encoding import MAX_DEPTH, pack, unpack
from faultproof.errors import DecodeError, FaultproofError
from faultproof.messages import (
    LEDGER_TX_TYPES,
    MESSAGE_TYPES,
    EnrolDevice,
    Frame,
    Message,
    SignedClaim,
    decode_any,
)
from faultproof.zk.encoding import R, check_proof_points, proof_words
from faultproof.zk.statement import PublicSignals
from ledger.http import parse_tx
from oracle.pipeline import decode_claim
from tests.adversarial.cases import case
from tests.strategies import any_message, for_message

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
TYPES = sorted(MESSAGE_TYPES.values(), key=lambda c: c.TYPE_ID)

# msgpack-shaped values (what an attacker can put in a canonical-looking body)
wire_values = st.recursive(
    st.one_of(st.integers(-(2**64), 2**64), st.binary(max_size=80), st.booleans(), st.none(),
              st.text(max_size=10), st.floats(allow_nan=True)),
    lambda inner: st.one_of(st.lists(inner, max_size=8), st.dictionaries(st.text(max_size=4), inner, max_size=4)),
    max_leaves=30,
)
json_values = st.recursive(
    st.one_of(st.integers(-(2**70), 2**70), st.text(max_size=70), st.booleans(), st.none(), st.floats()),
    lambda inner: st.one_of(st.lists(inner, max_size=6), st.dictionaries(st.text(max_size=12), inner, max_size=6)),
    max_leaves=30,
)


def _every_decoder(data: bytes) -> None:
    """Run every bytes decoder on `data`; return normally iff each one refused it properly or
    decoded it canonically."""
    for cls in TYPES:
        try:
            msg = cls.decode(data)
        except DecodeError:
            pass
        else:
            assert msg.encode() == data, f"{cls.NAME} accepted a non-canonical encoding"
    for allowed in (None, LEDGER_TX_TYPES):
        try:
            msg = decode_any(data, allowed)
        except DecodeError:
            pass
        else:
            assert msg.encode() == data
    try:
        unpack(data)
    except DecodeError:
        pass
    try:
        decode_claim(data, "application/msgpack")
    except DecodeError:
        pass
    try:
        parse_tx(data, "application/msgpack")
    except FaultproofError:
        pass
    parsed = parse_wire(data)
    assert isinstance(parsed, (list, Undecodable))
    try:
        proof_words(data)
        check_proof_points(data)
    except DecodeError:
        pass


@case("ADV-FUZ-01", "random bytes to every decoder (messages, decode_any, claims, ledger txs, agent frames, proofs)")
@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes_never_escape_a_decoder(data: bytes) -> None:
    _every_decoder(data)


@case("ADV-FUZ-02", "valid encodings of every message type, mutated (bit flips, truncation, extension, type swap)")
@FUZZ
@given(any_message, st.data())
def test_mutated_messages_are_refused_or_canonical(msg: Message, data: st.DataObject) -> None:
    raw = bytearray(msg.encode())
    assert type(msg).decode(bytes(raw)) == msg  # the unmutated message round-trips
    op = data.draw(st.sampled_from(["flip", "truncate", "extend", "retype", "reversion", "splice"]))
    if op == "flip":
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] ^= 1 << data.draw(st.integers(0, 7))
    elif op == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif op == "extend":
        raw += data.draw(st.binary(min_size=1, max_size=8))
    elif op == "retype":
        raw[1] = data.draw(st.integers(0, 127))  # the type id of a short array header
    elif op == "reversion":
        raw[2] = data.draw(st.integers(2, 127))  # the version
    else:
        i = data.draw(st.integers(0, len(raw)))
        raw[i:i] = data.draw(st.binary(min_size=1, max_size=4))
    _every_decoder(bytes(raw))


@case("ADV-FUZ-03", "random JSON to every JSON decoder (messages, oracle claims, ledger txs, agent frames)")
@FUZZ
@given(json_values, st.sampled_from(TYPES))
def test_random_json_never_escapes(obj: Any, cls: type[Message]) -> None:
    try:
        cls.from_json(obj)
    except DecodeError:
        pass
    try:
        text = json.dumps(obj).encode()
    except (ValueError, OverflowError):
        return
    for fn in (lambda: decode_claim(text, "application/json"), lambda: parse_tx(text, "application/json")):
        try:
            fn()
        except FaultproofError:
            pass
    assert isinstance(parse_json(obj), (list, Undecodable))


@case("ADV-FUZ-04", "valid messages in JSON with one field replaced by a hostile value (wrong type, huge, deep)")
@FUZZ
@given(st.sampled_from(TYPES).flatmap(lambda c: for_message(c)), json_values, st.data())
def test_json_field_swaps_are_refused_or_exact(msg: Message, value: Any, data: st.DataObject) -> None:
    obj = msg.to_json()
    assume(obj)
    key = data.draw(st.sampled_from(sorted(obj)))
    obj[key] = value
    try:
        back = type(msg).from_json(obj)
    except DecodeError:
        return
    assert type(msg).from_json(back.to_json()) == back


@case("ADV-FUZ-05", "nesting bombs: msgpack and JSON arrays/objects nested far beyond any message")
def test_nesting_bombs_are_refused_with_a_reason() -> None:
    deep_pack = b"\x91" * 100_000 + b"\x00"
    deep_json = b"[" * 100_000 + b"]" * 100_000
    deep_obj = b'{"claim":' * 50_000 + b"1" + b"}" * 50_000
    for data in (deep_pack, pack([[[[[[[[[[[0]]]]]]]]]]])):
        for cls in TYPES:
            try:
                cls.decode(data)
            except DecodeError:
                pass
        try:
            unpack(data)
            raise AssertionError("unpack accepted nesting deeper than MAX_DEPTH")
        except DecodeError as e:
            assert e.reason.value in ("too_deep", "oversize", "malformed")
        assert isinstance(parse_wire(data), Undecodable)
    for data in (deep_json, deep_obj):
        for fn in (lambda d=data: decode_claim(d, "application/json"), lambda d=data: parse_tx(d, "application/json")):
            try:
                fn()
                raise AssertionError("a nesting bomb decoded")
            except FaultproofError:
                pass
    # A JSON document nested just beyond MAX_DEPTH through message fields is refused as such.
    nested: Any = {"claim": {}}
    for _ in range(MAX_DEPTH + 2):
        nested = {"claim": nested, "signature": "00" * 64}
    try:
        SignedClaim.from_json(nested)
        raise AssertionError("decoded")
    except DecodeError:
        pass


@case("ADV-FUZ-06", "field-element boundary: a value is a BN254 field element iff it is < r (frames, anchors, signals)")
def test_field_element_boundary_is_the_bn254_scalar_field() -> None:
    """DESIGN §2: every value < p, checked, where p is BN254's scalar field r (the modulus Poseidon
    and the circuit work in; faultproof.zk.encoding.R). r - 1 is a field element a device's chain
    can reach, so a frame carrying it must be accepted; r must be refused everywhere."""
    below, at = (R - 1).to_bytes(32, "big"), R.to_bytes(32, "big")
    assert PublicSignals.from_list([R - 1] + [0] * 9).c_start == R - 1
    try:
        PublicSignals.from_list([R] + [0] * 9)
        raise AssertionError("r accepted as a public signal")
    except DecodeError:
        pass
    for make in (lambda c: Frame(device_id=bytes(32), epoch=0, seq=1, ts_ms=1, chain=c),
                 lambda c: EnrolDevice(device_id=bytes(32), epoch=0, anchor=c, firmware_hash=bytes(32))):
        try:
            make(at)
            raise AssertionError("r accepted as a field element")
        except DecodeError:
            pass
        try:
            make(below)
        except DecodeError as e:
            from faultproof.chain import P

            raise AssertionError(f"r - 1 refused ({e}): faultproof.chain.P = {P} is not BN254's scalar "
                                 f"field r = {R}") from None
