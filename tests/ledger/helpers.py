"""Reusable builders for ledger tests (and the oracle, agent and devnet suites): a genesis with N
oracle identities, signed admin transactions with automatic nonces, a fake circuit, a device, a
policy, payout bodies and quorum certificates.

    from tests.ledger.helpers import make_ledger, Scenario
    keys = make_ledger(n=5)                      # k defaults to ⌊2n/3⌋+1
    sc = Scenario.standard(keys)                 # deposit, fake circuit, device, one policy
    state = sc.set_up()                          # a LedgerState with the setup applied
    qc = keys.qc(sc.body(0))                     # the first k oracles sign incident 0

Everything is deterministic given `seed` (identities from seeded hashes), so failures reproduce.
The builders are pure; `running_ledger` / `serve_ledger` start a real LedgerService (SQLite in a
temporary directory, manual clock) and, for the latter, its HTTP API on an ephemeral port.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from faultproof.chain import chain_anchor, chain_to_bytes, enc
from faultproof.errors import FaultproofError, Reason
from faultproof.identity import Identity
from faultproof.merkle import merkle_root
from faultproof.messages import (
    AdminTx,
    AnchorBody,
    BondHolder,
    Deposit,
    DeviceHead,
    EconPolicy,
    EnrolAgent,
    EnrolDevice,
    Genesis,
    IssuePolicy,
    Message,
    PayoutBody,
    PostBond,
    QuorumCertificate,
    RegisterCircuit,
    SignedAdminTx,
    SignedAnchor,
    SignedEntry,
    TriggerKind,
    Unbond,
    UnbondStep,
    Withdraw,
    claim_id,
    policy_id,
)
from ledger.http import make_app
from ledger.service import Accepted, LedgerService
from ledger.state import LedgerState, default_threshold

SECOND = 1000
HOUR = 3600 * SECOND
DAY = 24 * HOUR
T0 = 1_700_000_000_000  # a fixed ledger start time (ms); tests drive the ledger clock from here


def identity(label: str, seed: int = 0) -> Identity:
    """A deterministic identity for `label` (e.g. "oracle-3", "admin", "device-7")."""
    return Identity.from_seed(hashlib.sha256(f"faultproof-test/{seed}/{label}".encode()).digest())


@dataclass
class LedgerKeys:
    """The keys and genesis of one test ledger, with an admin-nonce counter."""

    ledger_key: Identity
    admin: Identity
    oracles: list[Identity]
    genesis: Genesis
    next_nonce: int = 1

    @property
    def ledger_id(self) -> bytes:
        return self.genesis.ledger_id

    @property
    def threshold(self) -> int:
        return self.genesis.threshold

    def sign(self, args: Message, *, nonce: int | None = None, admin: Identity | None = None,
             ledger_id: bytes | None = None) -> SignedAdminTx:
        """An admin tx for `args`. Without `nonce`, takes the next one and advances the counter."""
        if nonce is None:
            nonce = self.next_nonce
            self.next_nonce += 1
        tx = AdminTx.make(ledger_id or self.ledger_id, nonce, args)
        return tx.sign(admin or self.admin)

    def genesis_entry(self) -> SignedEntry:
        state = LedgerState(self.genesis)
        return state.genesis_entry().sign(self.ledger_key)

    def new_state(self) -> LedgerState:
        """A replay view at height 0 (what an oracle starts from)."""
        return LedgerState.from_genesis_entry(self.genesis_entry())

    def qc(self, body: PayoutBody, signers: Sequence[Identity] | None = None) -> QuorumCertificate:
        """A QC over `body` by `signers` (default: the first k oracles of the genesis set)."""
        signers = list(signers) if signers is not None else self.oracles[: self.threshold]
        return QuorumCertificate.from_approvals([body.approve(o) for o in signers])


def make_ledger(n: int = 5, k: int | None = None, *, development: bool = True, created_ms: int = T0,
                max_skew_ms: int = 5 * SECOND, rotation_grace_ms: int = HOUR, seed: int = 0,
                max_backdate_ms: int = 0) -> LedgerKeys:
    """A genesis with n oracle identities and k = ⌊2n/3⌋+1 unless given."""
    oracles = [identity(f"oracle-{i}", seed) for i in range(n)]
    ledger_key, admin = identity("ledger", seed), identity("admin", seed)
    genesis = Genesis(
        nonce=hashlib.sha256(f"genesis-nonce/{seed}".encode()).digest(), created_ms=created_ms,
        ledger_key=ledger_key.public_key, admin=admin.public_key,
        oracles=tuple(o.public_key for o in oracles),
        threshold=default_threshold(n) if k is None else k, development=int(development),
        max_skew_ms=max_skew_ms, rotation_grace_ms=rotation_grace_ms, max_backdate_ms=max_backdate_ms)
    return LedgerKeys(ledger_key, admin, oracles, genesis)


def fake_circuit(n: int = 16, *, production: bool = False, tag: bytes = b"") -> RegisterCircuit:
    """A circuit registration with arbitrary key bytes: the ledger checks QCs, never proofs."""
    return RegisterCircuit(vkey=b"fake-vkey/" + tag + n.to_bytes(4, "big"), n=n, layout_version=1,
                           transcript_hash=hashlib.sha256(b"ceremony" + tag).digest() if production else bytes(32),
                           production=int(production))


def enrol(device: Identity, epoch: int = 0, firmware: bytes = b"fw-1") -> EnrolDevice:
    return EnrolDevice(device_id=device.public_key, epoch=epoch,
                       anchor=chain_to_bytes(chain_anchor(device.public_key, epoch)),
                       firmware_hash=hashlib.sha256(firmware).digest())


def policy_terms(device_id: bytes, circuit_id: bytes, *, beneficiary: bytes = b"\xbe" * 32,
                 kind: int = TriggerKind.COUNT_ABOVE, threshold: int | None = None, count: int = 3,
                 lo: int = 0, hi: int = 0, gap_ms: int = 0, coverage: int = 1_000, amount: int = 100,
                 premium: int = 10, start_ms: int = T0, end_ms: int = T0 + 30 * DAY,
                 period_ms: int = DAY, claim_window_ms: int = 7 * DAY) -> IssuePolicy:
    """Policy terms with sensible defaults (count above 80 at least 3 times, 30 days, daily period)."""
    return IssuePolicy(device_id=device_id, beneficiary=beneficiary, circuit_id=circuit_id, kind=int(kind),
                       threshold=enc(80) if threshold is None else threshold, count=count, lo=lo, hi=hi,
                       gap_ms=gap_ms, coverage=coverage, amount=amount, premium=premium, start_ms=start_ms,
                       end_ms=end_ms, period_ms=period_ms, claim_window_ms=claim_window_ms)


def payout_body(ledger_id: bytes, pid: bytes, terms: IssuePolicy, *, n: int, start_seq: int, start_ts: int,
                end_ts: int, epoch: int = 0, oracle_set_epoch: int = 0) -> PayoutBody:
    """The body honest oracles build for the window [start_seq, start_seq + n] of policy `pid`."""
    end_seq = start_seq + n
    return PayoutBody(ledger_id=ledger_id, oracle_set_epoch=oracle_set_epoch,
                      claim_id=claim_id(pid, terms.device_id, epoch, start_seq, end_seq), policy_id=pid,
                      device_id=terms.device_id, epoch=epoch, start_seq=start_seq, end_seq=end_seq,
                      start_ts=start_ts, end_ts=end_ts, circuit_id=terms.circuit_id,
                      beneficiary=terms.beneficiary, amount=terms.amount)


@dataclass
class Scenario:
    """One funded pool with one circuit, one device and one policy, plus incident windows."""

    keys: LedgerKeys
    circuit: RegisterCircuit
    device: Identity
    terms: IssuePolicy
    setup_txs: list[SignedAdminTx] = field(default_factory=list)
    policy_id: bytes = b""
    now: int = T0  # a ledger time at which the setup applies

    @classmethod
    def standard(cls, keys: LedgerKeys, *, deposit: int = 10_000, n: int = 16, device_label: str = "device-0",
                 **terms: int) -> Scenario:
        """Deposit, a fake development circuit, an enrolled device and a policy (terms overridable)."""
        circuit = fake_circuit(n)
        device = identity(device_label)
        policy = policy_terms(device.public_key, circuit.circuit_id, **terms)
        txs = [keys.sign(Deposit(amount=deposit)), keys.sign(circuit), keys.sign(enrol(device))]
        issue = keys.sign(policy)
        txs.append(issue)
        return cls(keys, circuit, device, policy, txs, policy_id(issue.tx), now=T0)

    def set_up(self) -> LedgerState:
        """A fresh replica of the keys' ledger with the setup applied at `now`."""
        state = self.keys.new_state()
        for tx in self.setup_txs:
            state.apply(tx, self.now)
        return state

    def set_up_with_agent(self, agent_label: str = "agent") -> tuple[LedgerState, Identity]:
        """`set_up`, then an agent enrolled at `now` (one that anchors the device's heads)."""
        state = self.set_up()
        agent = identity(agent_label)
        state.apply(self.keys.sign(EnrolAgent(agent_id=agent.public_key)), self.now)
        return state, agent

    def more_policy(self, device_label: str, **terms: int) -> tuple[list[SignedAdminTx], bytes, IssuePolicy]:
        """Txs enrolling another device and issuing it a policy on the same circuit."""
        device = identity(device_label)
        policy = policy_terms(device.public_key, self.circuit.circuit_id, **terms)
        enrol_tx, issue = self.keys.sign(enrol(device)), self.keys.sign(policy)
        return [enrol_tx, issue], policy_id(issue.tx), policy

    def body(self, i: int, *, window_ms: int = 10 * SECOND, **overrides: Any) -> PayoutBody:
        """Incident i: a window of n readings ending i periods plus one hour into the term, so
        incidents never overlap and fall in distinct periods."""
        n = self.circuit.n
        end_ts = self.terms.start_ms + i * self.terms.period_ms + HOUR
        body = payout_body(self.keys.ledger_id, self.policy_id, self.terms, n=n, start_seq=1000 * i,
                           start_ts=end_ts - window_ms, end_ts=end_ts)
        return body.replace(**overrides) if overrides else body

    def time_after(self, i: int) -> int:
        """A ledger time at which incident i is claimable (just after its window ended)."""
        return self.body(i).end_ts + SECOND


