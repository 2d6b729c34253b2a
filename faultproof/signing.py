"""Key types and the one typed verify of faultproof; signers whose keys live in a file or a token.

faultproof.identity keeps the Ed25519 key file and `verify` (an Ed25519 public key is the id
everywhere, unchanged). This module adds what a secure element needs (DESIGN §15):

- `KeyType`: Ed25519 (1) or ECDSA P-256 (2). ATECC608 and TPM 2.0 sign P-256 only.
- `PublicKey(key_type, data)`: Ed25519 data = the 32-byte key; P-256 data = the 33-byte SEC1
  compressed point. `key_id` is the 32-byte id a key has on the wire (device_id, agent_id):
  the Ed25519 key itself, or `hash_id("p256-key", data)` for P-256. So a P-256 device keeps a
  32-byte device_id, and the enrolment carries the key from which the id is derived.
- `verify(key, tag, message, signature)`: the only dispatch on key type. Every signature is 64
  bytes; a P-256 signature is raw r||s (big-endian) of ECDSA-SHA256 over `tag || message`, and
  only its low-s form is valid (s <= n/2): ECDSA signatures are malleable, and a signature that
  travels in a hashed message must have one form only.
- `Signer`: what signs. `FileSigner` (Ed25519 key file via Identity, or a P-256 key file) and
  `Pkcs11Signer` (a key in a PKCS#11 token: python-pkcs11, SoftHSM2 in tests; the private key is
  made inside the token, non-extractable and sensitive, and never leaves it). A signer exposes
  `public_key` (the key id) and `sign(tag, message)` like Identity, so message helpers take either.

PIN handling: a `TokenConfig` names the module, token label and key label; the PIN comes from an
environment variable or a file named in the config, never from the config itself, and is never
logged, printed or passed on a command line.

This module must never write a private key anywhere but a 0600 key file the caller asked for, and
never import a daemon package.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from faultproof import identity, keyfile
from faultproof.encoding import hash_id
from faultproof.errors import FaultproofError, Reason

SIGNATURE_LEN = 64
P256_POINT_LEN = 33  # SEC1 compressed
# Order of the P-256 group.
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_HALF_N = P256_N // 2


class KeyType(enum.IntEnum):
    ED25519 = 1
    P256 = 2


KEY_LENGTHS = {KeyType.ED25519: identity.PUBLIC_KEY_LEN, KeyType.P256: P256_POINT_LEN}


class KeyError_(Exception):
    """A key or token that cannot be used; the message says how to fix it (never shows a secret)."""


@dataclass(frozen=True)
class PublicKey:
    key_type: KeyType
    data: bytes

    def __post_init__(self) -> None:
        want = KEY_LENGTHS[self.key_type]
        if len(self.data) != want:
            raise FaultproofError(Reason.WRONG_LENGTH, f"a {self.key_type.name} public key is {want} bytes")
        if self.key_type is KeyType.P256:
            _p256_point(self.data)  # raises on a point not on the curve

    @property
    def key_id(self) -> bytes:
        return key_id(self.key_type, self.data)

    @classmethod
    def ed25519(cls, key: bytes) -> PublicKey:
        return cls(KeyType.ED25519, key)


def key_id(key_type: KeyType | int, data: bytes) -> bytes:
    """The 32-byte wire id of a public key (device_id / agent_id / oracle_id)."""
    if KeyType(key_type) is KeyType.ED25519:
        return bytes(data)
    return hash_id("p256-key", bytes(data))


def _p256_point(data: bytes) -> ec.EllipticCurvePublicKey:
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), data)
    except (ValueError, TypeError):
        raise FaultproofError(Reason.OUT_OF_RANGE, "not a P-256 point") from None


def compress_p256(point: bytes) -> bytes:
    """SEC1 uncompressed (65 bytes) or compressed (33) -> compressed."""
    return _p256_point(point).public_bytes(Encoding.X962, PublicFormat.CompressedPoint)


# --------------------------------------------------------------------------- verify

# Parsed P-256 keys: parsing a point costs more than half a verify, and the same device keys are
# checked over and over. Bounded; entries are pure functions of the bytes.
_P256_CACHE: dict[bytes, ec.EllipticCurvePublicKey] = {}
_P256_CACHE_MAX = 4096


def _p256_key(data: bytes) -> ec.EllipticCurvePublicKey | None:
    k = _P256_CACHE.get(data)
    if k is None:
        try:
            k = _p256_point(data)
        except FaultproofError:
            return None
        if len(_P256_CACHE) >= _P256_CACHE_MAX:
            _P256_CACHE.clear()
        _P256_CACHE[data] = k
    return k


def p256_verify(point: bytes, tag: bytes, message: bytes, signature: bytes) -> bool:
    """ECDSA-SHA256 over tag || message, raw low-s r||s, under a SEC1 point."""
    if len(signature) != SIGNATURE_LEN:
        return False
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    if not (0 < r < P256_N and 0 < s <= _HALF_N):
        return False
    key = _p256_key(bytes(point))
    if key is None:
        return False
    try:
        key.verify(encode_dss_signature(r, s), tag + message, ec.ECDSA(hashes.SHA256()))
        return True
    except InvalidSignature:
        return False


def verify(key: PublicKey, tag: bytes, message: bytes, signature: bytes) -> bool:
    """True iff `signature` is `key`'s signature over `tag || message` (the key's own type only)."""
    if key.key_type is KeyType.ED25519:
        return identity.verify(tag, message, signature, key.data)
    if key.key_type is KeyType.P256:
        return p256_verify(key.data, tag, message, signature)
    return False


def verify_message(key: PublicKey, body: Any, signature: bytes) -> bool:
    """A message signature (`domain_tag(body.NAME) || body.encode()`, as faultproof.messages signs)
    under a typed key: how a P-256 device's frames and evidence verify."""
    return verify(key, identity.domain_tag(body.NAME), body.encode(), signature)


