"""Remote attestation (DESIGN §15): measurement logs, device evidence, appraisal, TPM 2.0 quotes.

Roles as in IETF RATS: the *attester* is a device (or a gateway's TPM), the *verifier* appraises
its evidence against reference values — the allowlist of known-good measurements kept on the
ledger (admin transactions allow and deny) — and the *relying party* (an oracle deciding a claim)
uses the verifier's results.

Device evidence. A device measures each boot stage into its measurement log, extended like a PCR:
`pcr_0 = 0^32, pcr_i = SHA-256(pcr_{i-1} || m_i)`, stages in order bootloader, firmware, config.
It signs `EvidenceBody(device_id, epoch, seq, ts_ms, nonce, measurements, composite)` with its
enrolled key (Ed25519 or P-256, faultproof.signing). `appraise` refuses, in this order:
  BAD_ATTESTATION_SIGNATURE  the signature does not verify under the enrolled key;
  ATTESTATION_REPLAYED       the nonce was not issued by this verifier, or was already used;
  ATTESTATION_STALE          the nonce was issued longer than `max_age_ms` ago;
  ATTESTATION_FAILED         the log is not three stages, its composite does not follow from it, or
                             a stage's measurement is not on the allowlist for that stage.
Only a failed measurement is a *result* (a verdict about the device); a bad signature, a replay or
a stale answer says nothing about the device and is simply refused.

Window coverage. `coverage_rejection` decides whether a claim window (start_ts, end_ts] is covered:
a passing result at most `max_age_ms` before start_ts (or inside the window) and no failing result
from it to end_ts; otherwise ATTESTATION_MISSING / ATTESTATION_FAILED / ATTESTATION_STALE.

TPM quotes. `verify_quote` checks a TPM 2.0 quote (TPMS_ATTEST + TPMT_SIGNATURE, ECDSA-SHA256 by a
P-256 attestation key) against the expected nonce (extraData) and PCR values: magic, type,
signature, nonce, and the PCR digest = SHA-256 of the selected PCR values in index order.
Anything else is BAD_QUOTE with a message saying what.

This module is pure: no clock, no I/O; the nonce book and the allowlist are values passed in.
"""

from __future__ import annotations

import enum
import hashlib
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from faultproof import signing
from faultproof.errors import Reason
from faultproof.identity import domain_tag
from faultproof.messages import EvidenceBody, GatewayQuote, SignedEvidence

EVIDENCE_TAG = domain_tag(EvidenceBody.NAME)
ZERO = bytes(32)


class Component(enum.IntEnum):
    BOOTLOADER = 1
    FIRMWARE = 2
    CONFIG = 3
    GATEWAY_PCRS = 4  # a gateway's quoted PCR digest


DEVICE_STAGES = (Component.BOOTLOADER, Component.FIRMWARE, Component.CONFIG)


def extend(pcr: bytes, digest: bytes) -> bytes:
    return hashlib.sha256(pcr + digest).digest()


def measure(image: bytes) -> bytes:
    return hashlib.sha256(image).digest()


@dataclass
class MeasurementLog:
    """A device's boot log: the stage measurements in order and the PCR-like composite."""

    measurements: list[bytes] = field(default_factory=list)
    composite: bytes = ZERO

    def extend(self, digest: bytes) -> None:
        self.measurements.append(digest)
        self.composite = extend(self.composite, digest)

    @classmethod
    def boot(cls, bootloader: bytes, firmware: bytes, config: bytes) -> MeasurementLog:
        """Measure the three stages of a boot (images as bytes)."""
        log = cls()
        for image in (bootloader, firmware, config):
            log.extend(measure(image))
        return log


def composite_of(measurements: Sequence[bytes]) -> bytes:
    pcr = ZERO
    for m in measurements:
        pcr = extend(pcr, m)
    return pcr


def make_evidence(signer: signing.Signer, *, epoch: int, seq: int, ts_ms: int, nonce: bytes,
                  log: MeasurementLog) -> SignedEvidence:
    body = EvidenceBody(device_id=signer.public_key, epoch=epoch, seq=seq, ts_ms=ts_ms, nonce=nonce,
                        measurements=tuple(log.measurements), composite=log.composite)
    return SignedEvidence(body=body, signature=signer.sign(EVIDENCE_TAG, body.encode()))


Allowlist = Callable[[int, bytes], bool]  # (component, digest) -> allowed?


