"""Every message of DESIGN §3, defined once: fields, order, limits, wire and JSON forms, signing.

A message encodes as the msgpack array `[type_id, version, field_1, ..., field_n]`; nested messages
appear as their own full arrays. Field order is the order of the dataclass fields and never changes
within a version. Construction validates every field, so an invalid message cannot exist in memory;
decoding goes through the same checks and raises only `DecodeError`. Each field is checked once:
a decoder's field types check what they convert (`from_wire`/`from_json` end in `check`), so a
decoded message is built by `_from_checked`, which skips the per-field checks a constructor runs
and keeps the rules across fields (`_check_together`).

JSON (the HTTP form) maps field names to values, bytes as lowercase hex; a field that may hold one
of several message types carries `"type"`. Unknown and missing keys are refused.

Signatures: `Identity.sign(domain_tag(T), body.encode())` with the tag of the *body's* type, so a
signature over one type never verifies as another (see `faultproof.identity`).

What is derived here: `claim_id`, `ledger_id` (`Genesis.ledger_id`), `circuit_id`, `policy_id`,
ledger entry hashes.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self, TypeVar

from faultproof.chain import P
from faultproof.encoding import MAX_DEPTH, pack, unpack
from faultproof.encoding import hash_id as _hash_id
from faultproof.errors import DecodeError, FaultproofError, Reason
from faultproof.identity import Identity, domain_tag, verify

# --------------------------------------------------------------------------- field types


class FieldType:
    """A field's wire type: converts a wire value (already shape-checked) to a Python value."""

    def check(self, value: Any, name: str) -> Any:  # returns the value to store
        raise NotImplementedError

    def to_wire(self, value: Any) -> Any:
        return value

    def from_wire(self, value: Any, name: str, depth: int) -> Any:
        return self.check(value, name)

    def to_json(self, value: Any) -> Any:
        return value

    def from_json(self, value: Any, name: str, depth: int) -> Any:
        return self.check(value, name)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class UInt(FieldType):
    def __init__(self, bits: int) -> None:
        self.limit = 1 << bits

    def check(self, value: Any, name: str) -> int:
        if not _is_int(value):
            raise DecodeError(Reason.WRONG_TYPE, f"{name}: expected an integer")
        if not 0 <= value < self.limit:
            raise DecodeError(Reason.OUT_OF_RANGE, f"{name}: {value} not in [0, {self.limit})")
        return int(value)


class Bool(UInt):
    """0 or 1 (msgpack booleans are not allowed on the wire)."""

    def __init__(self) -> None:
        super().__init__(1)

    def check(self, value: Any, name: str) -> int:
        if isinstance(value, bool):
            value = int(value)
        return super().check(value, name)


class Bytes(FieldType):
    """Bytes of an exact length (`exact`) or at most `max_len`."""

    def __init__(self, exact: int | None = None, max_len: int | None = None) -> None:
        assert (exact is None) != (max_len is None)
        self.exact, self.max_len = exact, max_len

    def check(self, value: Any, name: str) -> bytes:
        if isinstance(value, bytearray):
            value = bytes(value)
        if not isinstance(value, bytes):
            raise DecodeError(Reason.WRONG_TYPE, f"{name}: expected bytes")
        if self.exact is not None and len(value) != self.exact:
            raise DecodeError(Reason.WRONG_LENGTH, f"{name}: expected {self.exact} bytes, got {len(value)}")
        if self.max_len is not None and len(value) > self.max_len:
            raise DecodeError(Reason.OVERSIZE, f"{name}: {len(value)} bytes exceeds {self.max_len}")
        return value

    def to_json(self, value: bytes) -> str:
        return value.hex()

    def from_json(self, value: Any, name: str, depth: int) -> bytes:
        if not isinstance(value, str):
            raise DecodeError(Reason.WRONG_TYPE, f"{name}: expected a lowercase hex string")
        if value != value.lower() or len(value) % 2:
            raise DecodeError(Reason.WRONG_TYPE, f"{name}: expected a lowercase hex string")
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            raise DecodeError(Reason.WRONG_TYPE, f"{name}: not hex") from None
        return self.check(raw, name)


class FieldBytes(Bytes):
    """A BN254 field element as 32 bytes big-endian; must be < p."""

    def __init__(self) -> None:
        super().__init__(exact=32)

    def check(self, value: Any, name: str) -> bytes:
        raw = super().check(value, name)
        if int.from_bytes(raw, "big") >= P:
            raise DecodeError(Reason.OUT_OF_RANGE, f"{name}: not a field element (>= p)")
        return raw


class ReasonCode(FieldType):
    """A `Reason` travelling as its ASCII code."""

    def check(self, value: Any, name: str) -> Reason:
        if isinstance(value, Reason):
            return value
        if isinstance(value, bytes):
            try:
                value = value.decode("ascii")
            except UnicodeDecodeError:
                raise DecodeError(Reason.WRONG_TYPE, f"{name}: not ASCII") from None
        if not isinstance(value, str):
            raise DecodeError(Reason.WRONG_TYPE, f"{name}: expected a reason code")
        try:
            return Reason(value)
        except ValueError:
            raise DecodeError(Reason.OUT_OF_RANGE, f"{name}: unknown reason code") from None

    def from_wire(self, value: Any, name: str, depth: int) -> Reason:
        if not isinstance(value, bytes):
            raise DecodeError(Reason.WRONG_TYPE, f"{name}: expected bytes")
        if len(value) > 64:
            raise DecodeError(Reason.OVERSIZE, f"{name}: reason code too long")
        return self.check(value, name)

    def to_wire(self, value: Reason) -> bytes:
        return value.value.encode("ascii")

    def to_json(self, value: Reason) -> str:
        return value.value

    def from_json(self, value: Any, name: str, depth: int) -> Reason:
        if not isinstance(value, str):
            raise DecodeError(Reason.WRONG_TYPE, f"{name}: expected a reason code")
        return self.check(value, name)


class Nested(FieldType):
    """A field holding a message of one of the given types (one type, or a tagged union)."""

    tagged_json: ClassVar[bool] = True  # JSON names the variant in a "type" member (several types)

    def __init__(self, *types: type[Message]) -> None:
        self._types = types

    @functools.cached_property
    def types(self) -> tuple[type[Message], ...]:
        return self._types

    def check(self, value: Any, name: str) -> Message:
        if not isinstance(value, self.types):
            raise DecodeError(Reason.WRONG_TYPE, f"{name}: expected {'/'.join(t.NAME for t in self.types)}")
        return value

    def to_wire(self, value: Message) -> list[Any]:
        return value.to_wire()

    def from_wire(self, value: Any, name: str, depth: int) -> Message:
        if not isinstance(value, list):
            raise DecodeError(Reason.WRONG_TYPE, f"{name}: expected a nested message")
        if len(value) < 2:
            raise DecodeError(Reason.MISSING_FIELD, f"{name}: nested message without a header")
        for t in self.types:
            if value[0] == t.TYPE_ID:
                return t.from_wire(value, depth + 1)
        if _is_int(value[0]) and value[0] in MESSAGE_TYPES:
            raise DecodeError(Reason.WRONG_TYPE, f"{name}: a {MESSAGE_TYPES[value[0]].NAME} is not allowed here")
        raise DecodeError(Reason.UNKNOWN_MESSAGE_TYPE, f"{name}: unknown message type")

    def to_json(self, value: Message) -> dict[str, Any]:
        obj = value.to_json()
        if len(self.types) > 1:
            obj = {"type": value.NAME, **obj}
        return obj

    def from_json(self, value: Any, name: str, depth: int) -> Message:
        if not isinstance(value, dict):
            raise DecodeError(Reason.WRONG_TYPE, f"{name}: expected an object")
        if len(self.types) == 1:
            return self.types[0].from_json(value, depth + 1)
        type_name = value.get("type")
        for t in self.types:
            if type_name == t.NAME:
                rest = {k: v for k, v in value.items() if k != "type"}
                return t.from_json(rest, depth + 1)
        raise DecodeError(Reason.UNKNOWN_MESSAGE_TYPE, f"{name}: unknown or missing \"type\"")


