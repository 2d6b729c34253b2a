"""One small adapter per settlement backend, so one scenario runs against both (issue 16).

- `RulesBackend`: the pure rules of ledger/state.py, which the SQLite service applies to every
  transaction (admin transactions signed by the Ed25519 admin key, QCs by Ed25519 oracles).
- `ChainBackend`: the InsurancePool contract on anvil (admin transactions sent by the admin
  account, QCs as EIP-712 ECDSA signatures of the same oracles' chain keys, with a real proof).

Both take the same operations at the same ledger time and return an `Outcome`:
("ok", 0), ("paid", amount), ("existing", amount) or ("refused", reason code). Oracle i is the
same oracle on both (Ed25519 `oracle_identity(i)`, chain key `oracle_key(i)`); oracle 7 is never
in a set. What this file must never do: decide a rule itself; it only translates.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from faultproof.chain import chain_to_bytes
from faultproof.errors import FaultproofError
from faultproof.identity import Identity
from faultproof.messages import (
    AdminTx,
    ContradictingApprove,
    CorroboratingWindow,
    EconPolicy,
    ExpirePolicy,
    FrameEquivocation,
    Genesis,
    GroupPayoutBody,
    GroupQuorumCertificate,
    IssuePolicy,
    Message,
    PayoutBody,
    QcSignature,
    QuorumCertificate,
    RegisterCircuit,
    SignedFrame,
    VoteEquivocation,
    claim_id,
    group_claim_id,
)
from ledger.economics import REWARDS
from ledger.evm.pool import ChainQc, EvmPool, EvmRefused
from ledger.evm.typed import ChainBody, ChainGroupBody, DeviceSlashBody
from ledger.state import FREE, LOCKED_PREFIX, PAID, PREMIUMS, LedgerState
from tests.contracts.evmfix import ChainWorld, N, oracle_identity, oracle_key
from tests.netfix import DeviceSim

Outcome = tuple[str, int | str]
OK: Outcome = ("ok", 0)
HOUR_MS = 3_600_000
# The scenarios write windows up to 40 days in the past: the rules side must allow such terms. The
# contract does not implement S1's `term_starts_in_past` (DESIGN §13 lists the ledger rules a chain
# does not enforce), so the suite compares only what both implement.
BACKDATE_MS = 60 * 24 * HOUR_MS


REPORTER = b"\x0e" * 32  # who reports slashing evidence (its share goes to its rewards on both)


def refused(code: str) -> Outcome:
    return ("refused", code)


@dataclass(frozen=True)
class VoteEvidence:
    """Oracle `signer`'s signature over the body of `first` and, for equivocation, of `second` (a
    ContradictingApprove when None). `forged_by`: that oracle made the second (or only) signature
    while the evidence names `signer`."""

    first: ClaimSpec
    second: ClaimSpec | None
    signer: int
    forged_by: int | None = None


@dataclass(frozen=True)
class FrameEvidence:
    """Device `dev` signed its frame `seq` and another frame for the same (device, epoch, seq)
    (with `ts` if given). Forged: the second frame is signed by another key on the ledger; on the
    chain the oracles (who check frame signatures for the contract) do not certify it, so only
    k-1 sign. `same`: the same frame twice. The chain's certificate is signed by `certifiers`."""

    dev: DeviceSim
    seq: int
    ts: int | None = None
    same: bool = False
    forged: bool = False
    certifiers: Sequence[int] = (0, 1, 2, 3)
    epoch: int = 0

    def frames(self) -> tuple[SignedFrame, SignedFrame]:
        a = self.dev.frame(self.seq)
        f = a.frame if self.ts is None else a.frame.replace(ts_ms=self.ts)
        a = f.sign(self.dev.identity)
        if self.same:
            return a, a
        other = f.replace(ts_ms=f.ts_ms + 1)  # another reading at the same seq
        key = Identity.from_seed(hashlib.sha256(b"forger" + f.device_id).digest()) if self.forged else self.dev.identity
        return a, other.sign(key)


@dataclass(frozen=True)
class ClaimSpec:
    """A payout: the window [start_seq, start_seq + n] of `dev` under policy `handle`, certified by
    oracles `signers` for oracle-set `epoch`. `tamper` edits the body before anyone signs it;
    `bad_sig_at` makes that signer sign a different body."""

    handle: str
    dev: DeviceSim
    start_seq: int
    signers: Sequence[int] = (0, 1, 2, 3)
    epoch: int = 0
    tamper: Callable[[PayoutBody], PayoutBody] | None = None
    bad_sig_at: int | None = None


