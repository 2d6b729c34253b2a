"""The pool contract behind `ledger/settlement.py`'s interface (DESIGN §11, §13).

`connect("evm+http://HOST:PORT?contract=0x…&from=0x…&confirmations=N")` returns an
`EvmSettlement`: the InsurancePool at `contract` on the JSON-RPC node at `http://HOST:PORT`,
sending transactions from the node's unlocked account `from` (optional: without it the backend
only reads), following the pool's events `confirmations` blocks behind the head (default 0:
anvil's instant blocks; more on a chain that reorganises). Two more parameters bound what history
costs on a long chain: `start_block=N`, the pool's deployment block (no event is read before it;
default 0), and `log_blocks=N`, the most blocks one `eth_getLogs` spans (default 10,000; public
providers refuse wider ranges).

What it offers, and what it refuses:
- Chain-native operations: `status()`/`state()` (the contract's books, oracle set, block, time),
  `events(wait)` (the pool's confirmed events, in chain order, once each: `ledger.evm.follow`),
  `paid(claim_id)` (what the confirmed Paid events said: how an oracle that did not send the
  completing transaction learns that the claim is paid and stops), `post_chain_qc(qc, proof)` (pay
  a claim with its EIP-712/ECDSA certificate and Groth16 proof; idempotent by claim_id),
  `post_chain_group_qc(qc, proofs)` (the same for a corroborated policy's group claim: one proof
  per window), `report_device_slash(body, signatures)` (slash a double-signing device on
  k oracles' DeviceSlash certificate: oracle/device_slash_node.py),
  `expire(policy_id)`, `submit_admin(args)` (authorised by msg.sender = the admin account, not by
  an Ed25519 signature).
- The daemons' view: `entries`/`signed_head`/`replay_state` serve the pool's history as mirror
  entries (`ledger.evm.mirror.ChainMirror`: each confirmed event turned into the ledger
  transaction it stands for and replayed through `ledger.state`), so `LedgerFollower` follows a
  chain unchanged. A pool not deployed with its mirror genesis' id (`deploy_mirrored_pool`) has
  no mirror: `entries` says so. `post_chain_qc(qc, proof, ed25519_qc)` sends the Ed25519 QC's
  signatures after the payout's arguments so the payout replays too.
- The Ed25519 ledger's own write forms are refused with BAD_REQUEST naming the chain-native call:
  `post_qc`/`submit` of an Ed25519 QC, a signed admin transaction, an anchor or evidence (the
  contract checks ECDSA over the EIP-712 body and msg.sender).

Web3 is synchronous; every call runs in a worker thread so an event loop never blocks on the node.
What this file must never do: decide a rule (the contract does), hold or log a private key (the
node holds the unlocked account; an oracle's chain key stays in `ledger.evm.typed.ChainKey`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from hexbytes import HexBytes
from web3 import Web3
from web3.utils.address import get_create_address

from faultproof.errors import FaultproofError, Reason
from faultproof.messages import Message, QuorumCertificate, RegisterCircuit, SignedEntry, SignedHead
from ledger.client import SubmitResult
from ledger.evm.follow import ChainEvent, ChainFollower, ChainLog
from ledger.evm.mirror import (
    NEEDS_CALLDATA,
    ChainMirror,
    MirrorEvent,
    circuit_tail,
    mirror_genesis,
    mirror_state_factory,
    qc_tail,
)
from ledger.evm.pool import MAX_LOG_BLOCKS, ChainQc, EvmPool, PayoutResult
from ledger.evm.typed import Binding, ChainBody, ChainGroupBody, ChainSignature, DeviceSlashBody
from ledger.state import LedgerState

SCHEME = "evm+"
MAX_CONFIRMATIONS = 1_000
MAX_LOG_BLOCKS_PARAM = 1_000_000
_QUERY_KEYS = {"contract", "from", "confirmations", "start_block", "log_blocks"}


@dataclass(frozen=True)
class EvmUrl:
    """A parsed `evm+http(s)://host:port?contract=0x…&from=0x…&confirmations=N&start_block=N&log_blocks=N`."""

    rpc_url: str
    contract: str
    sender: str | None
    confirmations: int
    start_block: int = 0
    log_blocks: int = MAX_LOG_BLOCKS


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
        raise _bad(f"{url!r}: unknown parameter(s) {sorted(unknown)}; allowed: {', '.join(sorted(_QUERY_KEYS))}")
    if any(len(v) != 1 for v in query.values()):
        raise _bad(f"{url!r}: each parameter may appear once")
    contract = query.get("contract", [""])[0]
    if not Web3.is_address(contract):
        raise _bad(f"{url!r}: contract= must be the pool's address (0x + 40 hex digits)")
    sender = query.get("from", [None])[0]
    if sender is not None and not Web3.is_address(sender):
        raise _bad(f"{url!r}: from= must be an account address (0x + 40 hex digits)")

    def whole(name: str, default: int, lo: int, hi: int, what: str) -> int:
        raw = query.get(name, [str(default)])[0]
        if not raw.isdigit() or not lo <= int(raw) <= hi:
            raise _bad(f"{url!r}: {name}= must be a whole number {lo}..{hi} ({what})")
        return int(raw)

    confirmations = whole("confirmations", 0, 0, MAX_CONFIRMATIONS, "blocks on top of an event before it counts")
    start_block = whole("start_block", 0, 0, 2**63 - 1, "the block the pool was deployed in")
    log_blocks = whole("log_blocks", MAX_LOG_BLOCKS, 1, MAX_LOG_BLOCKS_PARAM, "the most blocks one eth_getLogs spans")
    rpc = f"{parts.scheme}://{parts.netloc}{parts.path}"
    return EvmUrl(rpc, Web3.to_checksum_address(contract),
                  Web3.to_checksum_address(sender) if sender is not None else None, confirmations,
                  start_block, log_blocks)


@dataclass(frozen=True)
class SlashResult:
    """A device slash this backend sent: its gas, transaction and block."""

    gas_used: int
    tx_hash: bytes
    block: int


class EvmSettlement:
    """The settlement interface over one deployed InsurancePool (see the module docstring)."""

    def __init__(self, url: str, *, timeout: float = 30.0) -> None:
        self.url = parse_evm_url(url)
        self.w3 = Web3(Web3.HTTPProvider(self.url.rpc_url, request_kwargs={"timeout": timeout}))
        self._pool: EvmPool | None = None
        self._follower: ChainFollower | None = None
        self._mirror: ChainMirror | None = None
        self._mirror_problem: str | None = None
        self._block_times: dict[int, int] = {}
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
            pool = EvmPool(self.w3, self.url.contract, self.url.sender or "", start_block=self.url.start_block,
                           max_log_blocks=self.url.log_blocks)
            self._mirror, self._mirror_problem = open_mirror(pool)
            self._follower = ChainFollower(pool, confirmations=self.url.confirmations, next_block=pool.start_block)
            self._pool = pool
        return self._pool

    def _poll(self) -> list[ChainLog]:
        """One poll of the confirmed chain (in a worker thread); every new event also goes into
        the mirror, with its block's time and, where the mirror needs it, its transaction's input."""
        assert self._follower is not None
        logs = self._follower.poll_logs()
        if self._mirror is not None:
            events = []
            for log in logs:
                calldata = None
                if log.name in NEEDS_CALLDATA:
                    calldata = bytes(self.w3.eth.get_transaction(HexBytes(log.tx_hash))["input"])
                events.append(MirrorEvent(log.name, log.args, log.block, self._block_time(log.block), calldata))
            self._mirror.apply_all(events)
        return logs

    def _block_time(self, block: int) -> int:
        if block not in self._block_times:
            if len(self._block_times) > 1024:
                self._block_times.clear()
            self._block_times[block] = int(self.w3.eth.get_block(block)["timestamp"]) * 1000
        return self._block_times[block]

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
                logs: list[ChainLog] = await self._call(self._poll)
            if logs or loop.time() >= deadline:
                return [log.event for log in logs]
            await asyncio.sleep(poll_s)

    def paid(self, claim_id: bytes) -> int | None:
        """The amount a confirmed Paid event paid for claim_id (None: not seen paid yet)."""
        return self._follower.paid.get(claim_id) if self._follower is not None else None

    async def post_chain_qc(self, qc: ChainQc[ChainBody], proof: bytes,
                            ed25519_qc: QuorumCertificate | None = None) -> PayoutResult:
        """Pay a claim: the EIP-712 body, k ECDSA signatures, and the Groth16 proof. With the
        Ed25519 QC of the same body, its signatures follow the arguments so the mirror replays it."""
        pool, sender = await self.pool(), self._sender()
        extra = qc_tail(ed25519_qc.signatures) if ed25519_qc is not None else b""
        result: PayoutResult = await self._call(pool.post_qc, qc, proof, sender, tail=extra)
        return result

    async def post_chain_group_qc(self, qc: ChainQc[ChainGroupBody], proofs: Sequence[bytes]) -> PayoutResult:
        """Pay a corroborated policy's claim (`groupPayout`): the EIP-712 group body, k ECDSA
        signatures, one Groth16 proof per window in the body's order. Idempotent by claim_id (a
        second sender gets `existing`). No tail: the mirror takes a group payout's quorum on the
        chain's word (ledger/evm/mirror.py)."""
        pool, sender = await self.pool(), self._sender()
        result: PayoutResult = await self._call(pool.post_group_qc, qc.body, qc.signatures, list(proofs), sender)
        return result

    async def report_device_slash(self, body: DeviceSlashBody, signatures: Sequence[ChainSignature]) -> SlashResult:
        """Slash a double-signing device (`reportFrameEquivocation`): the EIP-712 DeviceSlash body
        (which names the reporter the contract rewards) and k members' ECDSA signatures over it
        (sorted by address here). A device already slashed is EvmRefused(EVIDENCE_DUPLICATE): the
        sender's cue to stop."""
        pool, sender = await self.pool(), self._sender()
        rc = await self._call(pool.report_frame_equivocation, body, signatures, sender)
        return SlashResult(int(rc["gasUsed"]), bytes(rc["transactionHash"]), int(rc["blockNumber"]))

    @property
    def opened(self) -> EvmPool | None:
        """The pool once a first call reached it (None before)."""
        return self._pool

    @property
    def mirror(self) -> ChainMirror | None:
        return self._mirror

    @property
    def mirror_problem(self) -> str | None:
        """Why the pool has no mirror (once a first call reached it): followers cannot follow it."""
        return self._mirror_problem

    def binding(self, epoch: int, oracle_id: bytes) -> str | None:
        """The chain address bound to an oracle's Ed25519 id in that oracle-set epoch (as the
        contract recorded it), or None."""
        return self._mirror.bindings.get(epoch, {}).get(oracle_id) if self._mirror is not None else None

    async def expire(self, policy_id: bytes) -> Any:
        pool, sender = await self.pool(), self._sender()
        return await self._call(pool.expire, policy_id, sender)

    async def submit_admin(self, args: Message) -> Any:
        pool, sender = await self.pool(), self._sender()
        return await self._call(pool.submit_admin, args, sender)

    # -- the Settlement protocol -------------------------------------------------------------

    async def state(self) -> dict[str, Any]:
        return await self.status()

    async def _ready_mirror(self) -> ChainMirror:
        await self.pool()
        if self._mirror is None:
            raise _bad(self._mirror_problem or "no mirror")
        return self._mirror

    async def entries(self, after: int = -1, wait: float = 0.0,
                      limit: int | None = None) -> tuple[int, list[SignedEntry]]:
        """The mirror's entries above `after` (the pool's confirmed history as ledger entries),
        waiting up to `wait` s for new ones."""
        mirror = await self._ready_mirror()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            async with self._lock:
                await self._call(self._poll)
            if mirror.height > after or loop.time() >= deadline:
                break
            await asyncio.sleep(0.05)
        if mirror.problem is not None and mirror.height <= after:
            # nothing more will come: followers say so (readiness, one log line) and keep retrying
            raise FaultproofError(Reason.UNAVAILABLE, f"the pool's mirror stopped: {mirror.problem}")
        out = mirror.entries[after + 1 :]
        return mirror.height, out[:limit] if limit is not None else out

    async def signed_head(self) -> SignedHead:
        return (await self._ready_mirror()).signed_head()

    def replay_state(self, genesis_entry: SignedEntry) -> LedgerState:
        """A follower's view of this pool starts from its mirror genesis (policy ids as the contract's)."""
        return mirror_state_factory(self.w3.eth.chain_id, self.url.contract)(genesis_entry)

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


