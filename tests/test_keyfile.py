"""Key files encrypted at rest (Argon2id + SecretBox), the plaintext warning, and the migration
command `faultproof key encrypt`."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from faultproof import keyfile
from faultproof.identity import Identity, KeyFileError

PASS = "correct horse battery staple"


def test_encrypted_key_round_trips_and_hides_the_seed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    identity = Identity.generate()
    path = tmp_path / "k.key"
    identity.save(path, passphrase=PASS.encode())
    text = path.read_text()
    assert identity.seed.hex() not in text and PASS not in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    monkeypatch.setenv(keyfile.PASSPHRASE_ENV, PASS)
    assert Identity.load(path).public_key == identity.public_key


def test_encrypted_key_needs_the_right_passphrase(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "k.key"
    Identity.generate().save(path, passphrase=PASS.encode())
    monkeypatch.delenv(keyfile.PASSPHRASE_ENV, raising=False)
    monkeypatch.delenv(keyfile.PASSPHRASE_FILE_ENV, raising=False)
    with pytest.raises(KeyFileError, match=keyfile.PASSPHRASE_ENV):
        Identity.load(path)
    monkeypatch.setenv(keyfile.PASSPHRASE_ENV, "wrong")
    with pytest.raises(KeyFileError, match="wrong passphrase"):
        Identity.load(path)
    path.write_text(path.read_text().replace('"argon2id"', '"scrypt"'))
    with pytest.raises(KeyFileError, match="not a faultproof encrypted key"):
        Identity.load(path)


def test_passphrase_file_must_be_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "passphrase"
    secret.write_text(PASS + "\n")
    os.chmod(secret, 0o644)
    monkeypatch.delenv(keyfile.PASSPHRASE_ENV, raising=False)
    monkeypatch.setenv(keyfile.PASSPHRASE_FILE_ENV, str(secret))
    with pytest.raises(keyfile.PassphraseError, match="chmod 600"):
        keyfile.passphrase_from_env()
    os.chmod(secret, 0o600)
    assert keyfile.passphrase_from_env() == PASS.encode()


def test_plaintext_key_is_read_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    identity = Identity.generate()
    path = tmp_path / "plain.key"
    identity.save(path)
    with caplog.at_level(logging.WARNING, logger="faultproof.keys"):
        assert Identity.load(path).public_key == identity.public_key
    assert f"faultproof key encrypt {path}" in caplog.text
    assert identity.seed.hex() not in caplog.text


def test_key_encrypt_migrates_in_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    identity = Identity.generate()
    path = tmp_path / "oracle.key"
    identity.save(path)
    runner = CliRunner()
    monkeypatch.delenv(keyfile.PASSPHRASE_ENV, raising=False)
    monkeypatch.delenv(keyfile.PASSPHRASE_FILE_ENV, raising=False)
    refused = runner.invoke(main, ["key", "encrypt", str(path)])
    assert refused.exit_code == 2 and keyfile.PASSPHRASE_ENV in refused.output
    assert not keyfile.is_encrypted(path.read_text())  # nothing changed
    monkeypatch.setenv(keyfile.PASSPHRASE_ENV, PASS)
    result = runner.invoke(main, ["key", "encrypt", str(path)])
    assert result.exit_code == 0, result.output
    assert keyfile.is_encrypted(path.read_text()) and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert identity.seed.hex() not in result.output
    assert Identity.load(path).public_key == identity.public_key
    again = runner.invoke(main, ["key", "encrypt", str(path)])
    assert again.exit_code == 0 and "already encrypted" in again.output
    made = runner.invoke(main, ["keygen", "--out", str(tmp_path / "new.key"), "--encrypt"])
    assert made.exit_code == 0 and keyfile.is_encrypted((tmp_path / "new.key").read_text())
