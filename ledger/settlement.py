"""The narrow interface between the protocol and whatever settles it (DESIGN §11).

Oracles and agents talk to the ledger only through `Settlement`: read its state, follow its signed
entries, read its signed head, post a QC, submit any other transaction (an admin tx, an expiry, a
device-history anchor). The SQLite/HTTP ledger's `ledger.client.LedgerClient` is the first
implementation; a second backend (an EVM contract, `ledger/evm/`) implements the same methods and
can sit behind the follower and the QC poster without touching the oracle or the agent.

What a backend must guarantee: `entries` returns signed entries in height order that replay
through `ledger.state` (the one rule book) from `replay_state(genesis entry)`, with the committed
height (the EVM backend serves the pool's events as such entries: ledger/evm/mirror.py); `submit` is idempotent for a
payout of an already paid claim (the existing entry comes back); errors are `FaultproofError` with
a reason code (UNAVAILABLE for transport failures). This file holds only the interface and
`connect`, which picks the backend for a URL (a second backend adds its scheme there): no I/O, no
rules.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import aiohttp

from faultproof.errors import FaultproofError, Reason
from faultproof.messages import Message, QuorumCertificate, SignedEntry, SignedHead
from ledger.client import LedgerClient, SubmitResult
from ledger.state import LedgerState


@runtime_checkable
class Settlement(Protocol):
    async def state(self) -> dict[str, Any]:
        """A summary of the ledger's state (height, head, balances, oracle set), JSON-shaped."""
        ...

    async def entries(self, after: int = -1, wait: float = 0.0,
                      limit: int | None = None) -> tuple[int, list[SignedEntry]]:
        """(committed height, signed entries above `after`), waiting up to `wait` s for new ones."""
        ...

    async def signed_head(self) -> SignedHead:
        """The ledger's signed statement of its current head."""
        ...

    async def post_qc(self, qc: QuorumCertificate) -> SubmitResult:
        """Pay a certified claim (idempotent by claim_id)."""
        ...

    async def submit(self, tx: Message) -> SubmitResult:
        """Any ledger transaction: an admin tx, an expiry, a device-history anchor, a QC."""
        ...

    def replay_state(self, genesis_entry: SignedEntry) -> LedgerState:
        """A replay's starting state from the signed genesis entry (`entries` replay on top of it)."""
        ...

    async def close(self) -> None:
        ...


def connect(url: str, *, timeout: float = 30.0, session: aiohttp.ClientSession | None = None) -> Settlement:
    """The settlement backend behind `url`: http(s):// is the ledger service (LedgerClient);
    evm+http(s)://HOST:PORT?contract=0x...[&from=0x...][&confirmations=N] is the InsurancePool
    contract on that JSON-RPC node (`ledger.evm.settlement.EvmSettlement`, DESIGN §13)."""
    if url.startswith(("http://", "https://")):
        return LedgerClient(url, timeout=timeout, session=session)
    if url.startswith("evm+"):
        from ledger.evm.settlement import EvmSettlement  # web3 only for those who use a chain

        return EvmSettlement(url, timeout=timeout)
    raise FaultproofError(Reason.BAD_REQUEST, f"no settlement backend for {url!r} "
                          "(expected http(s):// or evm+http(s)://...?contract=0x...)")
