"""The pool contract behind the settlement interface (issue 16 d): `connect("evm+http://…")`
returns the chain backend; a payout posted through it pays once, a second poster gets the
existing payout, a follower sees the Paid event only `confirmations` blocks deep, refusals keep
their reason codes and change nothing, and the Ed25519 ledger's forms are refused by name.
Real anvil, real contracts, real proofs; one chain for the module.
"""

from __future__ import annotations

import asyncio

import pytest

from faultproof.errors import FaultproofError, Reason
from faultproof.messages import ExpirePolicy
from faultproof.procs import free_port
from ledger.client import LedgerClient
from ledger.evm.settlement import EvmSettlement, parse_evm_url
from ledger.settlement import Settlement, connect
from tests.contracts.evmfix import ChainWorld
from tests.netfix import PARAMS as COUNT
from tests.netfix import SECOND

pytestmark = pytest.mark.slow
ADDR = "0x" + "ab" * 20


def reason_of(coro: object) -> Reason:
    with pytest.raises(FaultproofError) as e:
        asyncio.run(coro)  # type: ignore[arg-type]
    return e.value.reason


@pytest.mark.parametrize("url", [
    "evm+http://127.0.0.1:8545",                                      # no contract
    f"evm+http://127.0.0.1:8545?contract={ADDR[:-2]}",                # short address
    f"evm+ftp://127.0.0.1:8545?contract={ADDR}",                      # not an RPC URL
    f"evm+http://127.0.0.1:8545?contract={ADDR}&confirmations=-1",
    f"evm+http://127.0.0.1:8545?contract={ADDR}&confirmations=1001",
    f"evm+http://127.0.0.1:8545?contract={ADDR}&from=0x12",
    f"evm+http://127.0.0.1:8545?contract={ADDR}&start_block=-1",
    f"evm+http://127.0.0.1:8545?contract={ADDR}&start_block=0x10",
    f"evm+http://127.0.0.1:8545?contract={ADDR}&log_blocks=0",
    f"evm+http://127.0.0.1:8545?contract={ADDR}&log_blocks=1000001",
    f"evm+http://127.0.0.1:8545?contract={ADDR}&gas=1",               # unknown parameter
    f"evm+http://127.0.0.1:8545?contract={ADDR}&contract={ADDR}",     # twice
    "ws://127.0.0.1:8545",                                            # no backend
])
def test_a_bad_settlement_url_is_refused_by_name(url: str) -> None:
    with pytest.raises(FaultproofError) as e:
        connect(url)
    assert e.value.reason is Reason.BAD_REQUEST


def test_connect_picks_the_backend_by_scheme() -> None:
    http = connect("http://127.0.0.1:8700")
    assert isinstance(http, LedgerClient)
    asyncio.run(http.close())
    chain = connect(f"evm+http://127.0.0.1:8545/?contract={ADDR.upper().replace('0X', '0x')}&confirmations=3")
    assert isinstance(chain, EvmSettlement) and isinstance(chain, Settlement)
    assert (chain.url.rpc_url, chain.url.confirmations, chain.url.sender) == ("http://127.0.0.1:8545/", 3, None)
    assert parse_evm_url(f"evm+https://node.example:443?contract={ADDR}").rpc_url == "https://node.example:443"
    bounded = parse_evm_url(f"evm+http://127.0.0.1:8545?contract={ADDR}&start_block=19000000&log_blocks=500")
    assert (bounded.start_block, bounded.log_blocks) == (19_000_000, 500)
    assert (chain.url.start_block, chain.url.log_blocks) == (0, 10_000)


def test_a_dead_node_or_a_wrong_address_reads_as_such(world: ChainWorld) -> None:
    dead = connect(f"evm+http://127.0.0.1:{free_port()}?contract={ADDR}")
    assert isinstance(dead, EvmSettlement)
    assert reason_of(dead.status()) is Reason.UNAVAILABLE
    nothing_there = connect(f"evm+{world.node.url}?contract={ADDR}")
    assert isinstance(nothing_there, EvmSettlement)
    assert reason_of(nothing_there.status()) is Reason.NOT_FOUND


