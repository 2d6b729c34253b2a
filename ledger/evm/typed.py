"""What an oracle signs for the chain: the EIP-712 PayoutBody, and its secp256k1 chain key.

The chain's PayoutBody is faultproof.messages.PayoutBody plus the two chain values of the window's
frames (`cStart`, `cEnd`), because the contract builds the Groth16 public signals itself from the
policy and what the oracles attest (DESIGN §13). Field order and names below are the contract's
`PAYOUT_TYPEHASH`; the domain (name, version, chain id, contract) keeps a signature to one pool on
one chain.

An oracle keeps its Ed25519 identity for gossip and gets a secp256k1 key for the chain. The two are
bound both ways (`ChainKey.binding`): the Ed25519 key signs the address and the secp256k1 key signs
the Ed25519 id, so neither can be claimed by someone holding only the other. The admin checks the
binding before putting an oracle into a set (`verify_binding`); the contract records the pair.

A corroborated policy's payout on the chain signs `ChainGroupBody` (the §14 GroupPayoutBody, each
window with its frames' chain values) under the same domain; `sign_body` takes either body
(`AnyChainBody`) and signs it under its own EIP-712 types (`payout_types`).

Device slashing evidence (DESIGN §14): the EVM cannot check a device's Ed25519 frame signature, so
k oracles check both frames and sign an EIP-712 `DeviceSlash` (`DeviceSlashBody`,
`ChainKey.sign_device_slash`) under the same domain as a payout. The body names the reporter the
contract rewards, so the k signatures pay only that reporter, whoever sends them.

No I/O here.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.messages import SignableMessage, encode_defunct, encode_typed_data

from faultproof.identity import Identity, domain_tag
from faultproof.identity import verify as ed25519_verify
from faultproof.messages import GroupPayoutBody, PayoutBody, SignedFrame

DOMAIN_NAME = "faultproof-insurance-pool"
DOMAIN_VERSION = "1"
BINDING_NAME = "evm-oracle-binding"

PAYOUT_FIELDS: tuple[tuple[str, str], ...] = (
    ("ledgerId", "bytes32"), ("oracleSetEpoch", "uint32"), ("claimId", "bytes32"), ("policyId", "bytes32"),
    ("deviceId", "bytes32"), ("epoch", "uint32"), ("startSeq", "uint32"), ("endSeq", "uint32"),
    ("startTs", "uint64"), ("endTs", "uint64"), ("circuitId", "bytes32"), ("beneficiary", "bytes32"),
    ("amount", "uint64"), ("cStart", "uint256"), ("cEnd", "uint256"),
)
PAYOUT_TYPES = {"PayoutBody": [{"name": n, "type": t} for n, t in PAYOUT_FIELDS]}
# Oracle-certified device slashing evidence (DESIGN §14 on the chain; the contract's DEVICE_SLASH_TYPEHASH).
DEVICE_SLASH_FIELDS: tuple[tuple[str, str], ...] = (
    ("oracleSetEpoch", "uint32"), ("deviceId", "bytes32"), ("epoch", "uint32"), ("seq", "uint32"),
    ("firstFrame", "bytes32"), ("secondFrame", "bytes32"), ("maxTs", "uint64"), ("reporter", "bytes32"),
)
DEVICE_SLASH_TYPES = {"DeviceSlash": [{"name": n, "type": t} for n, t in DEVICE_SLASH_FIELDS]}


@dataclass(frozen=True)
class ChainBody:
    """A PayoutBody as the chain sees it: the body and the window's chain values."""

    body: PayoutBody
    c_start: int
    c_end: int

    def message(self) -> dict[str, Any]:
        b = self.body
        return {
            "ledgerId": b.ledger_id, "oracleSetEpoch": b.oracle_set_epoch, "claimId": b.claim_id,
            "policyId": b.policy_id, "deviceId": b.device_id, "epoch": b.epoch, "startSeq": b.start_seq,
            "endSeq": b.end_seq, "startTs": b.start_ts, "endTs": b.end_ts, "circuitId": b.circuit_id,
            "beneficiary": b.beneficiary, "amount": b.amount, "cStart": self.c_start, "cEnd": self.c_end,
        }

    def as_tuple(self) -> tuple[Any, ...]:
        m = self.message()
        return tuple(m[n] for n, _ in PAYOUT_FIELDS)

    def replace(self, **changes: Any) -> ChainBody:
        c_start = changes.pop("c_start", self.c_start)
        c_end = changes.pop("c_end", self.c_end)
        return ChainBody(self.body.replace(**changes) if changes else self.body, c_start, c_end)


