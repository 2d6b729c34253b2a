"""The daemons' view of a chain (DESIGN §13): the pool's events replayed as ledger entries through
`ledger.state`, followed by the one `LedgerFollower` (the §14 events too: bonds, parameters, econ
policies, slashes and group payouts, with the contract's books to the unit); and the chain votes
(`ChainApprove`) an oracle checks before it counts them toward a chain QC, a claim's or a group's
(and a group QC assembled from them paid through the settlement interface, once).

Real anvil, contracts and proofs (one chain for the module, shared with nothing else); the
ChainApprove checks are pure.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner
from web3 import Web3
from web3.utils.address import get_create_address

from cli import main
from faultproof.chain import chain_to_bytes
from faultproof.errors import FaultproofError, Reason
from faultproof.messages import (
    BondHolder,
    ChainApprove,
    ChainEvidence,
    ChainSlash,
    Deposit,
    EconParams,
    EconPolicy,
    EnrolAgent,
    IssuePolicy,
    PostBond,
    QuorumCertificate,
    RegisterCircuit,
    Unbond,
    UnbondStep,
    decode_any,
)
from ledger.economics import REWARDS
from ledger.evm.mirror import (
    ChainMirror,
    MirrorEvent,
    chain_policy_id,
    mirror_genesis,
    mirror_keys,
    split_tail,
    tail,
)
from ledger.evm.pool import EvmPool
from ledger.evm.settlement import EvmSettlement, deploy_mirrored_pool, register_mirrored_circuit
from ledger.evm.typed import ChainBody, ChainGroupBody, ChainKey
from ledger.follower import LedgerFollower
from ledger.state import FREE, LOCKED_PREFIX, PAID, PREMIUMS, LedgerState, TxKind
from oracle.chain_votes import (
    ChainVotes,
    chain_body,
    chain_group_body,
    check_chain_approve,
    recover_signer,
    sign_chain_approve,
)
from tests.conformance.backends import (
    OK,
    ChainBackend,
    ClaimSpec,
    FrameEvidence,
    GroupSpec,
    Outcome,
    VoteEvidence,
    _group_body,
    genesis_for,
)
from tests.contracts.evmfix import FUNDS, ChainWorld, N, oracle_identity, oracle_key
from tests.netfix import DAY, HOUR, SECOND, TRIGGERING, DeviceSim
from tests.netfix import PARAMS as COUNT

pytestmark = pytest.mark.slow


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
    start = dev.record(TRIGGERING, start_ts=world.now_ms() - 60 * SECOND)
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


# ----------------------------------------------------------------------------- the §14 events (econ)

DELAY = 60 * SECOND  # bond unlock delay: longer than the policies' 30 s claim window (EC4)
PARAMS = EconParams(min_oracle_bond=1_000, max_staging_cost=500, reporter_share_bps=2_500, unlock_delay_ms=DELAY)
REPORTER = b"\x0e" * 32


def _window(dev: DeviceSim, at_ms: int) -> int:
    dev.record([0], start_ts=at_ms)
    return dev.record(TRIGGERING)


def _bond(kind: BondHolder, holder: bytes, amount: int) -> PostBond:
    return PostBond(holder_kind=int(kind), holder_id=holder, amount=amount)


def test_a_mirror_follows_the_econ_events_past_a_group_payout_with_the_contracts_books(world: ChainWorld) -> None:
    """An econ scenario on a mirrored pool (bonds, parameters, an econ policy, a corroborated policy
    paid once by groupPayout, an oracle slash by reportVotes, a device slash by a DeviceSlash
    certificate, an unbond request and release): a follower that was there goes past the group
    payout, and a fresh mirror replays every event with the contract's books and econ state."""
    t0 = (world.now_ms() // SECOND + 10) * SECOND
    members = tuple(oracle_identity(i).public_key for i in range(5))
    admin = Web3.to_checksum_address(world.admin)
    address = get_create_address(admin, world.w3.eth.get_transaction_count(admin, "pending"))
    genesis = mirror_genesis(world.w3.eth.chain_id, address, members, 4, True, 5000, HOUR)
    cb = ChainBackend(world, genesis, start_ms=t0)  # deploys at `address`: ledgerId = the mirror genesis' id
    pool = cb.pool
    assert pool.address == address and bytes(pool.contract.functions.ledgerId().call()) == genesis.ledger_id

    def do(op: Callable[..., Outcome], *args: Any, expect: Outcome = OK) -> None:
        cb.now = max(cb.now + SECOND, world.now_ms() + SECOND)  # one step of ledger time (a new block)
        assert op(*args) == expect

    register = RegisterCircuit(vkey=world.vkey, n=N, layout_version=1, transcript_hash=bytes(32), production=0)
    do(lambda: cb._run(lambda: register_mirrored_circuit(pool, register, verifier=world.verifier))[0])
    do(cb.admin_tx, Deposit(amount=100_000))
    for i in range(6):  # the five members, and oracle 5 (not a member) whose bond leaves later
        do(cb.admin_tx, _bond(BondHolder.ORACLE, oracle_identity(i).public_key, 1_000))
    do(cb.admin_tx, PARAMS)
    e, a, b = (DeviceSim.create(anchor_ts=cb.now - 40 * DAY) for _ in range(3))
    for dev, amount in ((e, 300), (a, 1_000), (b, 1_000)):
        do(cb.admin_tx, dev.enrol_tx())
        do(cb.admin_tx, _bond(BondHolder.DEVICE, dev.device_id, amount))
    agents = (b"\x21" * 32, b"\x22" * 32)
    for ag in agents:
        do(cb.admin_tx, EnrolAgent(agent_id=ag))
    kind, T, K, lo, hi, G = COUNT.as_tuple()

    def terms(dev: DeviceSim) -> IssuePolicy:
        return IssuePolicy(device_id=dev.device_id, beneficiary=world.beneficiary, circuit_id=register.circuit_id,
                           kind=kind, threshold=T, count=K, lo=lo, hi=hi, gap_ms=G, start_ms=cb.now - DAY,
                           end_ms=cb.now + DAY, period_ms=DAY, claim_window_ms=30 * SECOND, coverage=1_000,
                           amount=100, premium=10)

    single = EconPolicy(terms=terms(e), staging_cost=100, group=(), min_proofs=1, overlap_tolerance_ms=0)
    group = tuple(sorted((a.device_id, b.device_id)))
    corroborated = EconPolicy(terms=terms(a), staging_cost=100, group=group, min_proofs=2,
                              overlap_tolerance_ms=2 * SECOND)
    do(cb.issue_econ, "e", single)
    do(cb.issue_econ, "g", corroborated)
    t = cb.now - 20 * SECOND
    spec = GroupSpec("g", ((a, _window(a, t), agents[0]), (b, _window(b, t + 1_500), agents[1])))
    se = _window(e, t)
    base = f"evm+{world.node.url}?contract={pool.address}"

    async def scenario() -> None:
        live = EvmSettlement(base)
        follower = LedgerFollower(live, 0.1, clock=world.now_ms)
        view = await follower.bootstrap(genesis.ledger_id, timeout=10)
        pid_g = cb.pids["g"][0]
        assert view.state.econ.group_of(pid_g) == group
        do(cb.group_payout, spec, expect=("paid", 100))
        cid = _group_body(genesis.ledger_id, pid_g, corroborated.terms, spec).claim_id
        conflicting = ClaimSpec("e", e, se, tamper=lambda body: body.replace(amount=101))
        do(cb.report_votes, VoteEvidence(ClaimSpec("e", e, se), conflicting, signer=2))  # equivocation
        do(cb.report_votes, VoteEvidence(conflicting, None, signer=1))  # an approval its policy contradicts
        do(cb.report_frames, FrameEvidence(e, se + 1, certifiers=(0, 1, 3, 4)))
        five = oracle_identity(5).public_key
        do(cb.admin_tx, Unbond(holder_kind=BondHolder.ORACLE, holder_id=five, step=UnbondStep.REQUEST))
        cb.now += DELAY
        do(cb.admin_tx, Unbond(holder_kind=BondHolder.ORACLE, holder_id=five, step=UnbondStep.RELEASE))
        # the follower that was there goes past the group payout: every later event replays too
        before = view.height
        await follower.refresh()
        assert live.mirror is not None and live.mirror.problem is None, live.mirror
        assert view.height == before + 6 and view.state.paid_claim(cid) is not None
        # a fresh mirror replays every event, and its books and econ state are the contract's
        fresh = EvmSettlement(base)
        state = (await LedgerFollower(fresh, 0.1, clock=world.now_ms).bootstrap(genesis.ledger_id, timeout=10)).state
        assert fresh.mirror is not None and fresh.mirror.problem is None, fresh.mirror
        chain = pool.balances()
        assert {"free": state.balances[FREE], "premiums": state.balances[PREMIUMS], "paid": state.balances[PAID],
                "locked": sum(v for k, v in state.balances.items() if k.startswith(LOCKED_PREFIX)),
                "bonds": state.econ.bond_total, "rewards": state.balance(REWARDS)} == \
            {k: chain[k] for k in ("free", "premiums", "paid", "locked", "bonds", "rewards")}
        assert chain["token_balance"] == sum(chain[k] for k in ("free", "premiums", "locked", "bonds", "rewards"))
        assert (chain["bonds"], chain["rewards"]) == (3 * 1_000 + 2 * 1_000, 2 * 250 + 75)  # oracles 1, 2, e slashed
        econ = state.econ
        assert econ.params == PARAMS
        holders = [(BondHolder.ORACLE, oracle_identity(i).public_key) for i in range(6)] + \
            [(BondHolder.DEVICE, d.device_id) for d in (e, a, b)]
        assert {h: econ.bonds[h].amount if h in econ.bonds else 0 for h in holders} == \
            {h: pool.econ_state(int(h[0]), h[1])["bond"] for h in holders}
        assert econ.rewards == {REPORTER: pool.econ_state(reporter=REPORTER)["reward"]}
        assert econ.slashed_oracles == {oracle_identity(i).public_key for i in (1, 2)}
        assert econ.slashed_devices == {e.device_id}
        assert [(s.evidence, s.offender, s.slashed, s.to_reporter, s.to_pool) for s in econ.slashes] == \
            [("vote-equivocation", oracle_identity(2).public_key, 1_000, 250, 750),
             ("contradicting-approve", oracle_identity(1).public_key, 1_000, 250, 750),
             ("frame-equivocation", e.device_id, 300, 75, 225)]
        assert state.devices[e.device_id].revoked_ms is not None  # revoked by its slash, once
        assert econ.policies[cb.pids["e"][0]] == single and econ.policies[pid_g] == corroborated
        paid = state.paid_claim(cid)
        assert paid is not None and paid.paid == 100 == pool.paid_claim(cid)
        for pid in (cb.pids["e"][0], pid_g):
            assert state.policies[pid].locked == pool.policy(pid)["locked"]  # type: ignore[index]
        _tag, _paid, start_ts, end_ts, *_links = pool.contract.functions.claims(cid).call()
        assert [(w.claim_id, w.start_ts, w.end_ts) for w in state.policies[pid_g].payouts] == [(cid, start_ts, end_ts)]
        for client in (live, fresh):
            await client.close()

    asyncio.run(scenario())
    # `faultproof ledger verify` on the chain: the same fresh replay, and the books (bonds and the
    # reporters' rewards too) equal the contract's to the unit.
    out = CliRunner().invoke(main, ["ledger", "verify", "--evm-rpc", world.node.url, "--contract", pool.address, "--json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert report["ok"] and report["differ"] == [] and report["problem"] is None
    assert report["books"] == report["contract_books"] and report["books"]["bonds"] > 0 and report["books"]["rewards"] > 0
    # A pool deployed without a mirror genesis cannot be replayed: a verdict (exit 1), not a crash.
    plain = world.new_pool(funds=0, register=False).address
    started = time.monotonic()
    out = CliRunner().invoke(main, ["ledger", "verify", "--evm-rpc", world.node.url, "--contract", plain])
    assert out.exit_code == 1 and out.output.startswith("BAD: ") and "mirror genesis" in out.output, out.output
    assert time.monotonic() - started < 10  # a verdict at once: no follower retrying what cannot change


def test_a_group_qc_assembled_from_chain_votes_pays_once_through_the_settlement(world: ChainWorld) -> None:
    """What an oracle's group chain poster sends (oracle/group_node.py): the chain's group body
    built from the parts' frames, k ChainApproves that verify, one proof per window, through
    `EvmSettlement.post_chain_group_qc`: k - 1 signatures are refused, k pay once to the policy's
    payee, and a second sender gets `existing` (nothing paid twice)."""
    t0 = (world.now_ms() // SECOND + 10) * SECOND
    genesis, _admin, _ledger = genesis_for(t0)
    cb = ChainBackend(world, genesis, start_ms=t0)
    pool = cb.pool

    def do(op: Callable[..., Outcome], *args: Any, expect: Outcome = OK) -> None:
        cb.now = max(cb.now + SECOND, world.now_ms() + SECOND)
        assert op(*args) == expect

    do(cb.register_circuit)
    do(cb.admin_tx, Deposit(amount=100_000))
    ids = [oracle_identity(i).public_key for i in range(5)]
    for oid in ids:
        do(cb.admin_tx, _bond(BondHolder.ORACLE, oid, 1_000))
    do(cb.admin_tx, PARAMS)
    a, b = (DeviceSim.create(anchor_ts=cb.now - 40 * DAY) for _ in range(2))
    for dev in (a, b):
        do(cb.admin_tx, dev.enrol_tx())
        do(cb.admin_tx, _bond(BondHolder.DEVICE, dev.device_id, 1_000))
    agents = (b"\x21" * 32, b"\x22" * 32)
    for ag in agents:
        do(cb.admin_tx, EnrolAgent(agent_id=ag))
    kind, T, K, lo, hi, G = COUNT.as_tuple()
    terms = IssuePolicy(device_id=a.device_id, beneficiary=world.beneficiary, circuit_id=world.circuit_id, kind=kind,
                        threshold=T, count=K, lo=lo, hi=hi, gap_ms=G, start_ms=cb.now - DAY, end_ms=cb.now + DAY,
                        period_ms=DAY, claim_window_ms=30 * SECOND, coverage=1_000, amount=100, premium=10)
    do(cb.issue_econ, "g", EconPolicy(terms=terms, staging_cost=100, group=tuple(sorted((a.device_id, b.device_id))),
                                      min_proofs=2, overlap_tolerance_ms=2 * SECOND))
    t = cb.now - 20 * SECOND
    spec = GroupSpec("g", ((a, _window(a, t), agents[0]), (b, _window(b, t + 1_500), agents[1])))
    pid = cb.pids["g"][0]
    parts = spec.sorted_parts()
    body = chain_group_body(_group_body(genesis.ledger_id, pid, terms, spec),
                            [chain_to_bytes(d.chains[s]) for d, s, _ in parts])
    proofs = [world.proof(d, s, terms) for d, s, _ in parts]
    votes = ChainVotes()
    for i in range(4):
        votes.add(sign_chain_approve(oracle_key(i), ids[i], body, pool.chain_id, pool.address))
    qc = votes.assemble(body, 4, _bound, pool.chain_id, pool.address)
    assert qc is not None
    cid = body.body.claim_id
    base = f"evm+{world.node.url}?contract={pool.address}"

    async def scenario() -> None:
        poster = EvmSettlement(f"{base}&from={world.poster}")
        other = EvmSettlement(f"{base}&from={world.accounts[2]}")
        await other.events()
        books, payee = pool.balances(), int(pool.token.functions.balanceOf(world.payee).call())
        world.set_time(cb.now + SECOND)
        with pytest.raises(FaultproofError) as short:
            await poster.post_chain_group_qc(type(qc)(qc.body, qc.signatures[:3]), proofs)
        assert short.value.reason is Reason.QC_INSUFFICIENT_SIGNATURES and pool.balances() == books
        paid = await poster.post_chain_group_qc(qc, proofs)
        assert (paid.paid, paid.existing) == (100, False) and paid.gas_used > 0
        names = [n for n, _, _ in await other.events()]
        assert names == ["Paid", "GroupPaid"] and other.paid(cid) == 100  # the other members stop here
        again = await other.post_chain_group_qc(qc, proofs)  # a second sender anyway: nothing paid twice
        assert (again.paid, again.existing) == (100, True)
        after = pool.balances()
        assert after["paid"] == books["paid"] + 100 and after["locked"] == books["locked"] - 100
        assert int(pool.token.functions.balanceOf(world.payee).call()) == payee + 100
        assert after["token_balance"] == sum(after[k] for k in ("free", "premiums", "locked", "bonds", "rewards"))
        for client in (poster, other):
            await client.close()

    asyncio.run(scenario())


def test_a_chain_slash_is_a_mirror_only_transaction_checked_against_the_mirrors_bonds() -> None:
    """Pure: a ChainSlash replays only in an EVM pool's mirror, and only with the amounts its own
    bonds give (a chain that slashed another amount stops the mirror by name)."""
    contract = "0x" + "5a" * 20
    members = tuple(oracle_identity(i).public_key for i in range(5))
    genesis = mirror_genesis(CHAIN_ID, contract, members, 4, True, 5000, HOUR)
    mirror = ChainMirror(genesis, CHAIN_ID, contract, lambda data: ())
    at = iter(range(1, 100))

    def ev(name: str, **args: object) -> MirrorEvent:
        return MirrorEvent(name, dict(args), next(at), 1_000 * next(at))

    for m in members:
        mirror.apply(ev("BondPosted", kind=1, holderId=m, amount=1_000, bond=1_000))
    mirror.apply(ev("EconParamsSet", minOracleBond=1_000, maxStagingCost=500, reporterShareBps=2_500,
                    unlockDelayMs=DELAY))
    slash = ChainSlash(holder_kind=1, offender=members[2], reporter=REPORTER, evidence=ChainEvidence.VOTES,
                       amount=1_000, to_reporter=250, to_pool=750)
    plain = LedgerState.from_genesis_entry(LedgerState(genesis).genesis_entry().sign(mirror_keys(genesis.nonce)[0]))
    with pytest.raises(FaultproofError) as refused:
        plain.check(slash, 0)
    assert refused.value.reason is Reason.WRONG_TYPE  # not a transaction of any other ledger
    assert mirror.state.check(slash, mirror.state.time_ms).kind is TxKind.SLASH  # the mirror takes it
    with pytest.raises(FaultproofError) as wrong:
        mirror.state.check(slash.replace(evidence=ChainEvidence.FRAMES), mirror.state.time_ms)
    assert wrong.value.reason is Reason.EVIDENCE_INVALID  # frame evidence does not slash an oracle
    mirror.apply(ev("Slashed", kind=1, offender=members[2], reporter=REPORTER, evidence=1, amount=999,
                    toReporter=249, toPool=750, atMs=0))
    assert mirror.problem is not None and "the chain slashed 999" in mirror.problem
    assert mirror.state.econ.bond_total == 5_000 and not mirror.state.econ.slashed_oracles  # nothing applied


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


def _chain_group(epoch: int = 0, c_start: int = 60) -> ChainGroupBody:
    """A two-window group body as the chain sees it (start chain values c_start + 1, c_start + 2)."""
    from faultproof.messages import CorroboratingWindow, GroupPayoutBody

    windows = tuple(CorroboratingWindow(device_id=bytes([d]) * 32, agent_id=bytes([0x20 + d]) * 32, epoch=0,
                                        start_seq=1, end_seq=5, start_ts=1000 + d, end_ts=5000 + d,
                                        end_chain=(70 + d).to_bytes(32, "big")) for d in (1, 2))
    b = GroupPayoutBody(ledger_id=b"\x01" * 32, oracle_set_epoch=epoch, claim_id=b"\x0c" * 32,
                        policy_id=b"\x03" * 32, windows=windows, circuit_id=b"\x05" * 32,
                        beneficiary=bytes(12) + b"\x06" * 20, amount=100)
    return chain_group_body(b, [(c_start + d).to_bytes(32, "big") for d in (1, 2)])


def test_a_chain_approve_over_a_group_body_counts_only_for_that_body_in_that_epoch_and_pool() -> None:
    body = _chain_group()
    assert body.chains == ((61, 71), (62, 72))  # each window's start frame and end chain values
    me = oracle_identity(0).public_key
    good = sign_chain_approve(oracle_key(0), me, body, CHAIN_ID, CONTRACT)
    assert (good.claim_id, good.oracle_set_epoch) == (body.body.claim_id, 0)
    # the very signature the contract checks in groupPayout (the EIP-712 GroupPayoutBody)
    assert good.signature == oracle_key(0).sign_group_body(body, CHAIN_ID, CONTRACT).signature
    assert recover_signer(body, CHAIN_ID, CONTRACT, good.signature) == oracle_key(0).address
    assert check_chain_approve(good, body, _bound(0, me), CHAIN_ID, CONTRACT) is None
    # a signature over another group body with the same claim id (other chain values) does not count
    other = sign_chain_approve(oracle_key(0), me, _chain_group(c_start=90), CHAIN_ID, CONTRACT)
    assert other.claim_id == good.claim_id
    assert check_chain_approve(other, body, _bound(0, me), CHAIN_ID, CONTRACT) is Reason.QC_BAD_SIGNATURE
    # nor a lone claim's body signed under the group's claim id (another EIP-712 type)
    lone = sign_chain_approve(oracle_key(0), me, _body(), CHAIN_ID, CONTRACT).replace(claim_id=body.body.claim_id)
    assert check_chain_approve(lone, body, _bound(0, me), CHAIN_ID, CONTRACT) is Reason.QC_BAD_SIGNATURE
    # another epoch's group body, relabelled or not; another pool; a key not bound in the epoch
    old = sign_chain_approve(oracle_key(0), me, _chain_group(epoch=1), CHAIN_ID, CONTRACT)
    assert check_chain_approve(old, body, _bound(0, me), CHAIN_ID, CONTRACT) is Reason.QC_STALE_EPOCH
    relabelled = old.replace(oracle_set_epoch=0)
    assert check_chain_approve(relabelled, body, _bound(0, me), CHAIN_ID, CONTRACT) is Reason.QC_BAD_SIGNATURE
    elsewhere = sign_chain_approve(oracle_key(0), me, body, CHAIN_ID, "0x" + "5b" * 20)
    assert check_chain_approve(elsewhere, body, _bound(0, me), CHAIN_ID, CONTRACT) is Reason.QC_BAD_SIGNATURE
    stranger = oracle_identity(7).public_key
    unbound = sign_chain_approve(oracle_key(7), stranger, body, CHAIN_ID, CONTRACT)
    assert check_chain_approve(unbound, body, _bound(0, stranger), CHAIN_ID, CONTRACT) is Reason.QC_NON_MEMBER
    with pytest.raises(ValueError):  # one start chain value per window
        chain_group_body(body.body, [b"\x01" * 32])


def test_a_group_chain_qc_is_assembled_from_k_votes_that_verify() -> None:
    body = _chain_group()
    ids = [oracle_identity(i).public_key for i in range(5)]
    votes = ChainVotes()
    votes.add(sign_chain_approve(ChainKey.from_seed(b"\x09" * 32), ids[0], body, CHAIN_ID, CONTRACT))  # forged
    votes.add(sign_chain_approve(oracle_key(1), ids[1], _chain_group(c_start=90), CHAIN_ID, CONTRACT))  # other body
    for i in (2, 3):
        votes.add(sign_chain_approve(oracle_key(i), ids[i], body, CHAIN_ID, CONTRACT))
    votes.add(sign_chain_approve(oracle_key(4), ids[4], _chain_group(epoch=1), CHAIN_ID, CONTRACT))  # other epoch
    assert votes.assemble(body, 4, _bound, CHAIN_ID, CONTRACT) is None
    assert votes.count(body.body.claim_id) == 3  # both bad signatures dropped, the other epoch's kept
    for i in (0, 1):  # the real ones (re-gossip repeats them)
        votes.add(sign_chain_approve(oracle_key(i), ids[i], body, CHAIN_ID, CONTRACT))
    qc = votes.assemble(body, 4, _bound, CHAIN_ID, CONTRACT)
    assert qc is not None and qc.body == body
    assert {s.signer for s in qc.signatures} == {oracle_key(i).address for i in range(4)}
    assert all(recover_signer(body, CHAIN_ID, CONTRACT, s.signature) == s.signer for s in qc.signatures)


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