def require_valid(key: PublicKey, tag: bytes, message: bytes, signature: bytes, reason: Reason) -> None:
    if not verify(key, tag, message, signature):
        raise FaultproofError(reason, f"the signature does not verify under the enrolled {key.key_type.name} key")


def normalise_p256(raw: bytes) -> bytes:
    """Raw r||s from any ECDSA signer (a token, cryptography) -> the one low-s form."""
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    if s > _HALF_N:
        s = P256_N - s
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


# --------------------------------------------------------------------------- signers


class Signer(Protocol):
    """Signs like faultproof.identity.Identity: `public_key` is the 32-byte id, `sign(tag, msg)`."""

    @property
    def public(self) -> PublicKey: ...

    @property
    def public_key(self) -> bytes: ...

    def sign(self, tag: bytes, message: bytes) -> bytes: ...


class P256KeySigner:
    """A software P-256 key (tests, the simulator's P-256 devices). The key file holds
    `p256 <64 hex of the private scalar>`, mode 0600, like an Ed25519 key file."""

    def __init__(self, private: ec.EllipticCurvePrivateKey) -> None:
        self._key = private
        point = private.public_key().public_bytes(Encoding.X962, PublicFormat.CompressedPoint)
        self.public = PublicKey(KeyType.P256, point)

    @classmethod
    def generate(cls) -> P256KeySigner:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @property
    def public_key(self) -> bytes:
        return self.public.key_id

    def sign(self, tag: bytes, message: bytes) -> bytes:
        r, s = decode_dss_signature(self._key.sign(tag + message, ec.ECDSA(hashes.SHA256())))
        return normalise_p256(r.to_bytes(32, "big") + s.to_bytes(32, "big"))

    def save(self, path: str | os.PathLike[str]) -> None:
        scalar = self._key.private_numbers().private_value.to_bytes(32, "big")
        p = Path(path)
        try:
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise KeyError_(f"{p} already exists; refusing to overwrite a key") from None
        with os.fdopen(fd, "w") as f:
            f.write("p256 " + scalar.hex() + "\n")
            f.flush()
            os.fsync(f.fileno())

    def __repr__(self) -> str:
        return f"P256KeySigner(key_id={self.public_key.hex()})"


class Ed25519FileSigner:
    """An Ed25519 key file (faultproof.identity) as a Signer."""

    def __init__(self, ident: identity.Identity) -> None:
        self.identity = ident
        self.public = PublicKey(KeyType.ED25519, ident.public_key)

    @property
    def public_key(self) -> bytes:
        return self.identity.public_key

    def sign(self, tag: bytes, message: bytes) -> bytes:
        return self.identity.sign(tag, message)

    def __repr__(self) -> str:
        return f"Ed25519FileSigner(key_id={self.public_key.hex()})"