def _body(ledger_id: bytes, pid: bytes, terms: IssuePolicy, spec: ClaimSpec) -> PayoutBody:
    dev, s = spec.dev, spec.start_seq
    body = PayoutBody(ledger_id=ledger_id, oracle_set_epoch=spec.epoch,
                      claim_id=claim_id(pid, dev.device_id, dev.epoch, s, s + N), policy_id=pid,
                      device_id=dev.device_id, epoch=dev.epoch, start_seq=s, end_seq=s + N,
                      start_ts=dev.timestamps[s], end_ts=dev.timestamps[s + N], circuit_id=terms.circuit_id,
                      beneficiary=terms.beneficiary, amount=terms.amount)
    return spec.tamper(body) if spec.tamper else body


@dataclass(frozen=True)
class GroupSpec:
    """A corroborated claim on policy `handle`: one window [s, s + n] per (device, s, agent id),
    certified by `signers` for oracle-set `epoch`."""

    handle: str
    parts: Sequence[tuple[DeviceSim, int, bytes]]
    signers: Sequence[int] = (0, 1, 2, 3)
    epoch: int = 0

    def sorted_parts(self) -> list[tuple[DeviceSim, int, bytes]]:
        return sorted(self.parts, key=lambda p: p[0].device_id)


def _group_body(ledger_id: bytes, pid: bytes, terms: IssuePolicy, spec: GroupSpec) -> GroupPayoutBody:
    windows = tuple(CorroboratingWindow(device_id=d.device_id, agent_id=agent, epoch=d.epoch, start_seq=s,
                                        end_seq=s + N, start_ts=d.timestamps[s], end_ts=d.timestamps[s + N],
                                        end_chain=chain_to_bytes(d.chains[s + N]))
                    for d, s, agent in spec.sorted_parts())
    return GroupPayoutBody(ledger_id=ledger_id, oracle_set_epoch=spec.epoch, claim_id=group_claim_id(pid, windows),
                           policy_id=pid, windows=windows, circuit_id=terms.circuit_id,
                           beneficiary=terms.beneficiary, amount=terms.amount)


def _unknown(handle: str) -> bytes:
    return hashlib.sha256(b"no-such-policy/" + handle.encode()).digest()


@dataclass
class RulesBackend:
    """ledger/state.py, the SQLite backend's rules."""

    genesis: Genesis
    admin: Identity
    ledger_key: Identity
    register: RegisterCircuit
    now: int = 0
    nonce: int = 1
    pids: dict[str, tuple[bytes, IssuePolicy]] = field(default_factory=dict)
    name: str = "rules"

    def __post_init__(self) -> None:
        self.state = LedgerState.from_genesis_entry(
            LedgerState(self.genesis).genesis_entry().sign(self.ledger_key))
        self.now = self.genesis.created_ms

    def _apply(self, tx: Message) -> tuple[Outcome, Any]:
        try:
            effect, _entry = self.state.apply(tx, self.now)
        except FaultproofError as e:
            return refused(e.reason.value), None
        return OK, effect

    def admin_tx(self, args: Message, *, as_admin: bool = True) -> Outcome:
        signer = self.admin if as_admin else oracle_identity(0)
        out, _ = self._apply(AdminTx.make(self.genesis.ledger_id, self.nonce, args).sign(signer))
        if out == OK:
            self.nonce += 1
        return out

    def register_circuit(self) -> Outcome:
        return self.admin_tx(self.register)

    def issue(self, handle: str, terms: IssuePolicy) -> Outcome:
        tx = AdminTx.make(self.genesis.ledger_id, self.nonce, terms)
        out = self.admin_tx(terms)
        if out == OK:
            self.pids[handle] = (tx.tx_id, terms)
        return out

    def rotate(self, members: Sequence[int], k: int) -> Outcome:
        from faultproof.messages import RotateOracles
        return self.admin_tx(RotateOracles(members=tuple(oracle_identity(i).public_key for i in members), threshold=k))

    def expire(self, handle: str) -> Outcome:
        pid = self.pids[handle][0] if handle in self.pids else _unknown(handle)
        return self._apply(ExpirePolicy(policy_id=pid))[0]

    def payout(self, spec: ClaimSpec) -> Outcome:
        pid, terms = self.pids[spec.handle]
        body = _body(self.genesis.ledger_id, pid, terms, spec)
        other = body.replace(amount=body.amount + 1)
        sigs = []
        for pos, i in enumerate(spec.signers):
            signed = (other if pos == spec.bad_sig_at else body).approve(oracle_identity(i))
            sigs.append(QcSignature(oracle_id=signed.oracle_id, signature=signed.signature))
        out, effect = self._apply(QuorumCertificate(body=body, signatures=tuple(sigs)))
        if effect is None:
            return out
        return ("existing" if effect.existing is not None else "paid", effect.paid)

    def issue_econ(self, handle: str, econ: EconPolicy) -> Outcome:
        tx = AdminTx.make(self.genesis.ledger_id, self.nonce, econ)
        out = self.admin_tx(econ)
        if out == OK:
            self.pids[handle] = (tx.tx_id, econ.terms)
        return out

    def report_votes(self, ev: VoteEvidence) -> Outcome:
        votes = []
        for pos, spec in enumerate((ev.first, ev.second) if ev.second else (ev.first,)):
            pid, terms = self.pids[spec.handle]
            by = ev.forged_by if ev.forged_by is not None and (pos == 1 or ev.second is None) else ev.signer
            vote = _body(self.genesis.ledger_id, pid, terms, spec).approve(oracle_identity(by))
            votes.append(dataclasses.replace(vote, oracle_id=oracle_identity(ev.signer).public_key))
        tx: Message = (VoteEquivocation(reporter=REPORTER, first=votes[0], second=votes[1]) if ev.second
                       else ContradictingApprove(reporter=REPORTER, approve=votes[0]))
        return self._apply(tx)[0]

    def report_frames(self, ev: FrameEvidence) -> Outcome:
        a, b = ev.frames()
        return self._apply(FrameEquivocation(reporter=REPORTER, first=a, second=b))[0]

    def group_payout(self, spec: GroupSpec) -> Outcome:
        pid, terms = self.pids[spec.handle]
        body = _group_body(self.genesis.ledger_id, pid, terms, spec)
        qc = GroupQuorumCertificate(body=body, signatures=tuple(body.sign(oracle_identity(i)) for i in spec.signers))
        out, effect = self._apply(qc)
        if effect is None:
            return out
        return ("existing" if effect.existing is not None else "paid", effect.paid)

    def books(self) -> dict[str, int]:
        b = self.state.balances
        return {"free": b[FREE], "premiums": b[PREMIUMS], "paid": b[PAID],
                "locked": sum(v for k, v in b.items() if k.startswith(LOCKED_PREFIX)),
                "bonds": self.state.econ.bond_total, "rewards": b.get(REWARDS, 0)}

    def locked(self, handle: str) -> int:
        p = self.state.policy(self.pids[handle][0])
        return p.locked if p else -1


