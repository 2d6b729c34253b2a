"""`faultproof ledger verify` on a chain: a pool contract's events replayed through the rules.

A fresh `LedgerFollower` replays every event of the pool through the mirror (DESIGN §13) from
genesis, on the chain's own clock, and the replayed books are compared with the contract's to the
unit. The command and the evm devnet's last check call `verify_pool`. It only reads the chain.
(Its own file: `ledger.settlement` reaches `ledger.evm.settlement`, and the follower imports
`ledger.settlement`, so the follower must not be imported from there.)
"""

from __future__ import annotations

from typing import Any

from ledger.economics import BOND_PREFIX, REWARDS
from ledger.evm.settlement import EvmSettlement
from ledger.follower import LedgerFollower
from ledger.state import FREE, LOCKED_PREFIX, PAID, PREMIUMS

_BOOKS = ("free", "premiums", "paid", "locked", "bonds", "rewards")


async def verify_pool(url: str, *, timeout: float = 60.0) -> dict[str, Any]:
    """`faultproof ledger verify` on a chain (and the evm devnet's last check): a fresh follower
    replays every event of the pool at `url` through the rules (the mirror, DESIGN §13), from
    genesis. `ok` when no event was refused and the replayed books equal the contract's to the
    unit (free, premiums, paid, locked, bonds, rewards)."""
    chain = EvmSettlement(url)
    try:
        status = await chain.status()
        if chain.mirror is None:  # a verdict at once: retrying the follower would not change it
            return {"ok": False, "height": None, "head_hash": None, "books": None, "differ": [],
                    "contract_books": {k: status["books"][k] for k in _BOOKS},
                    "problem": chain.mirror_problem or "the pool has no mirror"}
        # The chain is the clock here: entries are dated by block time, and a node's clock may be
        # behind a chain's (anvil's time can be moved forward); a follower's skew rule would stop short.
        follower = LedgerFollower(chain, 0.1, clock=lambda: int(status["time_ms"]))
        view = await follower.bootstrap(None, timeout=timeout)
        contract = status["books"]
    finally:
        await chain.close()
    b = view.state.balances
    replayed = {"free": b.get(FREE, 0), "premiums": b.get(PREMIUMS, 0), "paid": b.get(PAID, 0),
                "locked": sum(v for k, v in b.items() if k.startswith(LOCKED_PREFIX)),
                "bonds": sum(v for k, v in b.items() if k.startswith(BOND_PREFIX)), "rewards": b.get(REWARDS, 0)}
    problem = chain.mirror.problem if chain.mirror is not None else chain.mirror_problem
    problem = problem or follower.problem
    differ = sorted(k for k in replayed if replayed[k] != contract[k])
    return {"ok": problem is None and not differ, "height": view.height, "head_hash": view.state.head_hash.hex(),
            "books": replayed, "contract_books": {k: contract[k] for k in _BOOKS}, "differ": differ,
            "problem": problem}
