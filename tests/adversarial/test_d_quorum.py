"""Votes and quorum certificates under attack.

Part 1, QCs straight to the ledger, signed with whatever keys the attacker holds (the oracles' own
keys are available to the suite, so every signature below is a real one; what is wrong is only the
defect each case names): duplicated signers, k-1 signatures, a body changed after signing or
signed with another amount or beneficiary, non-members, other ledgers and epochs, replays.

Part 2, a Byzantine oracle in the gossip mesh: oracle-4's key on oracle-4's address (the real
oracle-4 is stopped meanwhile), speaking the protocol from this process and signing whatever it
likes: equivocation, approving everything, rejecting everything, inflated amounts, forged votes in
other members' names, votes bound elsewhere, and a non-member that votes while the honest oracles
are one short of k. With k = 4 of 5, one Byzantine oracle is within the trust model (k - 1 = 3):
no wrongful payout, and valid claims are still paid by the four honest ones."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from faultproof.errors import Reason
from faultproof.identity import Identity
from faultproof.messages import RejectBody, SignedClaim, Vote, VoteBatch
from oracle.node import CLAIMS_TOPIC, VOTES_TOPIC
from tests.adversarial.advnet import (
    AdvNetwork,
    GossipPeer,
    Incident,
    LedgerBook,
    agent_identity,
    assert_paid_once,
    assert_unchanged,
    eventually,
    incident,
    ledger_error,
    make_qc,
    module_end_check,
    no_record_anywhere,
    payout_body,
    settle_gossip,
    snapshot,
    unchanged,
    wait_paid_once,
)
from tests.adversarial.cases import case
from tests.netfix import MINUTE, DeviceSim, free_port, junk_proof, now_ms

BYZ = 4  # the member whose key the Byzantine node uses


def refused_qc(net: AdvNetwork, qc: object, reason: Reason) -> None:
    assert ledger_error(net.post_tx(qc)) == (reason.http_status, reason.value)  # type: ignore[arg-type]


# ====================================================================== part 1: QCs to the ledger


@case("ADV-VQC-02", "a QC naming one signer twice (with and without k distinct members besides)")
def test_duplicated_signer(healthy: AdvNetwork) -> None:
    net = healthy
    inc = incident(net)
    body = payout_body(net, inc)
    o = net.oracle_ids
    with unchanged(net):
        refused_qc(net, make_qc(body, [o[0], o[0], o[1], o[2]]), Reason.QC_DUPLICATE_SIGNER)
        refused_qc(net, make_qc(body, [o[0], o[1], o[2], o[3], o[0]]), Reason.QC_DUPLICATE_SIGNER)


@case("ADV-VQC-03", "a QC with k-1 signatures (k-1 colluding members), or k-1 plus one forged signature")
def test_threshold_minus_one(healthy: AdvNetwork) -> None:
    net = healthy
    inc = incident(net)
    body = payout_body(net, inc)
    o = net.oracle_ids
    with unchanged(net):
        refused_qc(net, make_qc(body, o[:3]), Reason.QC_INSUFFICIENT_SIGNATURES)
        qc = make_qc(body, o[:4])
        forged = qc.replace(signatures=qc.signatures[:3] + (qc.signatures[3].replace(signature=os.urandom(64)),))
        refused_qc(net, forged, Reason.QC_BAD_SIGNATURE)
    # a valid 4th signature over another claim's body, borrowed
    other = payout_body(net, incident(net))
    borrowed = qc.replace(signatures=qc.signatures[:3] + (make_qc(other, [o[3]]).signatures[0],))
    with unchanged(net):
        refused_qc(net, borrowed, Reason.QC_BAD_SIGNATURE)


@case("ADV-VQC-04", "a QC over a different amount or beneficiary (changed after signing; or signed so by k)")
def test_qc_over_a_different_amount_or_beneficiary(healthy: AdvNetwork) -> None:
    net = healthy
    inc = incident(net)
    body = payout_body(net, inc)
    o = net.oracle_ids[:4]
    thief = os.urandom(32)
    with unchanged(net):
        for changed in (body.replace(amount=body.amount * 100), body.replace(beneficiary=thief)):
            # the honest signatures over the real body, on a changed body
            refused_qc(net, make_qc(changed, o, signed_body=body), Reason.QC_BAD_SIGNATURE)
            # k members signing the changed body: the ledger checks the body against the policy
            refused_qc(net, make_qc(changed, o), Reason.PAYOUT_MISMATCH)
    other = incident(net)
    with unchanged(net):
        for wrong in (body.replace(policy_id=other.pid), body.replace(claim_id=os.urandom(32)),
                      body.replace(start_seq=body.start_seq + 1), body.replace(circuit_id=os.urandom(32)),
                      body.replace(start_ts=body.end_ts)):
            status, code = ledger_error(net.post_tx(make_qc(wrong, o)))
            assert status == 409 and code == Reason.PAYOUT_MISMATCH.value, (wrong, code)


@case("ADV-VQC-12", "a QC signed by non-members (k fresh keys; three members and one stranger)")
def test_qc_by_non_members(healthy: AdvNetwork) -> None:
    net = healthy
    inc = incident(net)
    body = payout_body(net, inc)
    strangers = [Identity.generate() for _ in range(4)]
    with unchanged(net):
        refused_qc(net, make_qc(body, strangers), Reason.QC_NON_MEMBER)
        refused_qc(net, make_qc(body, net.oracle_ids[:3] + strangers[:1]), Reason.QC_NON_MEMBER)
        refused_qc(net, make_qc(body, [net.ledger_key, net.admin, *net.oracle_ids[:2]]), Reason.QC_NON_MEMBER)


@case("ADV-VQC-13", "a QC bound to another ledger, or to an oracle-set epoch that does not exist")
def test_qc_bound_elsewhere(healthy: AdvNetwork) -> None:
    net = healthy
    inc = incident(net)
    o = net.oracle_ids[:4]
    with unchanged(net):
        refused_qc(net, make_qc(payout_body(net, inc, ledger_id=os.urandom(32)), o), Reason.WRONG_LEDGER)
        refused_qc(net, make_qc(payout_body(net, inc, oracle_set_epoch=1), o), Reason.QC_STALE_EPOCH)


@case("ADV-VQC-14", "a valid QC replayed (to the ledger, many times), and a conflicting body under a paid claim_id")
def test_qc_replay_and_conflict(healthy: AdvNetwork, book: LedgerBook) -> None:
    net = healthy
    inc = incident(net)
    body = payout_body(net, inc)
    qc = make_qc(body, net.oracle_ids[:4])
    before = snapshot(net)
    status, first = net.post_tx(qc)
    assert status == 200 and not first["existing"], first
    book.expect(inc.claim_id, "ADV-VQC-14")
    for signers in (net.oracle_ids[:4], net.oracle_ids[1:5], net.oracle_ids[:4]):
        status, again = net.post_tx(make_qc(body, signers))
        assert status == 200 and again["existing"] and again["height"] == first["height"], again
    # the same claim_id with another window (same seqs, other times), signed by k members
    conflict = body.replace(start_ts=body.start_ts - 1)
    refused_qc(net, make_qc(conflict, net.oracle_ids[:4]), Reason.CLAIM_CONFLICT)
    assert_paid_once(net, before, inc.claim_id, inc.terms.amount)


# ====================================================================== part 2: a Byzantine member


class Byzantine:
    """Oracle-4's key and a gossip node, and none of the honest node's rules."""

    def __init__(self, net: AdvNetwork, peer: GossipPeer) -> None:
        self.net = net
        self.peer = peer
        self.identity = net.oracles[BYZ].identity

    def approve(self, inc: Incident, **changes: object) -> Vote:
        return payout_body(self.net, inc, **changes).approve(self.identity)

    def reject(self, claim_id: bytes, reason: Reason = Reason.WINDOW_OVERLAP, *, ledger_id: bytes | None = None,
               epoch: int = 0) -> Vote:
        return RejectBody(oracle_id=self.identity.public_key, ledger_id=ledger_id or self.net.ledger_id,
                          oracle_set_epoch=epoch, claim_id=claim_id, reason=reason).sign(self.identity)

    def send(self, votes: list[Vote], *, as_id: bytes | None = None) -> None:
        batch = VoteBatch(oracle_id=as_id or self.identity.public_key, votes=tuple(votes))
        self.peer.publish(VOTES_TOPIC, batch.encode())

    def gossip_claim(self, claim: SignedClaim) -> None:
        self.peer.publish(CLAIMS_TOPIC, claim.encode())


@pytest.fixture(scope="module")
def byz(net: AdvNetwork) -> Iterator[Byzantine]:
    net.ensure_healthy()
    real = net.oracles[BYZ]
    real.stop()
    others = [o.multiaddr() for o in net.oracles if o.index != BYZ]
    peer = GossipPeer(real.identity, real.gossip_port, others,
                      {CLAIMS_TOPIC: 4096, VOTES_TOPIC: VoteBatch.MAX_SIZE})
    try:
        # One mesh peer is enough: the honest oracles relay to each other. (Peers that saw the real
        # oracle-4 leave refuse a GRAFT from its id for GossipSub's prune backoff, ~60 s, so a
        # fuller mesh would only cost waiting time.)
        peer.wait_mesh(VOTES_TOPIC, 1)
        peer.wait_mesh(CLAIMS_TOPIC, 1)
        yield Byzantine(net, peer)
    finally:
        peer.stop()
        real.start()


def _ignored(net: AdvNetwork, i: int = 0) -> dict[str, int]:
    return dict(net.status(i)["ignored_votes"])


@case("ADV-VQC-06", "an equivocating oracle (approve and reject the same claim)")
def test_equivocating_oracle(byz: Byzantine, book: LedgerBook) -> None:
    net = byz.net
    inc = incident(net)
    before = snapshot(net)
    byz.send([byz.approve(inc)])
    byz.send([byz.reject(inc.claim_id, Reason.PERIOD_LIMIT)])
    status, body = net.post_claim(0, inc.claim)
    assert status == 202, body
    book.expect(inc.claim_id, "ADV-VQC-06")
    wait_paid_once(net, before, inc.claim_id, inc.terms.amount)
    me = byz.identity.public_key.hex()
    view = net.claim_status(0, inc.claim_id)
    assert view is not None and me not in {s["oracle_id"] for s in view["qc"]["signatures"]}

    def evidence() -> bool:
        return all(any(e["claim_id"] == inc.claim_id.hex() and e["oracle_id"] == me and e["votes"] == 2
                       for e in net.status(i)["equivocations"]) for i in range(4))

    eventually(evidence, 30, what="equivocation evidence on every honest oracle")


@case("ADV-VQC-07", "a Byzantine oracle approving everything (a junk proof; a claim the ledger state refuses)")
def test_byzantine_approves_everything(byz: Byzantine) -> None:
    net = byz.net
    late = incident(net, window_ts=now_ms() - 10 * MINUTE, claim_window_ms=MINUTE)
    junk_inc = incident(net)
    junk = junk_inc.claim.claim.replace(proof=junk_proof(net.circuit, DeviceSim.create(), junk_inc.terms)).sign(net.agent)
    with unchanged(net):
        byz.send([byz.approve(late), byz.approve(junk_inc)])
        byz.gossip_claim(junk)
        assert net.post_claim(1, late.claim)[0] == 202
        view = net.wait_status(late.claim_id, "rejected", oracle=1)
        assert view["reason"] == Reason.CLAIM_WINDOW_CLOSED.value
        settle_gossip()
        assert no_record_anywhere(net, junk_inc.claim_id)


@case("ADV-VQC-08", "a Byzantine oracle rejecting everything cannot block a valid claim")
def test_byzantine_rejects_everything(byz: Byzantine, book: LedgerBook) -> None:
    net = byz.net
    inc = incident(net)
    before = snapshot(net)
    byz.send([byz.reject(inc.claim_id, r) for r in (Reason.WINDOW_OVERLAP,)])
    assert net.post_claim(2, inc.claim)[0] == 202
    book.expect(inc.claim_id, "ADV-VQC-08")
    wait_paid_once(net, before, inc.claim_id, inc.terms.amount)


@case("ADV-VQC-09", "a Byzantine approval of an inflated amount or another beneficiary is never certified")
def test_byzantine_inflated_approval(byz: Byzantine, book: LedgerBook) -> None:
    net = byz.net
    inc = incident(net)
    before = snapshot(net)
    byz.send([byz.approve(inc, amount=inc.terms.amount * 100)])
    byz.send([byz.approve(inc, beneficiary=os.urandom(32))])
    assert net.post_claim(3, inc.claim)[0] == 202
    book.expect(inc.claim_id, "ADV-VQC-09")
    wait_paid_once(net, before, inc.claim_id, inc.terms.amount)
    view = net.claim_status(3, inc.claim_id)
    assert view is not None and view["qc"]["body"]["amount"] == inc.terms.amount
    assert view["qc"]["body"]["beneficiary"] == inc.terms.beneficiary.hex()
    assert byz.identity.public_key.hex() not in {s["oracle_id"] for s in view["qc"]["signatures"]}


@case("ADV-VQC-10", "votes forged in other members' names (random signatures; their real signature over another body)")
def test_forged_votes_in_members_names(byz: Byzantine) -> None:
    net = byz.net
    # A claim no honest oracle ever sees (it is never posted): only the forged approvals could
    # ever certify it.
    inc = incident(net)
    other = incident(net)
    forged: list[Vote] = []
    for o in net.oracles[:4]:
        real = payout_body(net, inc).approve(o.identity)  # we do hold their keys; the forger does not
        forged.append(real.replace(signature=os.urandom(64)))
        borrowed = payout_body(net, other).approve(o.identity)
        forged.append(real.replace(signature=borrowed.signature))
    bad_before = _ignored(net).get("bad_signature", 0)
    before = snapshot(net)
    byz.send(forged)
    eventually(lambda: _ignored(net).get("bad_signature", 0) >= bad_before + len(forged), 30,
               what="forged votes counted as bad signatures")
    settle_gossip(1.0)
    assert_unchanged(net, before)
    assert net.receipt(inc.claim_id)[0] == 404


@case("ADV-VQC-11", "votes bound to another ledger or to another oracle-set epoch")
def test_votes_bound_elsewhere(byz: Byzantine) -> None:
    net = byz.net
    inc = incident(net)
    ign = _ignored(net)
    with unchanged(net):
        byz.send([byz.approve(inc, ledger_id=os.urandom(32)), byz.approve(inc, oracle_set_epoch=7),
                  byz.reject(inc.claim_id, ledger_id=os.urandom(32)), byz.reject(inc.claim_id, epoch=3)])
        eventually(lambda: (lambda g: g.get("wrong_ledger", 0) >= ign.get("wrong_ledger", 0) + 2
                            and g.get("wrong_epoch", 0) >= ign.get("wrong_epoch", 0) + 2)(_ignored(net)), 30,
                   what="votes bound elsewhere ignored")


@case("ADV-VQC-01", "votes from a non-member (and from an enrolled agent) while the honest members are one short of k")
def test_votes_from_a_non_member(byz: Byzantine, book: LedgerBook) -> None:
    net = byz.net
    stranger = Identity.generate()
    voter_agent = agent_identity(net, "vqc01")
    inc = incident(net)
    peers = [GossipPeer(k, free_port(), [o.multiaddr() for o in net.oracles if o.index != BYZ],
                        {VOTES_TOPIC: VoteBatch.MAX_SIZE}) for k in (stranger, voter_agent)]
    try:
        for p in peers:
            p.wait_mesh(VOTES_TOPIC, 2)
        net.oracles[3].kill9()  # honest members alive: 0, 1, 2 (three; k = 4)
        with unchanged(net) as before:
            assert net.post_claim(0, inc.claim)[0] == 202
            for p in peers:
                votes = [payout_body(net, inc).approve(p.identity)]
                p.publish(VOTES_TOPIC, VoteBatch(oracle_id=p.identity.public_key, votes=tuple(votes)).encode())
            # The Byzantine member stays silent; even with the two outsiders' approvals there is no QC.
            settle_gossip(3.0)
            view = net.claim_status(0, inc.claim_id)
            assert view is not None and view["status"] == "pending" and view["approvals"] == 3, view
    finally:
        for p in peers:
            p.stop()
        if not net.oracles[3].alive():
            net.oracles[3].start()
    # The fourth honest member comes back, catches up, and the claim is paid once.
    book.expect(inc.claim_id, "ADV-VQC-01")
    wait_paid_once(net, before, inc.claim_id, inc.terms.amount, timeout=90)



def test_module_end_ledger_verifies_and_paid_exactly_the_expected(net: AdvNetwork, book: LedgerBook) -> None:
    module_end_check(net, book)
