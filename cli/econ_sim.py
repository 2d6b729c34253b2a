"""A seeded Monte-Carlo of a faultproof network's money over many years (DESIGN §14).

A network of honest and dishonest device operators and oracles, one policy per operator, runs for
`years` independent years of `periods` periods each (at most one payout per policy per period):

- An honest operator's device really malfunctions at `malfunction_rate` per year (Poisson); each
  incident is paid `payout`, up to the policy's coverage.
- A dishonest operator controls the `m` devices (distinct agents) a claim on its policy needs and
  fakes one incident per period, by staging it (each device costs `staging_cost` per attempt; a
  staged claim is caught with probability `p_detect_stage`) or by forging frames with a leaked
  key (no staging cost; the real device keeps signing its own frames, so a double-signed frame is
  seen with probability `p_detect_forge` per device). The first attempt that is caught slashes
  its m device bonds (`reporter_share_bps` to the reporter, the rest to the pool) and revokes the
  devices: it is paid nothing more that year. It chooses the path with the higher expected profit.
- Dishonest oracles collude only if they are at least k; then each period they certify a fake
  incident on every policy until caught (`p_detect_collusion` per period: a contradicting Approve
  or an equivocation is public evidence), which slashes their bonds.
- Every operator pays the premium: the expected honest loss times (1 + `load`).

It reports, summed over all years: the pool's result (premiums + slashed-to-pool - payouts), the
payouts to cheaters, what was slashed, and the cheaters' net profit (payouts - staging costs -
bonds lost - premiums paid). The rule's promise is that this profit is negative when the soundness
rule holds and cheating is caught with the stated probabilities; `soundness` says whether the
parameters pass `ledger.economics.assess`, the very rule the ledger applies.

Pure and deterministic: `simulate(params)` uses only `random.Random(params.seed)`; no I/O.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field
from typing import Any

from ledger import economics


@dataclass(frozen=True)
class SimParams:
    years: int = 1_000
    seed: int = 1
    periods: int = 365  # claim periods per year (at most one payout per policy per period)
    operators: int = 100  # policyholders (each with one policy)
    dishonest_share: float = 0.2
    m: int = 1  # proofs a claim needs (devices the cheater must control)
    payout: int = 100  # per incident
    coverage: int = 1_000  # per policy-year
    device_bond: int = 150
    staging_cost: int = 50  # per device per attempt (the real cost to the cheater)
    declared_staging_cost: int = 50  # what the underwriter declared (the rule caps it)
    max_staging_cost: int = 500
    malfunction_rate: float = 2.0  # real incidents per device-year
    load: float = 0.3
    p_detect_stage: float = 0.5
    p_detect_forge: float = 0.9
    oracles: int = 5
    k: int = 4
    dishonest_oracles: int = 1
    oracle_bond: int = 1_000
    p_detect_collusion: float = 0.9
    reporter_share_bps: int = 2_000

    def check(self) -> str | None:
        if self.years < 1 or self.periods < 1 or self.operators < 1:
            return "years, periods and operators must be >= 1"
        if not 0 <= self.dishonest_share <= 1:
            return "dishonest_share must be in [0, 1]"
        for name in ("p_detect_stage", "p_detect_forge", "p_detect_collusion"):
            if not 0 < getattr(self, name) <= 1:
                return f"{name} must be in (0, 1]"
        if not 1 <= self.m or not self.k <= self.oracles or self.dishonest_oracles > self.oracles:
            return "need m >= 1, k <= oracles, dishonest_oracles <= oracles"
        if self.payout < 1 or self.coverage < self.payout:
            return "need 1 <= payout <= coverage"
        return None


@dataclass
class SimResult:
    params: SimParams
    soundness: economics.Soundness
    premiums: int = 0
    honest_payouts: int = 0
    cheater_payouts: int = 0
    collusion_payouts: int = 0
    staging_spent: int = 0
    slashed_devices: int = 0
    slashed_oracles: int = 0
    to_reporters: int = 0
    to_pool: int = 0
    cheater_premiums: int = 0
    cheater_profit_by_year: list[int] = field(default_factory=list)
    pool_by_year: list[int] = field(default_factory=list)

    @property
    def cheater_net_profit(self) -> int:
        lost_bonds = self.slashed_devices + self.slashed_oracles
        return self.cheater_payouts + self.collusion_payouts - self.staging_spent - lost_bonds - self.cheater_premiums

    @property
    def cheater_profit_before_premiums(self) -> int:
        """What cheating itself nets (premiums are paid by honest and dishonest operators alike)."""
        return self.cheater_net_profit + self.cheater_premiums

    @property
    def pool_result(self) -> int:
        return self.premiums + self.to_pool - self.honest_payouts - self.cheater_payouts - self.collusion_payouts

    def summary(self) -> dict[str, Any]:
        years = len(self.cheater_profit_by_year)
        return {
            "params": asdict(self.params),
            "soundness": {"payout": self.soundness.payout, "cheapest": self.soundness.cheapest.path.value,
                          "cost": self.soundness.cheapest.cost, "profit": self.soundness.profit,
                          "sound": self.soundness.sound},
            "years": years,
            "pool_result": self.pool_result,
            "pool_worst_year": min(self.pool_by_year),
            "premiums": self.premiums,
            "honest_payouts": self.honest_payouts,
            "payouts_to_cheaters": self.cheater_payouts + self.collusion_payouts,
            "slashed": {"devices": self.slashed_devices, "oracles": self.slashed_oracles,
                        "to_reporters": self.to_reporters, "to_pool": self.to_pool},
            "staging_spent": self.staging_spent,
            "cheaters_net_profit": self.cheater_net_profit,
            "cheaters_profit_before_premiums": self.cheater_profit_before_premiums,
            "cheaters_best_year": max(self.cheater_profit_by_year),
            "cheaters_profitable_years": sum(p > 0 for p in self.cheater_profit_by_year),
        }


def _poisson(rng: random.Random, lam: float) -> int:
    """Knuth's method; lam is small (incidents per device-year)."""
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _first_caught(rng: random.Random, p: float, periods: int) -> int | None:
    """The attempt (1-based) at which a cheater is first caught, or None if not within `periods`."""
    if p >= 1:
        return 1
    u = 1.0 - rng.random()  # (0, 1]
    n = int(math.log(u) / math.log(1 - p)) + 1  # geometric
    return n if n <= periods else None


