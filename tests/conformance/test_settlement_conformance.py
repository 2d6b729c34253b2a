"""One conformance suite, two settlement backends (issue 16): the same rule scenarios run against
ledger/state.py (the SQLite backend's rules) and the InsurancePool contract on anvil, and every
step must give the same outcome and reason on both, and the books must agree after each scenario.

Covered: the economic rules of DESIGN §14 (bonds and their unlock delay, membership, the
soundness table, oracle and device slashing evidence valid/forged/duplicate/stale with the books
to the unit); every payout refusal of DESIGN §6 (Q1-Q4, P1-P8), the admin refusals a chain shares
(parameters, capital, existence, lifecycle, oracle sets, development circuits), the junk-first
claim, overlapping, sliding and out-of-order windows, a period limit, the lock as a cap, rotation
mid-claim with the grace period, revocation (never retroactive), expiry, and a replayed or
re-certified QC. Not applicable on a chain, and so not here: BAD_ADMIN_SIGNATURE and BAD_NONCE
(msg.sender and the account nonce replace the admin signature and nonce) and WRONG_LEDGER on an
admin transaction (a transaction goes to one contract on one chain).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from faultproof.chain import chain_anchor, chain_to_bytes
from faultproof.messages import (
    BondHolder,
    Deposit,
    EconParams,
    EconPolicy,
    EnrolAgent,
    EnrolDevice,
    IssuePolicy,
    PostBond,
    RegisterCircuit,
    RevokeAgent,
    RevokeDevice,
    Unbond,
    UnbondStep,
    Withdraw,
)
from tests.conformance.backends import (
    OK,
    ChainBackend,
    ClaimSpec,
    FrameEvidence,
    GroupSpec,
    Outcome,
    RulesBackend,
    VoteEvidence,
    genesis_for,
    refused,
)
from tests.contracts.evmfix import ChainWorld, N, oracle_identity
from tests.netfix import DAY, HOUR, MINUTE, SECOND, TRIGGERING, DeviceSim
from tests.netfix import PARAMS as COUNT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChainWorld]:
    w = ChainWorld.start(Path(tmp_path_factory.mktemp("chain")))
    dev = DeviceSim.create(anchor_ts=1_000_000)
    w.proof(dev, dev.record(TRIGGERING), w.terms(dev, COUNT))  # so `last_proof` is never empty
    yield w
    w.stop()


@dataclass
class Runner:
    """Runs each operation on both backends at the same ledger time and compares the outcomes."""

    world: ChainWorld
    development: bool = True
    rules: RulesBackend = field(init=False)
    chain: ChainBackend = field(init=False)
    log: list[tuple[str, Outcome]] = field(default_factory=list)

    def __post_init__(self) -> None:
        t0 = (self.world.now_ms() // SECOND + 10) * SECOND
        g, admin, ledger_key = genesis_for(t0, development=self.development)
        self.register = RegisterCircuit(vkey=self.world.vkey, n=N, layout_version=1, transcript_hash=bytes(32),
                                        production=0)
        self.rules = RulesBackend(g, admin, ledger_key, self.register)
        self.chain = ChainBackend(self.world, g)
        self.t0 = t0
        self.now = t0 + MINUTE  # ahead of the blocks the deployment mined
        if self.development:
            self.both("register", lambda b: b.register_circuit(), OK)
            self.both("deposit", lambda b: b.admin_tx(Deposit(amount=100_000)), OK)

    def at(self, ms: int) -> None:
        """Move ledger time forward to ms (whole seconds, strictly increasing: chain blocks)."""
        self.now = max(-(-ms // SECOND) * SECOND, self.now + SECOND)

    def both(self, what: str, op: Callable[[RulesBackend | ChainBackend], Outcome],
             expect: Outcome | None = None) -> Outcome:
        self.at(self.now)
        self.rules.now = self.chain.now = self.now
        a, b = op(self.rules), op(self.chain)
        assert a == b, f"{what}: rules gave {a}, evm gave {b}"
        if expect is not None:
            assert a == expect, f"{what}: both gave {a}, expected {expect}"
        self.log.append((what, a))
        return a

    def diverge(self, what: str, op: Callable[[RulesBackend | ChainBackend], Outcome], rules_expect: Outcome,
                chain_expect: Outcome) -> None:
        """A step where the backends differ ON PURPOSE: a ledger rule the contract does not
        implement (DESIGN §13, "Rules a chain does not enforce"). Both outcomes are pinned."""
        self.at(self.now)
        self.rules.now = self.chain.now = self.now
        a, b = op(self.rules), op(self.chain)
        assert (a, b) == (rules_expect, chain_expect), f"{what}: rules gave {a}, evm gave {b}"
        self.log.append((what, a))

    def books_agree(self, *handles: str) -> dict[str, int]:
        a, b = self.rules.books(), self.chain.books()
        assert a == b, f"books differ: rules {a}, evm {b}"
        for h in handles:
            assert self.rules.locked(h) == self.chain.locked(h), h
        return a

    # -- builders ----------------------------------------------------------------------------
    def device(self, anchor_ts: int | None = None) -> DeviceSim:
        dev = DeviceSim.create(anchor_ts=anchor_ts if anchor_ts is not None else self.now - 40 * DAY)
        self.both("enrol", lambda b: b.admin_tx(dev.enrol_tx()), OK)
        return dev

    def terms(self, dev: DeviceSim, **o: int) -> IssuePolicy:
        kind, T, K, lo, hi, G = COUNT.as_tuple()
        base = dict(device_id=dev.device_id, beneficiary=self.world.beneficiary, circuit_id=self.register.circuit_id,
                    kind=kind, threshold=T, count=K, lo=lo, hi=hi, gap_ms=G, coverage=1_000, amount=100, premium=10,
                    start_ms=self.now - 30 * DAY, end_ms=self.now + 30 * DAY, period_ms=DAY,
                    claim_window_ms=7 * DAY)
        base.update(o)
        return IssuePolicy(**base)

    def issue(self, handle: str, dev: DeviceSim, expect: Outcome = OK, **o: int) -> IssuePolicy:
        terms = self.terms(dev, **o)
        self.both(f"issue {handle}", lambda b: b.issue(handle, terms), expect)
        return terms

    def pay(self, what: str, spec: ClaimSpec, expect: Outcome) -> Outcome:
        return self.both(what, lambda b: b.payout(spec), expect)


def window(dev: DeviceSim, at_ms: int, readings: list[int] = TRIGGERING) -> int:
    """Readings whose first window's start frame (a filler reading) is at at_ms: its seq."""
    dev.record([0], start_ts=at_ms)
    return dev.record(readings)


