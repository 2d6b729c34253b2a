"""The insurance pool on an EVM chain: the second settlement backend (DESIGN §13).

`EvmPool` drives a deployed `contracts/src/InsurancePool.sol` through web3.py. It offers the
operations of the settlement interface with plain names (`submit_admin`, `post_qc`, `expire`,
`state`/`policy`/`balances`, `events`), so it can sit behind `ledger/settlement.py` beside the
SQLite service. The rules are the contract's; this file only builds calls, sends them, and reads
results and events.

Refusals: every custom error of the contract is named after a shared reason code
(`QcStaleEpoch` is Reason.QC_STALE_EPOCH); `reason_of` turns a revert into that Reason, and the
few errors from OpenZeppelin or the token map through `_EXTRA_REASONS`. A refused transaction
raises `EvmRefused` (a FaultproofError) and leaves the chain unchanged (the EVM reverts).

The economic rules (DESIGN §14) live in the library PoolEcon, deployed before the pool and linked
into its bytecode by `deploy`; its events are emitted on the pool's address, so `pool_abi` adds them
to the pool's ABI (`events` and `process_receipt` decode them like the pool's own).

Reading history: public JSON-RPC providers refuse an `eth_getLogs` over a wide block range (often
10,000 blocks or fewer), so every read of the pool's events goes through `_get_logs`, which asks
for at most `max_log_blocks` blocks at a time and never before `start_block` (the block the pool
was deployed in: none of its events is older).

Admin transactions are sent by the admin's account (its chain nonce replaces the ledger's admin
nonce, and msg.sender replaces the admin signature). What this file must never do: decide a rule
the contract decides, or log a key.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from eth_abi import encode as abi_encode
from eth_utils import keccak
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractCustomError, ContractLogicError
from web3.logs import DISCARD
from web3.types import Nonce, RPCEndpoint
from web3.utils.address import get_create_address

from faultproof.errors import FaultproofError, Reason
from faultproof.messages import (
    Deposit,
    EconParams,
    EconPolicy,
    EnrolAgent,
    EnrolDevice,
    IssuePolicy,
    Message,
    PostBond,
    RevokeAgent,
    RevokeDevice,
    Unbond,
    Withdraw,
)
from faultproof.zk.encoding import proof_words
from ledger.evm import build
from ledger.evm.typed import (
    GROUP_QC_ABI,
    Binding,
    ChainBody,
    ChainGroupBody,
    ChainSignature,
    DeviceSlashBody,
    verify_binding,
)

# Errors not named after a reason: OpenZeppelin's, the token's, and the window-list hint.
_EXTRA_REASONS: dict[str, Reason] = {
    "BadHint": Reason.INVALID_PARAMETERS,
    "InvalidShortString": Reason.INVALID_PARAMETERS,  # OZ ShortStrings (EIP-712 domain, deploy only)
    "StringTooLong": Reason.INVALID_PARAMETERS,
    "ReentrancyGuardReentrantCall": Reason.REENTRANT_CALL,
    "SafeERC20FailedOperation": Reason.TOKEN_TRANSFER_FAILED,
    "ERC20InsufficientBalance": Reason.TOKEN_TRANSFER_FAILED,
    "ERC20InsufficientAllowance": Reason.TOKEN_TRANSFER_FAILED,
    "ERC20InvalidSender": Reason.TOKEN_TRANSFER_FAILED,
    "ERC20InvalidReceiver": Reason.TOKEN_TRANSFER_FAILED,
    "ERC20InvalidApprover": Reason.TOKEN_TRANSFER_FAILED,
    "ERC20InvalidSpender": Reason.TOKEN_TRANSFER_FAILED,
}
PAYOUT_GAS_LIMIT = 1_500_000  # far above a payout's ~300k; a bound on what a bad QC can burn
ECON_LIBRARY = "PoolEcon"  # the pool's economic rules (DESIGN §14): an external library, linked at deploy
_ECON_PLACEHOLDER = "__$" + keccak(text=f"src/PoolEcon.sol:{ECON_LIBRARY}").hex()[:34] + "$__"


def pool_abi(arts: dict[str, Any]) -> list[dict[str, Any]]:
    """The pool's ABI plus the events its library emits on the pool's address (DELEGATECALL)."""
    pool = list(arts["InsurancePool"].abi)
    names = {item.get("name") for item in pool if item.get("type") == "event"}
    return pool + [item for item in arts[ECON_LIBRARY].abi if item.get("type") == "event" and item["name"] not in names]


class EvmRefused(FaultproofError):
    """The contract refused a transaction. `error` is the custom error's name."""

    def __init__(self, reason: Reason, error: str, message: str = "") -> None:
        self.error = error
        super().__init__(reason, message or f"the pool contract refused it ({error})")


