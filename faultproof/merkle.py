"""The Merkle tree of a device-history anchor (DESIGN §11), defined once for agent, ledger and
any other settlement backend.

Leaves are `DeviceHead.leaf_hash` (SHA-256 under the tag "anchor-leaf"); an inner node is
SHA-256 under "anchor-node" of left ‖ right; a level with an odd count carries its last node up
unchanged (no duplication, so no second tree has the same root with a leaf repeated). Leaf and node
tags differ, so a node can never pass for a leaf. Pure functions over bytes; no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from faultproof.encoding import hash_id

ProofStep = tuple[bool, bytes]  # (sibling is on the right, sibling hash)


def _node(left: bytes, right: bytes) -> bytes:
    return hash_id("anchor-node", left + right)


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """The root over leaf hashes (at least one)."""
    if not leaves:
        raise ValueError("a Merkle tree needs at least one leaf")
    level = list(leaves)
    while len(level) > 1:
        nxt = [_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def merkle_proof(leaves: Sequence[bytes], index: int) -> list[ProofStep]:
    """The inclusion proof of leaves[index]: siblings from the leaf up."""
    if not 0 <= index < len(leaves):
        raise IndexError(index)
    proof: list[ProofStep] = []
    level, i = list(leaves), index
    while len(level) > 1:
        sibling = i ^ 1
        if sibling < len(level):
            proof.append((sibling > i, level[sibling]))
        nxt = [_node(level[j], level[j + 1]) for j in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level, i = nxt, i // 2
    return proof


def verify_proof(leaf: bytes, proof: Sequence[ProofStep], root: bytes) -> bool:
    h = leaf
    for right, sibling in proof:
        h = _node(h, sibling) if right else _node(sibling, h)
    return h == root
