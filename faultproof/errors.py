"""The one error type and the one reason-code enum of faultproof.

Every refusal anywhere (a decoder, a frame check in the agent, a claim check in an oracle, a ledger
rule, a gossip validator, an HTTP handler) is a `FaultproofError` carrying a `Reason`. HTTP turns it
into `{"error": {"code": reason.value, "message": ...}}` with `reason.http_status`; gossip counts
drops by `reason.value`; the ledger records rejections by it. `docs/reasons.md` lists every member and
a test keeps the two in step.

This module must never import anything else from faultproof: everything imports it.
"""

from __future__ import annotations

import enum


class Stage(enum.StrEnum):
    """Where a reason can arise; decides what an oracle does with it (DESIGN §4)."""

    DECODE = "decode"  # bytes that are not a valid message: 400, no record
    CONTENT = "content"  # a claim/frame that is wrong on its face: 4xx, no vote, no record
    LEDGER_STATE = "ledger_state"  # depends on ledger state: an oracle signs a Reject vote
    LEDGER_TX = "ledger_tx"  # a transaction refused by the ledger's rules
    GOSSIP = "gossip"  # dropped by a gossip validator
    HTTP = "http"  # transport-level refusal
    CHAIN = "chain"  # refused only by the EVM settlement backend (DESIGN §13), never by the rules