class _Reverted(Exception):
    def __init__(self, data: str) -> None:
        super().__init__(f"reverted with {data[:10]}")
        self.data = data


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()


def error_reasons(abis: Sequence[list[dict[str, Any]]]) -> dict[bytes, tuple[str, Reason | None]]:
    """4-byte selector -> (error name, Reason or None) for every error in these ABIs."""
    out: dict[bytes, tuple[str, Reason | None]] = {}
    for abi in abis:
        for item in abi:
            if item.get("type") != "error":
                continue
            sig = f"{item['name']}({','.join(_abi_type(i) for i in item['inputs'])})"
            name = item["name"]
            reason = _EXTRA_REASONS.get(name) or Reason.__members__.get(_snake(name))
            out[keccak(text=sig)[:4]] = (name, reason)
    return out


def _abi_type(inp: dict[str, Any]) -> str:
    t = str(inp["type"])
    if t.startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in inp["components"]) + ")" + t[5:]
    return t


@dataclass(frozen=True)
class PayoutResult:
    paid: int
    existing: bool  # the claim was already paid with the same body: nothing was written
    gas_used: int
    tx_hash: bytes | None
    block: int | None


B = TypeVar("B", ChainBody, ChainGroupBody)


@dataclass(frozen=True)
class ChainQc(Generic[B]):
    """A quorum certificate for the chain: the body (a lone claim's `ChainBody` or a group's
    `ChainGroupBody`) and (signer, signature) pairs."""

    body: B
    signatures: tuple[ChainSignature, ...]


ChainEvent = tuple[str, dict[str, Any], int]  # (event name, args, block number)

# The most blocks one eth_getLogs spans (see the module docstring); a settlement URL may set less.
MAX_LOG_BLOCKS = 10_000


@dataclass(frozen=True)
class ChainLog:
    """One decoded event of the pool and where it came from."""

    name: str
    args: dict[str, Any]
    block: int
    tx_hash: bytes

    @property
    def event(self) -> ChainEvent:
        return self.name, self.args, self.block


