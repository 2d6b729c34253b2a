"""The insurance pool ledger's rules: one pure state machine (DESIGN §5, §6).

Everything that decides whether a transaction is accepted, and what it does to the pool, lives in
this file. It does no I/O: no clock, no files, no network. The ledger service applies a transaction
through it whether it came over HTTP, from a replay of its own database or from a test, and an
oracle replays the ledger's signed entries through the very same class to keep an identical view.
An entry carries its `time_ms`, so `apply_entry` is deterministic; nothing here reads the wall clock.

The rules (each refusal is a `FaultproofError` whose reason is a LEDGER_TX or LEDGER_STATE code):

Genesis
  G1  The oracle set is non-empty, its members distinct and ⌊n/2⌋+1 ≤ k ≤ n   (INVALID_ORACLE_SET).
Admin transactions (SignedAdminTx)
  A1  tx.ledger_id is this ledger's id                                       (WRONG_LEDGER).
  A2  the signature verifies under the current admin key; a signature by a former admin, an oracle
      or the ledger key is NOT_ADMIN, anything else BAD_ADMIN_SIGNATURE.
  A3  the nonce is exactly the last admin nonce + 1 (replays and skips refused) (BAD_NONCE).
      The arguments are of the type the kind takes (WRONG_TYPE; the decoder refuses a mismatch first).
  A4  register_circuit: new id (ALREADY_EXISTS); n ≥ 1 and a non-empty key (INVALID_PARAMETERS);
      a development circuit (production = 0, or a zero transcript hash) only on a ledger whose
      genesis says development                              (DEVELOPMENT_CIRCUIT_ON_PRODUCTION).
  A5  enrol_device: a new device, or a higher epoch of an enrolled one (a re-anchor) (ALREADY_EXISTS);
      a revoked device never comes back (INVALID_STATE_TRANSITION). Same for agents (no epochs).
  A6  revoke_device / revoke_agent: known (NOT_FOUND), not yet revoked (INVALID_STATE_TRANSITION).
      Revocation is recorded at the ledger time of the transaction and is never retroactive (P3).
  A7  deposit: amount > 0, the pool stays below 2^62 (INVALID_PARAMETERS); external -> free.
  A8  withdraw: 0 < amount ≤ free capital (locked capital is never withdrawable)
      (INVALID_PARAMETERS, INSUFFICIENT_FREE_CAPITAL); free -> external.
  A9  issue_policy: device enrolled, circuit registered (NOT_FOUND); device not revoked
      (DEVICE_REVOKED); development circuit only on a development ledger (as A4); trigger parameters
      valid for the circuit's n (faultproof.zk.params.validate_parameters: 1 ≤ K ≤ n, K ≥ 2 for
      stuck, G ≥ 2 for dropout, lo ≤ hi, unused parameters 0), start < end, the term not already over,
      0 < amount ≤ coverage, period > 0 (INVALID_PARAMETERS); no other policy of the device that is
      not closed (ACTIVE_POLICY_EXISTS); coverage ≤ free capital (INSUFFICIENT_FREE_CAPITAL).
      Coverage moves free -> locked[policy]; the premium external -> premiums.
      policy_id = messages.policy_id(tx).
  A10 rotate_oracles: as G1; the epoch goes up by one, the old set is kept with its rotation time.
  A11 rotate_admin: a different key (INVALID_PARAMETERS); the nonce sequence continues.
Payouts (QuorumCertificate)
  Q1  body.ledger_id is this ledger's                                        (WRONG_LEDGER).
  Q2  idempotent by claim_id: a claim already paid with the same body (the oracle-set epoch aside:
      a set rotated since may re-certify the same incident) returns the existing entry and writes
      nothing; a different body is CLAIM_CONFLICT.
  Q3  the epoch is the current oracle-set epoch, or the previous one within rotation_grace_ms of
      the rotation (QC_STALE_EPOCH); no signer twice (QC_DUPLICATE_SIGNER), every signer a member
      of that epoch's set (QC_NON_MEMBER), every signature valid over this body (QC_BAD_SIGNATURE),
      at least k of them (QC_INSUFFICIENT_SIGNATURES). A QC with any bad entry is refused whole.
  Q4  the policy exists (NOT_FOUND) and the body matches it and the ledger: device, circuit,
      beneficiary, amount, claim_id = messages.claim_id(...), end_seq − start_seq = circuit n,
      start_ts < end_ts, an epoch the device was enrolled with                (PAYOUT_MISMATCH).
  P1..P8 the ledger-state rules, `payout_rejection`: policy active at the ledger time
      (POLICY_NOT_ACTIVE); window inside the term (OUTSIDE_POLICY_TERM); device not revoked at or
      before the window's end (DEVICE_REVOKED); window (start_ts, end_ts] overlaps no paid window
      (WINDOW_OVERLAP); no payout yet in the same period, periods counted in period_ms from the
      term start by the window's end_ts (PERIOD_LIMIT); coverage left (COVERAGE_EXHAUSTED);
      now ≤ end_ts + claim_window_ms (CLAIM_WINDOW_CLOSED); end_ts ≤ now + max_skew_ms
      (END_TS_IN_FUTURE).
  Pays min(amount, lock left): locked[policy] -> paid. The entry records what was paid.
Ledger soundness (DESIGN §11; the functions in the "ledger soundness" block at the end)
  S1  issue_policy: the term may not start before the ledger's now minus max_skew_ms (and the
      genesis' max_backdate_ms, 0 in production), so a new policy never covers frames the device
      already sent                                               (TERM_STARTS_IN_PAST).
  S2  a window overlaps no window paid for the same device under ANY of its policies: neither in
      frame time (start_ts, end_ts] nor, within one epoch, in seq (start_seq, end_seq]
      (WINDOW_OVERLAP), so a second policy cannot pay the same incident again.
  S3  anchor (SignedAnchor, an enrolled agent): the body is for this ledger (WRONG_LEDGER); the
      agent is enrolled and not revoked (UNKNOWN_AGENT); its signature verifies
      (BAD_AGENT_SIGNATURE); its round is above the agent's last (ANCHOR_STALE); 1..240 heads,
      sorted strictly by (device, epoch, seq) (INVALID_PARAMETERS); root = Merkle root of the
      heads (ANCHOR_BAD_ROOT); every device enrolled (NOT_FOUND), not revoked (DEVICE_REVOKED),
      with an epoch it was enrolled with and a time ≤ now + max_skew_ms (INVALID_PARAMETERS); a
      (device, epoch, seq) already anchored keeps its ts and chain (ANCHOR_CONFLICT).
  S4  payout: a window whose end (epoch, end_seq) was anchored must carry the anchored ts and
      chain (ANCHOR_MISMATCH); once the device is revoked, only windows whose end was anchored
      are paid (REVOKED_WINDOW_NOT_ANCHORED): a leaked key can sign a window dated before the
      revocation, but not one whose end chain value the agent anchored from the real device.
Expiry (ExpirePolicy, anyone)
  E1  the policy exists (NOT_FOUND), is not closed (INVALID_STATE_TRANSITION) and is expired, i.e.
      now > end_ms + claim_window_ms (EXPIRY_TOO_EARLY). The unused lock returns to free capital,
      the premium is earned (premiums -> free), and the policy is closed.
Policy lifecycle (explicit, guarded; `PolicyStatus`)
  issued --(ledger time reaches start_ms)--> active --(ledger time passes end_ms + claim window)-->
  expired --(expire tx)--> closed. The two timed transitions are taken when a transaction touches
  the policy, and `status_at(now)` reports them for lookups, so both views always agree.
Money
  Integers in the smallest unit, double-entry: every movement is a `Transfer` between two accounts
  (external, free, premiums, paid, locked:<policy_id hex>), so the sum over all accounts is always
  zero, and the pool total (everything but external) changes only by deposit, withdraw and premium.
Clock
  The ledger's time never goes backwards: `apply` refuses now_ms below the last entry's time.

Economic security (DESIGN §14; the arithmetic in ledger/economics.py, the block at the end of
LedgerState applies it)
  EC1 set_econ_params switches the rules on: every current oracle holds min_oracle_bond
      (INSUFFICIENT_BOND); reporter share <= 100 %, unlock delay > 0 (INVALID_PARAMETERS).
  EC2 post_bond external -> bond:<kind>:<id>; rotate_oracles needs bonded, never-slashed members
      (INSUFFICIENT_BOND, SLASHED_MEMBER).
  EC3 unbond: a request is refused while the bond is in use (BOND_IN_USE); the release pays it back
      only unlock_delay_ms after the request (BOND_LOCKED).
  EC4/EC5 issue_policy / issue_econ_policy: every covered device bonded (INSUFFICIENT_BOND), the
      claim window < unlock delay, and the payout per period
      below the cheapest attack (m device bonds + m x capped staging cost, or k oracle bonds)
      (ECONOMICALLY_UNSOUND).
  S1..S3 slashing evidence (vote equivocation, contradicting approve, double-signed frames), from
      anyone: EVIDENCE_INVALID / EVIDENCE_DUPLICATE / EVIDENCE_STALE; the whole bond, the reporter's
      share to `rewards`, the rest to free; a slashed device is revoked and none of its unpaid
      claims is paid (DEVICE_REVOKED, also in payout_rejection).
  C1..C3 a corroborated policy pays a GroupQuorumCertificate once: >= m windows
      (CORROBORATION_TOO_FEW), distinct agents (CORROBORATION_SAME_AGENT), overlapping within the
      tolerance (CORROBORATION_NO_OVERLAP), then Q1..Q4 and P1..P8 on the group's span.
Hardware identity, attestation allowlist and lockdown (DESIGN §15; the block at the end of this file)
  H1  enrol_device_key: as A5, plus a key of a known type (INVALID_PARAMETERS), of that type's
      length (WRONG_KEY_TYPE), valid, and whose key id is the device_id (INVALID_PARAMETERS).
  H2  set_measurement: a known component; allow a digest not allowed now (ALREADY_EXISTS), deny
      one that is (NOT_FOUND). Never retroactive.
  H3  suspension certificate (anyone submits): as Q1/Q3 over a SuspendBody (WRONG_LEDGER, QC_*);
      the device is enrolled (NOT_FOUND) and not suspended now (INVALID_STATE_TRANSITION); since_ms
      not after now + max_skew_ms (INVALID_PARAMETERS).
  H4  set_lockdown: breaker share_bps <= 10000 and a window > 0 when on (INVALID_PARAMETERS).
  H5  lift: resume payouts only when paused, reinstate only a suspended device
      (INVALID_STATE_TRANSITION); any other target INVALID_PARAMETERS.
  H6  device evidence (anyone submits, signed by the device): the device is enrolled (NOT_FOUND),
      not revoked (DEVICE_REVOKED), evidence of its current epoch (WRONG_EPOCH), signed by its
      enrolled key (BAD_ATTESTATION_SIGNATURE); the nonce is the hash of one of the last
      EVIDENCE_NONCE_ENTRIES entries (ATTESTATION_REPLAYED) at most EVIDENCE_FRESH_MS old unless it
      is the head (ATTESTATION_STALE), at a greater height than the device's previous evidence
      (ATTESTATION_REPLAYED). Accepted evidence records a result: passed iff its measurements
      pass the allowlist (faultproof.attestation.measurement_failure). A failed result is recorded,
      not refused. A result is dated by its nonce's entry time.
  H7  rotate_device_key: the device is enrolled (NOT_FOUND) and not revoked
      (INVALID_STATE_TRANSITION); the new key as in H1 and not the current one, effective now or
      later and after the previous rotation, endorsed by the current key over rotation_message
      (INVALID_PARAMETERS). The device_id stays; frames with ts_ms >= effective_ms verify under
      the new key, earlier ones under the old (device_key(state, id, at_ms)).
  H8  bind_transport_key: the principal is an enrolled, unrevoked agent or a current oracle
      (NOT_FOUND); the transport key differs from it and the principal signed
      transport_binding_message (INVALID_PARAMETERS). Gossip gates admit the bound key in the
      principal's place (gossip_senders); no ledger rule trusts a transport key.
  H9  transfer_device: the device is enrolled (NOT_FOUND) and not revoked (DEVICE_REVOKED), the
      receiving agent is enrolled (UNKNOWN_AGENT) and not already its custodian
      (INVALID_STATE_TRANSITION). From the entry on, an anchor naming the device from any other
      agent is refused (DEVICE_NOT_IN_CUSTODY), and oracles refuse such an agent's claims for it
      (custody_rejection, in the oracle's content checks).
  H10 enrol_gateway_key: the agent is enrolled (UNKNOWN_AGENT), the AK an uncompressed P-256 point
      (INVALID_PARAMETERS). A gateway quote (anyone submits): its agent enrolled (UNKNOWN_AGENT)
      with an AK pinned (NOT_FOUND); structure, that AK, signature and selection sha256:16,23
      (BAD_QUOTE); its nonce (extraData) a recent entry hash as in H6 (ATTESTATION_REPLAYED,
      ATTESTATION_STALE). Recorded as passed iff its PCR digest is on the allowlist (component 4);
      a failed result is recorded, not refused.
  H11 decommission_device (round 3): the device is enrolled (NOT_FOUND) and not decommissioned
      already (INVALID_STATE_TRANSITION); the head it names is the device's last anchored head
      (all zero when none was ever anchored), else ANCHOR_MISMATCH. One entry then closes every
      policy on the device alone that is not closed (coverage back to free, premium earned, like
      an expiry), revokes the device (if it was not) and records the decommission; the final
      head's anchor entry joins the device's history. A decommissioned device is never paid
      (P0 in payout_rejection: DEVICE_DECOMMISSIONED, for any window, before or after the head).
  P9  (payout_rejection) new payouts are refused while the breaker is tripped (PAYOUTS_PAUSED), and
      a window that overlaps a suspension [since_ms, lifted) is refused (DEVICE_SUSPENDED); with
      attestation_max_age_ms > 0, a window not covered by a passing attestation is refused
      (faultproof.attestation.coverage_rejection: ATTESTATION_MISSING / _FAILED / _STALE).
  P10 a payout that brings the payouts of the rolling breaker window above share_bps of the capital
      (pool minus paid) is paid and trips the breaker.

What this file must never do: read a clock, touch a file or socket, log, or apply a different rule
to a transaction depending on where it came from.
"""

from __future__ import annotations