def load_key_file(path: str | os.PathLike[str]) -> Ed25519FileSigner | P256KeySigner:
    """A key file of either type; the same permission rule as faultproof.identity."""
    p = Path(path)
    keyfile.check_private(p, "key file", KeyError_, missing=identity.missing_key_message(p))
    text = p.read_text().strip()
    if text.startswith("p256 "):
        try:
            scalar = int(text[5:], 16)
            return P256KeySigner(ec.derive_private_key(scalar, ec.SECP256R1()))
        except ValueError:
            raise KeyError_(f"key file {p} is not `p256 <64 hex>`") from None
    try:
        return Ed25519FileSigner(identity.Identity.load(p))
    except identity.KeyFileError as e:
        raise KeyError_(str(e)) from None


# --------------------------------------------------------------------------- PKCS#11


DEFAULT_MODULES = ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so")
PIN_ENV_DEFAULT = "FAULTPROOF_PKCS11_PIN"
# DER of the curve OIDs, CKA_EC_PARAMS.
_P256_PARAMS = bytes.fromhex("06082a8648ce3d030107")  # 1.2.840.10045.3.1.7
_ED25519_PARAMS = bytes.fromhex("06032b6570")  # 1.3.101.112


@dataclass(frozen=True)
class TokenConfig:
    """Where a key lives in a token. No PIN here: `pin_env` names an environment variable, or
    `pin_file` a 0600 file; the PIN is read when the token is opened."""

    token_label: str
    key_label: str
    module: str = ""
    pin_env: str = PIN_ENV_DEFAULT
    pin_file: str = ""

    def module_path(self) -> str:
        if self.module:
            return self.module
        for m in DEFAULT_MODULES:
            if os.path.exists(m):
                return m
        raise KeyError_("no PKCS#11 module found: install softhsm2 (`make setup`) or set `module`")

    def read_pin(self) -> str:
        if self.pin_file:
            p = Path(self.pin_file)
            keyfile.check_private(p, "PIN file", KeyError_)
            return p.read_text().strip()
        pin = os.environ.get(self.pin_env, "")
        if not pin:
            raise KeyError_(f"no token PIN: set the environment variable {self.pin_env} (or pin_file in the config)")
        return pin

    @classmethod
    def from_mapping(cls, m: dict[str, Any]) -> TokenConfig:
        allowed = {"token_label", "key_label", "module", "pin_env", "pin_file"}
        unknown = set(m) - allowed
        if "pin" in m or "user_pin" in m:
            raise KeyError_("a PIN never goes in a config file: use pin_env or pin_file")
        if unknown:
            raise KeyError_(f"unknown token setting(s) {sorted(unknown)} (allowed: {sorted(allowed)})")
        for k in ("token_label", "key_label"):
            if not isinstance(m.get(k), str) or not m[k]:
                raise KeyError_(f"token setting {k} is required")
        return cls(**{k: str(v) for k, v in m.items()})


# Tries to open a token another process may be writing: ~4 s of backoff in all (0.1 s doubling, at
# most 1 s a wait).
_TOKEN_ATTEMPTS = 8