class EvmPool:
    """One deployed InsurancePool, driven through web3 (sans rules: the contract decides)."""

    def __init__(self, w3: Web3, address: str, admin: str, *, start_block: int = 0,
                 max_log_blocks: int = MAX_LOG_BLOCKS) -> None:
        if start_block < 0 or max_log_blocks < 1:
            raise ValueError("start_block must be >= 0 and max_log_blocks >= 1")
        arts = build.contracts()
        self.start_block = start_block  # the pool's deployment block: no event of it is older
        self.max_log_blocks = max_log_blocks
        self.w3 = w3
        self.contract: Contract = w3.eth.contract(address=Web3.to_checksum_address(address),
                                                  abi=pool_abi(arts))
        self.address = self.contract.address
        self.admin = admin
        self.chain_id = int(w3.eth.chain_id)
        self._errors = error_reasons([a.abi for a in arts.values()])
        self.token = w3.eth.contract(address=self.contract.functions.asset().call(), abi=arts["TestToken"].abi)

    # ------------------------------------------------------------------ deployment

    @classmethod
    def deploy(cls, w3: Web3, *, admin: str, token: str, ledger_id: bytes, oracles: Sequence[Binding],
               threshold: int, development: bool, max_skew_ms: int, rotation_grace_ms: int) -> EvmPool:
        _check_bindings(oracles)
        arts = build.contracts()
        # The pool first, at the admin's next nonce (so its address is predictable, as a chain
        # mirror's genesis needs), linked to the library's address at the nonce after; the
        # constructor does not call the library, and the library is deployed in the next transaction.
        who = Web3.to_checksum_address(admin)
        nonce = w3.eth.get_transaction_count(who, "pending")
        lib_address = get_create_address(who, Nonce(nonce + 1))
        art = arts["InsurancePool"]
        linked = art.bytecode.replace(_ECON_PLACEHOLDER, lib_address[2:].lower())
        factory = w3.eth.contract(abi=art.abi, bytecode=linked)
        tx = factory.constructor(Web3.to_checksum_address(token), ledger_id, admin,
                                 [b.address for b in oracles], [b.oracle_id for b in oracles], threshold,
                                 development, max_skew_ms, rotation_grace_ms).transact({"from": admin, "nonce": nonce})
        rc = w3.eth.wait_for_transaction_receipt(tx)
        lib = arts[ECON_LIBRARY]
        lib_rc = w3.eth.wait_for_transaction_receipt(w3.eth.contract(abi=lib.abi, bytecode=lib.bytecode).constructor()
                                                     .transact({"from": admin, "nonce": nonce + 1}))
        if lib_rc["contractAddress"] != lib_address or not w3.eth.get_code(lib_address):
            raise FaultproofError(Reason.UNAVAILABLE, f"the pool's library landed at {lib_rc['contractAddress']}, not "
                                  f"{lib_address} (another transaction from {who} went between): deploy again")
        return cls(w3, str(rc["contractAddress"]), admin, start_block=int(rc["blockNumber"]))

    @staticmethod
    def deploy_token(w3: Web3, deployer: str, name: str = "TestToken") -> Contract:
        art = build.contracts()[name]
        tx = w3.eth.contract(abi=art.abi, bytecode=art.bytecode).constructor().transact({"from": deployer})
        rc = w3.eth.wait_for_transaction_receipt(tx)
        contract: Contract = w3.eth.contract(address=rc["contractAddress"], abi=art.abi)  # type: ignore[assignment]
        return contract

    def deploy_verifier(self, vkey: bytes) -> str:
        art = build.verifier(vkey)
        tx = self.w3.eth.contract(abi=art.abi, bytecode=art.bytecode).constructor().transact({"from": self.admin})
        return str(self.w3.eth.wait_for_transaction_receipt(tx)["contractAddress"])

    # ------------------------------------------------------------------ sending

    def reason_of(self, exc: Exception) -> tuple[Reason, str] | None:
        """The Reason of a contract revert, or None if `exc` is not one this pool knows."""
        data = getattr(exc, "data", None)
        if isinstance(data, dict):
            data = data.get("data")
        if not isinstance(data, str) or not data.startswith("0x") or len(data) < 10:
            return None
        found = self._errors.get(bytes.fromhex(data[2:10]))
        if found is None or found[1] is None:
            return None
        return found[1], found[0]

    def _send(self, fn: Any, sender: str, gas: int | None = None, tail: bytes = b"") -> Any:
        """Send a call as a transaction; a revert becomes EvmRefused with the contract's reason.

        The gas estimate runs against the pending block, so a refusal is found before anything is
        mined (the pending block carries the next timestamp a test or devnet has set). If the mined
        transaction reverts anyway (the state moved in between), its trace names the error.
        `tail`: bytes sent after the ABI arguments, which the contract ignores and a chain mirror
        reads back (ledger/evm/mirror.py, DESIGN §13)."""
        params: dict[str, Any] = {"from": sender}
        try:
            if gas is None:
                # a tail costs calldata gas, and at least EIP-7623's floor (10 gas a token, 4 tokens a byte)
                params["gas"] = int(fn.estimate_gas(params, block_identifier="pending") * 6 // 5) + 10_000 \
                    + 40 * len(tail)
            else:  # a fixed limit: one eth_call finds a refusal (estimating re-runs the pairing ~20 times)
                fn.call(params, block_identifier="pending")
                params["gas"] = gas
            if tail:
                built = fn.build_transaction(params)
                built["data"] = str(built["data"]) + tail.hex()
                tx = self.w3.eth.send_transaction(built)
            else:
                tx = fn.transact(params)
        except (ContractCustomError, ContractLogicError) as e:
            raise self._refusal(e) from None
        rc = self.w3.eth.wait_for_transaction_receipt(tx)
        if rc["status"] != 1:
            raise self._refusal(_Reverted(self._revert_data(tx)))
        return rc

    def _refusal(self, exc: Exception) -> EvmRefused:
        found = self.reason_of(exc)
        if found is None:
            return EvmRefused(Reason.INVALID_PARAMETERS, "unknown", f"the pool contract reverted: {exc}")
        return EvmRefused(found[0], found[1])

    def _revert_data(self, tx: bytes) -> str:
        trace = self.w3.provider.make_request(RPCEndpoint("debug_traceTransaction"), [tx.hex() if isinstance(tx, bytes) else tx,
                                                                         {"tracer": "callTracer"}])
        result = trace.get("result") or {}
        return str(result.get("output") or "0x")

    def submit_admin(self, args: Message, sender: str | None = None) -> Any:
        """An admin transaction (the settlement interface's `submit_admin`), by the admin account."""
        f = self.contract.functions
        who = sender or self.admin
        if isinstance(args, EnrolDevice):
            return self._send(f.enrolDevice(args.device_id, args.epoch, args.anchor, args.firmware_hash), who)
        if isinstance(args, RevokeDevice):
            return self._send(f.revokeDevice(args.device_id), who)
        if isinstance(args, EnrolAgent):
            return self._send(f.enrolAgent(args.agent_id), who)
        if isinstance(args, RevokeAgent):
            return self._send(f.revokeAgent(args.agent_id), who)
        if isinstance(args, Deposit):
            self._approve(who, args.amount)
            return self._send(f.deposit(args.amount), who)
        if isinstance(args, Withdraw):
            return self._send(f.withdraw(args.amount), who)
        if isinstance(args, IssuePolicy):
            return self.issue_policy(args, who)
        if isinstance(args, EconPolicy):
            return self.issue_econ_policy(args, who)
        if isinstance(args, EconParams):
            return self._send(f.setEconParams((args.min_oracle_bond, args.max_staging_cost, args.reporter_share_bps,
                                               args.unlock_delay_ms, True)), who)
        if isinstance(args, PostBond):
            self._approve(who, args.amount)
            return self._send(f.postBond(args.holder_kind, args.holder_id, args.amount), who)
        if isinstance(args, Unbond):
            return self._send(f.unbond(args.holder_kind, args.holder_id, args.step), who)
        raise FaultproofError(Reason.WRONG_TYPE, f"{args.NAME} has its own call on the chain backend")

    def _approve(self, owner: str, amount: int) -> None:
        if amount and int(self.token.functions.allowance(owner, self.address).call()) < amount:
            self.w3.eth.wait_for_transaction_receipt(
                self.token.functions.approve(self.address, amount).transact({"from": owner}))

    def register_circuit(self, circuit_id: bytes, vkey: bytes, n: int, transcript_hash: bytes, production: bool,
                         *, verifier: str | None = None, sender: str | None = None, tail: bytes = b"") -> Any:
        """Deploy the circuit's snarkjs verifier (unless given) and register it under circuit_id."""
        addr = verifier or self.deploy_verifier(vkey)
        return self._send(self.contract.functions.registerCircuit(circuit_id, addr, n, transcript_hash, production),
                          sender or self.admin, tail=tail)

    def issue_policy(self, t: IssuePolicy, sender: str | None = None) -> bytes:
        who = sender or self.admin
        self._approve(who, t.premium)
        rc = self._send(self.contract.functions.issuePolicy(terms_tuple(t)), who)
        ev = self.contract.events.PolicyIssued().process_receipt(rc, errors=DISCARD)
        return bytes(ev[0]["args"]["policyId"])

    def issue_econ_policy(self, e: EconPolicy, sender: str | None = None) -> bytes:
        """issue_econ_policy (DESIGN §14): a policy with its staging cost and, for a corroborated
        policy, its group, m and overlap tolerance."""
        who = sender or self.admin
        self._approve(who, e.terms.premium)
        rc = self._send(self.contract.functions.issueEconPolicy(terms_tuple(e.terms), e.staging_cost, list(e.group),
                                                                e.min_proofs, e.overlap_tolerance_ms), who)
        ev = self.contract.events.PolicyIssued().process_receipt(rc, errors=DISCARD)
        return bytes(ev[0]["args"]["policyId"])

    def report_votes(self, bodies: Sequence[ChainBody], signatures: Sequence[ChainSignature], reporter: bytes,
                     sender: str) -> Any:
        """Oracle slashing evidence (anyone): two signed bodies of one member for one claim and
        epoch (VoteEquivocation) or one signed body that is not its policy's (ContradictingApprove).
        Every signature must be by the same signer (the first's)."""
        rs, vss = compact_signatures(signatures)
        signer = signatures[0].signer if signatures else "0x" + "00" * 20
        return self._send(self.contract.functions.reportVotes([b.as_tuple() for b in bodies], signer, rs, vss,
                                                              reporter), sender)

    def report_frame_equivocation(self, body: DeviceSlashBody, signatures: Sequence[ChainSignature],
                                  sender: str) -> Any:
        """Device slashing evidence certified by k oracles (signers sorted by address, as the
        contract requires distinct members in increasing order). The reward goes to `body.reporter`,
        which the signatures cover."""
        ordered = sorted(signatures, key=lambda sig: int(sig.signer, 16))
        rs, vss = compact_signatures(ordered)
        return self._send(self.contract.functions.reportFrameEquivocation(
            body.as_tuple(), [sig.signer for sig in ordered], rs, vss), sender)

    def econ_state(self, kind: int = 1, holder_id: bytes = bytes(32), reporter: bytes = bytes(32)) -> dict[str, Any]:
        bond, bonds, rewards, reward = self.contract.functions.econState(kind, holder_id, reporter).call()
        return {"bond": int(bond), "bonds": int(bonds), "rewards": int(rewards), "reward": int(reward)}

    def rotate_oracles(self, oracles: Sequence[Binding], threshold: int, sender: str | None = None) -> Any:
        _check_bindings(oracles)
        return self._send(self.contract.functions.rotateOracles(
            [b.address for b in oracles], [b.oracle_id for b in oracles], threshold), sender or self.admin)

    def rotate_admin(self, new_admin: str) -> Any:
        rc = self._send(self.contract.functions.rotateAdmin(new_admin), self.admin)
        self.admin = new_admin
        return rc

    def expire(self, policy_id: bytes, sender: str | None = None) -> Any:
        return self._send(self.contract.functions.expire(policy_id), sender or self.admin)

    def payout_call(self, qc: ChainQc[ChainBody], proof: bytes, hint: tuple[bytes, bytes] | None = None) -> Any:
        """The contract call for a QC (for gas estimates and hostile re-entry tests)."""
        body = qc.body
        later, earlier = hint if hint is not None else self.hint_for(body.body.policy_id, body.body.start_ts)
        rs, vss = compact_signatures(qc.signatures)
        return self.contract.functions.payout(body.as_tuple(), [s.signer for s in qc.signatures], rs, vss,
                                              proof_words(proof), later, earlier)

    def quorum_call(self, qc: ChainQc[ChainBody]) -> Any:
        """`verifyQuorum`: the QC check alone (a pre-flight; its gas is the quorum's cost)."""
        rs, vss = compact_signatures(qc.signatures)
        return self.contract.functions.verifyQuorum(qc.body.as_tuple(), [s.signer for s in qc.signatures], rs, vss)

    def post_qc(self, qc: ChainQc[ChainBody], proof: bytes, sender: str, *,
                hint: tuple[bytes, bytes] | None = None, tail: bytes = b"") -> PayoutResult:
        """Pay a claim (the settlement interface's `post_qc`). Idempotent by claim_id."""
        fn = self.payout_call(qc, proof, hint)
        rc = self._send(fn, sender, gas=PAYOUT_GAS_LIMIT, tail=tail)
        ev = self.contract.events.Paid().process_receipt(rc, errors=DISCARD)
        if ev:
            return PayoutResult(int(ev[0]["args"]["amount"]), False, int(rc["gasUsed"]), bytes(rc["transactionHash"]),
                                int(rc["blockNumber"]))
        prior = self.contract.functions.claims(qc.body.body.claim_id).call()
        return PayoutResult(int(prior[1]), True, int(rc["gasUsed"]), bytes(rc["transactionHash"]),
                            int(rc["blockNumber"]))

    def post_group_qc(self, body: ChainGroupBody, signatures: Sequence[ChainSignature], proofs: Sequence[bytes],
                      sender: str, *, hint: tuple[bytes, bytes] | None = None) -> PayoutResult:
        """Pay a corroborated policy's claim (DESIGN §14): the group body, k signatures, one proof per
        window in the body's order. Idempotent by claim_id, like `post_qc`."""
        b = body.body
        later, earlier = hint if hint is not None else self.hint_for(
            b.policy_id, min(w.start_ts for w in b.windows) if b.windows else 0)
        rs, vss = compact_signatures(signatures)
        args = abi_encode([GROUP_QC_ABI], [(body.as_tuple(), [sig.signer for sig in signatures], rs, vss,
                                            [proof_words(p) for p in proofs], later, earlier)])
        gas = PAYOUT_GAS_LIMIT + 350_000 * len(b.windows)  # a pairing check per window
        rc = self._send(self.contract.functions.groupPayout(args), sender, gas=gas)
        ev = self.contract.events.Paid().process_receipt(rc, errors=DISCARD)
        if ev:
            return PayoutResult(int(ev[0]["args"]["amount"]), False, int(rc["gasUsed"]), bytes(rc["transactionHash"]),
                                int(rc["blockNumber"]))
        prior = self.contract.functions.claims(b.claim_id).call()
        return PayoutResult(int(prior[1]), True, int(rc["gasUsed"]), bytes(rc["transactionHash"]),
                            int(rc["blockNumber"]))

    # ------------------------------------------------------------------ reading

    def hint_for(self, pid: bytes, start_ts: int) -> tuple[bytes, bytes]:
        """(later, earlier): the paid claims of policy `pid` whose windows start at-or-after and
        just before start_ts (zero bytes: none), from one query of the policy's Paid logs."""
        paid = self.contract.events.Paid()
        logs = [paid.process_log(raw) for raw in self._get_logs(0, None, [_topic_bytes(paid.topic), None, pid])]
        later, later_start, earlier, earlier_start = bytes(32), None, bytes(32), -1
        for log in logs:
            s, cid = int(log["args"]["startTs"]), bytes(log["args"]["claimId"])
            if earlier_start < s < start_ts:
                earlier, earlier_start = cid, s
            elif s >= start_ts and (later_start is None or s < later_start):
                later, later_start = cid, s
        return later, earlier

    def policy(self, pid: bytes) -> dict[str, Any] | None:
        p = self.contract.functions.policy(pid).call()
        terms, _match, locked, paid_total, n_windows, _head, exists, closed = p
        if not exists:
            return None
        status = ("issued", "active", "expired", "closed")[self.contract.functions.policyStatus(pid).call()]
        return {"policy_id": pid.hex(), "locked": locked, "paid_total": paid_total,
                "payouts": n_windows, "closed": closed, "status": status, "coverage": terms[13], "amount": terms[14]}

    def balances(self) -> dict[str, int]:
        f = self.contract.functions
        free, premiums, paid, locked = f.books().call()
        econ = self.econ_state()
        return {"free": free, "premiums": premiums, "paid": paid, "locked": locked, "pool_total": f.poolTotal().call(),
                "bonds": econ["bonds"], "rewards": econ["rewards"],
                "token_balance": self.token.functions.balanceOf(self.address).call()}

    def paid_claim(self, claim_id: bytes) -> int | None:
        body_tag, paid, *_window = self.contract.functions.claims(claim_id).call()
        return int(paid) if body_tag != bytes(4) else None

    def status(self) -> dict[str, Any]:
        """What `faultproof ledger status --evm-rpc … --contract …` prints."""
        f = self.contract.functions
        epoch, threshold, since_ms = f.current().call()
        return {"settlement": "evm", "chain_id": self.chain_id, "contract": self.address,
                "block": int(self.w3.eth.block_number), "time_ms": self.now_ms(),
                "ledger_id": bytes(f.ledgerId().call()).hex(), "admin": f.admin().call(),
                "oracle_set": {"epoch": epoch, "threshold": threshold, "since_ms": since_ms},
                "books": self.balances(), "asset": self.token.address}

    def oracle_epoch(self) -> int:
        return int(self.contract.functions.oracleEpoch().call())

    def now_ms(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"]) * 1000

    def events(self, from_block: int, to_block: int | None = None) -> list[ChainEvent]:
        """Every event of the pool in [from_block, to_block] (default: latest), in chain order:
        (name, args, block). A follower passes to_block = head - confirmations."""
        return [log.event for log in self.logs(from_block, to_block)]

    def logs(self, from_block: int, to_block: int | None = None) -> list[ChainLog]:
        """The same events with the transaction that emitted each (the chain mirror reads the
        calldata of two kinds: ledger/evm/mirror.py)."""
        logs = self._get_logs(from_block, to_block)
        names = [str(ev["name"]) for ev in self.contract.abi if ev.get("type") == "event"]  # type: ignore[typeddict-item]
        by_topic = {_topic_bytes(e.topic): e for e in (getattr(self.contract.events, n) for n in names)}
        out = []
        for log in logs:
            ev = by_topic.get(bytes(log["topics"][0]))
            if ev is None:
                continue
            d = ev().process_log(log)
            out.append(ChainLog(str(d["event"]), dict(d["args"]), int(d["blockNumber"]), bytes(log["transactionHash"])))
        return out


    def first_oracle_set(self) -> dict[str, Any] | None:
        """The args of the epoch-0 OraclesRotated event (the constructor's), or None."""
        rotated = self.contract.events.OraclesRotated()
        logs = self._get_logs(0, None, [_topic_bytes(rotated.topic), bytes(32)])
        return dict(rotated.process_log(logs[0])["args"]) if logs else None

    def _get_logs(self, from_block: int, to_block: int | None,
                  topics: Sequence[bytes | None] | None = None) -> list[Any]:
        """The pool's raw logs in [from_block, to_block] (None: the head), in chain order, read at
        most `max_log_blocks` blocks per request and from `start_block` on."""
        last = int(self.w3.eth.block_number) if to_block is None else to_block
        out: list[Any] = []
        first = max(from_block, self.start_block)
        while first <= last:
            end = min(last, first + self.max_log_blocks - 1)
            query: dict[str, Any] = {"fromBlock": first, "toBlock": end, "address": self.address}
            if topics is not None:
                query["topics"] = [None if t is None else "0x" + t.hex() for t in topics]
            out.extend(self.w3.eth.get_logs(query))  # type: ignore[arg-type]
            first = end + 1
        return out


def chain_status(rpc_url: str, contract: str) -> dict[str, Any]:
    """A pool contract's status, or ClickException-ready FaultproofError naming the problem."""
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 10}))
    try:
        if not Web3.is_address(contract):
            raise FaultproofError(Reason.BAD_REQUEST, f"{contract!r} is not an address (0x + 40 hex digits)")
        if not w3.eth.get_code(Web3.to_checksum_address(contract)):
            raise FaultproofError(Reason.NOT_FOUND, f"no contract at {contract} on {rpc_url}: check --contract")
        return EvmPool(w3, contract, "").status()
    except (OSError, ConnectionError) as e:
        raise FaultproofError(Reason.UNAVAILABLE, f"cannot reach {rpc_url} ({type(e).__name__}): is the node running?") from None


