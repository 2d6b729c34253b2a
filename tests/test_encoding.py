"""Canonical encoding and strict decoding: round trips, a mutation table with expected reason codes,
and random bytes into every decoder (only DecodeError, never a hang)."""

from __future__ import annotations

import json
import time
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faultproof.encoding import pack, unpack
from faultproof.errors import DecodeError, Reason
from faultproof.messages import (
    MESSAGE_TYPES,
    Bytes,
    FieldBytes,
    ListOf,
    Message,
    Nested,
    UInt,
    decode_any,
)
from tests.strategies import any_message
from tests.vectors.samples import samples

TYPES = sorted(MESSAGE_TYPES.values(), key=lambda c: c.TYPE_ID)
SAMPLES = samples()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(any_message)
def test_round_trip_for_every_type(msg: Message) -> None:
    raw = msg.encode()
    again = type(msg).decode(raw)
    assert again == msg
    assert again.encode() == raw
    assert decode_any(raw) == msg
    assert type(msg).from_json(json.loads(json.dumps(msg.to_json()))) == msg


def _expect(cls: type[Message], raw: bytes, reason: Reason) -> None:
    with pytest.raises(DecodeError) as err:
        cls.decode(raw)
    assert err.value.reason is reason, f"{cls.NAME}: {err.value}"


def _mutations(msg: Message) -> list[tuple[str, bytes, Reason]]:
    """(name, bytes, expected reason) for one valid message."""
    cls = type(msg)
    wire: list[Any] = msg.to_wire()
    raw = msg.encode()
    out = [
        ("truncate", raw[:-1], Reason.MALFORMED),
        ("extend", raw + b"\x00", Reason.MALFORMED),
        ("unknown field", pack(wire + [0]), Reason.UNKNOWN_FIELD),
        ("missing field", pack(wire[:-1]), Reason.MISSING_FIELD),
        ("unknown version", pack([wire[0], 2, *wire[2:]]), Reason.UNSUPPORTED_VERSION),
        ("unknown type", pack([250, 1, *wire[2:]]), Reason.UNKNOWN_MESSAGE_TYPE),
        ("not an array", pack(b"x"), Reason.WRONG_TYPE),
        ("oversize message", pack(wire[:2] + [b"\x00" * cls.MAX_SIZE]), Reason.OVERSIZE),
        ("float", msgpack.packb([wire[0], wire[1], 1.5, *wire[3:]]), Reason.WRONG_TYPE),
        ("string", msgpack.packb([wire[0], wire[1], "text", *wire[3:]]), Reason.WRONG_TYPE),
        ("map", msgpack.packb([wire[0], wire[1], {1: 2}, *wire[3:]]), Reason.WRONG_TYPE),
        ("nil", msgpack.packb([wire[0], wire[1], None, *wire[3:]]), Reason.WRONG_TYPE),
        ("negative int", msgpack.packb([wire[0], wire[1], -1, *wire[3:]]), Reason.OUT_OF_RANGE),
        ("deep nesting", pack([wire[0], wire[1], _deep(40), *wire[3:]]), Reason.TOO_DEEP),
    ]
    for i, (name, ftype) in enumerate(cls.schema(), start=2):
        def with_field(value: Any, i: int = i) -> bytes:
            mutated = list(wire)
            mutated[i] = value
            return pack(mutated)

        wrong = b"\x00" if isinstance(ftype, UInt) else 7
        out.append((f"wrong type {name}", with_field(wrong), Reason.WRONG_TYPE))
        if isinstance(ftype, UInt) and ftype.limit < 2**64:  # msgpack cannot carry more than 2^64-1
            out.append((f"huge int {name}", with_field(2**64 - 1), Reason.OUT_OF_RANGE))
        elif isinstance(ftype, FieldBytes):
            out.append((f"field >= p {name}", with_field(b"\xff" * 32), Reason.OUT_OF_RANGE))
        elif isinstance(ftype, Bytes) and ftype.exact is not None:
            out.append((f"oversize {name}", with_field(wire[i] + b"\x00"), Reason.WRONG_LENGTH))
        elif isinstance(ftype, Bytes) and ftype.max_len is not None:
            out.append((f"oversize {name}", with_field(b"\x00" * (ftype.max_len + 1)), Reason.OVERSIZE))
        elif isinstance(ftype, ListOf):
            out.append((f"too many {name}", with_field([wire[i][0] if wire[i] else 0] * (ftype.max_len + 1)),
                        Reason.OVERSIZE))
        elif isinstance(ftype, Nested):
            out.append((f"nested wrong type {name}", with_field([MESSAGE_TYPES[1].TYPE_ID, 1]), Reason.MISSING_FIELD
                        if Nested(MESSAGE_TYPES[1]).types[0] in ftype.types else Reason.WRONG_TYPE))
    return out


