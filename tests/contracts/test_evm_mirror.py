"""The daemons' view of a chain (DESIGN §13): the pool's events replayed as ledger entries through
`ledger.state`, followed by the one `LedgerFollower`; and the chain votes (`ChainApprove`) an
oracle checks before it counts them toward a chain QC.

Real anvil, contracts and proofs (one chain for the module, shared with nothing else); the
ChainApprove checks are pure.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from faultproof.errors import FaultproofError, Reason
from faultproof.messages import (
    ChainApprove,
    Deposit,
    EnrolAgent,
    IssuePolicy,
    QuorumCertificate,
    RegisterCircuit,
    decode_any,
)
from faultproof.zk import TriggerParams
from ledger.evm.mirror import chain_policy_id, split_tail, tail
from ledger.evm.pool import EvmPool
from ledger.evm.settlement import EvmSettlement, deploy_mirrored_pool, register_mirrored_circuit
from ledger.evm.typed import ChainBody, ChainKey
from ledger.follower import LedgerFollower
from ledger.state import FREE, LOCKED_PREFIX, PAID, PREMIUMS
from oracle.chain_votes import ChainVotes, chain_body, check_chain_approve, sign_chain_approve
from tests.contracts.evmfix import FUNDS, ChainWorld, N, oracle_identity, oracle_key
from tests.netfix import SECOND

pytestmark = pytest.mark.slow
COUNT = TriggerParams.count(80, 2)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChainWorld]:
    w = ChainWorld.start(Path(tmp_path_factory.mktemp("mirror")))
    yield w
    w.stop()


def _insured(world: ChainWorld) -> tuple[EvmPool, IssuePolicy, ChainBody, bytes, QuorumCertificate]:
    """A mirrored pool with one policy, and a window's chain body, proof and Ed25519 QC."""
    pool = deploy_mirrored_pool(world.w3, admin=world.admin, token=world.token.address,
                                oracles=[oracle_key(i).binding(oracle_identity(i)) for i in range(5)],
                                threshold=4, development=True, max_skew_ms=5000, rotation_grace_ms=3_600_000)
    register = RegisterCircuit(vkey=world.vkey, n=N, layout_version=1, transcript_hash=bytes(32), production=0)
    assert register.circuit_id == world.circuit_id
    register_mirrored_circuit(pool, register, verifier=world.verifier)
    world.mint(pool.token, world.admin, FUNDS)
    pool.submit_admin(Deposit(amount=FUNDS))
    pool.submit_admin(EnrolAgent(agent_id=b"\x07" * 32))
    dev = world.new_device(pool)
    pid, terms = world.issue(pool, dev, COUNT)
    assert pid == chain_policy_id(pool.chain_id, pool.address, 1)
    start = dev.record([90, 95, 10, 12], start_ts=world.now_ms() - 60 * SECOND)
    chain, proof = world.window(pool, dev, pid, terms, start)
    body = chain.body.replace(end_chain=chain.c_end.to_bytes(32, "big"))  # what honest oracles sign
    ed_qc = QuorumCertificate.from_approvals([body.approve(oracle_identity(i)) for i in range(4)])
    return pool, terms, ChainBody(body, chain.c_start, chain.c_end), proof, ed_qc


