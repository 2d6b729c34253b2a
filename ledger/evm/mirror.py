"""The pool contract's history as ledger entries, replayed through the one rule book (DESIGN §13).

Oracles and agents follow a ledger with `ledger.follower.LedgerFollower`, which replays signed
entries through `ledger.state`. A chain has events, not entries, so this file turns the pool's
confirmed events into the ledger transactions they stand for and applies each through
`ledger.state` (the rules the contract mirrors) in a `MirrorState`; the daemons then follow those
entries unchanged: their claim machine, quorum, pipeline checks and view are the same code on
both backends.

- **Mirror genesis** (`mirror_genesis`): derived from what the chain shows, so every follower
  builds the same one: nonce = H(tag, chain id, contract address), created_ms = 0, a ledger key
  and an admin key derived from the nonce (anyone can derive them: on a chain trust comes from the
  chain, not from these signatures; msg.sender authorised every admin call), the epoch-0 oracle
  set (the constructor's OraclesRotated Ed25519 ids and k), the contract's development flag, max
  skew and rotation grace, and max_backdate_ms at its maximum (the contract does not enforce S1).
  A pool is followable only if it was deployed with `ledgerId` = this genesis' id
  (`deploy_mirrored_pool` predicts the contract address to do so); otherwise `check_pool` says so.
- **Policy ids**: the contract numbers policies keccak(abi.encode(chainid, contract, n));
  `MirrorState.policy_id_for` gives the same id, every other rule is `LedgerState`'s.
- **Two facts that are not in events** travel after the ABI arguments of the transaction (the
  contract ignores trailing calldata; `tail`/`split_tail`: payload ‖ u32 length ‖ "FPM1"):
  `registerCircuit` carries the canonical `RegisterCircuit` (the verification key: the circuit id
  is its hash, so it checks itself), `payout` carries the Ed25519 signatures of the quorum
  certificate the completing oracle formed, so the payout replays through Q1–Q4 and P1–P8 with
  the same signatures the SQLite ledger would have checked (~16 gas a byte).
- A chain event the rules refuse (a rule the contract does not enforce, DESIGN §13) stops the
  mirror: `problem` names the block and the reason; nothing after it is mirrored (and
  `EvmSettlement.entries` answers UNAVAILABLE naming it).

Pure: events (with block time and, for two kinds, calldata) in, signed entries out. No I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_utils import keccak

from faultproof.encoding import pack, unpack
from faultproof.errors import FaultproofError
from faultproof.identity import Identity
from faultproof.messages import (
    AdminTx,
    Deposit,
    EnrolAgent,
    EnrolDevice,
    ExpirePolicy,
    Genesis,
    IssuePolicy,
    Message,
    PayoutBody,
    QcSignature,
    QuorumCertificate,
    RegisterCircuit,
    RevokeAgent,
    RevokeDevice,
    RotateOracles,
    SignedEntry,
    SignedHead,
    Withdraw,
)
from ledger.state import IntegrityError, LedgerState

MIRROR_TAG = b"faultproof/evm-mirror/v1"
TAIL_MAGIC = b"FPM1"
MAX_BACKDATE_MS = 2**47  # S1 is not enforced on chain: the mirror must accept any term start
TERMS_FIELDS = ("device_id", "beneficiary", "circuit_id", "kind", "threshold", "count", "lo", "hi", "gap_ms",
                "start_ms", "end_ms", "period_ms", "claim_window_ms", "coverage", "amount", "premium")


def mirror_seed(chain_id: int, contract: str) -> bytes:
    return hashlib.sha256(MIRROR_TAG + chain_id.to_bytes(32, "big") + bytes.fromhex(contract[2:])).digest()


def mirror_keys(seed: bytes) -> tuple[Identity, Identity]:
    """(ledger key, admin key) of a mirror: derived from its nonce, public to anyone."""
    return (Identity.from_seed(hashlib.sha256(seed + b"/ledger").digest()),
            Identity.from_seed(hashlib.sha256(seed + b"/admin").digest()))


def mirror_genesis(chain_id: int, contract: str, oracles: Sequence[bytes], threshold: int, development: bool,
                   max_skew_ms: int, rotation_grace_ms: int) -> Genesis:
    seed = mirror_seed(chain_id, contract)
    ledger, admin = mirror_keys(seed)
    return Genesis(nonce=seed, created_ms=0, ledger_key=ledger.public_key, admin=admin.public_key,
                   oracles=tuple(oracles), threshold=threshold, development=int(development),
                   max_skew_ms=max_skew_ms, rotation_grace_ms=rotation_grace_ms, max_backdate_ms=MAX_BACKDATE_MS)


def chain_policy_id(chain_id: int, contract: str, n: int) -> bytes:
    """The contract's id of its n-th policy: keccak256(abi.encode(chainid, address(this), n))."""
    return bytes(keccak(chain_id.to_bytes(32, "big") + bytes(12) + bytes.fromhex(contract[2:]) + n.to_bytes(32, "big")))