class Reason(enum.StrEnum):
    """Reason codes shared by HTTP, gossip and the ledger. Values are stable wire strings."""

    # -- decoding (faultproof.encoding) --
    MALFORMED = "malformed"
    OVERSIZE = "oversize"
    TOO_DEEP = "too_deep"
    WRONG_TYPE = "wrong_type"
    MISSING_FIELD = "missing_field"
    UNKNOWN_FIELD = "unknown_field"
    WRONG_LENGTH = "wrong_length"
    OUT_OF_RANGE = "out_of_range"
    NON_CANONICAL = "non_canonical"
    UNKNOWN_MESSAGE_TYPE = "unknown_message_type"
    UNSUPPORTED_VERSION = "unsupported_version"

    # -- frames (agent ingest) --
    UNKNOWN_DEVICE = "unknown_device"
    BAD_FRAME_SIGNATURE = "bad_frame_signature"
    WRONG_EPOCH = "wrong_epoch"
    REPLAYED_FRAME = "replayed_frame"
    CHAIN_BROKEN = "chain_broken"
    TIMESTAMP_NOT_INCREASING = "timestamp_not_increasing"
    TIMESTAMP_IN_FUTURE = "timestamp_in_future"
    READING_OUT_OF_RANGE = "reading_out_of_range"

    # -- claim content (oracle, cheap first; no vote) --
    BAD_AGENT_SIGNATURE = "bad_agent_signature"
    UNKNOWN_AGENT = "unknown_agent"
    FRAME_MISMATCH = "frame_mismatch"
    WINDOW_LENGTH = "window_length"
    UNKNOWN_POLICY = "unknown_policy"
    POLICY_DEVICE_MISMATCH = "policy_device_mismatch"
    UNKNOWN_CIRCUIT = "unknown_circuit"
    BAD_PROOF = "bad_proof"
    RATE_LIMITED = "rate_limited"

    # -- ledger state (oracle Reject votes; the ledger refuses payouts with the same codes) --
    POLICY_NOT_ACTIVE = "policy_not_active"
    OUTSIDE_POLICY_TERM = "outside_policy_term"
    DEVICE_REVOKED = "device_revoked"
    WINDOW_OVERLAP = "window_overlap"
    PERIOD_LIMIT = "period_limit"
    COVERAGE_EXHAUSTED = "coverage_exhausted"
    CLAIM_WINDOW_CLOSED = "claim_window_closed"
    END_TS_IN_FUTURE = "end_ts_in_future"

    # -- ledger transactions --
    NOT_ADMIN = "not_admin"
    BAD_ADMIN_SIGNATURE = "bad_admin_signature"
    WRONG_LEDGER = "wrong_ledger"
    BAD_NONCE = "bad_nonce"
    INSUFFICIENT_FREE_CAPITAL = "insufficient_free_capital"
    INVALID_PARAMETERS = "invalid_parameters"
    DEVELOPMENT_CIRCUIT_ON_PRODUCTION = "development_circuit_on_production"
    ALREADY_EXISTS = "already_exists"
    NOT_FOUND = "not_found"
    ACTIVE_POLICY_EXISTS = "active_policy_exists"
    EXPIRY_TOO_EARLY = "expiry_too_early"
    INVALID_STATE_TRANSITION = "invalid_state_transition"
    INVALID_ORACLE_SET = "invalid_oracle_set"
    QC_INSUFFICIENT_SIGNATURES = "qc_insufficient_signatures"
    QC_DUPLICATE_SIGNER = "qc_duplicate_signer"
    QC_NON_MEMBER = "qc_non_member"
    QC_BAD_SIGNATURE = "qc_bad_signature"
    QC_STALE_EPOCH = "qc_stale_epoch"
    PAYOUT_MISMATCH = "payout_mismatch"
    CLAIM_CONFLICT = "claim_conflict"

    # -- gossip validators --
    SENDER_NOT_ALLOWED = "sender_not_allowed"
    DUPLICATE = "duplicate"

    # -- HTTP --
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    BAD_REQUEST = "bad_request"
    UNAVAILABLE = "unavailable"

    # -- economic security: bonds, slashing, corroboration, soundness (DESIGN §14) --
    ECONOMICALLY_UNSOUND = "economically_unsound"
    INSUFFICIENT_BOND = "insufficient_bond"
    BOND_IN_USE = "bond_in_use"
    BOND_LOCKED = "bond_locked"
    SLASHED_MEMBER = "slashed_member"
    EVIDENCE_INVALID = "evidence_invalid"
    EVIDENCE_DUPLICATE = "evidence_duplicate"
    EVIDENCE_STALE = "evidence_stale"
    CORROBORATION_TOO_FEW = "corroboration_too_few"
    CORROBORATION_SAME_AGENT = "corroboration_same_agent"
    CORROBORATION_NO_OVERLAP = "corroboration_no_overlap"
    # -- EVM settlement backend (evm, DESIGN §13): refusals only a chain has --
    REENTRANT_CALL = "reentrant_call"
    TOKEN_TRANSFER_FAILED = "token_transfer_failed"
    # -- ledger soundness: device history anchors, term start, follower clock (DESIGN §11) --
    TERM_STARTS_IN_PAST = "term_starts_in_past"
    ANCHOR_STALE = "anchor_stale"
    ANCHOR_CONFLICT = "anchor_conflict"
    ANCHOR_BAD_ROOT = "anchor_bad_root"
    ANCHOR_MISMATCH = "anchor_mismatch"
    REVOKED_WINDOW_NOT_ANCHORED = "revoked_window_not_anchored"
    LEDGER_TIME_SKEW = "ledger_time_skew"
    # -- hardware identity, attestation and lockdown (hardware, DESIGN §15) --
    WRONG_KEY_TYPE = "wrong_key_type"
    BAD_ATTESTATION_SIGNATURE = "bad_attestation_signature"
    ATTESTATION_REPLAYED = "attestation_replayed"
    BAD_QUOTE = "bad_quote"
    DEVICE_QUARANTINED = "device_quarantined"
    ATTESTATION_MISSING = "attestation_missing"
    ATTESTATION_FAILED = "attestation_failed"
    ATTESTATION_STALE = "attestation_stale"
    DEVICE_SUSPENDED = "device_suspended"
    PAYOUTS_PAUSED = "payouts_paused"
    # -- hardware round 2: device custody (hardware2, DESIGN §15 H9) --
    DEVICE_NOT_IN_CUSTODY = "device_not_in_custody"
    # -- hardware round 3: decommission (DESIGN §15 H11) --
    DEVICE_DECOMMISSIONED = "device_decommissioned"

    @property
    def stage(self) -> Stage:
        return _STAGE[self]

    @property
    def http_status(self) -> int:
        return _HTTP_STATUS.get(self, _STAGE_HTTP_STATUS[_STAGE[self]])

    @property
    def description(self) -> str:
        return _DESCRIPTION[self]


