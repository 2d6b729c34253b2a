"""The oracle's replica of the ledger: the one follower of `ledger.follower`, under the names the
node uses.

Oracles and agents follow the ledger with the same code (`ledger.follower.LedgerFollower`: replay
through the ledger's rules, signed-head checks, the clock rule, reconnect with backoff), so they
cannot disagree about what the ledger says. This file must never grow a second follower.
"""

from __future__ import annotations

from ledger.follower import LedgerFollower, LedgerView

__all__ = ["LedgerFollower", "LedgerView"]