GROUP_WINDOW_FIELDS: tuple[tuple[str, str], ...] = (
    ("deviceId", "bytes32"), ("agentId", "bytes32"), ("epoch", "uint32"), ("startSeq", "uint32"),
    ("endSeq", "uint32"), ("startTs", "uint64"), ("endTs", "uint64"), ("cStart", "uint256"), ("cEnd", "uint256"),
)
GROUP_PAYOUT_FIELDS: tuple[tuple[str, str], ...] = (
    ("ledgerId", "bytes32"), ("oracleSetEpoch", "uint32"), ("claimId", "bytes32"), ("policyId", "bytes32"),
    ("windows", "GroupWindow[]"), ("circuitId", "bytes32"), ("beneficiary", "bytes32"), ("amount", "uint64"),
)
GROUP_PAYOUT_TYPES = {"GroupPayoutBody": [{"name": n, "type": t} for n, t in GROUP_PAYOUT_FIELDS],
                      "GroupWindow": [{"name": n, "type": t} for n, t in GROUP_WINDOW_FIELDS]}
# abi.encode(GroupQc) for the contract's `groupPayout(bytes)` (PoolEcon.sol's GroupQc).
_WINDOW_ABI = "(bytes32,bytes32,uint32,uint32,uint32,uint64,uint64,uint256,uint256)"
GROUP_QC_ABI = (f"((bytes32,uint32,bytes32,bytes32,{_WINDOW_ABI}[],bytes32,bytes32,uint64),"
                "address[],bytes32[],bytes32[],uint256[8][],bytes32,bytes32)")


@dataclass(frozen=True)
class ChainGroupBody:
    """A GroupPayoutBody as the chain sees it: each window with its frames' chain values
    (`chains[i]` = (c_start, c_end) of `body.windows[i]`), so the contract can verify every proof."""

    body: GroupPayoutBody
    chains: tuple[tuple[int, int], ...]

    def message(self) -> dict[str, Any]:
        b = self.body
        return {"ledgerId": b.ledger_id, "oracleSetEpoch": b.oracle_set_epoch, "claimId": b.claim_id,
                "policyId": b.policy_id, "circuitId": b.circuit_id, "beneficiary": b.beneficiary, "amount": b.amount,
                "windows": [{"deviceId": w.device_id, "agentId": w.agent_id, "epoch": w.epoch, "startSeq": w.start_seq,
                             "endSeq": w.end_seq, "startTs": w.start_ts, "endTs": w.end_ts, "cStart": c[0],
                             "cEnd": c[1]} for w, c in zip(b.windows, self.chains, strict=True)]}

    def as_tuple(self) -> tuple[Any, ...]:
        m = self.message()
        m["windows"] = [tuple(w[n] for n, _ in GROUP_WINDOW_FIELDS) for w in m["windows"]]
        return tuple(m[n] for n, _ in GROUP_PAYOUT_FIELDS)


AnyChainBody = ChainBody | ChainGroupBody  # what an oracle's chain key signs for a payout


def payout_types(body: AnyChainBody) -> dict[str, list[dict[str, str]]]:
    """The EIP-712 types a payout body is signed under: a lone claim's or a group's."""
    return GROUP_PAYOUT_TYPES if isinstance(body, ChainGroupBody) else PAYOUT_TYPES


@dataclass(frozen=True)
class DeviceSlashBody:
    """What k oracles sign after checking both frames' device signatures themselves (the EVM cannot
    verify an Ed25519 frame signature): one (device, epoch, seq), two different frames, and the
    reporter the contract rewards (signed, so a copy of the certificate cannot name another)."""

    oracle_set_epoch: int
    device_id: bytes
    epoch: int
    seq: int
    first_frame: bytes  # frame_hash of each
    second_frame: bytes
    max_ts: int
    reporter: bytes  # 32 bytes: the FrameEquivocation's reporter

    @classmethod
    def of(cls, oracle_set_epoch: int, first: SignedFrame, second: SignedFrame, reporter: bytes) -> DeviceSlashBody:
        fa = first.frame
        return cls(oracle_set_epoch, fa.device_id, fa.epoch, fa.seq, frame_hash(first), frame_hash(second),
                   max(fa.ts_ms, second.frame.ts_ms), reporter)

    def message(self) -> dict[str, Any]:
        return {"oracleSetEpoch": self.oracle_set_epoch, "deviceId": self.device_id, "epoch": self.epoch,
                "seq": self.seq, "firstFrame": self.first_frame, "secondFrame": self.second_frame,
                "maxTs": self.max_ts, "reporter": self.reporter}

    def as_tuple(self) -> tuple[Any, ...]:
        m = self.message()
        return tuple(m[n] for n, _ in DEVICE_SLASH_FIELDS)


