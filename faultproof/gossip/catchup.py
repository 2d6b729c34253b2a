"""Wire format of the catch-up path, `/faultproof/1/pending`: how a (re)started node asks a peer
for everything that peer still considers pending.

    requester -> responder : one frame: the topic names, UTF-8, separated by "\\n"
    responder -> requester : zero or more frames, each a signed libp2p pubsub `Message` protobuf
                             (the original origin's envelope when the responder still holds it,
                             else one the responder signs itself), then one empty frame (end)

Frames are unsigned-varint length-prefixed, as everywhere in libp2p. Carrying signed pubsub
envelopes (not bare payloads) means a pulled item is checked exactly like a gossiped one: the
origin's signature, the topic's size limit and allow-list. This file owns the framing and its
limits only; it must never interpret the payloads, and it does no I/O.
"""

from __future__ import annotations

from libp2p.custom_types import TProtocol

PENDING_PROTOCOL = TProtocol("/faultproof/1/pending")

MAX_REQUEST_BYTES = 4096
ENVELOPE_OVERHEAD = 1024  # from_id, seqno, topic, key, signature, protobuf tags
END_OF_RESPONSE = b""


def encode_request(topics: list[str]) -> bytes:
    for t in topics:
        if "\n" in t or not t:
            raise ValueError(f"topic names must be non-empty and contain no newline: {t!r}")
    raw = "\n".join(topics).encode()
    if len(raw) > MAX_REQUEST_BYTES:
        raise ValueError("too many topics for one catch-up request")
    return raw


def decode_request(raw: bytes) -> list[str]:
    """Topics asked for; unknown ones are the responder's to ignore. Never raises on junk text."""
    text = raw[:MAX_REQUEST_BYTES].decode("utf-8", errors="replace")
    return [t for t in text.split("\n") if t]


def max_frame_bytes(max_payload: int) -> int:
    return max_payload + ENVELOPE_OVERHEAD
