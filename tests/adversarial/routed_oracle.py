"""`faultproof oracle run`, unchanged, in a network whose routes the test owns.

Every node of the test network shares 127.0.0.1, so libp2p would learn each peer's *real* listen
address (from identify and from the signed peer record every pubsub RPC carries) and redial it
directly after a disconnect, around the per-link proxies of proxy.py. On a real network a cut link
cuts every route between the two sides whatever address is dialled; here the only way to get that
is that a node knows no address of a peer but the one its config gives it (the proxy). So this
launcher makes the peer store ignore learned addresses, then runs the oracle's own CLI:

    python -m tests.adversarial.routed_oracle oracle run --config oracle-0.toml

Nothing else of the oracle changes: same code, config, keys, validators, catch-up and reconnect
loops. Used only by tests/adversarial; never imported by the oracle.
"""

from __future__ import annotations

import sys
from typing import Any


def install() -> None:
    """Peer addresses come from our config only: drop the ones peers announce about themselves."""
    import libp2p.host.basic_host as basic_host
    import libp2p.identity.identify_push.identify_push as identify_push
    from libp2p.identity.update import update_peerstore_from_identify
    from libp2p.peer import peerstore

    async def identify_without_addrs(store: Any, peer_id: Any, msg: Any) -> None:
        trimmed = type(msg)()
        trimmed.CopyFrom(msg)
        trimmed.ClearField("listen_addrs")
        trimmed.ClearField("signedPeerRecord")
        await update_peerstore_from_identify(store, peer_id, trimmed)

    basic_host.update_peerstore_from_identify = identify_without_addrs  # type: ignore[attr-defined]
    identify_push.update_peerstore_from_identify = identify_without_addrs  # type: ignore[attr-defined]

    def consume_record_without_addrs(self: Any, envelope: Any, ttl: int) -> bool:
        # A signed peer record is still checked (a forged one stays refused), its addresses unused.
        return bool(peerstore._peer_record_signer_matches(envelope))

    peerstore.PeerStore.consume_peer_record = consume_record_without_addrs  # type: ignore[method-assign]


def main() -> int:
    install()
    from cli import main as cli_main

    cli_main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
