"""Offline verification of a payout receipt (genesis, signed payout entry, signed head).

Pure: no network, no database. Used by `faultproof receipt verify FILE`, and by anyone (an agent,
a policyholder) who wants to check a payment without trusting the server that handed it over.
This module never needs, and never sees, a private key.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from faultproof.errors import Reason
from faultproof.identity import domain_tag
from faultproof.messages import (
    Genesis,
    GroupQuorumCertificate,
    QuorumCertificate,
    Receipt,
    claim_id,
    group_claim_id,
)
from faultproof.signers import signer_set_fault


@dataclass
class ReceiptCheck:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_receipt(receipt: Receipt, *, ledger_id: bytes | None = None) -> ReceiptCheck:
    """Every check that can be made offline. `ledger_id`, if given, pins the expected ledger."""
    out = ReceiptCheck()
    genesis, signed, head = receipt.genesis, receipt.entry, receipt.head
    entry = signed.entry
    lid = genesis.ledger_id
    if ledger_id is not None and lid != ledger_id:
        out.problems.append("the receipt's genesis is not the expected ledger")
    if entry.ledger_id != lid:
        out.problems.append("the entry belongs to another ledger than the genesis")
    if head.ledger_id != lid:
        out.problems.append("the signed head belongs to another ledger than the genesis")
    if not signed.verify(genesis.ledger_key):
        out.problems.append("the entry's ledger signature does not verify")
    if not head.verify(genesis.ledger_key):
        out.problems.append("the head's ledger signature does not verify")
    if head.height < entry.height:
        out.problems.append(f"the head (height {head.height}) is before the entry (height {entry.height})")
    elif head.height == entry.height and head.entry_hash != entry.entry_hash:
        out.problems.append("the head at the entry's height names another entry")
    if head.time_ms < entry.time_ms:
        out.problems.append("the head is older than the entry")
    qc = entry.tx
    if isinstance(qc, GroupQuorumCertificate):
        _check_group(qc, entry.paid, genesis, out)
        return out
    if not isinstance(qc, QuorumCertificate):
        out.problems.append(f"the entry is a {qc.NAME}, not a payout")
        return out
    body = qc.body
    if body.ledger_id != lid:
        out.problems.append("the payout body is bound to another ledger")
    if body.claim_id != claim_id(body.policy_id, body.device_id, body.epoch, body.start_seq, body.end_seq):
        out.problems.append("the claim_id is not derived from the body")
    if not 0 < entry.paid <= body.amount:
        out.problems.append(f"paid {entry.paid} is not in (0, amount={body.amount}]")
    _check_signers(qc, genesis, out)
    return out


def _check_signers(qc: QuorumCertificate | GroupQuorumCertificate, genesis: Genesis, out: ReceiptCheck) -> None:
    """Q3 with the ledger's own check, for the one oracle set a receipt carries (the genesis set)."""
    body = qc.body
    if body.oracle_set_epoch != 0:
        out.notes.append(f"oracle-set epoch {body.oracle_set_epoch} is not in the receipt: its signers were "
                         "checked by the ledger, whose signature covers the entry")
        return
    fault = signer_set_fault(qc.signatures, genesis.oracles, genesis.threshold, domain_tag(body.NAME), body.encode())
    if fault is Reason.QC_INSUFFICIENT_SIGNATURES:
        out.problems.append(f"{len(qc.signatures)} valid oracle signatures, the genesis set needs {genesis.threshold}")
    elif fault is not None:
        out.problems.append(f"the quorum certificate is faulty: {fault.value}")


def _check_group(qc: GroupQuorumCertificate, paid: int, genesis: Genesis, out: ReceiptCheck) -> None:
    """The same checks for a corroborated payout (DESIGN §14): its claim_id, amount and signers."""
    body = qc.body
    if body.ledger_id != genesis.ledger_id:
        out.problems.append("the payout body is bound to another ledger")
    if body.claim_id != group_claim_id(body.policy_id, body.windows):
        out.problems.append("the claim_id is not derived from the body")
    if not 0 < paid <= body.amount:
        out.problems.append(f"paid {paid} is not in (0, amount={body.amount}]")
    _check_signers(qc, genesis, out)
