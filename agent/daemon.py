"""The gateway agent daemon (`faultproof agent run`): wires ingest, detection, proving and claims.

Start-up, in order, each step refusing to continue with a message that says what to fix:
  1. the config, the agent key, the devices' blinding keys (`<device_id_hex>.blind`, 0600);
  2. the ledger replica (follows the ledger service; every entry checked and replayed);
  3. the proving keys: for every configured window size n, `faultproof.zk.build(n)` (cached on
     disk) and its circuit_id = H(vkey, n, layout) must be registered on the ledger with the same
     verification key bytes, or the agent refuses to start (its proofs would never verify);
  4. the ingest engine (store, frame checks, detection) and the claim manager (prove, sign, send,
     follow), the proof worker pool, gossip, MQTT and the HTTP API.
Then it runs until SIGTERM/SIGINT: every background loop is a task of one TaskGroup, so an error
in any of them stops the agent (and the exit status says so) instead of leaving a half-alive
daemon. SIGTERM/SIGINT during start-up (the ledger wait included) stops it at once, status 0.
On shutdown MQTT stops first (nothing more is acknowledged), queued frames are committed,
then the rest closes.

This file must never decide whether a frame, a window or a claim is valid: it only wires the
modules that do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from agent.anchor import Anchorer
from agent.api import make_app
from agent.claims import CLAIMS_TOPIC, ClaimManager, ClaimRecord, ClaimSender, ManagerConfig
from agent.config import AgentConfig
from agent.core import ledger_rejection
from agent.detect import Window, trigger_params
from agent.group import GroupPayouts
from agent.ingest import EngineConfig, IngestEngine
from agent.ledger_link import LedgerReplica, snapshot, unprovable_policies
from agent.metrics import AgentMetrics
from agent.mqtt import MqttIngest, MqttSettings
from agent.provision import load_blinding_key, load_sign_every
from faultproof.errors import FaultproofError
from faultproof.identity import Identity, KeyFileError
from faultproof.messages import ClaimBatch, circuit_id
from faultproof.retry import unless_stopped
from faultproof.signing import KeyError_ as SigningKeyError
from faultproof.signing import load_daemon_key, load_process_keys
from faultproof.zk.params import TriggerParams

log = logging.getLogger("faultproof.agent")
BLIND_FILE = re.compile(r"^([0-9a-f]{64})\.blind$")


class StartupError(Exception):
    """The agent cannot start; the message says why and what to fix."""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def load_blinding_keys(directory: Path) -> dict[bytes, bytes]:
    """Every `<device_id_hex>.blind` in the directory. A key file readable by others is refused."""
    keys: dict[bytes, bytes] = {}
    if not directory.is_dir():
        return keys
    for p in sorted(directory.iterdir()):
        m = BLIND_FILE.match(p.name)
        if m is None:
            continue
        try:
            keys[bytes.fromhex(m.group(1))] = load_blinding_key(p)
        except KeyFileError as e:
            log.error("skipping device key: %s", e)
    return keys


class Agent:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.metrics = AgentMetrics()
        self.identity: Identity | None = None
        self.gossip_identity: Identity | None = None
        self.keys: dict[bytes, bytes] = {}
        self.sign_every: dict[bytes, int] = {}  # device -> s from its provisioning (DESIGN §16)
        self.replica: LedgerReplica | None = None
        self.anchorer: Anchorer | None = None  # device-history anchors (DESIGN §11)
        self.reattester: Any = None  # agent.reattest.Reattester: periodic device attestation (DESIGN §15)
        self.suspender: Any = None  # agent.suspend.SuspensionReporter: forged frames to the oracles (§15)
        self.tpm: Any = None  # agent.tpm.GatewayTpm when [tpm] tcti names one
        self.requoter: Any = None  # agent.reattest.GatewayRequoter: the gateway's periodic quote (§15 H10)
        self._evidence: asyncio.Queue[bytes] = asyncio.Queue(maxsize=10_000)
        self.circuits: dict[bytes, Any] = {}  # circuit_id -> BuiltCircuit
        self.circuit_sizes: dict[bytes, int] = {}
        self._group_payouts = GroupPayouts()  # econ2: parts of corroborated claims (agent/group.py)
        self.engine: IngestEngine = None  # type: ignore[assignment]  # set in start()
        self.manager: ClaimManager = None  # type: ignore[assignment]
        self.gossip: Any = None
        self.mqtt: MqttIngest | None = None
        self.pool: Any = None
        self.sender: ClaimSender | None = None
        self._runner: web.AppRunner | None = None
        self._client: Any = None
        self.started_ms = now_ms()
        self.http_port = config.http.port
        self.gossip_port = config.gossip.port

    # ------------------------------------------------------------------ start-up

    async def start(self) -> None:
        cfg = self.config
        try:
            # hardware2 (DESIGN §15): the key may be in a token; gossip then uses the transport key,
            # and an agent that does not gossip (claims over HTTP) needs none.
            if cfg.gossip.enabled or cfg.transport_key_file is not None:
                self.identity, self.gossip_identity = load_process_keys(cfg.key_file, cfg.transport_key_file)
            else:
                self.identity = load_daemon_key(cfg.key_file)
        except (KeyFileError, SigningKeyError) as e:
            raise StartupError(str(e)) from None
        self.keys = load_blinding_keys(cfg.blinding_keys_dir)
        log.info("agent %s: %d device key(s) in %s", self.identity.public_key.hex(), len(self.keys),
                 cfg.blinding_keys_dir)

        from ledger.settlement import connect

        self._client = connect(cfg.ledger_url, timeout=10.0)
        self.replica = LedgerReplica(self._client, wait_s=cfg.ledger_wait_s, registry=self.metrics.registry)
        try:
            state = await self.replica.bootstrap(cfg.ledger_bootstrap_timeout_s)
        except FaultproofError as e:
            raise StartupError(f"cannot follow the ledger at {cfg.ledger_url}: {e}") from None
        if not state.agent_enrolled(self.identity.public_key):
            log.warning("this agent (%s) is not enrolled on the ledger: oracles will refuse its claims",
                        self.identity.public_key.hex())

        await self._check_proving_keys()

        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        ic = cfg.ingest
        self.engine = IngestEngine(cfg.store_path, EngineConfig(
            max_skew_ms=ic.max_skew_ms, reorder_window=ic.reorder_window, max_batch=ic.max_batch,
            max_pending=ic.max_pending, synchronous=ic.synchronous,
            retention_ms=int(ic.retention_hours * 3_600_000) or None, retention_interval_s=ic.retention_interval_s,
            commit_delay_ms=ic.commit_delay_ms), metrics=self.metrics,
            on_claims=lambda ws: self._call_soon(loop, ws))
        await asyncio.to_thread(self.engine.start)
        self.refresh()
        replica = self.replica
        # Made even when periodic anchors are off: a decommission asks for the final head (H11).
        self.anchorer = Anchorer(self.identity, cfg.store_path, self._client, lambda: replica.state,
                                 interval_s=cfg.ledger_anchor_interval_s or 60.0)

        from faultproof.zk.pool import ProofPool

        self.pool = ProofPool(cfg.prover.workers, preload=list(self.circuits.values()))
        if cfg.gossip.enabled:
            try:
                await self._start_gossip()
            except (FaultproofError, OSError) as e:
                raise StartupError(f"gossip cannot listen on port {self.gossip_port}: {e}; stop what holds it or "
                                   "set [gossip] port (0: any free port)") from None
        self.sender = ClaimSender(self.gossip, cfg.oracle_urls, self.metrics)
        cc = cfg.claims
        self.manager = ClaimManager(
            engine=self.engine, store_path=cfg.store_path, agent=self.identity, prover=self.pool,
            circuits=self.circuits, blinding_keys=self.keys, policy_params=self._policy_params,
            paid_amount=self._paid_amount, sender=self.sender, metrics=self.metrics,
            config=ManagerConfig(cc.follow_interval_s, cc.backoff_initial_s, cc.backoff_max_s,
                                 cc.content_refusals_to_reject), oracle_set=self._oracle_set,
            ledger_rejection=self._ledger_rejection, claim_window_ms=self._claim_window_ms)
        self.manager.load(await self.engine.run_op_async(lambda store: store.claims()))

        if cfg.oracle_urls:
            from agent.suspend import SuspensionReporter

            self.suspender = SuspensionReporter(self.identity, self.engine, cfg.store_path, cfg.oracle_urls)
        if cfg.tpm.tcti and cfg.tpm.quote_interval_s > 0:
            from agent.reattest import GatewayRequoter
            from agent.tpm import GatewayTpm, TpmError

            try:
                self.tpm = await asyncio.to_thread(GatewayTpm, cfg.tpm.tcti)
            except TpmError as e:
                raise StartupError(f"[tpm] tcti: {e}") from None
            self.requoter = GatewayRequoter(self._client, lambda: replica.state, self.identity.public_key,
                                            self.tpm.quote, interval_ms=int(cfg.tpm.quote_interval_s * 1000))
        if cfg.mqtt.enabled and cfg.attestation_interval_s > 0:
            from agent.reattest import Reattester

            self.reattester = Reattester(
                self._client, lambda: replica.state, lambda: self.keys, self._ask_attestation,
                interval_ms=int(cfg.attestation_interval_s * 1000),
                on_refused=lambda d, r: self.engine.refused(d, r, now_ms()))
        if cfg.mqtt.enabled:
            try:
                mqtt_password = Path(cfg.mqtt.password_file).read_text().strip() if cfg.mqtt.password_file else None
            except OSError as e:
                raise StartupError(f"cannot read [mqtt] password_file {cfg.mqtt.password_file}: {e.strerror}") from None
            self.mqtt = MqttIngest(MqttSettings(
                host=cfg.mqtt.host, port=cfg.mqtt.port,
                client_id=cfg.mqtt.client_id or f"faultproof-agent-{self.identity.public_key.hex()[:16]}",
                username=cfg.mqtt.username or None,
                password=mqtt_password,
                tls_ca_file=cfg.mqtt.tls_ca_file or None),
                self.engine, self.metrics,
                on_evidence=None if self.reattester is None else self._evidence_arrived(loop))
            self.mqtt.start()

        self._runner = web.AppRunner(make_app(self, cfg.http.max_body_bytes, cfg.http.idle_timeout_s), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, cfg.http.host, cfg.http.port)
        try:
            await site.start()
        except OSError as e:
            raise StartupError(f"cannot listen on {cfg.http.host}:{cfg.http.port} (HTTP): {e.strerror}; stop what "
                               "holds the port or set [http] port (0: any free port)") from None
        server: Any = site._server  # noqa: SLF001 - the bound port when 0 was asked for
        if server is not None and getattr(server, "sockets", None):
            self.http_port = server.sockets[0].getsockname()[1]
        log.info("agent HTTP on %s:%d", cfg.http.host, self.http_port)

    async def _check_proving_keys(self) -> None:
        """Refuse to start unless every proving key we hold is a circuit registered on the ledger."""
        from faultproof.zk import build, export_vkey
        from faultproof.zk.statement import LAYOUT_VERSION

        assert self.replica is not None and self.replica.state is not None
        state = self.replica.state
        cache = self.config.prover.cache_dir or None
        for n in self.config.prover.circuits:
            try:
                built = await asyncio.to_thread(build, n, cache_dir=cache)
            except FaultproofError as e:
                raise StartupError(f"cannot build the proving key for n={n}: {e}") from None
            vkey = export_vkey(built)
            cid = circuit_id(vkey, n, LAYOUT_VERSION)
            registered = state.circuit(cid)
            if registered is None or registered.vkey != vkey or registered.n != n:
                same_n = [c.circuit_id.hex()[:16] for c in state.circuits.values() if c.n == n]
                raise StartupError(
                    f"the proving key for n={n} (circuit_id {cid.hex()}) does not match any circuit registered "
                    f"on the ledger (registered with n={n}: {same_n or 'none'}); its proofs would never verify. "
                    "Use the key the underwriter registered (same circuit sources, setup or ceremony .zkey).")
            self.circuits[cid] = built
            self.circuit_sizes[cid] = n
            log.info("proving key n=%d matches registered circuit %s", n, cid.hex()[:16])

    async def _start_gossip(self) -> None:
        from faultproof.gossip import GossipNode, TopicPolicy
        from faultproof.procs import free_port

        assert self.identity is not None
        port = self.config.gossip.port or free_port()
        self.gossip_port = port
        self.gossip = GossipNode(self.gossip_identity or self.identity, port, bootstrap=self.config.gossip.bootstrap,
                                 topics={CLAIMS_TOPIC: TopicPolicy(max_size=ClaimBatch.MAX_SIZE)})
        await self.gossip.start()
        log.info("gossip on %s", self.gossip.listen_addr)

    # ------------------------------------------------------------------ running

    async def run_forever(self, stop: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as tg:
            assert self.replica is not None
            tg.create_task(self.replica.run(self._ledger_changed))
            if self.anchorer is not None and self.config.ledger_anchor_interval_s > 0:
                tg.create_task(self.anchorer.run())
            tg.create_task(self.manager.run())
            tg.create_task(self._maintenance())
            if self.gossip is not None:
                tg.create_task(self._drain_gossip())
            if self.suspender is not None:
                tg.create_task(self.suspender.run())
            if self.requoter is not None:
                tg.create_task(self.requoter.run())
            if self.reattester is not None:
                tg.create_task(self.reattester.run())
                tg.create_task(self._drain_evidence())
            if self.config.mqtt.broker_log:
                tg.create_task(self._watch_broker_log(Path(self.config.mqtt.broker_log)))
            await stop.wait()
            raise _Stop()

    async def _maintenance(self) -> None:
        """Watch the engine, pick up newly provisioned devices, re-evaluate time-based policy state."""
        last_keys = time.monotonic()
        while True:
            await asyncio.sleep(1.0)
            if self.engine.failed is not None:
                raise RuntimeError(f"ingest engine failed: {self.engine.failed!r}")
            if time.monotonic() - last_keys >= 5.0:
                last_keys = time.monotonic()
                keys = await asyncio.to_thread(load_blinding_keys, self.config.blinding_keys_dir)
                if keys != self.keys:
                    self.keys.clear()
                    self.keys.update(keys)
                self.refresh()  # also: policies whose term started since

    def _evidence_arrived(self, loop: asyncio.AbstractEventLoop) -> Callable[[bytes], None]:
        def arrived(data: bytes) -> None:  # on paho's thread
            loop.call_soon_threadsafe(self._evidence.put_nowait, data)

        return arrived

    def _ask_attestation(self, device_id: bytes, nonce: bytes) -> None:
        if self.mqtt is not None and self.mqtt.connected.is_set():
            self.mqtt.ask_attestation(device_id, nonce)

    async def _drain_evidence(self) -> None:
        while True:
            data = await self._evidence.get()
            await self.reattester.on_evidence(data)

    async def _watch_broker_log(self, path: Path, interval_s: float = 1.0) -> None:
        """DESIGN §15: refused broker logins naming one of our devices go to the anomaly monitor."""
        from agent.brokerlog import BrokerLogReader, LogTail, refused_devices

        tail, reader = LogTail(path), BrokerLogReader()
        while True:
            refused = refused_devices(reader, await asyncio.to_thread(tail.read), self.keys)
            if refused:
                self.engine.broker_refused(refused, now_ms())
            await asyncio.sleep(interval_s)

    async def _drain_gossip(self) -> None:
        # We publish claims; others' claims on the topic are not ours to act on.
        async for _ in self.gossip.subscribe(CLAIMS_TOPIC):
            pass

    def _ledger_changed(self) -> None:
        # A device is usually enrolled right after its keys were provisioned: look for new key
        # files now rather than at the next rescan.
        self.keys.update({d: k for d, k in load_blinding_keys(self.config.blinding_keys_dir).items()
                          if d not in self.keys})
        self.refresh()
        assert self.replica is not None and self.replica.state is not None
        lifts = {d: max(x.lifted_ms for x in ss if x.lifted_ms is not None)
                 for d, ss in self.replica.state.hw.suspensions.items()
                 if d in self.keys and any(x.lifted_ms is not None for x in ss)}
        if lifts:  # the engine's thread owns the quarantines: it decides which lifts end one
            self.engine.reinstated(lifts)
        if self.manager is not None:
            self.manager.ledger_changed()
        if self.reattester is not None:
            self.reattester.tick()  # a newly enrolled device is asked at once, not at the next tick

    def refresh(self) -> None:
        assert self.replica is not None and self.replica.state is not None
        for d in self.keys.keys() - self.sign_every.keys():  # each device's s, read once (DESIGN §16)
            try:
                self.sign_every[d] = load_sign_every(self.config.blinding_keys_dir, d.hex())
            except ValueError as e:
                log.error("device %s left out until fixed: %s", d.hex()[:12], e)
        snap = snapshot(self.replica.state, {d: k for d, k in self.keys.items() if d in self.sign_every},
                        self.circuit_sizes, now_ms(), self.sign_every)
        self.engine.set_ledger(snap)
        self.metrics.ledger_height.set(self.replica.height)

    def _call_soon(self, loop: asyncio.AbstractEventLoop, windows: list[Window]) -> None:
        loop.call_soon_threadsafe(self._on_detected, windows)

    def _on_detected(self, windows: list[Window]) -> None:
        if self.manager is not None:
            self.manager.on_detected(windows)

    def _policy_params(self, policy_id: bytes) -> TriggerParams | None:
        assert self.replica is not None and self.replica.state is not None
        p = self.replica.state.policy(policy_id)
        return None if p is None else trigger_params(p.terms)

    def _oracle_set(self) -> tuple[int, int]:
        assert self.replica is not None and self.replica.state is not None
        oset = self.replica.state.oracle_set
        return len(oset.members), oset.threshold

    def _ledger_rejection(self, rec: ClaimRecord) -> str | None:
        assert self.replica is not None and self.replica.state is not None
        state, w = self.replica.state, rec.window
        p = state.policy(w.policy_id)
        if p is None:
            return None
        return ledger_rejection(end_ts=w.end_ts, claim_window_ms=p.terms.claim_window_ms, ledger_time_ms=state.time_ms,
                                period_paid=p.period_paid(p.period_of(w.end_ts)),
                                overlaps_paid=p.overlaps(w.start_ts, w.end_ts),
                                decommissioned=w.device_id in state.hw.decommissioned)

    def _claim_window_ms(self, policy_id: bytes) -> int | None:
        assert self.replica is not None and self.replica.state is not None
        p = self.replica.state.policy(policy_id)
        return None if p is None else p.terms.claim_window_ms

    def _paid_amount(self, claim_id: bytes) -> int | None:
        assert self.replica is not None and self.replica.state is not None
        paid = self.replica.state.paid_claim(claim_id)
        if paid is None:  # econ2: a part of a corroborated claim is paid by its group's payout (§14)
            return self._group_payouts.paid(self.replica.state, claim_id)
        return paid.paid

    # ------------------------------------------------------------------ shutdown

    async def close(self) -> None:
        if self.mqtt is not None:
            await asyncio.to_thread(self.mqtt.stop)
        if self._runner is not None:
            await self._runner.cleanup()
        if self.engine is not None:
            await asyncio.to_thread(self.engine.stop)
        if self.gossip is not None:
            with contextlib.suppress(Exception):
                await self.gossip.stop()
        if self.sender is not None:
            await self.sender.close()
        if self.pool is not None:
            await asyncio.to_thread(self.pool.close)
        if self._client is not None:
            await self._client.close()
        if self.tpm is not None:
            self.tpm.close()

    # ------------------------------------------------------------------ views

    def problems(self) -> list[str]:
        out = []
        if self.engine is None or not self.engine.alive:
            out.append(f"ingest engine not running: {self.engine.failed if self.engine else 'not started'}")
        if self.replica is None or self.replica.problem is not None:
            out.append(f"ledger replica stopped: {self.replica.problem if self.replica else 'not started'}")
        return out

    def delivery_problems(self) -> list[str]:
        """What keeps frames from arriving or claims from leaving (readiness, not liveness)."""
        out = []
        if self.config.mqtt.enabled and not (self.mqtt and self.mqtt.connected.is_set()):
            out.append(f"no connection to the MQTT broker at {self.config.mqtt.host}:{self.config.mqtt.port}")
        gossip_peers = self.gossip.health().get("peers", 0) if self.gossip is not None else 0
        if not self.config.oracle_urls and not gossip_peers:
            out.append("no way to deliver a claim: no gossip peers and no [oracles] urls")
        return out

    def status(self) -> dict[str, Any]:
        e = self.engine
        state = self.replica.state if self.replica is not None else None
        counters: dict[str, int] = {}
        for metric in self.metrics.frames.collect():
            for s in metric.samples:
                if s.name.endswith("_total"):
                    key = s.labels["result"] + (f":{s.labels['reason']}" if s.labels["reason"] else "")
                    counters[key] = int(s.value)
        return {
            "agent_id": self.identity.public_key.hex() if self.identity else None,
            "started_ms": self.started_ms,
            "ledger": {
                "url": self.config.ledger_url,
                "ledger_id": state.ledger_id.hex() if state else None,
                "height": self.replica.height if self.replica else -1,
                "connected": bool(self.replica and self.replica.connected),
                "problem": self.replica.problem if self.replica else None,  # e.g. ledger_time_skew
                "agent_enrolled": bool(state and self.identity and state.agent_enrolled(self.identity.public_key)),
            },
            "devices": {
                "keys": len(self.keys),
                "enrolled": sum(1 for d in self.keys if state is not None and state.device(d) is not None),
                "with_policy": len(e.detectors) if e else 0,
                "unprovable_policies": unprovable_policies(state, self.keys, self.circuit_sizes, now_ms())
                if state else [],
            },
            "frames": {
                "received": e.received if e else 0,
                "committed": e.committed_frames if e else 0,
                "rejected": e.rejected_frames if e else 0,
                "pending": e.pending if e else 0,
                "commits": e.commits if e else 0,
                "by_result": counters,
            },
            "claims": self.manager.counts() if self.manager else {},
            # DESIGN §15: devices quarantined at this agent (claims held), with what was seen
            "quarantined": [q.to_json() for q in e.anomaly.quarantines()] if e else [],
            "reattestation": dict(self.reattester.counts) if self.reattester is not None else None,
            # DESIGN §15: quarantine evidence sent to the oracles by the agent itself
            "suspension_reports": self.suspender.status() if self.suspender is not None else None,
            # DESIGN §15 H10: the gateway's own TPM quotes on the ledger
            "gateway_quotes": dict(self.requoter.counts) if self.requoter is not None else None,
            # incidents the trigger showed but no claim can be paid for, by reason
            "windows_skipped": dict(e.skipped_by_reason) if e else {},
            "proving": self.manager.proving.hex() if self.manager and self.manager.proving else None,
            "prover": {"circuits": {cid.hex(): n for cid, n in self.circuit_sizes.items()},
                       "workers": self.pool.workers if self.pool else self.config.prover.workers},
            "mqtt": {"enabled": self.config.mqtt.enabled,
                     "connected": bool(self.mqtt and self.mqtt.connected.is_set()),
                     "delivered": self.mqtt.delivered if self.mqtt else 0,
                     "acked": self.mqtt.acked if self.mqtt else 0},
            "gossip": self.gossip.health() if self.gossip is not None else {"state": "disabled", "peers": 0},
            "http_port": self.http_port,
        }


class _Stop(Exception):
    pass


async def main(config: AgentConfig) -> int:
    """Run the agent; the exit status: 0 stopped by a signal, 1 failed. A refusal to start is
    StartupError (its message names what to fix), raised after everything started is closed."""
    agent = Agent(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    code = 0
    try:
        # The ledger may be down for long (bootstrap retries for ledger_bootstrap_timeout_s):
        # SIGTERM/SIGINT must end the start-up at once, not when the wait gives up.
        started, _ = await unless_stopped(agent.start(), stop)
    except StartupError:
        await agent.close()
        raise
    if not started:
        log.info("agent stopped by a signal before it was ready")
        await agent.close()
        return 0
    print(f"agent ready: http://{config.http.host}:{agent.http_port}", flush=True)
    try:
        await agent.run_forever(stop)
    except* _Stop:
        pass
    except* Exception as eg:
        for failure in eg.exceptions:
            log.error("agent stopped on error: %r", failure, exc_info=failure)
        code = 1
    await agent.close()
    return code