def test_the_pools_history_replays_through_the_rules_and_a_follower_sees_the_payout(world: ChainWorld) -> None:
    pool, terms, chain, proof, ed_qc = _insured(world)
    body, pid = chain.body, chain.body.policy_id
    base = f"evm+{world.node.url}?contract={pool.address}"

    async def scenario() -> None:
        poster = EvmSettlement(f"{base}&from={world.poster}")
        paid = await poster.post_chain_qc(world.qc(pool, chain), proof, ed_qc)
        assert paid.paid == terms.amount and not paid.existing
        reader = EvmSettlement(base)
        follower = LedgerFollower(reader, 0.2)
        view = await follower.bootstrap(bytes(pool.contract.functions.ledgerId().call()), timeout=10)
        state = view.state
        assert reader.mirror is not None and reader.mirror.problem is None
        # every event became an entry that replayed through ledger.state: the same policy id,
        # the payout with the oracles' Ed25519 QC, the books to the unit
        assert state.policy(pid) is not None and state.paid_claim(body.claim_id) is not None
        assert state.paid_claim(body.claim_id).paid == terms.amount  # type: ignore[union-attr]
        assert view.payout_entries[body.claim_id].entry.tx == ed_qc
        books = pool.balances()
        assert {"free": state.balances[FREE], "premiums": state.balances[PREMIUMS], "paid": state.balances[PAID],
                "locked": sum(v for k, v in state.balances.items() if k.startswith(LOCKED_PREFIX))} == \
            {k: books[k] for k in ("free", "premiums", "paid", "locked")}
        assert state.agent_enrolled(b"\x07" * 32) and state.circuit(world.circuit_id) is not None
        assert view.head is not None and view.receipt(body.claim_id) is not None
        assert reader.binding(0, oracle_identity(2).public_key) == oracle_key(2).address
        # a pool deployed with any other ledger id has no mirror, and says how to get one
        other = EvmSettlement(f"evm+{world.node.url}?contract={world.new_pool(funds=0, register=False).address}")
        with pytest.raises(Exception, match="deploy_mirrored_pool"):
            await other.entries()

    asyncio.run(scenario())


def test_a_deep_follower_waits_for_confirmations_and_a_payout_without_its_signatures_stops_the_mirror(
        world: ChainWorld) -> None:
    pool, terms, chain, proof, _ed_qc = _insured(world)
    base = f"evm+{world.node.url}?contract={pool.address}"

    async def scenario() -> None:
        deep = EvmSettlement(f"{base}&confirmations=2")
        follower = LedgerFollower(deep, 0.1)
        view = await follower.bootstrap(bytes(pool.contract.functions.ledgerId().call()), timeout=10)
        world.node.mine()
        world.node.mine()
        await follower.refresh()
        before = view.height
        # paid on chain without the Ed25519 signatures after the arguments (not how oracles post):
        # the chain pays, the rules cannot check the payout, and the mirror stops there, by name
        pool.post_qc(world.qc(pool, chain), proof, world.poster)  # EvmPool directly: no tail
        world.node.mine()
        await follower.refresh()
        assert deep.mirror is not None and deep.mirror.problem is None  # one block on top: not yet seen
        world.node.mine()
        await follower.refresh()
        assert deep.mirror.problem is not None and "without its Ed25519 quorum signatures" in deep.mirror.problem
        assert view.height == before and view.state.paid_claim(chain.body.claim_id) is None
        with pytest.raises(FaultproofError, match="mirror stopped") as e:  # followers are told, not left waiting
            await deep.entries(view.height)
        assert e.value.reason is Reason.UNAVAILABLE
        await deep.close()

    asyncio.run(scenario())


def test_calldata_tails_round_trip_and_plain_calldata_has_none() -> None:
    abi = b"\x12\x34\x56\x78" + bytes(64)
    assert split_tail(abi + tail(b"payload")) == (abi, b"payload")
    assert split_tail(abi) == (abi, None)
    assert split_tail(b"FPM1") == (b"FPM1", None)


# ----------------------------------------------------------------------------- ChainApprove (pure)

CHAIN_ID, CONTRACT = 31337, "0x" + "5a" * 20


def _body(epoch: int = 0) -> ChainBody:
    from faultproof.messages import PayoutBody

    b = PayoutBody(ledger_id=b"\x01" * 32, oracle_set_epoch=epoch, claim_id=b"\x02" * 32, policy_id=b"\x03" * 32,
                   device_id=b"\x04" * 32, epoch=0, start_seq=1, end_seq=5, start_ts=1000, end_ts=5000,
                   circuit_id=b"\x05" * 32, beneficiary=bytes(12) + b"\x06" * 20, amount=100,
                   end_chain=(77).to_bytes(32, "big"))
    return chain_body(b, (66).to_bytes(32, "big"))


def _bound(epoch: int, oracle_id: bytes) -> str | None:
    for i in range(5):
        if oracle_identity(i).public_key == oracle_id and epoch in (0, 1):
            return oracle_key(i).address
    return None


