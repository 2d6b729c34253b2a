"""P-256 devices (DESIGN §15): enrolled with their key type, their frames verify under it in the
agent's frame checks and in the oracle's claim checks, and their claims are paid like an Ed25519
device's; a frame signed with a key of the other type is refused."""

from __future__ import annotations

import dataclasses

import pytest

from agent.frames import DeviceRecord, FrameChecker, Incoming
from agent.simulator import Sensor, SimDevice
from faultproof import chain, signing
from faultproof.errors import FaultproofError, Reason
from faultproof.identity import Identity
from faultproof.messages import DeviceReading, EnrolDeviceKey, Frame, SignedFrame
from ledger.state import device_key
from oracle.pipeline import check_content, check_ledger_state
from tests.hardware.claimfix import enrol_p256, p256_device
from tests.netfix import SECOND, make_claim
from tests.oracle.test_pipeline import World, world  # noqa: F401 - the module-scoped replica fixture

NOW = 1_800_000_000_000
BLIND = bytes(range(1, 32))


def _record(d: SimDevice, public: signing.PublicKey | None) -> DeviceRecord:
    return DeviceRecord(d.device_id, d.epoch, chain.chain_to_bytes(chain.chain_anchor(d.device_id, d.epoch)),
                        None, d.blinding_key, ((0, public),) if public is not None else ())


def _resign(msg: DeviceReading, signer: signing.Signer | Identity) -> DeviceReading:
    f = msg.signed.frame
    return DeviceReading(signed=SignedFrame(frame=f, signature=signer.sign(signing.identity.domain_tag(Frame.NAME),
                                                                            f.encode())), reading=msg.reading)


def test_agent_accepts_a_p256_devices_frames_and_refuses_the_other_type() -> None:
    key = signing.P256KeySigner.generate()
    dev = SimDevice(key, BLIND, sensor=Sensor(seed=3))  # type: ignore[arg-type] - a Signer, as Identity
    c = FrameChecker(max_skew_ms=5_000, reorder_window=64)
    c.set_device(_record(dev, key.public))
    msgs = [dev.make(NOW - 10_000 + i * 10) for i in range(6)]
    assert [c.check(Incoming.from_message(m), NOW).reason for m in msgs[:4]] == [None] * 4
    # An Ed25519 signature over the same frame: the wrong key type for this device.
    ed = Identity.from_seed(b"\x05" * 32)
    wrong = c.check(Incoming.from_message(_resign(msgs[4], ed)), NOW)
    assert wrong.reason is Reason.BAD_FRAME_SIGNATURE and "P256" in wrong.message
    # High-s form of the device's own signature: malleated, refused.
    sig = msgs[4].signed.signature
    high = sig[:32] + (signing.P256_N - int.from_bytes(sig[32:], "big")).to_bytes(32, "big")
    mal = DeviceReading(signed=dataclasses.replace(msgs[4].signed, signature=high), reading=msgs[4].reading)
    assert c.check(Incoming.from_message(mal), NOW).reason is Reason.BAD_FRAME_SIGNATURE
    assert c.check(Incoming.from_message(msgs[4]), NOW).reason is None


def test_agent_refuses_a_p256_signature_for_an_ed25519_device() -> None:
    ident = Identity.from_seed(b"\x07" * 32)
    dev = SimDevice(ident, BLIND, sensor=Sensor(seed=4))
    c = FrameChecker(max_skew_ms=5_000, reorder_window=64)
    c.set_device(_record(dev, None))
    m = dev.make(NOW - 1_000)
    bad = _resign(m, signing.P256KeySigner.generate())
    assert c.check(Incoming.from_message(bad), NOW).reason is Reason.BAD_FRAME_SIGNATURE
    assert c.check(Incoming.from_message(m), NOW).reason is None


