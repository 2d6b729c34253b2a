"""The oracle set and the one signer-set check (DESIGN §5, ledger rule Q3).

`OracleSet` is who may sign for a ledger in an oracle-set epoch and how many signatures decide;
the ledger keeps its current and previous sets as these, and an oracle's quorum counter counts
votes against the same type. `signer_set_fault` is the one check of a certificate's signers, used
by the ledger (payout, group payout and suspension certificates), by the oracle when it forms
certificates, and by offline receipt verification. Its rules, in order (cheap first, signatures
last because they are the expensive part):
  1. no signer twice                                  else QC_DUPLICATE_SIGNER
  2. every signer a member of the set                 else QC_NON_MEMBER
  3. every signature valid over the body              else QC_BAD_SIGNATURE
  4. at least k signers                               else QC_INSUFFICIENT_SIGNATURES
A certificate with any bad entry is refused whole. Pure: no I/O, no clock; the verifier is a
parameter so the ledger can pass its cached one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from faultproof.errors import FaultproofError, Reason
from faultproof.identity import verify

Verifier = Callable[[bytes, bytes, bytes, bytes], bool]  # (domain tag, message, signature, public key)


def check_oracle_set(members: Sequence[bytes], threshold: int) -> None:
    """G1: non-empty, distinct members, ⌊n/2⌋+1 ≤ k ≤ n (a set outside this could never decide,
    or could decide twice)."""
    n = len(members)
    if n == 0:
        raise FaultproofError(Reason.INVALID_ORACLE_SET, "the oracle set is empty")
    if len(set(members)) != n:
        raise FaultproofError(Reason.INVALID_ORACLE_SET, "an oracle is listed twice")
    if not n // 2 + 1 <= threshold <= n:
        raise FaultproofError(Reason.INVALID_ORACLE_SET, f"k={threshold} for n={n}: need {n // 2 + 1} <= k <= {n}")


@dataclass(frozen=True)
class OracleSet:
    """Who may sign for `ledger_id` in oracle-set `epoch`, and how many signatures decide (k).
    Members keep the order they were given in (a set given as a set is sorted); `since_ms` is the
    ledger time the set took effect. Refuses an impossible set (INVALID_ORACLE_SET)."""

    ledger_id: bytes
    epoch: int
    members: tuple[bytes, ...]
    threshold: int  # k
    since_ms: int = 0

    def __post_init__(self) -> None:
        members = self.members
        if isinstance(members, set | frozenset):
            object.__setattr__(self, "members", tuple(sorted(members)))
        elif not isinstance(members, tuple):
            object.__setattr__(self, "members", tuple(members))
        check_oracle_set(self.members, self.threshold)

    @property
    def n(self) -> int:
        return len(self.members)

    @property
    def reject_threshold(self) -> int:
        """n - k + 1 rejections leave fewer than k possible approvers: a definitive no."""
        return self.n - self.threshold + 1


class Signature(Protocol):
    @property
    def oracle_id(self) -> bytes: ...

    @property
    def signature(self) -> bytes: ...


def signer_set_fault(signatures: Iterable[Signature], members: Iterable[bytes], threshold: int, tag: bytes,
                     body: bytes, verifier: Verifier = verify) -> Reason | None:
    """The first fault of a certificate's signers (rules 1-4 above), or None if it certifies `body`."""
    sigs = list(signatures)
    member_set = frozenset(members)
    seen: set[bytes] = set()
    for s in sigs:
        if s.oracle_id in seen:
            return Reason.QC_DUPLICATE_SIGNER
        seen.add(s.oracle_id)
        if s.oracle_id not in member_set:
            return Reason.QC_NON_MEMBER
    for s in sigs:  # signatures last: they are the expensive part
        if not verifier(tag, body, s.signature, s.oracle_id):
            return Reason.QC_BAD_SIGNATURE
    if len(seen) < threshold:
        return Reason.QC_INSUFFICIENT_SIGNATURES
    return None