def simulate(params: SimParams) -> SimResult:
    problem = params.check()
    if problem is not None:
        raise ValueError(problem)
    p = params
    soundness = economics.assess(
        p.payout, device_bonds=[p.device_bond] * p.m, m=p.m,
        staging_cost=min(p.declared_staging_cost, p.max_staging_cost),
        oracle_bonds=[p.oracle_bond] * p.oracles, k=p.k)
    result = SimResult(p, soundness)
    rng = random.Random(p.seed)
    cheaters = round(p.operators * p.dishonest_share)
    honest = p.operators - cheaters
    max_paid = p.coverage // p.payout  # incidents a policy can pay in a year
    expected_loss = min(p.malfunction_rate, max_paid, p.periods) * p.payout
    premium = int(expected_loss * (1 + p.load))
    # per-attempt detection of each path (a forged claim is caught if any of its m devices is)
    p_forge = 1 - (1 - p.p_detect_forge) ** p.m
    p_stage = p.p_detect_stage
    bonds = p.m * p.device_bond

    def expected_profit(pd: float, cost: int) -> float:  # over attempts until caught, per year
        attempts = min(1 / pd, p.periods)
        return (attempts - 1) * p.payout - attempts * cost - bonds

    stage_cost = p.m * p.staging_cost
    forge = expected_profit(p_forge, 0) >= expected_profit(p_stage, stage_cost)
    p_caught, attempt_cost = (p_forge, 0) if forge else (p_stage, stage_cost)
    colluding = p.dishonest_oracles >= p.k
    for _ in range(p.years):
        year_premiums = premium * p.operators
        honest_paid = sum(min(_poisson(rng, p.malfunction_rate), max_paid, p.periods) * p.payout
                          for _ in range(honest))
        cheat_paid = staging = slashed = 0
        for _ in range(cheaters):
            caught = _first_caught(rng, p_caught, p.periods)
            attempts = p.periods if caught is None else caught
            successes = attempts if caught is None else caught - 1
            cheat_paid += min(successes, max_paid) * p.payout
            staging += attempts * attempt_cost
            if caught is not None:
                slashed += bonds
        collusion_paid = oracle_slashed = 0
        if colluding:
            caught = _first_caught(rng, p.p_detect_collusion, p.periods)
            periods_paid = p.periods if caught is None else caught - 1
            collusion_paid = min(periods_paid, max_paid) * p.payout * p.operators
            if caught is not None:
                oracle_slashed = p.dishonest_oracles * p.oracle_bond
        to_reporters = (slashed + oracle_slashed) * p.reporter_share_bps // economics.BPS
        to_pool = slashed + oracle_slashed - to_reporters
        result.premiums += year_premiums
        result.honest_payouts += honest_paid
        result.cheater_payouts += cheat_paid
        result.collusion_payouts += collusion_paid
        result.staging_spent += staging
        result.slashed_devices += slashed
        result.slashed_oracles += oracle_slashed
        result.to_reporters += to_reporters
        result.to_pool += to_pool
        result.cheater_premiums += premium * cheaters
        result.cheater_profit_by_year.append(cheat_paid + collusion_paid - staging - slashed - oracle_slashed
                                             - premium * cheaters)
        result.pool_by_year.append(year_premiums + to_pool - honest_paid - cheat_paid - collusion_paid)
    return result
