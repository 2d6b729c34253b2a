"""Process-wide CPU fixes for py-libp2p 0.8.1 pubsub, applied once before the first host starts.

Gossip here is CPU-bound (~5-6 ms per 2 KB message per node with 5 nodes), and a profile of a
relaying node showed a large share spent re-doing the same work on every RPC:
  * every received RPC carries the sender's signed peer record, and libp2p verifies its Ed25519
    signature and rewrites the peerstore each time (~12 verifications per gossiped message);
  * every sent RPC re-reads all listen sockets (getsockname) to decide whether to re-issue our own
    record;
  * yamux sends a WINDOW_UPDATE frame after every read (PY_YAMUX_RELEASE_ON_READ defaults on).
The first two are memoised below with a short expiry (results are identical; a changed record or
changed listen addresses are picked up within the expiry), the third is turned off through
libp2p's own environment knob unless the operator set it. Measured effect: docs/gossip.md.

One more patch is about robustness, not CPU: `_guard_read_loop` confines an error in one peer's
RPC to that peer instead of letting it stop the whole pubsub service.

This module owns these patches and nothing else. It must never change what is accepted or sent,
only how often identical work is repeated, and it refuses to patch any other libp2p version
(the patched names are internal).
"""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from typing import Any

import libp2p
import libp2p.pubsub.gossipsub as _gossipsub_mod
import libp2p.pubsub.pubsub as _pubsub_mod
from libp2p.abc import IHost
from libp2p.peer.id import ID
from libp2p.peer.peerstore import env_to_send_in_RPC as _env_to_send_in_rpc
from libp2p.pubsub.pb.rpc_pb2 import RPC
from libp2p.pubsub.utils import maybe_consume_signed_record as _maybe_consume_signed_record

log = logging.getLogger("faultproof.gossip")

PATCHED_VERSION = "0.8.1"
RECORD_MEMO_SECONDS = 60.0  # re-verify a peer's unchanged record (and refresh its addr TTL) after this
OWN_RECORD_MEMO_SECONDS = 5.0  # re-check our own listen addresses after this
_MEMO_MAX = 4096

_applied = False
_verified: OrderedDict[tuple[int, bytes, bytes], float] = OrderedDict()
_own: dict[int, tuple[float, tuple[bytes, bool]]] = {}


def _memo_consume_signed_record(msg: RPC, host: IHost, peer_id: ID) -> bool:
    if not msg.HasField("senderRecord"):
        return True
    key = (id(host), peer_id.to_bytes(), msg.senderRecord)
    now = time.monotonic()
    stamp = _verified.get(key)
    if stamp is not None and now - stamp < RECORD_MEMO_SECONDS:
        return True
    ok = _maybe_consume_signed_record(msg, host, peer_id)
    if ok:
        _verified[key] = now
        _verified.move_to_end(key)
        while len(_verified) > _MEMO_MAX:
            _verified.popitem(last=False)
    return ok


def _memo_env_to_send(host: IHost) -> tuple[bytes, bool]:
    now = time.monotonic()
    hit = _own.get(id(host))
    if hit is not None and now - hit[0] < OWN_RECORD_MEMO_SECONDS:
        return hit[1][0], False
    result = _env_to_send_in_rpc(host)
    _own[id(host)] = (now, result)
    return result


def _guard_read_loop() -> None:
    """One malformed RPC from one peer must not stop gossip for everyone.

    libp2p 0.8.1's `Pubsub.continuously_read_stream` catches only stream errors: a payload that is
    not a valid protobuf (`google.protobuf.message.DecodeError`), or any other error while handling
    one peer's RPC, escapes and takes the whole pubsub service down (seen in the oracle tests after
    a restart under a burst of vote batches). This wrapper confines such an error to that peer:
    logged, the stream reset, the peer dropped (our reconnect loop dials it again).
    """
    original = _pubsub_mod.Pubsub.continuously_read_stream
    if getattr(original, "_faultproof_guarded", False):
        return

    async def guarded(self: Any, stream: Any) -> None:
        try:
            await original(self, stream)
        except Exception as e:  # noqa: BLE001 - confined to this peer's stream, see docstring
            peer_id = stream.muxed_conn.peer_id
            log.warning("dropping peer %s after a bad pubsub RPC: %r", peer_id, e)
            try:
                await stream.reset()
            except Exception:  # noqa: BLE001 - the stream may already be gone
                pass
            self._handle_dead_peer(peer_id)

    guarded._faultproof_guarded = True  # type: ignore[attr-defined]
    _pubsub_mod.Pubsub.continuously_read_stream = guarded  # type: ignore[method-assign]


def apply() -> None:
    """Idempotent. Call before starting a host (GossipRuntime does)."""
    global _applied
    if _applied:
        return
    _applied = True
    os.environ.setdefault("PY_YAMUX_RELEASE_ON_READ", "0")
    version = getattr(libp2p, "__version__", "?")
    if version != PATCHED_VERSION:
        log.warning("libp2p %s is not %s: CPU memoisation patches not applied", version, PATCHED_VERSION)
        return
    _guard_read_loop()
    patched: list[tuple[Any, str, Any]] = [
        (_pubsub_mod, "maybe_consume_signed_record", _memo_consume_signed_record),
        (_pubsub_mod, "env_to_send_in_RPC", _memo_env_to_send),
        (_gossipsub_mod, "env_to_send_in_RPC", _memo_env_to_send),
    ]
    for module, name, replacement in patched:
        if not hasattr(module, name):
            log.warning("libp2p has no %s.%s; patch skipped", module.__name__, name)
            continue
        setattr(module, name, replacement)