@dataclass
class ChainBackend:
    """The InsurancePool contract on anvil."""

    world: ChainWorld
    genesis: Genesis
    now: int = 0
    pids: dict[str, tuple[bytes, IssuePolicy]] = field(default_factory=dict)
    name: str = "evm"
    start_ms: int | None = None  # ledger time to start at (default: the genesis'; a mirror genesis says 0)

    def __post_init__(self) -> None:
        w, g = self.world, self.genesis
        self.now = self.start_ms if self.start_ms is not None else g.created_ms
        w.set_time(self.now)
        self.pool: EvmPool = w.new_pool(ledger_id=g.ledger_id, members=range(len(g.oracles)), threshold=g.threshold,
                                        development=bool(g.development), max_skew_ms=g.max_skew_ms,
                                        rotation_grace_ms=g.rotation_grace_ms, funds=0, register=False)
        w.mint(self.pool.token, w.admin, 10**15)
        w.w3.eth.wait_for_transaction_receipt(
            self.pool.token.functions.approve(self.pool.address, 2**256 - 1).transact({"from": w.admin}))

    def _run(self, fn: Callable[[], Any]) -> tuple[Outcome, Any]:
        self.world.set_time(self.now)
        try:
            return OK, fn()
        except EvmRefused as e:
            return refused(e.reason.value), None

    def _sender(self, as_admin: bool) -> str:
        return self.world.admin if as_admin else self.world.accounts[2]

    def admin_tx(self, args: Message, *, as_admin: bool = True) -> Outcome:
        return self._run(lambda: self.pool.submit_admin(args, self._sender(as_admin)))[0]

    def register_circuit(self) -> Outcome:
        w = self.world
        return self._run(lambda: self.pool.register_circuit(w.circuit_id, w.vkey, N, bytes(32), False,
                                                            verifier=w.verifier))[0]

    def issue(self, handle: str, terms: IssuePolicy) -> Outcome:
        out, pid = self._run(lambda: self.pool.issue_policy(terms))
        if out == OK:
            self.pids[handle] = (pid, terms)
        return out

    def rotate(self, members: Sequence[int], k: int) -> Outcome:
        return self._run(lambda: self.pool.rotate_oracles(
            [oracle_key(i).binding(oracle_identity(i)) for i in members], k))[0]

    def expire(self, handle: str) -> Outcome:
        pid = self.pids[handle][0] if handle in self.pids else _unknown(handle)
        return self._run(lambda: self.pool.expire(pid))[0]

    def payout(self, spec: ClaimSpec) -> Outcome:
        pid, terms = self.pids[spec.handle]
        body = _body(self.genesis.ledger_id, pid, terms, spec)
        dev, s = spec.dev, spec.start_seq
        cbody = ChainBody(body, dev.chains[s], dev.chains[s + N])
        other = cbody.replace(amount=body.amount + 1)
        sigs = tuple(oracle_key(i).sign_body(other if pos == spec.bad_sig_at else cbody, self.pool.chain_id,
                                             self.pool.address) for pos, i in enumerate(spec.signers))
        try:
            proof = self.world.proof(dev, s, terms)
        except FaultproofError:
            proof = self.world.last_proof  # the trigger does not hold here: a refusal comes first
        out, result = self._run(lambda: self.pool.post_qc(ChainQc(cbody, sigs), proof, self.world.poster))
        if result is None:
            return out
        return ("existing" if result.existing else "paid", result.paid)

    def issue_econ(self, handle: str, econ: EconPolicy) -> Outcome:
        out, pid = self._run(lambda: self.pool.issue_econ_policy(econ))
        if out == OK:
            self.pids[handle] = (pid, econ.terms)
        return out

    def report_votes(self, ev: VoteEvidence) -> Outcome:
        bodies, sigs = [], []
        for pos, spec in enumerate((ev.first, ev.second) if ev.second else (ev.first,)):
            pid, terms = self.pids[spec.handle]
            dev, s = spec.dev, spec.start_seq
            cbody = ChainBody(_body(self.genesis.ledger_id, pid, terms, spec), dev.chains[s], dev.chains[s + N])
            by = ev.forged_by if ev.forged_by is not None and (pos == 1 or ev.second is None) else ev.signer
            sig = oracle_key(by).sign_body(cbody, self.pool.chain_id, self.pool.address)
            bodies.append(cbody)
            sigs.append(dataclasses.replace(sig, signer=oracle_key(ev.signer).address))
        return self._run(lambda: self.pool.report_votes(bodies, sigs, REPORTER, self.world.poster))[0]

    def group_payout(self, spec: GroupSpec) -> Outcome:
        pid, terms = self.pids[spec.handle]
        body = _group_body(self.genesis.ledger_id, pid, terms, spec)
        parts = spec.sorted_parts()
        cbody = ChainGroupBody(body, tuple((d.chains[s], d.chains[s + N]) for d, s, _ in parts))
        sigs = [oracle_key(i).sign_group_body(cbody, self.pool.chain_id, self.pool.address) for i in spec.signers]
        proofs = []
        for d, s, _ in parts:
            try:
                proofs.append(self.world.proof(d, s, terms))
            except FaultproofError:
                proofs.append(self.world.last_proof)  # the trigger does not hold here: a refusal comes first
        out, result = self._run(lambda: self.pool.post_group_qc(cbody, sigs, proofs, self.world.poster))
        if result is None:
            return out
        return ("existing" if result.existing else "paid", result.paid)

    def report_frames(self, ev: FrameEvidence) -> Outcome:
        a, b = ev.frames()
        body = DeviceSlashBody.of(ev.epoch, a, b, REPORTER)
        certifiers = list(ev.certifiers)[:-1] if ev.forged else ev.certifiers
        sigs = [oracle_key(i).sign_device_slash(body, self.pool.chain_id, self.pool.address) for i in certifiers]
        return self._run(lambda: self.pool.report_frame_equivocation(body, sigs, self.world.poster))[0]

    def books(self) -> dict[str, int]:
        b = self.pool.balances()
        assert b["token_balance"] == b["free"] + b["premiums"] + b["locked"] + b["bonds"] + b["rewards"], b
        e = self.pool.econ_state(reporter=REPORTER)
        assert e["reward"] == e["rewards"], e  # one reporter in the suite
        return {k: b[k] for k in ("free", "premiums", "paid", "locked", "bonds", "rewards")}

    def locked(self, handle: str) -> int:
        p = self.pool.policy(self.pids[handle][0])
        return int(p["locked"]) if p else -1


def genesis_for(t0: int, *, development: bool = True, grace_ms: int = HOUR_MS) -> tuple[Genesis, Identity, Identity]:
    admin, ledger_key = Identity.from_seed(os.urandom(32)), Identity.from_seed(os.urandom(32))
    g = Genesis(nonce=os.urandom(32), created_ms=t0, ledger_key=ledger_key.public_key, admin=admin.public_key,
                oracles=tuple(oracle_identity(i).public_key for i in range(5)), threshold=4,
                development=int(development), max_skew_ms=5000, rotation_grace_ms=grace_ms,
                max_backdate_ms=BACKDATE_MS)
    return g, admin, ledger_key