def test_p256_claim_is_checked_and_paid_like_an_ed25519_one(world: World) -> None:  # noqa: F811
    w = world
    dev = p256_device(anchor_ts=w.now - 60 * SECOND)
    w.state.apply(w.keys.sign(enrol_p256(dev)), w.now)
    assert device_key(w.state, dev.device_id).key_type is signing.KeyType.P256
    pid, terms = w.issue(dev)
    start = dev.record([90, 95, 10, 12], start_ts=w.now - 50 * SECOND)
    claim = make_claim(w.circuit, dev, pid, terms, start, w.agent)
    checked = check_content(claim, w.state)
    assert check_ledger_state(checked, w.state, w.now) is None
    before = w.state.policy(pid).paid_total
    w.state.apply(w.keys.qc(checked.body), w.now)
    assert w.state.policy(pid).paid_total - before == terms.amount
    # The same start frame signed with an Ed25519 key (the wrong type): refused.
    ed = Identity.from_seed(b"\x09" * 32)
    forged_start = SignedFrame(frame=claim.claim.start.frame,
                               signature=ed.sign(signing.identity.domain_tag(Frame.NAME), claim.claim.start.frame.encode()))
    with pytest.raises(FaultproofError) as e:
        check_content(claim.claim.replace(start=forged_start).sign(w.agent), w.state)
    assert e.value.reason is Reason.BAD_FRAME_SIGNATURE


def test_enrolment_key_must_match_its_type_and_id(world: World) -> None:  # noqa: F811
    w = world
    dev = p256_device(anchor_ts=w.now - 60 * SECOND)
    good = enrol_p256(dev)
    for bad in (good.replace(key_type=int(signing.KeyType.ED25519)),  # a 33-byte key is not Ed25519
                good.replace(public_key=signing.P256KeySigner.generate().public.data)):
        with pytest.raises(FaultproofError) as e:
            w.state.check(w.keys.sign(bad, nonce=w.keys.next_nonce), w.now)
        assert e.value.reason is (Reason.WRONG_KEY_TYPE if bad.key_type == 1 else Reason.INVALID_PARAMETERS)
    assert isinstance(good, EnrolDeviceKey)


def test_claims_stay_payable_across_a_key_rotation(world: World) -> None:  # noqa: F811
    """(Last in this module: it moves the shared replica's ledger time past the others' `now`.)
    An Ed25519 device moves to a P-256 secure element mid-window: the start frame is signed by
    the old key, the end frame by the new one; the claim is checked and paid. A frame after the
    rotation signed by the old key is refused."""
    from faultproof.identity import domain_tag
    from faultproof.messages import RotateDeviceKey, rotation_message
    from tests.netfix import DeviceSim

    w = world
    t0 = max(w.now, w.state.time_ms)
    dev = DeviceSim.create(anchor_ts=t0 + 50 * SECOND)
    w.state.apply(w.keys.sign(dev.enrol_tx()), t0)
    pid, terms = w.issue(dev)
    start = dev.record([90, 95, 10, 12], start_ts=t0 + 60 * SECOND)
    effective = dev.timestamps[start + 2]  # between the window's frames
    new = signing.P256KeySigner.generate()
    msg = rotation_message(w.state.ledger_id, dev.device_id, 2, new.public.data, effective)
    rot = RotateDeviceKey(device_id=dev.device_id, key_type=2, public_key=new.public.data, effective_ms=effective,
                          endorsement=dev.identity.sign(domain_tag(RotateDeviceKey.NAME), msg))
    w.state.apply(w.keys.sign(rot), t0)  # on the ledger before it takes effect
    claim = make_claim(w.circuit, dev, pid, terms, start, w.agent)
    end_frame = claim.claim.end.frame
    end_new = SignedFrame(frame=end_frame, signature=new.sign(domain_tag(Frame.NAME), end_frame.encode()))
    rotated = claim.claim.replace(end=end_new).sign(w.agent)
    with pytest.raises(FaultproofError) as e:  # the old key after the rotation
        check_content(claim, w.state)
    assert e.value.reason is Reason.BAD_FRAME_SIGNATURE
    checked = check_content(rotated, w.state)
    at = dev.timestamps[-1] + SECOND
    assert check_ledger_state(checked, w.state, at) is None
    before = w.state.policy(pid).paid_total
    w.state.apply(w.keys.qc(checked.body), at)
    assert w.state.policy(pid).paid_total - before == terms.amount
