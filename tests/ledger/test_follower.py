"""The one ledger follower (ledger/follower.py) used by oracles and agents: the clock rule (issue 13
item 8), signed heads and integrity errors without crashing, the pinned ledger_id (item 9), the
settlement interface. Real ledger services over HTTP on 127.0.0.1, manual clocks on both sides."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from agent.ledger_link import LedgerReplica
from faultproof.errors import FaultproofError, Reason
from faultproof.messages import Deposit, QuorumCertificate, SignedHead
from faultproof.procs import free_port
from ledger.client import LedgerClient, SubmitResult
from ledger.follower import LedgerFollower, entry_time_problem
from ledger.settlement import Settlement, connect
from ledger.state import IntegrityError
from oracle.config import ConfigError, from_dict
from tests.ledger.helpers import HOUR, SECOND, T0, ManualClock, make_ledger, serve_ledger

SKEW = 30 * SECOND
REPO = Path(__file__).resolve().parents[2]


class Clock:
    """The follower's own clock, moved by the test (ms)."""

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


def test_entry_time_problem_is_pure() -> None:
    assert entry_time_problem(T0, T0, None, SKEW) is None
    assert entry_time_problem(T0 + SKEW, T0, None, SKEW) is None
    assert "ahead" in (entry_time_problem(T0 + SKEW + 1, T0, None, SKEW) or "")
    # History (nothing seen yet) may be old; once we saw the ledger without an entry, it may not.
    assert entry_time_problem(T0 - 10 * HOUR, T0, None, SKEW) is None
    assert entry_time_problem(T0 - SKEW, T0, T0, SKEW) is None
    assert "before we last saw" in (entry_time_problem(T0 - SKEW - 1, T0, T0, SKEW) or "")


async def test_follower_refuses_skewed_entry_time(tmp_path: Path) -> None:
    keys = make_ledger(5)
    ledger_clock = ManualClock(T0)
    async with serve_ledger(tmp_path, keys, clock=ledger_clock) as (env, url), LedgerClient(url) as client:
        await env.ok(keys.sign(Deposit(amount=10)))
        mine = Clock(T0)
        registry = CollectorRegistry()
        follower = LedgerFollower(client, 0.05, max_skew_ms=SKEW, clock=mine, registry=registry)
        await follower.bootstrap()
        assert follower.healthy and follower.view is not None and follower.view.height == 1

        # A dishonest operator dates an entry two hours ahead (to expire a policy early).
        ledger_clock.set(T0 + 2 * HOUR)
        await env.ok(keys.sign(Deposit(amount=20)))
        mine.now_ms = T0 + SECOND
        await follower.poll(0)
        assert follower.view.height == 1, "the skewed entry was applied"
        assert not follower.healthy and follower.problem is not None
        assert Reason.LEDGER_TIME_SKEW.value in follower.problem and "ahead" in follower.problem
        assert registry.get_sample_value("faultproof_follower_time_skew_refusing") == 1
        assert registry.get_sample_value("faultproof_follower_entries_refused_total",
                                         {"reason": Reason.LEDGER_TIME_SKEW.value}) == 1
        # The run loop keeps retrying, reports not connected, and never applies it meanwhile.
        task = asyncio.create_task(follower.run())
        await asyncio.sleep(0.3)
        assert not follower.connected and follower.view.height == 1
        # Our clock was the one behind: once it agrees, the entry is followed again.
        mine.now_ms = T0 + 2 * HOUR
        for _ in range(100):
            if follower.view.height == 2:
                break
            await asyncio.sleep(0.05)
        assert follower.view.height == 2 and follower.healthy
        assert registry.get_sample_value("faultproof_follower_time_skew_refusing") == 0
        task.cancel()

        # Now the operator dates an entry in the past (to accept a late QC): our clock says it is
        # 3 hours later than the entry, and we saw the ledger without it just now.
        mine.now_ms = T0 + 5 * HOUR
        await follower.poll(0)  # at the head: we saw the ledger without anything newer
        await env.ok(keys.sign(Deposit(amount=30)))  # ledger time T0 + 2 h
        await follower.poll(0)
        assert follower.view.height == 2 and follower.problem is not None and "before we last saw" in follower.problem