@pytest.fixture
def run(world: ChainWorld) -> Runner:
    return Runner(world)


# ============================================================================== scenarios


def test_every_payout_refusal_reads_the_same(run: Runner) -> None:
    dev = run.device()
    run.issue("p", dev)
    before_term = window(dev, run.now - 35 * DAY)
    long_ago = window(dev, run.now - 20 * DAY)
    good = window(dev, run.now - 40 * SECOND)
    same_day = dev.record(TRIGGERING)
    future = window(dev, run.now + MINUTE)
    spec = ClaimSpec("p", dev, good)
    r = run
    r.pay("Q1 another ledger", ClaimSpec("p", dev, good, tamper=lambda b: b.replace(ledger_id=b"\x07" * 32)),
          refused("wrong_ledger"))
    r.pay("Q3 an epoch not yet", ClaimSpec("p", dev, good, epoch=1), refused("qc_stale_epoch"))
    r.pay("Q3 duplicate", ClaimSpec("p", dev, good, signers=(0, 1, 2, 0)), refused("qc_duplicate_signer"))
    r.pay("Q3 non-member", ClaimSpec("p", dev, good, signers=(0, 1, 2, 7)), refused("qc_non_member"))
    r.pay("Q3 non-member before a duplicate", ClaimSpec("p", dev, good, signers=(7, 1, 1, 2)), refused("qc_non_member"))
    r.pay("Q3 bad signature", ClaimSpec("p", dev, good, bad_sig_at=3), refused("qc_bad_signature"))
    r.pay("Q3 k-1", ClaimSpec("p", dev, good, signers=(0, 1, 2)), refused("qc_insufficient_signatures"))
    r.pay("Q4 unknown policy", ClaimSpec("p", dev, good, tamper=lambda b: b.replace(policy_id=b"\x09" * 32)),
          refused("not_found"))
    r.pay("Q4 amount", ClaimSpec("p", dev, good, tamper=lambda b: b.replace(amount=101)), refused("payout_mismatch"))
    r.pay("Q4 beneficiary", ClaimSpec("p", dev, good, tamper=lambda b: b.replace(beneficiary=bytes(31) + b"\x01")),
          refused("payout_mismatch"))
    r.pay("Q4 claim id", ClaimSpec("p", dev, good, tamper=lambda b: b.replace(claim_id=b"\x05" * 32)),
          refused("payout_mismatch"))
    r.pay("P2 before the term", ClaimSpec("p", dev, before_term), refused("outside_policy_term"))
    r.pay("P7 claim window closed", ClaimSpec("p", dev, long_ago), refused("claim_window_closed"))
    r.pay("P8 end in the future", ClaimSpec("p", dev, future), refused("end_ts_in_future"))
    r.pay("pays", spec, ("paid", 100))
    r.pay("replayed QC", spec, ("existing", 100))
    r.pay("re-certified by other members", ClaimSpec("p", dev, good, signers=(1, 2, 3, 4)), ("existing", 100))
    r.pay("Q2 same claim, another body", ClaimSpec("p", dev, good, tamper=lambda b: b.replace(amount=101)),
          refused("claim_conflict"))
    r.pay("P5 period limit", ClaimSpec("p", dev, same_day), refused("period_limit"))
    r.pay("P4 overlap", ClaimSpec("p", dev, good + 2), refused("window_overlap"))
    r.books_agree("p")


