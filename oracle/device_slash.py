"""Device slashing on the pool contract, the oracle's decisions (DESIGN §13, §14 S1–S3): check a
`FrameEquivocation`, sign the EIP-712 `DeviceSlash` with the chain key, collect k shares.

The contract cannot check an Ed25519 frame signature, so it slashes a device only on a certificate
of k members' chain-key signatures over `DeviceSlash{oracleSetEpoch, deviceId, epoch, seq,
firstFrame, secondFrame, maxTs, reporter}`. An oracle signs that body only after checking the evidence
itself, on its own replica, with the ledger's one rule: `LedgerState.check` of the
FrameEquivocation (S1–S3 in ledger/state.py: one (device, epoch, seq), two different frames, both
verifying under the device's key, the device enrolled and not slashed, the frames not older than
the unlock delay, the econ rules on). A peer's share counts only if it comes with the evidence, the
evidence holds on our replica too, and its signature recovers, in this pool's EIP-712 domain, to
the address the contract bound to its oracle id in the body's epoch (`check_share`).

The body is derived, never received (`slash_body`): the frames in the order of their hashes, so two
reports of the same pair in either order are one certificate; the epoch is our replica's current
one; the reporter is the FrameEquivocation's. The reporter is signed, so a certificate pays only
the reporter its k signers certified, whoever sends it (a copy taken from the mempool and re-sent
naming another does not recover).

One reporter per pair of frames per oracle: we sign the body of the first report (ours or a peer's
share's evidence) of a pair of frames we accept, and refuse a later report of the same frames naming
another reporter (EVIDENCE_DUPLICATE), so our signature never splits across reporters. A peer's share
still counts, but only for its own body: if k members signed another reporter's body, we hold its
certificate and may post it. Two reporters racing to different members split the signatures: the
body with k posts. If no body of those frames can reach k any more (the most shares any holds, plus
the members not yet seen signing any of them, is below k), first choices alone would leave the
device unslashed, and a double-signer could arrange that by racing its own report against the honest
one. So the split is broken (`_break_split`): every member then also signs the body with the most
shares (ties: the lowest `slash_key`). Shares only grow, a member signs a body at most once and
re-gossip spreads every share, so the members' views meet and the one winner gets every honest
member's signature (k of them if k are honest and bound). The contract slashes once whatever
certificates exist.

`DeviceSlashDesk` is the machine, one entry per event (a report, a peer's share, the replica's
slashes): `PublishShare` / `Ready` actions out. Bounded: at most `MAX_OPEN` bodies, `MAX_PER_DEVICE`
per device, one share per oracle per body (members only: a share needs a bound address). Pure: no
I/O, no clock (times are passed in); the signing key is given to it.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from faultproof.errors import FaultproofError, Reason
from faultproof.messages import DeviceSlashShare, FrameEquivocation
from ledger.evm.typed import (
    DEVICE_SLASH_TYPES,
    ChainSignature,
    DeviceSlashBody,
    frame_hash,
    recover_typed,
)
from ledger.state import LedgerState
from oracle.chain_votes import signature_refusal

Binding = Callable[[int, bytes], str | None]  # (epoch, oracle_id) -> the address bound on chain
Signer = Callable[[DeviceSlashBody], ChainSignature]  # our chain key over a body in this pool's domain


def slash_body(oracle_set_epoch: int, ev: FrameEquivocation) -> DeviceSlashBody:
    """The DeviceSlash of this evidence in that epoch: the frames ordered by their hashes."""
    first, second = sorted((ev.first, ev.second), key=frame_hash)
    return DeviceSlashBody.of(oracle_set_epoch, first, second, ev.reporter)


def same_frames(a: DeviceSlashBody, b: DeviceSlashBody) -> bool:
    """The two bodies name the same pair of frames (whatever the epoch or the reporter)."""
    return (a.device_id, a.epoch, a.seq, a.first_frame, a.second_frame) == \
        (b.device_id, b.epoch, b.seq, b.first_frame, b.second_frame)


def slash_key(body: DeviceSlashBody) -> bytes:
    """A body's 32-byte id: the key of its case and of its posting turns (`posting_turn`)."""
    b = body
    return hashlib.sha256(b"faultproof/device-slash/v1" + b.oracle_set_epoch.to_bytes(4, "big") + b.device_id
                          + b.epoch.to_bytes(4, "big") + b.seq.to_bytes(4, "big") + b.first_frame + b.second_frame
                          + b.max_ts.to_bytes(8, "big") + b.reporter).digest()


