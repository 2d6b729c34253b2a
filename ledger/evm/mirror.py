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
- **The economic events (§14)** map to the ledger transactions they stand for and replay through
  the same rules: EconParamsSet -> set_econ_params, BondPosted -> post_bond, UnbondRequested /
  BondReleased -> unbond steps 1 / 2, PolicyIssued followed in its transaction by EconPolicyTerms
  -> issue_econ_policy (`apply_all` pairs them: a poll returns whole blocks). Two facts are taken
  on the chain's word, each through one narrow `MirrorState` hook, because the chain's evidence is
  not something these rules can check: a slash (`Slashed` -> `ChainSlash`: the chain checked ECDSA
  votes or a k-oracle DeviceSlash certificate; the mirror recomputes the amounts from its own
  bonds with the rules' `_slash` and stops if the chain's differ; the slash's own
  DeviceRevocation is then nothing), and a group payout's quorum (`Paid` + `GroupPaid` -> a
  GroupQuorumCertificate without Ed25519 signatures, which are not on chain: Q3's epoch, Q2, Q4,
  C1-C3 and P1-P8 are checked as for any group payout, and the amount paid must be the chain's).
- A chain event the rules refuse (a rule the contract does not enforce, DESIGN §13) stops the
  mirror: `problem` names the block and the reason; nothing after it is mirrored (and
  `EvmSettlement.entries` answers UNAVAILABLE naming it).

Pure: events (with block time and, for two kinds, calldata) in, signed entries out. No I/O. What
it must never do: decide a rule itself (an event that does not replay stops it), or accept a
chain-only transaction outside a mirror (`LedgerState` refuses a ChainSlash).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_utils import keccak

from faultproof.encoding import pack, unpack
from faultproof.errors import FaultproofError, Reason
from faultproof.identity import Identity
from faultproof.messages import (
    AdminTx,
    BondHolder,
    ChainEvidence,
    ChainSlash,
    ContradictingApprove,
    CorroboratingWindow,
    Deposit,
    EconParams,
    EconPolicy,
    EnrolAgent,
    EnrolDevice,
    ExpirePolicy,
    FrameEquivocation,
    Genesis,
    GroupPayoutBody,
    GroupQuorumCertificate,
    IssuePolicy,
    Message,
    PayoutBody,
    PostBond,
    QcSignature,
    QuorumCertificate,
    RegisterCircuit,
    RevokeAgent,
    RevokeDevice,
    RotateOracles,
    SignedEntry,
    SignedHead,
    Unbond,
    UnbondStep,
    VoteEquivocation,
    Withdraw,
)
from ledger import economics
from ledger.state import Effect, IntegrityError, LedgerState

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


EVIDENCE_NAMES = {ChainEvidence.VOTES: VoteEquivocation.NAME, ChainEvidence.APPROVE: ContradictingApprove.NAME,
                  ChainEvidence.FRAMES: FrameEquivocation.NAME}


