"""A deterministic simulator of the whole protocol (DESIGN §10): agents, n oracles and the ledger
in one process on a virtual clock, driven by one seeded random generator.

The parts under test are the real ones: each oracle is a `ClaimMachine` (oracle/claim.py, with its
`QuorumCounter`s from oracle/quorum.py) fed by the pipeline's own checks (oracle/pipeline.py) on a
replica `LedgerState` that replays the ledger's signed entries; the ledger is `ledger/state.py`.
`SimOracle` does what oracle/node.py does around the machine (check, refresh, verify, carry out
actions, re-gossip, post QCs, follow the ledger), without sockets, tasks or sleeps.

Faults, all drawn from the seed: message delays, drops, duplicates (and so reorders), partitions,
crash and restart of oracles (what was not persisted is lost: the machine, timers and unsent
messages; the store survives), honest members that die for good, oracle-set rotation (to the
same members or to a set keeping k of them), skewed oracle clocks, and Byzantine members
(approve-all, reject-all, inflate, equivocate, flood); Byzantine plus dead members are at most
n - k. After the chaos the network heals and every honest oracle that is not dead runs.

Invariants, checked after every step (`Invariants`):
  S1 no payout without a valid proof and k distinct member signatures of the QC's epoch, over the
     policy's own amount;
  S2 at most one payout per incident: a claim_id once, and a policy's paid windows never overlap;
  S3 no honest oracle signs two votes for one claim in one epoch, or two different verdicts;
  S4 the books balance: the accounts sum to zero and the pool is what came in;
and at the end, L1: every incident an honest agent claimed is paid (one of its windows), since at
most n - k members are Byzantine or down and the network healed.
A failure raises `SimFailure` naming the seed; `python -m tests.sim --seed N` replays it exactly.
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from faultproof.errors import FaultproofError, Reason, Stage
from faultproof.identity import Identity, domain_tag
from faultproof.messages import (
    Approve,
    PayoutBody,
    QuorumCertificate,
    Reject,
    RejectBody,
    RotateOracles,
    SignedClaim,
    SignedEntry,
    Vote,
)
from ledger.state import LedgerState, TxKind
from oracle import claim as cm
from oracle.claim import ClaimMachine, ClaimStatus
from oracle.pipeline import approve_body, check_content, check_ledger_state, retry_at
from oracle.quorum import OracleSet
from tests.sim.world import ADMIN, LEDGER_KEY, MEMO, ORACLE_KEYS, SECOND, SIM_START, World

BYZANTINE_KINDS = ("approve_all", "reject_all", "inflate", "equivocate", "flood")
CHAOS_MS = 20 * SECOND
HEALED_MS = 30 * SECOND  # after the chaos: enough for re-gossip rounds, rechecks and QC posts
REGOSSIP_MS = 1 * SECOND
FOLLOW_MS = 700
OPEN_CAP = 32  # tuning max_open_per_voter, low so that a flooding member reaches it
_PAYOUT_TAG = domain_tag(PayoutBody.NAME)


class SimFailure(AssertionError):
    def __init__(self, seed: int, at_ms: int, what: str) -> None:
        super().__init__(f"seed {seed}: {what} (at t+{at_ms - SIM_START} ms); "
                         f"replay: python -m tests.sim --seed {seed}")
        self.seed = seed


# ====================================================================== the ledger


class SimLedger:
    """The real ledger rules; entries signed by the ledger key, as the service does."""

    def __init__(self, world: World) -> None:
        self.state = LedgerState.from_genesis_entry(world.genesis_entry, verifier=MEMO.signature)
        self.entries: list[SignedEntry] = [world.genesis_entry]
        for e in world.setup_entries:
            self.state.apply_entry(e)
            self.entries.append(e)
        self.nonce = len(world.setup_entries)
        self.sets: dict[int, OracleSet] = {0: self.state.oracle_set}

    def submit(self, tx: Any, now: int) -> Reason | None:
        now = max(now, self.state.time_ms)
        try:
            effect, entry = self.state.apply(tx, now)
        except FaultproofError as e:
            return e.reason
        if entry is not None:
            self.entries.append(entry.sign(LEDGER_KEY))
            if effect.kind is TxKind.ROTATE_ORACLES:
                self.sets[self.state.oracle_set.epoch] = self.state.oracle_set
        return None

    def rotate(self, members: list[bytes], k: int, now: int) -> None:
        from faultproof.messages import AdminTx

        self.nonce += 1
        stx = AdminTx.make(self.state.ledger_id, self.nonce, RotateOracles(members=tuple(members), threshold=k))
        assert self.submit(stx.sign(ADMIN), now) is None


# ====================================================================== an oracle


@dataclass
class Disk:
    """What an oracle persisted (survives a crash): oracle/store.py's tables."""

    claims: dict[bytes, tuple[SignedClaim, ClaimStatus, str | None]] = field(default_factory=dict)
    votes: list[tuple[Vote, bool]] = field(default_factory=list)
    vote_keys: set[bytes] = field(default_factory=set)
    own_epochs: set[tuple[bytes, int]] = field(default_factory=set)  # the UNIQUE index
    qcs: dict[bytes, QuorumCertificate] = field(default_factory=dict)