def chain_value(label: str) -> bytes:
    """An arbitrary valid chain value (a field element) for `label`."""
    return (int.from_bytes(hashlib.sha256(label.encode()).digest(), "big") >> 8).to_bytes(32, "big")


def head_of(body: PayoutBody) -> DeviceHead:
    """The device head at a window's end, as the agent would anchor it."""
    return DeviceHead(device_id=body.device_id, epoch=body.epoch, seq=body.end_seq, ts_ms=body.end_ts,
                      chain=body.end_chain)


def anchor(keys: LedgerKeys, agent: Identity, round_: int, heads: Sequence[DeviceHead]) -> SignedAnchor:
    """An agent's signed anchor over `heads` (sorted as the rules require)."""
    heads = sorted(heads, key=lambda h: (h.device_id, h.epoch, h.seq))
    root = merkle_root([h.leaf_hash for h in heads])
    return AnchorBody(ledger_id=keys.ledger_id, agent_id=agent.public_key, round=round_, heads=tuple(heads),
                      root=root).sign(agent)


def claim_for(body: PayoutBody) -> bytes:
    return claim_id(body.policy_id, body.device_id, body.epoch, body.start_seq, body.end_seq)


# --------------------------------------------------------------------------- running ledgers


class ManualClock:
    """A ledger clock the test moves by hand (ms)."""

    def __init__(self, now_ms: int = T0) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms

    def set(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def advance(self, ms: int) -> None:
        self.now_ms += ms


# Every reason a ledger test saw the ledger refuse with (the meta-test checks coverage).
PRODUCED_REASONS: set[Reason] = set()


def _expected_external_flow(tx: Message, state: LedgerState | None = None) -> int:
    if isinstance(tx, SignedAdminTx):
        args = tx.tx.args
        if isinstance(args, Deposit):
            return args.amount
        if isinstance(args, Withdraw):
            return -args.amount
        if isinstance(args, IssuePolicy):
            return args.premium
        # economic security (§14): bonds come from outside and a released bond goes back out
        if isinstance(args, EconPolicy):
            return args.terms.premium
        if isinstance(args, PostBond):
            return args.amount
        if isinstance(args, Unbond) and args.step == UnbondStep.RELEASE and state is not None:
            bond = state.econ.bond(BondHolder(args.holder_kind), args.holder_id)
            return -(bond.amount if bond is not None else 0)
    return 0


@dataclass
class Snapshot:
    files: bytes
    height: int
    head_hash: bytes
    balances: dict[str, int]


class LedgerEnv:
    """A running LedgerService on a temporary SQLite file with a manual clock, plus assertions
    that every accepted transaction keeps the money invariants and every refusal changes nothing."""

    def __init__(self, keys: LedgerKeys, service: LedgerService, clock: ManualClock, db: Path) -> None:
        self.keys, self.service, self.clock, self.db = keys, service, clock, db

    @property
    def state(self) -> LedgerState:
        return self.service.state

    def snapshot(self) -> Snapshot:
        files = b"".join(p.read_bytes() for p in (self.db, self.db.with_name(self.db.name + "-wal")) if p.exists())
        return Snapshot(files, self.service.committed_height, self.service.committed_hash,
                        dict(self.state.balances))

    def check_invariants(self) -> None:
        balances = self.state.balances
        assert sum(balances.values()) == 0, f"accounts do not sum to zero: {balances}"
        assert self.service.store.balances() == balances, "cached balances differ from the state"

    async def ok(self, tx: Message) -> Accepted:
        before = self.state.pool_total
        expected = _expected_external_flow(tx, self.state)
        accepted = await self.service.submit(tx)
        self.check_invariants()
        if not accepted.existing:
            assert self.state.pool_total - before == expected == accepted.effect.external_flow
        else:
            assert self.state.pool_total == before
        return accepted

    async def ok_all(self, txs: Sequence[Message]) -> list[Accepted]:
        """Submit concurrently (one group commit) in order; all must be accepted."""
        before = self.state.pool_total
        results = await asyncio.gather(*(self.service.submit(tx) for tx in txs))
        self.check_invariants()
        assert self.state.pool_total - before == sum(_expected_external_flow(tx) for tx in txs)
        return list(results)

    async def refused(self, tx: Message, reason: Reason) -> FaultproofError:
        """The tx must be refused with `reason`, and head, balances and files stay as they were."""
        before = self.snapshot()
        try:
            await self.service.submit(tx)
        except FaultproofError as e:
            err = e
        else:
            raise AssertionError(f"expected {reason.value}, the ledger accepted the transaction")
        assert err.reason is reason, f"expected {reason.value}, got {err.reason.value}: {err.message}"
        after = self.snapshot()
        assert after.height == before.height and after.head_hash == before.head_hash
        assert after.balances == before.balances
        assert after.files == before.files, "a refused transaction changed the database file"
        self.check_invariants()
        PRODUCED_REASONS.add(reason)
        return err


def write_ledger(directory: Path, keys: LedgerKeys, txs: Sequence[Message], **service_kw: Any) -> tuple[Path, Path]:
    """The files a separate `faultproof ledger serve` process needs, in `directory`: a ledger
    database holding `txs` and the ledger key file. Returns (db, key). The txs are submitted in
    order, up to 512 at a time (group commits: a benchmark's many thousands), to a LedgerService
    that is closed after; `service_kw` go to LedgerService.create (its clock, synchronous=...)."""
    db = directory / "ledger.db"

    async def create() -> None:
        service = LedgerService.create(db, keys.genesis, keys.ledger_key, **service_kw)
        try:
            async with service.running():
                for start in range(0, len(txs), 512):
                    await asyncio.gather(*(service.submit(tx) for tx in txs[start:start + 512]))
        finally:
            service.close()

    asyncio.run(create())
    key = directory / "ledger.key"
    keys.ledger_key.save(key)
    return db, key


@contextlib.asynccontextmanager
async def running_ledger(directory: Path, keys: LedgerKeys, *, clock: ManualClock | None = None,
                         synchronous: str = "FULL", max_batch: int = 1024,
                         check_processes: int = 0) -> AsyncIterator[LedgerEnv]:
    """A LedgerService with a fresh database in `directory`, running for the block."""
    clock = clock or ManualClock()
    db = directory / "ledger.db"
    service = LedgerService.create(db, keys.genesis, keys.ledger_key, clock=clock, synchronous=synchronous,
                                   max_batch=max_batch, check_processes=check_processes)
    try:
        async with service.running():
            yield LedgerEnv(keys, service, clock, db)
    finally:
        service.close()


@contextlib.asynccontextmanager
async def serve_ledger(directory: Path, keys: LedgerKeys, *, clock: ManualClock | None = None,
                       check_processes: int = 0, **app_kw: Any) -> AsyncIterator[tuple[LedgerEnv, str]]:
    """The same, behind the real HTTP API on 127.0.0.1 (ephemeral port): yields (env, base_url)."""
    async with running_ledger(directory, keys, clock=clock, check_processes=check_processes) as env:
        app = make_app(env.service, run_service=False, **app_kw)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            host, port = runner.addresses[0][:2]
            yield env, f"http://{host}:{port}"
        finally:
            await runner.cleanup()