class ListOf(FieldType):
    def __init__(self, item: FieldType, max_len: int) -> None:
        self.item, self.max_len = item, max_len

    def check(self, value: Any, name: str) -> tuple[Any, ...]:
        if not isinstance(value, (list, tuple)):
            raise DecodeError(Reason.WRONG_TYPE, f"{name}: expected a list")
        if len(value) > self.max_len:
            raise DecodeError(Reason.OVERSIZE, f"{name}: more than {self.max_len} items")
        return tuple(self.item.check(v, f"{name}[{i}]") for i, v in enumerate(value))

    def to_wire(self, value: tuple[Any, ...]) -> list[Any]:
        return [self.item.to_wire(v) for v in value]

    def from_wire(self, value: Any, name: str, depth: int) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise DecodeError(Reason.WRONG_TYPE, f"{name}: expected a list")
        if len(value) > self.max_len:
            raise DecodeError(Reason.OVERSIZE, f"{name}: more than {self.max_len} items")
        return tuple(self.item.from_wire(v, f"{name}[{i}]", depth + 1) for i, v in enumerate(value))

    def to_json(self, value: tuple[Any, ...]) -> list[Any]:
        return [self.item.to_json(v) for v in value]

    def from_json(self, value: Any, name: str, depth: int) -> tuple[Any, ...]:
        if depth > MAX_DEPTH:
            raise DecodeError(Reason.TOO_DEEP, f"{name}: nesting too deep")
        if not isinstance(value, list):
            raise DecodeError(Reason.WRONG_TYPE, f"{name}: expected a list")
        if len(value) > self.max_len:
            raise DecodeError(Reason.OVERSIZE, f"{name}: more than {self.max_len} items")
        return tuple(self.item.from_json(v, f"{name}[{i}]", depth + 1) for i, v in enumerate(value))


U8, U32, U48, U64 = UInt(8), UInt(32), UInt(48), UInt(64)
ID = Bytes(exact=32)  # public keys, hashes, ids
SIG = Bytes(exact=64)
PROOF = Bytes(exact=256)
REASON = ReasonCode()


def _f(ftype: FieldType) -> Any:
    return field(metadata={"ftype": ftype})


# --------------------------------------------------------------------------- the base class

MESSAGE_TYPES: dict[int, type[Message]] = {}

M = TypeVar("M", bound="Message")


@dataclass(frozen=True)
class Message:
    TYPE_ID: ClassVar[int]
    NAME: ClassVar[str]
    VERSION: ClassVar[int] = 1
    MAX_SIZE: ClassVar[int] = 4096

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "TYPE_ID" in cls.__dict__:
            assert cls.TYPE_ID not in MESSAGE_TYPES, f"duplicate type id {cls.TYPE_ID}"
            MESSAGE_TYPES[cls.TYPE_ID] = cls

    @classmethod
    def schema(cls) -> tuple[tuple[str, FieldType], ...]:
        return _schema(cls)

    def __post_init__(self) -> None:
        for name, ftype in self.schema():
            checked = ftype.check(getattr(self, name), f"{self.NAME}.{name}")
            object.__setattr__(self, name, checked)
        self._check_together()

    def _check_together(self) -> None:
        """Rules across fields, after every field passed its own check (none by default). Raises
        DecodeError."""

    @classmethod
    def _from_checked(cls, values: dict[str, Any]) -> Self:
        """The message from field values a decoder's field types have checked already (the same
        `check` a constructor runs): not checked twice; the rules across fields still run."""
        msg = object.__new__(cls)
        for name, value in values.items():
            object.__setattr__(msg, name, value)
        msg._check_together()
        return msg

    # -- wire form --
    def to_wire(self) -> list[Any]:
        return [self.TYPE_ID, self.VERSION] + [ft.to_wire(getattr(self, n)) for n, ft in self.schema()]

    def encode(self) -> bytes:
        # A message is immutable, so its bytes are too: computed once (DESIGN §16). A QC's body is
        # otherwise encoded again for every signature check, the entry and the answer. Not a
        # field: equality, hashing and `replace` never see it.
        cached: bytes | None = self.__dict__.get("_encoded")
        if cached is None:
            cached = pack(self.to_wire())
            object.__setattr__(self, "_encoded", cached)
        return cached

    @classmethod
    def from_wire(cls, value: Any, depth: int = 0) -> Self:
        if depth > MAX_DEPTH:
            raise DecodeError(Reason.TOO_DEEP, "nesting too deep")
        if not isinstance(value, list):
            raise DecodeError(Reason.WRONG_TYPE, f"{cls.NAME}: expected an array")
        if len(value) < 2:
            raise DecodeError(Reason.MISSING_FIELD, f"{cls.NAME}: missing type and version")
        type_id, version = value[0], value[1]
        if not _is_int(type_id) or not _is_int(version):
            raise DecodeError(Reason.WRONG_TYPE, f"{cls.NAME}: type and version must be integers")
        if type_id != cls.TYPE_ID:
            if type_id in MESSAGE_TYPES:
                raise DecodeError(Reason.WRONG_TYPE, f"expected {cls.NAME}, got {MESSAGE_TYPES[type_id].NAME}")
            raise DecodeError(Reason.UNKNOWN_MESSAGE_TYPE, f"unknown message type {type_id}")
        if version != cls.VERSION:
            raise DecodeError(Reason.UNSUPPORTED_VERSION, f"{cls.NAME} version {version} is not supported")
        fields = cls.schema()
        body = value[2:]
        if len(body) < len(fields):
            raise DecodeError(Reason.MISSING_FIELD, f"{cls.NAME}: {len(body)} fields, expected {len(fields)}")
        if len(body) > len(fields):
            raise DecodeError(Reason.UNKNOWN_FIELD, f"{cls.NAME}: {len(body)} fields, expected {len(fields)}")
        return cls._from_checked({n: ft.from_wire(v, f"{cls.NAME}.{n}", depth)
                                  for (n, ft), v in zip(fields, body, strict=True)})

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Strictly decode bytes into this type. Raises only DecodeError."""
        return cls.from_wire(unpack(data, cls.MAX_SIZE))

    @classmethod
    def from_http(cls, data: bytes, content_type: str) -> Self:
        """An HTTP body of this type: JSON (`application/json`, through the one strict parser) or
        canonical msgpack (anything else), within the type's size limit either way (JSON may be
        up to 4x it before parsing: hex doubles the bytes, keys add some). Raises only DecodeError."""
        if content_type != "application/json":
            return cls.decode(data)
        from faultproof import strictjson

        if len(data) > 4 * cls.MAX_SIZE:
            raise DecodeError(Reason.OVERSIZE, f"{cls.NAME} JSON too large")
        msg = cls.from_json(strictjson.loads(data))
        if len(msg.encode()) > cls.MAX_SIZE:
            raise DecodeError(Reason.OVERSIZE, f"{cls.NAME} larger than its limit")
        return msg

    # -- JSON form --
    def to_json(self) -> dict[str, Any]:
        return {n: ft.to_json(getattr(self, n)) for n, ft in self.schema()}

    @classmethod
    def from_json(cls, obj: Any, depth: int = 0) -> Self:
        if depth > MAX_DEPTH:
            raise DecodeError(Reason.TOO_DEEP, "nesting too deep")
        if not isinstance(obj, dict):
            raise DecodeError(Reason.WRONG_TYPE, f"{cls.NAME}: expected a JSON object")
        fields = cls.schema()
        names = {n for n, _ in fields}
        unknown = set(obj) - names
        if unknown:
            raise DecodeError(Reason.UNKNOWN_FIELD, f"{cls.NAME}: unknown field(s) {sorted(unknown)}")
        missing = [n for n, _ in fields if n not in obj]
        if missing:
            raise DecodeError(Reason.MISSING_FIELD, f"{cls.NAME}: missing field(s) {missing}")
        return cls._from_checked({n: ft.from_json(obj[n], f"{cls.NAME}.{n}", depth) for n, ft in fields})

    def replace(self, **changes: Any) -> Self:
        return dataclasses.replace(self, **changes)


_SCHEMAS: dict[type[Message], tuple[tuple[str, FieldType], ...]] = {}


def _schema(cls: type[Message]) -> tuple[tuple[str, FieldType], ...]:
    schema = _SCHEMAS.get(cls)
    if schema is None:
        schema = _SCHEMAS[cls] = tuple((f.name, f.metadata["ftype"]) for f in dataclasses.fields(cls))
    return schema


def decode_any(data: bytes, allowed: Sequence[type[Message]] | None = None) -> Message:
    """Decode a message whose type is given by its header (gossip, POST /v1/tx)."""
    value = unpack(data, max(t.MAX_SIZE for t in (allowed or MESSAGE_TYPES.values())))
    if not isinstance(value, list) or len(value) < 2:
        raise DecodeError(Reason.WRONG_TYPE, "expected a message array")
    cls = MESSAGE_TYPES.get(value[0]) if _is_int(value[0]) else None
    if cls is None:
        raise DecodeError(Reason.UNKNOWN_MESSAGE_TYPE, "unknown message type")
    if allowed is not None and cls not in allowed:
        raise DecodeError(Reason.WRONG_TYPE, f"a {cls.NAME} is not accepted here")
    if len(data) > cls.MAX_SIZE:
        raise DecodeError(Reason.OVERSIZE, f"{cls.NAME} larger than {cls.MAX_SIZE} bytes")
    return cls.from_wire(value)


def _sign(identity: Identity, body: Message) -> bytes:
    return identity.sign(domain_tag(body.NAME), body.encode())


def _verify(body: Message, signature: bytes, public_key: bytes) -> bool:
    return verify(domain_tag(body.NAME), body.encode(), signature, public_key)


# --------------------------------------------------------------------------- device data


@dataclass(frozen=True)
class Frame(Message):
    """What a device signs for each reading. The reading itself is bound by `chain`."""

    TYPE_ID: ClassVar[int] = 1
    NAME: ClassVar[str] = "frame"
    MAX_SIZE: ClassVar[int] = 256

    device_id: bytes = _f(ID)
    epoch: int = _f(U32)
    seq: int = _f(U32)
    ts_ms: int = _f(U48)
    chain: bytes = _f(FieldBytes())

    def sign(self, device: Identity) -> SignedFrame:
        return SignedFrame(frame=self, signature=_sign(device, self))


@dataclass(frozen=True)
class SignedFrame(Message):
    TYPE_ID: ClassVar[int] = 2
    NAME: ClassVar[str] = "signed-frame"
    MAX_SIZE: ClassVar[int] = 512

    frame: Frame = _f(Nested(Frame))
    signature: bytes = _f(SIG)

    def verify(self) -> bool:
        return _verify(self.frame, self.signature, self.frame.device_id)


@dataclass(frozen=True)
class DeviceReading(Message):
    """A signed frame with its reading beside it, as a device sends it (MQTT/HTTP).

    `reading` is enc(r) = r + 2^31 (DESIGN §2); it is not signed, the chain binds it.
    Seq 0 of an epoch is the anchor frame: its chain is c_0 and its reading is ignored (0).
    """

    TYPE_ID: ClassVar[int] = 3
    NAME: ClassVar[str] = "device-reading"
    MAX_SIZE: ClassVar[int] = 512

    signed: SignedFrame = _f(Nested(SignedFrame))
    reading: int = _f(U32)


@dataclass(frozen=True)
class UnsignedReading(Message):
    """A frame the device did not sign, with its reading (DESIGN §16, frames signed every s-th
    reading): a device provisioned with s > 1 signs only seq 0 and every seq ≡ 0 (mod s). The
    frame still carries its chain value; the agent holds it provisional until the next signed
    frame confirms the run through the chain. Its type id is in §16's range."""

    TYPE_ID: ClassVar[int] = 122
    NAME: ClassVar[str] = "unsigned-reading"
    MAX_SIZE: ClassVar[int] = 512

    frame: Frame = _f(Nested(Frame))
    reading: int = _f(U32)


