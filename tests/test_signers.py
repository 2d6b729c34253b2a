"""The one oracle set and the one signer-set check (faultproof/signers.py). Pure."""

from __future__ import annotations

import pytest

from faultproof.errors import FaultproofError, Reason
from faultproof.identity import Identity, domain_tag
from faultproof.messages import QcSignature, SuspendBody
from faultproof.signers import OracleSet, signer_set_fault

KEYS = [Identity.from_seed(bytes([i + 1]) * 32) for i in range(5)]
IDS = [k.public_key for k in KEYS]
BODY = SuspendBody(ledger_id=b"\x11" * 32, oracle_set_epoch=0, device_id=b"\x22" * 32,
                   reason=Reason.BAD_FRAME_SIGNATURE, since_ms=1, evidence_hash=b"\x33" * 32)
TAG, RAW = domain_tag(SuspendBody.NAME), BODY.encode()


def sigs(*which: int) -> list[QcSignature]:
    return [BODY.sign(KEYS[i]) for i in which]


@pytest.mark.parametrize(("signers", "extra", "reason"), [
    ((0, 1, 2, 3), [], None),
    ((0, 1, 2), [], Reason.QC_INSUFFICIENT_SIGNATURES),
    ((0, 1, 2, 2), [], Reason.QC_DUPLICATE_SIGNER),  # a signer twice does not count twice
    ((0, 1, 2), [BODY.sign(Identity.from_seed(b"\x99" * 32))], Reason.QC_NON_MEMBER),
    ((0, 1, 2), [QcSignature(oracle_id=IDS[3], signature=sigs(0)[0].signature)], Reason.QC_BAD_SIGNATURE),
])
def test_signer_set_fault_in_rule_order(signers: tuple[int, ...], extra: list[QcSignature],
                                        reason: Reason | None) -> None:
    assert signer_set_fault(sigs(*signers) + extra, IDS, 4, TAG, RAW) is reason


def test_cheap_rules_come_before_signatures() -> None:
    calls: list[bytes] = []

    def counting(tag: bytes, raw: bytes, sig: bytes, key: bytes) -> bool:
        calls.append(key)
        return True

    assert signer_set_fault(sigs(0, 0), IDS, 1, TAG, RAW, counting) is Reason.QC_DUPLICATE_SIGNER and not calls
    assert signer_set_fault(sigs(0, 1, 2, 3), IDS, 4, TAG, b"another body", counting) is None and len(calls) == 4


def test_one_oracle_set_type_for_ledger_and_counter() -> None:
    from ledger import state
    from oracle import quorum

    assert state.OracleSet is quorum.OracleSet is OracleSet
    as_set = OracleSet(b"\x11" * 32, 1, frozenset(IDS), 4)
    assert as_set.members == tuple(sorted(IDS)) and as_set.reject_threshold == 2
    assert OracleSet(b"\x11" * 32, 1, tuple(IDS), 4, since_ms=5).members == tuple(IDS)  # given order kept
    for members, k in (((), 1), ((IDS[0], IDS[0]), 2), (tuple(IDS), 2), (tuple(IDS), 6)):
        with pytest.raises(FaultproofError) as e:
            OracleSet(b"\x11" * 32, 0, members, k)
        assert e.value.reason is Reason.INVALID_ORACLE_SET