def compact_signatures(sigs: Sequence[ChainSignature]) -> tuple[list[bytes], list[bytes]]:
    """65-byte r ‖ s ‖ v signatures as ERC-2098 (r, vs) pairs, which cost less calldata."""
    rs, vss = [], []
    for sig in sigs:
        raw = sig.signature
        if len(raw) != 65:
            rs.append(bytes(32))  # refused on chain as a bad signature
            vss.append(bytes(32))
            continue
        v = raw[64] - 27 if raw[64] >= 27 else raw[64]
        vs = int.from_bytes(raw[32:64], "big") | ((v & 1) << 255)
        rs.append(raw[:32])
        vss.append(vs.to_bytes(32, "big"))
    return rs, vss


def _topic_bytes(topic: Any) -> bytes:
    return bytes.fromhex(topic[2:]) if isinstance(topic, str) else bytes(topic)


def terms_tuple(t: IssuePolicy) -> tuple[Any, ...]:
    return (t.device_id, t.beneficiary, t.circuit_id, t.kind, t.threshold, t.count, t.lo, t.hi, t.gap_ms,
            t.start_ms, t.end_ms, t.period_ms, t.claim_window_ms, t.coverage, t.amount, t.premium)


def beneficiary_of(address: str) -> bytes:
    """A chain payee as the 32-byte beneficiary id (12 zero bytes, then the address)."""
    return bytes(12) + bytes.fromhex(Web3.to_checksum_address(address)[2:])


def _check_bindings(oracles: Sequence[Binding]) -> None:
    for b in oracles:
        if not verify_binding(b):
            raise FaultproofError(Reason.INVALID_ORACLE_SET, f"oracle {b.oracle_id.hex()[:16]}: the key binding does not verify")