# hardware (DESIGN §15): kept apart from the groups below so areas merge without conflicts.
_HARDWARE_STAGES: dict[Reason, Stage] = {
    Reason.WRONG_KEY_TYPE: Stage.CONTENT,
    Reason.BAD_ATTESTATION_SIGNATURE: Stage.CONTENT,
    Reason.ATTESTATION_REPLAYED: Stage.CONTENT,
    Reason.BAD_QUOTE: Stage.CONTENT,
    Reason.DEVICE_QUARANTINED: Stage.CONTENT,
    Reason.ATTESTATION_MISSING: Stage.LEDGER_STATE,
    Reason.ATTESTATION_FAILED: Stage.LEDGER_STATE,
    Reason.ATTESTATION_STALE: Stage.LEDGER_STATE,
    Reason.DEVICE_SUSPENDED: Stage.LEDGER_STATE,
    Reason.PAYOUTS_PAUSED: Stage.LEDGER_STATE,
    Reason.DEVICE_NOT_IN_CUSTODY: Stage.CONTENT,
    Reason.DEVICE_DECOMMISSIONED: Stage.LEDGER_STATE,
}


def _stages() -> dict[Reason, Stage]:
    r = Reason
    groups: dict[Stage, tuple[Reason, ...]] = {
        Stage.DECODE: (
            r.MALFORMED, r.OVERSIZE, r.TOO_DEEP, r.WRONG_TYPE, r.MISSING_FIELD, r.UNKNOWN_FIELD,
            r.WRONG_LENGTH, r.OUT_OF_RANGE, r.NON_CANONICAL, r.UNKNOWN_MESSAGE_TYPE,
            r.UNSUPPORTED_VERSION,
        ),
        Stage.CONTENT: (
            r.UNKNOWN_DEVICE, r.BAD_FRAME_SIGNATURE, r.WRONG_EPOCH, r.REPLAYED_FRAME,
            r.CHAIN_BROKEN, r.TIMESTAMP_NOT_INCREASING, r.TIMESTAMP_IN_FUTURE,
            r.READING_OUT_OF_RANGE, r.BAD_AGENT_SIGNATURE, r.UNKNOWN_AGENT, r.FRAME_MISMATCH,
            r.WINDOW_LENGTH, r.UNKNOWN_POLICY, r.POLICY_DEVICE_MISMATCH, r.UNKNOWN_CIRCUIT,
            r.BAD_PROOF, r.RATE_LIMITED,
        ),
        Stage.LEDGER_STATE: (
            r.POLICY_NOT_ACTIVE, r.OUTSIDE_POLICY_TERM, r.DEVICE_REVOKED, r.WINDOW_OVERLAP,
            r.PERIOD_LIMIT, r.COVERAGE_EXHAUSTED, r.CLAIM_WINDOW_CLOSED, r.END_TS_IN_FUTURE,
        ),
        Stage.LEDGER_TX: (
            r.NOT_ADMIN, r.BAD_ADMIN_SIGNATURE, r.WRONG_LEDGER, r.BAD_NONCE,
            r.INSUFFICIENT_FREE_CAPITAL, r.INVALID_PARAMETERS,
            r.DEVELOPMENT_CIRCUIT_ON_PRODUCTION, r.ALREADY_EXISTS, r.NOT_FOUND,
            r.ACTIVE_POLICY_EXISTS, r.EXPIRY_TOO_EARLY, r.INVALID_STATE_TRANSITION,
            r.INVALID_ORACLE_SET, r.QC_INSUFFICIENT_SIGNATURES, r.QC_DUPLICATE_SIGNER,
            r.QC_NON_MEMBER, r.QC_BAD_SIGNATURE, r.QC_STALE_EPOCH, r.PAYOUT_MISMATCH,
            r.CLAIM_CONFLICT,
            # economic security (DESIGN §14)
            r.ECONOMICALLY_UNSOUND, r.INSUFFICIENT_BOND, r.BOND_IN_USE, r.BOND_LOCKED,
            r.SLASHED_MEMBER, r.EVIDENCE_INVALID, r.EVIDENCE_DUPLICATE, r.EVIDENCE_STALE,
            r.CORROBORATION_TOO_FEW, r.CORROBORATION_SAME_AGENT, r.CORROBORATION_NO_OVERLAP,
        ),
        Stage.GOSSIP: (r.SENDER_NOT_ALLOWED, r.DUPLICATE),
        Stage.HTTP: (r.UNSUPPORTED_MEDIA_TYPE, r.BAD_REQUEST, r.UNAVAILABLE),
        Stage.CHAIN: (r.REENTRANT_CALL, r.TOKEN_TRANSFER_FAILED),  # EVM settlement (evm)
    }
    # ledger soundness (DESIGN §11)
    groups[Stage.LEDGER_STATE] += (r.ANCHOR_MISMATCH, r.REVOKED_WINDOW_NOT_ANCHORED)
    groups[Stage.LEDGER_TX] += (r.TERM_STARTS_IN_PAST, r.ANCHOR_STALE, r.ANCHOR_CONFLICT, r.ANCHOR_BAD_ROOT)
    groups[Stage.HTTP] += (r.LEDGER_TIME_SKEW,)
    out = {reason: stage for stage, reasons in groups.items() for reason in reasons}
    out.update(_HARDWARE_STAGES)
    missing = set(Reason) - set(out)
    assert not missing, f"reasons without a stage: {missing}"
    return out