import bisect
import dataclasses
import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from faultproof.attestation import (
    GATEWAY_QUOTE_PCRS,
    Component,
    Result,
    coverage_rejection,
    evidence_signed_by,
    measurement_failure,
    parse_quote,
    verify_quote,
)
from faultproof.encoding import hash_id
from faultproof.errors import FaultproofError, Reason
from faultproof.identity import domain_tag
from faultproof.identity import verify as ed25519_verify
from faultproof.merkle import merkle_root
from faultproof.messages import (
    ECON_TX_TYPES,
    AdminKind,
    AdminTx,
    Approve,
    BindTransportKey,
    BondHolder,
    ChainSlash,
    ContradictingApprove,
    CorroboratingWindow,
    DecommissionDevice,
    Deposit,
    EconParams,
    EconPolicy,
    EnrolAgent,
    EnrolDevice,
    EnrolDeviceKey,
    EnrolGatewayKey,
    ExpirePolicy,
    Frame,
    FrameEquivocation,
    GatewayQuote,
    Genesis,
    GroupPayoutBody,
    GroupQuorumCertificate,
    IssuePolicy,
    LedgerEntry,
    Lift,
    LiftTarget,
    Message,
    PayoutBody,
    PostBond,
    QcSignature,
    QuorumCertificate,
    RegisterCircuit,
    Reject,
    RevokeAgent,
    RevokeDevice,
    RotateAdmin,
    RotateDeviceKey,
    RotateOracles,
    SetLockdown,
    SetMeasurement,
    SignedAdminTx,
    SignedAnchor,
    SignedEntry,
    SignedEvidence,
    SuspendBody,
    SuspensionCertificate,
    TransferDevice,
    Unbond,
    UnbondStep,
    VoteEquivocation,
    Withdraw,
    claim_id,
    group_claim_id,
    policy_id,
    rotation_message,
    transport_binding_message,
)
from faultproof.signers import OracleSet, check_oracle_set, signer_set_fault
from faultproof.signing import KEY_LENGTHS, KeyType, PublicKey
from faultproof.signing import verify as verify_typed
from faultproof.zk.params import validate_parameters
from ledger import economics
from ledger.economics import REWARDS, Bond, EconState, Slash, bond_account

ZERO_HASH = bytes(32)
# Balances live in SQLite INTEGER columns (signed 64-bit); keeping the pool below 2^62 leaves room
# for every account, external's negative balance included.
MAX_POOL = 1 << 62

EXTERNAL, FREE, PREMIUMS, PAID = "external", "free", "premiums", "paid"
LOCKED_PREFIX = "locked:"

Verifier = Callable[[bytes, bytes, bytes, bytes], bool]  # (tag, message, signature, public_key)

_PAYOUT_TAG = domain_tag(PayoutBody.NAME)
_ENTRY_TAG = domain_tag(LedgerEntry.NAME)
_FRAME_TAG = domain_tag(Frame.NAME)


def locked_account(pid: bytes) -> str:
    return LOCKED_PREFIX + pid.hex()


def _fail(reason: Reason, message: str = "") -> FaultproofError:
    return FaultproofError(reason, message)


class IntegrityError(Exception):
    """A stored or received entry that does not follow from the ones before it (replay, verify)."""

    def __init__(self, height: int, problem: str) -> None:
        self.height, self.problem = height, problem
        super().__init__(f"entry {height}: {problem}")


# --------------------------------------------------------------------------- value objects


@dataclass(frozen=True)
class Transfer:
    source: str
    dest: str
    amount: int


@dataclass(frozen=True)
class Circuit:
    circuit_id: bytes
    vkey: bytes
    n: int
    layout_version: int
    transcript_hash: bytes
    production: bool
    registered_ms: int


@dataclass
class Device:
    device_id: bytes
    epoch: int  # current epoch
    anchor: bytes  # c_0 of the current epoch
    firmware_hash: bytes
    enrolled_ms: int
    epochs: dict[int, bytes] = field(default_factory=dict)  # every epoch enrolled -> its anchor
    revoked_ms: int | None = None


@dataclass
class Agent:
    agent_id: bytes
    enrolled_ms: int
    revoked_ms: int | None = None

    def enrolled_at(self, now_ms: int) -> bool:
        return self.enrolled_ms <= now_ms and (self.revoked_ms is None or now_ms < self.revoked_ms)


class PolicyStatus(enum.StrEnum):
    ISSUED = "issued"
    ACTIVE = "active"
    EXPIRED = "expired"
    CLOSED = "closed"


class PolicyEvent(enum.StrEnum):
    TERM_STARTED = "term_started"  # timed: ledger time reached start_ms
    CLAIMS_ENDED = "claims_ended"  # timed: ledger time passed end_ms + claim_window_ms
    CLOSE = "close"  # the expire transaction
    DECOMMISSION = "decommission"  # its device was decommissioned (DESIGN §15 H11)


# The whole lifecycle. A transition not in this table is refused; `_REFUSAL` says with what.
POLICY_TRANSITIONS: dict[tuple[PolicyStatus, PolicyEvent], PolicyStatus] = {
    (PolicyStatus.ISSUED, PolicyEvent.TERM_STARTED): PolicyStatus.ACTIVE,
    (PolicyStatus.ACTIVE, PolicyEvent.CLAIMS_ENDED): PolicyStatus.EXPIRED,
    (PolicyStatus.EXPIRED, PolicyEvent.CLOSE): PolicyStatus.CLOSED,
    **{(s, PolicyEvent.DECOMMISSION): PolicyStatus.CLOSED
       for s in (PolicyStatus.ISSUED, PolicyStatus.ACTIVE, PolicyStatus.EXPIRED)},
}
_REFUSAL: dict[tuple[PolicyStatus, PolicyEvent], Reason] = {
    (PolicyStatus.ISSUED, PolicyEvent.CLOSE): Reason.EXPIRY_TOO_EARLY,
    (PolicyStatus.ACTIVE, PolicyEvent.CLOSE): Reason.EXPIRY_TOO_EARLY,
}


@dataclass(frozen=True)
class PaidWindow:
    claim_id: bytes
    start_ts: int
    end_ts: int
    period: int
    paid: int
    height: int


@dataclass
class Policy:
    policy_id: bytes
    terms: IssuePolicy
    issued_ms: int
    issued_height: int
    status: PolicyStatus = PolicyStatus.ISSUED  # as last materialised; use status_at(now)
    locked: int = 0  # coverage left (= balance of locked:<id>)
    paid_total: int = 0
    payouts: list[PaidWindow] = field(default_factory=list)  # in the order paid
    closed_ms: int | None = None
    # Indexes over `payouts` so each payout check is O(log p), however many a policy has had.
    _by_start: list[PaidWindow] = field(default_factory=list, repr=False)
    _starts: list[int] = field(default_factory=list, repr=False)
    _periods: set[int] = field(default_factory=set, repr=False)

    @property
    def device_id(self) -> bytes:
        return self.terms.device_id

    def status_at(self, now_ms: int) -> PolicyStatus:
        """The status at ledger time `now_ms`, with the timed transitions taken."""
        status = self.status
        for event in self._timed_events(now_ms):
            status = POLICY_TRANSITIONS.get((status, event), status)
        return status

    def _timed_events(self, now_ms: int) -> list[PolicyEvent]:
        events = []
        if now_ms >= self.terms.start_ms:
            events.append(PolicyEvent.TERM_STARTED)
        if now_ms > self.terms.end_ms + self.terms.claim_window_ms:
            events.append(PolicyEvent.CLAIMS_ENDED)
        return events

    def period_of(self, end_ts: int) -> int:
        return (end_ts - self.terms.start_ms) // self.terms.period_ms

    def overlaps(self, start_ts: int, end_ts: int) -> bool:
        """Whether (start_ts, end_ts] overlaps a paid window. Windows are half-open because the
        start frame only anchors the chain; its reading is not part of the window."""
        i = bisect.bisect_left(self._starts, start_ts)
        if i > 0 and self._by_start[i - 1].end_ts > start_ts:
            return True
        return i < len(self._by_start) and self._by_start[i].start_ts < end_ts

    def period_paid(self, period: int) -> bool:
        return period in self._periods

    def record(self, window: PaidWindow) -> None:
        self.payouts.append(window)
        i = bisect.bisect_left(self._starts, window.start_ts)
        self._starts.insert(i, window.start_ts)
        self._by_start.insert(i, window)
        self._periods.add(window.period)


def transition(status: PolicyStatus, event: PolicyEvent) -> PolicyStatus:
    """Guarded policy transition: the next status, or the refusal's reason."""
    nxt = POLICY_TRANSITIONS.get((status, event))
    if nxt is None:
        raise _fail(_REFUSAL.get((status, event), Reason.INVALID_STATE_TRANSITION),
                    f"a {status.value} policy cannot take {event.value}")
    return nxt


@dataclass(frozen=True)
class PaidClaim:
    claim_id: bytes
    policy_id: bytes
    height: int
    body: PayoutBody | GroupPayoutBody  # a group body for a corroborated policy (§14)
    paid: int


class TxKind(enum.StrEnum):
    GENESIS = "genesis"
    PAYOUT = "payout"
    EXPIRE = "expire"
    REGISTER_CIRCUIT = "register_circuit"
    ENROL_DEVICE = "enrol_device"
    REVOKE_DEVICE = "revoke_device"
    ENROL_AGENT = "enrol_agent"
    REVOKE_AGENT = "revoke_agent"
    DEPOSIT = "deposit"
    WITHDRAW = "withdraw"
    ISSUE_POLICY = "issue_policy"
    ROTATE_ORACLES = "rotate_oracles"
    ROTATE_ADMIN = "rotate_admin"
    # economic security (§14)
    SET_ECON_PARAMS = "set_econ_params"
    POST_BOND = "post_bond"
    UNBOND = "unbond"
    ISSUE_ECON_POLICY = "issue_econ_policy"
    SLASH = "slash"
    GROUP_PAYOUT = "group_payout"
    ANCHOR = "anchor"  # ledger soundness (DESIGN §11)
    # hardware (DESIGN §15)
    ENROL_DEVICE_KEY = "enrol_device_key"
    SET_MEASUREMENT = "set_measurement"
    ROTATE_DEVICE_KEY = "rotate_device_key"
    SET_LOCKDOWN = "set_lockdown"
    LIFT = "lift"
    SUSPEND_DEVICE = "suspend_device"
    ATTEST = "attest"
    BIND_TRANSPORT_KEY = "bind_transport_key"  # hardware round 2
    TRANSFER_DEVICE = "transfer_device"
    ENROL_GATEWAY_KEY = "enrol_gateway_key"
    GATEWAY_QUOTE = "gateway_quote"
    DECOMMISSION_DEVICE = "decommission_device"  # hardware round 3


# The kind each ledger transaction type is recorded as (an admin tx's: its AdminKind's name).
_TX_KINDS: dict[type[Message], TxKind] = {
    **dict.fromkeys((*ECON_TX_TYPES, ChainSlash), TxKind.SLASH),
    GroupQuorumCertificate: TxKind.GROUP_PAYOUT,  # one of ECON_TX_TYPES, but it pays, it does not slash
    QuorumCertificate: TxKind.PAYOUT,
    ExpirePolicy: TxKind.EXPIRE,
    SuspensionCertificate: TxKind.SUSPEND_DEVICE,
    SignedEvidence: TxKind.ATTEST,
    GatewayQuote: TxKind.GATEWAY_QUOTE,
    Genesis: TxKind.GENESIS,
    SignedAnchor: TxKind.ANCHOR,
}


def tx_kind(tx: Message) -> TxKind:
    if isinstance(tx, SignedAdminTx):
        return TxKind(AdminKind(tx.tx.kind).name.lower())
    kind = _TX_KINDS.get(type(tx))
    if kind is None:
        raise _fail(Reason.WRONG_TYPE, f"a {tx.NAME} is not a ledger transaction")
    return kind


@dataclass(frozen=True)
class Effect:
    """What an accepted transaction does. `existing` is set (and nothing else happens) when a
    payout was already made for the same claim: the caller returns that entry."""

    tx: Message
    kind: TxKind
    time_ms: int
    paid: int = 0
    transfers: tuple[Transfer, ...] = ()
    policy_id: bytes | None = None
    claim_id: bytes | None = None
    existing: PaidClaim | None = None
    _commit: Callable[[LedgerState, int], None] | None = field(default=None, repr=False, compare=False)

    @property
    def external_flow(self) -> int:
        """Net money into the pool from outside (negative for a withdrawal)."""
        return sum(t.amount for t in self.transfers if t.source == EXTERNAL) - sum(
            t.amount for t in self.transfers if t.dest == EXTERNAL)


# --------------------------------------------------------------------------- parameter checks


validate_oracle_set = check_oracle_set  # G1, the one check (faultproof/signers.py)


