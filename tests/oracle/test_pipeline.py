"""Pure unit tests of the claim pipeline (oracle/pipeline.py) on an in-memory ledger replica:
every content reason, every ledger-state reason, signals rebuilt from frames and policy.
No processes; one small circuit (n=4) proves the valid claims."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from faultproof.chain import blinding_value
from faultproof.errors import FaultproofError, Reason, Stage
from faultproof.identity import Identity
from faultproof.merkle import merkle_root
from faultproof.messages import (
    AnchorBody,
    Claim,
    DecommissionDevice,
    Deposit,
    DeviceHead,
    EnrolAgent,
    IssuePolicy,
    RegisterCircuit,
    RevokeDevice,
    SignedClaim,
    SignedFrame,
    policy_id,
)
from faultproof.zk import BuiltCircuit, TriggerParams, Witness, build, export_vkey, verify
from faultproof.zk import prove as zk_prove
from ledger.state import LedgerState
from oracle.pipeline import (
    AGENT_ONLY_CONTENT_REASONS,
    CLAIM_CONTENT_REASONS,
    check_content,
    check_ledger_state,
    check_signed_window,
    decode_claim,
    public_signals,
)
from tests.hardware.claimfix import HARDWARE_STATE_REASONS, hardware_state_case
from tests.ledger.helpers import LedgerKeys, make_ledger
from tests.netfix import DAY, HOUR, SECOND, DeviceSim, make_claim, now_ms

PARAMS = TriggerParams.count(80, 2)


@dataclasses.dataclass
class World:
    """A replica with one funded pool, the n=4 circuit, an agent, and one valid claim."""

    keys: LedgerKeys
    state: LedgerState
    now: int
    circuit: BuiltCircuit
    circuit_id: bytes
    agent: Identity
    dev: DeviceSim = dataclasses.field(default_factory=DeviceSim.create)
    pid: bytes = b""
    terms: IssuePolicy | None = None
    claim: SignedClaim | None = None

    def issue(self, dev: DeviceSim, **overrides: int) -> tuple[bytes, IssuePolicy]:
        kind, T, K, lo, hi, G = PARAMS.as_tuple()
        d: dict[str, Any] = dict(
            device_id=dev.device_id, beneficiary=b"\xbe" * 32, circuit_id=self.circuit_id, kind=kind, threshold=T,
            count=K, lo=lo, hi=hi, gap_ms=G, coverage=5_000, amount=1_000, premium=0,
            start_ms=self.now - 2 * DAY, end_ms=self.now + 30 * DAY, period_ms=HOUR, claim_window_ms=7 * DAY)
        d.update(overrides)
        terms = IssuePolicy(**d)
        stx = self.keys.sign(terms)
        self.state.apply(stx, self.now)
        return policy_id(stx.tx), terms


@pytest.fixture(scope="module")
def world() -> World:
    circuit = build(4)
    keys = make_ledger(n=5, created_ms=now_ms() - 3 * DAY, max_backdate_ms=3 * DAY)  # policies start in the past
    state = keys.new_state()
    now = now_ms()
    reg = RegisterCircuit(vkey=export_vkey(circuit), n=4, layout_version=1, transcript_hash=bytes(32), production=0)
    agent = Identity.generate()
    for args in (Deposit(amount=10**9), reg, EnrolAgent(agent_id=agent.public_key)):
        state.apply(keys.sign(args), now)
    w = World(keys, state, now, circuit, reg.circuit_id, agent)
    state.apply(keys.sign(w.dev.enrol_tx()), now)
    w.pid, w.terms = w.issue(w.dev)
    start = w.dev.record([90, 95, 10, 12], start_ts=now - 10 * SECOND)
    w.claim = make_claim(circuit, w.dev, w.pid, w.terms, start, agent)
    return w


def test_valid_claim_passes_and_proof_verifies(world: World) -> None:
    checked = check_content(world.claim, world.state)
    assert check_ledger_state(checked, world.state, world.now) is None
    assert verify(checked.job.vkey, checked.job.proof, checked.job.signals.as_list())
    body = checked.body
    f0, f1 = world.claim.claim.start.frame, world.claim.claim.end.frame
    assert (body.claim_id, body.amount, body.start_seq, body.end_seq, body.start_ts, body.end_ts) == (
        world.claim.claim.claim_id, 1_000, f0.seq, f1.seq, f0.ts_ms, f1.ts_ms)
    assert body.ledger_id == world.state.ledger_id and body.oracle_set_epoch == world.state.oracle_set.epoch


def test_signals_are_rebuilt_not_taken_from_the_claim(world: World) -> None:
    s = public_signals(world.claim, world.state.policy(world.pid))
    f0, f1 = world.claim.claim.start.frame, world.claim.claim.end.frame
    assert (s.c_start, s.c_end, s.t_start, s.t_end) == (
        int.from_bytes(f0.chain, "big"), int.from_bytes(f1.chain, "big"), f0.ts_ms, f1.ts_ms)
    assert (s.kind, s.T, s.K) == PARAMS.as_tuple()[:3]


def _resign(w: World, claim: Claim, agent: Identity | None = None) -> SignedClaim:
    return claim.sign(agent or w.agent)


def _content_cases(w: World) -> dict[Reason, SignedClaim]:
    c = w.claim.claim
    other = DeviceSim.create()
    w.state.apply(w.keys.sign(other.enrol_tx()), w.now)
    other_pid, _ = w.issue(other)
    other.record([90, 95, 10, 12], start_ts=w.now - 20 * SECOND)
    stranger = Identity.generate()
    bad_frame = dataclasses.replace(c.start, signature=bytes(64))
    bad_sig = dataclasses.replace(w.claim, signature=bytes(64))
    w.dev.record([1, 2])  # frames beyond the window, for a window one too long
    return {
        Reason.UNKNOWN_AGENT: _resign(w, c.replace(agent_id=stranger.public_key), stranger),
        Reason.BAD_AGENT_SIGNATURE: bad_sig,
        Reason.BAD_FRAME_SIGNATURE: _resign(w, c.replace(start=bad_frame)),
        Reason.FRAME_MISMATCH: _resign(w, c.replace(end=other.frame(4))),
        Reason.UNKNOWN_POLICY: _resign(w, c.replace(policy_id=b"\x01" * 32)),
        Reason.POLICY_DEVICE_MISMATCH: _resign(w, c.replace(policy_id=other_pid)),
        Reason.WINDOW_LENGTH: _resign(w, c.replace(end=w.dev.frame(c.end.frame.seq + 1))),
    }


def test_every_content_reason(world: World) -> None:
    cases = _content_cases(world)
    for reason, claim in cases.items():
        with pytest.raises(FaultproofError) as e:
            check_content(claim, world.state)
        assert e.value.reason is reason, (reason, e.value)
    # UNKNOWN_CIRCUIT cannot happen on a real ledger (issue_policy requires the circuit), so the
    # replica is made to lose it here.
    state = world.state
    saved = dict(state.circuits)
    state.circuits.clear()
    try:
        with pytest.raises(FaultproofError) as e:
            check_content(world.claim, state)
        assert e.value.reason is Reason.UNKNOWN_CIRCUIT
    finally:
        state.circuits.update(saved)


def test_content_reason_lists_cover_the_enum() -> None:
    content = {r for r in Reason if r.stage is Stage.CONTENT}
    assert set(CLAIM_CONTENT_REASONS) | set(AGENT_ONLY_CONTENT_REASONS) == content
    assert not set(CLAIM_CONTENT_REASONS) & set(AGENT_ONLY_CONTENT_REASONS)


def test_frame_swap_fails_the_proof(world: World) -> None:
    """Frames from another window of the same device: content passes, the proof does not."""
    dev = world.dev
    start = dev.record([90, 95, 96, 97])
    c = world.claim.claim.replace(start=dev.frame(start), end=dev.frame(start + 4))
    checked = check_content(_resign(world, c), world.state)
    assert not verify(checked.job.vkey, checked.job.proof, checked.job.signals.as_list())


def test_decode_refusals() -> None:
    with pytest.raises(FaultproofError) as e:
        decode_claim(b"\x93\x01\x02", "application/msgpack")
    assert e.value.reason.stage is Stage.DECODE
    with pytest.raises(FaultproofError) as e:
        decode_claim(b"{not json", "application/json")
    assert e.value.reason is Reason.MALFORMED
    with pytest.raises(FaultproofError) as e:
        decode_claim(b"x" * 5000, "application/msgpack")
    assert e.value.reason is Reason.OVERSIZE


MIN = 60 * SECOND


def _ledger_state_case(w: World, reason: Reason) -> tuple[SignedClaim, int]:
    """A claim that passes content checks and fails `reason` on the replica at the returned time."""
    now = w.now
    at = now
    overrides: dict[str, int] = {}
    window_ts = now - 10 * MIN
    if reason is Reason.POLICY_NOT_ACTIVE:
        overrides = dict(start_ms=now + DAY)  # issued, not active before its term starts
    elif reason is Reason.OUTSIDE_POLICY_TERM:
        overrides = dict(start_ms=now - HOUR)
        window_ts = now - 2 * HOUR
    elif reason is Reason.CLAIM_WINDOW_CLOSED:
        overrides = dict(claim_window_ms=MIN)
    elif reason is Reason.END_TS_IN_FUTURE:
        window_ts = now + HOUR
    elif reason is Reason.COVERAGE_EXHAUSTED:
        overrides = dict(coverage=1_000, amount=1_000)
    dev = DeviceSim.create(anchor_ts=window_ts - SECOND)  # the first window starts at the anchor
    w.state.apply(w.keys.sign(dev.enrol_tx()), now)
    pid, terms = w.issue(dev, **overrides)
    start = dev.record([90, 95, 10, 12], start_ts=window_ts)
    claim = make_claim(w.circuit, dev, pid, terms, start, w.agent)
    if reason is Reason.DEVICE_REVOKED:
        w.state.apply(w.keys.sign(RevokeDevice(device_id=dev.device_id)), now)
        # revoked at ledger time `now`, before this window ended
        start = dev.record([90, 95, 10, 12], start_ts=now + SECOND)
        claim = make_claim(w.circuit, dev, pid, terms, start, w.agent)
        at = dev.timestamps[-1] + SECOND
    elif reason in (Reason.WINDOW_OVERLAP, Reason.PERIOD_LIMIT, Reason.COVERAGE_EXHAUSTED):
        w.state.apply(w.keys.qc(check_content(claim, w.state).body), now)  # the first window is paid
        if reason is Reason.WINDOW_OVERLAP:  # frames start+2 .. start+6: shares two readings
            dev.record([90, 95], start_ts=dev.timestamps[-1] + SECOND)
            claim = make_claim(w.circuit, dev, pid, terms, start + 2, w.agent)
        else:  # the next window: same period (PERIOD_LIMIT) or two hours on (COVERAGE_EXHAUSTED)
            gap = SECOND if reason is Reason.PERIOD_LIMIT else 2 * HOUR
            nxt = dev.record([90, 95, 10, 12], start_ts=dev.timestamps[-1] + gap)
            claim = make_claim(w.circuit, dev, pid, terms, nxt, w.agent)
            at = max(at, dev.timestamps[-1] + SECOND)
    elif reason is Reason.REVOKED_WINDOW_NOT_ANCHORED:  # revoked after the window, never anchored
        w.state.apply(w.keys.sign(RevokeDevice(device_id=dev.device_id)), now)
    elif reason is Reason.DEVICE_DECOMMISSIONED:  # §15 H11: never paid after, not even this earlier window
        w.state.apply(w.keys.sign(DecommissionDevice(device_id=dev.device_id, epoch=0, seq=0, chain=bytes(32))), now)
    elif reason is Reason.ANCHOR_MISMATCH:  # the agent anchored another frame at the end's seq
        end = claim.claim.end.frame
        head = DeviceHead(device_id=end.device_id, epoch=end.epoch, seq=end.seq, ts_ms=end.ts_ms,
                          chain=(int.from_bytes(end.chain, "big") ^ 1).to_bytes(32, "big"))
        round_ = w.state.anchor_rounds.get(w.agent.public_key, 0) + 1
        w.state.apply(AnchorBody(ledger_id=w.state.ledger_id, agent_id=w.agent.public_key, round=round_,
                                 heads=(head,), root=merkle_root([head.leaf_hash])).sign(w.agent), now)
    return claim, at


@pytest.mark.parametrize("reason", [r for r in Reason if r.stage is Stage.LEDGER_STATE])
def test_every_ledger_state_reason(world: World, reason: Reason) -> None:
    state = world.state
    if reason in HARDWARE_STATE_REASONS:  # DESIGN §15: on a copy (lockdowns are ledger-wide)
        claim, at, state = hardware_state_case(world, reason)
    else:
        claim, at = _ledger_state_case(world, reason)
    checked = check_content(claim, state)
    assert check_ledger_state(checked, state, at) is reason
    # the proof is valid: only the ledger state says no
    assert verify(checked.job.vkey, checked.job.proof, checked.job.signals.as_list())


def test_a_window_starting_or_ending_on_an_unsigned_frame_is_refused(world: World) -> None:
    """DESIGN §16: a device that signs every s-th frame leaves the frames between unsigned. A claim
    whose start or end is such a frame has no device signature to carry there (zeros, or a key
    other than the device's), so every oracle refuses it bad_frame_signature, although its proof
    is valid for the window: the same claim with the device's signatures passes."""
    w = world
    start = w.dev.record([10, 90, 95, 10, 12])
    genuine = make_claim(w.circuit, w.dev, w.pid, w.terms, start + 1, w.agent)  # starts at an odd seq
    checked = check_content(genuine, w.state)
    assert verify(checked.job.vkey, checked.job.proof, checked.job.signals.as_list())
    c = genuine.claim
    for field_name in ("start", "end"):
        frame = getattr(c, field_name).frame
        for unsigned in (SignedFrame(frame=frame, signature=bytes(64)), frame.sign(w.agent)):
            claim = _resign(w, c.replace(**{field_name: unsigned}))
            with pytest.raises(FaultproofError) as e:
                check_signed_window(claim, w.state)
            assert e.value.reason is Reason.BAD_FRAME_SIGNATURE, field_name
            with pytest.raises(FaultproofError) as e:
                check_content(claim, w.state)
            assert e.value.reason is Reason.BAD_FRAME_SIGNATURE


def test_a_forged_reading_inside_a_window_is_not_provable(world: World) -> None:
    """DESIGN §16: an unsigned interior reading replaced by anyone but the device changes c_end,
    which the device never signed: a proof over the forged readings does not verify against the
    signed end frame (so no oracle approves it and nothing is paid)."""
    w = world
    start = w.dev.record([10, 12, 14, 16])  # benign: the forger wants [90, 95] inside
    forged_readings = [10, 90, 95, 16]
    seqs = range(start + 1, start + 5)
    forged = Witness.build(readings=forged_readings, timestamps=[w.dev.timestamps[s] for s in seqs],
                           blindings=[blinding_value(w.dev.blinding_key, s) for s in seqs],
                           c_start=w.dev.chains[start], t_start=w.dev.timestamps[start], params=PARAMS, n=4)
    assert forged.public.c_end != w.dev.chains[start + 4]  # the end frame the device signed
    claim = make_claim(w.circuit, w.dev, w.pid, w.terms, start, w.agent, proof=zk_prove(w.circuit, forged))
    checked = check_content(claim, w.state)  # the frames are genuine and signed: it gets this far
    assert not verify(checked.job.vkey, checked.job.proof, checked.job.signals.as_list())
