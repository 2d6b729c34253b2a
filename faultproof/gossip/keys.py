"""The one mapping between a faultproof identity and a libp2p peer id.

A process's Ed25519 seed is both its faultproof key and its libp2p identity, so a peer id carries
the 32-byte public key (identity multihash) and every gossip sender is named by that key. This file
owns the conversions and refuses anything that is not an Ed25519 peer id; it must never hold or
log a seed beyond handing it to libp2p's key pair.
"""

from __future__ import annotations

from functools import lru_cache

from libp2p.crypto.ed25519 import Ed25519PublicKey, create_new_key_pair
from libp2p.crypto.keys import KeyPair
from libp2p.peer.id import ID

from faultproof.identity import Identity


def key_pair_for(identity: Identity) -> KeyPair:
    return create_new_key_pair(seed=identity.seed)


def peer_id_for_public_key(public_key: bytes) -> ID:
    if len(public_key) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    return ID.from_pubkey(Ed25519PublicKey.from_bytes(public_key))


@lru_cache(maxsize=4096)
def public_key_of(peer_id_bytes: bytes) -> bytes | None:
    """The 32-byte Ed25519 key inside a peer id, or None if it is not an inline Ed25519 id.

    Cached: every message names its origin this way and the set of live senders is small.
    """
    key = ID(peer_id_bytes).extract_public_key()
    if not isinstance(key, Ed25519PublicKey):
        return None
    raw = key.to_bytes()
    return raw if len(raw) == 32 else None
