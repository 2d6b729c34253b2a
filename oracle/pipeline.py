"""The claim pipeline of DESIGN §4 as pure functions: what an oracle concludes about one claim.

Stages, in order (cheap first; each refusal names a shared `Reason`):

  content       (stage CONTENT; no vote, no record, HTTP 4xx / gossip drop)
    C1 agent enrolled on the ledger (and not revoked)              UNKNOWN_AGENT
    C2 the agent's signature over the claim                        BAD_AGENT_SIGNATURE
    C3 both frame signatures, under the frames' device key         BAD_FRAME_SIGNATURE
    C4 both frames of one device and one epoch                     FRAME_MISMATCH
    C5 the policy is on the ledger                                 UNKNOWN_POLICY
    C6 the policy covers that device                               POLICY_DEVICE_MISMATCH
    C7 the policy's circuit is registered                          UNKNOWN_CIRCUIT
    C8 end.seq - start.seq = the circuit's n (also start_ts < end_ts,
       and a device epoch the ledger knows: the body the ledger would
       refuse as PAYOUT_MISMATCH is refused here)                  WINDOW_LENGTH / FRAME_MISMATCH
  ledger state  (stage LEDGER_STATE; the ledger's own `payout_rejection` on our replica of it)
  proof         (BAD_PROOF; against the registered key, signals REBUILT from frames and policy)

Decoding (size, schema) happens before any of this, in `decode_claim`, and raises DECODE reasons.

What the caller (oracle/node.py) does with the result, so that a junk claim cannot poison the
real incident: a content or proof failure leaves no trace under the claim_id; a ledger-state
failure becomes a Reject vote only after the caller refreshed its ledger view, and only for a claim
whose proof verifies (an unproven claim must not get an incident rejected either).

This file never does I/O, never reads a clock (the caller passes `now_ms`), never verifies a proof
itself (it returns the `ProofJob` for a worker) and never takes a public signal from the claim.
"""

from __future__ import annotations

from dataclasses import dataclass

from faultproof.errors import FaultproofError, Reason, Stage
from faultproof.messages import Frame, PayoutBody, SignedClaim
from faultproof.signing import verify_message
from faultproof.zk.statement import PublicSignals
from ledger.state import (
    Circuit,
    LedgerState,
    Policy,
    PolicyStatus,
    build_payout_body,
    custody_rejection,
    device_key,
    payout_rejection,
)

# Every CONTENT-stage reason an oracle can give a claim. The other CONTENT reasons belong to the
# agent's frame ingest (a claim carries two frames, not the readings between them).
CLAIM_CONTENT_REASONS: tuple[Reason, ...] = (
    Reason.UNKNOWN_AGENT,
    Reason.BAD_AGENT_SIGNATURE,
    Reason.BAD_FRAME_SIGNATURE,
    Reason.FRAME_MISMATCH,
    Reason.UNKNOWN_POLICY,
    Reason.POLICY_DEVICE_MISMATCH,
    Reason.UNKNOWN_CIRCUIT,
    Reason.WINDOW_LENGTH,
    Reason.BAD_PROOF,
    Reason.RATE_LIMITED,
    Reason.DEVICE_NOT_IN_CUSTODY,  # DESIGN §15 H9
)
AGENT_ONLY_CONTENT_REASONS: tuple[Reason, ...] = (
    Reason.UNKNOWN_DEVICE,
    Reason.WRONG_EPOCH,
    Reason.REPLAYED_FRAME,
    Reason.CHAIN_BROKEN,
    Reason.TIMESTAMP_NOT_INCREASING,
    Reason.TIMESTAMP_IN_FUTURE,
    Reason.READING_OUT_OF_RANGE,
    # hardware (DESIGN §15): never about a claim; refused by the agent or by the ledger
    Reason.WRONG_KEY_TYPE,
    Reason.BAD_ATTESTATION_SIGNATURE,
    Reason.ATTESTATION_REPLAYED,
    Reason.BAD_QUOTE,
    Reason.DEVICE_QUARANTINED,
)


def _fail(reason: Reason, message: str = "") -> FaultproofError:
    return FaultproofError(reason, message)


def decode_claim(data: bytes, content_type: str = "application/msgpack") -> SignedClaim:
    """Bytes from HTTP or gossip -> SignedClaim. Raises DecodeError (size, schema) only."""
    return SignedClaim.from_http(data, content_type)


@dataclass(frozen=True)
class ProofJob:
    """What a verifier worker needs: the registered key, the proof, the rebuilt signals."""

    vkey: bytes
    proof: bytes
    signals: PublicSignals


@dataclass(frozen=True)
class Checked:
    """A claim that passed every content check, with what the later stages need."""

    signed: SignedClaim
    claim_id: bytes
    policy: Policy
    circuit: Circuit
    body: PayoutBody  # what we approve if the ledger state and the proof agree
    job: ProofJob


def public_signals(signed: SignedClaim, policy: Policy) -> PublicSignals:
    """DESIGN §3: rebuilt from the two frames and the policy, never taken from the claim."""
    s, e, t = signed.claim.start.frame, signed.claim.end.frame, policy.terms
    return PublicSignals(
        c_start=int.from_bytes(s.chain, "big"),
        c_end=int.from_bytes(e.chain, "big"),
        t_start=s.ts_ms,
        t_end=e.ts_ms,
        kind=t.kind,
        T=t.threshold,
        K=t.count,
        lo=t.lo,
        hi=t.hi,
        G=t.gap_ms,
    )


