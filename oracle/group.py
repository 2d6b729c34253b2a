"""Corroborated claims, the oracle's decisions (DESIGN §14, "Group claims"): which agent parts are
valid, which of them form a group, which group body to sign, and when k signatures make the
GroupQuorumCertificate the ledger pays.

A part is an agent's ordinary `SignedClaim` whose policy is a corroborated one: its frames, its
proof, its agent's signature, for ONE device of the group. No agent signs for another agent's
device. Oracles keep the parts they verified, per policy, and assemble a group from them:

  G1 part content (checked like a claim, C1..C8 of oracle/pipeline.py, except that the device
     must be one of the policy's group): UNKNOWN_AGENT, BAD_AGENT_SIGNATURE, BAD_FRAME_SIGNATURE,
     FRAME_MISMATCH, UNKNOWN_POLICY, POLICY_DEVICE_MISMATCH, UNKNOWN_CIRCUIT, WINDOW_LENGTH; then
     the proof against the registered key with signals rebuilt from the frames and the policy
     (BAD_PROOF, checked by the caller's verifier pool on `CheckedPart.job`).
  G2 assembly (`assemble`, deterministic, so oracles holding the same parts pick the same group):
     m parts of distinct devices AND distinct agents whose windows overlap (latest start <
     earliest end + the policy's tolerance: the ledger's C3). Fewer than m such parts: no group.
  G3 before signing, the body passes the ledger's own rules on our replica
     (`ledger.state.group_payout_rejection`: Q4, C1..C3, P1..P8 on the group's span); no Reject
     votes are signed for groups (a group that fails simply gets no vote).
  G4 an oracle signs at most one body per group claim_id and oracle-set epoch (`GroupBook.sign`).
     It signs a group another oracle proposed (a GroupClaim or a GroupVote naming windows) only
     when it verified every part of it itself (G1) and G3 passes: different oracles may assemble
     different groups while parts are still arriving; the ledger pays the first and refuses the
     rest (one payout per period, no overlapping windows), so this costs liveness never money.
  G5 votes count only for members of the body's oracle-set epoch with a valid signature, one per
     member per body; k of them over identical bytes make the GroupQuorumCertificate.

This file never does I/O, never reads a clock (callers pass `now_ms`), never verifies a proof
itself (it returns the `ProofJob`) and never takes a public signal from a claim.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from faultproof.errors import FaultproofError, Reason
from faultproof.messages import (
    CorroboratingWindow,
    GroupPayoutBody,
    GroupQuorumCertificate,
    GroupVote,
    QcSignature,
    SignedClaim,
)
from ledger.state import LedgerState
from oracle.pipeline import ProofJob, check_signed_window, check_window_of_policy, public_signals

# Parts kept per policy: a device reports at most a few windows per period; the cap bounds what a
# flood of valid-but-useless parts can hold (oldest dropped first).
MAX_PARTS_PER_POLICY = 256
# Bodies with votes but no QC yet, per voter: a flooding member cannot exhaust memory.
MAX_OPEN_PER_VOTER = 1024


def _fail(reason: Reason, message: str = "") -> FaultproofError:
    return FaultproofError(reason, message)


PartKey = tuple[bytes, int, int, int, bytes]


def part_key(w: CorroboratingWindow) -> PartKey:
    """A part: its window (device, epoch, start_seq, end_seq) and the agent that filed it. The agent
    is in the key so that another agent re-filing a device's window (frames and proofs are seen
    in transit) cannot crowd out the part of the device's own agent."""
    return (w.device_id, w.epoch, w.start_seq, w.end_seq, w.agent_id)


@dataclass(frozen=True)
class CheckedPart:
    """One agent's part that passed G1's content checks: its window and the proof job."""

    signed: SignedClaim
    window: CorroboratingWindow
    job: ProofJob

    @property
    def policy_id(self) -> bytes:
        return self.signed.claim.policy_id