def test_policy_not_active_before_its_term(run: Runner) -> None:
    dev = run.device()
    run.issue("later", dev, start_ms=run.now + DAY, end_ms=run.now + 10 * DAY)
    s = window(dev, run.now - 30 * SECOND)
    run.pay("P1 not yet active", ClaimSpec("later", dev, s), refused("policy_not_active"))
    run.books_agree("later")


def test_sliding_and_out_of_order_windows(run: Runner) -> None:
    dev = run.device()
    run.issue("p", dev, period_ms=SECOND)
    s0 = window(dev, run.now - MINUTE, [90] * 12)  # windows [s0+i, s0+i+4]
    r = run
    r.pay("the last window first", ClaimSpec("p", dev, s0 + 8), ("paid", 100))
    r.pay("then the first (new head)", ClaimSpec("p", dev, s0), ("paid", 100))
    r.pay("sliding by n: touching, between two", ClaimSpec("p", dev, s0 + 4), ("paid", 100))
    r.pay("sliding by 2: overlaps", ClaimSpec("p", dev, s0 + 2), refused("window_overlap"))
    r.pay("sliding by 1: overlaps", ClaimSpec("p", dev, s0 + 1), refused("window_overlap"))
    r.pay("sliding by 7: overlaps two", ClaimSpec("p", dev, s0 + 7), refused("window_overlap"))
    r.books_agree("p")


def test_the_lock_caps_what_a_policy_pays(run: Runner) -> None:
    dev = run.device()
    run.issue("p", dev, coverage=150, amount=100, period_ms=SECOND)
    s = window(dev, run.now - MINUTE, TRIGGERING * 3)
    run.pay("first", ClaimSpec("p", dev, s), ("paid", 100))
    run.pay("what is left", ClaimSpec("p", dev, s + N), ("paid", 50))
    run.pay("P6 nothing left", ClaimSpec("p", dev, s + 2 * N), refused("coverage_exhausted"))
    books = run.books_agree("p")
    assert books["paid"] == 150 and run.rules.locked("p") == 0


def test_rotation_mid_claim_and_the_grace_period(run: Runner) -> None:
    dev = run.device()
    run.issue("p", dev, period_ms=SECOND)
    s = window(dev, run.now - MINUTE, [90] * 12)
    r = run
    r.both("A10 k too small", lambda b: b.rotate([1, 2, 3, 4, 5], 2), refused("invalid_oracle_set"))
    r.both("A10 a member twice", lambda b: b.rotate([1, 2, 3, 3, 5], 4), refused("invalid_oracle_set"))
    r.both("rotate to oracles 1..5", lambda b: b.rotate([1, 2, 3, 4, 5], 4), OK)
    r.pay("epoch 0 QC within the grace period", ClaimSpec("p", dev, s), ("paid", 100))
    r.pay("epoch 1, a former member signs", ClaimSpec("p", dev, s + 4, epoch=1, signers=(0, 1, 2, 3)),
          refused("qc_non_member"))
    r.pay("epoch 1", ClaimSpec("p", dev, s + 4, epoch=1, signers=(1, 2, 3, 5)), ("paid", 100))
    r.at(r.now + 2 * HOUR)
    r.pay("epoch 0 after the grace period", ClaimSpec("p", dev, s + 8), refused("qc_stale_epoch"))
    r.pay("a paid claim replayed by the old set", ClaimSpec("p", dev, s), ("existing", 100))
    r.pay("epoch 1 after the grace period", ClaimSpec("p", dev, s + 8, epoch=1, signers=(2, 3, 4, 5)), ("paid", 100))
    r.books_agree("p")


def test_revocation_is_never_retroactive(run: Runner) -> None:
    dev = run.device()
    run.issue("p", dev, period_ms=SECOND)
    before = window(dev, run.now - MINUTE)
    r = run
    r.both("A2 not the admin", lambda b: b.admin_tx(RevokeDevice(device_id=dev.device_id), as_admin=False),
           refused("not_admin"))
    r.both("revoke", lambda b: b.admin_tx(RevokeDevice(device_id=dev.device_id)), OK)
    after = dev.record(TRIGGERING, start_ts=r.now - 2 * SECOND)  # ends after the revocation
    r.at(r.now + 5 * SECOND)
    # S4 (DESIGN §11): the ledger pays a revoked device's window only if its end was anchored; the
    # contract keeps no device-history anchors and pays any window that ended before revocation.
    r.diverge("a window that ended before, never anchored", lambda b: b.payout(ClaimSpec("p", dev, before)),
              refused("revoked_window_not_anchored"), ("paid", 100))
    r.pay("P3 a window that ended after", ClaimSpec("p", dev, after), refused("device_revoked"))
    r.both("A6 revoke twice", lambda b: b.admin_tx(RevokeDevice(device_id=dev.device_id)),
           refused("invalid_state_transition"))
    r.both("A6 unknown device", lambda b: b.admin_tx(RevokeDevice(device_id=b"\x03" * 32)), refused("not_found"))
    r.both("A5 a revoked device never comes back",
           lambda b: b.admin_tx(EnrolDevice(device_id=dev.device_id, epoch=1,
                                            anchor=chain_to_bytes(chain_anchor(dev.device_id, 1)),
                                            firmware_hash=b"\x01" * 32)), refused("invalid_state_transition"))
    a, b = r.rules.books(), r.chain.books()
    assert b["paid"] == a["paid"] + 100 and b["locked"] == a["locked"] - 100, (a, b)  # the one S4 divergence