def check_signed_window(signed: SignedClaim, state: LedgerState, what: str = "claim") -> tuple[Frame, Frame, Policy]:
    """The checks every claim and every group part start with (C1..C4): the agent is enrolled
    and signed it, both frames are signed under their device's key at the frame's time (of the
    enrolled type, DESIGN §15) and belong to one device and epoch, and the policy exists."""
    claim = signed.claim
    if not state.agent_enrolled(claim.agent_id):
        raise _fail(Reason.UNKNOWN_AGENT, f"the {what}'s agent is not enrolled (or is revoked)")
    if not signed.verify():
        raise _fail(Reason.BAD_AGENT_SIGNATURE)
    start, end = claim.start, claim.end
    if not (verify_message(device_key(state, start.frame.device_id, start.frame.ts_ms), start.frame, start.signature)
            and verify_message(device_key(state, end.frame.device_id, end.frame.ts_ms), end.frame, end.signature)):
        raise _fail(Reason.BAD_FRAME_SIGNATURE)
    s, e = start.frame, end.frame
    if s.device_id != e.device_id or s.epoch != e.epoch:
        raise _fail(Reason.FRAME_MISMATCH, "the two frames are not of one device and epoch")
    policy = state.policy(claim.policy_id)
    if policy is None:
        raise _fail(Reason.UNKNOWN_POLICY)
    return s, e, policy


def check_window_of_policy(state: LedgerState, s: Frame, e: Frame, policy: Policy, agent_id: bytes) -> Circuit:
    """What a claim and a group part check next, alike (C5..C8): the filing agent has custody of
    the device (DESIGN §15 H9), the window is exactly the policy circuit's n readings, later at its
    end, and of an epoch the device was enrolled with. Returns the circuit."""
    if custody_rejection(state, s.device_id, agent_id) is not None:
        raise _fail(Reason.DEVICE_NOT_IN_CUSTODY, "the device was transferred to another agent")
    circuit = state.circuit(policy.terms.circuit_id)
    if circuit is None:
        raise _fail(Reason.UNKNOWN_CIRCUIT)
    if e.seq < s.seq or e.seq - s.seq != circuit.n:
        raise _fail(Reason.WINDOW_LENGTH, f"end.seq - start.seq = {e.seq - s.seq}, circuit n = {circuit.n}")
    if not s.ts_ms < e.ts_ms:
        raise _fail(Reason.FRAME_MISMATCH, "the end frame is not later than the start frame")
    device = state.device(s.device_id)
    if device is None or s.epoch not in device.epochs:
        raise _fail(Reason.FRAME_MISMATCH, f"the device was never enrolled with epoch {s.epoch}")
    return circuit


def check_content(signed: SignedClaim, state: LedgerState) -> Checked:
    """C1..C8 on our replica of the ledger. Raises FaultproofError with a CONTENT reason."""
    claim = signed.claim
    s, e, policy = check_signed_window(signed, state)
    if policy.terms.device_id != s.device_id:
        raise _fail(Reason.POLICY_DEVICE_MISMATCH)
    circuit = check_window_of_policy(state, s, e, policy, claim.agent_id)
    body = build_payout_body(state, claim.policy_id, s.epoch, s.seq, e.seq, s.ts_ms, e.ts_ms, e.chain)
    try:
        signals = public_signals(signed, policy)
    except FaultproofError as err:  # a chain value >= p cannot be decoded, so this is defensive
        raise _fail(Reason.BAD_PROOF, err.message) from None
    return Checked(signed, claim.claim_id, policy, circuit, body, ProofJob(circuit.vkey, claim.proof, signals))


def check_ledger_state(checked: Checked, state: LedgerState, now_ms: int) -> Reason | None:
    """The ledger's own LEDGER_STATE rules (P1..P8) on our replica at our clock. None = pass.

    A claim the replica shows as already paid passes here: its verdict is the payout itself."""
    reason = payout_rejection(state, checked.body, now_ms)
    assert reason is None or reason.stage is Stage.LEDGER_STATE
    return reason


# How far ahead a clock-only refusal may lift and still count as transient (item 13.7): a few
# rechecks' worth of clock trouble, far below a device clock that is minutes or hours fast.
RETRY_HORIZON_MS = 30_000


def retry_at(reason: Reason, body: PayoutBody, state: LedgerState, now_ms: int) -> int | None:
    """When a ledger-state refusal is transient (DESIGN §10, item 13.7): the time at which the same
    check may pass because only the clock has to move, or None when the reason is definitive.

    Transient: END_TS_IN_FUTURE, and POLICY_NOT_ACTIVE for a term that has not started, when they
    lift within `RETRY_HORIZON_MS` (at least the ledger's `max_skew_ms`) from now: an oracle whose
    clock is a little behind the ledger's must not add a final Reject to a claim that is valid at
    the ledger. Further ahead it is the frames that are wrong (a device clock an hour fast): definitive.
    Every other reason is definitive: paid windows, revocations and closed claim windows never
    come undone."""
    horizon = max(RETRY_HORIZON_MS, state.genesis.max_skew_ms)
    if reason is Reason.END_TS_IN_FUTURE:
        lifts = body.end_ts - state.genesis.max_skew_ms
    elif reason is Reason.POLICY_NOT_ACTIVE:
        policy = state.policies.get(body.policy_id)
        if policy is None or policy.status_at(now_ms) is not PolicyStatus.ISSUED:
            return None  # expired or closed: definitive
        lifts = policy.terms.start_ms
    else:
        return None
    return lifts if lifts - now_ms <= horizon else None


def approve_body(checked: Checked, state: LedgerState) -> PayoutBody:
    """The body to sign now: rebuilt against the current replica (the oracle-set epoch may have
    moved since the content check)."""
    b = checked.body
    return build_payout_body(state, b.policy_id, b.epoch, b.start_seq, b.end_seq, b.start_ts, b.end_ts, b.end_chain)
