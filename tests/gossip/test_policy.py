"""The gossip gate's rules on their own: order of checks, token bucket, duplicate cache, keys."""

from __future__ import annotations

import pytest

from faultproof.errors import Reason
from faultproof.gossip import catchup
from faultproof.gossip.keys import key_pair_for, peer_id_for_public_key, public_key_of
from faultproof.gossip.policy import TokenBucket, TopicGate, TopicPolicy, TTLCache, content_hash
from faultproof.identity import Identity

A = b"\x01" * 32
B = b"\x02" * 32


def test_checks_run_cheap_first_and_name_their_reason() -> None:
    gate = TopicGate(TopicPolicy(max_size=100, allowed=[A], rate_per_s=1, burst=1))
    assert gate.check(B, 101, 0.0) is Reason.OVERSIZE  # size before membership
    assert gate.check(B, 10, 0.0) is Reason.SENDER_NOT_ALLOWED
    assert gate.check(A, 10, 0.0) is None
    assert gate.check(A, 10, 0.0) is Reason.RATE_LIMITED
    # a refused sender never spends the allowed sender's tokens, nor its own
    assert gate.check(A, 10, 1.0) is None


def test_allow_list_swaps_at_run_time_and_accepts_a_predicate() -> None:
    gate = TopicGate(TopicPolicy(allowed=[A]))
    assert gate.check_static(B, 1) is Reason.SENDER_NOT_ALLOWED
    gate.set_allowed(frozenset([A, B]))
    assert gate.check_static(B, 1) is None
    gate.set_allowed(lambda key: key == B)
    assert gate.check_static(A, 1) is Reason.SENDER_NOT_ALLOWED
    gate.set_allowed(None)
    assert gate.check_static(A, 1) is None
    with pytest.raises(ValueError):
        TopicPolicy(allowed=[b"short"])


def test_token_bucket_refills_at_rate_up_to_burst() -> None:
    b = TokenBucket(rate=10.0, burst=5.0, tokens=5.0, stamp=0.0)
    assert sum(b.take(0.0) for _ in range(10)) == 5
    assert b.take(0.05) is False  # half a token
    assert b.take(0.1) is True
    assert sum(b.take(100.0) for _ in range(10)) == 5  # never more than burst


def test_ttl_cache_detects_duplicates_expires_and_stays_bounded() -> None:
    now = [0.0]
    cache = TTLCache(ttl=10.0, max_entries=3, clock=lambda: now[0])
    assert cache.add(b"a") is True
    assert cache.add(b"a") is False
    now[0] = 10.5
    assert cache.add(b"a") is True  # expired, so new again
    for k in (b"b", b"c", b"d"):
        assert cache.add(k, b"v" + k)
    assert len(cache) == 3 and b"a" not in cache  # oldest evicted
    assert cache.get(b"d") == b"vd"


def test_ttl_cache_bounds_the_bytes_it_holds() -> None:
    cache = TTLCache(ttl=100.0, max_entries=100, clock=lambda: 0.0, max_bytes=250)
    for k in (b"a", b"b", b"c"):
        cache.add(k, b"x" * 100)
    assert len(cache) == 2 and cache.size_bytes == 200 and b"a" not in cache
    cache.add(b"d")  # a bare key (the duplicate filter's use) costs no bytes
    assert cache.size_bytes == 200 and len(cache) == 3


def test_content_hash_separates_topics() -> None:
    assert content_hash("x", b"1") != content_hash("y", b"1")
    assert content_hash("x", b"1") == content_hash("x", b"1")


def test_peer_id_carries_the_faultproof_public_key() -> None:
    ident = Identity.generate()
    kp = key_pair_for(ident)
    pid = peer_id_for_public_key(ident.public_key)
    assert kp.public_key.to_bytes() == ident.public_key
    assert public_key_of(pid.to_bytes()) == ident.public_key
    assert str(pid).startswith("12D3KooW")


def test_catchup_request_roundtrip_ignores_junk() -> None:
    raw = catchup.encode_request(["/a", "/b"])
    assert catchup.decode_request(raw) == ["/a", "/b"]
    assert catchup.decode_request(b"\xff\xfe\n/a") == ["\ufffd\ufffd", "/a"]
    with pytest.raises(ValueError):
        catchup.encode_request(["bad\ntopic"])