def test_expiry_releases_the_lock_and_closes_the_policy(run: Runner) -> None:
    dev = run.device()
    end = run.now + HOUR
    run.issue("p", dev, start_ms=run.now - DAY, end_ms=end, claim_window_ms=HOUR, coverage=500, premium=10)
    s = window(dev, run.now - MINUTE, TRIGGERING * 2)
    r = run
    r.pay("pays", ClaimSpec("p", dev, s), ("paid", 100))
    r.both("E1 during the term", lambda b: b.expire("p"), refused("expiry_too_early"))
    r.at(end + 30 * MINUTE)
    r.both("E1 inside the claim window", lambda b: b.expire("p"), refused("expiry_too_early"))
    r.at(end + HOUR + SECOND)
    r.pay("P1 after the claim window", ClaimSpec("p", dev, s + N), refused("policy_not_active"))
    free = r.books_agree("p")["free"]
    r.both("expire", lambda b: b.expire("p"), OK)
    assert r.books_agree("p")["free"] == free + 400 + 10  # the unused lock and the earned premium
    r.both("E1 twice", lambda b: b.expire("p"), refused("invalid_state_transition"))
    r.both("E1 unknown", lambda b: b.expire("nothing"), refused("not_found"))
    r.issue("p2", dev)  # the device's policy is closed: a new one may be issued
    r.books_agree("p", "p2")


def test_admin_refusals_read_the_same(run: Runner) -> None:
    dev = run.device()
    r = run
    r.both("A7 deposit 0", lambda b: b.admin_tx(Deposit(amount=0)), refused("invalid_parameters"))
    r.both("A8 withdraw more than free", lambda b: b.admin_tx(Withdraw(amount=100_001)),
           refused("insufficient_free_capital"))
    r.both("A8 withdraw", lambda b: b.admin_tx(Withdraw(amount=1_000)), OK)
    r.issue("too big", dev, coverage=200_000, amount=100, expect=refused("insufficient_free_capital"))
    r.issue("K=0", dev, count=0, expect=refused("invalid_parameters"))
    r.issue("unused lo", dev, lo=5, expect=refused("invalid_parameters"))
    r.issue("start after end", dev, start_ms=r.now + DAY, end_ms=r.now, expect=refused("invalid_parameters"))
    r.issue("amount > coverage", dev, amount=2_000, expect=refused("invalid_parameters"))
    r.issue("no period", dev, period_ms=0, expect=refused("invalid_parameters"))
    r.issue("over", dev, start_ms=r.now - 3 * DAY, end_ms=r.now - DAY, expect=refused("invalid_parameters"))
    r.issue("unknown circuit", dev, circuit_id=b"\x04" * 32, expect=refused("not_found"))
    stranger = DeviceSim.create(anchor_ts=r.now - DAY)
    r.issue("unknown device", stranger, expect=refused("not_found"))
    r.issue("p", dev)
    r.issue("second", dev, expect=refused("active_policy_exists"))
    r.both("A5 enrol twice", lambda b: b.admin_tx(dev.enrol_tx()), refused("already_exists"))
    r.both("A4 register twice", lambda b: b.register_circuit(), refused("already_exists"))
    r.both("enrol agent", lambda b: b.admin_tx(EnrolAgent(agent_id=b"\x0a" * 32)), OK)
    r.both("A5 agent twice", lambda b: b.admin_tx(EnrolAgent(agent_id=b"\x0a" * 32)), refused("already_exists"))
    r.both("A6 unknown agent", lambda b: b.admin_tx(RevokeAgent(agent_id=b"\x0b" * 32)), refused("not_found"))
    r.both("revoke agent", lambda b: b.admin_tx(RevokeAgent(agent_id=b"\x0a" * 32)), OK)
    r.both("A6 agent twice", lambda b: b.admin_tx(RevokeAgent(agent_id=b"\x0a" * 32)),
           refused("invalid_state_transition"))
    r.both("A2 deposit by someone else", lambda b: b.admin_tx(Deposit(amount=5), as_admin=False), refused("not_admin"))
    r.books_agree("p")