class MirrorState(LedgerState):
    """`LedgerState` with the contract's policy ids and the two facts it takes on the chain's word
    (DESIGN §13): that a group payout's ECDSA quorum verified (`group_qc_rejection`: a mirrored
    GroupQuorumCertificate carries no Ed25519 signatures; its epoch is still checked), and that a
    slash's evidence was valid (`check_chain_slash`: the amounts are recomputed from the mirror's
    own bonds by `_slash`). `chain` = (chain id, contract address)."""

    chain: tuple[int, str] = (0, "0x" + "00" * 20)

    def policy_id_for(self, tx: AdminTx) -> bytes:
        return chain_policy_id(self.chain[0], self.chain[1], len(self.policies) + 1)

    def group_qc_rejection(self, qc: GroupQuorumCertificate, now_ms: int) -> Reason | None:
        if qc.signatures:
            return super().group_qc_rejection(qc, now_ms)
        # the contract checked k ECDSA signatures of this epoch's bound chain keys: only the epoch here
        return Reason.QC_STALE_EPOCH if self.oracle_set_for(qc.body.oracle_set_epoch, now_ms) is None else None

    def check_chain_slash(self, tx: ChainSlash, now: int) -> Effect:
        params = self._require_econ()
        try:
            kind, evidence = BondHolder(tx.holder_kind), ChainEvidence(tx.evidence)
        except ValueError:
            raise FaultproofError(Reason.INVALID_PARAMETERS, "unknown bond kind or evidence kind") from None
        if (kind is BondHolder.DEVICE) != (evidence is ChainEvidence.FRAMES):
            raise FaultproofError(Reason.EVIDENCE_INVALID, f"{evidence.name} evidence does not slash a {kind.name}")
        if kind is BondHolder.DEVICE:
            if tx.offender not in self.devices:
                raise FaultproofError(Reason.NOT_FOUND, "the device is not enrolled")
            if tx.offender in self.econ.slashed_devices:
                raise FaultproofError(Reason.EVIDENCE_DUPLICATE, "the device was already slashed")
        elif tx.offender in self.econ.slashed_oracles:
            raise FaultproofError(Reason.EVIDENCE_DUPLICATE, "the oracle was already slashed")
        bond = self.econ.bond(kind, tx.offender)
        amount = 0 if bond is None else bond.amount
        split = economics.slash_split(amount, params.reporter_share_bps)
        if (amount, *split) != (tx.amount, tx.to_reporter, tx.to_pool):
            raise FaultproofError(Reason.INVALID_PARAMETERS,
                                  f"the chain slashed {tx.amount} ({tx.to_reporter} to the reporter), the mirror's "
                                  f"bond is {amount} ({split[0]} to the reporter)")
        return self._slash(tx, kind, tx.offender, tx.reporter, params, now, evidence=EVIDENCE_NAMES[evidence])


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
# Two events of one transaction that make one ledger transaction (issueEconPolicy): PolicyIssued
# then, when the policy has a group or a staging cost, EconPolicyTerms. A poll returns whole blocks,
# so both always arrive in one `apply_all` batch.
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
    _group_paid: dict[str, Any] | None = None  # the Paid event of a group payout, until its GroupPaid

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

    def apply_all(self, events: Sequence[MirrorEvent]) -> list[SignedEntry]:
        """Mirror a batch of events in chain order (whole blocks: a poll's result), pairing a
        PolicyIssued with the EconPolicyTerms its transaction emitted after it."""
        out: list[SignedEntry] = []
        skip = False
        for i, ev in enumerate(events):
            if skip:
                skip = False
                continue
            nxt = events[i + 1] if i + 1 < len(events) else None
            terms = None
            if ev.name == "PolicyIssued" and nxt is not None and nxt.name == "EconPolicyTerms" and \
                    bytes(nxt.args["policyId"]) == bytes(ev.args["policyId"]):
                terms, skip = nxt, True
            signed = self.apply(ev, econ_terms=terms)
            if signed is not None:
                out.append(signed)
        return out

    def apply(self, ev: MirrorEvent, econ_terms: MirrorEvent | None = None) -> SignedEntry | None:
        """Mirror one event (in chain order). None: nothing to mirror, or the mirror stopped.
        `econ_terms`: the EconPolicyTerms event that followed a PolicyIssued in its transaction."""
        if self.problem is not None:
            return None
        if ev.name == "OraclesRotated":
            self.bindings[int(ev.args["epoch"])] = {bytes(e): str(a) for e, a in
                                                    zip(ev.args["ed25519Ids"], ev.args["signers"], strict=True)}
            if int(ev.args["epoch"]) == 0:
                return None  # the genesis
        try:
            tx = self.translate(ev, econ_terms)
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

    def translate(self, ev: MirrorEvent,  # noqa: C901 - one branch per event
                  econ_terms: MirrorEvent | None = None) -> Message | None:
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
            if bytes(a["deviceId"]) in self.state.econ.slashed_devices:
                return None  # the revocation a device slash makes (its Slashed event came first)
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
            issue = IssuePolicy(**fields)
            if econ_terms is None:  # issuePolicy, or issueEconPolicy with m = 1 and no staging cost: the same
                return self._admin_tx(issue)
            e = econ_terms.args
            return self._admin_tx(EconPolicy(terms=issue, staging_cost=int(e["stagingCost"]),
                                             group=tuple(bytes(d) for d in e["group"]),
                                             min_proofs=int(e["minProofs"]),
                                             overlap_tolerance_ms=int(e["overlapToleranceMs"])))
        if ev.name == "EconPolicyTerms":
            raise ValueError("EconPolicyTerms without the PolicyIssued of its transaction before it")
        if ev.name == "PolicyExpired":
            return ExpirePolicy(policy_id=bytes(a["policyId"]))
        if ev.name == "Paid":
            if self.state.econ.group_of(bytes(a["policyId"])):
                self._group_paid = a  # a corroborated policy pays only groupPayout: its GroupPaid follows
                return None
            return self._payout(ev)
        if ev.name == "GroupPaid":
            return self._group_payout(ev)
        if ev.name == "EconParamsSet":
            return self._admin_tx(EconParams(min_oracle_bond=int(a["minOracleBond"]),
                                             max_staging_cost=int(a["maxStagingCost"]),
                                             reporter_share_bps=int(a["reporterShareBps"]),
                                             unlock_delay_ms=int(a["unlockDelayMs"])))
        if ev.name == "BondPosted":
            return self._admin_tx(PostBond(holder_kind=int(a["kind"]), holder_id=bytes(a["holderId"]),
                                           amount=int(a["amount"])))
        if ev.name in ("UnbondRequested", "BondReleased"):
            step = UnbondStep.REQUEST if ev.name == "UnbondRequested" else UnbondStep.RELEASE
            return self._admin_tx(Unbond(holder_kind=int(a["kind"]), holder_id=bytes(a["holderId"]), step=int(step)))
        if ev.name == "Slashed":
            return ChainSlash(holder_kind=int(a["kind"]), offender=bytes(a["offender"]), reporter=bytes(a["reporter"]),
                              evidence=int(a["evidence"]), amount=int(a["amount"]), to_reporter=int(a["toReporter"]),
                              to_pool=int(a["toPool"]))
        return None  # AdminRotated: msg.sender is the chain's business; the mirror's admin stays

    def _group_payout(self, ev: MirrorEvent) -> GroupQuorumCertificate:
        """A corroborated payout from its two events (Paid, then GroupPaid): the body the contract
        checked (windows from GroupPaid, epoch from Paid, circuit, beneficiary and amount the
        policy's, which the contract required), with no Ed25519 signatures (MirrorState)."""
        paid, a = self._group_paid, ev.args
        self._group_paid = None
        if paid is None or bytes(paid["claimId"]) != bytes(a["claimId"]):
            raise ValueError("GroupPaid without the Paid event of its transaction before it")
        pid = bytes(a["policyId"])
        policy = self.state.policies[pid]
        t = policy.terms
        if int(paid["amount"]) != min(t.amount, policy.locked):
            raise ValueError(f"the chain paid {paid['amount']}, the rules would pay {min(t.amount, policy.locked)}")
        windows = []
        for w in a["windows"]:
            f = w if isinstance(w, Mapping) else dict(zip(("deviceId", "agentId", "epoch", "startSeq", "endSeq",
                                                              "startTs", "endTs", "cStart", "cEnd"), w, strict=True))
            windows.append(CorroboratingWindow(device_id=bytes(f["deviceId"]), agent_id=bytes(f["agentId"]),
                                               epoch=int(f["epoch"]), start_seq=int(f["startSeq"]),
                                               end_seq=int(f["endSeq"]), start_ts=int(f["startTs"]),
                                               end_ts=int(f["endTs"]), end_chain=int(f["cEnd"]).to_bytes(32, "big")))
        body = GroupPayoutBody(ledger_id=self.state.ledger_id, oracle_set_epoch=int(paid["oracleSetEpoch"]),
                               claim_id=bytes(a["claimId"]), policy_id=pid, windows=tuple(windows),
                               circuit_id=t.circuit_id, beneficiary=t.beneficiary, amount=t.amount)
        return GroupQuorumCertificate(body=body, signatures=())

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