def is_group_policy(state: LedgerState, policy_id: bytes) -> bool:
    """True when the ledger pays this policy only through a group quorum certificate."""
    return bool(state.econ.group_of(policy_id))


def check_part(signed: SignedClaim, state: LedgerState) -> CheckedPart:
    """G1's content checks on our replica. Raises FaultproofError with a CONTENT reason."""
    claim = signed.claim
    s, e, policy = check_signed_window(signed, state, "part")  # the same start as a lone claim's
    group = state.econ.group_of(claim.policy_id)
    if not group:
        raise _fail(Reason.POLICY_DEVICE_MISMATCH, "the policy is not a corroborated policy")
    if s.device_id not in group:
        raise _fail(Reason.POLICY_DEVICE_MISMATCH, "the device is not in the policy's group")
    circuit = check_window_of_policy(state, s, e, policy, claim.agent_id)  # as a lone claim's (custody too)
    try:
        signals = public_signals(signed, policy)
    except FaultproofError as err:
        raise _fail(Reason.BAD_PROOF, err.message) from None
    window = CorroboratingWindow(device_id=s.device_id, agent_id=claim.agent_id, epoch=s.epoch, start_seq=s.seq,
                                 end_seq=e.seq, start_ts=s.ts_ms, end_ts=e.ts_ms, end_chain=e.chain)
    return CheckedPart(signed, window, ProofJob(circuit.vkey, claim.proof, signals))


def overlaps(windows: Sequence[CorroboratingWindow], tolerance_ms: int) -> bool:
    """The ledger's C3: latest start < earliest end + tolerance."""
    return max(w.start_ts for w in windows) < min(w.end_ts for w in windows) + tolerance_ms


def assemble(parts: Iterable[CheckedPart], m: int, tolerance_ms: int) -> tuple[CheckedPart, ...] | None:
    """G2: the first group of m parts (distinct devices, distinct agents, overlapping), or None.

    Deterministic in the SET of parts (never their arrival order): candidates are tried by their
    earliest end (the pivot every member must overlap), and members picked in (start, device)
    order, so two oracles holding the same verified parts propose the same group."""
    pool = sorted(parts, key=lambda p: (p.window.end_ts, p.window.device_id, p.window.start_seq))
    for pivot in pool:
        chosen = [pivot]
        devices, agents = {pivot.window.device_id}, {pivot.window.agent_id}
        others = sorted((p for p in pool if p is not pivot and p.window.end_ts >= pivot.window.end_ts),
                        key=lambda p: (p.window.start_ts, p.window.device_id, p.window.start_seq))
        for p in others:
            w = p.window
            if w.device_id in devices or w.agent_id in agents:
                continue
            if not overlaps([c.window for c in chosen] + [w], tolerance_ms):
                continue
            chosen.append(p)
            devices.add(w.device_id)
            agents.add(w.agent_id)
            if len(chosen) == m:
                return tuple(sorted(chosen, key=lambda c: c.window.device_id))
    return None


@dataclass
class _Tally:
    body: GroupPayoutBody
    signatures: dict[bytes, QcSignature] = field(default_factory=dict)