def test_a_revoked_device_gets_no_policy(run: Runner) -> None:
    dev = run.device()
    run.both("revoke", lambda b: b.admin_tx(RevokeDevice(device_id=dev.device_id)), OK)
    run.issue("p", dev, expect=refused("device_revoked"))
    run.books_agree()


def test_junk_first_does_not_poison_the_incident(run: Runner) -> None:
    dev = run.device()
    run.issue("p", dev)
    s = window(dev, run.now - MINUTE)
    run.pay("junk: a body that is not the policy's", ClaimSpec("p", dev, s, tamper=lambda b: b.replace(amount=1)),
            refused("payout_mismatch"))
    run.pay("junk: too few signers", ClaimSpec("p", dev, s, signers=(4, 3, 2)), refused("qc_insufficient_signatures"))
    run.pay("junk: a forged signature", ClaimSpec("p", dev, s, bad_sig_at=0), refused("qc_bad_signature"))
    run.pay("the real claim", ClaimSpec("p", dev, s), ("paid", 100))
    run.books_agree("p")


def test_a_production_ledger_refuses_a_development_circuit(world: ChainWorld) -> None:
    run = Runner(world, development=False)
    run.both("A4 development circuit", lambda b: b.register_circuit(), refused("development_circuit_on_production"))
    run.books_agree()


@pytest.mark.parametrize("seed,period_s", [(1, 1), (2, 3), (3, 6)])
def test_random_windows_in_random_order_read_the_same(run: Runner, seed: int, period_s: int) -> None:
    """Differential: random (often overlapping) windows of one policy, posted in random order, some
    twice. Exercises the chain's window list and its neighbour hint against ledger/state.py's
    sorted index, including the period limit on neighbours."""
    import random

    rng = random.Random(seed)
    dev = run.device()
    run.issue("p", dev, period_ms=period_s * SECOND, coverage=10_000)
    s0 = window(dev, run.now - 2 * MINUTE, [90] * 24)
    starts = [s0 + rng.randrange(0, 21) for _ in range(14)]
    for i, s in enumerate(starts):
        run.both(f"window {s - s0} (#{i})", lambda b, s=s: b.payout(ClaimSpec("p", dev, s)))
    paid = [o for what, o in run.log if what.startswith("window") and o[0] == "paid"]
    outcomes = {o for what, o in run.log if what.startswith("window")}
    assert paid and refused("window_overlap") in outcomes, outcomes
    if period_s == 6:  # long periods: some windows that do not overlap still share a period
        assert refused("period_limit") in outcomes, outcomes
    run.books_agree("p")


# ============================================================================== economic security (§14)

DELAY = 14 * DAY  # bond unlock delay: longer than the 7-day claim window of `Runner.terms`
PARAMS = EconParams(min_oracle_bond=1_000, max_staging_cost=500, reporter_share_bps=2_500, unlock_delay_ms=DELAY)


def bond(who: int | DeviceSim, amount: int) -> PostBond:
    if isinstance(who, DeviceSim):
        return PostBond(holder_kind=BondHolder.DEVICE, holder_id=who.device_id, amount=amount)
    return PostBond(holder_kind=BondHolder.ORACLE, holder_id=oracle_identity(who).public_key, amount=amount)


def unbond(who: int | DeviceSim, step: UnbondStep) -> Unbond:
    if isinstance(who, DeviceSim):
        return Unbond(holder_kind=BondHolder.DEVICE, holder_id=who.device_id, step=step)
    return Unbond(holder_kind=BondHolder.ORACLE, holder_id=oracle_identity(who).public_key, step=step)


def econ_on(r: Runner, oracles: range = range(5)) -> None:
    for i in oracles:
        r.both(f"bond oracle {i}", lambda b, i=i: b.admin_tx(bond(i, 1_000)), OK)
    r.both("EC1 set_econ_params", lambda b: b.admin_tx(PARAMS), OK)