def test_a_payout_through_the_interface_pays_once_and_followers_see_it_confirmed(world: ChainWorld) -> None:
    pool = world.new_pool()
    dev = world.new_device(pool)
    pid, terms = world.issue(pool, dev, COUNT)
    start = dev.record([90, 95, 10, 12], start_ts=world.now_ms() - 60 * SECOND)
    body, proof = world.window(pool, dev, pid, terms, start)
    qc = world.qc(pool, body)
    cid = body.body.claim_id
    base = f"evm+{world.node.url}?contract={pool.address}"

    async def scenario() -> None:
        poster = connect(f"{base}&from={world.poster}")
        other = connect(f"{base}&from={world.accounts[2]}&confirmations=2")  # another oracle, 2 blocks deep
        assert isinstance(poster, EvmSettlement) and isinstance(other, EvmSettlement)
        await other.events()  # history so far: deployment, funding, enrolment, policy
        assert other.paid(cid) is None

        # k-1 signatures: refused with the shared reason, nothing changes
        books = pool.balances()
        short = type(qc)(qc.body, qc.signatures[:-1])
        with pytest.raises(FaultproofError) as e:
            await poster.post_chain_qc(short, proof)
        assert e.value.reason is Reason.QC_INSUFFICIENT_SIGNATURES
        assert pool.balances() == books

        paid = await poster.post_chain_qc(qc, proof)
        assert (paid.paid, paid.existing) == (terms.amount, False) and paid.gas_used > 0
        after = pool.balances()
        assert after["paid"] == books["paid"] + terms.amount and after["token_balance"] == after["free"] + \
            after["premiums"] + after["locked"]

        # the Paid block has no confirmations yet: the 2-deep follower does not see it
        assert [n for n, _, _ in await other.events()] == [] and other.paid(cid) is None
        world.node.mine()
        world.node.mine()
        names = [n for n, _, _ in await other.events(wait=2.0)]
        assert "Paid" in names and other.paid(cid) == terms.amount  # the other oracle stops here

        # the other oracle posts the same QC anyway: the existing payout, nothing paid twice
        again = await other.post_chain_qc(qc, proof)
        assert (again.paid, again.existing) == (terms.amount, True)
        assert pool.balances()["paid"] == after["paid"]

        status = await other.state()
        assert status["settlement"] == "evm" and status["contract"] == pool.address
        assert status["confirmations"] == 2 and status["books"]["paid"] == after["paid"]

        # the Ed25519 ledger's forms are refused by name; a read-only URL cannot send
        for coro in (other.entries(), other.signed_head(), other.submit(ExpirePolicy(policy_id=pid))):
            with pytest.raises(FaultproofError) as e:
                await coro
            assert e.value.reason is Reason.BAD_REQUEST
        reader = connect(base)
        assert isinstance(reader, EvmSettlement)
        with pytest.raises(FaultproofError) as e:
            await reader.post_chain_qc(qc, proof)
        assert e.value.reason is Reason.BAD_REQUEST
        for s in (poster, other, reader):
            await s.close()

    asyncio.run(scenario())


def test_a_device_slash_certificate_through_the_interface_slashes_once(world: ChainWorld) -> None:
    """DESIGN §13: the certificate the oracles assemble (k members' DeviceSlash shares over the
    body `slash_body` derives, in any order) slashes the device through
    `EvmSettlement.report_device_slash`: its whole bond, the reporter's share rewarded; a second
    sender gets EVIDENCE_DUPLICATE (its cue to stop) and nothing moves; k-1 shares are refused.
    The reporter is in the signed body: the certificate copied (as from the mempool) and re-sent
    naming another reporter is EVIDENCE_INVALID (the signatures no longer recover), nothing moves,
    and the original still pays the reporter the k oracles certified."""
    from dataclasses import replace

    from faultproof.messages import BondHolder, FrameEquivocation, PostBond
    from oracle.device_slash import slash_body
    from tests.contracts.evmfix import oracle_key

    pool = world.new_pool()
    world.switch_econ_on(pool)
    dev = world.new_device(pool)
    pool.submit_admin(PostBond(holder_kind=BondHolder.DEVICE, holder_id=dev.device_id, amount=4_000))
    start = dev.record([90, 95], start_ts=world.now_ms() - 60 * SECOND)
    first = dev.frame(start)
    reporter = b"\x0e" * 32
    ev = FrameEquivocation(reporter=reporter, first=first,
                           second=first.frame.replace(ts_ms=first.frame.ts_ms + 1).sign(dev.identity))
    body = slash_body(0, ev)
    sigs = [oracle_key(i).sign_device_slash(body, pool.chain_id, pool.address) for i in (3, 0, 4, 1)]
    base = f"evm+{world.node.url}?contract={pool.address}"

    async def scenario() -> None:
        one, two = connect(f"{base}&from={world.poster}"), connect(f"{base}&from={world.accounts[2]}")
        assert isinstance(one, EvmSettlement) and isinstance(two, EvmSettlement)
        books = pool.balances()
        with pytest.raises(FaultproofError) as short:
            await one.report_device_slash(body, sigs[:3])
        assert short.value.reason is Reason.EVIDENCE_INVALID and pool.balances() == books
        # a front-runner's copy of the certificate naming itself: refused, nothing moves
        thief = b"\x7f" * 32
        with pytest.raises(FaultproofError) as stolen:
            await two.report_device_slash(replace(body, reporter=thief), sigs)
        assert stolen.value.reason is Reason.EVIDENCE_INVALID and pool.balances() == books
        assert pool.econ_state(BondHolder.DEVICE, dev.device_id, thief)["bond"] == 4_000
        sent = await one.report_device_slash(body, sigs)
        assert sent.gas_used > 0 and len(sent.tx_hash) == 32
        print(f"\nevm device slash gas (k=4 of 5 signatures): {sent.gas_used}")
        econ = pool.econ_state(BondHolder.DEVICE, dev.device_id, reporter)
        assert (econ["bond"], econ["reward"]) == (0, 1_000)
        assert pool.econ_state(BondHolder.DEVICE, dev.device_id, thief)["reward"] == 0
        after = pool.balances()
        assert after["free"] == books["free"] + 3_000 and after["rewards"] == books["rewards"] + 1_000
        with pytest.raises(FaultproofError) as again:
            await two.report_device_slash(body, sigs)
        assert again.value.reason is Reason.EVIDENCE_DUPLICATE and pool.balances() == after
        for s in (one, two):
            await s.close()

    asyncio.run(scenario())