class _ReadingItem(Nested):
    """A ReadingBatch item: a DeviceReading or an UnsignedReading. On the wire the nested header
    tells them apart; in JSON the shape does ("signed" or "frame"), so a batch of DeviceReadings
    keeps the JSON it always had (no "type" key)."""

    tagged_json: ClassVar[bool] = False

    def to_json(self, value: Message) -> dict[str, Any]:
        return value.to_json()

    def from_json(self, value: Any, name: str, depth: int) -> Message:
        if not isinstance(value, dict):
            raise DecodeError(Reason.WRONG_TYPE, f"{name}: expected an object")
        cls = UnsignedReading if "frame" in value and "signed" not in value else DeviceReading
        return cls.from_json(value, depth + 1)


@dataclass(frozen=True)
class ReadingBatch(Message):
    TYPE_ID: ClassVar[int] = 4
    NAME: ClassVar[str] = "reading-batch"
    MAX_SIZE: ClassVar[int] = 1024 * 200

    readings: tuple[DeviceReading | UnsignedReading, ...] = _f(
        ListOf(_ReadingItem(DeviceReading, UnsignedReading), 1000))


# --------------------------------------------------------------------------- claims and votes


def claim_id(policy_id: bytes, device_id: bytes, epoch: int, start_seq: int, end_seq: int) -> bytes:
    """The incident's id: never the proof (Groth16 proofs are malleable)."""
    return _hash_id("claim-id", pack([policy_id, device_id, epoch, start_seq, end_seq]))


@dataclass(frozen=True)
class Claim(Message):
    TYPE_ID: ClassVar[int] = 10
    NAME: ClassVar[str] = "claim"
    MAX_SIZE: ClassVar[int] = 2048

    policy_id: bytes = _f(ID)
    start: SignedFrame = _f(Nested(SignedFrame))
    end: SignedFrame = _f(Nested(SignedFrame))
    proof: bytes = _f(PROOF)
    agent_id: bytes = _f(ID)
    created_ms: int = _f(U48)

    @property
    def claim_id(self) -> bytes:
        s, e = self.start.frame, self.end.frame
        return claim_id(self.policy_id, s.device_id, s.epoch, s.seq, e.seq)

    def sign(self, agent: Identity) -> SignedClaim:
        return SignedClaim(claim=self, signature=_sign(agent, self))


@dataclass(frozen=True)
class SignedClaim(Message):
    TYPE_ID: ClassVar[int] = 11
    NAME: ClassVar[str] = "signed-claim"
    MAX_SIZE: ClassVar[int] = 2048

    claim: Claim = _f(Nested(Claim))
    signature: bytes = _f(SIG)

    def verify(self) -> bool:
        return _verify(self.claim, self.signature, self.claim.agent_id)


@dataclass(frozen=True)
class PayoutBody(Message):
    """What k oracles sign and the ledger pays. Every honest oracle builds the same one."""

    TYPE_ID: ClassVar[int] = 12
    NAME: ClassVar[str] = "payout-approve"
    MAX_SIZE: ClassVar[int] = 1024

    ledger_id: bytes = _f(ID)
    oracle_set_epoch: int = _f(U32)
    claim_id: bytes = _f(ID)
    policy_id: bytes = _f(ID)
    device_id: bytes = _f(ID)
    epoch: int = _f(U32)
    start_seq: int = _f(U32)
    end_seq: int = _f(U32)
    start_ts: int = _f(U48)
    end_ts: int = _f(U48)
    circuit_id: bytes = _f(ID)
    beneficiary: bytes = _f(ID)
    amount: int = _f(U64)
    # The end frame's chain value c_end (DESIGN §11): lets the ledger compare the window with the
    # device's anchored history. Last and defaulted to zero ("not given") so older builders keep
    # working; honest oracles always fill it from the end frame.
    end_chain: bytes = field(default=bytes(32), metadata={"ftype": FieldBytes()})

    def approve(self, oracle: Identity) -> Approve:
        return Approve(oracle_id=oracle.public_key, body=self, signature=_sign(oracle, self))


@dataclass(frozen=True)
class Approve(Message):
    TYPE_ID: ClassVar[int] = 13
    NAME: ClassVar[str] = "approve"
    MAX_SIZE: ClassVar[int] = 1024

    oracle_id: bytes = _f(ID)
    body: PayoutBody = _f(Nested(PayoutBody))
    signature: bytes = _f(SIG)

    @property
    def claim_id(self) -> bytes:
        return self.body.claim_id

    def verify(self) -> bool:
        return _verify(self.body, self.signature, self.oracle_id)


@dataclass(frozen=True)
class RejectBody(Message):
    """Bound to the ledger and oracle-set epoch like an approval (DESIGN §3 lists oracle_id,
    claim_id, reason; ledger_id and epoch are added so a reject cannot be replayed elsewhere)."""

    TYPE_ID: ClassVar[int] = 14
    NAME: ClassVar[str] = "vote-reject"
    MAX_SIZE: ClassVar[int] = 512

    oracle_id: bytes = _f(ID)
    ledger_id: bytes = _f(ID)
    oracle_set_epoch: int = _f(U32)
    claim_id: bytes = _f(ID)
    reason: Reason = _f(REASON)

    def _check_together(self) -> None:
        if self.reason.stage.value != "ledger_state":
            raise DecodeError(Reason.OUT_OF_RANGE, "a reject vote carries a ledger-state reason")

    def sign(self, oracle: Identity) -> Reject:
        return Reject(body=self, signature=_sign(oracle, self))


@dataclass(frozen=True)
class Reject(Message):
    TYPE_ID: ClassVar[int] = 15
    NAME: ClassVar[str] = "reject"
    MAX_SIZE: ClassVar[int] = 512

    body: RejectBody = _f(Nested(RejectBody))
    signature: bytes = _f(SIG)

    @property
    def oracle_id(self) -> bytes:
        return self.body.oracle_id

    @property
    def claim_id(self) -> bytes:
        return self.body.claim_id

    def verify(self) -> bool:
        return _verify(self.body, self.signature, self.body.oracle_id)


Vote = Approve | Reject
MAX_VOTES_PER_BATCH = 256


@dataclass(frozen=True)
class VoteBatch(Message):
    """Many votes in one gossip message (gossip costs CPU per message); each vote signed alone."""

    TYPE_ID: ClassVar[int] = 16
    NAME: ClassVar[str] = "vote-batch"
    MAX_SIZE: ClassVar[int] = 1024 * MAX_VOTES_PER_BATCH

    oracle_id: bytes = _f(ID)
    votes: tuple[Vote, ...] = _f(ListOf(Nested(Approve, Reject), MAX_VOTES_PER_BATCH))