def frame_hash(signed: SignedFrame) -> bytes:
    """SHA-256 of a frame's encoding (its signature aside): the frames a DeviceSlash names."""
    return hashlib.sha256(signed.frame.encode()).digest()


def domain(chain_id: int, contract: str) -> dict[str, Any]:
    return {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": chain_id, "verifyingContract": contract}


def typed_message(types: dict[str, Any], message: dict[str, Any], chain_id: int, contract: str) -> SignableMessage:
    """The EIP-712 `message` of `types` in this pool's domain: what every chain key signs (a file
    key here, a token key in ledger/evm/chain_keys.py) and every recovery checks."""
    return encode_typed_data(domain_data=domain(chain_id, contract), message_types=types, message_data=message)


def recover_typed(types: dict[str, Any], message: dict[str, Any], chain_id: int, contract: str,
                  signature: bytes) -> str | None:
    """The address whose key made `signature` over the EIP-712 `message` of `types` in this pool's
    domain (None: malformed). The one recovery of every chain signature oracles exchange."""
    try:
        return str(Account.recover_message(typed_message(types, message, chain_id, contract), signature=signature))
    except Exception:  # noqa: BLE001 - eth_account raises several types on a malformed signature
        return None


@dataclass(frozen=True)
class ChainSignature:
    signer: str  # checksummed address
    signature: bytes  # 65 bytes r ‖ s ‖ v


class ChainKey:
    """An oracle's secp256k1 signing key for the chain. The key never leaves this object."""

    def __init__(self, private_key: bytes) -> None:
        self._account = Account.from_key(private_key)

    @classmethod
    def from_seed(cls, seed: bytes) -> ChainKey:
        return cls(hashlib.sha256(b"faultproof/evm-oracle-key/v1" + seed).digest())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ChainKey:
        """The chain key kept in its own key file (`faultproof keygen --out chain.key`: the same
        0600 file format and checks as an Ed25519 identity; the secp256k1 key derives from it)."""
        return cls.from_seed(Identity.load(path).seed)

    def __repr__(self) -> str:
        return f"ChainKey({self.address})"

    @property
    def address(self) -> str:
        return str(self._account.address)

    def sign_body(self, body: AnyChainBody, chain_id: int, contract: str) -> ChainSignature:
        """The EIP-712 signature of a payout body: a lone claim's `ChainBody` or a group's `ChainGroupBody`."""
        signed = Account.sign_message(typed_message(payout_types(body), body.message(), chain_id, contract),
                                      self._account.key)
        return ChainSignature(self.address, bytes(signed.signature))

    def sign_group_body(self, body: ChainGroupBody, chain_id: int, contract: str) -> ChainSignature:
        return self.sign_body(body, chain_id, contract)

    def sign_device_slash(self, body: DeviceSlashBody, chain_id: int, contract: str) -> ChainSignature:
        signed = Account.sign_message(typed_message(DEVICE_SLASH_TYPES, body.message(), chain_id, contract),
                                      self._account.key)
        return ChainSignature(self.address, bytes(signed.signature))

    def binding(self, identity: Identity) -> Binding:
        ed_sig = identity.sign(domain_tag(BINDING_NAME), bytes.fromhex(self.address[2:]))
        eth_sig = Account.sign_message(encode_defunct(primitive=domain_tag(BINDING_NAME) + identity.public_key),
                                       self._account.key).signature
        return Binding(identity.public_key, self.address, ed_sig, bytes(eth_sig))


@dataclass(frozen=True)
class Binding:
    """An oracle's Ed25519 id and chain address, each signed by the other's key."""

    oracle_id: bytes
    address: str
    ed25519_signature: bytes
    secp256k1_signature: bytes


def verify_binding(b: Binding) -> bool:
    tag = domain_tag(BINDING_NAME)
    if not ed25519_verify(tag, bytes.fromhex(b.address[2:]), b.ed25519_signature, b.oracle_id):
        return False
    try:
        got = Account.recover_message(encode_defunct(primitive=tag + b.oracle_id), signature=b.secp256k1_signature)
    except Exception:  # noqa: BLE001 - eth_account raises several types on a malformed signature
        return False
    return bool(got == b.address)