@dataclass
class NonceBook:
    """The verifier's issued nonces (pure: times are passed in). A nonce answers once."""

    issued: dict[bytes, tuple[bytes, int]] = field(default_factory=dict)  # nonce -> (device, issued_ms)

    def issue(self, device_id: bytes, nonce: bytes, now_ms: int) -> bytes:
        self.issued[nonce] = (device_id, now_ms)
        return nonce

    def take(self, device_id: bytes, nonce: bytes) -> int | None:
        """The issue time if this nonce was issued to this device and not used; consumes it."""
        got = self.issued.get(nonce)
        if got is None or got[0] != device_id:
            return None
        del self.issued[nonce]
        return got[1]

    def expire(self, now_ms: int, max_age_ms: int) -> None:
        for n, (_d, t) in list(self.issued.items()):
            if now_ms - t > max_age_ms:
                del self.issued[n]


@dataclass(frozen=True)
class Result:
    """An appraisal result about a device (RATS attestation result)."""

    device_id: bytes
    ts_ms: int  # when the verifier appraised it (its clock)
    passed: bool
    reason: Reason | None = None
    detail: str = ""


class Refused(Exception):
    """Evidence refused without a verdict about the device (bad signature, replay, stale)."""

    def __init__(self, reason: Reason, detail: str) -> None:
        self.reason, self.detail = reason, detail
        super().__init__(f"{reason.value}: {detail}")


def evidence_signed_by(evidence: SignedEvidence, key: signing.PublicKey) -> bool:
    b = evidence.body
    return b.device_id == key.key_id and signing.verify(key, EVIDENCE_TAG, b.encode(), evidence.signature)


def measurement_failure(body: EvidenceBody, allowlist: Allowlist) -> str | None:
    """Why the measurement log fails appraisal against the allowlist, or None if it passes."""
    if len(body.measurements) != len(DEVICE_STAGES):
        return f"{len(body.measurements)} measurements, expected {len(DEVICE_STAGES)}"
    if composite_of(body.measurements) != body.composite:
        return "composite does not follow from the log"
    for stage, digest in zip(DEVICE_STAGES, body.measurements, strict=True):
        if not allowlist(int(stage), digest):
            return f"{stage.name.lower()} measurement {digest.hex()[:16]} is not on the allowlist"
    return None


def appraise(evidence: SignedEvidence, key: signing.PublicKey, allowlist: Allowlist, nonces: NonceBook,
             now_ms: int, max_age_ms: int) -> Result:
    """Appraise a device's evidence against nonces this verifier issued (an agent for its devices).
    Returns a Result (passed, or failed measurement), or raises Refused for evidence that proves
    nothing about the device. Consumes the nonce only for evidence whose signature verifies (so a
    forger cannot burn a device's nonces)."""
    b = evidence.body
    if not evidence_signed_by(evidence, key):
        raise Refused(Reason.BAD_ATTESTATION_SIGNATURE, "evidence not signed by the enrolled key")
    issued = nonces.take(b.device_id, b.nonce)
    if issued is None:
        raise Refused(Reason.ATTESTATION_REPLAYED, "nonce not issued to this device, or already answered")
    if now_ms - issued > max_age_ms:
        raise Refused(Reason.ATTESTATION_STALE, f"answered {now_ms - issued} ms after the nonce (max {max_age_ms})")
    failure = measurement_failure(b, allowlist)
    if failure is not None:
        return Result(b.device_id, now_ms, False, Reason.ATTESTATION_FAILED, failure)
    return Result(b.device_id, now_ms, True)


def coverage_rejection(results: Sequence[Result], start_ts: int, end_ts: int, max_age_ms: int) -> Reason | None:
    """Whether appraisal results (any order) cover the window (start_ts, end_ts]; None = covered."""
    relevant = sorted((r for r in results if r.ts_ms <= end_ts), key=lambda r: r.ts_ms)
    if not relevant:
        return Reason.ATTESTATION_MISSING
    last_pass = None
    for r in relevant:
        if r.passed:
            last_pass = r
    # A failure at or after the pass it would have to rely on, up to the window's end, taints it.
    for r in relevant:
        if not r.passed and (last_pass is None or r.ts_ms >= last_pass.ts_ms):
            return Reason.ATTESTATION_FAILED
    if last_pass is None:
        return Reason.ATTESTATION_MISSING
    if start_ts - last_pass.ts_ms > max_age_ms:
        return Reason.ATTESTATION_STALE
    return None


# --------------------------------------------------------------------------- TPM 2.0 quotes

TPM_GENERATED_VALUE = 0xFF544347
TPM_ST_ATTEST_QUOTE = 0x8018
TPM_ALG_ECDSA = 0x0018
TPM_ALG_SHA256 = 0x000B


