"""A real chain for the contract tests, the conformance suite and benchmarks/bench_evm.py.

    world = ChainWorld.start(tmp_path)          # anvil on 127.0.0.1 (free port), TestToken, the
                                                # n=4 circuit's snarkjs verifier, 5 oracles (k=4)
    pool = world.new_pool()                     # a fresh InsurancePool, circuit registered,
                                                # funded; its own ledger_id
    dev = world.new_device(pool)                # DeviceSim enrolled on that pool
    pid, terms = world.issue(pool, dev, TriggerParams.count(80, 2))
    start = dev.record([90, 95, 10, 12], start_ts=world.now_ms() - 30_000)
    body, proof = world.window(pool, dev, pid, terms, start)     # ChainBody + real Groth16 proof
    result = pool.post_qc(world.qc(pool, body), proof, world.poster)
    world.stop()

Everything is real: anvil from contracts/node_modules, solc-js compiled contracts, web3.py, and
Groth16 proofs from faultproof.zk. What this file must never do: decide a rule (the contract
does), or leave anvil running after `stop()`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from web3 import Web3

from faultproof.chain import chain_anchor
from faultproof.identity import Identity
from faultproof.messages import (
    BondHolder,
    Deposit,
    EconParams,
    IssuePolicy,
    PayoutBody,
    PostBond,
    RegisterCircuit,
    claim_id,
)
from faultproof.zk import BuiltCircuit, TriggerParams, build, export_vkey, prove
from ledger.evm.node import Anvil
from ledger.evm.pool import ChainQc, EvmPool, beneficiary_of
from ledger.evm.typed import ChainBody, ChainKey
from tests.netfix import DAY, HOUR, DeviceSim, params_of

N = 4  # the window size whose circuit builds fastest (cached)
FUNDS = 10**12


def oracle_identity(i: int) -> Identity:
    return Identity.from_seed(hashlib.sha256(f"evmfix/oracle-{i}".encode()).digest())


def oracle_key(i: int) -> ChainKey:
    return ChainKey.from_seed(oracle_identity(i).seed)


@dataclass
class ChainWorld:
    node: Anvil
    w3: Web3
    circuit: BuiltCircuit
    vkey: bytes
    verifier: str
    token: Any
    accounts: list[str]
    n_oracles: int = 5
    threshold: int = 4
    _proofs: dict[tuple[bytes, int, tuple[int, ...]], bytes] = field(default_factory=dict)
    last_proof: bytes = b""  # the last proof made: stands in where a refusal comes before the proof

    @classmethod
    def start(cls, root: Path, *, timestamp_s: int | None = None) -> ChainWorld:
        circuit = build(N)  # before anvil: the cache may need a build
        node = Anvil.start(root, timestamp_s=timestamp_s)
        try:
            w3 = Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 30}))
            accounts = [str(a) for a in w3.eth.accounts]
            token = EvmPool.deploy_token(w3, accounts[0])
            vkey = export_vkey(circuit)
            world = cls(node, w3, circuit, vkey, "", token, accounts)
            world.verifier = world._deploy_verifier()
            return world
        except BaseException:
            node.stop()
            raise

    def _deploy_verifier(self) -> str:
        from ledger.evm import build as evm_build
        art = evm_build.verifier(self.vkey)
        tx = self.w3.eth.contract(abi=art.abi, bytecode=art.bytecode).constructor().transact({"from": self.admin})
        return str(self.w3.eth.wait_for_transaction_receipt(tx)["contractAddress"])

    def stop(self) -> None:
        self.node.stop()

    @property
    def admin(self) -> str:
        return self.accounts[0]

    @property
    def poster(self) -> str:
        return self.accounts[1]

    @property
    def payee(self) -> str:
        return self.accounts[9]

    @property
    def beneficiary(self) -> bytes:
        return beneficiary_of(self.payee)

    def now_ms(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"]) * 1000

    def set_time(self, ms: int) -> None:
        """The next block's time (seconds on chain: ms is rounded down)."""
        self.node.set_next_timestamp(ms // 1000)

    @property
    def circuit_id(self) -> bytes:
        return RegisterCircuit(vkey=self.vkey, n=N, layout_version=1, transcript_hash=bytes(32),
                               production=0).circuit_id

    def new_pool(self, *, ledger_id: bytes | None = None, members: Sequence[int] = range(5), threshold: int = 4,
                 development: bool = True, max_skew_ms: int = 5000, rotation_grace_ms: int = HOUR,
                 funds: int = FUNDS, token: Any = None, register: bool = True) -> EvmPool:
        token = token if token is not None else self.token
        pool = EvmPool.deploy(self.w3, admin=self.admin, token=token.address,
                              ledger_id=ledger_id or os.urandom(32),
                              oracles=[oracle_key(i).binding(oracle_identity(i)) for i in members],
                              threshold=threshold, development=development, max_skew_ms=max_skew_ms,
                              rotation_grace_ms=rotation_grace_ms)
        if register:
            pool.register_circuit(self.circuit_id, self.vkey, N, bytes(32), False, verifier=self.verifier)
        if funds:
            self.mint(token, self.admin, funds)
            pool.submit_admin(Deposit(amount=funds))
        return pool

    def switch_econ_on(self, pool: EvmPool) -> None:
        """The §14 rules on `pool`: the admin funded, every oracle of the set bonded (1,000 each,
        the minimum), a fourth of a slashed bond to its reporter, bonds locked for 14 days."""
        self.mint(pool.token, self.admin, 10**9)
        for i in range(self.n_oracles):
            pool.submit_admin(PostBond(holder_kind=BondHolder.ORACLE, holder_id=oracle_identity(i).public_key,
                                       amount=1_000))
        pool.submit_admin(EconParams(min_oracle_bond=1_000, max_staging_cost=500, reporter_share_bps=2_500,
                                     unlock_delay_ms=14 * DAY))

    def mint(self, token: Any, to: str, amount: int) -> None:
        self.w3.eth.wait_for_transaction_receipt(token.functions.mint(to, amount).transact({"from": self.admin}))

    def new_device(self, pool: EvmPool, label: str | None = None, anchor_ts: int | None = None) -> DeviceSim:
        dev = DeviceSim.create(label, anchor_ts=anchor_ts if anchor_ts is not None else self.now_ms() - DAY)
        assert dev.chains[0] == chain_anchor(dev.device_id, 0)
        pool.submit_admin(dev.enrol_tx())
        return dev

    def terms(self, dev: DeviceSim, params: TriggerParams, **overrides: int) -> IssuePolicy:
        now = self.now_ms()
        kind, T, K, lo, hi, G = params.as_tuple()
        base: dict[str, Any] = dict(
            device_id=dev.device_id, beneficiary=self.beneficiary, circuit_id=self.circuit_id, kind=kind,
            threshold=T, count=K, lo=lo, hi=hi, gap_ms=G, coverage=1_000, amount=100, premium=10,
            start_ms=now - 2 * DAY, end_ms=now + 30 * DAY, period_ms=DAY, claim_window_ms=7 * DAY)
        base.update(overrides)
        return IssuePolicy(**base)

    def issue(self, pool: EvmPool, dev: DeviceSim, params: TriggerParams, **overrides: int) -> tuple[bytes, IssuePolicy]:
        terms = self.terms(dev, params, **overrides)
        self.mint(pool.token, self.admin, terms.premium)
        return pool.issue_policy(terms), terms

    def proof(self, dev: DeviceSim, start_seq: int, terms: IssuePolicy) -> bytes:
        key = (dev.device_id, start_seq, params_of(terms).as_tuple())
        if key not in self._proofs:
            self._proofs[key] = prove(self.circuit, dev.witness(start_seq, N, params_of(terms)))
        self.last_proof = self._proofs[key]
        return self.last_proof

    def body(self, ledger_id: bytes, dev: DeviceSim, pid: bytes, terms: IssuePolicy, start_seq: int,
             oracle_set_epoch: int = 0) -> ChainBody:
        end_seq = start_seq + N
        body = PayoutBody(ledger_id=ledger_id, oracle_set_epoch=oracle_set_epoch,
                          claim_id=claim_id(pid, dev.device_id, dev.epoch, start_seq, end_seq), policy_id=pid,
                          device_id=dev.device_id, epoch=dev.epoch, start_seq=start_seq, end_seq=end_seq,
                          start_ts=dev.timestamps[start_seq], end_ts=dev.timestamps[end_seq],
                          circuit_id=terms.circuit_id, beneficiary=terms.beneficiary, amount=terms.amount)
        return ChainBody(body, dev.chains[start_seq], dev.chains[end_seq])

    def window(self, pool: EvmPool, dev: DeviceSim, pid: bytes, terms: IssuePolicy, start_seq: int,
               oracle_set_epoch: int = 0) -> tuple[ChainBody, bytes]:
        ledger_id = bytes(pool.contract.functions.ledgerId().call())
        return (self.body(ledger_id, dev, pid, terms, start_seq, oracle_set_epoch),
                self.proof(dev, start_seq, terms))

    def qc(self, pool: EvmPool, body: ChainBody, signers: Sequence[int] | None = None, *,
           chain_id: int | None = None, contract: str | None = None) -> ChainQc:
        """A QC over `body` by oracle indexes `signers` (default: the first k), signed for this pool
        unless another chain id or contract is given (an EIP-712 domain test)."""
        signers = list(signers) if signers is not None else list(range(self.threshold))
        cid = chain_id if chain_id is not None else pool.chain_id
        addr = contract if contract is not None else pool.address
        return ChainQc(body, tuple(oracle_key(i).sign_body(body, cid, addr) for i in signers))

    def token_balance(self, token: Any, who: str) -> int:
        return int(token.functions.balanceOf(who).call())