@dataclass
class GroupBook:
    """What one oracle knows of corroborated claims: verified parts, the bodies it signed, the
    votes per body. Pure: values in, decisions out; the node persists nothing of it (DESIGN §14
    states the limit: agents re-send parts and oracles re-gossip groups and votes until paid)."""

    parts: dict[bytes, dict[PartKey, CheckedPart]] = field(default_factory=dict)
    signed: dict[tuple[bytes, int], bytes] = field(default_factory=dict)  # (claim_id, epoch) -> body bytes
    tallies: dict[bytes, _Tally] = field(default_factory=dict)  # body bytes -> tally
    open_per_voter: dict[bytes, int] = field(default_factory=dict)
    paid: set[bytes] = field(default_factory=set)  # group claim_ids the ledger paid

    def has_part(self, signed: SignedClaim) -> bool:
        c = signed.claim
        s, e = c.start.frame, c.end.frame
        return (s.device_id, s.epoch, s.seq, e.seq, c.agent_id) in self.parts.get(c.policy_id, {})

    def add_part(self, part: CheckedPart) -> bool:
        """Keep a verified part (G1 passed, proof included). True if it was new."""
        kept = self.parts.setdefault(part.policy_id, {})
        key = part_key(part.window)
        if key in kept:
            return False
        if len(kept) >= MAX_PARTS_PER_POLICY:
            kept.pop(next(iter(kept)))
        kept[key] = part
        return True

    def candidate(self, policy_id: bytes, m: int, tolerance_ms: int) -> tuple[CheckedPart, ...] | None:
        return assemble(self.parts.get(policy_id, {}).values(), m, tolerance_ms)

    def parts_for(self, policy_id: bytes, windows: Sequence[CorroboratingWindow]) -> tuple[CheckedPart, ...] | None:
        """The verified parts behind a proposed body's windows, or None if one is missing or
        differs (agent, times) from what we verified."""
        kept = self.parts.get(policy_id, {})
        out = []
        for w in windows:
            p = kept.get(part_key(w))
            if p is None or p.window != w:
                return None
            out.append(p)
        return tuple(out)

    def sign(self, body: GroupPayoutBody) -> bool:
        """G4: may we sign this body now? Records the decision; never a second, different body for
        one claim_id and epoch, and nothing once the claim is paid."""
        if body.claim_id in self.paid:
            return False
        key = (body.claim_id, body.oracle_set_epoch)
        done = self.signed.get(key)
        if done is not None:
            return False
        self.signed[key] = body.encode()
        return True

    def add_vote(self, vote: GroupVote, members: frozenset[bytes], threshold: int) -> GroupQuorumCertificate | None:
        """G5: count a vote (signature already verified by the caller, or `verify` below); the QC
        once k distinct members signed the identical body, else None."""
        if vote.oracle_id not in members or vote.body.claim_id in self.paid:
            return None
        key = vote.body.encode()
        tally = self.tallies.get(key)
        if tally is None:
            if self.open_per_voter.get(vote.oracle_id, 0) >= MAX_OPEN_PER_VOTER:
                return None
            tally = self.tallies[key] = _Tally(vote.body)
        if vote.oracle_id in tally.signatures:
            return None
        tally.signatures[vote.oracle_id] = QcSignature(oracle_id=vote.oracle_id, signature=vote.signature)
        self.open_per_voter[vote.oracle_id] = self.open_per_voter.get(vote.oracle_id, 0) + 1
        if len(tally.signatures) < threshold:
            return None
        sigs = tuple(sorted(tally.signatures.values(), key=lambda s: s.oracle_id))
        return GroupQuorumCertificate(body=tally.body, signatures=sigs)

    def qc_for(self, body_bytes: bytes, threshold: int) -> GroupQuorumCertificate | None:
        tally = self.tallies.get(body_bytes)
        if tally is None or len(tally.signatures) < threshold:
            return None
        return GroupQuorumCertificate(body=tally.body, signatures=tuple(sorted(tally.signatures.values(),
                                                                               key=lambda s: s.oracle_id)))

    def mark_paid(self, claim_id: bytes) -> None:
        """The ledger paid this group: drop its tallies (and their per-voter counts)."""
        self.paid.add(claim_id)
        for key in [k for k, t in self.tallies.items() if t.body.claim_id == claim_id]:
            for oid in self.tallies[key].signatures:
                self.open_per_voter[oid] = max(0, self.open_per_voter.get(oid, 0) - 1)
            del self.tallies[key]

    def open_bodies(self) -> list[GroupPayoutBody]:
        """Bodies we signed that are not paid: what the re-gossip loop repeats."""
        out = []
        for body_bytes in self.signed.values():
            body = GroupPayoutBody.decode(body_bytes)
            if body.claim_id not in self.paid:
                out.append(body)
        return out
