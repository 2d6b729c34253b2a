"""What a gossip message must pass before the application sees it: the per-topic gate.

This file owns the decision rules, in the order they run (cheap first):
  1. size      -> Reason.OVERSIZE
  2. sender    -> Reason.SENDER_NOT_ALLOWED (allow-list from the ledger; swappable at run time)
  3. rate      -> Reason.RATE_LIMITED (token bucket per authenticated origin)
and, after a message was accepted by the mesh, the duplicate filter (content hash, bounded, TTL)
that decides whether the application sees it again (Reason.DUPLICATE).

It knows nothing about libp2p, trio or asyncio: every function takes plain bytes and a clock value,
so the same rules apply to a live gossip message, a catch-up item and a unit test. Objects here are
not locked; the gossip runtime calls them from its one trio thread only. It must never decode the
application's payload (claims and vote batches are someone else's business).
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from faultproof.errors import Reason

# An allow-list is either None (any authenticated sender), a frozen set of 32-byte Ed25519 public
# keys, or a predicate over such a key. A predicate runs in the gossip thread for every message:
# it must be fast and thread-safe (a lookup in a snapshot, never I/O).
AllowList = frozenset[bytes] | Callable[[bytes], bool] | None


def freeze_allowed(allowed: Iterable[bytes] | Callable[[bytes], bool] | None) -> AllowList:
    """Normalise what the application passes so a later mutation on its side cannot race us."""
    if allowed is None or callable(allowed):
        return allowed
    keys = frozenset(bytes(k) for k in allowed)
    bad = [k for k in keys if len(k) != 32]
    if bad:
        raise ValueError(f"allow-list entries must be 32-byte Ed25519 public keys, got {len(bad)} others")
    return keys


@dataclass(frozen=True)
class TopicPolicy:
    """Limits for one topic. Defaults suit claims (a few KB, a few per second per agent).

    `rate_per_s` and `burst` bound what one origin may publish; they must exceed what an honest
    node sends, including its re-gossip of pending items (see docs/gossip.md).
    """

    max_size: int = 64 * 1024
    allowed: AllowList = None
    rate_per_s: float = 50.0
    burst: int = 500

    def __post_init__(self) -> None:
        if self.max_size <= 0:
            raise ValueError("max_size must be positive")
        if self.rate_per_s <= 0 or self.burst < 1:
            raise ValueError("rate_per_s must be > 0 and burst >= 1")
        object.__setattr__(self, "allowed", freeze_allowed(self.allowed))


@dataclass
class TokenBucket:
    """Classic token bucket: `burst` tokens, refilled at `rate` per second."""

    rate: float
    burst: float
    tokens: float
    stamp: float

    def take(self, now: float) -> bool:
        elapsed = max(0.0, now - self.stamp)
        self.stamp = now
        self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class SenderRateLimiter:
    """One token bucket per origin. Bounded: with no allow-list anyone can mint keys, so the least
    recently used buckets are forgotten beyond `max_senders` (a forgotten sender starts full again,
    which only ever errs towards delivery)."""

    def __init__(self, rate: float, burst: int, max_senders: int = 10_000) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.max_senders = max_senders
        self._buckets: OrderedDict[bytes, TokenBucket] = OrderedDict()

    def allow(self, sender: bytes, now: float) -> bool:
        bucket = self._buckets.get(sender)
        if bucket is None:
            bucket = TokenBucket(self.rate, self.burst, self.burst, now)
            self._buckets[sender] = bucket
            if len(self._buckets) > self.max_senders:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(sender)
        return bucket.take(now)


@dataclass
class TopicGate:
    """The validator of one topic. `check` returns None to accept or the Reason to drop."""

    policy: TopicPolicy
    limiter: SenderRateLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.limiter = SenderRateLimiter(self.policy.rate_per_s, self.policy.burst)

    def set_allowed(self, allowed: AllowList) -> None:
        # Rebinding one attribute is atomic under the GIL: the gossip thread sees the old or the
        # new list, never a half-built one.
        self.policy = TopicPolicy(
            max_size=self.policy.max_size,
            allowed=allowed,
            rate_per_s=self.policy.rate_per_s,
            burst=self.policy.burst,
        )

    def check_static(self, sender: bytes, size: int) -> Reason | None:
        """Size and allow-list only: what applies to pulled (catch-up) items as well."""
        policy = self.policy
        if size > policy.max_size:
            return Reason.OVERSIZE
        allowed = policy.allowed
        if allowed is not None:
            ok = allowed(sender) if callable(allowed) else sender in allowed
            if not ok:
                return Reason.SENDER_NOT_ALLOWED
        return None

    def check(self, sender: bytes, size: int, now: float) -> Reason | None:
        reason = self.check_static(sender, size)
        if reason is not None:
            return reason
        if not self.limiter.allow(sender, now):
            return Reason.RATE_LIMITED
        return None


def content_hash(topic: str, data: bytes) -> bytes:
    """Identity of a payload on a topic, whoever sent it and however often it was re-gossiped."""
    h = hashlib.sha256()
    h.update(topic.encode())
    h.update(b"\x00")
    h.update(data)
    return h.digest()


class TTLCache:
    """Bounded key -> value map whose entries expire `ttl` seconds after insertion.

    Used for the duplicate filter (value None) and for the signed envelopes served on catch-up
    (values up to a vote batch's size, hence the byte bound too). Eviction is oldest-first, which
    is also expiry order since entries are never refreshed.
    """

    def __init__(
        self,
        ttl: float,
        max_entries: int,
        clock: Callable[[], float] = time.monotonic,
        max_bytes: int | None = None,
    ):
        self.ttl = ttl
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._clock = clock
        self._items: OrderedDict[bytes, tuple[float, bytes | None]] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def _over(self) -> bool:
        return len(self._items) > self.max_entries or (
            self.max_bytes is not None and self._bytes > self.max_bytes
        )

    def _pop_oldest(self) -> None:
        _, (_, value) = self._items.popitem(last=False)
        self._bytes -= len(value) if value else 0

    def _expire(self, now: float) -> None:
        items = self._items
        while items:
            stamp, _ = next(iter(items.values()))
            if now - stamp < self.ttl and not self._over():
                break
            self._pop_oldest()

    def get(self, key: bytes) -> bytes | None:
        entry = self._items.get(key)
        if entry is None or self._clock() - entry[0] >= self.ttl:
            return None
        return entry[1]

    def __contains__(self, key: bytes) -> bool:
        entry = self._items.get(key)
        return entry is not None and self._clock() - entry[0] < self.ttl

    def add(self, key: bytes, value: bytes | None = None) -> bool:
        """Insert `key`; False if it was already present and unexpired (a duplicate)."""
        now = self._clock()
        self._expire(now)
        entry = self._items.get(key)
        if entry is not None and now - entry[0] < self.ttl:
            if value is not None and entry[1] is None:
                self._items[key] = (entry[0], value)
                self._bytes += len(value)
                self._expire(now)
            return False
        if entry is not None:  # expired but not yet swept
            self._bytes -= len(entry[1]) if entry[1] else 0
        self._items[key] = (now, value)
        self._bytes += len(value) if value else 0
        self._items.move_to_end(key)
        self._expire(now)
        return True