@dataclass(frozen=True)
class ChainApprove(Message):
    """An oracle's vote for the chain (DESIGN §13): its 65-byte EIP-712 ECDSA signature (r ‖ s ‖ v)
    over the chain's PayoutBody of `claim_id` in `oracle_set_epoch`, by the secp256k1 key the pool
    contract bound to `oracle_id` in that epoch. Gossiped beside the Ed25519 Approve (votes topic)
    so the oracle that completes the quorum can post the chain QC. It carries no Ed25519 signature:
    receivers check the ECDSA signature against the bound address and their own body
    (oracle/chain_votes.py); anything else is dropped."""

    TYPE_ID: ClassVar[int] = 90
    NAME: ClassVar[str] = "chain-approve"
    MAX_SIZE: ClassVar[int] = 256

    oracle_id: bytes = _f(ID)
    oracle_set_epoch: int = _f(U32)
    claim_id: bytes = _f(ID)
    signature: bytes = _f(Bytes(exact=65))


@dataclass(frozen=True)
class QcSignature(Message):
    TYPE_ID: ClassVar[int] = 17
    NAME: ClassVar[str] = "qc-signature"

    oracle_id: bytes = _f(ID)
    signature: bytes = _f(SIG)


MAX_ORACLES = 64


@dataclass(frozen=True)
class QuorumCertificate(Message):
    TYPE_ID: ClassVar[int] = 18
    NAME: ClassVar[str] = "quorum-certificate"
    MAX_SIZE: ClassVar[int] = 8192

    body: PayoutBody = _f(Nested(PayoutBody))
    signatures: tuple[QcSignature, ...] = _f(ListOf(Nested(QcSignature), MAX_ORACLES))

    @classmethod
    def from_approvals(cls, approvals: Sequence[Approve]) -> QuorumCertificate:
        body = approvals[0].body
        assert all(a.body == body for a in approvals)
        sigs = sorted((QcSignature(oracle_id=a.oracle_id, signature=a.signature) for a in approvals),
                      key=lambda s: s.oracle_id)
        return cls(body=body, signatures=tuple(sigs))


# --------------------------------------------------------------------------- admin and ledger


class AdminKind(enum.IntEnum):
    REGISTER_CIRCUIT = 1
    ENROL_DEVICE = 2
    REVOKE_DEVICE = 3
    ENROL_AGENT = 4
    REVOKE_AGENT = 5
    DEPOSIT = 6
    WITHDRAW = 7
    ISSUE_POLICY = 8
    ROTATE_ORACLES = 9
    ROTATE_ADMIN = 10
    # -- economic security (DESIGN §14), range 20-29 --
    SET_ECON_PARAMS = 20
    POST_BOND = 21
    UNBOND = 22
    ISSUE_ECON_POLICY = 23
    # hardware identity and attestation (DESIGN §15)
    ENROL_DEVICE_KEY = 30
    SET_MEASUREMENT = 31
    ROTATE_DEVICE_KEY = 32
    SET_LOCKDOWN = 33
    LIFT = 34
    # hardware round 2 (DESIGN §15), range 35-39
    BIND_TRANSPORT_KEY = 35
    TRANSFER_DEVICE = 36
    ENROL_GATEWAY_KEY = 37
    DECOMMISSION_DEVICE = 38  # hardware round 3 (DESIGN §15 H11)


class TriggerKind(enum.IntEnum):
    """Trigger kinds (DESIGN §2), the one definition; the value is the public signal `kind`.
    faultproof.zk calls it `Kind` and uses the short aliases."""

    COUNT_ABOVE = 1  # #{i : enc(r_i) > T} >= K
    RUN_ABOVE = 2  # some run of >= K consecutive i with enc(r_i) > T
    STUCK = 3  # some run of >= K consecutive equal readings
    OUTSIDE_RANGE = 4  # #{i : enc(r_i) < lo or enc(r_i) > hi} >= K
    DROPOUT = 5  # some i in 1..n with t_i - t_{i-1} >= G, t_0 = t_start
    COUNT = 1  # aliases
    RUN = 2
    OUTSIDE = 4


@dataclass(frozen=True)
class RegisterCircuit(Message):
    TYPE_ID: ClassVar[int] = 30
    NAME: ClassVar[str] = "register-circuit"
    MAX_SIZE: ClassVar[int] = 20000

    vkey: bytes = _f(Bytes(max_len=16384))  # canonical verification key (faultproof.zk.export_vkey)
    n: int = _f(U32)
    layout_version: int = _f(U32)
    transcript_hash: bytes = _f(ID)  # ceremony transcript; zero bytes for a development setup
    production: int = _f(Bool())

    @property
    def circuit_id(self) -> bytes:
        return circuit_id(self.vkey, self.n, self.layout_version)


def circuit_id(vkey: bytes, n: int, layout_version: int) -> bytes:
    return _hash_id("circuit-id", pack([vkey, n, layout_version]))


@dataclass(frozen=True)
class EnrolDevice(Message):
    TYPE_ID: ClassVar[int] = 31
    NAME: ClassVar[str] = "enrol-device"

    device_id: bytes = _f(ID)
    epoch: int = _f(U32)
    anchor: bytes = _f(FieldBytes())  # c_0 of that epoch
    firmware_hash: bytes = _f(ID)


@dataclass(frozen=True)
class RevokeDevice(Message):
    TYPE_ID: ClassVar[int] = 32
    NAME: ClassVar[str] = "revoke-device"

    device_id: bytes = _f(ID)


@dataclass(frozen=True)
class EnrolAgent(Message):
    TYPE_ID: ClassVar[int] = 33
    NAME: ClassVar[str] = "enrol-agent"

    agent_id: bytes = _f(ID)


@dataclass(frozen=True)
class RevokeAgent(Message):
    TYPE_ID: ClassVar[int] = 34
    NAME: ClassVar[str] = "revoke-agent"

    agent_id: bytes = _f(ID)


@dataclass(frozen=True)
class Deposit(Message):
    TYPE_ID: ClassVar[int] = 35
    NAME: ClassVar[str] = "deposit"

    amount: int = _f(U64)


@dataclass(frozen=True)
class Withdraw(Message):
    TYPE_ID: ClassVar[int] = 36
    NAME: ClassVar[str] = "withdraw"

    amount: int = _f(U64)


@dataclass(frozen=True)
class IssuePolicy(Message):
    """A policy: the trigger (kind and parameters, T/lo/hi as enc() values), money and time.

    `amount` is paid per incident (min(amount, coverage left)); `coverage` is locked at issue;
    `premium` is paid into the pool by the policyholder. Times are ms on frame time.
    """

    TYPE_ID: ClassVar[int] = 37
    NAME: ClassVar[str] = "issue-policy"

    device_id: bytes = _f(ID)
    beneficiary: bytes = _f(ID)
    circuit_id: bytes = _f(ID)
    kind: int = _f(U8)
    threshold: int = _f(U32)  # T, enc()-encoded
    count: int = _f(U32)  # K
    lo: int = _f(U32)  # enc()-encoded
    hi: int = _f(U32)  # enc()-encoded
    gap_ms: int = _f(U48)  # G
    coverage: int = _f(U64)
    amount: int = _f(U64)
    premium: int = _f(U64)
    start_ms: int = _f(U48)
    end_ms: int = _f(U48)
    period_ms: int = _f(U48)
    claim_window_ms: int = _f(U48)


@dataclass(frozen=True)
class RotateOracles(Message):
    TYPE_ID: ClassVar[int] = 38
    NAME: ClassVar[str] = "rotate-oracles"

    members: tuple[bytes, ...] = _f(ListOf(ID, MAX_ORACLES))
    threshold: int = _f(U32)


@dataclass(frozen=True)
class RotateAdmin(Message):
    TYPE_ID: ClassVar[int] = 39
    NAME: ClassVar[str] = "rotate-admin"

    new_admin: bytes = _f(ID)


# --------------------------------------------------------------------------- economic security (DESIGN §14)
# Type ids 70-79. Bonds, the soundness rule's parameters, corroborated policies and slashing
# evidence. The rules that use them are in ledger/economics.py and ledger/state.py.


class BondHolder(enum.IntEnum):
    """Whose bond: an oracle (joining the oracle set) or a device (its policyholder's stake)."""

    ORACLE = 1
    DEVICE = 2


class UnbondStep(enum.IntEnum):
    REQUEST = 1  # start the unlock delay
    RELEASE = 2  # after the delay: the bond leaves the ledger


MAX_GROUP = 16  # devices of one corroborated policy