def check_evidence(state: LedgerState, ev: FrameEquivocation, now_ms: int) -> None:
    """The ledger's own S1–S3 check of the evidence on this replica (nothing changes). Raises
    FaultproofError naming why it does not hold (EVIDENCE_INVALID, NOT_FOUND, EVIDENCE_DUPLICATE,
    EVIDENCE_STALE, INVALID_STATE_TRANSITION when the econ rules are off)."""
    state.check(ev, max(now_ms, state.time_ms))


def recover_slash_signer(body: DeviceSlashBody, chain_id: int, contract: str, signature: bytes) -> str | None:
    """The address whose key made `signature` over `body` in this pool's domain (None: malformed)."""
    return recover_typed(DEVICE_SLASH_TYPES, body.message(), chain_id, contract, signature)


def check_share(share: DeviceSlashShare, body: DeviceSlashBody, bound: str | None, chain_id: int,
                contract: str) -> Reason | None:
    """Why `share` does not count toward a certificate over `body`, or None: another epoch
    (QC_STALE_EPOCH), no address bound to its oracle in that epoch (QC_NON_MEMBER), a signature
    that does not recover to that address over this body in this pool's domain (QC_BAD_SIGNATURE:
    forged, another body, chain or contract)."""
    return signature_refusal(share.oracle_set_epoch, body.oracle_set_epoch, bound,
                             lambda: recover_slash_signer(body, chain_id, contract, share.signature))


@dataclass(frozen=True)
class PublishShare:
    share: DeviceSlashShare


@dataclass(frozen=True)
class Ready:
    """k verified shares are held for this body: time to take our posting turn."""

    key: bytes
    device_id: bytes
    oracle_set_epoch: int


SlashAction = PublishShare | Ready


@dataclass
class _Case:
    body: DeviceSlashBody
    evidence: FrameEquivocation  # the first report of this body we saw (its reporter is the body's)
    sigs: dict[bytes, ChainSignature] = field(default_factory=dict)  # oracle_id -> verified share
    own: DeviceSlashShare | None = None


@dataclass(frozen=True)
class Certificate:
    """What `reportFrameEquivocation` takes: the body (its reporter rewarded) and k signatures."""

    body: DeviceSlashBody
    signatures: tuple[ChainSignature, ...]