def test_bonds_membership_and_the_unlock_delay_read_the_same(run: Runner) -> None:
    r = run
    dev = r.device()
    r.both("EC3 unbond before the rules are on", lambda b: b.admin_tx(unbond(0, UnbondStep.REQUEST)),
           refused("invalid_state_transition"))
    r.both("EC1 members not bonded", lambda b: b.admin_tx(PARAMS), refused("insufficient_bond"))
    r.both("EC1 reporter share > 100 %", lambda b: b.admin_tx(PARAMS.replace(reporter_share_bps=10_001)),
           refused("invalid_parameters"))
    r.both("EC2 bond of 0", lambda b: b.admin_tx(bond(0, 0)), refused("invalid_parameters"))
    r.both("EC2 bond of a device never enrolled", lambda b: b.admin_tx(bond(DeviceSim.create(anchor_ts=r.now), 5)),
           refused("not_found"))
    r.both("EC2 device bond", lambda b: b.admin_tx(bond(dev, 300)), OK)
    econ_on(r)
    r.both("bond oracle 5 (below the minimum)", lambda b: b.admin_tx(bond(5, 400)), OK)
    r.both("EC3 a member's bond is in use", lambda b: b.admin_tx(unbond(0, UnbondStep.REQUEST)), refused("bond_in_use"))
    r.both("EC2 rotate to an under-bonded member", lambda b: b.rotate([1, 2, 3, 4, 5], 4), refused("insufficient_bond"))
    r.both("top up oracle 5", lambda b: b.admin_tx(bond(5, 600)), OK)
    r.both("rotate to oracles 1..5", lambda b: b.rotate([1, 2, 3, 4, 5], 4), OK)
    r.both("EC3 release before a request", lambda b: b.admin_tx(unbond(0, UnbondStep.RELEASE)), refused("bond_locked"))
    r.both("EC3 request (no longer a member)", lambda b: b.admin_tx(unbond(0, UnbondStep.REQUEST)), OK)
    r.both("EC3 request twice", lambda b: b.admin_tx(unbond(0, UnbondStep.REQUEST)),
           refused("invalid_state_transition"))
    r.both("EC2 bond while unlocking", lambda b: b.admin_tx(bond(0, 5)), refused("invalid_state_transition"))
    r.both("EC2 an unlocking bond counts 0", lambda b: b.rotate([0, 1, 2, 3, 4], 4), refused("insufficient_bond"))
    r.at(r.now + DELAY - MINUTE)
    r.both("EC3 release before the delay", lambda b: b.admin_tx(unbond(0, UnbondStep.RELEASE)), refused("bond_locked"))
    before = r.books_agree()
    r.at(r.now + MINUTE)
    r.both("EC3 release at the delay", lambda b: b.admin_tx(unbond(0, UnbondStep.RELEASE)), OK)
    r.both("EC3 release twice", lambda b: b.admin_tx(unbond(0, UnbondStep.RELEASE)), refused("not_found"))
    after = r.books_agree()
    assert after["bonds"] == before["bonds"] - 1_000 and after["free"] == before["free"], (before, after)
    assert after["bonds"] == 4 * 1_000 + 1_000 + 300  # oracles 1..4, 5 (400 + 600), the device


def test_the_soundness_table_reads_the_same(run: Runner) -> None:
    """EC4/EC5: oracle path = 4 x 1000 (k = 4); a device path of m device bonds + m x min(staging, 500)."""
    r = run
    devs = [r.device() for _ in range(4)]
    t0 = r.terms(devs[0], amount=300)
    r.both("EC5 before the rules are on", lambda b: b.issue_econ("x", EconPolicy(terms=t0, staging_cost=0, group=(), min_proofs=1,
                                                                          overlap_tolerance_ms=0)),
           refused("invalid_state_transition"))
    econ_on(r)
    r.issue("unbonded", devs[0], expect=refused("insufficient_bond"))
    for d in devs:
        r.both("bond device", lambda b, d=d: b.admin_tx(bond(d, 200)), OK)

    def econ(handle: str, dev: DeviceSim, expect: Outcome, *, amount: int, staging: int = 0, group: tuple[DeviceSim, ...] = (),
             m: int = 1, tol: int = 0, **o: int) -> None:
        terms = r.terms(dev, amount=amount, **o)
        e = EconPolicy(terms=terms, staging_cost=staging, group=tuple(sorted(d.device_id for d in group)),
                       min_proofs=m, overlap_tolerance_ms=tol)
        r.both(f"issue {handle}", lambda b: b.issue_econ(handle, e), expect)

    unsound = refused("economically_unsound")
    econ("bond only, 300 >= 200", devs[0], unsound, amount=300)
    econ("break-even 200 = 200", devs[0], unsound, amount=200)
    econ("staging capped: 800 >= 200 + 500", devs[0], unsound, amount=800, staging=5_000)
    econ("claim window = unlock delay", devs[0], unsound, amount=10, claim_window_ms=DELAY)
    econ("a group of one", devs[0], refused("invalid_parameters"), amount=10, group=(devs[0],), m=1)
    econ("m = 1 in a group", devs[0], refused("invalid_parameters"), amount=10, group=tuple(devs[:3]), m=1)
    econ("m > group", devs[0], refused("invalid_parameters"), amount=10, group=tuple(devs[:3]), m=4)
    econ("device outside its group", devs[3], refused("invalid_parameters"), amount=10, group=tuple(devs[:3]), m=2)
    econ("tolerance without a group", devs[0], refused("invalid_parameters"), amount=10, tol=5)
    econ("m = 0 (issuePolicy's own path stays its own)", devs[0], refused("invalid_parameters"), amount=10, m=0)
    econ("m = 0 with a group", devs[0], refused("invalid_parameters"), amount=10, group=tuple(devs[:3]), m=0)
    econ("m = 2: 650 >= 2 x 200 + 2 x 100", devs[0], unsound, amount=650, staging=100, group=tuple(devs[:3]), m=2)
    econ("m = 3: 650 < 3 x 200 + 3 x 100", devs[0], OK, amount=650, staging=100, group=tuple(devs[:3]), m=3)
    econ("a group device has an open policy", devs[1], refused("active_policy_exists"), amount=10)
    econ("staging raised: 300 < 200 + 150", devs[3], OK, amount=300, staging=150)
    r.both("EC3 a bond under an open policy is in use", lambda b: b.admin_tx(unbond(devs[3], UnbondStep.REQUEST)),
           refused("bond_in_use"))
    rich = r.device()
    r.both("a large device bond", lambda b: b.admin_tx(bond(rich, 50_000)), OK)
    econ("oracle path binds: 4000 >= 4 x 1000", rich, unsound, amount=4_000, coverage=5_000)
    econ("oracle path: 3999 < 4 x 1000", rich, OK, amount=3_999, coverage=5_000)
    r.books_agree("m = 3: 650 < 3 x 200 + 3 x 100", "staging raised: 300 < 200 + 150", "oracle path: 3999 < 4 x 1000")