@dataclass(frozen=True)
class EconParams(Message):
    """The network's economic parameters; setting them switches the economic rules on (§14)."""

    TYPE_ID: ClassVar[int] = 70
    NAME: ClassVar[str] = "econ-params"

    min_oracle_bond: int = _f(U64)  # every member of the oracle set holds at least this bond
    max_staging_cost: int = _f(U64)  # cap on the staging cost an underwriter may declare per device
    reporter_share_bps: int = _f(U32)  # share of a slashed bond paid to the reporter (1/10000)
    unlock_delay_ms: int = _f(U48)  # a bond leaves this long after its unbond request


@dataclass(frozen=True)
class PostBond(Message):
    """A bond paid into the ledger (from `external`) for an oracle or an enrolled device."""

    TYPE_ID: ClassVar[int] = 71
    NAME: ClassVar[str] = "post-bond"

    holder_kind: int = _f(U8)  # BondHolder
    holder_id: bytes = _f(ID)
    amount: int = _f(U64)


@dataclass(frozen=True)
class Unbond(Message):
    """Step 1 starts a bond's unlock delay; step 2, after it, pays the bond back out."""

    TYPE_ID: ClassVar[int] = 72
    NAME: ClassVar[str] = "unbond"

    holder_kind: int = _f(U8)  # BondHolder
    holder_id: bytes = _f(ID)
    step: int = _f(U8)  # UnbondStep


@dataclass(frozen=True)
class EconPolicy(Message):
    """A policy with its economic terms: the staging cost per device the underwriter declares,
    and, for a corroborated policy, the group of devices, m and the overlap tolerance. An empty
    group is a single-device policy on terms.device_id (m = 1)."""

    TYPE_ID: ClassVar[int] = 73
    NAME: ClassVar[str] = "econ-policy"

    terms: IssuePolicy = _f(Nested(IssuePolicy))
    staging_cost: int = _f(U64)
    group: tuple[bytes, ...] = _f(ListOf(ID, MAX_GROUP))
    min_proofs: int = _f(U8)  # m; 1 for a single-device policy
    overlap_tolerance_ms: int = _f(U48)
# --------------------------------------------------------------------------- hardware (DESIGN §15)
# Types 80-89 and admin kinds 30-39. Verification of these lives in faultproof.signing and
# faultproof.attestation; the ledger rules in ledger/state.py's hardware block.

MAX_PUBLIC_KEY = 33  # SEC1 compressed P-256; an Ed25519 key is 32
MAX_MEASUREMENTS = 8


@dataclass(frozen=True)
class EnrolDeviceKey(Message):
    """Enrol a device whose key is not (only) its id: a P-256 key in a secure element.

    `enrol` is the ordinary enrolment; `device_id` there must be
    `faultproof.signing.key_id(key_type, public_key)`. An Ed25519 device may use it too (its
    public_key is then its device_id), which makes the type explicit on the ledger."""

    TYPE_ID: ClassVar[int] = 80
    NAME: ClassVar[str] = "enrol-device-key"

    enrol: EnrolDevice = _f(Nested(EnrolDevice))
    key_type: int = _f(U8)
    public_key: bytes = _f(Bytes(max_len=MAX_PUBLIC_KEY))


@dataclass(frozen=True)
class SetMeasurement(Message):
    """Put a known-good measurement on the ledger allowlist (allowed = 1) or take it off (0, e.g. a
    firmware found vulnerable). `component` is the stage it measures (faultproof.attestation.
    Component: bootloader 1, firmware 2, config 3, gateway PCR digest 4). Never retroactive:
    results recorded before keep their verdict."""

    TYPE_ID: ClassVar[int] = 81
    NAME: ClassVar[str] = "set-measurement"

    component: int = _f(U8)
    digest: bytes = _f(ID)
    allowed: int = _f(Bool())


@dataclass(frozen=True)
class RotateDeviceKey(Message):
    """Rotate a device's key (a new secure element, a compromised key): the device keeps its
    device_id; frames with ts_ms >= effective_ms verify under the new key. `endorsement` is the
    current key's signature over `rotation_message(...)`: the old key signs the new one."""

    TYPE_ID: ClassVar[int] = 82
    NAME: ClassVar[str] = "rotate-device-key"

    device_id: bytes = _f(ID)
    key_type: int = _f(U8)
    public_key: bytes = _f(Bytes(max_len=MAX_PUBLIC_KEY))
    effective_ms: int = _f(U48)
    endorsement: bytes = _f(SIG)


def rotation_message(ledger_id: bytes, device_id: bytes, key_type: int, public_key: bytes, effective_ms: int) -> bytes:
    """What the old key signs (tag `faultproof/rotate-device-key/v1`) to endorse the new one."""
    return pack([ledger_id, device_id, key_type, public_key, effective_ms])


@dataclass(frozen=True)
class SetLockdown(Message):
    """Ledger-wide lockdown parameters (DESIGN §15).

    The pool circuit breaker pauses new payouts when the payouts in a rolling `breaker_window_ms`
    exceed `breaker_share_bps`/10000 of the capital (0 turns it off). With
    `attestation_max_age_ms` > 0 a claim is payable only if a passing device attestation recorded
    on the ledger at most that long before its window covers it (0: attestation not required)."""

    TYPE_ID: ClassVar[int] = 83
    NAME: ClassVar[str] = "set-lockdown"

    breaker_window_ms: int = _f(U48)
    breaker_share_bps: int = _f(U32)
    attestation_max_age_ms: int = _f(U48)


class LiftTarget(enum.IntEnum):
    PAYOUTS = 1  # resume payouts after the circuit breaker tripped
    SUSPENSION = 2  # reinstate a device the oracles suspended


@dataclass(frozen=True)
class Lift(Message):
    """The admin lifts a lockdown: resumes payouts (device_id zero) or reinstates a suspended
    device. Never retroactive: windows that ended while it was in force stay refused."""

    TYPE_ID: ClassVar[int] = 84
    NAME: ClassVar[str] = "lift"

    target: int = _f(U8)
    device_id: bytes = _f(ID)
    note: bytes = _f(Bytes(max_len=256))  # free text for the record


@dataclass(frozen=True)
class EvidenceBody(Message):
    """What a device signs to attest (RATS evidence): its measurement log's values in boot order
    (bootloader, firmware, config), the PCR-like composite of them, the verifier's nonce and the
    device's frame seq at that moment. For evidence recorded on the ledger the nonce is the hash
    of a recent ledger entry, which dates it without asking anyone."""

    TYPE_ID: ClassVar[int] = 85
    NAME: ClassVar[str] = "device-evidence"

    device_id: bytes = _f(ID)
    epoch: int = _f(U32)
    seq: int = _f(U32)
    ts_ms: int = _f(U48)
    nonce: bytes = _f(ID)
    measurements: tuple[bytes, ...] = _f(ListOf(ID, MAX_MEASUREMENTS))
    composite: bytes = _f(ID)


@dataclass(frozen=True)
class SignedEvidence(Message):
    """Device evidence signed by the device's enrolled key: a ledger transaction anyone may submit
    (the agent does), and what an agent appraises locally."""

    TYPE_ID: ClassVar[int] = 86
    NAME: ClassVar[str] = "signed-evidence"
    MAX_SIZE: ClassVar[int] = 1024

    body: EvidenceBody = _f(Nested(EvidenceBody))
    signature: bytes = _f(SIG)


@dataclass(frozen=True)
class GatewayQuote(Message):
    """A gateway's TPM 2.0 quote (Keylime-style): the raw TPMS_ATTEST and TPMT_SIGNATURE the TPM
    returned, and its attestation key (SEC1 P-256 point). faultproof.attestation verifies it."""

    TYPE_ID: ClassVar[int] = 87
    NAME: ClassVar[str] = "gateway-quote"
    MAX_SIZE: ClassVar[int] = 2048

    agent_id: bytes = _f(ID)
    attest: bytes = _f(Bytes(max_len=1024))
    signature: bytes = _f(Bytes(max_len=256))
    ak_point: bytes = _f(Bytes(exact=65))



@dataclass(frozen=True)
class SuspendBody(Message):
    """What an oracle signs to suspend a device it saw compromised (bad-signature bursts, failed
    attestations, ...). `evidence_hash` names what it saw; the ledger does not judge it, the k
    signatures do (DESIGN §15)."""

    TYPE_ID: ClassVar[int] = 88
    NAME: ClassVar[str] = "suspend-device"

    ledger_id: bytes = _f(ID)
    oracle_set_epoch: int = _f(U32)
    device_id: bytes = _f(ID)
    reason: Reason = _f(REASON)
    since_ms: int = _f(U48)  # from when windows are refused (the oracles' observation time)
    evidence_hash: bytes = _f(ID)

    def sign(self, oracle: Identity) -> QcSignature:
        return QcSignature(oracle_id=oracle.public_key, signature=_sign(oracle, self))