@dataclass(frozen=True)
class Quote:
    qualified_signer: bytes
    extra_data: bytes
    clock: int
    reset_count: int
    restart_count: int
    safe: int
    firmware_version: int
    selection: tuple[tuple[int, tuple[int, ...]], ...]  # (hash alg, pcr indices)
    pcr_digest: bytes


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError("truncated")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return int(self.take(1)[0])

    def u16(self) -> int:
        return int(struct.unpack(">H", self.take(2))[0])

    def u32(self) -> int:
        return int(struct.unpack(">I", self.take(4))[0])

    def u64(self) -> int:
        return int(struct.unpack(">Q", self.take(8))[0])

    def sized(self) -> bytes:
        return self.take(self.u16())


def parse_quote(attest: bytes) -> Quote:
    """TPMS_ATTEST of a quote. Raises ValueError on anything else."""
    r = _Reader(attest)
    if r.u32() != TPM_GENERATED_VALUE:
        raise ValueError("not TPM-generated (magic)")
    if r.u16() != TPM_ST_ATTEST_QUOTE:
        raise ValueError("not a quote")
    signer = r.sized()
    extra = r.sized()
    clock, reset, restart, safe = r.u64(), r.u32(), r.u32(), r.u8()
    fw = r.u64()
    sel = []
    for _ in range(r.u32()):
        alg = r.u16()
        size = r.u8()
        bitmap = r.take(size)
        pcrs = tuple(i * 8 + b for i, byte in enumerate(bitmap) for b in range(8) if byte >> b & 1)
        sel.append((alg, pcrs))
    digest = r.sized()
    if r.pos != len(attest):
        raise ValueError("trailing bytes")
    return Quote(signer, extra, clock, reset, restart, safe, fw, tuple(sel), digest)


def parse_signature(sig: bytes) -> tuple[int, int]:
    """TPMT_SIGNATURE, ECDSA with SHA-256 -> (r, s)."""
    r = _Reader(sig)
    if r.u16() != TPM_ALG_ECDSA or r.u16() != TPM_ALG_SHA256:
        raise ValueError("not an ECDSA-SHA256 signature")
    rr, ss = int.from_bytes(r.sized(), "big"), int.from_bytes(r.sized(), "big")
    if r.pos != len(sig):
        raise ValueError("trailing bytes")
    return rr, ss


def pcr_digest(pcrs: Mapping[int, bytes]) -> bytes:
    return hashlib.sha256(b"".join(pcrs[i] for i in sorted(pcrs))).digest()


# The PCRs a gateway quotes: 16 (debug, zero on a genuine boot) and 23 (its measured firmware).
GATEWAY_QUOTE_PCRS = (16, 23)


def verify_quote(q: GatewayQuote, nonce: bytes, expected_pcrs: Mapping[int, bytes] | None = None, *,
                 pcrs: Sequence[int] = (), allowlist: Allowlist | None = None,
                 known_ak: bytes | None = None) -> tuple[Reason, str] | None:
    """None if the quote is the TPM's answer to `nonce`, signed by its attestation key (and that key
    is `known_ak`, when given), over sha256 PCRs whose values are exactly `expected_pcrs` — or,
    with `allowlist`, over the PCRs `pcrs` whose digest is allowed as Component.GATEWAY_PCRS."""
    if known_ak is not None and q.ak_point != known_ak:
        return Reason.BAD_QUOTE, "signed by another attestation key"
    try:
        quote = parse_quote(q.attest)
        r, s = parse_signature(q.signature)
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), q.ak_point)
    except ValueError as e:
        return Reason.BAD_QUOTE, f"malformed quote: {e}"
    try:
        key.verify(encode_dss_signature(r, s), q.attest, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return Reason.BAD_QUOTE, "the quote signature does not verify"
    if quote.extra_data != nonce:
        return Reason.BAD_QUOTE, "the quote answers another nonce"
    want = tuple(sorted(expected_pcrs if expected_pcrs is not None else pcrs))
    if quote.selection != ((TPM_ALG_SHA256, want),):
        return Reason.BAD_QUOTE, f"the quote selects {quote.selection}, expected sha256:{list(want)}"
    if expected_pcrs is not None and quote.pcr_digest != pcr_digest(expected_pcrs):
        return Reason.BAD_QUOTE, "the PCR values differ from the expected ones"
    if allowlist is not None and not allowlist(int(Component.GATEWAY_PCRS), quote.pcr_digest):
        return Reason.BAD_QUOTE, "the PCR digest is not on the allowlist"
    if expected_pcrs is None and allowlist is None:
        return Reason.BAD_QUOTE, "nothing to appraise the PCRs against"
    return None