class _Sessions:
    """One logged-in session per (module, token) per process. PKCS#11 login is per process (a
    second login fails with UserAlreadyLoggedIn), and python-pkcs11's lib is a singleton."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[tuple[str, str], Any] = {}

    def get(self, cfg: TokenConfig) -> Any:
        import pkcs11  # imported here so a key-file-only process never loads a PKCS#11 module

        key = (cfg.module_path(), cfg.token_label)
        with self._lock:
            s = self._open.get(key)
            if s is not None:
                return s
            # SoftHSM2's file store answers GeneralError, or lists no such token, while another
            # process writes the token (the devnet makes device keys in it while oracles start,
            # and oracles log in at once), when the token is looked up and when a session logs
            # in: retry, for a few seconds (a loaded machine: 0.7 s was once not enough).
            for attempt in range(_TOKEN_ATTEMPTS):
                try:
                    lib = pkcs11.lib(key[0])
                    token = lib.get_token(token_label=cfg.token_label)
                    s = token.open(user_pin=cfg.read_pin(), rw=True)
                    break
                except pkcs11.exceptions.NoSuchToken:
                    # A token store read while another process wrote it (a login can write the
                    # token's flags) stays unlisted in this process until the library re-reads the
                    # store: SoftHSM2 makes its slots when it initialises. Measured, six processes
                    # logging in at once: 2 of 8 rounds had one that kept failing for 12 retries
                    # without; with it, 2 of 14 rounds had one that needed one retry, none more. So
                    # the library is reinitialised, unless this process has other sessions (that
                    # would end them; python-pkcs11's lib is one per process): then it is only
                    # listed again. A token really missing is said after ~4 s (a loaded machine).
                    if attempt == _TOKEN_ATTEMPTS - 1:
                        raise KeyError_(f"no PKCS#11 token labelled {cfg.token_label!r} (SOFTHSM2_CONF set?)") from None
                    time.sleep(min(0.1 * 2**attempt, 1.0))
                    if not self._open:
                        with contextlib.suppress(pkcs11.exceptions.PKCS11Error):
                            pkcs11.lib(key[0]).reinitialize()
                except pkcs11.exceptions.PinIncorrect:
                    raise KeyError_(f"wrong PIN for token {cfg.token_label!r}") from None
                except pkcs11.exceptions.UserAlreadyLoggedIn:
                    s = token.open(rw=True)  # the process is logged in already: its sessions see the keys
                    break
                except pkcs11.exceptions.GeneralError:
                    if attempt == _TOKEN_ATTEMPTS - 1:
                        raise KeyError_(f"cannot open the PKCS#11 token {cfg.token_label!r} in {key[0]}: "
                                        "GeneralError") from None
                    time.sleep(min(0.1 * 2**attempt, 1.0))
                    with contextlib.suppress(pkcs11.exceptions.PKCS11Error):
                        pkcs11.lib(key[0]).reinitialize()
                except pkcs11.exceptions.PKCS11Error as e:
                    raise KeyError_(f"cannot open the PKCS#11 module {key[0]}: {type(e).__name__}") from None
            self._open[key] = s
            return s

    def close_all(self) -> None:
        with self._lock:
            for s in self._open.values():
                try:
                    s.close()
                except Exception:  # noqa: BLE001 - closing at teardown; nothing to report
                    pass
            self._open.clear()


SESSIONS = _Sessions()


def _public_from_token(pub: Any, key_type: KeyType) -> PublicKey:
    import pkcs11

    point = bytes(pub[pkcs11.Attribute.EC_POINT])
    # CKA_EC_POINT is a DER OCTET STRING: 04 <len> <point>.
    if len(point) >= 2 and point[0] == 0x04 and point[1] == len(point) - 2:
        point = point[2:]
    if key_type is KeyType.ED25519:
        return PublicKey(KeyType.ED25519, point)
    return PublicKey(KeyType.P256, compress_p256(point))


def token_generate(cfg: TokenConfig, key_type: KeyType) -> PublicKey:
    """Make a key pair inside the token under cfg.key_label (refused if the label is taken).
    The private half is sensitive and non-extractable: it can sign and nothing else."""
    from pkcs11 import Attribute, Mechanism, ObjectClass
    from pkcs11 import KeyType as PK

    session = SESSIONS.get(cfg)
    with SESSIONS._lock:
        existing = list(session.get_objects({Attribute.LABEL: cfg.key_label, Attribute.CLASS: ObjectClass.PRIVATE_KEY}))
        if existing:
            raise KeyError_(f"token {cfg.token_label!r} already holds a key labelled {cfg.key_label!r}")
        params = _P256_PARAMS if key_type is KeyType.P256 else _ED25519_PARAMS
        pk_type = PK.EC if key_type is KeyType.P256 else PK.EC_EDWARDS
        mech = Mechanism.EC_KEY_PAIR_GEN if key_type is KeyType.P256 else Mechanism.EC_EDWARDS_KEY_PAIR_GEN
        pub, _priv = session.generate_keypair(
            pk_type, mechanism=mech, label=cfg.key_label, store=True,
            public_template={Attribute.EC_PARAMS: params},
            private_template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False},
        )
        return _public_from_token(pub, key_type)


def token_destroy(cfg: TokenConfig) -> int:
    """Destroy the key pair labelled cfg.key_label (decommission). Returns how many objects went."""
    from pkcs11 import Attribute

    session = SESSIONS.get(cfg)
    with SESSIONS._lock:
        objs = list(session.get_objects({Attribute.LABEL: cfg.key_label}))
        for o in objs:
            o.destroy()
        return len(objs)


# DESIGN §13: an oracle's chain key may be a secp256k1 key in the token. It is not a protocol key
# type (no KeyType: the protocol never verifies it; the pool contract does), so it has its own
# signer that signs 32-byte digests; ledger/evm/chain_keys.py makes Ethereum signatures of them.
SECP256K1_PARAMS = bytes.fromhex("06052b8104000a")  # 1.3.132.0.10


def _token_pair(session: Any, cfg: TokenConfig) -> tuple[Any, Any]:
    from pkcs11 import Attribute, ObjectClass

    privs = list(session.get_objects({Attribute.LABEL: cfg.key_label, Attribute.CLASS: ObjectClass.PRIVATE_KEY}))
    pubs = list(session.get_objects({Attribute.LABEL: cfg.key_label, Attribute.CLASS: ObjectClass.PUBLIC_KEY}))
    if len(privs) != 1 or len(pubs) != 1:
        raise KeyError_(f"token {cfg.token_label!r} has no single key pair labelled {cfg.key_label!r} "
                        f"(make one with `faultproof token keygen`)")
    return privs[0], pubs[0]


def token_generate_secp256k1(cfg: TokenConfig) -> bytes:
    """Make a secp256k1 key pair inside the token (sensitive, non-extractable); its 65-byte
    uncompressed public point."""
    from pkcs11 import Attribute, Mechanism, ObjectClass
    from pkcs11 import KeyType as PK

    session = SESSIONS.get(cfg)
    with SESSIONS._lock:
        if list(session.get_objects({Attribute.LABEL: cfg.key_label, Attribute.CLASS: ObjectClass.PRIVATE_KEY})):
            raise KeyError_(f"token {cfg.token_label!r} already holds a key labelled {cfg.key_label!r}")
        pub, _priv = session.generate_keypair(
            PK.EC, mechanism=Mechanism.EC_KEY_PAIR_GEN, label=cfg.key_label, store=True,
            public_template={Attribute.EC_PARAMS: SECP256K1_PARAMS},
            private_template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False})
        return _ec_point(pub)


def _ec_point(pub: Any) -> bytes:
    from pkcs11 import Attribute

    point = bytes(pub[Attribute.EC_POINT])  # a DER OCTET STRING: 04 <len> <point>
    return point[2:] if len(point) >= 2 and point[0] == 0x04 and point[1] == len(point) - 2 else point


class Pkcs11DigestSigner:
    """A secp256k1 key in a PKCS#11 token that signs 32-byte digests (raw ECDSA r ‖ s, as the
    token gives it; the caller normalises). The private key never enters this process."""

    def __init__(self, cfg: TokenConfig) -> None:
        from pkcs11 import Attribute

        self.cfg = cfg
        session = SESSIONS.get(cfg)
        with SESSIONS._lock:
            self._priv, pub = _token_pair(session, cfg)
            if bytes(pub[Attribute.EC_PARAMS]) != SECP256K1_PARAMS:
                raise KeyError_(f"key {cfg.key_label!r} is not a secp256k1 key "
                                "(make one with `faultproof token keygen --type secp256k1`)")
            self.point = _ec_point(pub)

    def sign_digest(self, digest: bytes) -> bytes:
        from pkcs11 import Mechanism

        if len(digest) != 32:
            raise ValueError("a digest is 32 bytes")
        with SESSIONS._lock:
            return bytes(self._priv.sign(digest, mechanism=Mechanism.ECDSA))

    def __repr__(self) -> str:
        return f"Pkcs11DigestSigner(token={self.cfg.token_label!r}, key={self.cfg.key_label!r})"


PKCS11_PREFIX = "pkcs11:"


def load_signer(spec: str | os.PathLike[str]) -> Ed25519FileSigner | P256KeySigner | Pkcs11Signer:
    """A key file path, or `pkcs11:TOKEN/LABEL` for a key in a token (PIN from the environment)."""
    text = os.fspath(spec)
    if text.startswith(PKCS11_PREFIX):
        token, sep, label = text[len(PKCS11_PREFIX):].partition("/")
        if not sep or not token or not label:
            raise KeyError_(f"{text!r}: a token key is pkcs11:TOKEN/LABEL")
        return Pkcs11Signer(TokenConfig(token_label=token, key_label=label))
    return load_key_file(text)


class Pkcs11Signer:
    """A key in a PKCS#11 token. Signs inside the token; the private key never enters this process."""

    def __init__(self, cfg: TokenConfig) -> None:
        from pkcs11 import Attribute, ObjectClass
        from pkcs11 import KeyType as PK

        self.cfg = cfg
        session = SESSIONS.get(cfg)
        with SESSIONS._lock:
            privs = list(session.get_objects({Attribute.LABEL: cfg.key_label, Attribute.CLASS: ObjectClass.PRIVATE_KEY}))
            pubs = list(session.get_objects({Attribute.LABEL: cfg.key_label, Attribute.CLASS: ObjectClass.PUBLIC_KEY}))
            if len(privs) != 1 or len(pubs) != 1:
                raise KeyError_(f"token {cfg.token_label!r} has no single key pair labelled {cfg.key_label!r} "
                                f"(make one with `faultproof token keygen`)")
            self._priv = privs[0]
            kt = self._priv[Attribute.KEY_TYPE]
            if kt == PK.EC and bytes(pubs[0][Attribute.EC_PARAMS]) != _P256_PARAMS:
                raise KeyError_(f"key {cfg.key_label!r} is an EC key but not P-256 (a secp256k1 chain key "
                                "signs only for the pool contract)")
            if kt == PK.EC:
                self.key_type = KeyType.P256
            elif kt == PK.EC_EDWARDS:
                self.key_type = KeyType.ED25519
            else:
                raise KeyError_(f"key {cfg.key_label!r} is neither P-256 nor Ed25519")
            self.public = _public_from_token(pubs[0], self.key_type)

    @property
    def public_key(self) -> bytes:
        return self.public.key_id

    def sign(self, tag: bytes, message: bytes) -> bytes:
        from pkcs11 import Mechanism

        with SESSIONS._lock:  # one session per token: PKCS#11 sessions are not for concurrent use
            if self.key_type is KeyType.ED25519:
                return bytes(self._priv.sign(tag + message, mechanism=Mechanism.EDDSA))
            # SoftHSM 2.6 has no CKM_ECDSA_SHA256: hash here, sign the digest (= ECDSA-SHA256).
            digest = hashlib.sha256(tag + message).digest()
            raw = bytes(self._priv.sign(digest, mechanism=Mechanism.ECDSA))
        return normalise_p256(raw)

    def __repr__(self) -> str:
        return f"Pkcs11Signer(token={self.cfg.token_label!r}, key={self.cfg.key_label!r})"