class MirrorState(LedgerState):
    """`LedgerState` with the contract's policy ids. `chain` = (chain id, contract address)."""

    chain: tuple[int, str] = (0, "0x" + "00" * 20)

    def policy_id_for(self, tx: AdminTx) -> bytes:
        return chain_policy_id(self.chain[0], self.chain[1], len(self.policies) + 1)


def mirror_state_factory(chain_id: int, contract: str) -> Callable[[SignedEntry], LedgerState]:
    """How a follower starts its view of this pool's mirror (refuses any other genesis)."""

    def start(signed: SignedEntry) -> LedgerState:
        state = MirrorState.from_genesis_entry(signed)
        assert isinstance(state, MirrorState)
        if not isinstance(signed.entry.tx, Genesis) or signed.entry.tx.nonce != mirror_seed(chain_id, contract):
            raise IntegrityError(0, f"not the mirror genesis of {contract} on chain {chain_id}")
        state.chain = (chain_id, contract)
        return state

    return start


# ----------------------------------------------------------------------------- calldata tails


def tail(payload: bytes) -> bytes:
    return payload + len(payload).to_bytes(4, "big") + TAIL_MAGIC


def split_tail(data: bytes) -> tuple[bytes, bytes | None]:
    """(ABI calldata, payload) of a transaction's input; payload None when it has no tail."""
    if len(data) < 8 or data[-4:] != TAIL_MAGIC:
        return data, None
    n = int.from_bytes(data[-8:-4], "big")
    if n > len(data) - 8:
        return data, None
    return data[: len(data) - 8 - n], data[len(data) - 8 - n : -8]


def qc_tail(signatures: Sequence[QcSignature]) -> bytes:
    """The Ed25519 signatures of a payout's QC, sent after its ABI arguments."""
    return tail(pack([[s.oracle_id, s.signature] for s in signatures]))


def circuit_tail(register: RegisterCircuit) -> bytes:
    return tail(register.encode())


def _signatures(payload: bytes) -> tuple[QcSignature, ...]:
    items = unpack(payload)
    if not isinstance(items, list):
        raise ValueError("the payout tail is not a list of signatures")
    return tuple(QcSignature(oracle_id=bytes(i[0]), signature=bytes(i[1])) for i in items)


# ----------------------------------------------------------------------------- the fold


@dataclass(frozen=True)
class MirrorEvent:
    """One pool event as the mirror needs it: name, args, block, block time, and the input of the
    transaction that emitted it (only for CircuitRegistered and Paid; None otherwise)."""

    name: str
    args: dict[str, Any]
    block: int
    time_ms: int
    calldata: bytes | None = None


NEEDS_CALLDATA = frozenset({"CircuitRegistered", "Paid"})
PayoutDecoder = Callable[[bytes], tuple[Any, ...]]  # ABI calldata -> the payout's body tuple


