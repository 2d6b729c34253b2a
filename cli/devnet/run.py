"""One devnet run: set up, stream device readings, watch claims get paid, judge from the ledger.

The live view polls only public HTTP APIs (agent, oracles, ledger). The summary is built from the
ledger's entries and its receipts, each receipt verified offline, and from `faultproof ledger
verify` run on the ledger's database after the ledger stopped.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from cli.devnet.network import LocalNetwork, http_json
from cli.devnet.plan import (
    FAULT_ARGS,
    UNPAID_FAULTS,
    DevicePlan,
    Progress,
    plan_devices,
    trigger_params,
)

DAY = 86_400_000


class DevnetRun:
    summary_title = "devnet summary (from the ledger's entries and receipts)"
    verify_label = "ledger verify"

    def __init__(self, cfg: dict[str, Any], net_cfg: dict[str, Any], n: int, k: int, *, keep_running: bool,
                 keys: str = "file") -> None:
        self.cfg, self.net_cfg, self.keep_running = cfg, net_cfg, keep_running
        self.console = Console(stderr=False)
        self.live_ok = self.console.is_terminal
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        root = Path(net_cfg.get("data_dir", "devnet-data")).resolve() / f"run-{stamp}"
        self.window = int(net_cfg.get("window", 16))
        self.net = LocalNetwork(root, oracles=n, threshold=k, window=self.window, keys_mode=keys)
        self.plans = plan_devices(cfg, int(net_cfg.get("devices", 8)))
        self.progress = Progress()
        self._sim_error: BaseException | None = None
        self._stopped = False

    # ------------------------------------------------------------------ phases

    def log(self, text: str) -> None:
        self.console.print(f"[dim]{time.monotonic() - self.progress.started:6.1f}s[/dim] {text}")

    def run(self, json_path: Path | None = None) -> dict[str, Any]:
        try:
            self.setup()
            before = self.balances()
            self.log(f"pool before: {before}")
            self.stream_and_watch()
            summary = self.summarise(before)
        except BaseException:
            self.shutdown()
            raise
        if json_path is not None:  # before --keep-running waits, so the summary is there to read
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(json.dumps(summary, indent=1) + "\n")
        if self.keep_running:
            self.print_urls()
            try:
                while True:
                    time.sleep(3600)
            finally:
                self.shutdown()
        return summary

    def setup(self) -> None:
        from agent.provision import provision
        from faultproof.messages import IssuePolicy, RegisterCircuit
        from faultproof.zk import LAYOUT_VERSION, build, export_vkey

        net = self.net
        self.log(f"run folder {net.root}")
        with self.console.status(f"building the n={self.window} circuit (cached after the first run)"):
            built = build(self.window)
        self.log(f"circuit n={built.n}: development setup (single-party, UNSAFE for real funds)")
        net.prepare()
        net.start_ledger()
        self.log(f"ledger {net.ledger_url} ledger_id {net.ledger_id.hex()[:16]}…")
        pool = self.cfg.get("pool", {})
        register = RegisterCircuit(vkey=export_vkey(built), n=built.n, layout_version=LAYOUT_VERSION,
                                   transcript_hash=bytes(32), production=0)
        net.setup_pool(int(pool.get("deposit", 100_000_000)), register)
        if net.token is not None:
            net.bind_transport_keys()
            self.log("keys in the SoftHSM2 token; oracles and the agent gossip under bound transport keys")
        net.start_broker()
        self.log(f"MQTT broker 127.0.0.1:{net.broker_port}")
        with self.console.status(f"starting {net.oracles} oracles"):
            net.start_oracles()
        self.log(f"{net.oracles} oracles up, threshold {net.threshold}")
        net.start_dashboard()
        self.log(f"dashboard {net.dashboard_url} (open it to watch claims get paid)")
        econ = self.cfg.get("econ")
        if econ:
            self._econ_oracles(econ)
            self._econ_plans()
        now = int(time.time() * 1000)
        enrolments, policies, provisioned = [], [], {}
        self.devices = []

        def policy_terms(plan: DevicePlan) -> IssuePolicy:
            return self._policy_terms(plan, plan.device_id, now)

        for plan in self.plans:
            p = (net.token.provision_device(self._devices_dir(plan)) if net.token is not None
                 else provision(self._devices_dir(plan)))
            provisioned[plan.index] = p
            plan.device_id = p.identity.public_key
            enrolments.append(p.enrol)
            if plan.role == "group":
                # covered by the one corroborated policy below; streamed, and its agent files its part
                self.devices.append(self._sim_device(p, plan))
                continue
            policies.append(self._econ_policy(policy_terms(plan), econ) if econ else policy_terms(plan))
            self.devices.append(self._sim_device(p, plan))
        net.admin_txs(enrolments)
        if econ:
            from faultproof.messages import BondHolder, PostBond

            net.admin_txs([PostBond(holder_kind=BondHolder.DEVICE, holder_id=plan.device_id,
                                    amount=int(econ["device_bond"])) for plan in self.plans])
        own = [plan for plan in self.plans if plan.role != "group"]
        for plan, tx in zip(own, net.admin_txs(policies), strict=True):
            from faultproof.messages import policy_id

            plan.policy_id = policy_id(tx)
        self._attest()
        self.log(f"{len(own)} devices enrolled and insured "
                 f"({sum(p.fault is not None for p in own)} will develop faults)")
        if econ:
            self._econ_group_and_equivocator(econ, policy_terms, provisioned)
        with self.console.status("starting the agent (checks its proving key against the ledger)"):
            net.start_agent()
        self.log(f"agent {net.agent_url}")
        if econ:
            with self.console.status("starting the second agent (the corroborated policy's other devices)"):
                net.start_agent(name="agent-2")
            self.log(f"agent-2 {net.agent2_url}")

    # ------------------------------------------------------------------ economic security (§14)

    def _econ_oracles(self, econ: dict[str, Any]) -> None:
        """Bond every oracle, then switch the economic rules on."""
        from faultproof.messages import BondHolder, EconParams, PostBond

        self.net.admin_txs([PostBond(holder_kind=BondHolder.ORACLE, holder_id=o.public_key,
                                     amount=int(econ["oracle_bond"])) for o in self.net.oracle_identities])
        self.net.admin_txs([EconParams(min_oracle_bond=int(econ["oracle_bond"]),
                                       max_staging_cost=int(econ["max_staging_cost"]),
                                       reporter_share_bps=int(econ["reporter_share_bps"]),
                                       unlock_delay_ms=int(econ["unlock_delay_ms"]))])
        self.log(f"economic rules on: {len(self.net.oracle_identities)} oracles bonded {int(econ['oracle_bond']):,} each")

    def _econ_plans(self) -> None:
        """One more faulty device that will double-sign a frame (slashed before it streams: never
        paid), and three for a corroborated policy: two of them develop the first fault at the same
        seq (so their windows overlap in time), the third stays healthy. The first is under the
        agent, the other two under agent-2 (§14)."""
        first = next(p for p in self.plans if p.fault is not None)
        base = len(self.plans)
        self.plans.append(DevicePlan(base, dict(first.fault or {}), first.trigger, role="equivocator"))
        base = len(self.plans)
        self.plans += [DevicePlan(base + i, dict(first.fault or {}) if i < 2 else None, first.trigger,
                                  role="group") for i in range(3)]

    def _devices_dir(self, plan: DevicePlan) -> Any:
        """Where a device's keys go: its agent's folder (the group's 2nd and 3rd are agent-2's)."""
        group = [p for p in self.plans if p.role == "group"]
        return self.net.agent2_devices_dir if plan in group[1:] else self.net.devices_dir

    def _policy_terms(self, plan: DevicePlan, beneficiary: bytes, now: int) -> Any:
        """A device's policy (IssuePolicy) from the config's [policy] table and its plan's trigger.
        The term starts now: a term may not start in the past (DESIGN §11)."""
        from faultproof.messages import IssuePolicy

        terms = self.cfg.get("policy", {})
        kind, T, K, lo, hi, G = trigger_params(plan.trigger).as_tuple()
        return IssuePolicy(
            device_id=plan.device_id, beneficiary=beneficiary, circuit_id=self.net.circuit_id, kind=kind,
            threshold=T, count=K, lo=lo, hi=hi, gap_ms=G, coverage=int(terms.get("coverage", 5_000_000)),
            amount=int(terms.get("amount", 1_000_000)), premium=int(terms.get("premium", 50_000)),
            start_ms=now, end_ms=now + int(terms.get("term_days", 30)) * DAY,
            period_ms=int(terms.get("period_ms", 3_600_000)),
            claim_window_ms=int(terms.get("claim_window_ms", 7 * DAY)))

    def _report_equivocation(self, provisioned: dict[int, Any]) -> tuple[DevicePlan, dict[str, Any]]:
        """The double-signing device signs two different frames for one (device, epoch, seq); anyone
        holding both reports them to an oracle (`POST /v1/equivocations`), which checks them: on
        the SQLite ledger it forwards them and the ledger revokes the device and slashes its bond;
        on a chain the oracles certify the slash (DESIGN §13, §14). The plan and oracle-0's answer."""
        from faultproof.identity import Identity
        from faultproof.messages import Frame, FrameEquivocation

        plan = next(p for p in self.plans if p.role == "equivocator")
        device = provisioned[plan.index]
        frame = Frame(device_id=plan.device_id, epoch=device.enrol.epoch, seq=1_000_000,
                      ts_ms=int(time.time() * 1000), chain=(1).to_bytes(32, "big"))
        twin = frame.replace(chain=(2).to_bytes(32, "big"))
        self.reporter = Identity.generate().public_key
        ev = FrameEquivocation(reporter=self.reporter, first=frame.sign(device.identity),
                               second=twin.sign(device.identity))
        code, answer = http_json("POST", f"{self.net.oracle_urls[0]}/v1/equivocations", ev.encode(),
                                 "application/msgpack")
        if code != 202:
            raise RuntimeError(f"oracle-0 refused the double-signing evidence: {code} {answer}")
        return plan, answer

    def _econ_policy(self, terms: Any, econ: dict[str, Any], group: tuple[bytes, ...] = (), m: int = 1) -> Any:
        from faultproof.messages import EconPolicy

        return EconPolicy(terms=terms, staging_cost=int(econ["staging_cost"]), group=group, min_proofs=m,
                          overlap_tolerance_ms=int(econ.get("overlap_tolerance_ms", 60_000)) if group else 0)

    def _econ_group_and_equivocator(self, econ: dict[str, Any], policy_terms: Any, provisioned: dict[int, Any]) -> None:
        from faultproof.messages import EnrolAgent, policy_id

        self.net.admin_txs([EnrolAgent(agent_id=self.net.agent2_identity.public_key)])
        group = [p for p in self.plans if p.role == "group"]
        ids = tuple(p.device_id for p in group)
        (tx,) = self.net.admin_txs([self._econ_policy(policy_terms(group[0]), econ, ids, m=2)])
        for plan in group:
            plan.policy_id = policy_id(tx)
        self.log(f"corroborated policy {plan.policy_id.hex()[:12]}…: m = 2 of {len(ids)} devices")
        plan, answer = self._report_equivocation(provisioned)
        self.log(f"device {plan.device_id.hex()[:12]}… double-signed a frame: evidence sent to oracle-0, "
                 f"which the ledger took (height {answer.get('height')})")

    def _econ_summary(self) -> dict[str, Any]:
        """From the ledger's entries, replayed: the report, the slashed device, the group policy."""
        from cli.econ import policy_reports, render_report, replay_ledger
        from faultproof.messages import BondHolder

        state = asyncio.run(replay_ledger(self.net.ledger_url))
        render_report(state, self.console)
        report = policy_reports(state, state.time_ms)
        eq = next(p for p in self.plans if p.role == "equivocator")
        group = [p for p in self.plans if p.role == "group"]
        group_policy = state.econ.policies.get(group[0].policy_id)
        group_paid = [c for c in state.claims.values() if c.policy_id == group[0].policy_id]
        return {
            "policies": report,
            "all_profits_negative": all(r["profit"] < 0 for r in report),
            "equivocator": {"device_id": eq.device_id.hex(),
                            "revoked": state.devices[eq.device_id].revoked_ms is not None,
                            "slashed": eq.device_id in state.econ.slashed_devices,
                            "bond_left": state.econ.active_bond(BondHolder.DEVICE, eq.device_id)},
            "group": {"policy_id": group[0].policy_id.hex(),
                      "devices": len(group_policy.group) if group_policy else 0,
                      "m": group_policy.min_proofs if group_policy else 0,
                      # econ2: the group claim the ledger paid (once), and whose windows it carried
                      "payouts": len(group_paid),
                      "payout": sum(c.paid for c in group_paid),
                      "windows": [[w.device_id.hex(), w.agent_id.hex()] for c in group_paid
                                  for w in getattr(c.body, "windows", ())],
                      "faulty": sorted(p.device_id.hex() for p in group if p.fault)},
            "slashes": [{"offender": s.offender.hex(), "slashed": s.slashed, "to_reporter": s.to_reporter,
                         "to_pool": s.to_pool} for s in state.econ.slashes],
        }
    def _attest(self) -> None:
        """DESIGN §15: allow the genuine boot, require attestation for payouts, and let every
        device attest on the ledger (a tampered_firmware device measures another firmware)."""
        from agent.boot import allowlist_txs, ledger_evidence
        from faultproof.messages import SetLockdown
        from faultproof.signing import Ed25519FileSigner

        net = self.net
        net.admin_txs([*allowlist_txs(), SetLockdown(breaker_window_ms=0, breaker_share_bps=0,
                                                      attestation_max_age_ms=int(self.cfg.get("policy", {}).get(
                                                          "attestation_max_age_ms", 3_600_000)))])
        # every plan has its simulated device, the corroborated group's too (they stream, §14)
        for plan, dev in zip(self.plans, self.devices, strict=True):
            code, st = http_json("GET", f"{net.ledger_url}/v1/state")
            if code != 200:
                raise RuntimeError(f"ledger state: {code} {st}")
            tampered = bool(plan.fault and plan.fault["fault"] == "tampered_firmware")
            signer = dev.identity if net.token is not None else Ed25519FileSigner(dev.identity)  # token: signs there
            ev = ledger_evidence(signer, epoch=dev.epoch, seq=0, ts_ms=int(time.time() * 1000),
                                 head_hash=bytes.fromhex(st["head_hash"]), tampered=tampered)
            code, body = http_json("POST", f"{net.ledger_url}/v1/tx", ev.encode(), "application/msgpack")
            if code >= 300:
                raise RuntimeError(f"ledger refused the evidence of {plan.device_id.hex()[:12]}: {code} {body}")
        self.log(f"{len(self.plans)} devices attested their boot on the ledger "
                 f"({sum(1 for p in self.plans if p.fault and p.fault['fault'] == 'tampered_firmware')} tampered)")

    def _attestation(self, device_id: bytes) -> str:
        code, body = http_json("GET", f"{self.net.ledger_url}/v1/devices/{device_id.hex()}/history", timeout=5)
        results = body.get("attestations", []) if code == 200 else []
        if not results:
            return "none"
        return "passed" if results[-1]["passed"] else "failed"

    def _sim_device(self, provisioned: Any, plan: DevicePlan) -> Any:
        from agent.simulator import Fault, Sensor, SimDevice

        sensor_cfg = self.cfg.get("sensor", {})
        faults = []
        if plan.fault is not None:
            kind = plan.fault["fault"]
            ctor = "excursion" if kind == "tampered_firmware" else kind  # tampered: also a real excursion
            faults.append(getattr(Fault, ctor)(**{a: plan.fault[a] for a in _fault_args(kind)}))
        sensor = Sensor(base=int(sensor_cfg.get("base", 2150)), noise=int(sensor_cfg.get("noise", 40)),
                        seed=int(self.net_cfg.get("seed", 1)) * 1000 + plan.index)
        return SimDevice(provisioned.identity, provisioned.blinding_key, sensor=sensor, faults=faults,
                         provisioned=provisioned)

    def _simulate(self) -> None:
        from agent.simulator import MqttTransport, run_fleet

        async def main() -> None:
            async with MqttTransport("127.0.0.1", self.net.broker_port) as transport:
                await run_fleet(self.devices, transport, readings=int(self.net_cfg.get("readings", 200)),
                                rate_hz=float(self.net_cfg.get("rate_hz", 10)))

        try:
            asyncio.run(main())
        except BaseException as e:  # reported by the watcher; a device that dies must not hang the run
            self._sim_error = e
        finally:
            self.progress.sims_done = True

    def stream_and_watch(self) -> None:
        sims = threading.Thread(target=self._simulate, name="devices", daemon=True)
        sims.start()
        deadline = time.monotonic() + float(self.net_cfg.get("seconds", 240))
        expected = {p.policy_id for p in self.plans if p.fault is not None and p.role in ("insured", "group")
                    and p.fault["fault"] not in UNPAID_FAULTS}
        settle_until: float | None = None
        last_line = ""
        live = Live(self.render(), console=self.console, refresh_per_second=4) if self.live_ok else None
        try:
            if live:
                live.start()
            while time.monotonic() < deadline:
                self.poll()
                if live:
                    live.update(self.render())
                else:
                    line = self.plain_line()
                    if line != last_line:
                        self.log(line)
                        last_line = line
                if self._sim_error is not None:
                    raise RuntimeError(f"device simulator failed: {self._sim_error!r}")
                paid = self.paid_policies()
                if self.progress.sims_done and expected <= paid:
                    # Every fault paid and every device done: wait a moment for anything wrongful.
                    settle_until = settle_until or time.monotonic() + 5
                    if time.monotonic() >= settle_until:
                        break
                time.sleep(0.5)
        finally:
            if live:
                live.stop()

    # ------------------------------------------------------------------ views (public APIs only)

    def poll(self) -> None:
        net, pr = self.net, self.progress
        code, st = http_json("GET", f"{net.agent_url}/v1/status", timeout=5)
        if code == 200:
            pr.frames = int(st["frames"]["committed"])
            pr.rejected_frames = int(st["frames"]["rejected"])
            pr.claims = {k: v for k, v in st.get("claims", {}).items() if v}
        pr.oracle_claims = []
        for url in net.oracle_urls:
            code, st = http_json("GET", f"{url}/v1/status", timeout=5)
            pr.oracle_claims.append(st.get("claims", {}) if code == 200 else {})
        self._entries = self.entries()
        pr.payouts = sum(1 for e in self._entries if e["entry"]["tx"].get("type") == "quorum-certificate")
        pr.height = len(self._entries) - 1

    def entries(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        after = -1
        while True:
            code, body = http_json("GET", f"{self.net.ledger_url}/v1/entries?after={after}", timeout=10)
            if code != 200 or not body["entries"]:
                return out
            out += body["entries"]
            after = out[-1]["entry"]["height"]
            if after >= body["height"]:
                return out

    def payouts(self) -> list[dict[str, Any]]:
        return [e["entry"] for e in getattr(self, "_entries", []) if e["entry"]["tx"].get("type") == "quorum-certificate"]

    def paid_policies(self) -> set[bytes]:
        group = [e["entry"] for e in getattr(self, "_entries", [])
                 if e["entry"]["tx"].get("type") == "group-quorum-certificate"]  # econ2
        return {bytes.fromhex(p["tx"]["body"]["policy_id"]) for p in self.payouts() + group}

    def balances(self) -> dict[str, int]:
        code, st = http_json("GET", f"{self.net.ledger_url}/v1/state")
        assert code == 200, st
        return dict(st["balances"])

    def render(self) -> Table:
        pr = self.progress
        t = Table(title=f"faultproof devnet — {time.monotonic() - pr.started:.0f} s", expand=False)
        t.add_column("stage")
        t.add_column("now", justify="right")
        t.add_row("frames ingested (agent)", f"{pr.frames:,}")
        t.add_row("frames rejected (agent)", f"{pr.rejected_frames:,}")
        t.add_row("claims at the agent", ", ".join(f"{k} {v}" for k, v in sorted(pr.claims.items())) or "—")
        for i, c in enumerate(pr.oracle_claims):
            t.add_row(f"oracle-{i} claims", ", ".join(f"{k} {v}" for k, v in sorted(c.items()) if v) or "—")
        expected = sum(p.fault is not None and p.role == "insured" for p in self.plans)
        t.add_row("payouts on the ledger", f"{pr.payouts} / {expected} expected")
        t.add_row("ledger height", str(pr.height))
        t.add_row("devices", "streaming" if not pr.sims_done else "done")
        return t

    def plain_line(self) -> str:
        pr = self.progress
        claims = ",".join(f"{k}={v}" for k, v in sorted(pr.claims.items())) or "none"
        return (f"frames={pr.frames} rejected={pr.rejected_frames} claims[{claims}] "
                f"payouts={pr.payouts} height={pr.height} devices={'done' if pr.sims_done else 'streaming'}")

    # ------------------------------------------------------------------ verdict

    def summarise(self, before: dict[str, int]) -> dict[str, Any]:
        from faultproof.messages import Receipt
        from ledger.receipts import verify_receipt

        self.poll()
        after = self.balances()
        payouts = self.payouts()
        by_policy: dict[bytes, list[dict[str, Any]]] = {}
        for p in payouts:
            by_policy.setdefault(bytes.fromhex(p["tx"]["body"]["policy_id"]), []).append(p)
        devices, receipts_ok = [], True
        for plan in self.plans:
            paid = by_policy.get(plan.policy_id, [])
            claim_hex = paid[0]["tx"]["body"]["claim_id"] if paid else None
            status = "paid" if paid else self._agent_claim_status(plan.device_id)
            if claim_hex:
                code, body = http_json("GET", f"{self.net.ledger_url}/v1/receipts/{claim_hex}")
                check = verify_receipt(Receipt.from_json(body), ledger_id=self.net.ledger_id) if code == 200 else None
                receipts_ok &= bool(check and check.ok)
            devices.append({
                "role": plan.role,
                "device_id": plan.device_id.hex(),
                "fault": plan.fault["fault"] if plan.fault else None,
                "trigger": plan.trigger["kind"],
                "policy_id": plan.policy_id.hex(),
                "claim_id": claim_hex,
                "status": status,
                "payouts": len(paid),
                "payout": sum(int(p["paid"]) for p in paid),
                "attestation": self._attestation(plan.device_id),
            })
        rejected = sum(c.get("rejected", 0) for c in self.progress.oracle_claims[:1])
        dashboard = self._dashboard_view()
        econ = self._econ_summary() if self.cfg.get("econ") else None
        if not self.keep_running:
            self.shutdown()  # verify the database at rest
        verified, verify_out = self.verify_ledger()
        expected = [d for d in devices if d["fault"] and d["role"] == "insured" and d["fault"] not in UNPAID_FAULTS]
        ok = (all(d["payouts"] == 1 for d in expected)
              and all(d["payouts"] == 0 for d in devices if d not in expected)
              and verified and receipts_ok)
        if econ is not None:
            eq = econ["equivocator"]
            ok = ok and econ["all_profits_negative"] and eq["revoked"] and eq["slashed"] and eq["bond_left"] == 0 \
                and econ["group"]["devices"] == 3 and econ["group"]["m"] == 2 and econ["group"]["payouts"] == 1
        summary = {
            "ok": ok,
            "ledger_id": self.net.ledger_id.hex(),
            "run_dir": str(self.net.root),
            "devices": devices,
            "pool": {"before": before, "after": after},
            "ledger_verified": verified,
            "ledger_verify": verify_out,
            "receipts_verified": receipts_ok,
            "paid": sum(d["payouts"] for d in devices),
            "rejected": rejected,
            "expected_paid": len(expected),
            "seconds": round(time.monotonic() - self.progress.started, 1),
            "dashboard_url": self.net.dashboard_url,
            "dashboard": dashboard,
            "processes": {mp.name: mp.pid for mp in self.net.processes},
            "econ": econ,
        }
        self.print_summary(summary)
        return summary

    def _dashboard_view(self) -> dict[str, Any] | None:
        """What the dashboard shows (its /api/health), once it has caught up with the ledger."""
        height = self.progress.height
        body: Any = None
        for _ in range(20):
            code, body = http_json("GET", f"{self.net.dashboard_url}api/health", timeout=5)
            if code == 200 and body.get("height") is not None and body["height"] >= height:
                break
            time.sleep(0.25)
        return body if isinstance(body, dict) else None

    def _agent_claim_status(self, device_id: bytes) -> str:
        plan = next((p for p in self.plans if p.device_id == device_id), None)
        url = self.net.agent2_url if plan is not None and self._devices_dir(plan) == self.net.agent2_devices_dir \
            else self.net.agent_url
        code, body = http_json("GET", f"{url}/v1/claims?device_id={device_id.hex()}", timeout=5)
        if code != 200 or not body.get("claims"):
            return "none"
        return str(body["claims"][-1].get("status", "unknown"))

    def verify_ledger(self) -> tuple[bool, Any]:
        out = subprocess.run([sys.executable, "-m", "cli", "ledger", "verify", "--db",
                              str(self.net.ledger_db), "--json"], capture_output=True, text=True, timeout=300)
        try:
            parsed: Any = json.loads(out.stdout)
        except ValueError:
            parsed = (out.stdout + out.stderr).strip()[-2000:]
        return out.returncode == 0, parsed

    def print_summary(self, s: dict[str, Any]) -> None:
        t = Table(title=self.summary_title)
        for col in ("device", "fault", "trigger", "attestation", "claim", "status", "payout"):
            t.add_column(col, justify="right" if col == "payout" else "left")
        for d in s["devices"]:
            should_pay = bool(d["fault"]) and d["role"] == "insured" and d["fault"] not in UNPAID_FAULTS
            wrong = d["payouts"] != (1 if should_pay else 0)
            label = (d["fault"] or "healthy") + ("" if d["role"] == "insured" else f" ({d['role']})")
            t.add_row(d["device_id"][:12] + "…", label, d["trigger"], d.get("attestation", "—"),
                      (d["claim_id"] or "—")[:12], ("[red]" if wrong else "[green]") + d["status"],
                      f"{d['payout']:,}")
        self.console.print(t)
        b = Table(title="pool balances")
        b.add_column("account")
        b.add_column("before", justify="right")
        b.add_column("after", justify="right")
        for acct in s["pool"]["before"]:
            b.add_row(acct, f"{s['pool']['before'][acct]:,}", f"{s['pool']['after'].get(acct, 0):,}")
        self.console.print(b)
        if s.get("econ") and "all_profits_negative" in s["econ"]:  # the evm devnet prints its own (cli/devnet/chain.py)
            e = s["econ"]
            self.console.print(f"economic security: every policy's cheapest attack costs more than it pays: "
                               f"{'[green]yes' if e['all_profits_negative'] else '[red]NO'}[/]; double-signing device "
                               f"revoked {e['equivocator']['revoked']}, slashed {e['equivocator']['slashed']}; "
                               f"corroborated policy m = {e['group']['m']} of {e['group']['devices']}, "
                               f"paid {e['group']['payouts']} time(s) ({e['group']['payout']:,}) for "
                               f"{len(e['group']['windows'])} windows of distinct agents")
        self.console.print(f"{self.verify_label}: {'[green]OK' if s['ledger_verified'] else '[red]FAILED'}[/]  "
                           f"receipts: {_verdict(s['receipts_verified'])}  "
                           f"paid {s['paid']} of {s['expected_paid']} expected, {s['rejected']} rejected, "
                           f"{s['seconds']} s")
        self.console.print("[bold green]PASS[/]" if s["ok"] else "[bold red]FAIL[/] (logs: "
                           f"{self.net.logs})")

    def print_urls(self) -> None:
        self.console.print("network left running (Ctrl-C stops it):")
        self.console.print(f"  export FAULTPROOF_LEDGER={self.net.ledger_url}")
        self.console.print(f"  export FAULTPROOF_ORACLE={self.net.oracle_urls[0]}")
        self.console.print(f"  agent {self.net.agent_url}  oracles {' '.join(self.net.oracle_urls)}")
        self.console.print(f"  dashboard {self.net.dashboard_url}")

    def shutdown(self) -> None:
        if not self._stopped:
            self._stopped = True
            self.net.stop()


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else "[green]OK[/]" if ok else "[red]FAILED[/]"


def _fault_args(kind: str) -> tuple[str, ...]:
    return FAULT_ARGS[kind]