def load_process_keys(key_spec: str | os.PathLike[str],
                      transport_key_file: str | os.PathLike[str] | None) -> tuple[identity.Identity, identity.Identity]:
    """A daemon's protocol signing key and its libp2p (transport) identity (DESIGN §15).

    A key file is both, as before. A token key (`pkcs11:TOKEN/LABEL`) signs votes, claims, anchors
    and entries inside the token, while libp2p needs the seed of a file key: `transport_key_file`.
    The token signer is returned under the `Identity` face it shares (`public_key`, `sign`); it
    must be an Ed25519 key, since oracle, agent, admin and ledger ids are Ed25519 keys."""
    text = os.fspath(key_spec)
    if not text.startswith(PKCS11_PREFIX):
        ident = identity.Identity.load(text)
        transport = identity.Identity.load(transport_key_file) if transport_key_file else ident
        return ident, transport
    if not transport_key_file:
        raise KeyError_(f"{text}: a token key needs a separate transport key file for libp2p")
    signer = load_daemon_key(text)
    transport = identity.Identity.load(transport_key_file)
    if transport.public_key == signer.public_key:
        raise KeyError_("the transport key must differ from the signing key")
    return signer, transport


def load_daemon_key(key_spec: str | os.PathLike[str]) -> identity.Identity:
    """A daemon's protocol signing key alone: a key file, or an Ed25519 token key. For a daemon
    that does not gossip (an agent with `[gossip] enabled = false` sends its claims over HTTP),
    which so needs no libp2p identity and no transport key file."""
    text = os.fspath(key_spec)
    if not text.startswith(PKCS11_PREFIX):
        return identity.Identity.load(text)
    signer = load_signer(text)
    if not isinstance(signer, Pkcs11Signer) or signer.key_type is not KeyType.ED25519:
        raise KeyError_(f"{text}: a daemon's key must be Ed25519 (make it with `faultproof token keygen --type ed25519`)")
    # Same face as Identity (public_key, sign); the cast keeps the daemons' Identity hints.
    return cast(identity.Identity, signer)
