"""A ledger with the economic rules on (DESIGN §14), for the pure rule tests, the durable rule tests
and the econ CLI tests: five bonded oracles (k = 4), three devices under three agents, a funded
pool, and builders for evidence and corroborated claims.

    w = EconWorld.build()                 # state at height ~20, params set
    pid = w.issue(w.single_policy(bond=150))
    w.apply(w.vote_equivocation(0))       # slashes oracle 0

Everything is deterministic (seeded identities, fixed times)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from faultproof.errors import Reason
from faultproof.identity import Identity
from faultproof.messages import (
    Approve,
    BondHolder,
    ContradictingApprove,
    CorroboratingWindow,
    Deposit,
    EconParams,
    EconPolicy,
    EnrolAgent,
    Frame,
    FrameEquivocation,
    GroupPayoutBody,
    GroupQuorumCertificate,
    IssuePolicy,
    Message,
    PayoutBody,
    PostBond,
    RejectBody,
    SignedAdminTx,
    VoteEquivocation,
    group_claim_id,
    policy_id,
)
from ledger.state import Effect, LedgerState, build_payout_body
from tests.ledger.helpers import (
    DAY,
    HOUR,
    SECOND,
    T0,
    LedgerKeys,
    enrol,
    fake_circuit,
    identity,
    make_ledger,
    policy_terms,
)

ORACLE_BOND = 1_000
PARAMS = EconParams(min_oracle_bond=ORACLE_BOND, max_staging_cost=500, reporter_share_bps=2_000,
                    unlock_delay_ms=30 * DAY)
REPORTER = b"\x5e" * 32
N = 16


@dataclass
class EconWorld:
    keys: LedgerKeys
    state: LedgerState
    devices: list[Identity]
    agents: list[Identity]
    circuit_id: bytes
    now: int = T0
    setup_txs: list[Message] = field(default_factory=list)

    @classmethod
    def build(cls, *, params: EconParams = PARAMS, deposit: int = 100_000, device_bonds: Sequence[int] = (0, 0, 0),
              oracle_bond: int = ORACLE_BOND) -> EconWorld:
        keys = make_ledger(5)  # k = 4
        devices = [identity(f"econ-device-{i}") for i in range(3)]
        agents = [identity(f"econ-agent-{i}") for i in range(3)]
        circuit = fake_circuit(N)
        txs: list[Message] = [keys.sign(Deposit(amount=deposit)), keys.sign(circuit)]
        txs += [keys.sign(enrol(d)) for d in devices]
        txs += [keys.sign(EnrolAgent(agent_id=a.public_key)) for a in agents]
        txs += [keys.sign(PostBond(holder_kind=BondHolder.ORACLE, holder_id=o.public_key, amount=oracle_bond))
                for o in keys.oracles]
        txs += [keys.sign(PostBond(holder_kind=BondHolder.DEVICE, holder_id=d.public_key, amount=b))
                for d, b in zip(devices, device_bonds, strict=True) if b]
        txs.append(keys.sign(params))
        state = keys.new_state()
        w = cls(keys, state, devices, agents, circuit.circuit_id, setup_txs=txs)
        for tx in txs:
            w.apply(tx)
        return w

    # -- applying --
    def apply(self, tx: Message, at: int | None = None) -> Effect:
        if at is not None:
            self.now = at
        effect, _ = self.state.apply(tx, self.now)
        return effect

    def admin(self, args: Message) -> SignedAdminTx:
        return self.keys.sign(args)

    def bond(self, kind: BondHolder, who: bytes, amount: int) -> SignedAdminTx:
        return self.admin(PostBond(holder_kind=kind, holder_id=who, amount=amount))

    # -- policies --
    def terms(self, device: int = 0, **kw: int) -> IssuePolicy:
        kw.setdefault("coverage", 10_000)
        kw.setdefault("amount", 100)
        return policy_terms(self.devices[device].public_key, self.circuit_id, **kw)

    def single_policy(self, device: int = 0, staging: int = 0, **kw: int) -> EconPolicy:
        return EconPolicy(terms=self.terms(device, **kw), staging_cost=staging, group=(), min_proofs=1,
                          overlap_tolerance_ms=0)

    def group_policy(self, m: int = 2, staging: int = 0, tolerance_ms: int = 0, **kw: int) -> EconPolicy:
        return EconPolicy(terms=self.terms(0, **kw), staging_cost=staging,
                          group=tuple(d.public_key for d in self.devices), min_proofs=m,
                          overlap_tolerance_ms=tolerance_ms)

    def issue(self, args: Message) -> bytes:
        tx = self.admin(args)
        self.apply(tx)
        return policy_id(tx.tx)

    # -- evidence --
    def incident(self, pid: bytes, i: int = 0) -> PayoutBody:
        """A plain incident body on single-device policy `pid` (incident i: period i, 1 h in)."""
        t = self.state.policies[pid].terms
        end = t.start_ms + i * t.period_ms + HOUR
        return build_payout_body(self.state, pid, 0, 1000 * i, 1000 * i + N, end - 10 * SECOND, end)

    def vote_equivocation(self, oracle: int, pid: bytes, *, kind: str = "approve-approve") -> VoteEquivocation:
        o = self.keys.oracles[oracle]
        body = self.incident(pid)
        first: Approve = body.approve(o)
        if kind == "approve-reject":
            second: Message = RejectBody(oracle_id=o.public_key, ledger_id=body.ledger_id,
                                         oracle_set_epoch=body.oracle_set_epoch, claim_id=body.claim_id,
                                         reason=Reason.WINDOW_OVERLAP).sign(o)
        else:
            second = body.replace(end_ts=body.end_ts + 1).approve(o)
        return VoteEquivocation(reporter=REPORTER, first=first, second=second)  # type: ignore[arg-type]

    def contradicting_approve(self, oracle: int, pid: bytes, **change: object) -> ContradictingApprove:
        body = self.incident(pid).replace(**change)
        return ContradictingApprove(reporter=REPORTER, approve=body.approve(self.keys.oracles[oracle]))

    def double_frame(self, device: int, *, seq: int = 5, ts: int | None = None) -> FrameEquivocation:
        d = self.devices[device]
        ts = self.now if ts is None else ts
        a = Frame(device_id=d.public_key, epoch=0, seq=seq, ts_ms=ts, chain=b"\x01" * 32)
        b = a.replace(chain=b"\x02" * 32)
        return FrameEquivocation(reporter=REPORTER, first=a.sign(d), second=b.sign(d))

    # -- corroborated claims --
    def window(self, device: int, agent: int, start_ts: int, end_ts: int, start_seq: int = 0) -> CorroboratingWindow:
        return CorroboratingWindow(device_id=self.devices[device].public_key, agent_id=self.agents[agent].public_key,
                                   epoch=0, start_seq=start_seq, end_seq=start_seq + N, start_ts=start_ts,
                                   end_ts=end_ts)

    def group_qc(self, pid: bytes, windows: Sequence[CorroboratingWindow],
                 signers: Sequence[int] | None = None) -> GroupQuorumCertificate:
        t = self.state.policies[pid].terms
        ws = tuple(sorted(windows, key=lambda w: w.device_id))
        body = GroupPayoutBody(ledger_id=self.keys.ledger_id, oracle_set_epoch=self.state.oracle_set.epoch,
                               claim_id=group_claim_id(pid, ws), policy_id=pid, windows=ws,
                               circuit_id=t.circuit_id, beneficiary=t.beneficiary, amount=t.amount)
        who = [self.keys.oracles[i] for i in (signers if signers is not None else range(self.keys.threshold))]
        return GroupQuorumCertificate(body=body, signatures=tuple(sorted((body.sign(o) for o in who),
                                                                         key=lambda s: s.oracle_id)))

    def genesis_members(self) -> tuple[bytes, ...]:
        return tuple(o.public_key for o in self.keys.oracles)