async def test_agent_replica_uses_the_same_follower(tmp_path: Path) -> None:
    """The agent's replica refuses skewed entries the same way and reports it (item 8), instead of
    following any time; an integrity error stops following without crashing the agent."""
    keys = make_ledger(5)
    ledger_clock = ManualClock(T0)
    async with serve_ledger(tmp_path, keys, clock=ledger_clock) as (env, url), LedgerClient(url) as client:
        replica = LedgerReplica(client, wait_s=0.05, max_skew_ms=SKEW)
        replica.follower.clock = Clock(T0)
        await replica.bootstrap(timeout=10)
        # (and a replica of a ledger that will sign a head naming another entry: below)
        tampering = TamperedHeads(client)
        other = LedgerReplica(tampering, wait_s=0.05, max_skew_ms=SKEW)
        other.follower.clock = Clock(T0 + HOUR)
        await other.bootstrap(timeout=10)
        ledger_clock.set(T0 + HOUR)
        await env.ok(keys.sign(Deposit(amount=20)))
        await replica.poll(0)
        assert replica.height == 0 and replica.problem is not None
        assert Reason.LEDGER_TIME_SKEW.value in replica.problem

        # A ledger that signs a head naming another entry (rewritten history): the agent's
        # replica now checks signed heads too, and reports instead of raising out of run().
        await env.ok(keys.sign(Deposit(amount=5)))
        changes: list[int] = []
        task = asyncio.create_task(other.run(lambda: changes.append(other.height)))
        for _ in range(100):
            if other.integrity_error is not None:
                break
            await asyncio.sleep(0.05)
        assert other.integrity_error is not None and "rewritten history" in str(other.integrity_error)
        assert not task.done(), "the follower must stay up to report, not crash the agent"
        assert other.problem is not None and "integrity" in other.problem
        task.cancel()


class TamperedHeads:
    """A fake dishonest ledger, for what cannot be made to happen with the real one: it forwards
    to the real ledger but signs (with the real ledger key) heads naming a made-up entry hash."""

    def __init__(self, client: LedgerClient) -> None:
        self.client = client
        self.ledger_key = make_ledger(5).ledger_key

    async def state(self) -> dict[str, Any]:
        return await self.client.state()

    async def entries(self, after: int = -1, wait: float = 0.0, limit: int | None = None) -> tuple[int, list[Any]]:
        return await self.client.entries(after, wait, limit)

    async def signed_head(self) -> SignedHead:
        real = await self.client.signed_head()
        return SignedHead.make(self.ledger_key, real.ledger_id, real.height, b"\x66" * 32, real.time_ms)

    async def post_qc(self, qc: QuorumCertificate) -> SubmitResult:
        return await self.client.post_qc(qc)

    def replay_state(self, genesis_entry: Any) -> Any:
        return self.client.replay_state(genesis_entry)

    async def submit(self, tx: Any) -> SubmitResult:
        return await self.client.submit(tx)

    async def close(self) -> None:
        return None


def test_settlement_interface_is_met_by_the_http_ledger() -> None:
    assert isinstance(LedgerClient("http://127.0.0.1:1"), Settlement)
    assert isinstance(TamperedHeads(LedgerClient("http://127.0.0.1:1")), Settlement)
    assert isinstance(connect("https://ledger.example:8700"), LedgerClient)
    with pytest.raises(FaultproofError) as e:
        connect("ftp://ledger.example")
    assert e.value.reason is Reason.BAD_REQUEST


async def test_oracle_pins_ledger_id(tmp_path: Path) -> None:
    """Item 9: an oracle names the ledger it serves; another genesis at its URL is refused."""
    base = {"key_file": "k", "data_dir": "d", "ledger_url": "http://127.0.0.1:1"}
    with pytest.raises(ConfigError, match="ledger_id is required"):
        from_dict({"oracle": base})
    with pytest.raises(ConfigError, match="64 lowercase hex"):
        from_dict({"oracle": {**base, "ledger_id": "abc"}})
    keys = make_ledger(5)
    assert from_dict({"oracle": {**base, "ledger_id": keys.ledger_id.hex()}}).ledger_id == keys.ledger_id
    async with serve_ledger(tmp_path, keys) as (_, url), LedgerClient(url) as client:
        other = make_ledger(5, seed=1).ledger_id
        with pytest.raises(IntegrityError, match="not the configured ledger_id"):
            await LedgerFollower(client, 0.05).bootstrap(other)
        view = await LedgerFollower(client, 0.05).bootstrap(keys.ledger_id)
        assert view.state.ledger_id == keys.ledger_id


async def test_oracle_command_refuses_another_ledger_in_one_line(tmp_path: Path) -> None:
    """`faultproof oracle run` pinned to one ledger, pointed at another: exits 1 naming the problem
    and the fix, without a traceback."""
    keys = make_ledger(5)
    key_file = tmp_path / "oracle.key"
    keys.oracles[0].save(key_file)
    async with serve_ledger(tmp_path, keys) as (_, url):
        config = tmp_path / "oracle.toml"
        config.write_text("\n".join([
            "[oracle]", f'key_file = "{key_file}"', f'data_dir = "{tmp_path / "data"}"', f'ledger_url = "{url}"',
            f'ledger_id = "{make_ledger(5, seed=1).ledger_id.hex()}"',
            "[http]", f"port = {free_port()}", "[gossip]", f"port = {free_port()}"]) + "\n")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cli", "oracle", "run", "--config", str(config), cwd=REPO,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    text = err.decode()
    assert proc.returncode == 2, text
    assert "not the configured ledger_id" in text and "Traceback" not in text, text