class Member:
    """What the simulator knows of every oracle-set member, honest (`SimOracle`) or not
    (`Byzantine`): its simulator, its index in the set, its key, and whether it runs."""

    def __init__(self, sim: Simulator, index: int, key: Identity, *, up: bool) -> None:
        self.sim = sim
        self.index = index
        self.key = key
        self.id = key.public_key
        self.up = up


class SimOracle(Member):
    def __init__(self, sim: Simulator, index: int, key: Identity, clock_offset_ms: int) -> None:
        super().__init__(sim, index, key, up=False)  # until `start`
        self.offset = clock_offset_ms
        self.disk = Disk()
        self.incarnation = 0
        self.machine: ClaimMachine | None = None
        self.state: LedgerState | None = None
        self.applied = 0

    def now(self) -> int:
        return self.sim.now + self.offset

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self.up = True
        self.incarnation += 1
        self.state = LedgerState.from_genesis_entry(self.sim.ledger.entries[0], verifier=MEMO.signature)
        self.applied = 1
        self.follow(initial=True)
        current, previous, until = self._sets()
        self.machine = ClaimMachine(self.id, current, previous=previous, previous_until_ms=until,
                                    max_open_per_voter=OPEN_CAP)
        self.run(self.machine.restore(list(self.disk.claims.values()), list(self.disk.votes), self.disk.qcs.values()))
        for st in self.machine.undecided():
            if self.state.paid_claim(st.claim_id) is not None:
                self._payout(st.claim_id)
        self.sim.every(self, REGOSSIP_MS, self.regossip)
        self.sim.every(self, FOLLOW_MS, self.follow)
        self.sim.catch_up(self)

    def crash(self) -> None:
        """kill -9: the machine, the replica, timers and unsent messages are gone; the disk stays."""
        self.up = False
        self.machine = None
        self.state = None

    def _sets(self) -> tuple[OracleSet, OracleSet | None, int | None]:
        assert self.state is not None
        s = self.state
        os_ = s.oracle_set
        prev = s.previous_oracle_set  # the ledger's sets are the counter's (faultproof/signers.py), as in a node
        if prev is None:
            return os_, None, None
        return os_, prev, os_.since_ms + s.genesis.rotation_grace_ms

    # ------------------------------------------------------------------ the node's loop, synchronously

    def follow(self, initial: bool = False) -> None:
        """The ledger follower: replay new entries, turn payouts and rotations into events."""
        assert self.state is not None
        entries = self.sim.ledger.entries
        while self.applied < len(entries):
            effect = self.state.apply_entry(entries[self.applied])
            self.applied += 1
            if initial or self.machine is None:
                continue
            if effect.kind is TxKind.PAYOUT and effect.claim_id is not None:
                self._payout(effect.claim_id)
            elif effect.kind is TxKind.ROTATE_ORACLES:
                current, previous, until = self._sets()
                self.run(self.machine.handle(cm.EpochRotated(current, previous, until, self.now())))

    def _payout(self, claim_id: bytes) -> None:
        assert self.machine is not None
        self.run(self.machine.handle(cm.PayoutSeen(claim_id, None)))

    def _check(self, signed: SignedClaim) -> tuple[Any, Reason | None, int | None, bool]:
        assert self.state is not None
        cid = signed.claim.claim_id
        checked = check_content(signed, self.state)
        reason = None if self.state.paid_claim(cid) else check_ledger_state(checked, self.state, self.now())
        if reason is not None:
            self.follow()  # the refresh before any Reject (DESIGN §4.3)
            checked = check_content(signed, self.state)
            reason = None if self.state.paid_claim(cid) else check_ledger_state(checked, self.state, self.now())
        later = retry_at(reason, checked.body, self.state, self.now()) if reason is not None else None
        return checked, reason, later, self.state.paid_claim(cid) is not None

    def receive_claim(self, signed: SignedClaim, source: str) -> ClaimStatus | None:
        """oracle/node.py `_process`: None when refused (content or proof), else the status."""
        assert self.machine is not None and self.state is not None
        cid = signed.claim.claim_id
        if cid in self.disk.claims:
            st = self.machine.claim(cid)
            return st.status if st else self.disk.claims[cid][1]
        try:
            checked, reason, later, paid = self._check(signed)
        except FaultproofError:
            self.sim.stats["dropped_content"] += 1
            return None
        job = checked.job
        if not MEMO.groth16(job.vkey, job.proof, job.signals.as_list()):
            self.sim.stats["dropped_bad_proof"] += 1
            return None
        body = approve_body(checked, self.state)
        self.run(self.machine.handle(cm.ClaimChecked(signed, body, reason, later, paid, source, self.now())))
        if source == "http":
            self.sim.broadcast(self, ("claim", signed))
        st = self.machine.claim(cid)
        return st.status if st else None

    def recheck(self, cid: bytes) -> None:
        if self.machine is None or cid not in self.disk.claims:
            return
        signed = self.disk.claims[cid][0]
        try:
            checked, reason, later, paid = self._check(signed)
        except FaultproofError:
            return
        assert self.state is not None
        body = approve_body(checked, self.state)
        self.run(self.machine.handle(cm.ClaimChecked(signed, body, reason, later, paid, "recheck", self.now())))

    def receive_votes(self, votes: tuple[Vote, ...]) -> None:
        assert self.machine is not None
        self.run(self.machine.handle(cm.VotesArrived(votes, "peer")))

    def regossip(self) -> None:
        assert self.machine is not None
        self.run(self.machine.handle(cm.Tick(self.now())))
        for st in self.machine.undecided():
            self.sim.broadcast(self, ("claim", st.signed))
            own = tuple(st.own.values())
            if own:
                self.sim.broadcast(self, ("votes", own))
            if st.status is ClaimStatus.APPROVED:
                self.sim.later(self, self.sim.rng.randint(1, 50), lambda c=st.claim_id: self.post_qc(c))

    def pending_payloads(self) -> list[tuple[str, Any]]:
        """The catch-up a (re)connecting peer gets: undecided claims and every kept vote on them."""
        if self.machine is None:
            return []
        out: list[tuple[str, Any]] = []
        order = [st.claim_id for st in self.machine.undecided()]  # a list: set order varies by process
        undecided = set(order)
        for cid in order:
            out.append(("claim", self.disk.claims[cid][0]))
        votes = tuple(v for v, _ in self.disk.votes if v.claim_id in undecided)
        if votes:
            out.append(("votes", votes))
        return out

    def post_qc(self, cid: bytes) -> None:
        if self.machine is None or self.state is None:
            return
        qc = self.disk.qcs.get(cid)
        if qc is None:
            return
        reason = self.sim.ledger.submit(qc, self.sim.now)
        self.sim.check_ledger()
        if reason is None or reason.stage is not Stage.LEDGER_STATE:
            return
        later = retry_at(reason, qc.body, self.state, self.now())
        self.run(self.machine.handle(cm.QcRefused(cid, reason, later, later is None)))

    # ------------------------------------------------------------------ actions (oracle/node.py `_do`)

    def run(self, actions: list[cm.Action]) -> None:
        queue = list(actions)
        while queue:
            a = queue.pop(0)
            if isinstance(a, cm.SaveClaim):
                self.disk.claims[a.signed.claim.claim_id] = (a.signed, a.status, None)
            elif isinstance(a, cm.SetStatus):
                signed, _, reason = self.disk.claims[a.claim_id]
                self.disk.claims[a.claim_id] = (signed, a.status, a.reason or reason)
            elif isinstance(a, cm.SignVote):
                b = a.body
                vote: Vote = b.approve(self.key) if isinstance(b, PayoutBody) else b.sign(self.key)
                self.sim.invariants.signed(self, vote)
                assert self.machine is not None
                queue[:0] = self.machine.handle(cm.VotesArrived((vote,), "own"))
            elif isinstance(a, cm.SaveVotes):
                for v in a.votes:
                    key = v.encode()
                    if key in self.disk.vote_keys:
                        continue
                    if a.own:
                        unique = (v.claim_id, v.body.oracle_set_epoch)
                        if unique in self.disk.own_epochs:
                            raise self.sim.fail(f"oracle {self.index}: a second own vote in one epoch reached the store")
                        self.disk.own_epochs.add(unique)
                    self.disk.vote_keys.add(key)
                    self.disk.votes.append((v, a.own))
            elif isinstance(a, cm.PublishVotes):
                self.sim.broadcast(self, ("votes", a.votes), delay=self.sim.rng.randint(0, 50))
            elif isinstance(a, cm.SaveQC):
                cid = a.qc.body.claim_id
                if a.replace or cid not in self.disk.qcs:
                    self.disk.qcs[cid] = a.qc
            elif isinstance(a, cm.PostQC):
                self.sim.later(self, self.sim.rng.randint(1, 100), lambda c=a.claim_id: self.post_qc(c))
            elif isinstance(a, cm.Recheck):
                self.sim.later(self, self.sim.rng.randint(1, 100), lambda c=a.claim_id: self.recheck(c))


