"""Following the pool contract's events, a configurable number of confirmations behind the head.

This is what an oracle or an agent on the EVM backend reads instead of ledger entries (DESIGN
§13): every event of the pool, once, in chain order, only when `confirmations` blocks are on top
of it (0 on anvil's instant blocks; more on a chain that reorganises). `ChainFollower.poll_logs()`
does one `eth_getLogs` over the new confirmed range and keeps each event's transaction hash (the
chain mirror reads two transactions' calldata: ledger/evm/mirror.py); `paid` keeps what the Paid
events said, so an oracle that did not send the completing transaction sees the claim paid and
stops.

I/O is only `poll_logs()`; the fold (`apply`) is pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ledger.evm.pool import ChainEvent, ChainLog, EvmPool

__all__ = ["ChainEvent", "ChainFollower", "ChainLog"]


@dataclass
class ChainFollower:
    pool: EvmPool
    confirmations: int = 0
    next_block: int = 0
    paid: dict[bytes, int] = field(default_factory=dict)  # claim_id -> amount paid
    revoked_devices: set[bytes] = field(default_factory=set)
    oracle_epoch: int = 0

    def poll(self) -> list[ChainEvent]:
        """The pool's events in blocks [next_block, head - confirmations], applied and returned."""
        return [log.event for log in self.poll_logs()]

    def poll_logs(self) -> list[ChainLog]:
        safe = int(self.pool.w3.eth.block_number) - self.confirmations
        if safe < self.next_block:
            return []
        logs = self.pool.logs(self.next_block, safe)
        self.next_block = safe + 1
        self.apply([log.event for log in logs])
        return logs

    def apply(self, events: list[ChainEvent]) -> None:
        for name, args, _block in events:
            if name == "Paid":
                self.paid[bytes(args["claimId"])] = int(args["amount"])
            elif name == "DeviceRevocation":
                self.revoked_devices.add(bytes(args["deviceId"]))
            elif name == "OraclesRotated":
                self.oracle_epoch = int(args["epoch"])
