"""Key files encrypted at rest: Argon2id stretches a passphrase, XSalsa20-Poly1305 (SecretBox) seals
the 32-byte seed. Both from libsodium through PyNaCl.

An encrypted key file is one line of JSON, mode 0600:
    {"format": "faultproof-key/v1", "kdf": "argon2id", "opslimit": N, "memlimit": N,
     "salt": "<32 hex>", "box": "<hex of nonce || ciphertext>"}
The KDF cost is stored in the file, so it can be raised later without breaking old files.

The passphrase comes from the environment: FAULTPROOF_KEY_PASSPHRASE, or a file named by
FAULTPROOF_KEY_PASSPHRASE_FILE (which must itself be private), never from a config or a command
line. This module never logs, prints or returns the passphrase, and returns the seed only to
faultproof.identity.

`check_private` is the one check every secret file passes before it is read (key files of either
type, the passphrase file, a token's PIN file): it exists and only its owner may access it.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import nacl.exceptions
import nacl.pwhash
import nacl.secret
import nacl.utils

FORMAT = "faultproof-key/v1"
PASSPHRASE_ENV = "FAULTPROOF_KEY_PASSPHRASE"
PASSPHRASE_FILE_ENV = "FAULTPROOF_KEY_PASSPHRASE_FILE"
# libsodium's "moderate" profile: about 0.5 s and 256 MiB here; a key is opened once per start.
OPSLIMIT = nacl.pwhash.argon2id.OPSLIMIT_MODERATE
MEMLIMIT = nacl.pwhash.argon2id.MEMLIMIT_MODERATE


class PassphraseError(Exception):
    """No passphrase, an unreadable passphrase file, or a wrong passphrase. Says what to fix."""


def is_encrypted(text: str) -> bool:
    return text.lstrip().startswith("{")


def check_private(path: Path, what: str, error: Callable[[str], Exception], *, missing: str = "") -> None:
    """Raise error(message) unless the secret file at path exists and group and others have no access
    to it: a secret another local user can read is not a secret. `what` names the file in messages;
    `missing` is the message for a file that does not exist (default: "{what} {path} not found")."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise error(missing or f"{what} {path} not found") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise error(f"{what} {path} is accessible by group or others (mode {stat.S_IMODE(st.st_mode):04o}); "
                    f"fix it with `chmod 600 {path}`")


def passphrase_from_env(environ: dict[str, str] | None = None) -> bytes | None:
    env = os.environ if environ is None else environ
    if env.get(PASSPHRASE_ENV):
        return env[PASSPHRASE_ENV].encode()
    path = env.get(PASSPHRASE_FILE_ENV)
    if not path:
        return None
    p = Path(path)
    check_private(p, "passphrase file", PassphraseError,
                  missing=f"{PASSPHRASE_FILE_ENV} names {p}, which does not exist")
    value = p.read_bytes().rstrip(b"\r\n")
    if not value:
        raise PassphraseError(f"passphrase file {p} is empty")
    return value


def _key(passphrase: bytes, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    return nacl.pwhash.argon2id.kdf(nacl.secret.SecretBox.KEY_SIZE, passphrase, salt,
                                    opslimit=opslimit, memlimit=memlimit)


def seal(seed: bytes, passphrase: bytes, *, opslimit: int = OPSLIMIT, memlimit: int = MEMLIMIT) -> str:
    """The encrypted file's text for `seed` under `passphrase`."""
    if not passphrase:
        raise PassphraseError("an empty passphrase protects nothing")
    salt = nacl.utils.random(nacl.pwhash.argon2id.SALTBYTES)
    box = nacl.secret.SecretBox(_key(passphrase, salt, opslimit, memlimit)).encrypt(seed)
    return json.dumps({"format": FORMAT, "kdf": "argon2id", "opslimit": opslimit, "memlimit": memlimit,
                       "salt": salt.hex(), "box": bytes(box).hex()}) + "\n"


def open_sealed(text: str, passphrase: bytes | None, where: str) -> bytes:
    """The seed inside an encrypted key file's text; PassphraseError names the file and the fix."""
    if passphrase is None:
        raise PassphraseError(f"key file {where} is encrypted; set {PASSPHRASE_ENV} or {PASSPHRASE_FILE_ENV}")
    try:
        doc = json.loads(text)
        if doc.get("format") != FORMAT or doc.get("kdf") != "argon2id":
            raise ValueError("unknown format")
        salt, box = bytes.fromhex(doc["salt"]), bytes.fromhex(doc["box"])
        opslimit, memlimit = int(doc["opslimit"]), int(doc["memlimit"])
        if len(salt) != nacl.pwhash.argon2id.SALTBYTES:
            raise ValueError("bad salt")
        if not (nacl.pwhash.argon2id.OPSLIMIT_MIN <= opslimit <= nacl.pwhash.argon2id.OPSLIMIT_MAX
                and nacl.pwhash.argon2id.MEMLIMIT_MIN <= memlimit <= nacl.pwhash.argon2id.MEMLIMIT_SENSITIVE):
            raise ValueError("KDF cost out of range")
    except (ValueError, KeyError, TypeError, AttributeError):
        raise PassphraseError(f"key file {where} is not a faultproof encrypted key ({FORMAT})") from None
    try:
        return nacl.secret.SecretBox(_key(passphrase, salt, opslimit, memlimit)).decrypt(box)
    except nacl.exceptions.CryptoError:
        raise PassphraseError(f"wrong passphrase for key file {where}") from None