# ====================================================================== Byzantine members


class Byzantine(Member):
    """A member's key and none of the rules: it answers every claim it hears as its kind says."""

    def __init__(self, sim: Simulator, index: int, key: Identity, kind: str) -> None:
        super().__init__(sim, index, key, up=True)
        self.kind = kind
        self.seen: set[bytes] = set()

    def epoch(self) -> int:
        return self.sim.ledger.state.oracle_set.epoch

    def body(self, signed: SignedClaim) -> PayoutBody | None:
        c = signed.claim
        s, e = c.start.frame, c.end.frame
        policy = self.sim.ledger.state.policy(c.policy_id)
        if policy is None:
            return None
        t = policy.terms
        from faultproof.messages import claim_id as make_claim_id

        return PayoutBody(ledger_id=self.sim.ledger.state.ledger_id, oracle_set_epoch=self.epoch(),
                          claim_id=make_claim_id(c.policy_id, t.device_id, s.epoch, s.seq, e.seq),
                          policy_id=c.policy_id, device_id=t.device_id, epoch=s.epoch, start_seq=s.seq,
                          end_seq=e.seq, start_ts=s.ts_ms, end_ts=e.ts_ms, circuit_id=t.circuit_id,
                          beneficiary=t.beneficiary, amount=t.amount)

    def reject(self, cid: bytes) -> Reject:
        return RejectBody(oracle_id=self.id, ledger_id=self.sim.ledger.state.ledger_id, oracle_set_epoch=self.epoch(),
                          claim_id=cid, reason=Reason.WINDOW_OVERLAP).sign(self.key)

    def receive_claim(self, signed: SignedClaim, source: str) -> ClaimStatus | None:
        cid = signed.claim.claim_id
        if cid in self.seen:
            return None
        self.seen.add(cid)
        body = self.body(signed)
        if body is None:
            return None
        votes: list[Vote] = []
        if self.kind == "approve_all":
            votes = [body.approve(self.key)]
        elif self.kind == "reject_all":
            votes = [self.reject(cid)]
        elif self.kind == "inflate":
            votes = [body.replace(amount=body.amount * 100).approve(self.key)]
        elif self.kind == "equivocate":
            votes = [body.approve(self.key), self.reject(cid)]
        elif self.kind == "flood":
            rng = self.sim.rng
            votes = [body.replace(claim_id=rng.randbytes(32)).approve(self.key) for _ in range(OPEN_CAP + 8)]
            votes.append(body.approve(self.key))
        self.sim.broadcast(self, ("votes", tuple(votes)))
        if self.kind == "approve_all":
            self.sim.broadcast(self, ("claim", signed))  # and spreads whatever it approves
        return None

    def receive_votes(self, votes: tuple[Vote, ...]) -> None:
        return None


