"""Ed25519 identities and the one sign/verify of faultproof.

A key file holds the raw 32-byte Ed25519 seed as 64 lowercase hex characters and a newline, mode
0600, or that seed encrypted at rest under a passphrase (faultproof/keyfile.py; a plaintext key is
still read, with a warning that names the command that encrypts it). The same seed is the process's libp2p identity (peer id and protocol id are one key). A key
file that group or others can read is refused: a private key that leaked to another local user is
not a private key.

Signatures are always over `domain_tag || canonical_bytes`, with a tag per message type
(`faultproof/<type>/v1`), so a signature made for one type never verifies as another.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nacl.exceptions
import nacl.signing
from nacl.bindings import crypto_sign_open

from faultproof import keyfile
from faultproof.errors import FaultproofError, Reason

_log = logging.getLogger("faultproof.keys")

SEED_LEN = 32
PUBLIC_KEY_LEN = 32
SIGNATURE_LEN = 64


class KeyFileError(Exception):
    """A key file that is missing, malformed or readable by others. The message says how to fix it."""


def domain_tag(type_name: str) -> bytes:
    return f"faultproof/{type_name}/v1".encode()



def missing_key_message(path: Path) -> str:
    """What a missing key file is told: the command that makes one."""
    return f"key file {path} not found (create one with `faultproof keygen --out {path}`)"


def write_secret(path: str | os.PathLike[str], text: str, *, overwrite: bool = False) -> None:
    """The one way a secret reaches the disk: created 0600 (never world-readable, not even briefly),
    never over an existing file unless asked, fsynced before it counts as written."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise KeyFileError(f"{path} already exists; refusing to overwrite a key") from None
    except OSError as e:  # its folder is missing, a file, or not ours to write
        raise KeyFileError(f"cannot write the key file {path}: {e.strerror} (choose a path in a folder you can "
                           "write)") from None
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(text)
        f.flush()
        os.fsync(f.fileno())

@dataclass(frozen=True, repr=False)
class Identity:
    """A private signing identity. `repr` never shows the seed."""

    _signing_key: nacl.signing.SigningKey

    @classmethod
    def generate(cls) -> Identity:
        return cls(nacl.signing.SigningKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> Identity:
        if len(seed) != SEED_LEN:
            raise ValueError("an Ed25519 seed is 32 bytes")
        return cls(nacl.signing.SigningKey(seed))

    @property
    def seed(self) -> bytes:
        """The private seed. Only for handing to libp2p's key pair in-process; never log or send."""
        return bytes(self._signing_key)

    @property
    def public_key(self) -> bytes:
        return bytes(self._signing_key.verify_key)

    def sign(self, tag: bytes, message: bytes) -> bytes:
        return self._signing_key.sign(tag + message).signature

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False, passphrase: bytes | None = None) -> None:
        """Write the key file with mode 0600, created that way (never world-readable, not even briefly);
        encrypted at rest when a passphrase is given."""
        p = Path(path)
        text = keyfile.seal(self.seed, passphrase) if passphrase is not None else self.seed.hex() + "\n"
        write_secret(p, text, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Identity:
        p = Path(path)
        keyfile.check_private(p, "key file", KeyFileError, missing=missing_key_message(p))
        text = p.read_text().strip()
        if keyfile.is_encrypted(text):
            try:
                return cls.from_seed(keyfile.open_sealed(text, keyfile.passphrase_from_env(), str(p)))
            except (keyfile.PassphraseError, ValueError) as e:
                raise KeyFileError(str(e)) from None
        try:
            seed = bytes.fromhex(text)
        except ValueError:
            raise KeyFileError(f"key file {p} is not 64 hex characters") from None
        if len(seed) != SEED_LEN:
            raise KeyFileError(f"key file {p} must hold a 32-byte seed as 64 hex characters")
        # Only about a key that is one: a file that is not a key gets its one error line, no more.
        _log.warning("key file %s is not encrypted at rest; encrypt it with `faultproof key encrypt %s`", p, p)
        return cls.from_seed(seed)

    def __repr__(self) -> str:
        return f"Identity(public_key={self.public_key.hex()})"


def _verify_ed25519(tag: bytes, message: bytes, signature: bytes, public_key: bytes) -> bool:
    # libsodium's crypto_sign_open directly: what nacl.signing.VerifyKey.verify calls, minus a key
    # object per call (the agent runs this for every frame; tests/agent/test_frames.py compares them).
    if len(signature) != SIGNATURE_LEN:
        return False
    try:
        crypto_sign_open(signature + tag + message, public_key)
        return True
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError, TypeError):
        return False


# The one verify path: a verifier per key type, told apart by the public key's length (32 bytes:
# Ed25519). Another key type (e.g. a hardware P-256 key) is added here and nowhere else.
VERIFIERS: dict[int, Callable[[bytes, bytes, bytes, bytes], bool]] = {PUBLIC_KEY_LEN: _verify_ed25519}


def verify(tag: bytes, message: bytes, signature: bytes, public_key: bytes) -> bool:
    """True iff `signature` is `public_key`'s signature over `tag || message`."""
    verifier = VERIFIERS.get(len(public_key))
    return verifier is not None and verifier(tag, message, signature, public_key)


def require_valid(tag: bytes, message: bytes, signature: bytes, public_key: bytes, reason: Reason) -> None:
    if not verify(tag, message, signature, public_key):
        raise FaultproofError(reason)
