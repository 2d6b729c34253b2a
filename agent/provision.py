"""Device provisioning: a device key, its blinding key and the enrolment request for the ledger.

`faultproof device provision --out DIR` (agent/cli.py) and the simulator both call `provision`.
Files written (each created 0600, never world-readable even briefly):
  DIR/<name>.key        Ed25519 seed, 64 hex chars (faultproof.identity format); device_id = its public key
  DIR/<name>.blind      the 31-byte blinding key k_blind as 62 hex chars; shared with the agent only
  DIR/<name>.enrol.json EnrolDevice JSON (device_id, epoch, anchor c_0, firmware_hash) for the
                        underwriter's `enrol_device` transaction (not secret)
  DIR/<name>.sign_every  only for a device that signs every s-th frame (s > 1, DESIGN §16): s as a
                        decimal integer; the agent keeps it beside the .blind (no oracle needs it)
The agent finds a device's blinding key as `<device_id_hex>.blind` in its `blinding_keys_dir`, so
the default name is the device id.

This file must never send a key anywhere or print a secret.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from agent.frames import MAX_SIGN_EVERY, SensorSpec
from faultproof import chain, strictjson
from faultproof.identity import Identity, KeyFileError, write_secret
from faultproof.messages import EnrolDevice


def save_blinding_key(path: str | os.PathLike[str], key: bytes, *, overwrite: bool = False) -> None:
    if len(key) != chain.BLINDING_KEY_LEN:
        raise ValueError("a blinding key is 31 bytes")
    write_secret(Path(path), key.hex() + "\n", overwrite=overwrite)


def load_blinding_key(path: str | os.PathLike[str]) -> bytes:
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise KeyFileError(f"blinding key file {p} not found") from None
    if st.st_mode & 0o077:
        raise KeyFileError(f"blinding key file {p} is accessible by group or others; fix it with `chmod 600 {p}`")
    try:
        key = bytes.fromhex(p.read_text().strip())
    except ValueError:
        raise KeyFileError(f"blinding key file {p} is not hex") from None
    if len(key) != chain.BLINDING_KEY_LEN:
        raise KeyFileError(f"blinding key file {p} must hold 31 bytes as 62 hex characters")
    return key


def enrolment(device_id: bytes, epoch: int, firmware_hash: bytes) -> EnrolDevice:
    return EnrolDevice(device_id=device_id, epoch=epoch,
                       anchor=chain.chain_to_bytes(chain.chain_anchor(device_id, epoch)),
                       firmware_hash=firmware_hash)


def firmware_hash_of(text_or_path: str) -> bytes:
    """A firmware hash: 64 hex chars as given, or the SHA-256 of a firmware image file."""
    try:
        raw = bytes.fromhex(text_or_path)
        if len(raw) == 32:
            return raw
    except ValueError:
        pass
    return hashlib.sha256(Path(text_or_path).read_bytes()).digest()


@dataclass(frozen=True)
class ProvisionedDevice:
    identity: Identity
    blinding_key: bytes
    epoch: int
    key_path: Path
    blinding_path: Path
    enrol_path: Path
    enrol: EnrolDevice

    @property
    def device_id(self) -> bytes:
        return self.identity.public_key


def provision(out_dir: str | os.PathLike[str], *, name: str | None = None, epoch: int = 0,
              firmware_hash: bytes = bytes(32), overwrite: bool = False,
              identity: Identity | None = None, blinding_key: bytes | None = None,
              sensor: SensorSpec | None = None, sign_every: int = 1) -> ProvisionedDevice:
    if not 1 <= sign_every <= MAX_SIGN_EVERY:
        raise ValueError(f"sign_every must be in 1..{MAX_SIGN_EVERY}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ident = identity or Identity.generate()
    k_blind = blinding_key or secrets.token_bytes(chain.BLINDING_KEY_LEN)
    base = name or ident.public_key.hex()
    key_path, blind_path, enrol_path = out / f"{base}.key", out / f"{base}.blind", out / f"{base}.enrol.json"
    ident.save(key_path, overwrite=overwrite)
    save_blinding_key(blind_path, k_blind, overwrite=overwrite)
    msg = enrolment(ident.public_key, epoch, firmware_hash)
    enrol_path.write_text(json.dumps(msg.to_json(), indent=1) + "\n")
    if sensor is not None:  # the device's unit and scale, kept beside its .blind by the agent
        (out / f"{base}{SENSOR_SUFFIX}").write_text(json.dumps(sensor.to_json()) + "\n")
    if sign_every > 1:  # the device signs seq 0 and every seq ≡ 0 (mod s) (DESIGN §16)
        (out / f"{base}{SIGN_EVERY_SUFFIX}").write_text(f"{sign_every}\n")
    return ProvisionedDevice(ident, k_blind, epoch, key_path, blind_path, enrol_path, msg)


SENSOR_SUFFIX = ".sensor.json"
SIGN_EVERY_SUFFIX = ".sign_every"


def load_sign_every(keys_dir: str | os.PathLike[str], device_hex: str) -> int:
    """How often a device signs its frames (`<device_id_hex>.sign_every`, DESIGN §16): 1 (every
    frame) without the file. A file that is not an integer in 1..64 is refused (ValueError naming
    the file), never taken as 1: the agent would refuse every unsigned frame of the device."""
    path = Path(keys_dir) / f"{device_hex}{SIGN_EVERY_SUFFIX}"
    try:
        text = path.read_text()[:16].strip()
    except FileNotFoundError:
        return 1
    if not text.isdigit() or not 1 <= int(text) <= MAX_SIGN_EVERY:
        raise ValueError(f"{path}: expected an integer in 1..{MAX_SIGN_EVERY} (how often the device signs a frame)")
    return int(text)


def load_sensor(keys_dir: str | os.PathLike[str], device_hex: str) -> SensorSpec | None:
    """The declared unit and scale of a device (`<device_id_hex>.sensor.json`), or None if it
    declared none. A record that does not parse is refused loudly (DecodeError), not ignored."""
    path = Path(keys_dir) / f"{device_hex}{SENSOR_SUFFIX}"
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    return SensorSpec.from_json(strictjson.loads(raw[:4096]))