Node = SimOracle | Byzantine


# ====================================================================== invariants


class Invariants:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.provable = sim.world.provable_claim_ids()
        self.own: dict[tuple[bytes, bytes], tuple[str, Reason | None]] = {}  # (oracle, claim) -> verdict
        self.own_epoch: set[tuple[bytes, bytes, int]] = set()
        self.checked_height = 0
        self.pool_in = sim.ledger.state.pool_total

    def signed(self, oracle: SimOracle, vote: Vote) -> None:
        """S3, at the moment an honest oracle signs."""
        verdict = ("approve", None) if isinstance(vote, Approve) else ("reject", vote.body.reason)
        key = (oracle.id, vote.claim_id)
        epoch_key = (oracle.id, vote.claim_id, vote.body.oracle_set_epoch)
        if epoch_key in self.own_epoch:
            raise self.sim.fail(f"S3: honest oracle {oracle.index} signed twice in epoch {epoch_key[2]}")
        if key in self.own and self.own[key] != verdict:
            raise self.sim.fail(f"S3: honest oracle {oracle.index} signed {verdict} after {self.own[key]}")
        self.own_epoch.add(epoch_key)
        self.own[key] = verdict

    def ledger(self) -> None:
        """S1, S2, S4 on every new ledger entry."""
        led = self.sim.ledger
        entries = led.entries
        for signed in entries[self.checked_height + 1:]:
            tx = signed.entry.tx
            if isinstance(tx, QuorumCertificate):
                self._payout(tx)
        self.checked_height = len(entries) - 1
        balances = led.state.balances
        if sum(balances.values()) != 0:
            raise self.sim.fail(f"S4: the accounts sum to {sum(balances.values())}")
        if led.state.pool_total != self.pool_in:
            raise self.sim.fail(f"S4: pool total {led.state.pool_total} != {self.pool_in} that came in")

    def _payout(self, qc: QuorumCertificate) -> None:
        b = qc.body
        if b.claim_id not in self.provable:
            raise self.sim.fail(f"S1: paid claim {b.claim_id.hex()[:12]} has no valid proof")
        oset = self.sim.ledger.sets.get(b.oracle_set_epoch)
        signers = [s.oracle_id for s in qc.signatures]
        if oset is None or len(set(signers)) != len(signers) or not set(signers) <= set(oset.members):
            raise self.sim.fail("S1: a QC with duplicate or non-member signers was paid")
        if len(signers) < oset.threshold:
            raise self.sim.fail(f"S1: paid with {len(signers)} signatures, k = {oset.threshold}")
        for s in qc.signatures:
            if not MEMO.signature(_PAYOUT_TAG, b.encode(), s.signature, s.oracle_id):
                raise self.sim.fail("S1: a paid QC carries a bad signature")
        policy = self.sim.ledger.state.policy(b.policy_id)
        if policy is None or b.amount != policy.terms.amount:
            raise self.sim.fail("S1: paid an amount that is not the policy's")
        # S2, computed here rather than trusted to Policy.overlaps: (start_ts, end_ts] windows.
        paid = [pc.body for pc in self.sim.ledger.state.claims.values() if pc.policy_id == b.policy_id]
        ids = [p.claim_id for p in paid]
        if len(ids) != len(set(ids)):
            raise self.sim.fail("S2: one claim paid twice")
        for i, p in enumerate(paid):
            for q in paid[i + 1:]:
                if p.start_ts < q.end_ts and q.start_ts < p.end_ts:
                    raise self.sim.fail(f"S2: overlapping windows both paid on policy {b.policy_id.hex()[:12]}")