_STAGE = _stages()

_STAGE_HTTP_STATUS = {
    Stage.DECODE: 400,
    Stage.CONTENT: 422,
    Stage.LEDGER_STATE: 409,
    Stage.LEDGER_TX: 409,
    Stage.GOSSIP: 400,
    Stage.HTTP: 400,
    Stage.CHAIN: 409,
}

_HTTP_STATUS = {
    Reason.OVERSIZE: 413,
    Reason.UNSUPPORTED_MEDIA_TYPE: 415,
    Reason.NOT_FOUND: 404,
    Reason.RATE_LIMITED: 429,
    Reason.UNAVAILABLE: 503,
    Reason.NOT_ADMIN: 403,
    Reason.BAD_ADMIN_SIGNATURE: 403,
    Reason.BAD_AGENT_SIGNATURE: 403,
    Reason.UNKNOWN_AGENT: 403,
}

_DESCRIPTION: dict[Reason, str] = {
    Reason.MALFORMED: "The bytes are not a single well-formed msgpack (or JSON) value.",
    Reason.OVERSIZE: "The input, or one of its fields, is larger than its limit.",
    Reason.TOO_DEEP: "The input nests deeper than any message allows.",
    Reason.WRONG_TYPE: "A field has the wrong type (only ints, bytes and arrays are allowed).",
    Reason.MISSING_FIELD: "The message has fewer fields than its type defines.",
    Reason.UNKNOWN_FIELD: "The message has more fields than its type defines, or an unknown key.",
    Reason.WRONG_LENGTH: "A fixed-length bytes field or a bounded list has the wrong length.",
    Reason.OUT_OF_RANGE: "An integer is outside its field's range (negative, too large, not < p).",
    Reason.NON_CANONICAL: "The encoding is valid msgpack but not the one canonical encoding.",
    Reason.UNKNOWN_MESSAGE_TYPE: "The message type id is not one faultproof defines.",
    Reason.UNSUPPORTED_VERSION: "The message version is not one this node speaks.",
    Reason.UNKNOWN_DEVICE: "The device is not enrolled on the ledger.",
    Reason.BAD_FRAME_SIGNATURE: "A frame's Ed25519 signature does not verify under its device key.",
    Reason.WRONG_EPOCH: "The frame's epoch is not the device's current epoch.",
    Reason.REPLAYED_FRAME: "A frame with this sequence number is already stored.",
    Reason.CHAIN_BROKEN: "The frame's chain value does not follow from its predecessor and reading.",
    Reason.TIMESTAMP_NOT_INCREASING: "Frame timestamps must strictly increase with seq.",
    Reason.TIMESTAMP_IN_FUTURE: "The frame's timestamp is ahead of the clock beyond the allowed skew.",
    Reason.READING_OUT_OF_RANGE: "The reading is not a signed 32-bit integer.",
    Reason.BAD_AGENT_SIGNATURE: "The claim's agent signature does not verify.",
    Reason.UNKNOWN_AGENT: "The claim's agent is not enrolled on the ledger (or is revoked).",
    Reason.FRAME_MISMATCH: "The claim's two frames are not of the same device and epoch, or not the policy's.",
    Reason.WINDOW_LENGTH: "end.seq - start.seq is not the circuit's window size n.",
    Reason.UNKNOWN_POLICY: "The policy id is not on the ledger.",
    Reason.POLICY_DEVICE_MISMATCH: "The frames' device is not the device the policy covers.",
    Reason.UNKNOWN_CIRCUIT: "The policy's circuit is not registered on the ledger.",
    Reason.BAD_PROOF: "The proof does not verify against the registered key and rebuilt signals.",
    Reason.RATE_LIMITED: "Too many messages from this source; retry later.",
    Reason.POLICY_NOT_ACTIVE: "The policy is not active (expired or closed).",
    Reason.OUTSIDE_POLICY_TERM: "The claimed window is not inside the policy's term.",
    Reason.DEVICE_REVOKED: "The device was revoked before the window ended.",
    Reason.WINDOW_OVERLAP: "The window overlaps a window already paid under this policy.",
    Reason.PERIOD_LIMIT: "The policy already paid an incident in this period.",
    Reason.COVERAGE_EXHAUSTED: "The policy has no coverage left.",
    Reason.CLAIM_WINDOW_CLOSED: "The claim window after the incident has passed.",
    Reason.END_TS_IN_FUTURE: "The window ends in the future by more than the allowed skew.",
    Reason.NOT_ADMIN: "The transaction is not signed by the ledger's admin key.",
    Reason.BAD_ADMIN_SIGNATURE: "The admin signature does not verify.",
    Reason.WRONG_LEDGER: "The message is bound to another ledger_id.",
    Reason.BAD_NONCE: "The admin nonce is not exactly the previous one plus one.",
    Reason.INSUFFICIENT_FREE_CAPITAL: "Not enough free (unlocked) capital in the pool.",
    Reason.INVALID_PARAMETERS: "The parameters are invalid or make the trigger always true.",
    Reason.DEVELOPMENT_CIRCUIT_ON_PRODUCTION: "A development circuit or key on a production ledger.",
    Reason.ALREADY_EXISTS: "The object already exists.",
    Reason.NOT_FOUND: "No such object.",
    Reason.ACTIVE_POLICY_EXISTS: "The device already has an active policy.",
    Reason.EXPIRY_TOO_EARLY: "A policy can expire only after its term end plus claim window.",
    Reason.INVALID_STATE_TRANSITION: "The object is not in a state that allows this transition.",
    Reason.INVALID_ORACLE_SET: "The oracle set or threshold violates floor(n/2)+1 <= k <= n.",
    Reason.QC_INSUFFICIENT_SIGNATURES: "The quorum certificate has fewer than k valid signatures.",
    Reason.QC_DUPLICATE_SIGNER: "The quorum certificate names one oracle twice.",
    Reason.QC_NON_MEMBER: "A signer is not a member of the oracle set of that epoch.",
    Reason.QC_BAD_SIGNATURE: "A signature in the quorum certificate does not verify.",
    Reason.QC_STALE_EPOCH: "The oracle-set epoch is neither current nor within the grace period.",
    Reason.PAYOUT_MISMATCH: "The payout body disagrees with the ledger (amount, beneficiary, ids).",
    Reason.CLAIM_CONFLICT: "A different body was already paid under this claim_id.",
    Reason.SENDER_NOT_ALLOWED: "The sender may not publish on this topic.",
    Reason.DUPLICATE: "This message was already seen.",
    Reason.UNSUPPORTED_MEDIA_TYPE: "Content-Type must be application/json or application/msgpack.",
    Reason.BAD_REQUEST: "The request is not valid for this endpoint.",
    Reason.UNAVAILABLE: "The service is not ready (e.g. still syncing with the ledger).",
    Reason.ECONOMICALLY_UNSOUND: "The payout per period is not below the cheapest attack's cost (bonds, staging).",
    Reason.INSUFFICIENT_BOND: "An oracle-set member does not hold the minimum oracle bond.",
    Reason.BOND_IN_USE: "The bond still secures an oracle-set membership or an open policy.",
    Reason.BOND_LOCKED: "The bond's unlock delay has not passed (or no unbond was requested).",
    Reason.SLASHED_MEMBER: "A slashed oracle cannot be a member of the oracle set again.",
    Reason.EVIDENCE_INVALID: "The slashing evidence does not prove a fault (bad signature, no conflict).",
    Reason.EVIDENCE_DUPLICATE: "The offender was already slashed.",
    Reason.EVIDENCE_STALE: "The evidence is older than the bond unlock delay allows.",
    Reason.CORROBORATION_TOO_FEW: "A corroborated claim has fewer proofs than the policy's m.",
    Reason.CORROBORATION_SAME_AGENT: "Two proofs of a corroborated claim come from one agent.",
    Reason.CORROBORATION_NO_OVERLAP: "The corroborating windows do not overlap within the tolerance.",
    Reason.REENTRANT_CALL: "The pool contract refused a call made while one of its calls was running.",
    Reason.TOKEN_TRANSFER_FAILED: "The pool asset's token refused a transfer (balance, allowance, or a hostile token).",
    # ledger soundness (DESIGN §11)
    Reason.TERM_STARTS_IN_PAST: "A policy term may not start before the ledger's now (minus the allowed skew).",
    Reason.ANCHOR_STALE: "A device-history anchor goes backwards (agent round, device epoch/seq or time).",
    Reason.ANCHOR_CONFLICT: "An anchored head names another chain value for a (device, epoch, seq) already anchored.",
    Reason.ANCHOR_BAD_ROOT: "The anchor's Merkle root is not the root of its heads.",
    Reason.ANCHOR_MISMATCH: "The window's end disagrees with the device's anchored history.",
    Reason.REVOKED_WINDOW_NOT_ANCHORED: "The device is revoked and the window's end was not anchored before the revocation.",
    Reason.LEDGER_TIME_SKEW: "A ledger entry's time is further from this node's clock than the allowed skew.",
    # hardware (DESIGN §15)
    Reason.WRONG_KEY_TYPE: "The key given is not of the key type it is enrolled as (DESIGN §15).",
    Reason.BAD_ATTESTATION_SIGNATURE: "The attestation evidence is not signed by the device's enrolled key.",
    Reason.ATTESTATION_REPLAYED: "The evidence answers a nonce that was not issued (or is not a recent ledger entry), or was already answered.",
    Reason.BAD_QUOTE: "The TPM quote does not verify (signature, nonce, PCR digest or structure).",
    Reason.DEVICE_QUARANTINED: "The device is quarantined by its agent after anomalies; its claims are held.",
    Reason.ATTESTATION_MISSING: "No passing attestation of the device covers the claimed window.",
    Reason.ATTESTATION_FAILED: "The device's latest attestation failed: a measurement is not on the allowlist.",
    Reason.ATTESTATION_STALE: "The evidence, or the device's last passing attestation, is older than the ledger allows.",
    Reason.DEVICE_SUSPENDED: "k oracles suspended the device on the ledger; the admin has not reinstated it.",
    Reason.PAYOUTS_PAUSED: "The pool's circuit breaker paused new payouts; the admin must resume them.",
    Reason.DEVICE_NOT_IN_CUSTODY: "The device was transferred to another agent; this agent may no longer anchor or claim for it.",
    Reason.DEVICE_DECOMMISSIONED: "The device was decommissioned (final head anchored, policies closed, revoked): none of its windows is ever paid.",
}


