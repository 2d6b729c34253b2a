"""An oracle's chain key, from a 0600 key file or a PKCS#11 token (DESIGN §13).

`load_chain_key(spec)`: a key file path gives `ledger.evm.typed.ChainKey` (the secp256k1 key
derived from the file's seed); `pkcs11:TOKEN/LABEL` gives `TokenChainKey`, a secp256k1 key made
inside the token (`faultproof token keygen --type secp256k1`) that never leaves it. Both have the
same face: `address`, `sign_body` (the EIP-712 PayoutBody, or a group's GroupPayoutBody),
`sign_device_slash` (the EIP-712 DeviceSlash) and `binding` (the two-way binding to the oracle's
Ed25519 id).

A token signs a 32-byte digest and returns raw r ‖ s; this file turns that into the 65-byte
Ethereum signature the contract checks: low-s (the contract's ECDSA refuses the other form) and
the recovery byte v found by recovering the address. The PIN comes from the environment
(faultproof.signing); no key or PIN is logged, printed or passed on a command line.
"""

from __future__ import annotations

import os
from typing import Any, Protocol

from eth_account.messages import (
    SignableMessage,
    _hash_eip191_message,
    encode_defunct,
)
from eth_keys import keys
from eth_utils import keccak, to_checksum_address

from faultproof import signing
from faultproof.identity import Identity, domain_tag
from ledger.evm.typed import (
    BINDING_NAME,
    DEVICE_SLASH_TYPES,
    AnyChainBody,
    Binding,
    ChainKey,
    ChainSignature,
    DeviceSlashBody,
    payout_types,
    typed_message,
)

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


class AnyChainKey(Protocol):
    @property
    def address(self) -> str: ...

    def sign_body(self, body: AnyChainBody, chain_id: int, contract: str) -> ChainSignature: ...

    def sign_device_slash(self, body: DeviceSlashBody, chain_id: int, contract: str) -> ChainSignature: ...

    def binding(self, identity: Identity) -> Binding: ...


def address_of(point: bytes) -> str:
    """The Ethereum address of a 65-byte uncompressed secp256k1 public point."""
    if len(point) != 65 or point[0] != 4:
        raise ValueError("expected a 65-byte uncompressed secp256k1 point")
    return str(to_checksum_address(keccak(point[1:])[-20:]))


def ethereum_signature(digest: bytes, raw: bytes, address: str) -> bytes:
    """r ‖ s ‖ v (v = 27 or 28) from a token's raw r ‖ s over `digest`, in low-s form."""
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:64], "big")
    if s > SECP256K1_N // 2:
        s = SECP256K1_N - s
    for v in (0, 1):
        sig = keys.Signature(vrs=(v, r, s))
        if sig.recover_public_key_from_msg_hash(digest).to_checksum_address() == address:
            return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([27 + v])
    raise ValueError("the token's signature does not recover to its own key")


class TokenChainKey:
    """A secp256k1 chain key inside a PKCS#11 token (see the module docstring)."""

    def __init__(self, signer: signing.Pkcs11DigestSigner) -> None:
        self._signer = signer
        self.address = address_of(signer.point)

    def __repr__(self) -> str:
        return f"TokenChainKey({self.address}, {self._signer!r})"

    def _sign(self, message: SignableMessage) -> bytes:
        digest = _hash_eip191_message(message)
        return ethereum_signature(digest, self._signer.sign_digest(digest), self.address)

    def sign_body(self, body: AnyChainBody, chain_id: int, contract: str) -> ChainSignature:
        msg = typed_message(payout_types(body), body.message(), chain_id, contract)
        return ChainSignature(self.address, self._sign(msg))

    def sign_device_slash(self, body: DeviceSlashBody, chain_id: int, contract: str) -> ChainSignature:
        """The EIP-712 DeviceSlash (device slashing evidence, DESIGN §13), signed in the token."""
        msg = typed_message(DEVICE_SLASH_TYPES, body.message(), chain_id, contract)
        return ChainSignature(self.address, self._sign(msg))

    def binding(self, identity: Identity) -> Binding:
        tag = domain_tag(BINDING_NAME)
        ed_sig = identity.sign(tag, bytes.fromhex(self.address[2:]))
        eth_sig = self._sign(encode_defunct(primitive=tag + identity.public_key))
        return Binding(identity.public_key, self.address, ed_sig, eth_sig)


def load_chain_key(spec: str | os.PathLike[str]) -> Any:
    """A chain key file, or `pkcs11:TOKEN/LABEL` for a secp256k1 key in a token."""
    text = os.fspath(spec)
    if text.startswith(signing.PKCS11_PREFIX):
        token, sep, label = text[len(signing.PKCS11_PREFIX):].partition("/")
        if not sep or not token or not label:
            raise signing.KeyError_(f"{text!r}: a token key is pkcs11:TOKEN/LABEL")
        return TokenChainKey(signing.Pkcs11DigestSigner(signing.TokenConfig(token_label=token, key_label=label)))
    return ChainKey.load(text)