# ====================================================================== the simulator


@dataclass(order=True)
class _Event:
    at: int
    seq: int
    owner: int = field(compare=False)  # node index, -1 for the world
    incarnation: int = field(compare=False)
    fn: Callable[[], None] = field(compare=False)


@dataclass
class Scenario:
    """Everything a seed decided, printed with a failure."""

    n: int
    k: int
    byzantine: dict[int, str]
    drop: float
    dup: float
    max_delay: int
    crashes: list[tuple[int, int, int]]  # (oracle, at, down for)
    partition: tuple[int, int, frozenset[int]] | None  # (from, to, one side)
    rotation: tuple[int, str] | None  # (at, "same" | "swap")
    claims: list[tuple[int, int, str]]  # (at, incident, window)
    junk_first: list[int]
    dead: list[tuple[int, int]] = field(default_factory=list)  # (honest oracle, at): never back

    @classmethod
    def draw(cls, rng: random.Random) -> Scenario:
        n = rng.choice((4, 5, 7))
        k = rng.randint(n // 2 + 1, n)
        faulty = rng.randint(0, n - k)  # Byzantine members: at most n - k, so k honest remain
        byz = {i: rng.choice(BYZANTINE_KINDS) for i in rng.sample(range(n), faulty)}
        honest = [i for i in range(n) if i not in byz]
        crashes = [(i, rng.randint(0, CHAOS_MS), rng.randint(200, 8 * SECOND))
                   for i in rng.sample(honest, rng.randint(0, min(2, len(honest))))]
        partition = None
        if rng.random() < 0.4:
            side = frozenset(rng.sample(range(n), rng.randint(1, n - 1)))
            start = rng.randint(0, CHAOS_MS // 2)
            partition = (start, start + rng.randint(SECOND, CHAOS_MS // 2), side)
        rotation = None
        if rng.random() < 0.35:
            rotation = (rng.randint(0, CHAOS_MS), rng.choice(("same", "swap")))
        incidents = rng.sample(range(6), rng.randint(1, 3))
        claims = []
        for inc in incidents:
            claims.append((rng.randint(0, CHAOS_MS // 2), inc, "A"))
            if rng.random() < 0.4:
                claims.append((rng.randint(0, CHAOS_MS // 2), inc, "B"))
            if rng.random() < 0.3:
                claims.append((rng.randint(0, CHAOS_MS // 2), inc, "Q"))
        junk = [inc for inc in incidents if rng.random() < 0.3]
        sc = cls(n, k, byz, rng.choice((0.0, 0.05, 0.2, 0.4)), rng.choice((0.0, 0.1, 0.3)),
                 rng.choice((20, 200, 1500)), crashes, partition, rotation, sorted(claims), junk)
        # Honest members that die for good, within the liveness bound: Byzantine + dead <= n - k.
        spare = [i for i in honest if i not in {c[0] for c in crashes}]
        sc.dead = [(i, rng.randint(0, CHAOS_MS)) for i in rng.sample(spare, min(len(spare), rng.randint(0, n - k - faulty)))]
        return sc


class Simulator:
    def __init__(self, seed: int, scenario: Scenario | None = None) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.sc = scenario or Scenario.draw(self.rng)
        self.world = World.build(seed, self.sc.n, self.sc.k)
        self.ledger = SimLedger(self.world)
        self.now = SIM_START
        self._queue: list[_Event] = []
        self._seq = 0
        self.trace = hashlib.sha256()
        self.stats: dict[str, int] = {"events": 0, "dropped_content": 0, "dropped_bad_proof": 0, "delivered": 0}
        self.nodes: list[Node] = []
        for i in range(self.sc.n):
            key = ORACLE_KEYS[i]
            if i in self.sc.byzantine:
                self.nodes.append(Byzantine(self, i, key, self.sc.byzantine[i]))
            else:
                self.nodes.append(SimOracle(self, i, key, self.rng.randint(-2 * SECOND, SECOND // 2)))
        self.invariants = Invariants(self)
        self.partition: frozenset[int] | None = None
        self.healed = False
        self.claimed: set[int] = set()
        self.dead: set[int] = set()

    def fail(self, what: str) -> SimFailure:
        return SimFailure(self.seed, self.now, what)

    # ------------------------------------------------------------------ scheduling

    def at(self, when: int, fn: Callable[[], None], owner: Node | None = None) -> None:
        self._seq += 1
        inc = owner.incarnation if isinstance(owner, SimOracle) else 0
        heapq.heappush(self._queue, _Event(when, self._seq, owner.index if owner else -1, inc, fn))

    def later(self, owner: Node, delay: int, fn: Callable[[], None]) -> None:
        self.at(self.now + delay, fn, owner)

    def every(self, owner: SimOracle, period: int, fn: Callable[[], None]) -> None:
        def tick() -> None:
            fn()
            self.at(self.now + period + self.rng.randint(0, 50), tick, owner)

        self.at(self.now + self.rng.randint(1, period), tick, owner)

    def _alive(self, ev: _Event) -> bool:
        if ev.owner < 0:
            return True
        node = self.nodes[ev.owner]
        return node.up and (not isinstance(node, SimOracle) or node.incarnation == ev.incarnation)

    # ------------------------------------------------------------------ the network

    def _linked(self, a: int, b: int) -> bool:
        return self.partition is None or ((a in self.partition) == (b in self.partition))

    def broadcast(self, sender: Node, msg: tuple[str, Any], delay: int = 0) -> None:
        for peer in self.nodes:
            if peer is not sender:
                self.send(sender, peer, msg, delay)

    def send(self, sender: Node, peer: Node, msg: tuple[str, Any], delay: int = 0) -> None:
        sc, rng = self.sc, self.rng
        copies = 1
        if not self.healed:
            if rng.random() < sc.drop:
                return
            if rng.random() < sc.dup:
                copies = 2
        for _ in range(copies):
            d = delay + rng.randint(1, sc.max_delay if not self.healed else 50)
            self.at(self.now + d, lambda p=peer, s=sender.index, m=msg: self._deliver(s, p, m))

    def _deliver(self, sender: int, peer: Node, msg: tuple[str, Any]) -> None:
        if not peer.up or not self._linked(sender, peer.index):
            return
        self.stats["delivered"] += 1
        kind, payload = msg
        if kind == "claim":
            peer.receive_claim(payload, "gossip")
        else:
            peer.receive_votes(payload)

    def catch_up(self, joined: SimOracle) -> None:
        for peer in self.nodes:
            if isinstance(peer, SimOracle) and peer is not joined and peer.up:
                for msg in peer.pending_payloads():
                    self.send(peer, joined, msg)

    def check_ledger(self) -> None:
        self.invariants.ledger()

    # ------------------------------------------------------------------ the agents

    def _agent(self, inc_index: int, window: str, tries: int = 0) -> None:
        """The honest agent: posts to a random oracle, retries elsewhere until the ledger pays the
        incident (or another window of it was paid)."""
        inc = self.world.incidents[inc_index]
        paid = {c for c in self.ledger.state.claims}
        if inc.claim_id(window) in paid or (window != "Q" and inc.claim_id("A" if window == "B" else "B") in paid):
            return
        node = self.nodes[self.rng.randrange(len(self.nodes))]
        if node.up and self._linked_to_agent(node):
            node.receive_claim(inc.claims[window], "http")
        if tries < 40:
            self.at(self.now + 2 * SECOND + self.rng.randint(0, SECOND), lambda: self._agent(inc_index, window, tries + 1))

    def _linked_to_agent(self, node: Node) -> bool:
        return self.healed or self.rng.random() >= self.sc.drop

    def _thief(self, inc_index: int) -> None:
        inc = self.world.incidents[inc_index]
        for node in self.nodes:
            if node.up:
                node.receive_claim(inc.junk, "http")

    # ------------------------------------------------------------------ running

    def _rotate(self, how: str) -> None:
        state = self.ledger.state
        members = sorted(state.oracle_set.members)
        k = state.oracle_set.threshold
        if how == "swap":
            # Keep k of the current members (every Byzantine one among them) and replace the rest
            # with fresh honest oracles: the liveness bound n - k still holds.
            byz = [m for m in members if self._node_of(m) in self.sc.byzantine]
            honest = [m for m in members if m not in byz]
            self.rng.shuffle(honest)
            keep = byz + honest[: max(0, k - len(byz))]
            fresh_count = len(members) - len(keep)
            fresh = []
            for _ in range(fresh_count):
                i = len(self.nodes)
                node = SimOracle(self, i, ORACLE_KEYS[i], self.rng.randint(-2 * SECOND, SECOND // 2))
                self.nodes.append(node)
                node.start()
                fresh.append(node.id)
            members = sorted(keep + fresh)
        self.ledger.rotate(members, k, self.now)
        self.check_ledger()

    def _node_of(self, key: bytes) -> int:
        return next(n.index for n in self.nodes if n.id == key)

    def _crash(self, i: int, down_for: int) -> None:
        node = self.nodes[i]
        if isinstance(node, SimOracle) and node.up:
            node.crash()
            self.at(self.now + down_for, lambda: node.start() if not node.up else None)

    def _kill(self, i: int) -> None:
        node = self.nodes[i]
        self.dead.add(i)
        if isinstance(node, SimOracle) and node.up:
            node.crash()

    def _heal(self) -> None:
        self.healed = True
        self.partition = None
        for node in self.nodes:
            if isinstance(node, SimOracle) and not node.up and node.index not in self.dead:
                node.start()
        for node in self.nodes:  # one catch-up round on the healed network
            if isinstance(node, SimOracle):
                self.catch_up(node)

    def run(self) -> Simulator:
        sc = self.sc
        for node in self.nodes:
            if isinstance(node, SimOracle):
                node.start()
        t0 = SIM_START
        for at, inc, window in sc.claims:
            if window != "Q":  # Q can never be paid: not part of L1
                self.claimed.add(inc)
            self.at(t0 + at, lambda i=inc, w=window: self._agent(i, w))
        for inc in sc.junk_first:
            self.at(t0, lambda i=inc: self._thief(i))
        for i, at in sc.dead:
            self.at(t0 + at, lambda i=i: self._kill(i))
        for i, at, down in sc.crashes:
            self.at(t0 + at, lambda i=i, d=down: self._crash(i, d))
        if sc.partition is not None:
            start, end, side = sc.partition
            self.at(t0 + start, lambda: setattr(self, "partition", side))
            self.at(t0 + end, lambda: setattr(self, "partition", None))
        if sc.rotation is not None:
            self.at(t0 + sc.rotation[0], lambda how=sc.rotation[1]: self._rotate(how))
        self.at(t0 + CHAOS_MS, self._heal)
        end = t0 + CHAOS_MS + HEALED_MS
        while self._queue and self._queue[0].at <= end:
            ev = heapq.heappop(self._queue)
            if not self._alive(ev):
                continue
            self.now = max(self.now, ev.at)
            self.stats["events"] += 1
            self.trace.update(ev.at.to_bytes(8, "big") + ev.seq.to_bytes(8, "big"))
            ev.fn()
            if len(self.ledger.entries) - 1 != self.invariants.checked_height:
                self.invariants.ledger()
        self._liveness()
        return self

    def _liveness(self) -> None:
        """L1: after healing, every incident the honest agent claimed is paid (one window of it)."""
        paid = set(self.ledger.state.claims)
        for inc in sorted(self.claimed):
            incident = self.world.incidents[inc]
            if not {incident.claim_id("A"), incident.claim_id("B")} & paid:
                statuses = []
                for node in self.nodes:
                    if isinstance(node, SimOracle) and node.machine is not None:
                        st = node.machine.claim(incident.claim_id("A"))
                        statuses.append(f"{node.index}:{st.status.value if st else '-'}")
                raise self.fail(f"L1: incident {inc} claimed but never paid ({' '.join(statuses)}; {self.sc})")

    def digest(self) -> str:
        t = self.trace.copy()
        for e in self.ledger.entries:
            t.update(e.encode())
        return t.hexdigest()


@contextlib.contextmanager
def memoized_signatures() -> Iterator[None]:
    """The named stand-in of world.py for message signatures too: `faultproof.messages` checks
    every signature through the real Ed25519 verify, memoized (each distinct input once)."""
    import faultproof.messages as messages

    real = messages.verify
    messages.verify = MEMO.signature
    try:
        yield
    finally:
        messages.verify = real


def run_seed(seed: int) -> Simulator:
    with memoized_signatures():
        return Simulator(seed).run()


def run_seeds(seeds: range, on_fail: Callable[[SimFailure], None] | None = None) -> list[SimFailure]:
    failures = []
    for seed in seeds:
        try:
            run_seed(seed)
        except SimFailure as f:
            failures.append(f)
            if on_fail is not None:
                on_fail(f)
    return failures