@dataclass(frozen=True)
class SuspensionCertificate(Message):
    """k oracle signatures over one SuspendBody: a ledger transaction anyone may submit."""

    TYPE_ID: ClassVar[int] = 89
    NAME: ClassVar[str] = "suspension-certificate"
    MAX_SIZE: ClassVar[int] = 8192

    body: SuspendBody = _f(Nested(SuspendBody))
    signatures: tuple[QcSignature, ...] = _f(ListOf(Nested(QcSignature), MAX_ORACLES))


# --------------------------------------------------------------------------- hardware round 2 (DESIGN §15)


@dataclass(frozen=True)
class BindTransportKey(Message):
    """Name the libp2p (transport) key a token-held protocol key gossips under (DESIGN §15).

    An oracle's or agent's signing key can live in a PKCS#11 token, which libp2p cannot use, so
    the process gossips under a separate file key. `endorsement` is the principal's signature
    (tag `faultproof/bind-transport-key/v1`) over `transport_binding_message(...)`: the token key
    vouches for the transport key. Gossip gates admit the bound transport key in the principal's
    place; nothing the ledger pays on is signed by a transport key."""

    TYPE_ID: ClassVar[int] = 140
    NAME: ClassVar[str] = "bind-transport-key"

    principal: bytes = _f(ID)  # the Ed25519 oracle or agent key (in a token)
    transport_key: bytes = _f(ID)  # the Ed25519 libp2p key (a file key)
    endorsement: bytes = _f(SIG)


def transport_binding_message(ledger_id: bytes, principal: bytes, transport_key: bytes) -> bytes:
    """What the principal signs (tag `faultproof/bind-transport-key/v1`) to vouch for its transport key."""
    return pack([ledger_id, principal, transport_key])


@dataclass(frozen=True)
class TransferDevice(Message):
    """Hand a device to another agent (DESIGN §15 H9): from this entry on, only `to_agent` may
    anchor the device's frames or claim for it; the previous agent's anchors and claims for the
    device are refused (`device_not_in_custody`)."""

    TYPE_ID: ClassVar[int] = 141
    NAME: ClassVar[str] = "transfer-device"

    device_id: bytes = _f(ID)
    to_agent: bytes = _f(ID)


@dataclass(frozen=True)
class EnrolGatewayKey(Message):
    """Pin an enrolled agent's TPM attestation key (SEC1 uncompressed P-256 point) so the ledger
    can appraise that gateway's `GatewayQuote`s (DESIGN §15 H10). The admin vouches for the key,
    as for a device key; binding it to an EK certificate is not done."""

    TYPE_ID: ClassVar[int] = 142
    NAME: ClassVar[str] = "enrol-gateway-key"

    agent_id: bytes = _f(ID)
    ak_point: bytes = _f(Bytes(exact=65))


@dataclass(frozen=True)
class DecommissionDevice(Message):
    """Retire a device for good (DESIGN §15 H11), in one entry: its final frame-chain head must be
    the last one anchored on the ledger (all zero: it never had one), every open policy on it is
    closed (its coverage back to the pool), and it is revoked. None of its windows is paid after."""

    TYPE_ID: ClassVar[int] = 146
    NAME: ClassVar[str] = "decommission-device"

    device_id: bytes = _f(ID)
    epoch: int = _f(U32)
    seq: int = _f(U32)
    chain: bytes = _f(FieldBytes())


_HARDWARE_ADMIN_ARGS: dict[AdminKind, type[Message]] = {
    AdminKind.ENROL_DEVICE_KEY: EnrolDeviceKey,
    AdminKind.SET_MEASUREMENT: SetMeasurement,
    AdminKind.ROTATE_DEVICE_KEY: RotateDeviceKey,
    AdminKind.SET_LOCKDOWN: SetLockdown,
    AdminKind.LIFT: Lift,
    AdminKind.BIND_TRANSPORT_KEY: BindTransportKey,
    AdminKind.TRANSFER_DEVICE: TransferDevice,
    AdminKind.ENROL_GATEWAY_KEY: EnrolGatewayKey,
    AdminKind.DECOMMISSION_DEVICE: DecommissionDevice,
}


ADMIN_ARGS: dict[AdminKind, type[Message]] = {
    AdminKind.REGISTER_CIRCUIT: RegisterCircuit,
    AdminKind.ENROL_DEVICE: EnrolDevice,
    AdminKind.REVOKE_DEVICE: RevokeDevice,
    AdminKind.ENROL_AGENT: EnrolAgent,
    AdminKind.REVOKE_AGENT: RevokeAgent,
    AdminKind.DEPOSIT: Deposit,
    AdminKind.WITHDRAW: Withdraw,
    AdminKind.ISSUE_POLICY: IssuePolicy,
    AdminKind.ROTATE_ORACLES: RotateOracles,
    AdminKind.ROTATE_ADMIN: RotateAdmin,
    AdminKind.SET_ECON_PARAMS: EconParams,
    AdminKind.POST_BOND: PostBond,
    AdminKind.UNBOND: Unbond,
    AdminKind.ISSUE_ECON_POLICY: EconPolicy,
    **_HARDWARE_ADMIN_ARGS,
}
_ADMIN_KIND_OF = {cls: kind for kind, cls in ADMIN_ARGS.items()}


@dataclass(frozen=True)
class AdminTx(Message):
    TYPE_ID: ClassVar[int] = 40
    NAME: ClassVar[str] = "admin-tx"
    MAX_SIZE: ClassVar[int] = 20480

    ledger_id: bytes = _f(ID)
    nonce: int = _f(U64)
    kind: int = _f(U8)
    args: Message = _f(Nested(*ADMIN_ARGS.values()))

    def _check_together(self) -> None:
        try:
            kind = AdminKind(self.kind)
        except ValueError:
            raise DecodeError(Reason.OUT_OF_RANGE, f"unknown admin kind {self.kind}") from None
        if not isinstance(self.args, ADMIN_ARGS[kind]):
            raise DecodeError(Reason.WRONG_TYPE, f"{kind.name} takes {ADMIN_ARGS[kind].NAME} arguments")

    @classmethod
    def make(cls, ledger_id: bytes, nonce: int, args: Message) -> AdminTx:
        return cls(ledger_id=ledger_id, nonce=nonce, kind=int(_ADMIN_KIND_OF[type(args)]), args=args)

    @property
    def tx_id(self) -> bytes:
        return _hash_id("admin-tx", self.encode())

    def sign(self, admin: Identity) -> SignedAdminTx:
        return SignedAdminTx(tx=self, signature=_sign(admin, self))


def policy_id(tx: AdminTx) -> bytes:
    """A policy's id is the id of the transaction that issued it (unique by ledger and nonce)."""
    return tx.tx_id


@dataclass(frozen=True)
class SignedAdminTx(Message):
    TYPE_ID: ClassVar[int] = 41
    NAME: ClassVar[str] = "signed-admin-tx"
    MAX_SIZE: ClassVar[int] = 20600

    tx: AdminTx = _f(Nested(AdminTx))
    signature: bytes = _f(SIG)

    def verify(self, admin_key: bytes) -> bool:
        return _verify(self.tx, self.signature, admin_key)


@dataclass(frozen=True)
class ExpirePolicy(Message):
    """Anyone may expire a policy after its term end plus claim window."""

    TYPE_ID: ClassVar[int] = 42
    NAME: ClassVar[str] = "expire-policy"

    policy_id: bytes = _f(ID)


@dataclass(frozen=True)
class Genesis(Message):
    """The ledger's first entry. Its hash is the `ledger_id`; the random nonce makes it unique."""

    TYPE_ID: ClassVar[int] = 50
    NAME: ClassVar[str] = "genesis"
    MAX_SIZE: ClassVar[int] = 4096

    nonce: bytes = _f(ID)
    created_ms: int = _f(U48)
    ledger_key: bytes = _f(ID)  # signs every entry
    admin: bytes = _f(ID)
    oracles: tuple[bytes, ...] = _f(ListOf(ID, MAX_ORACLES))
    threshold: int = _f(U32)
    development: int = _f(Bool())
    max_skew_ms: int = _f(U48)
    rotation_grace_ms: int = _f(U48)
    # How far before the ledger's now a policy term may start (DESIGN §11, S1). 0 on a production
    # ledger: a new policy never covers frames already sent. Test networks whose fixtures write
    # windows in the past set it. Last and defaulted so older builders keep working.
    max_backdate_ms: int = field(default=0, metadata={"ftype": U48})

    @property
    def ledger_id(self) -> bytes:
        return _hash_id("genesis", self.encode())



# -- economic security (DESIGN §14): slashing evidence and corroborated payouts, anyone may submit --