# ----------------------------------------------------------------------------- mirrored pools


def _pool_genesis(pool: EvmPool, oracles: Sequence[bytes], threshold: int) -> Any:
    f = pool.contract.functions
    return mirror_genesis(pool.chain_id, pool.address, oracles, threshold, bool(f.development().call()),
                          int(f.maxSkewMs().call()), int(f.rotationGraceMs().call()))


def open_mirror(pool: EvmPool) -> tuple[ChainMirror | None, str | None]:
    """The mirror of a deployed pool, or (None, why not)."""
    a = pool.first_oracle_set()
    if a is None:
        return None, (f"{pool.address}: no epoch-0 OraclesRotated event from block {pool.start_block} on "
                      "(not an InsurancePool, or start_block= is after its deployment?)")
    genesis = _pool_genesis(pool, [bytes(e) for e in a["ed25519Ids"]], int(a["threshold"]))
    if genesis.ledger_id != bytes(pool.contract.functions.ledgerId().call()):
        return None, (f"the pool at {pool.address} was not deployed with its mirror genesis' ledger id, so oracles "
                      "and agents cannot follow it: deploy it with ledger.evm.settlement.deploy_mirrored_pool")
    decode: Callable[[bytes], tuple[Any, ...]] = lambda data: _payout_body(pool, data)  # noqa: E731
    return ChainMirror(genesis, pool.chain_id, pool.address, decode), None