class DeviceSlashDesk:
    """One oracle's open device slashes (see the module docstring)."""

    MAX_OPEN = 256
    MAX_PER_DEVICE = 4

    def __init__(self, oracle_id: bytes, sign: Signer, binding: Binding, chain_id: int, contract: str) -> None:
        self.oracle_id, self.sign, self.binding = oracle_id, sign, binding
        self.chain_id, self.contract = chain_id, contract
        self.cases: OrderedDict[bytes, _Case] = OrderedDict()

    def report(self, state: LedgerState, ev: FrameEquivocation, now_ms: int) -> list[SlashAction]:
        """Anyone's evidence: check it on our replica, sign, share. Raises FaultproofError (and
        signs nothing) if it does not hold."""
        check_evidence(state, ev, now_ms)
        if self.binding(state.oracle_set.epoch, self.oracle_id) is None:
            raise FaultproofError(Reason.UNAVAILABLE, "this oracle has no chain key bound in the current oracle set: "
                                  "send the evidence to a member")
        body = slash_body(state.oracle_set.epoch, ev)
        signed = self.cases.get(slash_key(body))
        if (signed is None or signed.own is None) and self._signed_other(body):
            raise FaultproofError(Reason.EVIDENCE_DUPLICATE, "this oracle signed these frames for another reporter "
                                  "(the first report it accepted); their slash pays that one")
        case = self._case(body, ev)
        return self._sign_into(case, state)

    def on_share(self, state: LedgerState, share: DeviceSlashShare, now_ms: int) -> list[SlashAction]:
        """A peer's share. Raises FaultproofError for a share to drop; otherwise keeps it and, the
        first time, checks the evidence ourselves and adds our own share."""
        if share.oracle_set_epoch != state.oracle_set.epoch:
            raise FaultproofError(Reason.QC_STALE_EPOCH, "the share is for another oracle-set epoch")
        body = slash_body(share.oracle_set_epoch, share.evidence)
        bound = self.binding(share.oracle_set_epoch, share.oracle_id)
        why = check_share(share, body, bound, self.chain_id, self.contract)
        if why is not None:
            raise FaultproofError(why, "a device-slash share that does not count")
        assert bound is not None
        check_evidence(state, share.evidence, now_ms)  # never sign, nor count, on another's word
        case = self._case(body, share.evidence)
        had = len(case.sigs)
        case.sigs[share.oracle_id] = ChainSignature(bound, share.signature)
        actions = self._sign_into(case, state)
        if not actions and had < state.oracle_set.threshold <= len(case.sigs):
            actions.append(Ready(slash_key(body), body.device_id, body.oracle_set_epoch))
        return actions + self._break_split(body, state)

    def certificate(self, key: bytes, k: int) -> Certificate | None:
        """k shares of this body, signers in increasing address order (as the contract requires),
        ours among them if we signed this body; None if we do not hold k."""
        case = self.cases.get(key)
        if case is None or len(case.sigs) < k:
            return None
        own = case.sigs.get(self.oracle_id)
        others = sorted((s for o, s in case.sigs.items() if o != self.oracle_id), key=lambda s: s.signer.lower())
        chosen = ([own] if own is not None else []) + others
        chosen = sorted(chosen[:k], key=lambda s: int(s.signer, 16))
        return Certificate(case.body, tuple(chosen))

    def own_shares(self) -> list[DeviceSlashShare]:
        """Our shares of every open body (re-gossiped until the device is slashed)."""
        return [c.own for c in self.cases.values() if c.own is not None]

    def prune(self, slashed: set[bytes] | frozenset[bytes]) -> list[bytes]:
        """The replica shows these devices slashed: forget their cases. Returns the keys dropped."""
        gone = [k for k, c in self.cases.items() if c.body.device_id in slashed]
        for k in gone:
            del self.cases[k]
        return gone

    def _case(self, body: DeviceSlashBody, ev: FrameEquivocation) -> _Case:
        key = slash_key(body)
        case = self.cases.get(key)
        if case is not None:
            return case
        if len(self.cases) >= self.MAX_OPEN:
            raise FaultproofError(Reason.RATE_LIMITED, "too many device slashes open; retry later")
        if sum(c.body.device_id == body.device_id for c in self.cases.values()) >= self.MAX_PER_DEVICE:
            raise FaultproofError(Reason.RATE_LIMITED, "this device already has its slashes open; retry later")
        case = self.cases[key] = _Case(body, ev)
        return case

    def _signed_other(self, body: DeviceSlashBody) -> bool:
        """We signed these frames already, naming another reporter."""
        return any(c.own is not None and same_frames(c.body, body) and c.body.reporter != body.reporter
                   for c in self.cases.values())

    def _break_split(self, body: DeviceSlashBody, state: LedgerState) -> list[SlashAction]:
        """The reports of these frames split the members so that no body can reach k: sign the
        body with the most shares (ties: the lowest key) too. Nothing when one can still reach k."""
        rivals = [c for c in self.cases.values()
                  if same_frames(c.body, body) and c.body.oracle_set_epoch == body.oracle_set_epoch]
        if len(rivals) < 2:
            return []
        seen = set().union(*(c.sigs for c in rivals))
        best = max(len(c.sigs) for c in rivals)
        # Only a member with a chain key bound in this epoch can still sign: one without never
        # will, and counting it would keep a split that can no longer reach k from being broken.
        can_sign = {m for m in state.oracle_set.members if m not in seen and self.binding(body.oracle_set_epoch, m)}
        if best + len(can_sign) >= state.oracle_set.threshold:
            return []  # a body may still reach k (or has): first choices stand
        winner = min(rivals, key=lambda c: (-len(c.sigs), slash_key(c.body)))
        return self._sign_into(winner, state, split=True)

    def _sign_into(self, case: _Case, state: LedgerState, split: bool = False) -> list[SlashAction]:
        if case.own is not None or self.binding(case.body.oracle_set_epoch, self.oracle_id) is None:
            return []  # signed already, or not a member: our signature would not count
        if not split and self._signed_other(case.body):
            return []  # we signed these frames for another reporter: the peers' shares count for theirs
        sig = self.sign(case.body)
        case.own = DeviceSlashShare(oracle_id=self.oracle_id, oracle_set_epoch=case.body.oracle_set_epoch,
                                    evidence=case.evidence, signature=sig.signature)
        case.sigs[self.oracle_id] = sig
        actions: list[SlashAction] = [PublishShare(case.own)]
        if len(case.sigs) >= state.oracle_set.threshold:
            actions.append(Ready(slash_key(case.body), case.body.device_id, case.body.oracle_set_epoch))
        return actions