@dataclass(frozen=True)
class VoteEquivocation(Message):
    """Two signed votes of one oracle for one claim in one oracle-set epoch that conflict
    (Approve vs Reject, or Approves over two different bodies). `reporter` gets the reward."""

    TYPE_ID: ClassVar[int] = 74
    NAME: ClassVar[str] = "vote-equivocation"
    MAX_SIZE: ClassVar[int] = 2560

    reporter: bytes = _f(ID)
    first: Vote = _f(Nested(Approve, Reject))
    second: Vote = _f(Nested(Approve, Reject))


@dataclass(frozen=True)
class ContradictingApprove(Message):
    """An oracle's Approve over a body whose amount, beneficiary, device or circuit is not the
    ledger's policy's."""

    TYPE_ID: ClassVar[int] = 75
    NAME: ClassVar[str] = "contradicting-approve"
    MAX_SIZE: ClassVar[int] = 1280

    reporter: bytes = _f(ID)
    approve: Approve = _f(Nested(Approve))


@dataclass(frozen=True)
class FrameEquivocation(Message):
    """Two different frames signed by one device for one (device, epoch, seq): a leaked key or
    cheating firmware."""

    TYPE_ID: ClassVar[int] = 76
    NAME: ClassVar[str] = "frame-equivocation"
    MAX_SIZE: ClassVar[int] = 1280

    reporter: bytes = _f(ID)
    first: SignedFrame = _f(Nested(SignedFrame))
    second: SignedFrame = _f(Nested(SignedFrame))


@dataclass(frozen=True)
class DeviceSlashShare(Message):
    """One oracle's share of a device slashing certificate for the pool contract (DESIGN §13):
    its 65-byte EIP-712 ECDSA signature (r ‖ s ‖ v) over the `DeviceSlash` body derived from
    `evidence` and `oracle_set_epoch` (`oracle/device_slash.py` `slash_body`), by the chain key the
    contract bound to `oracle_id` in that epoch, gossiped with the evidence itself so every peer
    checks the frames on its own replica before it signs its own share. Carries no Ed25519
    signature: receivers recover the signer and compare it with the bound address."""

    TYPE_ID: ClassVar[int] = 91
    NAME: ClassVar[str] = "device-slash-share"
    MAX_SIZE: ClassVar[int] = 1536

    oracle_id: bytes = _f(ID)
    oracle_set_epoch: int = _f(U32)
    evidence: FrameEquivocation = _f(Nested(FrameEquivocation))
    signature: bytes = _f(Bytes(exact=65))


@dataclass(frozen=True)
class CorroboratingWindow(Message):
    """One device's proven window in a corroborated claim, with the agent that claimed it."""

    TYPE_ID: ClassVar[int] = 77
    NAME: ClassVar[str] = "corroborating-window"

    device_id: bytes = _f(ID)
    agent_id: bytes = _f(ID)
    epoch: int = _f(U32)
    start_seq: int = _f(U32)
    end_seq: int = _f(U32)
    start_ts: int = _f(U48)
    end_ts: int = _f(U48)
    # The end frame's chain value (econ2): the ledger checks each window's end against the device's
    # anchored history as for a single payout (DESIGN §11). Last and defaulted, like PayoutBody's.
    end_chain: bytes = field(default=bytes(32), metadata={"ftype": FieldBytes()})


def group_claim_id(policy_id: bytes, windows: Sequence[CorroboratingWindow]) -> bytes:
    """A corroborated incident's id: the policy and its windows (device, epoch, seqs), in the
    order of the body (sorted by device_id), never the proofs."""
    return _hash_id("group-claim-id", pack([policy_id, [[w.device_id, w.epoch, w.start_seq, w.end_seq]
                                                        for w in windows]]))


@dataclass(frozen=True)
class GroupPayoutBody(Message):
    """What k oracles sign for a corroborated policy: m or more windows, paid once."""

    TYPE_ID: ClassVar[int] = 78
    NAME: ClassVar[str] = "group-payout-approve"
    MAX_SIZE: ClassVar[int] = 4096

    ledger_id: bytes = _f(ID)
    oracle_set_epoch: int = _f(U32)
    claim_id: bytes = _f(ID)
    policy_id: bytes = _f(ID)
    windows: tuple[CorroboratingWindow, ...] = _f(ListOf(Nested(CorroboratingWindow), MAX_GROUP))
    circuit_id: bytes = _f(ID)
    beneficiary: bytes = _f(ID)
    amount: int = _f(U64)

    def sign(self, oracle: Identity) -> QcSignature:
        return QcSignature(oracle_id=oracle.public_key, signature=_sign(oracle, self))


@dataclass(frozen=True)
class GroupQuorumCertificate(Message):
    TYPE_ID: ClassVar[int] = 79
    NAME: ClassVar[str] = "group-quorum-certificate"
    MAX_SIZE: ClassVar[int] = 12288

    body: GroupPayoutBody = _f(Nested(GroupPayoutBody))
    signatures: tuple[QcSignature, ...] = _f(ListOf(Nested(QcSignature), MAX_ORACLES))


ECON_TX_TYPES: tuple[type[Message], ...] = (VoteEquivocation, ContradictingApprove, FrameEquivocation,
                                            GroupQuorumCertificate)


class ChainEvidence(enum.IntEnum):
    """The evidence kind a pool contract's `Slashed` event names (contracts/src/PoolEcon.sol)."""

    VOTES = 1  # VoteEquivocation: two EIP-712 PayoutBody signatures by one member's chain key
    APPROVE = 2  # ContradictingApprove: one such signature over a body that is not its policy's
    FRAMES = 3  # FrameEquivocation, certified by k oracles (DeviceSlash)


@dataclass(frozen=True)
class ChainSlash(Message):
    """A slash the pool contract already decided (its `Slashed` event), as an EVM pool's mirror
    records it (ledger/evm/mirror.py, DESIGN §13). The chain's evidence (ECDSA votes, a k-oracle
    DeviceSlash certificate) cannot be replayed by the Ed25519 evidence rules, so only a mirror
    accepts this; it recomputes the slash from its own bonds and requires the chain's amounts.
    Any other ledger refuses it (wrong_type)."""

    TYPE_ID: ClassVar[int] = 132
    NAME: ClassVar[str] = "chain-slash"

    holder_kind: int = _f(U8)  # BondHolder
    offender: bytes = _f(ID)  # an oracle's Ed25519 id or a device id
    reporter: bytes = _f(ID)
    evidence: int = _f(U8)  # ChainEvidence
    amount: int = _f(U64)  # the whole bond, as the chain slashed it
    to_reporter: int = _f(U64)
    to_pool: int = _f(U64)


# --------------------------------------------------------------------------- device history anchors
# (ledger soundness, DESIGN §11; type ids 60-69). Defined here, before LedgerEntry, because an
# anchor is a ledger transaction.

MAX_ANCHOR_HEADS = 240  # keeps a SignedAnchor (~86 bytes a head) inside one LedgerEntry


@dataclass(frozen=True)
class DeviceHead(Message):
    """A device's latest frame as its agent stored it: a leaf of an anchor's Merkle tree."""

    TYPE_ID: ClassVar[int] = 60
    NAME: ClassVar[str] = "device-head"
    MAX_SIZE: ClassVar[int] = 256

    device_id: bytes = _f(ID)
    epoch: int = _f(U32)
    seq: int = _f(U32)
    ts_ms: int = _f(U48)
    chain: bytes = _f(FieldBytes())

    @property
    def leaf_hash(self) -> bytes:
        return _hash_id("anchor-leaf", self.encode())


@dataclass(frozen=True)
class AnchorBody(Message):
    """One agent's batch of device heads for one interval; `root` is the Merkle root of the heads'
    leaf hashes (faultproof.merkle), so a single head can later be shown with an inclusion proof."""

    TYPE_ID: ClassVar[int] = 61
    NAME: ClassVar[str] = "device-anchor"
    MAX_SIZE: ClassVar[int] = 24000

    ledger_id: bytes = _f(ID)
    agent_id: bytes = _f(ID)
    round: int = _f(U64)  # strictly increasing per agent
    heads: tuple[DeviceHead, ...] = _f(ListOf(Nested(DeviceHead), MAX_ANCHOR_HEADS))
    root: bytes = _f(ID)

    def sign(self, agent: Identity) -> SignedAnchor:
        return SignedAnchor(body=self, signature=_sign(agent, self))


@dataclass(frozen=True)
class SignedAnchor(Message):
    TYPE_ID: ClassVar[int] = 62
    NAME: ClassVar[str] = "signed-device-anchor"
    MAX_SIZE: ClassVar[int] = 24100

    body: AnchorBody = _f(Nested(AnchorBody))
    signature: bytes = _f(SIG)

    def verify(self) -> bool:
        return _verify(self.body, self.signature, self.body.agent_id)


# --------------------------------------------------------------------------- hardware round 2: suspension gossip


