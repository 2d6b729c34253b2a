"""Economic security (DESIGN §14): what an attack on a policy costs, whether a policy is sound, how
a slashed bond is split, whether corroborating windows agree, and the economic part of the ledger
state (bonds, slashed offenders, corroborated policies).

The ledger checks that a malfunction was proven from authentic, signed readings; it cannot tell a
real malfunction from a staged one, from a device whose key leaked, or from k colluding oracles.
Against those the only defence is that cheating costs more than it pays, so the ledger refuses to
write a policy whose payout per period is not below the cheapest attack on it:

  device path   a staged or forged claim: the m device bonds it puts at risk (the m smallest of
                the group; m = 1 for a single-device policy) plus m x the staging cost per device
                the underwriter declared, capped by the network's `max_staging_cost`;
  oracle path   k colluding oracles sign a bad body: the k smallest bonds of the current set.

  cost = min(device path, oracle path); profit = payout per period - cost; sound iff profit < 0.

Everything here is pure: integers in, decisions out; no clock, no I/O, no signatures (the ledger
state verifies those and passes the facts in). `ledger/state.py` calls these functions from its
economic block; `cli/econ.py` uses the same ones for `econ report` and `econ simulate`, so the
report and the rule can never disagree. This file must never import `ledger.state`.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

from faultproof.errors import Reason
from faultproof.messages import BondHolder, EconParams, EconPolicy

BPS = 10_000  # basis points in one
BOND_PREFIX = "bond:"
REWARDS = "rewards"  # reporters' shares of slashed bonds (in the ledger's books, like `paid`)


def bond_account(kind: BondHolder | int, holder_id: bytes) -> str:
    return f"{BOND_PREFIX}{BondHolder(kind).name.lower()}:{holder_id.hex()}"


# --------------------------------------------------------------------------- the soundness rule


class AttackPath(enum.StrEnum):
    DEVICES = "stage_or_forge_devices"  # m device bonds at risk + m x staging cost
    ORACLES = "collude_k_oracles"  # the k smallest oracle bonds


@dataclass(frozen=True)
class Attack:
    path: AttackPath
    cost: int
    detail: str


@dataclass(frozen=True)
class Soundness:
    payout: int  # per period (the policy's amount: at most one payout per period)
    attacks: tuple[Attack, ...]

    @property
    def cheapest(self) -> Attack:
        return min(self.attacks, key=lambda a: a.cost)

    @property
    def profit(self) -> int:
        """What the cheapest attack nets per period (negative: cheating does not pay)."""
        return self.payout - self.cheapest.cost

    @property
    def sound(self) -> bool:
        return self.profit < 0


def effective_staging_cost(declared: int, params: EconParams) -> int:
    """The staging cost the rule counts: what the underwriter declared, at most the network cap
    (an underwriter cannot make a thin bond look sufficient by declaring staging expensive)."""
    return min(declared, params.max_staging_cost)


def smallest_sum(values: Sequence[int], count: int) -> int | None:
    """Sum of the `count` smallest values, or None if there are fewer (the attacker's cheapest pick)."""
    if count > len(values):
        return None
    return sum(sorted(values)[:count])


def assess(payout: int, *, device_bonds: Sequence[int], m: int, staging_cost: int,
           oracle_bonds: Sequence[int], k: int) -> Soundness:
    """The soundness of a policy paying `payout` per period. `device_bonds` are the active bonds of
    the devices whose proofs can pay it (the group, or the one device), `staging_cost` the
    effective cost per device, `oracle_bonds` the active bonds of the current oracle set."""
    dev = smallest_sum(device_bonds, m)
    orc = smallest_sum(oracle_bonds, k)
    attacks: list[Attack] = []
    # A path that cannot pay is no attack: fewer than m devices the ledger would still pay (the
    # others slashed) closes the device path. The oracle path is always open (k <= n).
    if dev is not None:
        attacks.append(Attack(AttackPath.DEVICES, dev + m * staging_cost,
                              f"{m} device bond(s) {dev} + {m} x staging {staging_cost}"))
    attacks.append(Attack(AttackPath.ORACLES, 0 if orc is None else orc, f"{k} smallest oracle bond(s)"))
    return Soundness(payout, tuple(attacks))


# --------------------------------------------------------------------------- slashing


def slash_split(bond: int, reporter_share_bps: int) -> tuple[int, int]:
    """(reporter's share, pool's share) of a slashed bond; the pool gets the rounding."""
    reporter = bond * reporter_share_bps // BPS
    return reporter, bond - reporter


def validate_params(p: EconParams) -> str | None:
    if p.reporter_share_bps > BPS:
        return f"reporter_share_bps {p.reporter_share_bps} > {BPS}"
    if p.unlock_delay_ms == 0:
        return "the bond unlock delay must be > 0"
    return None


# --------------------------------------------------------------------------- corroboration


def windows_overlap(windows: Sequence[tuple[int, int]], tolerance_ms: int) -> bool:
    """Whether windows (start_ts, end_ts] share a moment, allowing `tolerance_ms` of clock
    disagreement: the latest start is before the earliest end plus the tolerance."""
    return max(s for s, _ in windows) < min(e for _, e in windows) + tolerance_ms


def corroboration_rejection(agents: Sequence[bytes], windows: Sequence[tuple[int, int]], m: int,
                            tolerance_ms: int) -> Reason | None:
    """m proofs, from distinct agents, for windows that overlap in time (checked in that order)."""
    if len(windows) < m:
        return Reason.CORROBORATION_TOO_FEW
    if len(set(agents)) != len(agents):
        return Reason.CORROBORATION_SAME_AGENT
    if not windows_overlap(windows, tolerance_ms):
        return Reason.CORROBORATION_NO_OVERLAP
    return None


# --------------------------------------------------------------------------- the state


@dataclass
class Bond:
    kind: BondHolder
    holder_id: bytes
    amount: int
    unbond_requested_ms: int | None = None  # unlocking bonds secure nothing new

    @property
    def active(self) -> int:
        return self.amount if self.unbond_requested_ms is None else 0


@dataclass(frozen=True)
class Slash:
    """One accepted slashing: who, by which evidence kind, how much, to whom."""

    kind: BondHolder
    offender: bytes
    evidence: str  # the evidence message's NAME
    reporter: bytes
    slashed: int
    to_reporter: int
    to_pool: int
    height: int
    time_ms: int


@dataclass
class EconState:
    """The economic part of a LedgerState. Only `ledger/state.py` mutates it, in commits."""

    params: EconParams | None = None  # None: the economic rules are off (a ledger that never set them)
    bonds: dict[tuple[BondHolder, bytes], Bond] = field(default_factory=dict)
    bond_total: int = 0  # sum of every bond account (so summaries stay O(1))
    slashed_oracles: set[bytes] = field(default_factory=set)
    slashed_devices: set[bytes] = field(default_factory=set)
    slashes: list[Slash] = field(default_factory=list)
    rewards: dict[bytes, int] = field(default_factory=dict)  # reporter -> total received
    policies: dict[bytes, EconPolicy] = field(default_factory=dict)  # policy_id -> economic terms

    @property
    def enabled(self) -> bool:
        return self.params is not None

    def bond(self, kind: BondHolder, holder_id: bytes) -> Bond | None:
        return self.bonds.get((kind, holder_id))

    def active_bond(self, kind: BondHolder, holder_id: bytes) -> int:
        b = self.bonds.get((kind, holder_id))
        return 0 if b is None else b.active

    def group_of(self, pid: bytes) -> tuple[bytes, ...]:
        """The devices of a corroborated policy (empty for any other policy)."""
        ep = self.policies.get(pid)
        return ep.group if ep is not None else ()

    def min_proofs_of(self, econ: EconPolicy | None) -> int:
        return max(1, econ.min_proofs) if econ is not None else 1