def default_threshold(n: int) -> int:
    """DESIGN §5 default k = ⌊2n/3⌋+1 (n = 5 -> 4)."""
    return min(n, 2 * n // 3 + 1)


def validate_trigger(kind: int, threshold: int, count: int, lo: int, hi: int, gap_ms: int, n: int) -> None:
    """The trigger parameter rules live in faultproof.zk.params (the circuit enforces the same ones):
    1 <= K <= n (K >= 2 for stuck), lo <= hi, G >= 2 for dropout, unused parameters 0, n >= 2.
    Raises FaultproofError(INVALID_PARAMETERS)."""
    validate_parameters(kind, threshold, count, lo, hi, gap_ms, n)


def _is_development(c: RegisterCircuit | Circuit) -> bool:
    production = c.production if isinstance(c, RegisterCircuit) else int(c.production)
    return production == 0 or c.transcript_hash == ZERO_HASH


# --------------------------------------------------------------------------- the state


class LedgerState:
    """The ledger's state after some entries. `check` is pure; `commit` and the `apply*` methods
    mutate this object (an oracle's view and the service's state are each one such object)."""

    def __init__(self, genesis: Genesis, *, verifier: Verifier = ed25519_verify) -> None:
        validate_oracle_set(genesis.oracles, genesis.threshold)
        self.genesis = genesis
        self.ledger_id = genesis.ledger_id
        self.verifier = verifier
        self.height = -1  # set to 0 once the genesis entry is applied
        self.head_hash = ZERO_HASH
        self.time_ms = genesis.created_ms
        self.admin = genesis.admin
        self.admin_nonce = 0
        self.former_admins: list[bytes] = []
        self.oracle_set = OracleSet(genesis.ledger_id, 0, genesis.oracles, genesis.threshold,
                                    genesis.created_ms)
        self.previous_oracle_set: OracleSet | None = None  # rotated_ms = oracle_set.since_ms
        self.circuits: dict[bytes, Circuit] = {}
        self.devices: dict[bytes, Device] = {}
        self.agents: dict[bytes, Agent] = {}
        self.policies: dict[bytes, Policy] = {}
        self.device_policies: dict[bytes, list[bytes]] = {}
        self.open_policy: dict[bytes, bytes] = {}  # device -> its policy that is not closed
        self.claims: dict[bytes, PaidClaim] = {}
        self.balances: dict[str, int] = {EXTERNAL: 0, FREE: 0, PREMIUMS: 0, PAID: 0}
        self.econ = EconState()  # bonds, slashes, corroborated policies (§14)
        # ledger soundness (DESIGN §11): per device, paid windows across policies and anchored heads
        self.device_history: dict[bytes, DeviceHistory] = {}
        self.anchor_rounds: dict[bytes, int] = {}  # agent -> its last anchor round
        self.hw = HardwareState()  # DESIGN §15: device keys, allowlist, suspensions, breaker

    # -- genesis ------------------------------------------------------------------------------

    @classmethod
    def from_genesis_entry(cls, signed: SignedEntry, *, verifier: Verifier = ed25519_verify) -> LedgerState:
        """Start a view from the signed genesis entry (height 0), checking it completely."""
        entry = signed.entry
        if not isinstance(entry.tx, Genesis):
            raise IntegrityError(entry.height, "the first entry is not a genesis")
        genesis = entry.tx
        try:
            state = cls(genesis, verifier=verifier)
        except FaultproofError as e:
            raise IntegrityError(0, f"genesis refused: {e}") from None
        state._check_link(signed, check_signature=True)
        if entry.time_ms != genesis.created_ms or entry.paid != 0:
            raise IntegrityError(0, "genesis entry time or paid does not match the genesis")
        state._advance(entry, hash_id("ledger-entry", entry.encode()))
        return state

    def genesis_entry(self) -> LedgerEntry:
        """The unsigned height-0 entry for this state's genesis."""
        return LedgerEntry(ledger_id=self.ledger_id, height=0, prev_hash=ZERO_HASH,
                           time_ms=self.genesis.created_ms, tx=self.genesis, paid=0)

    # -- lookups ------------------------------------------------------------------------------

    @property
    def next_admin_nonce(self) -> int:
        return self.admin_nonce + 1

    @property
    def free(self) -> int:
        return self.balances[FREE]

    @property
    def pool_total(self) -> int:
        return -self.balances[EXTERNAL]

    def policy(self, pid: bytes) -> Policy | None:
        return self.policies.get(pid)

    def policies_of(self, device_id: bytes) -> list[Policy]:
        return [self.policies[p] for p in self.device_policies.get(device_id, ())]

    def circuit(self, cid: bytes) -> Circuit | None:
        return self.circuits.get(cid)

    def device(self, device_id: bytes) -> Device | None:
        return self.devices.get(device_id)

    def agent(self, agent_id: bytes) -> Agent | None:
        return self.agents.get(agent_id)

    def agent_enrolled(self, agent_id: bytes, at_ms: int | None = None) -> bool:
        a = self.agents.get(agent_id)
        return a is not None and a.enrolled_at(self.time_ms if at_ms is None else at_ms)

    def paid_claim(self, cid: bytes) -> PaidClaim | None:
        return self.claims.get(cid)

    def policy_id_for(self, tx: AdminTx) -> bytes:
        """The id of the policy that `tx` issues: messages.policy_id. The one place an id scheme
        may differ: a mirror of the pool contract numbers policies as the contract does
        (ledger/evm/mirror.py, DESIGN §13); the rules are the same."""
        return policy_id(tx)

    def oracle_set_for(self, epoch: int, now_ms: int) -> OracleSet | None:
        """The set whose QCs are accepted for `epoch` at ledger time now_ms (Q3), if any."""
        if epoch == self.oracle_set.epoch:
            return self.oracle_set
        prev = self.previous_oracle_set
        if prev is not None and epoch == prev.epoch and \
                now_ms <= self.oracle_set.since_ms + self.genesis.rotation_grace_ms:
            return prev
        return None

    @property
    def previous_rotated_ms(self) -> int | None:
        """When the previous oracle set was replaced (its QCs count until + rotation_grace_ms)."""
        return self.oracle_set.since_ms if self.previous_oracle_set is not None else None

    def balance(self, account: str) -> int:
        return self.balances.get(account, 0)

    def history(self, device_id: bytes) -> DeviceHistory:
        """The device's paid windows and anchored heads (created empty on first use)."""
        h = self.device_history.get(device_id)
        if h is None:
            h = self.device_history[device_id] = DeviceHistory()
        return h

    # -- the step function --------------------------------------------------------------------

    def apply(self, tx: Message, now_ms: int) -> tuple[Effect, LedgerEntry | None]:
        """Check and commit one transaction at ledger time now_ms. Returns the effect and the new
        (unsigned) entry, or (effect, None) for an idempotent payout. Raises FaultproofError and
        then leaves the state exactly as it was."""
        effect = self.check(tx, now_ms)
        if effect.existing is not None:
            return effect, None
        entry = self.entry_for(effect)
        self.commit(effect, entry)
        return effect, entry

    def entry_for(self, effect: Effect) -> LedgerEntry:
        return LedgerEntry(ledger_id=self.ledger_id, height=self.height + 1, prev_hash=self.head_hash,
                           time_ms=effect.time_ms, tx=effect.tx, paid=effect.paid)

    def commit(self, effect: Effect, entry: LedgerEntry, entry_hash: bytes | None = None) -> None:
        """Apply a checked effect. Never raises for an effect `check` returned on this state."""
        assert effect.existing is None and effect._commit is not None
        for t in effect.transfers:
            self.balances[t.source] = self.balances.get(t.source, 0) - t.amount
            self.balances[t.dest] = self.balances.get(t.dest, 0) + t.amount
        effect._commit(self, entry.height)
        note_device_event(self, effect, entry.height)  # DESIGN §15: the device's chain of custody
        self._advance(entry, entry_hash or hash_id("ledger-entry", entry.encode()))

    def apply_entry(self, signed: SignedEntry, *, check_signature: bool = True,
                    entry_bytes: bytes | None = None) -> Effect:
        """Replay one signed entry (an oracle following the ledger, a restart, `ledger verify`).
        Raises IntegrityError naming the entry if it does not follow from this state."""
        entry = signed.entry
        self._check_link(signed, check_signature=check_signature, entry_bytes=entry_bytes)
        if entry.time_ms < self.time_ms:
            raise IntegrityError(entry.height, f"time {entry.time_ms} is before the previous entry's {self.time_ms}")
        try:
            effect = self.check(entry.tx, entry.time_ms)
        except FaultproofError as e:
            raise IntegrityError(entry.height, f"transaction refused by the rules on replay: {e}") from None
        if effect.existing is not None:
            raise IntegrityError(entry.height, "a payout for an already paid claim was recorded twice")
        if effect.paid != entry.paid:
            raise IntegrityError(entry.height, f"records paid={entry.paid}, the rules give {effect.paid}")
        raw = entry_bytes if entry_bytes is not None else entry.encode()
        self.commit(effect, entry, hash_id("ledger-entry", raw))
        return effect

    def _check_link(self, signed: SignedEntry, *, check_signature: bool, entry_bytes: bytes | None = None) -> None:
        entry = signed.entry
        if entry.ledger_id != self.ledger_id:
            raise IntegrityError(entry.height, "entry is bound to another ledger_id")
        if entry.height != self.height + 1:
            raise IntegrityError(self.height + 1, f"expected height {self.height + 1}, found {entry.height}")
        if entry.prev_hash != self.head_hash:
            raise IntegrityError(entry.height, "prev_hash does not match the previous entry's hash")
        if check_signature:
            raw = entry_bytes if entry_bytes is not None else entry.encode()
            if not self.verifier(_ENTRY_TAG, raw, signed.signature, self.genesis.ledger_key):
                raise IntegrityError(entry.height, "the ledger signature does not verify")

    def _advance(self, entry: LedgerEntry, entry_hash: bytes) -> None:
        self.height = entry.height
        self.head_hash = entry_hash
        self.time_ms = entry.time_ms
        note_head(self, entry.height, entry_hash, entry.time_ms)  # H6: attestation nonces

    # -- checks (pure) ------------------------------------------------------------------------

    def check(self, tx: Message, now_ms: int) -> Effect:
        """Decide a transaction at ledger time now_ms without changing anything."""
        if self.height < 0:
            raise _fail(Reason.UNAVAILABLE, "the genesis entry has not been applied")
        if now_ms < self.time_ms:
            raise _fail(Reason.OUT_OF_RANGE, f"ledger time {now_ms} is before the head's {self.time_ms}")
        if isinstance(tx, QuorumCertificate):
            return self._check_payout(tx, now_ms)
        if isinstance(tx, ExpirePolicy):
            return self._check_expire(tx, now_ms)
        if isinstance(tx, SuspensionCertificate):
            return check_suspension(self, tx, now_ms)
        if isinstance(tx, SignedEvidence):
            return check_evidence(self, tx, now_ms)
        if isinstance(tx, GatewayQuote):
            return check_gateway_quote(self, tx, now_ms)
        if isinstance(tx, SignedAdminTx):
            return self._check_admin(tx, now_ms)
        if isinstance(tx, ECON_TX_TYPES):
            return self._check_econ_tx(tx, now_ms)
        if isinstance(tx, SignedAnchor):
            return check_anchor(self, tx, now_ms)
        if isinstance(tx, ChainSlash):
            return self.check_chain_slash(tx, now_ms)
        raise _fail(Reason.WRONG_TYPE, f"a {tx.NAME} is not a ledger transaction")

    # admin ----------------------------------------------------------------------------------

    def _check_admin(self, stx: SignedAdminTx, now: int) -> Effect:
        tx = stx.tx
        if tx.ledger_id != self.ledger_id:
            raise _fail(Reason.WRONG_LEDGER, "the admin tx is for another ledger")
        if not stx.verify(self.admin):
            others = [*self.former_admins, *self.oracle_set.members, self.genesis.ledger_key]
            if any(stx.verify(k) for k in others):
                raise _fail(Reason.NOT_ADMIN, "signed by a key that is not the current admin")
            raise _fail(Reason.BAD_ADMIN_SIGNATURE)
        if tx.nonce != self.admin_nonce + 1:
            raise _fail(Reason.BAD_NONCE, f"nonce {tx.nonce}, expected {self.admin_nonce + 1}")
        effect = _ADMIN_CHECKS[AdminKind(tx.kind)](self, stx, now)
        inner = effect._commit
        nonce = tx.nonce

        def commit(state: LedgerState, height: int) -> None:
            state.admin_nonce = nonce
            if inner is not None:
                inner(state, height)

        return _with_commit(effect, commit)

    def _register_circuit(self, a: RegisterCircuit, stx: SignedAdminTx, now: int) -> Effect:
        cid = a.circuit_id
        if cid in self.circuits:
            raise _fail(Reason.ALREADY_EXISTS, "circuit already registered")
        if a.n < 1 or not a.vkey:
            raise _fail(Reason.INVALID_PARAMETERS, "a circuit needs n >= 1 and a verification key")
        if _is_development(a) and not self.genesis.development:
            raise _fail(Reason.DEVELOPMENT_CIRCUIT_ON_PRODUCTION,
                        "development circuit (production=0 or no ceremony transcript) on a production ledger")
        circuit = Circuit(cid, a.vkey, a.n, a.layout_version, a.transcript_hash, bool(a.production), now)

        def commit(state: LedgerState, height: int) -> None:
            state.circuits[cid] = circuit

        return Effect(stx, TxKind.REGISTER_CIRCUIT, now, _commit=commit)

    def _enrol_device(self, a: EnrolDevice, stx: SignedAdminTx, now: int) -> Effect:
        d = self.devices.get(a.device_id)
        if d is not None:
            if d.revoked_ms is not None:
                raise _fail(Reason.INVALID_STATE_TRANSITION, "a revoked device is never enrolled again")
            if a.epoch <= d.epoch:
                raise _fail(Reason.ALREADY_EXISTS, f"device enrolled with epoch {d.epoch}; a re-anchor needs a higher epoch")

        def commit(state: LedgerState, height: int) -> None:
            dev = state.devices.get(a.device_id)
            if dev is None:
                dev = state.devices[a.device_id] = Device(a.device_id, a.epoch, a.anchor, a.firmware_hash, now)
            dev.epoch, dev.anchor, dev.firmware_hash = a.epoch, a.anchor, a.firmware_hash
            dev.epochs[a.epoch] = a.anchor

        return Effect(stx, TxKind.ENROL_DEVICE, now, _commit=commit)

    def _revoke_device(self, a: RevokeDevice, stx: SignedAdminTx, now: int) -> Effect:
        return _revoke(self, lambda state: state.devices, a.device_id, "device", stx, TxKind.REVOKE_DEVICE, now)

    def _enrol_agent(self, a: EnrolAgent, stx: SignedAdminTx, now: int) -> Effect:
        ag = self.agents.get(a.agent_id)
        if ag is not None:
            if ag.revoked_ms is not None:
                raise _fail(Reason.INVALID_STATE_TRANSITION, "a revoked agent is never enrolled again")
            raise _fail(Reason.ALREADY_EXISTS, "agent already enrolled")

        def commit(state: LedgerState, height: int) -> None:
            state.agents[a.agent_id] = Agent(a.agent_id, now)

        return Effect(stx, TxKind.ENROL_AGENT, now, _commit=commit)

    def _revoke_agent(self, a: RevokeAgent, stx: SignedAdminTx, now: int) -> Effect:
        return _revoke(self, lambda state: state.agents, a.agent_id, "agent", stx, TxKind.REVOKE_AGENT, now)

    def _deposit(self, a: Deposit, stx: SignedAdminTx, now: int) -> Effect:
        if a.amount == 0:
            raise _fail(Reason.INVALID_PARAMETERS, "deposit of 0")
        if self.pool_total + a.amount >= MAX_POOL:
            raise _fail(Reason.INVALID_PARAMETERS, "the pool would exceed 2^62 units")
        return Effect(stx, TxKind.DEPOSIT, now, transfers=(Transfer(EXTERNAL, FREE, a.amount),), _commit=_noop)

    def _withdraw(self, a: Withdraw, stx: SignedAdminTx, now: int) -> Effect:
        if a.amount == 0:
            raise _fail(Reason.INVALID_PARAMETERS, "withdrawal of 0")
        if a.amount > self.free:
            raise _fail(Reason.INSUFFICIENT_FREE_CAPITAL,
                        f"withdraw {a.amount} but only {self.free} is free (locked capital stays locked)")
        return Effect(stx, TxKind.WITHDRAW, now, transfers=(Transfer(FREE, EXTERNAL, a.amount),), _commit=_noop)

    def _issue_policy(self, p: IssuePolicy, stx: SignedAdminTx, now: int) -> Effect:
        return self._issue(stx, now, p, None)

    def _issue(self, stx: SignedAdminTx, now: int, p: IssuePolicy, econ: EconPolicy | None) -> Effect:
        """A9 for issue_policy and issue_econ_policy (econ: the economic terms, §14)."""
        devices = econ.group if econ is not None and econ.group else (p.device_id,)
        for device_id in devices:
            device = self.devices.get(device_id)
            if device is None:
                raise _fail(Reason.NOT_FOUND, "the device is not enrolled")
            if device.revoked_ms is not None:
                raise _fail(Reason.DEVICE_REVOKED, "the device is revoked")
        circuit = self.circuits.get(p.circuit_id)
        if circuit is None:
            raise _fail(Reason.NOT_FOUND, "the circuit is not registered")
        if _is_development(circuit) and not self.genesis.development:
            raise _fail(Reason.DEVELOPMENT_CIRCUIT_ON_PRODUCTION)
        validate_trigger(p.kind, p.threshold, p.count, p.lo, p.hi, p.gap_ms, circuit.n)
        if not p.start_ms < p.end_ms:
            raise _fail(Reason.INVALID_PARAMETERS, "the term must start before it ends")
        if p.end_ms <= now:
            raise _fail(Reason.INVALID_PARAMETERS, "the term is already over")
        check_term_start(self, p, now)
        if not 0 < p.amount <= p.coverage:
            raise _fail(Reason.INVALID_PARAMETERS, "need 0 < amount <= coverage")
        if p.period_ms == 0:
            raise _fail(Reason.INVALID_PARAMETERS, "the period must be > 0")
        if self.pool_total + p.premium >= MAX_POOL:
            raise _fail(Reason.INVALID_PARAMETERS, "the pool would exceed 2^62 units")
        for device_id in devices:
            if device_id in self.open_policy:
                raise _fail(Reason.ACTIVE_POLICY_EXISTS,
                            f"policy {self.open_policy[device_id].hex()} of this device is not closed")
        self._econ_check_soundness(p, econ, devices)
        if p.coverage > self.free:
            raise _fail(Reason.INSUFFICIENT_FREE_CAPITAL, f"coverage {p.coverage} > free capital {self.free}")
        pid = self.policy_id_for(stx.tx)
        transfers = [Transfer(FREE, locked_account(pid), p.coverage)]
        if p.premium:
            transfers.append(Transfer(EXTERNAL, PREMIUMS, p.premium))

        def commit(state: LedgerState, height: int) -> None:
            state.policies[pid] = Policy(pid, p, now, height, locked=p.coverage)
            for device_id in devices:
                state.device_policies.setdefault(device_id, []).append(pid)
                state.open_policy[device_id] = pid
            if econ is not None:
                state.econ.policies[pid] = econ

        kind = TxKind.ISSUE_POLICY if econ is None else TxKind.ISSUE_ECON_POLICY
        return Effect(stx, kind, now, transfers=tuple(transfers), policy_id=pid, _commit=commit)

    def _rotate_oracles(self, a: RotateOracles, stx: SignedAdminTx, now: int) -> Effect:
        validate_oracle_set(a.members, a.threshold)
        self._econ_check_members(a.members)

        def commit(state: LedgerState, height: int) -> None:
            state.previous_oracle_set = state.oracle_set
            state.oracle_set = OracleSet(state.ledger_id, state.oracle_set.epoch + 1, a.members, a.threshold, now)

        return Effect(stx, TxKind.ROTATE_ORACLES, now, _commit=commit)

    def _rotate_admin(self, a: RotateAdmin, stx: SignedAdminTx, now: int) -> Effect:
        if a.new_admin == self.admin:
            raise _fail(Reason.INVALID_PARAMETERS, "the new admin key is the current one")

        def commit(state: LedgerState, height: int) -> None:
            state.former_admins.append(state.admin)
            state.admin = a.new_admin

        return Effect(stx, TxKind.ROTATE_ADMIN, now, _commit=commit)

    # payouts --------------------------------------------------------------------------------

    def qc_rejection(self, qc: QuorumCertificate, now_ms: int) -> Reason | None:
        """Q3: the QC's epoch and signers. None if it certifies its body."""
        return self._signers_rejection(qc.body.oracle_set_epoch, _PAYOUT_TAG, qc.body.encode(), qc.signatures,
                                       now_ms)

    def _signers_rejection(self, epoch: int, tag: bytes, body_bytes: bytes, signatures: tuple[QcSignature, ...],
                           now_ms: int) -> Reason | None:
        """Q3 for a body of any certified type (payout, group payout)."""
        oset = self.oracle_set_for(epoch, now_ms)
        if oset is None:
            return Reason.QC_STALE_EPOCH
        return signer_set_fault(signatures, oset.members, oset.threshold, tag, body_bytes, self.verifier)

    def payout_mismatch(self, body: PayoutBody) -> str | None:
        """Q4 (policy known): why the body disagrees with the policy and ledger, or None."""
        policy = self.policies[body.policy_id]
        t = policy.terms
        circuit = self.circuits[t.circuit_id]
        device = self.devices[t.device_id]
        if self.econ.group_of(body.policy_id):
            return "a corroborated policy pays only a group quorum certificate"
        if body.device_id != t.device_id:
            return "device is not the policy's"
        if body.circuit_id != t.circuit_id:
            return "circuit is not the policy's"
        if body.beneficiary != t.beneficiary:
            return "beneficiary is not the policy's"
        if body.amount != t.amount:
            return f"amount {body.amount} is not the policy's {t.amount}"
        if body.end_seq - body.start_seq != circuit.n:
            return f"end_seq - start_seq = {body.end_seq - body.start_seq}, circuit n = {circuit.n}"
        if body.claim_id != claim_id(body.policy_id, body.device_id, body.epoch, body.start_seq, body.end_seq):
            return "claim_id is not derived from (policy, device, epoch, start_seq, end_seq)"
        if not body.start_ts < body.end_ts:
            return "start_ts must be before end_ts"
        if body.epoch not in device.epochs:
            return f"the device was never enrolled with epoch {body.epoch}"
        return None

    def _paid_already(self, qc: QuorumCertificate | GroupQuorumCertificate, kind: TxKind, now: int) -> Effect | None:
        """Q1 and Q2, for a payout and a group payout alike: the body is for this ledger; a claim
        already paid with the same body (the oracle-set epoch aside) is that payout again (its
        entry, nothing written), with another body (a group's for a single's too) CLAIM_CONFLICT."""
        body = qc.body
        if body.ledger_id != self.ledger_id:
            raise _fail(Reason.WRONG_LEDGER, "the payout body is for another ledger")
        paid = self.claims.get(body.claim_id)
        if paid is None:
            return None
        if type(paid.body) is type(body) and body.replace(oracle_set_epoch=paid.body.oracle_set_epoch) == paid.body:
            return Effect(qc, kind, now, paid=paid.paid, policy_id=paid.policy_id, claim_id=paid.claim_id,
                          existing=paid)
        raise _fail(Reason.CLAIM_CONFLICT, f"claim paid at height {paid.height} with another body")

    def _check_payout(self, qc: QuorumCertificate, now: int) -> Effect:
        body = qc.body
        existing = self._paid_already(qc, TxKind.PAYOUT, now)
        if existing is not None:
            return existing
        qc_reason = self.qc_rejection(qc, now)
        if qc_reason is not None:
            raise _fail(qc_reason)
        if body.policy_id not in self.policies:
            raise _fail(Reason.NOT_FOUND, "no such policy")
        mismatch = self.payout_mismatch(body)
        if mismatch is not None:
            raise _fail(Reason.PAYOUT_MISMATCH, mismatch)
        reason = payout_rejection(self, body, now)
        if reason is not None:
            raise _fail(reason)
        policy = self.policies[body.policy_id]
        pay = min(body.amount, policy.locked)
        pid, cid = body.policy_id, body.claim_id

        def commit(state: LedgerState, height: int) -> None:
            _pay_from_lock(state.policies[pid], cid, body.start_ts, body.end_ts, pay, height, now)
            state.history(body.device_id).record_window(body)
            state.claims[cid] = PaidClaim(cid, pid, height, body, pay)
            after_payout(state, now, pay)  # P10: the circuit breaker counts it

        return Effect(qc, TxKind.PAYOUT, now, paid=pay, transfers=(Transfer(locked_account(pid), PAID, pay),),
                      policy_id=pid, claim_id=cid, _commit=commit)

    def _check_expire(self, tx: ExpirePolicy, now: int) -> Effect:
        policy = self.policies.get(tx.policy_id)
        if policy is None:
            raise _fail(Reason.NOT_FOUND, "no such policy")
        transition(policy.status_at(now), PolicyEvent.CLOSE)  # raises EXPIRY_TOO_EARLY / INVALID_STATE_TRANSITION
        pid = tx.policy_id
        transfers = []
        if policy.locked:
            transfers.append(Transfer(locked_account(pid), FREE, policy.locked))
        if policy.terms.premium:
            transfers.append(Transfer(PREMIUMS, FREE, policy.terms.premium))

        def commit(state: LedgerState, height: int) -> None:
            pol = state.policies[pid]
            _materialise(pol, now)
            pol.status = transition(pol.status, PolicyEvent.CLOSE)
            pol.locked = 0
            pol.closed_ms = now
            for device_id in state.econ.group_of(pid) or (pol.device_id,):
                if state.open_policy.get(device_id) == pid:
                    del state.open_policy[device_id]

        return Effect(tx, TxKind.EXPIRE, now, transfers=tuple(transfers), policy_id=pid, _commit=commit)

    # economic security (DESIGN §14) ----------------------------------------------------------
    # Bonds, slashing evidence, corroborated policies and the soundness rule. The arithmetic is
    # in ledger/economics.py; this block applies it to the state. A ledger whose admin never set
    # the economic parameters runs without these rules (EC1); once set, they always apply.

    def _require_econ(self) -> EconParams:
        if self.econ.params is None:
            raise _fail(Reason.INVALID_STATE_TRANSITION, "the economic rules are not enabled (set_econ_params)")
        return self.econ.params

    def _econ_check_members(self, members: tuple[bytes, ...]) -> None:
        """EC2: with the economic rules on, every member holds the minimum active bond and none was slashed."""
        params = self.econ.params
        for m in members:
            if m in self.econ.slashed_oracles:
                raise _fail(Reason.SLASHED_MEMBER, f"oracle {m.hex()} was slashed")
            if params is not None and self.econ.active_bond(BondHolder.ORACLE, m) < params.min_oracle_bond:
                raise _fail(Reason.INSUFFICIENT_BOND,
                            f"oracle {m.hex()} bonds {self.econ.active_bond(BondHolder.ORACLE, m)} "
                            f"< {params.min_oracle_bond}")

    def soundness(self, p: IssuePolicy, econ: EconPolicy | None, devices: tuple[bytes, ...]) -> economics.Soundness:
        """The soundness rule's assessment of terms `p` on this state, with today's bonds. A slashed
        device is paid nothing more, so it opens no attack (its bond is gone, not 0)."""
        params = self.econ.params
        declared = econ.staging_cost if econ is not None else 0
        staging = economics.effective_staging_cost(declared, params) if params is not None else 0
        m = self.econ.min_proofs_of(econ)
        usable = [d for d in devices if d not in self.econ.slashed_devices]
        return economics.assess(
            p.amount, device_bonds=[self.econ.active_bond(BondHolder.DEVICE, d) for d in usable], m=m,
            staging_cost=staging, oracle_bonds=[self.econ.active_bond(BondHolder.ORACLE, o)
                                                for o in self.oracle_set.members],
            k=self.oracle_set.threshold)

    def _econ_check_soundness(self, p: IssuePolicy, econ: EconPolicy | None, devices: tuple[bytes, ...]) -> None:
        """EC5: the payout per period is below the cheapest attack, and bonds outlive the claim window."""
        params = self.econ.params
        if params is None:
            return
        unbonded = [d for d in devices if self.econ.active_bond(BondHolder.DEVICE, d) == 0]
        if unbonded:  # a policy needs the policyholder's stake, whatever the staging cost says
            raise _fail(Reason.INSUFFICIENT_BOND, f"device {unbonded[0].hex()} holds no bond")
        if p.claim_window_ms >= params.unlock_delay_ms:
            raise _fail(Reason.ECONOMICALLY_UNSOUND,
                        f"claim window {p.claim_window_ms} ms is not shorter than the bond unlock delay "
                        f"{params.unlock_delay_ms} ms")
        verdict = self.soundness(p, econ, devices)
        if not verdict.sound:
            cheapest = verdict.cheapest
            raise _fail(Reason.ECONOMICALLY_UNSOUND,
                        f"payout {p.amount} per period >= cheapest attack {cheapest.path.value} costing "
                        f"{cheapest.cost} ({cheapest.detail}): raise the bonds or m")

    def _set_econ_params(self, a: EconParams, stx: SignedAdminTx, now: int) -> Effect:
        problem = economics.validate_params(a)
        if problem is not None:
            raise _fail(Reason.INVALID_PARAMETERS, problem)
        for m in self.oracle_set.members:
            if self.econ.active_bond(BondHolder.ORACLE, m) < a.min_oracle_bond:
                raise _fail(Reason.INSUFFICIENT_BOND, f"oracle {m.hex()} does not hold {a.min_oracle_bond}")

        def commit(state: LedgerState, height: int) -> None:
            state.econ.params = a

        return Effect(stx, TxKind.SET_ECON_PARAMS, now, _commit=commit)

    def _post_bond(self, a: PostBond, stx: SignedAdminTx, now: int) -> Effect:
        kind = _holder_kind(a.holder_kind)
        if a.amount == 0:
            raise _fail(Reason.INVALID_PARAMETERS, "bond of 0")
        if self.pool_total + a.amount >= MAX_POOL:
            raise _fail(Reason.INVALID_PARAMETERS, "the pool would exceed 2^62 units")
        if kind is BondHolder.DEVICE:
            device = self.devices.get(a.holder_id)
            if device is None:
                raise _fail(Reason.NOT_FOUND, "the device is not enrolled")
            if device.revoked_ms is not None:
                raise _fail(Reason.DEVICE_REVOKED, "the device is revoked")
        elif a.holder_id in self.econ.slashed_oracles:
            raise _fail(Reason.SLASHED_MEMBER, "a slashed oracle cannot bond again")
        existing = self.econ.bond(kind, a.holder_id)
        if existing is not None and existing.unbond_requested_ms is not None:
            raise _fail(Reason.INVALID_STATE_TRANSITION, "the bond is unlocking; release it first")
        key, amount = (kind, a.holder_id), a.amount

        def commit(state: LedgerState, height: int) -> None:
            bond = state.econ.bonds.setdefault(key, Bond(kind, key[1], 0))
            bond.amount += amount
            state.econ.bond_total += amount

        return Effect(stx, TxKind.POST_BOND, now, transfers=(Transfer(EXTERNAL, bond_account(kind, a.holder_id),
                                                                      amount),), _commit=commit)

    def _unbond(self, a: Unbond, stx: SignedAdminTx, now: int) -> Effect:
        kind = _holder_kind(a.holder_kind)
        params = self._require_econ()
        bond = self.econ.bond(kind, a.holder_id)
        if bond is None or bond.amount == 0:
            raise _fail(Reason.NOT_FOUND, "no bond")
        key = (kind, a.holder_id)
        if a.step == UnbondStep.REQUEST:
            if bond.unbond_requested_ms is not None:
                raise _fail(Reason.INVALID_STATE_TRANSITION, "unbond already requested")
            if kind is BondHolder.ORACLE and a.holder_id in self.oracle_set.members:
                raise _fail(Reason.BOND_IN_USE, "the oracle is a member of the current set")
            if kind is BondHolder.DEVICE and a.holder_id in self.open_policy:
                raise _fail(Reason.BOND_IN_USE, "the device has a policy that is not closed")

            def request(state: LedgerState, height: int) -> None:
                state.econ.bonds[key].unbond_requested_ms = now

            return Effect(stx, TxKind.UNBOND, now, _commit=request)
        if a.step != UnbondStep.RELEASE:
            raise _fail(Reason.INVALID_PARAMETERS, f"unknown unbond step {a.step}")
        if bond.unbond_requested_ms is None:
            raise _fail(Reason.BOND_LOCKED, "no unbond was requested")
        if now < bond.unbond_requested_ms + params.unlock_delay_ms:
            raise _fail(Reason.BOND_LOCKED,
                        f"unlocks at {bond.unbond_requested_ms + params.unlock_delay_ms}, now {now}")
        amount = bond.amount

        def release(state: LedgerState, height: int) -> None:
            del state.econ.bonds[key]
            state.econ.bond_total -= amount

        return Effect(stx, TxKind.UNBOND, now, transfers=(Transfer(bond_account(kind, a.holder_id), EXTERNAL,
                                                                   amount),), _commit=release)

    def _issue_econ_policy(self, a: EconPolicy, stx: SignedAdminTx, now: int) -> Effect:
        self._require_econ()
        if a.group:
            if len(set(a.group)) != len(a.group) or len(a.group) < 2:
                raise _fail(Reason.INVALID_PARAMETERS, "a group lists at least 2 distinct devices")
            if a.terms.device_id not in a.group:
                raise _fail(Reason.INVALID_PARAMETERS, "terms.device_id must be one of the group")
            if not 2 <= a.min_proofs <= len(a.group):
                raise _fail(Reason.INVALID_PARAMETERS, f"need 2 <= m <= {len(a.group)}, m = {a.min_proofs}")
        elif a.min_proofs != 1 or a.overlap_tolerance_ms != 0:
            raise _fail(Reason.INVALID_PARAMETERS, "a single-device policy has m = 1 and no tolerance")
        return self._issue(stx, now, a.terms, a)

    def _check_econ_tx(self, tx: Message, now: int) -> Effect:
        if isinstance(tx, GroupQuorumCertificate):
            return self._check_group_payout(tx, now)
        params = self._require_econ()
        if isinstance(tx, VoteEquivocation):
            return self._check_vote_equivocation(tx, params, now)
        if isinstance(tx, ContradictingApprove):
            return self._check_contradicting_approve(tx, params, now)
        assert isinstance(tx, FrameEquivocation)
        return self._check_frame_equivocation(tx, params, now)

    def _vote_epoch_rejection(self, oracle_id: bytes, epoch: int, params: EconParams, now: int) -> Reason | None:
        """S2: evidence about a vote names the current set, or the previous one within the unlock
        delay after the rotation (after that its members may have unbonded); the signer is a member."""
        if oracle_id in self.econ.slashed_oracles:
            return Reason.EVIDENCE_DUPLICATE
        if epoch == self.oracle_set.epoch:
            oset: OracleSet | None = self.oracle_set
        elif self.previous_oracle_set is not None and epoch == self.previous_oracle_set.epoch and \
                now <= self.oracle_set.since_ms + params.unlock_delay_ms:
            oset = self.previous_oracle_set
        else:
            return Reason.EVIDENCE_STALE
        if oset is None or oracle_id not in oset.members:
            return Reason.EVIDENCE_INVALID
        return None

    def _check_vote_equivocation(self, tx: VoteEquivocation, params: EconParams, now: int) -> Effect:
        facts = [_vote_facts(v) for v in (tx.first, tx.second)]
        if facts[0] != facts[1]:
            raise _fail(Reason.EVIDENCE_INVALID, "the votes are not by one oracle for one claim in one epoch")
        oracle_id, ledger_id, epoch, _ = facts[0]
        if ledger_id != self.ledger_id:
            raise _fail(Reason.WRONG_LEDGER, "the votes are for another ledger")
        a, b = tx.first, tx.second
        if isinstance(a, Reject) and isinstance(b, Reject):
            raise _fail(Reason.EVIDENCE_INVALID, "two rejects do not conflict")
        if isinstance(a, Approve) and isinstance(b, Approve) and a.body == b.body:
            raise _fail(Reason.EVIDENCE_INVALID, "the same approval twice")
        # signatures last: they are the expensive part
        if not all(self.verifier(domain_tag(v.body.NAME), v.body.encode(), v.signature, oracle_id) for v in (a, b)):
            raise _fail(Reason.EVIDENCE_INVALID, "a vote's signature does not verify")
        reason = self._vote_epoch_rejection(oracle_id, epoch, params, now)
        if reason is not None:
            raise _fail(reason)
        return self._slash(tx, BondHolder.ORACLE, oracle_id, tx.reporter, params, now)

    def _check_contradicting_approve(self, tx: ContradictingApprove, params: EconParams, now: int) -> Effect:
        ap = tx.approve
        body = ap.body
        if body.ledger_id != self.ledger_id:
            raise _fail(Reason.WRONG_LEDGER, "the approval is for another ledger")
        policy = self.policies.get(body.policy_id)
        if policy is None:
            raise _fail(Reason.EVIDENCE_INVALID, "the approval names no policy of this ledger")
        t = policy.terms
        if (body.amount, body.beneficiary, body.device_id, body.circuit_id) == \
                (t.amount, t.beneficiary, t.device_id, t.circuit_id):
            raise _fail(Reason.EVIDENCE_INVALID, "the approval agrees with the policy")
        if not self.verifier(_PAYOUT_TAG, body.encode(), ap.signature, ap.oracle_id):
            raise _fail(Reason.EVIDENCE_INVALID, "the approval's signature does not verify")
        reason = self._vote_epoch_rejection(ap.oracle_id, body.oracle_set_epoch, params, now)
        if reason is not None:
            raise _fail(reason)
        return self._slash(tx, BondHolder.ORACLE, ap.oracle_id, tx.reporter, params, now)

    def _check_frame_equivocation(self, tx: FrameEquivocation, params: EconParams, now: int) -> Effect:
        a, b = tx.first, tx.second
        fa, fb = a.frame, b.frame
        if (fa.device_id, fa.epoch, fa.seq) != (fb.device_id, fb.epoch, fb.seq):
            raise _fail(Reason.EVIDENCE_INVALID, "the frames are not for one (device, epoch, seq)")
        if fa == fb:
            raise _fail(Reason.EVIDENCE_INVALID, "the same frame twice")
        if not all(self.verifier(_FRAME_TAG, f.frame.encode(), f.signature, fa.device_id) for f in (a, b)):
            raise _fail(Reason.EVIDENCE_INVALID, "a frame's signature does not verify")
        if fa.device_id not in self.devices:
            raise _fail(Reason.NOT_FOUND, "the device is not enrolled")
        if fa.device_id in self.econ.slashed_devices:
            raise _fail(Reason.EVIDENCE_DUPLICATE, "the device was already slashed")
        if now > max(fa.ts_ms, fb.ts_ms) + params.unlock_delay_ms:
            raise _fail(Reason.EVIDENCE_STALE, "the frames are older than the bond unlock delay")
        return self._slash(tx, BondHolder.DEVICE, fa.device_id, tx.reporter, params, now)

    def _slash(self, tx: Message, kind: BondHolder, offender: bytes, reporter: bytes, params: EconParams,
               now: int, evidence: str | None = None) -> Effect:
        """S3: the whole bond: the reporter's share to `rewards`, the rest to free capital. The oracle
        is barred from the set (SLASHED_MEMBER at the next rotation); the device is revoked now and
        none of its unpaid claims is paid (P3 hook in payout_rejection)."""
        bond = self.econ.bond(kind, offender)
        amount = 0 if bond is None else bond.amount
        to_reporter, to_pool = economics.slash_split(amount, params.reporter_share_bps)
        account = bond_account(kind, offender)
        transfers = [Transfer(account, dest, x) for dest, x in ((REWARDS, to_reporter), (FREE, to_pool)) if x]
        key = (kind, offender)

        def commit(state: LedgerState, height: int) -> None:
            econ = state.econ
            if key in econ.bonds:
                del econ.bonds[key]
            econ.bond_total -= amount
            if to_reporter:
                econ.rewards[reporter] = econ.rewards.get(reporter, 0) + to_reporter
            econ.slashes.append(Slash(kind, offender, evidence or tx.NAME, reporter, amount, to_reporter, to_pool,
                                      height, now))
            if kind is BondHolder.ORACLE:
                econ.slashed_oracles.add(offender)
            else:
                econ.slashed_devices.add(offender)
                device = state.devices[offender]
                if device.revoked_ms is None:
                    device.revoked_ms = now

        return Effect(tx, TxKind.SLASH, now, transfers=tuple(transfers), _commit=commit)

    def group_qc_rejection(self, qc: GroupQuorumCertificate, now_ms: int) -> Reason | None:
        """Q3 of a group QC: its epoch and signers. The one place a chain's mirror differs: the
        contract checked the chain's ECDSA group QC, whose Ed25519 signatures are not on chain
        (ledger/evm/mirror.py `MirrorState`, DESIGN §13)."""
        body = qc.body
        return self._signers_rejection(body.oracle_set_epoch, domain_tag(body.NAME), body.encode(), qc.signatures,
                                       now_ms)

    def check_chain_slash(self, tx: ChainSlash, now: int) -> Effect:
        """A slash a pool contract decided on evidence these rules cannot check (DESIGN §13): only an
        EVM pool's mirror records it (ledger/evm/mirror.py `MirrorState`); any other ledger refuses."""
        raise _fail(Reason.WRONG_TYPE, "a chain-slash is recorded only by an EVM pool's mirror: submit the "
                    "evidence itself (vote-equivocation, contradicting-approve, frame-equivocation)")

    def group_payout_mismatch(self, body: GroupPayoutBody, now: int) -> str | None:
        """Q4 for a corroborated policy (policy known): why the body disagrees with it, or None."""
        policy = self.policies[body.policy_id]
        t = policy.terms
        group = self.econ.group_of(body.policy_id)
        if not group:
            return "the policy is not a corroborated policy"
        if (body.circuit_id, body.beneficiary, body.amount) != (t.circuit_id, t.beneficiary, t.amount):
            return "circuit, beneficiary or amount is not the policy's"
        if body.claim_id != group_claim_id(body.policy_id, body.windows):
            return "claim_id is not derived from (policy, windows)"
        ids = [w.device_id for w in body.windows]
        if ids != sorted(set(ids)):
            return "windows must be sorted by device_id, one per device"
        n = self.circuits[t.circuit_id].n
        for w in body.windows:
            if w.device_id not in group:
                return f"device {w.device_id.hex()} is not in the policy's group"
            if w.end_seq - w.start_seq != n or not w.start_ts < w.end_ts:
                return "a window is not n readings with start_ts < end_ts"
            if w.epoch not in self.devices[w.device_id].epochs:
                return f"the device was never enrolled with epoch {w.epoch}"
            if not self.agent_enrolled(w.agent_id, now):
                return f"agent {w.agent_id.hex()} is not enrolled"
        return None

    def _group_rules(self, body: GroupPayoutBody, now: int) -> tuple[int, int]:
        """Q4, C1..C3 and P1..P8 of a group body (its QC aside): the group's span (earliest start,
        latest end), or FaultproofError. Shared by the ledger (before paying) and the oracles
        (before voting: `group_payout_rejection`), so the two cannot disagree about a rule."""
        if body.policy_id not in self.policies:
            raise _fail(Reason.NOT_FOUND, "no such policy")
        mismatch = self.group_payout_mismatch(body, now)
        if mismatch is not None:
            raise _fail(Reason.PAYOUT_MISMATCH, mismatch)
        econ = self.econ.policies[body.policy_id]
        spans = [(w.start_ts, w.end_ts) for w in body.windows]
        corroboration = economics.corroboration_rejection([w.agent_id for w in body.windows], spans,
                                                          self.econ.min_proofs_of(econ), econ.overlap_tolerance_ms)
        if corroboration is not None:
            raise _fail(corroboration)
        start_ts, end_ts = min(s for s, _ in spans), max(e for _, e in spans)
        for w in body.windows:
            probe = PayoutBody(ledger_id=body.ledger_id, oracle_set_epoch=body.oracle_set_epoch,
                               claim_id=body.claim_id, policy_id=body.policy_id, device_id=w.device_id,
                               epoch=w.epoch, start_seq=w.start_seq, end_seq=w.end_seq, start_ts=start_ts,
                               end_ts=end_ts, circuit_id=body.circuit_id, beneficiary=body.beneficiary,
                               amount=body.amount)
            # S4 on the window's OWN end (its time and chain), the other rules on the group's span
            # (a span probe carries no single end frame to compare with an anchored head).
            reason = payout_rejection(self, probe, now, anchored_end=probe.replace(
                start_ts=w.start_ts, end_ts=w.end_ts, end_chain=w.end_chain))
            if reason is not None:
                raise _fail(reason)
        return start_ts, end_ts

    def _check_group_payout(self, qc: GroupQuorumCertificate, now: int) -> Effect:
        """Q1..Q4 and P1..P8 for a corroborated claim, plus C1..C3 (economics.corroboration_rejection).
        The claim pays once for the group: its span (earliest start, latest end] is the window the
        period, overlap and term rules look at; each device's revocation is checked against it."""
        body = qc.body
        existing = self._paid_already(qc, TxKind.GROUP_PAYOUT, now)
        if existing is not None:
            return existing
        qc_reason = self.group_qc_rejection(qc, now)
        if qc_reason is not None:
            raise _fail(qc_reason)
        start_ts, end_ts = self._group_rules(body, now)
        policy = self.policies[body.policy_id]
        pay = min(body.amount, policy.locked)
        pid, cid = body.policy_id, body.claim_id

        def commit(state: LedgerState, height: int) -> None:
            _pay_from_lock(state.policies[pid], cid, start_ts, end_ts, pay, height, now)
            for w in body.windows:  # S2: each device's window is paid, under any other policy too
                state.history(w.device_id).record_window(w)
            state.claims[cid] = PaidClaim(cid, pid, height, body, pay)
            after_payout(state, now, pay)  # P10: a group payout is a payout to the circuit breaker

        return Effect(qc, TxKind.GROUP_PAYOUT, now, paid=pay, transfers=(Transfer(locked_account(pid), PAID, pay),),
                      policy_id=pid, claim_id=cid, _commit=commit)


def _noop(state: LedgerState, height: int) -> None:
    return None


def _device(state: LedgerState, device_id: bytes) -> Device:
    """The enrolled device (revoked or not), or NOT_FOUND."""
    device = state.devices.get(device_id)
    if device is None:
        raise _fail(Reason.NOT_FOUND, "no such device")
    return device


_Revocable = TypeVar("_Revocable", Device, Agent)


def _revoke(ledger: LedgerState, table: Callable[[LedgerState], dict[bytes, _Revocable]], key: bytes, noun: str, stx: SignedAdminTx, kind: TxKind, now: int) -> Effect:
    """Revocation of an enrolled device or agent: it must exist and not be revoked yet; the revocation time is
    kept (the entry stays, so a revoked id is never enrolled again)."""
    held = table(ledger).get(key)
    if held is None:
        raise _fail(Reason.NOT_FOUND, f"no such {noun}")
    if held.revoked_ms is not None:
        raise _fail(Reason.INVALID_STATE_TRANSITION, f"{noun} already revoked")

    def commit(state: LedgerState, height: int) -> None:
        table(state)[key].revoked_ms = now

    return Effect(stx, kind, now, _commit=commit)


def _holder_kind(value: int) -> BondHolder:
    try:
        return BondHolder(value)
    except ValueError:
        raise _fail(Reason.INVALID_PARAMETERS, f"unknown bond holder kind {value}") from None


def _vote_facts(vote: Approve | Reject) -> tuple[bytes, bytes, int, bytes]:
    """(oracle_id, ledger_id, oracle_set_epoch, claim_id) of a vote."""
    if isinstance(vote, Approve):
        return vote.oracle_id, vote.body.ledger_id, vote.body.oracle_set_epoch, vote.body.claim_id
    return vote.body.oracle_id, vote.body.ledger_id, vote.body.oracle_set_epoch, vote.body.claim_id


def _with_commit(effect: Effect, commit: Callable[[LedgerState, int], None]) -> Effect:
    return dataclasses.replace(effect, _commit=commit)


def _materialise(policy: Policy, now_ms: int) -> None:
    """Take the timed transitions that ledger time has reached, through the transition table."""
    for event in policy._timed_events(now_ms):
        if (policy.status, event) in POLICY_TRANSITIONS:
            policy.status = transition(policy.status, event)


def _pay_from_lock(policy: Policy, claim_id: bytes, start_ts: int, end_ts: int, pay: int, height: int,
                   now_ms: int) -> None:
    """A payout's effect on its policy (single or group): timed transitions first, then `pay` leaves the
    lock and the window is recorded in its period."""
    _materialise(policy, now_ms)
    policy.locked -= pay
    policy.paid_total += pay
    policy.record(PaidWindow(claim_id, start_ts, end_ts, policy.period_of(end_ts), pay, height))


_Args = TypeVar("_Args", bound=Message)
_AdminCheck = Callable[[LedgerState, SignedAdminTx, int], Effect]


def _admin_check(args_type: type[_Args], check: Callable[[LedgerState, _Args, SignedAdminTx, int], Effect]) -> _AdminCheck:
    """A row of the admin table: the argument type its kind takes, and the check that decides it. The
    one place an admin tx's arguments are matched to its kind, so every check receives them typed (the
    decoder refuses a mismatch too; this holds the line for a tx built in memory)."""

    def decide(state: LedgerState, stx: SignedAdminTx, now: int) -> Effect:
        args = stx.tx.args
        if not isinstance(args, args_type):
            raise _fail(Reason.WRONG_TYPE, f"{AdminKind(stx.tx.kind).name} takes {args_type.NAME} arguments")
        return check(state, args, stx, now)

    return decide


_ADMIN_CHECKS: dict[AdminKind, _AdminCheck] = {
    AdminKind.REGISTER_CIRCUIT: _admin_check(RegisterCircuit, LedgerState._register_circuit),
    AdminKind.ENROL_DEVICE: _admin_check(EnrolDevice, LedgerState._enrol_device),
    AdminKind.REVOKE_DEVICE: _admin_check(RevokeDevice, LedgerState._revoke_device),
    AdminKind.ENROL_AGENT: _admin_check(EnrolAgent, LedgerState._enrol_agent),
    AdminKind.REVOKE_AGENT: _admin_check(RevokeAgent, LedgerState._revoke_agent),
    AdminKind.DEPOSIT: _admin_check(Deposit, LedgerState._deposit),
    AdminKind.WITHDRAW: _admin_check(Withdraw, LedgerState._withdraw),
    AdminKind.ISSUE_POLICY: _admin_check(IssuePolicy, LedgerState._issue_policy),
    AdminKind.ROTATE_ORACLES: _admin_check(RotateOracles, LedgerState._rotate_oracles),
    AdminKind.ROTATE_ADMIN: _admin_check(RotateAdmin, LedgerState._rotate_admin),
    AdminKind.SET_ECON_PARAMS: _admin_check(EconParams, LedgerState._set_econ_params),
    AdminKind.POST_BOND: _admin_check(PostBond, LedgerState._post_bond),
    AdminKind.UNBOND: _admin_check(Unbond, LedgerState._unbond),
    AdminKind.ISSUE_ECON_POLICY: _admin_check(EconPolicy, LedgerState._issue_econ_policy),
}


# --------------------------------------------------------------------------- rules for oracles


def payout_rejection(state: LedgerState, body: PayoutBody, now_ms: int, *,
                     anchored_end: PayoutBody | None = None) -> Reason | None:
    """The LEDGER_STATE rules P1..P8 for a payout body on `state` at ledger time now_ms.

    An oracle calls this on its replayed view before voting (a reason means a Reject vote); the
    ledger calls it before paying. It assumes the content checks passed (policy known, body
    matching it: `LedgerState.payout_mismatch`) and does not look at the QC or at whether this
    claim was already paid (`LedgerState.paid_claim`); an unknown policy is POLICY_NOT_ACTIVE.
    """
    if body.device_id in state.hw.decommissioned:  # P0 (H11): never paid, whatever the window
        return Reason.DEVICE_DECOMMISSIONED
    policy = state.policies.get(body.policy_id)
    if policy is None or policy.status_at(now_ms) is not PolicyStatus.ACTIVE:
        return Reason.POLICY_NOT_ACTIVE
    t = policy.terms
    if not (t.start_ms <= body.start_ts and body.end_ts <= t.end_ms):
        return Reason.OUTSIDE_POLICY_TERM
    device = state.devices.get(body.device_id)
    if device is not None and device.revoked_ms is not None and device.revoked_ms <= body.end_ts:
        return Reason.DEVICE_REVOKED
    if body.device_id in state.econ.slashed_devices:  # a proven double-signer gets nothing unpaid (§14)
        return Reason.DEVICE_REVOKED
    hw_reason = hardware_rejection(state, body)  # P9
    if hw_reason is not None:
        return hw_reason
    if policy.overlaps(body.start_ts, body.end_ts) or device_window_overlaps(state, body):
        return Reason.WINDOW_OVERLAP
    # A group's span probe (§14) has no one end frame: S4 looks at the window's own end instead.
    anchor_reason = anchored_history_rejection(state, anchored_end or body)
    if anchor_reason is not None:
        return anchor_reason
    if policy.period_paid(policy.period_of(body.end_ts)):
        return Reason.PERIOD_LIMIT
    if policy.locked == 0:
        return Reason.COVERAGE_EXHAUSTED
    if now_ms > body.end_ts + t.claim_window_ms:
        return Reason.CLAIM_WINDOW_CLOSED
    if body.end_ts > now_ms + state.genesis.max_skew_ms:
        return Reason.END_TS_IN_FUTURE
    return None


def build_payout_body(state: LedgerState, pid: bytes, epoch: int, start_seq: int, end_seq: int,
                      start_ts: int, end_ts: int, end_chain: bytes = bytes(32)) -> PayoutBody:
    """The PayoutBody every honest oracle builds for a claim on `pid` (current oracle-set epoch)."""
    policy = state.policies[pid]
    t = policy.terms
    return PayoutBody(ledger_id=state.ledger_id, oracle_set_epoch=state.oracle_set.epoch,
                      claim_id=claim_id(pid, t.device_id, epoch, start_seq, end_seq), policy_id=pid,
                      device_id=t.device_id, epoch=epoch, start_seq=start_seq, end_seq=end_seq,
                      start_ts=start_ts, end_ts=end_ts, circuit_id=t.circuit_id, beneficiary=t.beneficiary,
                      amount=t.amount, end_chain=end_chain)


def group_payout_rejection(state: LedgerState, body: GroupPayoutBody, now_ms: int) -> FaultproofError | None:
    """The ledger's rules for a corroborated payout body on `state` at now_ms, its QC aside (§14):
    PAYOUT_MISMATCH, C1..C3 (corroboration_*), then P1..P8 on the group's span. None = it would
    pay. An oracle calls it before it signs a GroupVote."""
    try:
        state._group_rules(body, now_ms)
    except FaultproofError as e:
        return e
    return None


def build_group_payout_body(state: LedgerState, pid: bytes, windows: Sequence[CorroboratingWindow]) -> GroupPayoutBody:
    """The GroupPayoutBody every honest oracle builds for these windows of corroborated policy
    `pid` (current oracle-set epoch): windows sorted by device, the claim_id derived from them."""
    t = state.policies[pid].terms
    ordered = tuple(sorted(windows, key=lambda w: w.device_id))
    return GroupPayoutBody(ledger_id=state.ledger_id, oracle_set_epoch=state.oracle_set.epoch,
                           claim_id=group_claim_id(pid, ordered), policy_id=pid, windows=ordered,
                           circuit_id=t.circuit_id, beneficiary=t.beneficiary, amount=t.amount)


# --------------------------------------------------------------------------- ledger soundness
# DESIGN §11, rules S1-S4 of the docstring. Kept in one block, apart from the money and policy
# rules, so it reads (and merges) on its own.

# Anchored heads kept per device, oldest evicted first (deterministic, so every replica agrees).
# At one anchor a minute this is about three days of heads, above the default claim windows' use.
MAX_ANCHORED_HEADS = 4096


class _Intervals:
    """Disjoint half-open intervals (start, end], with an O(log n) overlap test."""

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []

    def overlaps(self, start: int, end: int) -> bool:
        i = bisect.bisect_left(self._starts, start)
        if i > 0 and self._ends[i - 1] > start:
            return True
        return i < len(self._starts) and self._starts[i] < end

    def add(self, start: int, end: int) -> None:
        i = bisect.bisect_left(self._starts, start)
        self._starts.insert(i, start)
        self._ends.insert(i, end)


@dataclass(frozen=True)
class AnchoredHead:
    device_id: bytes
    epoch: int
    seq: int
    ts_ms: int
    chain: bytes
    agent_id: bytes
    anchored_ms: int  # ledger time of the anchor entry
    height: int


@dataclass
class DeviceHistory:
    """What the ledger knows of one device's frames: the windows it paid (under any policy) and the
    heads its agents anchored."""

    times: _Intervals = field(default_factory=_Intervals)
    seqs: dict[int, _Intervals] = field(default_factory=dict)  # epoch -> paid seq ranges
    heads: dict[tuple[int, int], AnchoredHead] = field(default_factory=dict)  # (epoch, seq) -> head
    last_head: AnchoredHead | None = None  # the highest (epoch, seq) anchored

    def window_overlaps(self, body: PayoutBody) -> bool:
        seqs = self.seqs.get(body.epoch)
        return self.times.overlaps(body.start_ts, body.end_ts) or (
            seqs is not None and seqs.overlaps(body.start_seq, body.end_seq))

    def record_window(self, body: PayoutBody | CorroboratingWindow) -> None:
        self.times.add(body.start_ts, body.end_ts)
        self.seqs.setdefault(body.epoch, _Intervals()).add(body.start_seq, body.end_seq)

    def record_head(self, head: AnchoredHead) -> None:
        key = (head.epoch, head.seq)
        if key in self.heads:
            return  # the same head again (an idle device): nothing new
        self.heads[key] = head  # dicts keep insertion order: the first key is the oldest
        if len(self.heads) > MAX_ANCHORED_HEADS:
            del self.heads[next(iter(self.heads))]
        if self.last_head is None or key > (self.last_head.epoch, self.last_head.seq):
            self.last_head = head


def check_term_start(state: LedgerState, terms: IssuePolicy, now_ms: int) -> None:
    """S1: a term starting before the ledger's now would insure frames already sent (and windows
    already paid under an earlier policy). max_skew_ms absorbs the admin's clock and transit."""
    allowed = state.genesis.max_skew_ms + state.genesis.max_backdate_ms
    if terms.start_ms + allowed < now_ms:
        raise _fail(Reason.TERM_STARTS_IN_PAST,
                    f"the term starts at {terms.start_ms}, before the ledger's now {now_ms} "
                    f"(allowed: skew {state.genesis.max_skew_ms} ms + backdate {state.genesis.max_backdate_ms} ms)")


def device_window_overlaps(state: LedgerState, body: PayoutBody) -> bool:
    """S2: whether the window overlaps one paid for the device under any of its policies."""
    history = state.device_history.get(body.device_id)
    return history is not None and history.window_overlaps(body)


def anchored_history_rejection(state: LedgerState, body: PayoutBody) -> Reason | None:
    """S4: the window's end against the device's anchored heads."""
    history = state.device_history.get(body.device_id)
    head = history.heads.get((body.epoch, body.end_seq)) if history is not None else None
    if head is not None and (head.chain != body.end_chain or head.ts_ms != body.end_ts):
        return Reason.ANCHOR_MISMATCH
    device = state.devices.get(body.device_id)
    if device is not None and device.revoked_ms is not None and head is None:
        return Reason.REVOKED_WINDOW_NOT_ANCHORED
    return None


def check_anchor(state: LedgerState, tx: SignedAnchor, now: int) -> Effect:
    """S3: an agent's batch of device heads."""
    b = tx.body
    if b.ledger_id != state.ledger_id:
        raise _fail(Reason.WRONG_LEDGER, "the anchor is for another ledger")
    if not state.agent_enrolled(b.agent_id, now):
        raise _fail(Reason.UNKNOWN_AGENT, "the anchoring agent is not enrolled (or is revoked)")
    if not tx.verify():
        raise _fail(Reason.BAD_AGENT_SIGNATURE, "the anchor's signature does not verify under its agent")
    last_round = state.anchor_rounds.get(b.agent_id)
    if last_round is not None and b.round <= last_round:
        raise _fail(Reason.ANCHOR_STALE, f"round {b.round}, the agent's last was {last_round}")
    if not b.heads:
        raise _fail(Reason.INVALID_PARAMETERS, "an anchor needs at least one head")
    keys = [(h.device_id, h.epoch, h.seq) for h in b.heads]
    if any(a >= c for a, c in zip(keys, keys[1:], strict=False)):
        raise _fail(Reason.INVALID_PARAMETERS, "heads must be sorted strictly by (device, epoch, seq)")
    if merkle_root([h.leaf_hash for h in b.heads]) != b.root:
        raise _fail(Reason.ANCHOR_BAD_ROOT)
    for h in b.heads:
        device = state.devices.get(h.device_id)
        if device is None:
            raise _fail(Reason.NOT_FOUND, f"device {h.device_id.hex()} is not enrolled")
        if device.revoked_ms is not None:
            raise _fail(Reason.DEVICE_REVOKED, f"device {h.device_id.hex()} is revoked: its history is closed")
        if custody_rejection(state, h.device_id, b.agent_id) is not None:  # H9 (hardware2)
            raise _fail(Reason.DEVICE_NOT_IN_CUSTODY, f"device {h.device_id.hex()} was transferred to another agent")
        if h.epoch not in device.epochs:
            raise _fail(Reason.INVALID_PARAMETERS, f"device {h.device_id.hex()} was never enrolled with epoch {h.epoch}")
        if h.ts_ms > now + state.genesis.max_skew_ms:
            raise _fail(Reason.INVALID_PARAMETERS, f"head of {h.device_id.hex()} is dated in the future")
        history = state.device_history.get(h.device_id)
        known = history.heads.get((h.epoch, h.seq)) if history is not None else None
        if known is not None and (known.chain != h.chain or known.ts_ms != h.ts_ms):
            raise _fail(Reason.ANCHOR_CONFLICT,
                        f"device {h.device_id.hex()} epoch {h.epoch} seq {h.seq} was anchored with another frame")
    agent_id, round_, heads = b.agent_id, b.round, b.heads

    def commit(st: LedgerState, height: int) -> None:
        st.anchor_rounds[agent_id] = round_
        for h in heads:
            st.history(h.device_id).record_head(
                AnchoredHead(h.device_id, h.epoch, h.seq, h.ts_ms, h.chain, agent_id, now, height))

    return Effect(tx, TxKind.ANCHOR, now, _commit=commit)


# --------------------------------------------------------------------------- hardware (DESIGN §15)
# Device keys (Ed25519 or P-256), the measurement allowlist, oracle suspensions and the pool
# circuit breaker: rules H1..H5, P9, P10 of the module docstring. Kept in one block with its own
# state object (`LedgerState.hw`) so the other areas of this file merge cleanly.


@dataclass
class Suspension:
    since_ms: int
    height: int
    reason: Reason
    lifted_ms: int | None = None


@dataclass(frozen=True)
class Decommission:
    """H11: when and where a device was retired, its final anchored head (None: it never had one)
    and the policies that entry closed with the coverage each released."""

    time_ms: int
    height: int
    final_head: AnchoredHead | None
    closed: tuple[tuple[bytes, int], ...]  # (policy_id, coverage released)


@dataclass
class HardwareState:
    device_keys: dict[bytes, PublicKey] = field(default_factory=dict)  # only keys enrolled by H1
    key_history: dict[bytes, list[tuple[int, PublicKey]]] = field(default_factory=dict)  # (effective_ms, key)
    allowlist: set[tuple[int, bytes]] = field(default_factory=set)  # (component, digest)
    suspensions: dict[bytes, list[Suspension]] = field(default_factory=dict)
    breaker_window_ms: int = 0
    breaker_share_bps: int = 0  # 0: the breaker is off
    paused_ms: int | None = None  # when the breaker tripped, until lifted
    window_payouts: list[tuple[int, int]] = field(default_factory=list)  # (ledger time, paid)
    attestation_max_age_ms: int = 0  # 0: payouts need no attestation
    recent_heads: dict[bytes, tuple[int, int]] = field(default_factory=dict)  # hash -> (height, time)
    results: dict[bytes, list[Result]] = field(default_factory=dict)  # device -> attestation results
    last_nonce_height: dict[bytes, int] = field(default_factory=dict)  # device -> height answered
    history: dict[bytes, list[tuple[int, TxKind]]] = field(default_factory=dict)  # device -> (height, kind)
    transport_keys: dict[bytes, bytes] = field(default_factory=dict)  # principal -> bound libp2p key (H8)
    custodian: dict[bytes, bytes] = field(default_factory=dict)  # device -> the agent it was transferred to (H9)
    gateway_aks: dict[bytes, bytes] = field(default_factory=dict)  # agent -> pinned TPM AK point (H10)
    gateway_results: dict[bytes, list[Result]] = field(default_factory=dict)  # agent -> quote appraisals
    gateway_nonce_height: dict[bytes, int] = field(default_factory=dict)  # agent -> height answered
    decommissioned: dict[bytes, Decommission] = field(default_factory=dict)  # device -> H11 (round 3)


def device_key(state: LedgerState, device_id: bytes, at_ms: int | None = None) -> PublicKey:
    """The key a device's frames and evidence verify under at frame time `at_ms` (None: the latest
    key): as rotated (H7), as enrolled (H1), else Ed25519 = the id."""
    history = state.hw.key_history.get(device_id)
    if history:
        if at_ms is None:
            return history[-1][1]
        i = bisect.bisect_right([t for t, _ in history], at_ms) - 1
        return history[max(i, 0)][1]
    key = state.hw.device_keys.get(device_id)
    return key if key is not None else PublicKey(KeyType.ED25519, device_id)


def device_key_schedule(state: LedgerState, device_id: bytes) -> tuple[tuple[int, PublicKey], ...]:
    """Every key of the device with the frame time it takes effect from (the first from 0)."""
    history = state.hw.key_history.get(device_id)
    return tuple(history) if history else ((0, device_key(state, device_id)),)


def device_of(state: LedgerState, tx: Message) -> bytes | None:
    """The device a ledger transaction is about, if any (for the device's history)."""
    if isinstance(tx, SignedAdminTx):
        a = tx.tx.args
        if isinstance(a, (EnrolDevice, RevokeDevice, IssuePolicy, RotateDeviceKey, TransferDevice, DecommissionDevice)):
            return a.device_id
        if isinstance(a, EnrolDeviceKey):
            return a.enrol.device_id
        if isinstance(a, Lift) and a.target == LiftTarget.SUSPENSION:
            return a.device_id
        return None
    if isinstance(tx, (QuorumCertificate, SignedEvidence, SuspensionCertificate)):
        return tx.body.device_id
    if isinstance(tx, ExpirePolicy):
        policy = state.policies.get(tx.policy_id)
        return policy.device_id if policy is not None else None
    return None


def note_device_event(state: LedgerState, effect: Effect, height: int) -> None:
    device_id = device_of(state, effect.tx)
    if device_id is not None:
        state.hw.history.setdefault(device_id, []).append((height, effect.kind))


def device_history(state: LedgerState, device_id: bytes) -> list[tuple[int, TxKind]]:
    """Every ledger entry about the device, in order: enrolment, keys, evidence, policies, payouts,
    suspensions, revocation (`GET /v1/devices/{id}/history`)."""
    return list(state.hw.history.get(device_id, ()))


def measurement_allowed(state: LedgerState, component: int, digest: bytes) -> bool:
    return (component, digest) in state.hw.allowlist


def active_suspension(state: LedgerState, device_id: bytes) -> Suspension | None:
    for s in state.hw.suspensions.get(device_id, ()):
        if s.lifted_ms is None:
            return s
    return None


def hardware_rejection(state: LedgerState, body: PayoutBody) -> Reason | None:
    """P9, part of payout_rejection (so oracles vote Reject on the same grounds)."""
    hw = state.hw
    if hw.paused_ms is not None:
        return Reason.PAYOUTS_PAUSED
    for s in hw.suspensions.get(body.device_id, ()):
        if s.since_ms <= body.end_ts and (s.lifted_ms is None or s.lifted_ms > body.start_ts):
            return Reason.DEVICE_SUSPENDED
    if hw.attestation_max_age_ms:
        return coverage_rejection(hw.results.get(body.device_id, ()), body.start_ts, body.end_ts,
                                  hw.attestation_max_age_ms)
    return None


# Attestation nonces are recent entry hashes: at most this many entries back, at most this old.
EVIDENCE_NONCE_ENTRIES = 65_536
EVIDENCE_FRESH_MS = 10 * 60 * 1000


def note_head(state: LedgerState, height: int, entry_hash: bytes, time_ms: int) -> None:
    """Remember the entry as a possible attestation nonce; forget the ones too old to answer.
    Deterministic in the entries, so every replica agrees on which nonces are fresh."""
    heads = state.hw.recent_heads
    heads[entry_hash] = (height, time_ms)
    while heads:
        oldest = next(iter(heads))
        h, t = heads[oldest]
        if len(heads) > EVIDENCE_NONCE_ENTRIES or t < time_ms - EVIDENCE_FRESH_MS:
            del heads[oldest]
        else:
            break


def _fresh_nonce(state: LedgerState, nonce: bytes, answered: dict[bytes, int], who: bytes, now: int,
                 what: str) -> tuple[int, int]:
    """H6 and H10: the nonce a device or gateway answered is a recent entry hash, fresh enough, and later
    than the last one `who` answered (`answered`: who -> that height). Returns the entry's (height, time)."""
    head = state.hw.recent_heads.get(nonce)
    if head is None:
        raise _fail(Reason.ATTESTATION_REPLAYED, "the nonce is not a recent ledger entry hash")
    nonce_height, nonce_time = head
    # The head itself is always fresh enough: on an idle ledger there is nothing newer to answer.
    if now - nonce_time > EVIDENCE_FRESH_MS and nonce_height != state.height:
        raise _fail(Reason.ATTESTATION_STALE, f"the nonce entry is {now - nonce_time} ms old")
    if nonce_height <= answered.get(who, -1):
        raise _fail(Reason.ATTESTATION_REPLAYED, f"the {what} already answered this or a later entry")
    return head


def check_evidence(state: LedgerState, ev: SignedEvidence, now: int) -> Effect:
    """H6: record a device attestation result."""
    b = ev.body
    device = _device(state, b.device_id)
    if device.revoked_ms is not None:
        raise _fail(Reason.DEVICE_REVOKED)
    if b.epoch != device.epoch:
        raise _fail(Reason.WRONG_EPOCH, f"evidence for epoch {b.epoch}, device epoch {device.epoch}")
    if not evidence_signed_by(ev, device_key(state, b.device_id)):
        raise _fail(Reason.BAD_ATTESTATION_SIGNATURE)
    nonce = _fresh_nonce(state, b.nonce, state.hw.last_nonce_height, b.device_id, now, "device")
    failure = measurement_failure(b, lambda c, d: measurement_allowed(state, c, d))
    return _record_appraisal(ev, TxKind.ATTEST, now, b.device_id, nonce, failure,
                             lambda hw: (hw.results, hw.last_nonce_height))


_AppraisalBooks = Callable[[HardwareState], tuple[dict[bytes, list[Result]], dict[bytes, int]]]


def _record_appraisal(tx: Message, kind: TxKind, now: int, who: bytes, nonce: tuple[int, int],
                      failure: str | None, books: _AppraisalBooks) -> Effect:
    """H6 and H10: an appraisal of `who` (a device, a gateway agent) that answered the entry
    `nonce` = (height, time) is recorded, passed or failed (a failure is recorded, not refused),
    with that height (the next one must answer a later entry). `books` names the hardware state's
    results and answered-heights of that kind of attester."""
    nonce_height, nonce_time = nonce
    # Dated by the nonce's entry: the attester measured no earlier than that (a lower bound that a
    # late submission cannot stretch).
    result = Result(who, nonce_time, failure is None, None if failure is None else Reason.ATTESTATION_FAILED,
                    failure or "")

    def commit(st: LedgerState, height: int) -> None:
        results, answered = books(st.hw)
        results.setdefault(who, []).append(result)
        answered[who] = nonce_height

    return Effect(tx, kind, now, _commit=commit)


def attestation_results(state: LedgerState, device_id: bytes) -> list[Result]:
    return list(state.hw.results.get(device_id, ()))


def _breaker_capital(state: LedgerState) -> int:
    return state.pool_total - state.balance(PAID)


def after_payout(state: LedgerState, now: int, paid: int) -> None:
    """P10, called from a payout's commit: count it in the rolling window; trip when over."""
    hw = state.hw
    if hw.breaker_share_bps == 0:
        return
    hw.window_payouts = [(t, a) for t, a in hw.window_payouts if t > now - hw.breaker_window_ms]
    hw.window_payouts.append((now, paid))
    total = sum(a for _, a in hw.window_payouts)
    # Capital as it was before this payout: the paid account already holds it.
    if total * 10_000 > hw.breaker_share_bps * (_breaker_capital(state) + paid):
        hw.paused_ms = now


def _typed_key(key_type_value: int, data: bytes) -> PublicKey:
    try:
        key_type = KeyType(key_type_value)
    except ValueError:
        raise _fail(Reason.INVALID_PARAMETERS, f"unknown key type {key_type_value}") from None
    if len(data) != KEY_LENGTHS[key_type]:
        raise _fail(Reason.WRONG_KEY_TYPE, f"a {len(data)}-byte key is not a {key_type.name} key")
    try:
        return PublicKey(key_type, data)
    except FaultproofError:
        raise _fail(Reason.INVALID_PARAMETERS, f"not a valid {key_type.name} key") from None


def _enrol_device_key(self: LedgerState, a: EnrolDeviceKey, stx: SignedAdminTx, now: int) -> Effect:
    key = _typed_key(a.key_type, a.public_key)
    if key.key_id != a.enrol.device_id:
        raise _fail(Reason.INVALID_PARAMETERS, "device_id is not the key id of the enrolled key")
    # A re-anchor keeps the key by construction: another key has another key id, so another device.
    inner = self._enrol_device(a.enrol, stx, now)
    inner_commit = inner._commit
    device_id = a.enrol.device_id

    def commit(state: LedgerState, height: int) -> None:
        if inner_commit is not None:
            inner_commit(state, height)
        state.hw.device_keys[device_id] = key

    return Effect(stx, TxKind.ENROL_DEVICE_KEY, now, _commit=commit)


def _set_measurement(self: LedgerState, a: SetMeasurement, stx: SignedAdminTx, now: int) -> Effect:
    if a.component not in {int(c) for c in Component}:
        raise _fail(Reason.INVALID_PARAMETERS, f"unknown component {a.component}")
    item = (a.component, a.digest)
    if a.allowed and item in self.hw.allowlist:
        raise _fail(Reason.ALREADY_EXISTS, "the measurement is already allowed")
    if not a.allowed and item not in self.hw.allowlist:
        raise _fail(Reason.NOT_FOUND, "the measurement is not on the allowlist")

    def commit(state: LedgerState, height: int) -> None:
        if a.allowed:
            state.hw.allowlist.add(item)
        else:
            state.hw.allowlist.discard(item)

    return Effect(stx, TxKind.SET_MEASUREMENT, now, _commit=commit)


_ROTATE_TAG = domain_tag(RotateDeviceKey.NAME)


def _rotate_device_key(self: LedgerState, a: RotateDeviceKey, stx: SignedAdminTx, now: int) -> Effect:
    device = _device(self, a.device_id)
    if device.revoked_ms is not None:
        raise _fail(Reason.INVALID_STATE_TRANSITION, "a revoked device has no key to rotate")
    key = _typed_key(a.key_type, a.public_key)
    old = device_key(self, a.device_id)
    if key == old:
        raise _fail(Reason.INVALID_PARAMETERS, "the new key is the current one")
    history = self.hw.key_history.get(a.device_id, [])
    if a.effective_ms < now or (history and a.effective_ms <= history[-1][0]):
        raise _fail(Reason.INVALID_PARAMETERS, "a rotation takes effect now or later, after the previous one")
    msg = rotation_message(self.ledger_id, a.device_id, a.key_type, a.public_key, a.effective_ms)
    if not verify_typed(old, _ROTATE_TAG, msg, a.endorsement):
        raise _fail(Reason.INVALID_PARAMETERS, "the current key did not sign the new one")
    device_id, effective = a.device_id, a.effective_ms

    def commit(state: LedgerState, height: int) -> None:
        hist = state.hw.key_history.setdefault(device_id, [])
        if not hist:
            hist.append((0, device_key(state, device_id)))
        hist.append((effective, key))

    return Effect(stx, TxKind.ROTATE_DEVICE_KEY, now, _commit=commit)


def _set_lockdown(self: LedgerState, a: SetLockdown, stx: SignedAdminTx, now: int) -> Effect:
    if a.breaker_share_bps > 10_000 or (a.breaker_share_bps and a.breaker_window_ms == 0):
        raise _fail(Reason.INVALID_PARAMETERS, "need breaker_share_bps <= 10000 and a window > 0")

    def commit(state: LedgerState, height: int) -> None:
        hw = state.hw
        hw.breaker_window_ms, hw.breaker_share_bps = a.breaker_window_ms, a.breaker_share_bps
        hw.attestation_max_age_ms = a.attestation_max_age_ms

    return Effect(stx, TxKind.SET_LOCKDOWN, now, _commit=commit)


def _lift(self: LedgerState, a: Lift, stx: SignedAdminTx, now: int) -> Effect:
    if a.target == LiftTarget.PAYOUTS:
        if self.hw.paused_ms is None:
            raise _fail(Reason.INVALID_STATE_TRANSITION, "payouts are not paused")

        def commit(state: LedgerState, height: int) -> None:
            state.hw.paused_ms = None
            state.hw.window_payouts = []  # the rolling window restarts at the resume

        return Effect(stx, TxKind.LIFT, now, _commit=commit)
    if a.target == LiftTarget.SUSPENSION:
        if active_suspension(self, a.device_id) is None:
            raise _fail(Reason.INVALID_STATE_TRANSITION, "the device is not suspended")
        device_id = a.device_id

        def commit_device(state: LedgerState, height: int) -> None:
            s = active_suspension(state, device_id)
            assert s is not None
            s.lifted_ms = now

        return Effect(stx, TxKind.LIFT, now, _commit=commit_device)
    raise _fail(Reason.INVALID_PARAMETERS, f"unknown lift target {a.target}")


_SUSPEND_TAG = domain_tag(SuspendBody.NAME)


def check_suspension(state: LedgerState, cert: SuspensionCertificate, now: int) -> Effect:
    """H3: k oracles of the current (or graced) set suspend a device."""
    body = cert.body
    if body.ledger_id != state.ledger_id:
        raise _fail(Reason.WRONG_LEDGER, "the suspension is for another ledger")
    oset = state.oracle_set_for(body.oracle_set_epoch, now)
    if oset is None:
        raise _fail(Reason.QC_STALE_EPOCH)
    fault = signer_set_fault(cert.signatures, oset.members, oset.threshold, _SUSPEND_TAG, body.encode(),
                             state.verifier)
    if fault is not None:
        raise _fail(fault)
    if body.device_id not in state.devices:
        raise _fail(Reason.NOT_FOUND, "no such device")
    if active_suspension(state, body.device_id) is not None:
        raise _fail(Reason.INVALID_STATE_TRANSITION, "the device is already suspended")
    if body.since_ms > now + state.genesis.max_skew_ms:
        raise _fail(Reason.INVALID_PARAMETERS, "a suspension cannot start in the future")
    device_id, since, reason = body.device_id, body.since_ms, body.reason

    def commit(st: LedgerState, height: int) -> None:
        st.hw.suspensions.setdefault(device_id, []).append(Suspension(since, height, reason))

    return Effect(cert, TxKind.SUSPEND_DEVICE, now, _commit=commit)


_TRANSPORT_TAG = domain_tag(BindTransportKey.NAME)


def _bind_transport_key(self: LedgerState, a: BindTransportKey, stx: SignedAdminTx, now: int) -> Effect:
    """H8: the admin records which libp2p key a token-held oracle or agent key gossips under,
    endorsed by that key. Later bindings replace earlier ones (a new transport key after a restart)."""
    agent = self.agents.get(a.principal)
    is_agent = agent is not None and agent.revoked_ms is None
    if not is_agent and a.principal not in self.oracle_set.members:
        raise _fail(Reason.NOT_FOUND, "the principal is neither an enrolled agent nor a current oracle")
    if a.transport_key == a.principal:
        raise _fail(Reason.INVALID_PARAMETERS, "a transport key must differ from the key it stands in for")
    msg = transport_binding_message(self.ledger_id, a.principal, a.transport_key)
    if not self.verifier(_TRANSPORT_TAG, msg, a.endorsement, a.principal):
        raise _fail(Reason.INVALID_PARAMETERS, "the principal did not sign its transport key")
    principal, transport = a.principal, a.transport_key

    def commit(state: LedgerState, height: int) -> None:
        state.hw.transport_keys[principal] = transport

    return Effect(stx, TxKind.BIND_TRANSPORT_KEY, now, _commit=commit)


def gossip_senders(state: LedgerState, principals: frozenset[bytes] | set[bytes]) -> frozenset[bytes]:
    """The keys that may gossip for `principals`: each principal and its bound transport key (H8)."""
    bound = state.hw.transport_keys
    return frozenset(principals) | frozenset(bound[p] for p in principals if p in bound)


def _transfer_device(self: LedgerState, a: TransferDevice, stx: SignedAdminTx, now: int) -> Effect:
    """H9: hand a device to another enrolled agent, from this entry on."""
    device = _device(self, a.device_id)
    if device.revoked_ms is not None:
        raise _fail(Reason.DEVICE_REVOKED, "a revoked device cannot be transferred")
    if not self.agent_enrolled(a.to_agent, now):
        raise _fail(Reason.UNKNOWN_AGENT, "the receiving agent is not enrolled (or is revoked)")
    if self.hw.custodian.get(a.device_id) == a.to_agent:
        raise _fail(Reason.INVALID_STATE_TRANSITION, "the device is already in that agent's custody")
    device_id, agent = a.device_id, a.to_agent

    def commit(state: LedgerState, height: int) -> None:
        state.hw.custodian[device_id] = agent

    return Effect(stx, TxKind.TRANSFER_DEVICE, now, _commit=commit)


def _decommission_device(self: LedgerState, a: DecommissionDevice, stx: SignedAdminTx, now: int) -> Effect:
    """H11: final anchored head, policies closed, revoked: one entry."""
    _device(self, a.device_id)  # enrolled (NOT_FOUND otherwise)
    if a.device_id in self.hw.decommissioned:
        raise _fail(Reason.INVALID_STATE_TRANSITION, "the device is already decommissioned")
    history = self.device_history.get(a.device_id)
    head = history.last_head if history is not None else None
    named = (a.epoch, a.seq, a.chain)
    if head is None and named != (0, 0, bytes(32)):
        raise _fail(Reason.ANCHOR_MISMATCH, "the device has no anchored head: name none (epoch 0, seq 0, zero chain), "
                                            "or anchor its final head first")
    if head is not None and named != (head.epoch, head.seq, head.chain):
        raise _fail(Reason.ANCHOR_MISMATCH, f"the device's last anchored head is epoch {head.epoch} seq {head.seq} "
                                            f"(chain {head.chain.hex()[:16]}…), not the one named")
    closing = [p for p in self.policies_of(a.device_id)
               if p.status_at(now) is not PolicyStatus.CLOSED and not self.econ.group_of(p.policy_id)]
    transfers: list[Transfer] = []
    for p in closing:
        if p.locked:
            transfers.append(Transfer(locked_account(p.policy_id), FREE, p.locked))
        if p.terms.premium:
            transfers.append(Transfer(PREMIUMS, FREE, p.terms.premium))
    device_id = a.device_id
    closed = tuple((p.policy_id, p.locked) for p in closing)

    def commit(state: LedgerState, height: int) -> None:
        for pid, _ in closed:
            pol = state.policies[pid]
            _materialise(pol, now)
            pol.status = transition(pol.status, PolicyEvent.DECOMMISSION)
            pol.locked = 0
            pol.closed_ms = now
            if state.open_policy.get(device_id) == pid:
                del state.open_policy[device_id]
        dev = state.devices[device_id]
        if dev.revoked_ms is None:
            dev.revoked_ms = now
        state.hw.decommissioned[device_id] = Decommission(now, height, head, closed)
        if head is not None:  # the final head's anchor entry is a step of the device's history
            events = state.hw.history.setdefault(device_id, [])
            if (head.height, TxKind.ANCHOR) not in events:
                bisect.insort(events, (head.height, TxKind.ANCHOR))

    return Effect(stx, TxKind.DECOMMISSION_DEVICE, now, transfers=tuple(transfers), _commit=commit)


def custody_rejection(state: LedgerState, device_id: bytes, agent_id: bytes) -> Reason | None:
    """H9: a transferred device's anchors and claims come from its custodian only (a device never
    transferred may be served by any enrolled agent, as before)."""
    custodian = state.hw.custodian.get(device_id)
    return Reason.DEVICE_NOT_IN_CUSTODY if custodian is not None and custodian != agent_id else None


def _enrol_gateway_key(self: LedgerState, a: EnrolGatewayKey, stx: SignedAdminTx, now: int) -> Effect:
    """H10: pin an enrolled agent's TPM attestation key (a later one replaces it)."""
    if not self.agent_enrolled(a.agent_id, now):
        raise _fail(Reason.UNKNOWN_AGENT, "the agent is not enrolled (or is revoked)")
    if a.ak_point[0] != 0x04 or _p256_point_or_none(a.ak_point) is None:
        raise _fail(Reason.INVALID_PARAMETERS, "the attestation key is not an uncompressed P-256 point")
    agent, ak = a.agent_id, a.ak_point

    def commit(state: LedgerState, height: int) -> None:
        state.hw.gateway_aks[agent] = ak

    return Effect(stx, TxKind.ENROL_GATEWAY_KEY, now, _commit=commit)


def _p256_point_or_none(point: bytes) -> object | None:
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError:
        return None


def check_gateway_quote(state: LedgerState, q: GatewayQuote, now: int) -> Effect:
    """H10: appraise and record a gateway's TPM quote (anyone submits; the AK signature speaks)."""
    if not state.agent_enrolled(q.agent_id, now):
        raise _fail(Reason.UNKNOWN_AGENT, "the quoting agent is not enrolled (or is revoked)")
    ak = state.hw.gateway_aks.get(q.agent_id)
    if ak is None:
        raise _fail(Reason.NOT_FOUND, "no attestation key is enrolled for this gateway")
    try:
        parsed = parse_quote(q.attest)
    except ValueError as e:
        raise _fail(Reason.BAD_QUOTE, f"malformed quote: {e}") from None
    # Everything but the PCR values: structure, AK, signature, selection (the nonce is its own).
    problem = verify_quote(q, parsed.extra_data, pcrs=GATEWAY_QUOTE_PCRS, allowlist=lambda c, d: True, known_ak=ak)
    if problem is not None:
        raise _fail(problem[0], problem[1])
    nonce = _fresh_nonce(state, parsed.extra_data, state.hw.gateway_nonce_height, q.agent_id, now, "gateway")
    passed = measurement_allowed(state, int(Component.GATEWAY_PCRS), parsed.pcr_digest)
    failure = None if passed else f"PCR digest {parsed.pcr_digest.hex()} is not on the allowlist"
    return _record_appraisal(q, TxKind.GATEWAY_QUOTE, now, q.agent_id, nonce, failure,
                             lambda hw: (hw.gateway_results, hw.gateway_nonce_height))


def gateway_results(state: LedgerState, agent_id: bytes) -> list[Result]:
    return list(state.hw.gateway_results.get(agent_id, ()))


_ADMIN_CHECKS.update({
    AdminKind.DECOMMISSION_DEVICE: _admin_check(DecommissionDevice, _decommission_device),
    AdminKind.ENROL_GATEWAY_KEY: _admin_check(EnrolGatewayKey, _enrol_gateway_key),
    AdminKind.TRANSFER_DEVICE: _admin_check(TransferDevice, _transfer_device),
    AdminKind.BIND_TRANSPORT_KEY: _admin_check(BindTransportKey, _bind_transport_key),
    AdminKind.ENROL_DEVICE_KEY: _admin_check(EnrolDeviceKey, _enrol_device_key),
    AdminKind.SET_MEASUREMENT: _admin_check(SetMeasurement, _set_measurement),
    AdminKind.ROTATE_DEVICE_KEY: _admin_check(RotateDeviceKey, _rotate_device_key),
    AdminKind.SET_LOCKDOWN: _admin_check(SetLockdown, _set_lockdown),
    AdminKind.LIFT: _admin_check(Lift, _lift),
})
