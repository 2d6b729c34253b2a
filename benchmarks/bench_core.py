"""Protocol-core speed: frame verification, chain hashing and message decoding.

frame_verify_per_s: decode a signed frame and check its Ed25519 signature, spread over every core
in batches (what the agent's ingest can afford); baseline: the same, one frame at a time, one core.
chain_hash_per_s: c_i steps with faultproof.chain (the native Poseidon of faultproof/native when
`make setup` built it, else light-poseidon: `backend` says which); baseline: light-poseidon's cached
4-input hasher through its byte API, what faultproof.chain used before the native one.
claim_decode_per_s: strict decodes of a signed claim and a quorum certificate (alternately), each
field checked once as the decoder converts it; baseline: the same decoder building each message
through its constructor, which checks every field a second time (what decoding did before).
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import light_poseidon_python as lp

from faultproof import chain
from faultproof.identity import Identity
from faultproof.messages import Frame, Message, SignedFrame

N_FRAMES = 20_000
N_HASHES = 20_000
N_DECODES = 10_000


def _frames(n: int) -> list[bytes]:
    device = Identity.from_seed(b"\x01" * 32)
    c = chain.chain_anchor(device.public_key, 0)
    return [Frame(device_id=device.public_key, epoch=0, seq=i, ts_ms=1_700_000_000_000 + i,
                  chain=chain.chain_to_bytes(c)).sign(device).encode() for i in range(n)]


def _verify_batch(batch: list[bytes]) -> int:
    return sum(SignedFrame.decode(raw).verify() for raw in batch)


def _rate(n: int, seconds: float) -> float:
    return round(n / seconds, 1)


def frame_verify() -> dict[str, Any]:
    frames = _frames(N_FRAMES)
    t = time.perf_counter()
    ok = _verify_batch(frames)
    naive = time.perf_counter() - t
    assert ok == N_FRAMES
    workers = len(os.sched_getaffinity(0))
    batches = [frames[i:i + 500] for i in range(0, len(frames), 500)]
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_verify_batch, batches[:workers]))  # warm the workers
        t = time.perf_counter()
        ok = sum(pool.map(_verify_batch, batches))
        pooled = time.perf_counter() - t
    assert ok == N_FRAMES
    return {"value": _rate(N_FRAMES, pooled), "unit": "frames/s", "baseline": _rate(N_FRAMES, naive)}


def chain_hash() -> dict[str, Any]:
    c = chain.chain_anchor(b"\x02" * 32, 0)
    t = time.perf_counter()
    for i in range(N_HASHES):
        c = chain.chain_step(c, 1_700_000_000_000 + i, i % 1000, i)
    ours = time.perf_counter() - t
    args = [x.to_bytes(32, "big") for x in (c, 1, 2, 3)]
    hasher = lp.Hasher(4)
    t = time.perf_counter()
    for _ in range(N_HASHES):
        int(hasher.hash_bytes_be(args), 16)
    light = time.perf_counter() - t
    return {"value": _rate(N_HASHES, ours), "unit": "hashes/s", "baseline": _rate(N_HASHES, light),
            "backend": chain.POSEIDON_BACKEND}


def _decodes(messages: list[tuple[type[Message], bytes]]) -> float:
    t = time.perf_counter()
    for i in range(N_DECODES):
        cls, raw = messages[i % len(messages)]
        cls.decode(raw)
    return time.perf_counter() - t


def claim_decode() -> dict[str, Any]:
    from tests.vectors.samples import samples

    sample = samples()
    messages = [(type(m), m.encode()) for m in (sample["signed-claim"], sample["quorum-certificate"])]
    checked_once = Message.__dict__["_from_checked"]
    twice: Any = classmethod(lambda cls, values: cls(**values))
    once_s, twice_s = [], []
    for _ in range(3):  # alternating, so load on the machine falls on both alike
        once_s.append(_decodes(messages))
        Message._from_checked = twice  # type: ignore[method-assign]
        try:
            twice_s.append(_decodes(messages))
        finally:
            Message._from_checked = checked_once  # type: ignore[method-assign]
    return {"value": _rate(N_DECODES, min(once_s)), "unit": "decodes/s", "baseline": _rate(N_DECODES, min(twice_s))}


def run() -> dict[str, dict[str, Any]]:
    return {"frame_verify_per_s": frame_verify(), "chain_hash_per_s": chain_hash(), "claim_decode_per_s": claim_decode()}


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
