"""One window per trigger kind (n = 4) that meets its trigger at exactly K (or G)."""

from __future__ import annotations

from dataclasses import dataclass

from faultproof.chain import enc
from faultproof.zk import Kind, TriggerParams


@dataclass(frozen=True)
class Case:
    name: str
    readings: tuple[int, ...]
    timestamps: tuple[int, ...]
    params: TriggerParams
    not_met: TriggerParams  # same window, one more than it has (K + 1, or G + 1)
    t_start: int = 1_000
    c_start: int = 987654321
    blindings: tuple[int, ...] = (11, 22, 33, 44)


CASES: dict[Kind, Case] = {
    # 60 and 70 are above 50; 50 itself is not.
    Kind.COUNT: Case("count", (50, 60, 70, -20), (1100, 1200, 1300, 1400),
                     TriggerParams.count(50, 2), TriggerParams.count(50, 3)),
    # above 50: 60 | 70, 80: the longest run is 2, the count 3.
    Kind.RUN: Case("run", (60, 10, 70, 80), (1100, 1200, 1300, 1400),
                   TriggerParams.run(50, 2), TriggerParams.run(50, 3)),
    Kind.STUCK: Case("stuck", (1, 7, 7, 7), (1100, 1200, 1300, 1400),
                     TriggerParams.stuck(3), TriggerParams.stuck(4)),
    # outside [0, 10]: -5 and 12; 0 and 10 are inside.
    Kind.OUTSIDE: Case("outside", (-5, 0, 12, 10), (1100, 1200, 1300, 1400),
                       TriggerParams.outside(0, 10, 2), TriggerParams.outside(0, 10, 3)),
    # gaps 100, 100, 300, 100.
    Kind.DROPOUT: Case("dropout", (3, 3, 4, 4), (1100, 1200, 1500, 1600),
                       TriggerParams.dropout(300), TriggerParams.dropout(301)),
}


def encoded(case: Case) -> list[int]:
    return [enc(r) for r in case.readings]