def _slash_setup(r: Runner) -> tuple[DeviceSim, int, int]:
    econ_on(r)
    dev = r.device()
    r.both("device bond", lambda b: b.admin_tx(bond(dev, 5_000)), OK)
    r.issue("p", dev, period_ms=SECOND)
    s = window(dev, r.now - MINUTE, TRIGGERING * 3)
    return dev, s, s + N


def test_oracle_slashing_evidence_reads_the_same(run: Runner) -> None:
    r = run
    dev, s, s2 = _slash_setup(r)
    good, other = ClaimSpec("p", dev, s), ClaimSpec("p", dev, s2)
    conflicting = ClaimSpec("p", dev, s, tamper=lambda b: b.replace(amount=101))
    votes = lambda ev: lambda b: b.report_votes(ev)  # noqa: E731
    r.both("S1 the same approval twice", votes(VoteEvidence(good, good, 2)), refused("evidence_invalid"))
    r.both("S1 two claims", votes(VoteEvidence(good, other, 2)), refused("evidence_invalid"))
    r.both("S1 forged (oracle 3 signed for 2)", votes(VoteEvidence(good, conflicting, 2, forged_by=3)),
           refused("evidence_invalid"))
    r.both("S1 not a member", votes(VoteEvidence(good, conflicting, 7)), refused("evidence_invalid"))
    wrong = ClaimSpec("p", dev, s, tamper=lambda b: b.replace(ledger_id=b"\x07" * 32))
    wrong2 = ClaimSpec("p", dev, s, tamper=lambda b: b.replace(ledger_id=b"\x07" * 32, amount=7))
    r.both("another ledger", votes(VoteEvidence(wrong, wrong2, 2)), refused("wrong_ledger"))
    before = r.books_agree("p")
    r.both("S3 equivocation slashes oracle 2", votes(VoteEvidence(good, conflicting, 2)), OK)
    after = r.books_agree("p")
    assert (after["bonds"], after["rewards"], after["free"]) == \
        (before["bonds"] - 1_000, before["rewards"] + 250, before["free"] + 750), (before, after)
    r.both("S2 duplicate", votes(VoteEvidence(good, conflicting, 2)), refused("evidence_duplicate"))
    r.both("S1 an approval that agrees with its policy", votes(VoteEvidence(good, None, 1)),
           refused("evidence_invalid"))
    r.both("S1 a forged contradicting approval", votes(VoteEvidence(conflicting, None, 1, forged_by=0)),
           refused("evidence_invalid"))
    r.both("S3 a contradicting approval slashes oracle 1", votes(VoteEvidence(conflicting, None, 1)), OK)
    r.both("a slashed oracle never bonds again", lambda b: b.admin_tx(bond(1, 1_000)), refused("slashed_member"))
    r.both("bond oracle 5", lambda b: b.admin_tx(bond(5, 1_000)), OK)
    r.both("bond oracle 6", lambda b: b.admin_tx(bond(6, 1_000)), OK)
    r.both("EC2 a slashed member at rotation", lambda b: b.rotate([0, 2, 3, 4, 5], 4), refused("slashed_member"))
    r.both("rotate the slashed out", lambda b: b.rotate([0, 3, 4, 5, 6], 4), OK)
    r.both("S2 evidence of the previous set, inside the delay", votes(VoteEvidence(good, conflicting, 3)), OK)
    r.at(r.now + DELAY + MINUTE)
    r.both("S2 evidence of the previous set, after the delay", votes(VoteEvidence(good, conflicting, 4)),
           refused("evidence_stale"))
    r.pay("the new set certifies, but the claim window has closed",
          ClaimSpec("p", dev, s, epoch=1, signers=(0, 4, 5, 6)), refused("claim_window_closed"))
    end = r.books_agree("p")
    assert (end["bonds"], end["rewards"]) == (before["bonds"] - 3_000 + 2_000, before["rewards"] + 750), end


