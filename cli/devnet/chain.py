"""`faultproof devnet --settlement evm`: the same network settling on the pool contract (DESIGN §13).

`ChainNetwork` replaces the ledger service with anvil (127.0.0.1, a free port) and an
InsurancePool deployed with its mirror genesis' ledger id (so the oracles and the agents follow it
through `ledger.evm.mirror`), a TestToken as the pool asset, and each oracle's secp256k1 chain key
(a 0600 key file beside its Ed25519 key, or with `--keys pkcs11` a key in the run's token) bound to
its Ed25519 id in the oracle set. The admin's setup transactions are sent by anvil's unlocked
admin account; each oracle sends payouts from its own unlocked anvil account (anvil holds those
keys: on a chain the transaction sender is not a protocol key). `EvmDevnetRun` runs the same
devices and faults and judges from the contract alone: its Paid events and books, the token
balances, the gas each payout used, and a fresh replay of every event through the rules
(`mirror_verified`).

`--keys pkcs11` (cli/devnet/keys.py: the run's SoftHSM2 token, PINs in the environment only): each
oracle's chain key is made in the token (`chain_key_file = "pkcs11:faultproof-devnet/oracle-i-chain"`,
bound like a file key: the Ed25519 key signs the address, the chain key signs the Ed25519 id), so
are the two agents' keys and every device key. What stays a file, and why (also the summary's
`keys`): the oracles' Ed25519 keys, since each is also its oracle's libp2p key and the contract
records no transport-key binding (DESIGN §15 H8) for the other oracles' gossip gates to admit
another; for the same reason the token-keyed agents do not gossip (their claims go to the oracles
over HTTP, and an oracle re-gossips them); and the blinding keys, as on the ledger. No admin or
ledger key exists on a chain: the mirror's are derived by anyone.

With an `[econ]` table (DESIGN §14, as `configs/devnet.toml` has) it also runs the economic rules
on the contract: every oracle and device bonded, the parameters set, every policy an econ policy,
and the corroborated policy (three devices, m = 2, two of them under a second agent, `agent-2`,
following the pool too). The oracles pay its group claim on the contract themselves (the chain
votes and chain poster of oracle/group_node.py); the summary's `econ.group` judges it from the
contract's Paid and GroupPaid events and the token balance of the policy's payee. The
double-signing device's two frames go to one oracle (`POST /v1/equivocations`); the oracles
certify them and one sends `reportFrameEquivocation` (oracle/device_slash_node.py); setup waits
for its Slashed event before the devices stream, and `econ.equivocator` judges it from the
contract: the device revoked and flagged, its whole bond slashed, the reporter's share in
`rewards` and credited to the reporter, the gas.

What the evm run leaves out, and why (also in the summary and DESIGN §13): the tampered-firmware
device (the contract enforces no attestation allowlist: it would be paid), device-history
anchors (the contract keeps none), the dashboard (it reads the ledger service's HTTP API). It
decides nothing the protocol decides.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

from cli.devnet.network import LocalNetwork
from cli.devnet.run import DevnetRun
from faultproof.identity import Identity
from faultproof.messages import (
    BondHolder,
    Deposit,
    EconPolicy,
    EnrolAgent,
    IssuePolicy,
    Message,
    PostBond,
    RegisterCircuit,
)
from faultproof.procs import free_port

ROTATION_GRACE_MS = 3_600_000
SKIPPED = {
    "tampered_firmware": "the contract enforces no attestation allowlist (DESIGN §15 P9): it would be paid",
    "anchors": "the contract keeps no device-history anchors (DESIGN §11 S3/S4)",
    "dashboard": "the dashboard reads the ledger service's HTTP API",
    "receipts": "mirror entries are signed by a key anyone can derive: the chain's blocks are the receipt",
}
# `--keys pkcs11` on a chain: what stays out of the token, and why (the summary's keys.not_in_token)
KEYS_NOT_IN_TOKEN = {
    "oracle_ed25519": ("0600 files: each is also its oracle's libp2p key; the contract records no transport-key "
                       "binding (DESIGN §15 H8), so a token-keyed oracle's votes, gossiped under another key, would "
                       "be dropped by the other oracles' gossip gates"),
    "blinding_keys": "files, as on the ledger: the agents' commitment secrets, not signing keys",
}


@dataclass
class ChainNetwork(LocalNetwork):
    anvil: Any = None
    w3: Any = None
    pool: Any = None  # ledger.evm.pool.EvmPool
    accounts: list[str] = field(default_factory=list)
    chain_keys: list[Any] = field(default_factory=list)  # ledger.evm.typed.ChainKey per oracle

    @property
    def ledger_url(self) -> str:
        if self.pool is None:
            return ""
        # From the deployment block on, as an operator on a public chain writes it (DESIGN §13).
        return f"evm+{self.anvil.url}?contract={self.pool.address}&start_block={self.pool.start_block}"

    @property
    def admin_account(self) -> str:
        return self.accounts[0]

    def prepare(self) -> None:
        from ledger.evm.typed import ChainKey

        super().prepare()
        for i in range(self.oracles):
            if self.token is not None:
                self.chain_keys.append(self.token.chain_key(f"oracle-{i}-chain"))
                continue
            path = self.keys / f"oracle-{i}.chain.key"
            Identity.generate().save(path)
            self.chain_keys.append(ChainKey.load(path))

    def _prepare_token(self) -> None:
        """pkcs11 mode on a chain: the agents' keys in the run's token (the devices' and the
        oracles' chain keys follow in `prepare` and `provision_device`); the oracles' Ed25519 keys
        are 0600 files, since each is also its oracle's libp2p key: the contract records no
        transport-key binding (H8), so the oracles' gossip gates would drop the votes of an oracle
        gossiping under another key. No admin or ledger key: the admin is an anvil account and the
        mirror's keys are derived by anyone (DESIGN §13)."""
        from cli.devnet.keys import TokenKeys

        self.token = TokenKeys(self.root / "token")
        self.token.init()
        self.agent_identity = self.token.generate("agent")
        self.agent2_identity = self.token.generate("agent-2")
        self.agent2_port = free_port()
        self.oracle_identities = [Identity.generate() for _ in range(self.oracles)]
        for i, ident in enumerate(self.oracle_identities):
            ident.save(self.keys / f"oracle-{i}.key")

    def _key(self, name: str) -> str:
        """Oracles name their key file (see `_prepare_token`), agents their token key."""
        return str(self.keys / f"{name}.key") if self.token is None or name.startswith("oracle-") else self.token.spec(name)

    def _transport(self, name: str) -> dict[str, str]:
        return {}  # oracles gossip under their Ed25519 key; token-keyed agents do not gossip

    def _agent_gossip(self) -> dict[str, Any]:
        """A token-keyed agent sends its claims to the oracles over HTTP: its transport key could not
        be bound on the contract, so its gossip would be dropped (an oracle re-gossips what it gets)."""
        return {"enabled": False} if self.token is not None else super()._agent_gossip()

    def bind_transport_keys(self, only: str | None = None) -> None:
        """Nothing to bind: the contract takes no BindTransportKey (see `_prepare_token`)."""

    def key_custody(self) -> dict[str, Any]:
        """Which keys the run used and where they live (the summary's `keys`)."""
        accounts = {"contract_admin": f"anvil's unlocked account {self.admin_account}",
                    "payout_senders": "anvil's unlocked accounts 1..n (one per oracle): anvil holds their keys"}
        files = sorted(p.name for p in self.keys.iterdir()) if self.keys.exists() else []
        if self.token is None:
            return {"mode": "file", "files": files, **accounts}
        from cli.devnet.keys import TOKEN_LABEL

        return {
            "mode": "pkcs11", "token": TOKEN_LABEL,
            "in_token": {"chain_keys": [self.token.spec(f"oracle-{i}-chain") for i in range(self.oracles)],
                         "chain_addresses": [key.address for key in self.chain_keys],
                         "agents": [self.token.spec("agent"), self.token.spec("agent-2")],
                         "devices": self.token.device_count},
            "files": files,
            "not_in_token": {
                "oracle_ed25519": KEYS_NOT_IN_TOKEN["oracle_ed25519"],
                "blinding_keys": KEYS_NOT_IN_TOKEN["blinding_keys"],
            },
            **accounts,
        }

    def start_ledger(self) -> None:
        """anvil, the pool asset and the pool (deployed with its mirror genesis' ledger id)."""
        from web3 import Web3

        from ledger.evm.node import Anvil
        from ledger.evm.pool import EvmPool
        from ledger.evm.settlement import deploy_mirrored_pool

        self.anvil = Anvil.start(self.logs)
        self.w3 = Web3(Web3.HTTPProvider(self.anvil.url, request_kwargs={"timeout": 30}))
        self.accounts = [str(a) for a in self.w3.eth.accounts]
        if len(self.accounts) < self.oracles + 1:
            raise RuntimeError(f"anvil has {len(self.accounts)} accounts; the evm devnet needs n + 1 = {self.oracles + 1}")
        token = EvmPool.deploy_token(self.w3, self.admin_account)
        bindings = [key.binding(ident) for key, ident in zip(self.chain_keys, self.oracle_identities, strict=True)]
        self.pool = deploy_mirrored_pool(self.w3, admin=self.admin_account, token=token.address, oracles=bindings,
                                         threshold=self.threshold, development=True, max_skew_ms=self.max_skew_ms,
                                         rotation_grace_ms=ROTATION_GRACE_MS)
        self.ledger_id = bytes(self.pool.contract.functions.ledgerId().call())

    def _mint(self, amount: int) -> None:
        if amount:
            self.w3.eth.wait_for_transaction_receipt(
                self.pool.token.functions.mint(self.admin_account, amount).transact({"from": self.admin_account}))

    def admin_txs(self, args_list: Any) -> list[Any]:
        """Each admin transaction sent by the admin account (an IssuePolicy or EconPolicy returns
        its policy id); the admin account is minted what a deposit, a bond or a premium pulls."""
        out = []
        for args in args_list:
            if isinstance(args, Deposit | PostBond):
                self._mint(args.amount)
            if isinstance(args, EconPolicy):
                self._mint(args.terms.premium)
            if isinstance(args, IssuePolicy):
                self._mint(args.premium)
                out.append(self.pool.issue_policy(args, self.admin_account))
                continue
            out.append(self.pool.submit_admin(args, self.admin_account))
        return out

    def submit(self, tx: Message) -> dict[str, Any]:
        raise RuntimeError(f"the evm devnet sends no {tx.NAME}: the contract does not take it")

    def setup_pool(self, deposit: int, register: RegisterCircuit) -> None:
        from ledger.evm.settlement import register_mirrored_circuit

        self.circuit_id = register.circuit_id
        self.admin_txs([Deposit(amount=deposit)])
        register_mirrored_circuit(self.pool, register)  # deploys the circuit's snarkjs verifier
        self.admin_txs([EnrolAgent(agent_id=self.agent_identity.public_key)])

    def _oracle_ledger(self, i: int) -> dict[str, Any]:
        chain_key = (self.token.spec(f"oracle-{i}-chain") if self.token is not None
                     else str(self.keys / f"oracle-{i}.chain.key"))
        return {"ledger_url": f"{self.ledger_url}&from={self.accounts[1 + i]}", "chain_key_file": chain_key}

    def _agent_ledger(self) -> dict[str, Any]:
        return {"ledger_url": self.ledger_url, "ledger_wait_s": 5, "ledger_anchor_interval_s": 0}

    def stop(self) -> dict[str, int | None]:
        codes = super().stop()
        if self.anvil is not None:
            self.anvil.stop()
            codes["anvil"] = self.anvil.proc.returncode
        return codes

    def pids(self) -> list[int]:
        return super().pids() + ([self.anvil.proc.pid] if self.anvil is not None else [])


def payee_of(device_id: bytes) -> str:
    """A device's payout address on the devnet chain (derived from its id: one payee per device)."""
    from web3 import Web3

    return str(Web3.to_checksum_address(hashlib.sha256(b"devnet-payee" + device_id).digest()[-20:]))


def group_payee(device_ids: tuple[bytes, ...]) -> str:
    """The corroborated policy's payout address (derived from its devices: no device's own payee)."""
    return payee_of(b"group" + b"".join(device_ids))


class EvmDevnetRun(DevnetRun):
    """The devnet on the pool contract (see the module docstring)."""

    summary_title = "devnet summary (from the pool contract's events and state)"
    verify_label = "every event replayed through the rules (mirror)"

    def __init__(self, cfg: dict[str, Any], net_cfg: dict[str, Any], n: int, k: int, *, keep_running: bool,
                 keys: str = "file") -> None:
        super().__init__(cfg, net_cfg, n, k, keep_running=keep_running, keys=keys)
        self.chain = ChainNetwork(self.net.root, oracles=n, threshold=k, window=self.window, keys_mode=keys)
        self.net = self.chain
        self.skipped_plans = [p for p in self.plans if p.fault and p.fault["fault"] == "tampered_firmware"]
        self.plans = [p for p in self.plans if p not in self.skipped_plans]
        self._paid_events: list[tuple[dict[str, Any], bytes]] = []
        self.reporter = bytes(32)  # who reported the double-signing device (set in setup)
        self._seen_block = 0

    def setup(self) -> None:
        from agent.provision import provision
        from faultproof.zk import LAYOUT_VERSION, build, export_vkey
        from ledger.evm.pool import beneficiary_of

        net = self.chain
        self.log(f"run folder {net.root}")
        with self.console.status(f"building the n={self.window} circuit (cached after the first run)"):
            built = build(self.window)
        net.prepare()
        net.start_ledger()
        self.log(f"anvil {net.anvil.url}; pool contract {net.pool.address} (chain {net.pool.chain_id}), "
                 f"ledger_id {net.ledger_id.hex()[:16]}…")
        register = RegisterCircuit(vkey=export_vkey(built), n=built.n, layout_version=LAYOUT_VERSION,
                                   transcript_hash=bytes(32), production=0)
        net.setup_pool(int(self.cfg.get("pool", {}).get("deposit", 100_000_000)), register)
        self.log(f"circuit n={built.n} registered with its on-chain verifier; "
                 f"{net.oracles} oracles bound to chain keys, k = {net.threshold}")
        if net.token is not None:
            self.log("chain keys, agent and device keys in the SoftHSM2 token; oracle Ed25519 keys are files "
                     "(their libp2p keys: no transport-key binding on the contract); agents send claims over HTTP")
        net.start_broker()
        with self.console.status(f"starting {net.oracles} oracles"):
            net.start_oracles()
        self.log(f"{net.oracles} oracles up, following the pool")
        econ = self.cfg.get("econ")
        if econ:  # DESIGN §14 on the contract: oracle bonds and the parameters, then the group's devices
            self._econ_oracles(econ)
            self._econ_plans()
        now = int(time.time() * 1000)
        self.devices, policies, provisioned = [], [], {}
        from cli.devnet.plan import DevicePlan

        def policy_terms(plan: DevicePlan, payee: str) -> IssuePolicy:
            return self._policy_terms(plan, beneficiary_of(payee), now)

        for plan in self.plans:
            p = (net.token.provision_device(self._devices_dir(plan)) if net.token is not None
                 else provision(self._devices_dir(plan)))
            provisioned[plan.index] = p
            plan.device_id = p.identity.public_key
            net.admin_txs([p.enrol])
            self.devices.append(self._sim_device(p, plan))
            if plan.role == "group":
                continue  # covered by the one corroborated policy below; its agent files its part
            own = policy_terms(plan, payee_of(plan.device_id))
            policies.append(self._econ_policy(own, econ) if econ else own)
        if econ:
            net.admin_txs([PostBond(holder_kind=BondHolder.DEVICE, holder_id=plan.device_id,
                                    amount=int(econ["device_bond"])) for plan in self.plans])
        own_plans = [plan for plan in self.plans if plan.role != "group"]
        for plan, pid in zip(own_plans, net.admin_txs(policies), strict=True):
            plan.policy_id = bytes(pid)
        self.log(f"{len(own_plans)} devices enrolled and insured on the contract "
                 f"({sum(p.fault is not None for p in own_plans)} will develop faults); "
                 f"skipped: {', '.join(sorted(SKIPPED))}")
        group = [plan for plan in self.plans if plan.role == "group"]
        if econ:
            net.admin_txs([EnrolAgent(agent_id=net.agent2_identity.public_key)])
            ids = tuple(plan.device_id for plan in group)
            (pid,) = net.admin_txs([self._econ_policy(policy_terms(group[0], group_payee(ids)), econ, ids, m=2)])
            for plan in group:
                plan.policy_id = bytes(pid)
            self.log(f"corroborated policy {bytes(pid).hex()[:12]}…: m = 2 of {len(ids)} devices, paid to "
                     f"{group_payee(ids)}")
            self._equivocate(provisioned)
        with self.console.status("starting the agent (follows the pool)"):
            net.start_agent()
        self.log(f"agent {net.agent_url}")
        if econ:
            with self.console.status("starting the second agent (the corroborated policy's other devices)"):
                net.start_agent(name="agent-2")
            self.log(f"agent-2 {net.agent2_url}")

    def _equivocate(self, provisioned: dict[int, Any]) -> None:
        """The double-signing device's evidence to oracle-0 (DevnetRun._report_equivocation); the
        oracles slash it on the contract (DESIGN §13). Its fault then streams like the others' and
        is never paid (the contract refuses a revoked device)."""
        plan, answer = self._report_equivocation(provisioned)
        deadline = time.monotonic() + 60
        while not self._slash_events(plan.device_id):
            if time.monotonic() > deadline:
                raise RuntimeError(f"device {plan.device_id.hex()[:12]} was not slashed on the contract within 60 s")
            time.sleep(0.25)
        self.log(f"device {plan.device_id.hex()[:12]}… double-signed a frame: evidence sent to oracle-0 "
                 f"({answer.get('shares')} share(s) there), slashed on the contract by the oracles")

    def _slash_events(self, device_id: bytes) -> list[Any]:
        pool = self.chain.pool
        return [log for log in pool.contract.events.Slashed().get_logs(from_block=pool.start_block)
                if bytes(log["args"]["offender"]) == device_id]

    def _equivocator_summary(self, bond: int, share_bps: int) -> dict[str, Any]:
        """The double-signing device, from the contract alone: one Slashed event (device, frame
        evidence) of its whole bond with the reporter's share, the device revoked and flagged, no
        bond left, the reporter's reward recorded, and the gas of the slash transaction."""
        from faultproof.messages import BondHolder

        pool = self.chain.pool
        plan = next(p for p in self.plans if p.role == "equivocator")
        events = self._slash_events(plan.device_id)
        _epoch, revoked_ms, _exists, revoked, slashed = pool.contract.functions.devices(plan.device_id).call()
        econ = pool.econ_state(BondHolder.DEVICE, plan.device_id, self.reporter)
        bond_left, reward = econ["bond"], econ["reward"]
        a = events[0]["args"] if events else {}
        to_reporter = bond * share_bps // 10_000
        ok = (len(events) == 1 and int(a["kind"]) == BondHolder.DEVICE and int(a["evidence"]) == 3
              and bytes(a["reporter"]) == self.reporter and int(a["amount"]) == bond
              and int(a["toReporter"]) == to_reporter == reward and int(a["toPool"]) == bond - to_reporter
              and bool(revoked) and bool(slashed) and bond_left == 0)
        return {"ok": ok, "device_id": plan.device_id.hex(), "revoked": bool(revoked), "revoked_ms": int(revoked_ms),
                "slashed": bool(slashed), "bond_left": bond_left, "slashes": len(events),
                "amount": int(a["amount"]) if events else 0, "to_reporter": int(a["toReporter"]) if events else 0,
                "to_pool": int(a["toPool"]) if events else 0, "reporter": self.reporter.hex(),
                "reporter_reward": reward,
                "gas": [self._gas(bytes(log["transactionHash"])) for log in events]}

    # ------------------------------------------------------------------ views: the contract's

    def entries(self) -> list[dict[str, Any]]:
        """The Paid events so far, shaped as the ledger's payout entries (for the live view)."""
        pool = self.chain.pool
        head = int(self.chain.w3.eth.block_number)
        if head >= self._seen_block:
            for log in pool.contract.events.Paid().get_logs(from_block=self._seen_block, to_block=head):
                self._paid_events.append((dict(log["args"]), bytes(log["transactionHash"])))
            self._seen_block = head + 1
        return [{"entry": {"height": i, "paid": int(a["amount"]),
                           "tx": {"type": "quorum-certificate", "body": {"policy_id": bytes(a["policyId"]).hex(),
                                                                         "claim_id": bytes(a["claimId"]).hex()}}}}
                for i, (a, _tx) in enumerate(self._paid_events)]

    def balances(self) -> dict[str, int]:
        return dict(self.chain.pool.balances())

    def _attestation(self, device_id: bytes) -> str:
        return "skipped"

    def summarise(self, before: dict[str, int]) -> dict[str, Any]:
        self.poll()
        net, pool = self.chain, self.chain.pool
        after = self.balances()
        group_plans = [p for p in self.plans if p.role == "group"]
        group_pid = group_plans[0].policy_id if group_plans else None
        by_policy: dict[bytes, list[dict[str, Any]]] = {}
        for p in self.payouts():
            by_policy.setdefault(bytes.fromhex(p["tx"]["body"]["policy_id"]), []).append(p)
        gas = [self._gas(tx) for a, tx in self._paid_events if bytes(a["policyId"]) != group_pid]
        devices = []
        for plan in self.plans:
            # a group device's own row: the group's payout is judged below (`econ.group`), as on the ledger
            paid = by_policy.get(plan.policy_id, []) if plan.role != "group" else []
            devices.append({
                "role": plan.role, "device_id": plan.device_id.hex(), "fault": plan.fault["fault"] if plan.fault else None,
                "trigger": plan.trigger["kind"], "policy_id": plan.policy_id.hex(),
                "claim_id": paid[0]["tx"]["body"]["claim_id"] if paid else None,
                "status": "paid" if paid else self._agent_claim_status(plan.device_id),
                "payouts": len(paid), "payout": sum(int(p["paid"]) for p in paid), "attestation": "skipped",
                "payee": payee_of(plan.device_id),
                "payee_token_balance": int(pool.token.functions.balanceOf(payee_of(plan.device_id)).call()),
            })
        group = self._group_summary(group_plans) if group_plans else None
        econ_cfg = self.cfg.get("econ")
        equivocator = (self._equivocator_summary(int(econ_cfg["device_bond"]), int(econ_cfg["reporter_share_bps"]))
                       if econ_cfg else None)
        rejected = sum(c.get("rejected", 0) for c in self.progress.oracle_claims[:1])
        verified, verify_out = self.verify_mirror(after)
        keys = net.key_custody()
        if not self.keep_running:
            self.shutdown()
        expected = [d for d in devices if d["fault"] and d["role"] == "insured"]
        held = after["free"] + after["premiums"] + after["locked"] + after["bonds"] + after["rewards"]
        ok = (all(d["payouts"] == 1 and d["payee_token_balance"] == d["payout"] for d in expected)
              and all(d["payouts"] == 0 and d["payee_token_balance"] == 0 for d in devices if d not in expected)
              and verified and after["token_balance"] == held and (group is None or group["ok"])
              and (equivocator is None or equivocator["ok"]))
        payees = {d["payee"]: d["payee_token_balance"] for d in devices}
        if group is not None:
            payees[group["payee"]] = group["payee_token_balance"]
        summary = {
            "ok": ok, "settlement": "evm", "contract": pool.address, "chain_id": pool.chain_id,
            "rpc_url": net.anvil.url, "ledger_id": net.ledger_id.hex(), "run_dir": str(net.root),
            "devices": devices, "pool": {"before": before, "after": after},
            "token": {"address": pool.token.address, "pool_balance": after["token_balance"], "payees": payees},
            "gas_per_payout": gas,
            "ledger_verified": verified, "ledger_verify": verify_out, "mirror_verified": verified,
            "receipts_verified": None,  # not applicable on a chain: see "skipped"
            "paid": sum(d["payouts"] for d in devices), "rejected": rejected,
            "expected_paid": len(expected), "seconds": round(time.monotonic() - self.progress.started, 1),
            "skipped": {**SKIPPED, "devices": [p.fault["fault"] for p in self.skipped_plans if p.fault]},
            "processes": {**{mp.name: mp.pid for mp in net.processes}, "anvil": net.anvil.proc.pid},
            "econ": ({"group": group, "equivocator": equivocator, "bonds": after["bonds"],
                      "rewards": after["rewards"]} if group is not None else None),
            "keys": keys,
        }
        self.print_summary(summary)
        econ_lines = []  # (what the contract shows, whether it is what the run expects)
        if group is not None:
            econ_lines.append((f"corroborated policy m = {group['m']} of {group['devices']}: paid {group['payouts']} "
                               f"time(s) ({group['payout']:,}) on the contract for {len(group['windows'])} windows "
                               f"of distinct agents, by the oracles; payee {group['payee']} holds "
                               f"{group['payee_token_balance']:,}; gas {group['gas']}", group["ok"]))
        if equivocator is not None:
            e = equivocator
            econ_lines.append((f"double-signing device {e['device_id'][:12]}…: revoked {e['revoked']}, slashed "
                               f"{e['slashed']} on the oracles' certificate: {e['amount']:,} ({e['to_reporter']:,} "
                               f"to the reporter's rewards); gas {e['gas']}", e["ok"]))
        for line, ok in econ_lines:
            self.console.print(f"{line} " + ("[green]OK[/]" if ok else "[red]WRONG[/]"))
        self.console.print(f"pool contract {pool.address} on chain {pool.chain_id} ({net.anvil.url}); token "
                           f"{pool.token.address}: pool holds {after['token_balance']:,}, payees "
                           f"{sum(payees.values()):,}; gas per payout {gas}")
        self.console.print("left out on the chain: " + "; ".join(f"{k}: {v}" for k, v in SKIPPED.items()))
        if keys["mode"] == "pkcs11":
            self.console.print(f"keys in token {keys['token']}: {len(keys['in_token']['chain_keys'])} chain keys, "
                               f"{len(keys['in_token']['agents'])} agents, {keys['in_token']['devices']} devices; not in "
                               "it: " + "; ".join(f"{k}: {v}" for k, v in keys["not_in_token"].items()))
        self.console.print(f"contract admin: {keys['contract_admin']}; payouts sent by {keys['payout_senders']}")
        return summary

    def _gas(self, tx: bytes) -> int:
        return int(self.chain.w3.eth.get_transaction_receipt(tx)["gasUsed"])

    def _group_summary(self, group: list[Any]) -> dict[str, Any]:
        """The corroborated policy, from the contract alone: its Paid events (paid once, the
        policy's amount, to its payee's token balance) and the windows its GroupPaid events
        carried (m of them, of distinct agents, all of faulty devices)."""
        pool, pid = self.chain.pool, group[0].policy_id
        ids = tuple(p.device_id for p in group)
        paid = [(a, tx) for a, tx in self._paid_events if bytes(a["policyId"]) == pid]
        carried = [log for log in pool.contract.events.GroupPaid().get_logs(from_block=pool.start_block)
                   if bytes(log["args"]["policyId"]) == pid]
        windows = [[bytes(w["deviceId"]).hex(), bytes(w["agentId"]).hex()] for log in carried for w in log["args"]["windows"]]
        terms_amount = int(pool.contract.functions.policy(pid).call()[0][14])
        econ = [log["args"] for log in pool.contract.events.EconPolicyTerms().get_logs(from_block=pool.start_block)
                if bytes(log["args"]["policyId"]) == pid]
        m, members = (int(econ[0]["minProofs"]), len(econ[0]["group"])) if econ else (0, 0)
        payee = group_payee(ids)
        balance = int(pool.token.functions.balanceOf(payee).call())
        faulty = sorted(p.device_id.hex() for p in group if p.fault)
        payout = sum(int(a["amount"]) for a, _tx in paid)
        ok = (len(paid) == 1 == len(carried) and payout == terms_amount == balance and len(windows) == m > 1
              and {d for d, _agent in windows} <= set(faulty) and len({agent for _d, agent in windows}) == m)
        return {"ok": ok, "policy_id": pid.hex(), "devices": members, "m": m,
                "claim_id": bytes(paid[0][0]["claimId"]).hex() if paid else None,
                "payouts": len(paid), "payout": payout, "windows": windows, "faulty": faulty, "payee": payee,
                "payee_token_balance": balance, "gas": [self._gas(tx) for _a, tx in paid]}

    def verify_mirror(self, books: dict[str, int]) -> tuple[bool, Any]:
        """Replay every event of the pool through the rules from scratch (a fresh follower): no
        event refused, and the replayed books equal the contract's to the unit."""
        from ledger.evm.verify import verify_pool

        try:
            report = asyncio.run(verify_pool(self.chain.ledger_url, timeout=30))
        except Exception as e:  # noqa: BLE001 - reported in the summary, the run still stops cleanly
            return False, f"{type(e).__name__}: {e}"
        same = report["books"] is not None and all(report["books"][k] == books[k] for k in ("free", "premiums", "paid", "locked", "bonds", "rewards"))
        return bool(report["ok"]) and same, report