def _payout_body(pool: EvmPool, data: bytes) -> tuple[Any, ...]:
    fn, args = pool.contract.decode_function_input(data)
    if fn.fn_name != "payout":
        raise ValueError(f"a Paid event from a {fn.fn_name} call")
    body = args["body"]
    return tuple(body.values()) if isinstance(body, Mapping) else tuple(body)


def deploy_mirrored_pool(w3: Web3, *, admin: str, token: str, oracles: Sequence[Binding], threshold: int,
                         development: bool, max_skew_ms: int, rotation_grace_ms: int) -> EvmPool:
    """Deploy an InsurancePool whose ledgerId is its mirror genesis' id, so oracles and agents can
    follow it (the address is predicted from the admin's next nonce; the deploy is that transaction)."""
    chain_id = int(w3.eth.chain_id)
    address = get_create_address(Web3.to_checksum_address(admin), w3.eth.get_transaction_count(Web3.to_checksum_address(admin), "pending"))
    genesis = mirror_genesis(chain_id, address, [b.oracle_id for b in oracles], threshold, development,
                             max_skew_ms, rotation_grace_ms)
    pool = EvmPool.deploy(w3, admin=admin, token=token, ledger_id=genesis.ledger_id, oracles=oracles,
                          threshold=threshold, development=development, max_skew_ms=max_skew_ms,
                          rotation_grace_ms=rotation_grace_ms)
    if pool.address != Web3.to_checksum_address(address):
        raise FaultproofError(Reason.UNAVAILABLE, f"the pool landed at {pool.address}, not the predicted {address} "
                              "(another transaction from the admin account went first): deploy again")
    return pool


def register_mirrored_circuit(pool: EvmPool, register: RegisterCircuit, *, verifier: str | None = None) -> Any:
    """Register a circuit with its verification key after the arguments (what the mirror reads)."""
    return pool.register_circuit(register.circuit_id, register.vkey, register.n, register.transcript_hash,
                                 bool(register.production), verifier=verifier, tail=circuit_tail(register))

