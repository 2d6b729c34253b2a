"""The pool contract behind `ledger/settlement.py`'s interface (DESIGN §11, §13).

`connect("evm+http://HOST:PORT?contract=0x…&from=0x…&confirmations=N")` returns an
`EvmSettlement`: the InsurancePool at `contract` on the JSON-RPC node at `http://HOST:PORT`,
sending transactions from the node's unlocked account `from` (optional: without it the backend
only reads), following the pool's events `confirmations` blocks behind the head (default 0:
anvil's instant blocks; more on a chain that reorganises).

What it offers, and what it refuses:
- Chain-native operations: `status()`/`state()` (the contract's books, oracle set, block, time),
  `events(wait)` (the pool's confirmed events, in chain order, once each: `ledger.evm.follow`),
  `paid(claim_id)` (what the confirmed Paid events said: how an oracle that did not send the
  completing transaction learns that the claim is paid and stops), `post_chain_qc(qc, proof)` (pay
  a claim with its EIP-712/ECDSA certificate and Groth16 proof; idempotent by claim_id),
  `expire(policy_id)`, `submit_admin(args)` (authorised by msg.sender = the admin account, not by
  an Ed25519 signature).
- The Ed25519 ledger's own forms are refused with BAD_REQUEST naming the chain-native call:
  `entries`/`signed_head` (a chain has blocks and events, not signed ledger entries: the daemons'
  `LedgerFollower`, which replays entries through `ledger.state`, cannot follow a chain; DESIGN §13
  says why and what is missing), `post_qc`/`submit` of an Ed25519 QC, a signed admin transaction,
  an anchor or evidence (the contract checks ECDSA over the EIP-712 body and msg.sender).

Web3 is synchronous; every call runs in a worker thread so an event loop never blocks on the node.
What this file must never do: decide a rule (the contract does), hold or log a private key (the
node holds the unlocked account; an oracle's chain key stays in `ledger.evm.typed.ChainKey`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from web3 import Web3

from faultproof.errors import FaultproofError, Reason
from faultproof.messages import Message, QuorumCertificate, SignedEntry, SignedHead
from ledger.client import SubmitResult
from ledger.evm.follow import ChainEvent, ChainFollower
from ledger.evm.pool import ChainQc, EvmPool, PayoutResult

SCHEME = "evm+"
MAX_CONFIRMATIONS = 1_000
_QUERY_KEYS = {"contract", "from", "confirmations"}


@dataclass(frozen=True)
class EvmUrl:
    """A parsed `evm+http(s)://host:port?contract=0x…&from=0x…&confirmations=N`."""

    rpc_url: str
    contract: str
    sender: str | None
    confirmations: int


def _bad(message: str) -> FaultproofError:
    return FaultproofError(Reason.BAD_REQUEST, message)


def parse_evm_url(url: str) -> EvmUrl:
    """The parts of an EVM settlement URL; BAD_REQUEST naming the problem and the fix."""
    if not url.startswith(SCHEME):
        raise _bad(f"{url!r} is not an EVM settlement URL (evm+http://HOST:PORT?contract=0x...)")
    parts = urlsplit(url[len(SCHEME):])
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _bad(f"{url!r}: expected evm+http://HOST:PORT?contract=0x... (a JSON-RPC node)")
    query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=False)
    unknown = set(query) - _QUERY_KEYS
    if unknown:
        raise _bad(f"{url!r}: unknown parameter(s) {sorted(unknown)}; allowed: contract, from, confirmations")
    if any(len(v) != 1 for v in query.values()):
        raise _bad(f"{url!r}: each parameter may appear once")
    contract = query.get("contract", [""])[0]
    if not Web3.is_address(contract):
        raise _bad(f"{url!r}: contract= must be the pool's address (0x + 40 hex digits)")
    sender = query.get("from", [None])[0]
    if sender is not None and not Web3.is_address(sender):
        raise _bad(f"{url!r}: from= must be an account address (0x + 40 hex digits)")
    raw_conf = query.get("confirmations", ["0"])[0]
    if not raw_conf.isdigit() or int(raw_conf) > MAX_CONFIRMATIONS:
        raise _bad(f"{url!r}: confirmations= must be a whole number 0..{MAX_CONFIRMATIONS}")
    rpc = f"{parts.scheme}://{parts.netloc}{parts.path}"
    return EvmUrl(rpc, Web3.to_checksum_address(contract),
                  Web3.to_checksum_address(sender) if sender is not None else None, int(raw_conf))


class EvmSettlement:
    """The settlement interface over one deployed InsurancePool (see the module docstring)."""

    def __init__(self, url: str, *, timeout: float = 30.0) -> None:
        self.url = parse_evm_url(url)
        self.w3 = Web3(Web3.HTTPProvider(self.url.rpc_url, request_kwargs={"timeout": timeout}))
        self._pool: EvmPool | None = None
        self._follower: ChainFollower | None = None
        self._lock = asyncio.Lock()  # one poll of the chain at a time

    # -- plumbing ----------------------------------------------------------------------------

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a web3 call in a thread; transport failures become UNAVAILABLE naming the node."""
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except FaultproofError:
            raise
        except (OSError, ConnectionError) as e:
            raise FaultproofError(Reason.UNAVAILABLE,
                                  f"cannot reach the chain node at {self.url.rpc_url} ({type(e).__name__})") from None

    def _open(self) -> EvmPool:
        if self._pool is None:
            if not self.w3.eth.get_code(Web3.to_checksum_address(self.url.contract)):
                raise FaultproofError(Reason.NOT_FOUND, f"no contract at {self.url.contract} on {self.url.rpc_url}: "
                                      "check contract= in the settlement URL")
            self._pool = EvmPool(self.w3, self.url.contract, self.url.sender or "")
            self._follower = ChainFollower(self._pool, confirmations=self.url.confirmations)
        return self._pool

    async def pool(self) -> EvmPool:
        return await self._call(self._open)  # type: ignore[no-any-return]

    def _sender(self) -> str:
        if self.url.sender is None:
            raise _bad("this EVM settlement URL has no from= account: it can read the pool but not send transactions")
        return self.url.sender

    # -- chain-native operations -------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        pool = await self.pool()
        out: dict[str, Any] = await self._call(pool.status)
        out["confirmations"] = self.url.confirmations
        return out

    async def events(self, wait: float = 0.0, poll_s: float = 0.05) -> list[ChainEvent]:
        """The pool's events confirmed since the last call (in chain order, once each), waiting up
        to `wait` s for at least one."""
        await self.pool()
        assert self._follower is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            async with self._lock:
                got: list[ChainEvent] = await self._call(self._follower.poll)
            if got or loop.time() >= deadline:
                return got
            await asyncio.sleep(poll_s)

    def paid(self, claim_id: bytes) -> int | None:
        """The amount a confirmed Paid event paid for claim_id (None: not seen paid yet)."""
        return self._follower.paid.get(claim_id) if self._follower is not None else None

    async def post_chain_qc(self, qc: ChainQc, proof: bytes) -> PayoutResult:
        """Pay a claim: the EIP-712 body, k ECDSA signatures, and the Groth16 proof."""
        pool, sender = await self.pool(), self._sender()
        result: PayoutResult = await self._call(pool.post_qc, qc, proof, sender)
        return result

    async def expire(self, policy_id: bytes) -> Any:
        pool, sender = await self.pool(), self._sender()
        return await self._call(pool.expire, policy_id, sender)

    async def submit_admin(self, args: Message) -> Any:
        pool, sender = await self.pool(), self._sender()
        return await self._call(pool.submit_admin, args, sender)

    # -- the Settlement protocol -------------------------------------------------------------

    async def state(self) -> dict[str, Any]:
        return await self.status()

    async def entries(self, after: int = -1, wait: float = 0.0,
                      limit: int | None = None) -> tuple[int, list[SignedEntry]]:
        raise _bad("the EVM backend has no signed ledger entries: follow the pool's events "
                   "(EvmSettlement.events) instead")

    async def signed_head(self) -> SignedHead:
        raise _bad("the EVM backend has no signed ledger head: the chain's blocks, `confirmations` deep, take its place")

    async def post_qc(self, qc: QuorumCertificate) -> SubmitResult:
        raise _bad("the pool contract pays an EIP-712 certificate with ECDSA signatures and the proof: "
                   "use EvmSettlement.post_chain_qc, not an Ed25519 QC")

    async def submit(self, tx: Message) -> SubmitResult:
        raise _bad(f"the EVM backend takes no signed {tx.NAME}: use submit_admin (sent by the admin account), "
                   "expire or post_chain_qc")

    async def close(self) -> None:
        provider = self.w3.provider
        closer = getattr(provider, "disconnect", None)
        if closer is not None:
            await asyncio.to_thread(closer)