def test_device_slashing_evidence_reads_the_same(run: Runner) -> None:
    r = run
    dev, s, s2 = _slash_setup(r)
    r.pay("a window paid before", ClaimSpec("p", dev, s), ("paid", 100))
    frames = lambda ev: lambda b: b.report_frames(ev)  # noqa: E731
    seq = s2 + 1
    r.both("S1 the same frame twice", frames(FrameEvidence(dev, seq, same=True)), refused("evidence_invalid"))
    r.both("S1 a forged second frame", frames(FrameEvidence(dev, seq, forged=True)), refused("evidence_invalid"))
    r.both("S1 a device never enrolled", frames(FrameEvidence(DeviceSim.create(anchor_ts=r.now - DAY), 0)),
           refused("not_found"))
    before = r.books_agree("p")
    r.both("S3 double-signed frames slash the device", frames(FrameEvidence(dev, seq)), OK)
    after = r.books_agree("p")
    assert (after["bonds"], after["rewards"], after["free"]) == \
        (before["bonds"] - 5_000, before["rewards"] + 1_250, before["free"] + 3_750), (before, after)
    r.both("S2 duplicate", frames(FrameEvidence(dev, seq - 1)), refused("evidence_duplicate"))
    r.pay("S3 an unpaid window that ended before the slash", ClaimSpec("p", dev, s2), refused("device_revoked"))
    r.both("the slash revoked it", lambda b: b.admin_tx(RevokeDevice(device_id=dev.device_id)),
           refused("invalid_state_transition"))
    old = r.device()
    r.both("S2 frames older than the unlock delay", frames(FrameEvidence(old, 0, ts=r.now - DELAY - MINUTE)),
           refused("evidence_stale"))
    r.books_agree("p")


def test_corroborated_group_payouts_read_the_same(run: Runner) -> None:
    """C1..C3 on both: m - 1 proofs, two proofs from one agent, windows that do not overlap, a device
    outside the group, then one payout for the group (every window's proof verified on chain),
    replayed, re-certified with other agents, and the period limit on the group's span."""
    r = run
    econ_on(r)
    a, b, c, d = (r.device() for _ in range(4))
    for dev in (a, b, c, d):
        r.both("bond device", lambda be, dev=dev: be.admin_tx(bond(dev, 1_000)), OK)
    agents = [bytes([0x20 + i]) * 32 for i in range(3)]
    for ag in agents:
        r.both("enrol agent", lambda be, ag=ag: be.admin_tx(EnrolAgent(agent_id=ag)), OK)
    terms = r.terms(a, amount=100)
    group = tuple(sorted(x.device_id for x in (a, b, c)))
    e = EconPolicy(terms=terms, staging_cost=100, group=group, min_proofs=2, overlap_tolerance_ms=2 * SECOND)
    r.both("issue the group policy", lambda be: be.issue_econ("g", e), OK)
    t = r.now - MINUTE
    wa, wb = window(a, t), window(b, t + 1_500)
    wc = window(c, t - 30 * SECOND)  # far from the others
    wd = window(d, t)
    A1, A2, A3 = agents
    g = lambda *parts, **o: (lambda be: be.group_payout(GroupSpec("g", parts, **o)))  # noqa: E731
    r.both("C1 m - 1 proofs", g((a, wa, A1)), refused("corroboration_too_few"))
    r.both("C2 two proofs from one agent", g((a, wa, A1), (b, wb, A1)), refused("corroboration_same_agent"))
    r.both("C3 windows that do not overlap", g((a, wa, A1), (c, wc, A2)), refused("corroboration_no_overlap"))
    r.both("Q4 a device outside the group", g((a, wa, A1), (d, wd, A2)), refused("payout_mismatch"))
    r.both("Q3 k - 1 signers", g((a, wa, A1), (b, wb, A2), signers=(0, 1, 2)), refused("qc_insufficient_signatures"))
    r.pay("a plain QC for a group device", ClaimSpec("g", a, wa), refused("payout_mismatch"))
    r.both("pays once for the group", g((a, wa, A1), (b, wb, A2)), ("paid", 100))
    r.both("replayed", g((a, wa, A1), (b, wb, A2), signers=(1, 2, 3, 4)), ("existing", 100))
    r.both("Q2 the same windows filed by other agents", g((a, wa, A2), (b, wb, A3)), refused("claim_conflict"))
    wa2, wb2 = window(a, r.now - 20 * SECOND), window(b, r.now - 20 * SECOND)
    r.both("P5 another incident the same day", g((a, wa2, A1), (b, wb2, A2)), refused("period_limit"))
    books = r.books_agree("g")
    assert books["paid"] == 100 and r.rules.locked("g") == 900
    r.issue("b while the group's policy is open", b, expect=refused("active_policy_exists"))
    r.at(terms.end_ms + terms.claim_window_ms + SECOND)
    r.both("expire the group's policy", lambda be: be.expire("g"), OK)
    r.issue("b after", b, start_ms=r.now - DAY, end_ms=r.now + DAY)  # every group device is free again
    r.books_agree("g", "b after")
