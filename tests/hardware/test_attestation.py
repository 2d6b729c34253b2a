"""Device evidence (faultproof.attestation): the measurement log extends like a PCR, evidence is
signed by the device's typed key, and appraisal refuses forged, replayed and stale evidence and
fails a log whose firmware is not on the allowlist. Window coverage by results. Pure, fast."""

from __future__ import annotations

import hashlib

import pytest

from faultproof import attestation as att
from faultproof import signing
from faultproof.errors import Reason
from faultproof.identity import Identity

IMAGES = (b"bootloader v2", b"firmware 1.4.0", b"config site-7")
ALLOWED = {(int(c), att.measure(img)) for c, img in zip(att.DEVICE_STAGES, IMAGES, strict=True)}
T = 1_800_000_000_000


def allow(c: int, d: bytes) -> bool:
    return (c, d) in ALLOWED


@pytest.fixture(params=["ed25519", "p256"])
def device(request: pytest.FixtureRequest) -> signing.Signer:
    if request.param == "p256":
        return signing.P256KeySigner.generate()
    return signing.Ed25519FileSigner(Identity.generate())


def test_measurement_log_extends_like_a_pcr() -> None:
    log = att.MeasurementLog.boot(*IMAGES)
    pcr = bytes(32)
    for img in IMAGES:
        pcr = hashlib.sha256(pcr + hashlib.sha256(img).digest()).digest()
    assert log.composite == pcr == att.composite_of(log.measurements)
    # Order matters: the same stages in another order give another composite.
    assert att.composite_of(list(reversed(log.measurements))) != pcr


def _evidence(device: signing.Signer, nonce: bytes, images: tuple[bytes, ...] = IMAGES) -> att.SignedEvidence:
    return att.make_evidence(device, epoch=0, seq=17, ts_ms=T, nonce=nonce, log=att.MeasurementLog.boot(*images))


def test_good_evidence_passes(device: signing.Signer) -> None:
    book = att.NonceBook()
    nonce = book.issue(device.public_key, b"\x01" * 32, T)
    r = att.appraise(_evidence(device, nonce), device.public, allow, book, T + 500, 60_000)
    assert r.passed and r.ts_ms == T + 500


def test_tampered_firmware_fails(device: signing.Signer) -> None:
    book = att.NonceBook()
    nonce = book.issue(device.public_key, b"\x02" * 32, T)
    r = att.appraise(_evidence(device, nonce, (IMAGES[0], b"firmware 1.4.0-evil", IMAGES[2])),
                     device.public, allow, book, T + 1, 60_000)
    assert not r.passed and r.reason is Reason.ATTESTATION_FAILED and "firmware" in r.detail


def test_forged_replayed_and_stale_evidence_are_refused(device: signing.Signer) -> None:
    book = att.NonceBook()
    n1 = book.issue(device.public_key, b"\x03" * 32, T)
    other = signing.P256KeySigner.generate()
    forged = _evidence(other, n1)
    forged = att.SignedEvidence(body=forged.body.replace(device_id=device.public_key), signature=forged.signature)
    with pytest.raises(att.Refused) as e:
        att.appraise(forged, device.public, allow, book, T, 60_000)
    assert e.value.reason is Reason.BAD_ATTESTATION_SIGNATURE
    ev = _evidence(device, n1)  # the forgery did not burn the device's nonce
    assert att.appraise(ev, device.public, allow, book, T, 60_000).passed
    with pytest.raises(att.Refused) as e:
        att.appraise(ev, device.public, allow, book, T, 60_000)  # replayed
    assert e.value.reason is Reason.ATTESTATION_REPLAYED
    with pytest.raises(att.Refused) as e:  # a nonce never issued
        att.appraise(_evidence(device, b"\x04" * 32), device.public, allow, book, T, 60_000)
    assert e.value.reason is Reason.ATTESTATION_REPLAYED
    n2 = book.issue(device.public_key, b"\x05" * 32, T)
    with pytest.raises(att.Refused) as e:
        att.appraise(_evidence(device, n2), device.public, allow, book, T + 60_001, 60_000)
    assert e.value.reason is Reason.ATTESTATION_STALE


def test_a_nonce_issued_to_another_device_does_not_count(device: signing.Signer) -> None:
    book = att.NonceBook()
    n = book.issue(b"\x99" * 32, b"\x06" * 32, T)
    with pytest.raises(att.Refused) as e:
        att.appraise(_evidence(device, n), device.public, allow, book, T, 60_000)
    assert e.value.reason is Reason.ATTESTATION_REPLAYED


def test_evidence_of_one_key_type_never_verifies_as_the_other() -> None:
    p = signing.P256KeySigner.generate()
    ev = _evidence(p, b"\x07" * 32)
    as_ed = signing.PublicKey(signing.KeyType.ED25519, p.public_key)  # same 32-byte id, other type
    assert not att.evidence_signed_by(ev, as_ed)
    assert att.evidence_signed_by(ev, p.public)


def _r(ts: int, ok: bool) -> att.Result:
    return att.Result(b"d" * 32, ts, ok, None if ok else Reason.ATTESTATION_FAILED)


@pytest.mark.parametrize("results,expected", [
    ([], Reason.ATTESTATION_MISSING),
    ([_r(T + 5_000, True)], Reason.ATTESTATION_MISSING),  # after the window's end
    ([_r(T - 500, True)], None),
    ([_r(T + 50, True)], None),  # inside the window
    ([_r(T - 2_000, True)], Reason.ATTESTATION_STALE),  # older than max age before the start
    ([_r(T - 500, True), _r(T + 100, False)], Reason.ATTESTATION_FAILED),
    ([_r(T - 900, False), _r(T - 500, True)], None),  # fixed before the window
    ([_r(T - 500, False)], Reason.ATTESTATION_FAILED),
])
def test_window_coverage(results: list[att.Result], expected: Reason | None) -> None:
    assert att.coverage_rejection(results, T, T + 1_000, 1_000) is expected


def test_simulator_boot_passes_and_tampered_firmware_fails() -> None:
    from agent.boot import allowlist_txs, ledger_evidence

    allowed = {(t.component, t.digest) for t in allowlist_txs()}
    dev = signing.Ed25519FileSigner(Identity.generate())
    good = ledger_evidence(dev, epoch=0, seq=0, ts_ms=T, head_hash=b"\x08" * 32)
    bad = ledger_evidence(dev, epoch=0, seq=0, ts_ms=T, head_hash=b"\x08" * 32, tampered=True)
    assert att.measurement_failure(good.body, lambda c, d: (c, d) in allowed) is None
    assert "firmware" in (att.measurement_failure(bad.body, lambda c, d: (c, d) in allowed) or "")