@dataclass(frozen=True)
class SuspensionShare(Message):
    """One oracle's signature over a SuspendBody, gossiped with the evidence it signed for
    (DESIGN §15): a peer checks the frames on its own replica, adds its signature, and any oracle
    holding k shares submits the SuspensionCertificate."""

    TYPE_ID: ClassVar[int] = 143
    NAME: ClassVar[str] = "suspension-share"
    MAX_SIZE: ClassVar[int] = 16384

    body: SuspendBody = _f(Nested(SuspendBody))
    signature: QcSignature = _f(Nested(QcSignature))
    frames: tuple[SignedFrame, ...] = _f(ListOf(Nested(SignedFrame), 64))


@dataclass(frozen=True)
class SuspensionReport(Message):
    """An agent's evidence that a device is being forged (DESIGN §15): the refused frames, and when
    it quarantined the device. Sent to any one oracle (`POST /v1/suspensions`), signed."""

    TYPE_ID: ClassVar[int] = 144
    NAME: ClassVar[str] = "suspension-report"
    MAX_SIZE: ClassVar[int] = 16384

    agent_id: bytes = _f(ID)
    device_id: bytes = _f(ID)
    since_ms: int = _f(U48)
    frames: tuple[SignedFrame, ...] = _f(ListOf(Nested(SignedFrame), 64))

    def sign(self, agent: Identity) -> SignedSuspensionReport:
        return SignedSuspensionReport(body=self, signature=_sign(agent, self))


@dataclass(frozen=True)
class SignedSuspensionReport(Message):
    TYPE_ID: ClassVar[int] = 145
    NAME: ClassVar[str] = "signed-suspension-report"
    MAX_SIZE: ClassVar[int] = 16500

    body: SuspensionReport = _f(Nested(SuspensionReport))
    signature: bytes = _f(SIG)

    def verify(self) -> bool:
        return _verify(self.body, self.signature, self.body.agent_id)


LEDGER_TX_TYPES: tuple[type[Message], ...] = (SignedAdminTx, QuorumCertificate, ExpirePolicy, SignedAnchor,
                                               *ECON_TX_TYPES, SuspensionCertificate, SignedEvidence,
                                               GatewayQuote,  # DESIGN §15 H10: a gateway's quote
                                               ChainSlash)  # only an EVM pool's mirror accepts it (§13)


@dataclass(frozen=True)
class LedgerEntry(Message):
    """One append-only ledger entry, chained by `prev_hash` and signed by the ledger key.

    `tx` is the transaction as submitted (genesis for height 0); `paid` is what a payout actually
    paid (min(amount, coverage left)), 0 for other kinds.
    """

    TYPE_ID: ClassVar[int] = 51
    NAME: ClassVar[str] = "ledger-entry"
    MAX_SIZE: ClassVar[int] = 24576

    ledger_id: bytes = _f(ID)
    height: int = _f(U64)
    prev_hash: bytes = _f(ID)
    time_ms: int = _f(U48)
    tx: Message = _f(Nested(Genesis, *LEDGER_TX_TYPES))
    paid: int = _f(U64)

    @property
    def entry_hash(self) -> bytes:
        return _hash_id("ledger-entry", self.encode())

    def sign(self, ledger: Identity) -> SignedEntry:
        return SignedEntry(entry=self, signature=_sign(ledger, self))


@dataclass(frozen=True)
class SignedEntry(Message):
    TYPE_ID: ClassVar[int] = 52
    NAME: ClassVar[str] = "signed-entry"
    MAX_SIZE: ClassVar[int] = 24700

    entry: LedgerEntry = _f(Nested(LedgerEntry))
    signature: bytes = _f(SIG)

    def verify(self, ledger_key: bytes) -> bool:
        return _verify(self.entry, self.signature, ledger_key)


@dataclass(frozen=True)
class SignedHead(Message):
    """The ledger's signed statement of its head; oracles keep these to catch rewritten history."""

    TYPE_ID: ClassVar[int] = 53
    NAME: ClassVar[str] = "ledger-head"

    ledger_id: bytes = _f(ID)
    height: int = _f(U64)
    entry_hash: bytes = _f(ID)
    time_ms: int = _f(U48)
    signature: bytes = _f(SIG)

    def body_bytes(self) -> bytes:
        return pack([self.ledger_id, self.height, self.entry_hash, self.time_ms])

    @classmethod
    def make(cls, ledger: Identity, ledger_id: bytes, height: int, entry_hash: bytes, time_ms: int) -> SignedHead:
        body = pack([ledger_id, height, entry_hash, time_ms])
        return cls(ledger_id=ledger_id, height=height, entry_hash=entry_hash, time_ms=time_ms,
                   signature=ledger.sign(domain_tag(cls.NAME), body))

    def verify(self, ledger_key: bytes) -> bool:
        return verify(domain_tag(self.NAME), self.body_bytes(), self.signature, ledger_key)


@dataclass(frozen=True)
class Receipt(Message):
    """Proof of payment, verifiable offline: the genesis (ledger key), the payout entry with its
    QC, and the signed head at or after it. `faultproof receipt verify FILE` checks it."""

    TYPE_ID: ClassVar[int] = 54
    NAME: ClassVar[str] = "receipt"
    MAX_SIZE: ClassVar[int] = 40000

    genesis: Genesis = _f(Nested(Genesis))
    entry: SignedEntry = _f(Nested(SignedEntry))
    head: SignedHead = _f(Nested(SignedHead))


# -- corroborated claims, the oracle side (econ2, DESIGN §14; type ids 130-139) --


@dataclass(frozen=True)
class GroupVote(Message):
    """One oracle's approval of a corroborated claim: its signature over the GroupPayoutBody (the
    same bytes a GroupQuorumCertificate carries), gossiped on the votes topic beside VoteBatches."""

    TYPE_ID: ClassVar[int] = 130
    NAME: ClassVar[str] = "group-vote"
    MAX_SIZE: ClassVar[int] = 4608

    oracle_id: bytes = _f(ID)
    body: GroupPayoutBody = _f(Nested(GroupPayoutBody))
    signature: bytes = _f(SIG)

    @classmethod
    def make(cls, body: GroupPayoutBody, oracle: Identity) -> GroupVote:
        s = body.sign(oracle)
        return cls(oracle_id=s.oracle_id, body=body, signature=s.signature)

    def verify(self) -> bool:
        return _verify(self.body, self.signature, self.oracle_id)


MAX_GROUP_CLAIM_PARTS = 4  # keeps a GroupClaim inside one claims-topic gossip message (4 KB)


@dataclass(frozen=True)
class GroupClaim(Message):
    """Parts of a corroborated incident bundled: each part is an agent's own SignedClaim for one
    device of the group (its frames, its proof, its agent's signature). Oracles gossip the parts
    they assembled as one message (claims topic) so every peer verifies and votes on the same
    windows. Unsigned as a whole: every part is checked on its own."""

    TYPE_ID: ClassVar[int] = 131
    NAME: ClassVar[str] = "group-claim"
    MAX_SIZE: ClassVar[int] = 4096

    policy_id: bytes = _f(ID)
    parts: tuple[SignedClaim, ...] = _f(ListOf(Nested(SignedClaim), MAX_GROUP_CLAIM_PARTS))


# --------------------------------------------------------------------------- fast paths (DESIGN §16, perf2)

MAX_CLAIMS_PER_BATCH = 32


@dataclass(frozen=True)
class ClaimBatch(Message):
    """Many claims in one gossip message (py-libp2p costs CPU per message, whatever its size).

    Each claim stays signed alone by its agent and is checked alone, so a batch adds no trust: it
    is only a container. A lone claim may still travel as a bare SignedClaim on the same topic.
    """

    TYPE_ID: ClassVar[int] = 120
    NAME: ClassVar[str] = "claim-batch"
    MAX_SIZE: ClassVar[int] = SignedClaim.MAX_SIZE * MAX_CLAIMS_PER_BATCH + 64

    claims: tuple[SignedClaim, ...] = _f(ListOf(Nested(SignedClaim), MAX_CLAIMS_PER_BATCH))


MAX_QCS_PER_BATCH = 64


@dataclass(frozen=True)
class QcBatch(Message):
    """Several quorum certificates in one request (`POST /v1/tx/batch`, which refuses an empty one).
    Not a ledger transaction itself: each QC is applied as its own transaction, in order, and
    answered alone."""

    TYPE_ID: ClassVar[int] = 121
    NAME: ClassVar[str] = "qc-batch"
    MAX_SIZE: ClassVar[int] = QuorumCertificate.MAX_SIZE * MAX_QCS_PER_BATCH + 64

    qcs: tuple[QuorumCertificate, ...] = _f(ListOf(Nested(QuorumCertificate), MAX_QCS_PER_BATCH))


def require(condition: bool, reason: Reason, message: str = "") -> None:
    """Guard helper for rule code: raise the reason when the condition does not hold."""
    if not condition:
        raise FaultproofError(reason, message)
