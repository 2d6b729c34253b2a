"""Offline verification of a payout receipt (genesis, signed payout entry, signed head).

Pure: no network, no database. Used by `faultproof receipt verify FILE`, and by anyone (an agent,
a policyholder) who wants to check a payment without trusting the server that handed it over.
This module never needs, and never sees, a private key.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from faultproof.identity import domain_tag, verify
from faultproof.messages import (
    Genesis,
    GroupQuorumCertificate,
    QuorumCertificate,
    Receipt,
    claim_id,
    group_claim_id,
)


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
    if body.oracle_set_epoch == 0:
        signers, fault = qc.valid_signers(genesis.oracles)
        if fault is not None:
            out.problems.append(f"the quorum certificate is faulty: {fault.value}")
        if len(signers) < genesis.threshold:
            out.problems.append(f"{len(signers)} valid oracle signatures, the genesis set needs {genesis.threshold}")
    else:
        out.notes.append(f"oracle-set epoch {body.oracle_set_epoch} is not in the receipt: its signers were "
                         "checked by the ledger, whose signature covers the entry")
    return out


def _check_group(qc: GroupQuorumCertificate, paid: int, genesis: Genesis, out: ReceiptCheck) -> None:
    """The same checks for a corroborated payout (DESIGN §14): its claim_id, amount and signers."""
    body = qc.body
    if body.ledger_id != genesis.ledger_id:
        out.problems.append("the payout body is bound to another ledger")
    if body.claim_id != group_claim_id(body.policy_id, body.windows):
        out.problems.append("the claim_id is not derived from the body")
    if not 0 < paid <= body.amount:
        out.problems.append(f"paid {paid} is not in (0, amount={body.amount}]")
    if body.oracle_set_epoch != 0:
        out.notes.append(f"oracle-set epoch {body.oracle_set_epoch} is not in the receipt: its signers were "
                         "checked by the ledger, whose signature covers the entry")
        return
    tag, raw, members = domain_tag(body.NAME), body.encode(), set(genesis.oracles)
    signers = {s.oracle_id for s in qc.signatures
               if s.oracle_id in members and verify(tag, raw, s.signature, s.oracle_id)}
    if len(signers) != len(qc.signatures):
        out.problems.append("the quorum certificate has a duplicate, non-member or invalid signature")
    if len(signers) < genesis.threshold:
        out.problems.append(f"{len(signers)} valid oracle signatures, the genesis set needs {genesis.threshold}")