def test_a_chain_approve_counts_only_if_its_bound_key_signed_this_body_in_this_epoch() -> None:
    body = _body()
    me = oracle_identity(0).public_key
    good = sign_chain_approve(oracle_key(0), me, body, CHAIN_ID, CONTRACT)
    assert decode_any(good.encode(), (ChainApprove,)) == good
    assert check_chain_approve(good, body, _bound(0, me), CHAIN_ID, CONTRACT) is None
    # forged: another key's signature under oracle 0's id
    forged = sign_chain_approve(ChainKey.from_seed(b"\x09" * 32), me, body, CHAIN_ID, CONTRACT)
    assert check_chain_approve(forged, body, _bound(0, me), CHAIN_ID, CONTRACT) is Reason.QC_BAD_SIGNATURE
    garbage = good.replace(signature=b"\x00" * 65)
    assert check_chain_approve(garbage, body, _bound(0, me), CHAIN_ID, CONTRACT) is Reason.QC_BAD_SIGNATURE
    # an oracle with no key bound on chain (not a member of that epoch)
    stranger = oracle_identity(7).public_key
    unbound = sign_chain_approve(oracle_key(7), stranger, body, CHAIN_ID, CONTRACT)
    assert check_chain_approve(unbound, body, _bound(0, stranger), CHAIN_ID, CONTRACT) is Reason.QC_NON_MEMBER
    # another epoch's body: never counts toward this one
    old = sign_chain_approve(oracle_key(0), me, _body(epoch=1), CHAIN_ID, CONTRACT)
    assert check_chain_approve(old, body, _bound(0, me), CHAIN_ID, CONTRACT) is Reason.QC_STALE_EPOCH
    relabelled = old.replace(oracle_set_epoch=0)  # the label says 0, the signature is over epoch 1
    assert check_chain_approve(relabelled, body, _bound(0, me), CHAIN_ID, CONTRACT) is Reason.QC_BAD_SIGNATURE
    # another pool's domain
    elsewhere = sign_chain_approve(oracle_key(0), me, body, CHAIN_ID, "0x" + "5b" * 20)
    assert check_chain_approve(elsewhere, body, _bound(0, me), CHAIN_ID, CONTRACT) is Reason.QC_BAD_SIGNATURE


def test_a_chain_qc_is_assembled_from_k_votes_that_verify_and_forgeries_are_dropped() -> None:
    body = _body()
    votes = ChainVotes()
    ids = [oracle_identity(i).public_key for i in range(5)]
    votes.add(sign_chain_approve(ChainKey.from_seed(b"\x09" * 32), ids[0], body, CHAIN_ID, CONTRACT))  # forged
    for i in (1, 2, 3):
        votes.add(sign_chain_approve(oracle_key(i), ids[i], body, CHAIN_ID, CONTRACT))
    votes.add(sign_chain_approve(oracle_key(4), ids[4], _body(epoch=1), CHAIN_ID, CONTRACT))  # other epoch
    assert votes.assemble(body, 4, _bound, CHAIN_ID, CONTRACT) is None
    assert votes.count(body.body.claim_id) == 4  # the forgery is gone, the other epoch's vote kept
    votes.add(sign_chain_approve(oracle_key(0), ids[0], body, CHAIN_ID, CONTRACT))  # the real one
    qc = votes.assemble(body, 4, _bound, CHAIN_ID, CONTRACT)
    assert qc is not None and {s.signer for s in qc.signatures} == {oracle_key(i).address for i in range(4)}


def test_members_take_turns_sending_a_payout_in_an_order_drawn_from_the_claim() -> None:
    from oracle.chain_votes import posting_turn

    members = [oracle_identity(i).public_key for i in range(5)]
    for cid in (b"\x01" * 32, b"\x02" * 32):
        turns = sorted(posting_turn(cid, members, m) for m in members)
        assert turns == [0, 1, 2, 3, 4]  # every member has its own turn, the same in every node's eyes
        assert posting_turn(cid, list(reversed(members)), members[0]) == posting_turn(cid, members, members[0])
        assert posting_turn(cid, members, oracle_identity(7).public_key) == 5  # a non-member goes last
    firsts = {next(m for m in members if posting_turn(bytes([i]) * 32, members, m) == 0) for i in range(40)}
    assert len(firsts) > 1  # the first sender differs from claim to claim