class FaultproofError(Exception):
    """The only exception faultproof raises across a boundary. Carries a reason code."""

    def __init__(self, reason: Reason, message: str = "") -> None:
        self.reason = reason
        self.message = message or reason.description
        super().__init__(f"{reason.value}: {self.message}")

    def to_json(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.reason.value, "message": self.message}}


class DecodeError(FaultproofError):
    """Bytes that do not decode to a valid message. Always carries a DECODE-stage reason."""


def reasons_markdown() -> str:
    """docs/reasons.md, generated from the enum so the two cannot drift (a test compares them)."""
    lines = [
        "# Reason codes",
        "",
        "One enum (`faultproof.errors.Reason`) for HTTP, gossip and the ledger. HTTP errors are",
        '`{"error": {"code": "<reason>", "message": "..."}}` with the status below; gossip drops are',
        "counted by code; an oracle signs a Reject vote only for a `ledger_state` reason (DESIGN §4).",
        "Regenerate with `faultproof reasons > docs/reasons.md`.",
        "",
        "| code | stage | HTTP | meaning |",
        "|---|---|---|---|",
    ]
    for reason in Reason:
        lines.append(f"| `{reason.value}` | {reason.stage.value} | {reason.http_status} | {reason.description} |")
    return "\n".join(lines) + "\n"
