"""Key files (0600, refused when readable by others) and domain-separated signatures."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faultproof.identity import Identity, KeyFileError, domain_tag, verify
from faultproof.messages import Message
from tests.vectors.samples import samples

SIGNED = {  # body type name -> (body, signature, public key)
    name: triple
    for name, triple in (
        ("frame", (samples()["signed-frame"].frame, samples()["signed-frame"].signature,
                   samples()["signed-frame"].frame.device_id)),
        ("payout-approve", (samples()["approve"].body, samples()["approve"].signature,
                            samples()["approve"].oracle_id)),
        ("claim", (samples()["signed-claim"].claim, samples()["signed-claim"].signature,
                   samples()["signed-claim"].claim.agent_id)),
    )
}


def test_key_file_is_created_0600_and_round_trips(tmp_path: Path) -> None:
    ident = Identity.generate()
    path = tmp_path / "k.key"
    ident.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Identity.load(path).public_key == ident.public_key
    assert ident.seed.hex() not in repr(ident)


def test_existing_key_is_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    Identity.generate().save(path)
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        Identity.generate().save(path)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_key_file_readable_by_others_is_refused_with_a_fix(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "k.key"
    Identity.generate().save(path)
    os.chmod(path, mode)
    with pytest.raises(KeyFileError) as e:
        Identity.load(path)
    assert f"chmod 600 {path}" in str(e.value)


def test_missing_and_malformed_key_files(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="keygen"):
        Identity.load(tmp_path / "none.key")
    bad = tmp_path / "bad.key"
    bad.write_text("zz\n")
    os.chmod(bad, 0o600)
    with pytest.raises(KeyFileError, match="hex"):
        Identity.load(bad)


def test_keygen_cli_writes_key_and_prints_public_id(tmp_path: Path) -> None:
    path = tmp_path / "agent.key"
    out = subprocess.run([sys.executable, "-m", "cli", "keygen", "--out", str(path)],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == Identity.load(path).public_key.hex()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Identity.load(path).seed.hex() not in out.stdout + out.stderr
    again = subprocess.run([sys.executable, "-m", "cli", "keygen", "--out", str(path)],
                           capture_output=True, text=True)
    assert again.returncode != 0 and "refusing to overwrite" in again.stderr



def test_keygen_makes_the_keys_folder_private(tmp_path: Path) -> None:
    """`faultproof keygen --out keys/oracle-1.key` (the oracle guide's first command) in a new folder."""
    from click.testing import CliRunner

    from cli import main

    path = tmp_path / "keys" / "oracle-1.key"
    result = CliRunner().invoke(main, ["keygen", "--out", str(path)])
    assert result.exit_code == 0, result.output
    assert Identity.load(path).public_key.hex() == result.stdout.strip()
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


@pytest.mark.parametrize("name", sorted(SIGNED))
def test_signature_does_not_verify_as_another_type(name: str) -> None:
    body, sig, key = SIGNED[name]
    assert verify(domain_tag(body.NAME), body.encode(), sig, key)
    for other in {t.NAME for t in Message.__subclasses__()} - {body.NAME}:
        assert not verify(domain_tag(other), body.encode(), sig, key)


@pytest.mark.parametrize("name", sorted(SIGNED))
def test_any_flipped_bit_fails_verification(name: str) -> None:
    body, sig, key = SIGNED[name]
    data = body.encode()
    tag = domain_tag(body.NAME)

    @settings(max_examples=200, deadline=None)
    @given(st.integers(0, (len(data) + len(sig) + len(key)) * 8 - 1))
    def run(bit: int) -> None:
        blob = bytearray(data + sig + key)
        blob[bit // 8] ^= 1 << (bit % 8)
        d, s, k = bytes(blob[:len(data)]), bytes(blob[len(data):len(data) + 64]), bytes(blob[len(data) + 64:])
        assert not verify(tag, d, s, k)

    run()


def test_verify_rejects_wrong_lengths() -> None:
    body, sig, key = SIGNED["frame"]
    assert not verify(domain_tag("frame"), body.encode(), sig[:-1], key)
    assert not verify(domain_tag("frame"), body.encode(), sig, key[:-1])