async def _skewed(client: LedgerClient, env: Any, keys: Any, ledger_clock: ManualClock, follower: LedgerFollower) -> None:
    """Bootstrap `follower` at our clock T0, then have the ledger append an entry dated 2 h ahead."""
    follower.clock = Clock(T0)
    await follower.bootstrap()
    ledger_clock.set(T0 + 2 * HOUR)
    await env.ok(keys.sign(Deposit(amount=1)))
    ledger_clock.set(T0)  # (the ledger's time never goes back: later entries stay at T0 + 2 h)
    await follower.poll(0)


async def _get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return resp.status, await resp.text()


async def _serving(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


async def test_skew_is_reported_in_status_healthz_and_metrics(tmp_path: Path) -> None:
    """Item 8: the oracle's and the agent's /v1/status, /readyz and /metrics say so."""
    from agent.api import make_app as agent_app
    from agent.config import from_dict as agent_config
    from agent.daemon import Agent
    from oracle.http_api import make_app as oracle_app
    from oracle.node import OracleNode

    keys = make_ledger(5)
    ledger_clock = ManualClock(T0)
    async with serve_ledger(tmp_path, keys, clock=ledger_clock) as (env, url), LedgerClient(url) as client:
        agent = Agent(agent_config({"agent": {"key_file": "k", "data_dir": str(tmp_path / "agent"),
                                              "blinding_keys_dir": "b", "ledger_url": url}}))
        agent.replica = LedgerReplica(client, wait_s=0.05, registry=agent.metrics.registry, max_skew_ms=SKEW)
        node = OracleNode(from_dict({"oracle": {"key_file": "k", "data_dir": str(tmp_path / "oracle"),
                                                "ledger_url": url, "ledger_id": keys.ledger_id.hex()},
                                     "http": {"port": 0}, "gossip": {"port": free_port()}}), keys.oracles[0])
        node.follower = LedgerFollower(client, 0.05, registry=node.metrics.registry, max_skew_ms=SKEW)
        await _skewed(client, env, keys, ledger_clock, agent.replica.follower)
        agent.replica.follower.clock = node.follower.clock = Clock(T0)
        await node.follower.bootstrap()
        node.ready.set()
        runners = []
        try:
            for app, what in ((agent_app(agent, 65536), "agent"), (oracle_app(node), "oracle")):
                runner, base = await _serving(app)
                runners.append(runner)
                status, body = await _get(base + "/readyz")
                assert status == 503 and "ledger_time_skew" in body, (what, body)
                status, _ = await _get(base + "/healthz")
                assert status == 200, what  # liveness: the process answers, readiness says why not
                status, body = await _get(base + "/v1/status")
                assert status == 200 and "ledger_time_skew" in body, (what, body)
                status, body = await _get(base + "/metrics")
                assert "faultproof_follower_time_skew_refusing 1.0" in body, what
            assert not node.synced
        finally:
            for runner in runners:
                await runner.cleanup()
            node.verifier.close()
            node.store.close()


class HeldCatchUps(TamperedHeads):
    """The real ledger, with its catch-up requests (wait = 0) counted, and the first one held after
    the ledger answered: a catch-up that asked before an entry was committed."""

    def __init__(self, client: LedgerClient) -> None:
        super().__init__(client)
        self.catch_up_requests = 0
        self.release_first = asyncio.Event()
        self.counting = False  # from after the bootstrap

    async def entries(self, after: int = -1, wait: float = 0.0, limit: int | None = None) -> tuple[int, list[Any]]:
        answer = await self.client.entries(after, wait, limit)
        if wait == 0 and self.counting:
            self.catch_up_requests += 1
            if self.catch_up_requests == 1:
                await self.release_first.wait()
        return answer

    async def signed_head(self) -> SignedHead:
        return await self.client.signed_head()


async def test_concurrent_refreshes_share_catch_ups_and_each_sees_what_was_committed_before_it(
        tmp_path: Path) -> None:
    """An oracle refreshes its view before refusing any claim (DESIGN §4.2), so a flood of junk
    claims must not become a flood of ledger requests; and sharing must never hand a caller a
    catch-up that asked the ledger before the entry the caller needs was committed."""
    keys = make_ledger(5)
    async with serve_ledger(tmp_path, keys) as (env, url), LedgerClient(url) as client:
        held = HeldCatchUps(client)
        follower = LedgerFollower(held, wait_s=0.05, clock=Clock(T0))
        await follower.bootstrap(timeout=10)
        held.counting = True
        first = asyncio.create_task(follower.refresh())  # asks now, answer held: nothing new
        while held.catch_up_requests == 0:
            await asyncio.sleep(0.01)
        await env.ok(keys.sign(Deposit(amount=20)))
        committed = env.state.height
        later = [asyncio.create_task(follower.refresh()) for _ in range(20)]
        await asyncio.sleep(0.05)
        held.release_first.set()
        await asyncio.gather(first, *later)
        assert follower.view is not None and follower.view.height == committed
        # the held one, then ONE shared by all 20 (the entry, then an empty answer)
        assert held.catch_up_requests == 3, held.catch_up_requests
