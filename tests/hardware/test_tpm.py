"""Gateway attestation with a real software TPM (swtpm, one per module on free ports): quotes made
with tpm2-pytss, verified by faultproof.attestation.verify_quote from the raw TPM structures.
A wrong nonce, a changed PCR, another AK, a flipped byte, or a replayed quote are refused."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from agent.tpm import GatewayTpm, TpmError, free_port_pair
from faultproof import attestation
from faultproof.errors import Reason
from faultproof.messages import GatewayQuote
from tests.hardware.tpmfix import gateway_tpm

AGENT = b"\xaa" * 32
FIRMWARE = hashlib.sha256(b"gateway firmware 1.0").digest()


@pytest.fixture(scope="module")
def tpm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayTpm]:
    with gateway_tpm(tmp_path_factory.mktemp("swtpm"), FIRMWARE) as t:
        yield t


def test_quote_verifies_against_expected_pcrs_and_allowlist(tpm: GatewayTpm) -> None:
    nonce = os.urandom(32)
    q = tpm.quote(AGENT, nonce)
    pcrs = tpm.pcr_values()
    assert pcrs[23] == hashlib.sha256(bytes(32) + FIRMWARE).digest() and pcrs[16] == bytes(32)
    assert attestation.verify_quote(q, nonce, pcrs, known_ak=tpm.attestation_key()) is None
    good = attestation.pcr_digest(pcrs)
    allowed = {(int(attestation.Component.GATEWAY_PCRS), good)}
    assert attestation.verify_quote(q, nonce, pcrs=(16, 23), allowlist=lambda c, d: (c, d) in allowed) is None
    assert attestation.verify_quote(q, nonce, pcrs=(16, 23), allowlist=lambda c, d: False) == (
        Reason.BAD_QUOTE, "the PCR digest is not on the allowlist")
    parsed = attestation.parse_quote(q.attest)
    assert parsed.extra_data == nonce and parsed.selection == ((attestation.TPM_ALG_SHA256, (16, 23)),)


def test_wrong_nonce_and_replay_are_refused(tpm: GatewayTpm) -> None:
    n1, n2 = os.urandom(32), os.urandom(32)
    old = tpm.quote(AGENT, n1)
    pcrs = tpm.pcr_values()
    reason = attestation.verify_quote(old, n2, pcrs)  # a replay of the answer to n1 for n2
    assert reason is not None and reason[0] is Reason.BAD_QUOTE and "nonce" in reason[1]


def test_changed_pcr_is_refused(tmp_path: Path) -> None:
    with gateway_tpm(tmp_path / "tpm", FIRMWARE) as t:
        expected = t.pcr_values()
        t.extend(23, hashlib.sha256(b"tampered firmware").digest())
        nonce = os.urandom(32)
        reason = attestation.verify_quote(t.quote(AGENT, nonce), nonce, expected)
        assert reason is not None and "PCR values" in reason[1]


def test_other_ak_flipped_bytes_and_malformed_are_refused(tpm: GatewayTpm) -> None:
    nonce = os.urandom(32)
    q = tpm.quote(AGENT, nonce)
    pcrs = tpm.pcr_values()
    assert attestation.verify_quote(q, nonce, pcrs, known_ak=b"\x04" + bytes(64))[1] == (  # type: ignore[index]
        "signed by another attestation key")
    for i in (10, len(q.attest) - 1):
        flipped = bytearray(q.attest)
        flipped[i] ^= 1
        r = attestation.verify_quote(q.replace(attest=bytes(flipped)), nonce, pcrs)
        assert r is not None and r[0] is Reason.BAD_QUOTE
    sig = bytearray(q.signature)
    sig[-1] ^= 1
    assert attestation.verify_quote(q.replace(signature=bytes(sig)), nonce, pcrs) is not None
    # The AK swapped for another key: the signature does not verify under it.
    other = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        Encoding.X962, PublicFormat.UncompressedPoint)
    assert attestation.verify_quote(q.replace(ak_point=other), nonce, pcrs)[1] == (  # type: ignore[index]
        "the quote signature does not verify")
    bad = GatewayQuote(agent_id=AGENT, attest=b"\x00" * 10, signature=q.signature, ak_point=q.ak_point)
    assert "malformed" in attestation.verify_quote(bad, nonce, pcrs)[1]  # type: ignore[index]


def test_unreachable_tpm_is_one_clear_error() -> None:
    with pytest.raises(TpmError, match="swtpm running"):
        GatewayTpm(f"swtpm:host=127.0.0.1,port={free_port_pair()}")