@dataclass
class ChainMirror:
    """Turns the pool's events into signed entries replayed through `ledger.state` (see the module
    docstring). `decode_payout` decodes a payout call's ABI arguments (the contract's ABI)."""

    genesis: Genesis
    chain_id: int
    contract: str
    decode_payout: PayoutDecoder
    entries: list[SignedEntry] = field(default_factory=list)
    bindings: dict[int, dict[bytes, str]] = field(default_factory=dict)  # epoch -> ed25519 id -> address
    problem: str | None = None

    def __post_init__(self) -> None:
        self._ledger, self._admin = mirror_keys(self.genesis.nonce)
        start = mirror_state_factory(self.chain_id, self.contract)
        first = LedgerState(self.genesis).genesis_entry().sign(self._ledger)
        self.state = start(first)
        self.entries.append(first)

    @property
    def height(self) -> int:
        return self.state.height

    def signed_head(self) -> SignedHead:
        s = self.state
        return SignedHead.make(self._ledger, s.ledger_id, s.height, s.head_hash, s.time_ms)

    def apply(self, ev: MirrorEvent) -> SignedEntry | None:
        """Mirror one event (in chain order). None: nothing to mirror, or the mirror stopped."""
        if self.problem is not None:
            return None
        if ev.name == "OraclesRotated":
            self.bindings[int(ev.args["epoch"])] = {bytes(e): str(a) for e, a in
                                                    zip(ev.args["ed25519Ids"], ev.args["signers"], strict=True)}
            if int(ev.args["epoch"]) == 0:
                return None  # the genesis
        try:
            tx = self.translate(ev)
            if tx is None:
                return None
            effect, entry = self.state.apply(tx, max(ev.time_ms, self.state.time_ms))
        except (FaultproofError, ValueError, KeyError, TypeError) as e:
            self.problem = f"block {ev.block}: the chain's {ev.name} does not replay through the rules: {e}"
            return None
        if entry is None:
            return None
        if ev.name == "PolicyIssued" and effect.policy_id != bytes(ev.args["policyId"]):
            self.problem = f"block {ev.block}: policy id {effect.policy_id!r} is not the chain's"
        signed = entry.sign(self._ledger)
        self.entries.append(signed)
        return signed

    def _admin_tx(self, args: Message) -> Message:
        return AdminTx.make(self.state.ledger_id, self.state.admin_nonce + 1, args).sign(self._admin)

    def translate(self, ev: MirrorEvent) -> Message | None:  # noqa: C901 - one branch per event
        a = ev.args
        if ev.name == "OraclesRotated":
            return self._admin_tx(RotateOracles(members=tuple(bytes(e) for e in a["ed25519Ids"]),
                                                threshold=int(a["threshold"])))
        if ev.name == "CircuitRegistered":
            _abi, payload = split_tail(ev.calldata or b"")
            if payload is None:
                raise ValueError("registerCircuit was sent without its verification key after the arguments "
                                 "(register circuits with faultproof's tooling: ledger.evm.mirror.circuit_tail)")
            reg = RegisterCircuit.decode(payload)
            if (reg.circuit_id != bytes(a["circuitId"]) or reg.n != int(a["n"])
                    or reg.transcript_hash != bytes(a["transcriptHash"]) or bool(reg.production) != bool(a["production"])):
                raise ValueError("the verification key after registerCircuit is not the registered circuit's")
            return self._admin_tx(reg)
        if ev.name == "DeviceEnrolled":
            return self._admin_tx(EnrolDevice(device_id=bytes(a["deviceId"]), epoch=int(a["epoch"]),
                                              anchor=bytes(a["anchor"]), firmware_hash=bytes(a["firmwareHash"])))
        if ev.name == "DeviceRevocation":
            return self._admin_tx(RevokeDevice(device_id=bytes(a["deviceId"])))
        if ev.name == "AgentEnrolled":
            return self._admin_tx(EnrolAgent(agent_id=bytes(a["agentId"])))
        if ev.name == "AgentRevoked":
            return self._admin_tx(RevokeAgent(agent_id=bytes(a["agentId"])))
        if ev.name == "Deposited":
            return self._admin_tx(Deposit(amount=int(a["amount"])))
        if ev.name == "Withdrawn":
            return self._admin_tx(Withdraw(amount=int(a["amount"])))
        if ev.name == "PolicyIssued":
            terms = a["terms"]
            values = [terms[k] for k in ("deviceId", "beneficiary", "circuitId", "kind", "threshold", "count", "lo",
                                         "hi", "gapMs", "startMs", "endMs", "periodMs", "claimWindowMs", "coverage",
                                         "amount", "premium")] if isinstance(terms, Mapping) else list(terms)
            fields: dict[str, Any] = {k: (bytes(v) if isinstance(v, bytes | bytearray) else int(v))
                                      for k, v in zip(TERMS_FIELDS, values, strict=True)}
            return self._admin_tx(IssuePolicy(**fields))
        if ev.name == "PolicyExpired":
            return ExpirePolicy(policy_id=bytes(a["policyId"]))
        if ev.name == "Paid":
            return self._payout(ev)
        return None  # AdminRotated: msg.sender is the chain's business; the mirror's admin stays

    def _payout(self, ev: MirrorEvent) -> QuorumCertificate:
        abi, payload = split_tail(ev.calldata or b"")
        if payload is None:
            raise ValueError("the payout was sent without its Ed25519 quorum signatures after the arguments "
                             "(oracles post with ledger.evm.mirror.qc_tail)")
        b = self.decode_payout(abi)
        body = PayoutBody(ledger_id=bytes(b[0]), oracle_set_epoch=int(b[1]), claim_id=bytes(b[2]),
                          policy_id=bytes(b[3]), device_id=bytes(b[4]), epoch=int(b[5]), start_seq=int(b[6]),
                          end_seq=int(b[7]), start_ts=int(b[8]), end_ts=int(b[9]), circuit_id=bytes(b[10]),
                          beneficiary=bytes(b[11]), amount=int(b[12]), end_chain=int(b[14]).to_bytes(32, "big"))
        if body.claim_id != bytes(ev.args["claimId"]):
            raise ValueError("the payout's calldata is for another claim than its Paid event")
        return QuorumCertificate(body=body, signatures=_signatures(payload))