def _deep(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


def _non_canonical_cases(msg: Message) -> list[tuple[str, bytes, Reason]]:
    raw = msg.encode()
    return [("array16 header for a short array", b"\xdc" + (raw[0] & 0x0F).to_bytes(2, "big") + raw[1:],
             Reason.NON_CANONICAL)] if 0x90 <= raw[0] <= 0x9F else []


MUTATION_CASES = [
    pytest.param(type(m), raw, reason, id=f"{m.NAME}-{name}")
    for m in SAMPLES.values()
    for name, raw, reason in _mutations(m) + _non_canonical_cases(m)
]


@pytest.mark.parametrize(("cls", "raw", "reason"), MUTATION_CASES)
def test_mutation_table(cls: type[Message], raw: bytes, reason: Reason) -> None:
    _expect(cls, raw, reason)


def test_mutation_table_covers_every_type_and_decode_reason() -> None:
    assert {c.values[0] for c in MUTATION_CASES} == set(TYPES)
    decode_reasons = {r for r in Reason if r.stage.value == "decode"}
    assert {c.values[2] for c in MUTATION_CASES} == decode_reasons


@pytest.mark.parametrize("cls", TYPES, ids=lambda c: c.NAME)
def test_random_bytes_only_raise_decode_error(cls: type[Message]) -> None:
    @settings(max_examples=150, deadline=None)
    @given(st.binary(max_size=600))
    def run(data: bytes) -> None:
        started = time.monotonic()
        try:
            cls.decode(data)
        except DecodeError:
            pass
        assert time.monotonic() - started < 1.0

    run()


@pytest.mark.parametrize("cls", TYPES, ids=lambda c: c.NAME)
def test_mutated_valid_bytes_only_raise_decode_error(cls: type[Message]) -> None:
    valid = next(m for m in SAMPLES.values() if type(m) is cls).encode()

    @settings(max_examples=100, deadline=None)
    @given(st.integers(0, len(valid) - 1), st.integers(0, 255))
    def run(pos: int, byte: int) -> None:
        data = valid[:pos] + bytes([byte]) + valid[pos + 1:]
        try:
            decoded = cls.decode(data)
        except DecodeError:
            return
        assert decoded.encode() == data  # anything accepted is canonical

    run()


def test_unpack_limits_and_shapes() -> None:
    with pytest.raises(DecodeError) as e:
        unpack(b"\x00" * 10, max_size=5)
    assert e.value.reason is Reason.OVERSIZE
    with pytest.raises(DecodeError) as e:
        unpack(b"")
    assert e.value.reason is Reason.MALFORMED
    with pytest.raises(DecodeError) as e:
        unpack(msgpack.packb(True))
    assert e.value.reason is Reason.WRONG_TYPE
    # a bin32 length that promises more than the input holds
    with pytest.raises(DecodeError) as e:
        unpack(b"\xc6\xff\xff\xff\xff")
    assert e.value.reason is Reason.MALFORMED


def test_json_form_is_strict() -> None:
    frame = SAMPLES["frame"]
    good = frame.to_json()
    cls = type(frame)
    cases = [
        ({**good, "extra": 1}, Reason.UNKNOWN_FIELD),
        ({k: v for k, v in good.items() if k != "seq"}, Reason.MISSING_FIELD),
        ({**good, "seq": "1"}, Reason.WRONG_TYPE),
        ({**good, "seq": 1.0}, Reason.WRONG_TYPE),
        ({**good, "seq": True}, Reason.WRONG_TYPE),
        ({**good, "seq": -1}, Reason.OUT_OF_RANGE),
        ({**good, "device_id": good["device_id"].upper()}, Reason.WRONG_TYPE),
        ({**good, "device_id": "zz" * 32}, Reason.WRONG_TYPE),
        ({**good, "device_id": good["device_id"][:-2]}, Reason.WRONG_LENGTH),
        ([good], Reason.WRONG_TYPE),
    ]
    for obj, reason in cases:
        with pytest.raises(DecodeError) as e:
            cls.from_json(obj)
        assert e.value.reason is reason, obj


def test_a_decoded_message_checks_each_field_once_and_keeps_the_rules_across_fields(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Decoding checks each field as it converts it, then builds the message without the
    constructor's second pass over the same checks (a claim's frames and proof were checked twice),
    while the rules across fields (a reject's stage, an admin kind's argument type) still refuse."""
    from faultproof.messages import AdminTx, RejectBody, SignedClaim

    calls: list[str] = []
    check = Bytes.check

    def counted(self: Bytes, value: Any, name: str) -> bytes:
        calls.append(name)
        return check(self, value, name)

    def bytes_fields(msg: Message) -> int:  # the Bytes-typed fields in the whole tree
        n = 0
        for name, ft in msg.schema():
            values = getattr(msg, name) if isinstance(ft, ListOf) else (getattr(msg, name),)
            item = ft.item if isinstance(ft, ListOf) else ft
            for v in values:
                n += bytes_fields(v) if isinstance(item, Nested) else int(isinstance(item, Bytes))
        return n

    claim = SAMPLES["signed-claim"]
    assert isinstance(claim, SignedClaim)
    raw, obj = claim.encode(), json.loads(json.dumps(claim.to_json()))
    monkeypatch.setattr(Bytes, "check", counted)
    assert SignedClaim.decode(raw) == claim
    assert len(calls) == bytes_fields(claim) == 10, calls  # was 20: each checked again on construction
    calls.clear()
    assert SignedClaim.from_json(obj) == claim
    assert len(calls) == 10, calls
    monkeypatch.undo()

    reject = SAMPLES["reject"]
    assert isinstance(reject.body, RejectBody)  # type: ignore[attr-defined]
    wire = reject.body.to_wire()  # type: ignore[attr-defined]
    wire[-1] = Reason.BAD_PROOF.value.encode()  # a content reason: never a Reject vote
    with pytest.raises(DecodeError) as e:
        RejectBody.decode(pack(wire))
    assert e.value.reason is Reason.OUT_OF_RANGE
    admin = SAMPLES["admin-tx"]
    assert isinstance(admin, AdminTx)
    wire = admin.to_wire()
    wire[4] = (wire[4] % 30) + 1 if wire[4] != 1 else 2  # another known kind, the same arguments
    with pytest.raises(DecodeError) as e:
        AdminTx.decode(pack(wire))
    assert e.value.reason in (Reason.WRONG_TYPE, Reason.OUT_OF_RANGE)


def test_an_http_body_decodes_as_its_type_within_its_limit_either_way() -> None:
    """`Message.from_http`: the one decoder of a typed HTTP body (a claim at an oracle, equivocation
    evidence): canonical msgpack, or JSON through the strict parser, both within MAX_SIZE."""
    from faultproof.messages import SignedClaim

    claim = SAMPLES["signed-claim"]
    assert isinstance(claim, SignedClaim)
    as_json = json.dumps(claim.to_json()).encode()
    assert SignedClaim.from_http(claim.encode(), "application/msgpack") == claim
    assert SignedClaim.from_http(as_json, "application/json") == claim
    for data, ctype, reason in (
            (b" " * (4 * SignedClaim.MAX_SIZE + 1), "application/json", Reason.OVERSIZE),
            (as_json.replace(b"{", b'{"claim": 1, ', 1), "application/json", Reason.MALFORMED),
            (claim.encode() + b"\x00", "application/msgpack", Reason.MALFORMED)):
        with pytest.raises(DecodeError) as e:
            SignedClaim.from_http(data, ctype)
        assert e.value.reason is reason, (ctype, e.value)
