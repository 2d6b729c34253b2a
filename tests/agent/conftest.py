"""One real network for the agent's process tests: a ledger and 5 oracles (k = 4) from
tests/netfix.py, an MQTT broker and one agent daemon, started once per module that asks for it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from faultproof.procs import ManagedProcess
from tests.agent.agentfix import AgentProc, agent_network
from tests.netfix import Network


@dataclass
class World:
    net: Network
    broker: ManagedProcess
    broker_port: int
    agent: AgentProc

    def logs(self, lines: int = 30) -> str:
        return "\n".join([self.net.logs(lines), f"--- broker\n{self.broker.tail(lines)}",
                          f"--- agent\n{self.agent.proc.tail(lines * 2)}"])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with agent_network(tmp_path_factory.mktemp("agent-net")) as (net, broker, port, agent):
        yield World(net, broker, port, agent)


def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> None:
    """On failure, attach the processes' log tails."""
    if call.excinfo is not None and call.when == "call":
        w = item.funcargs.get("world")  # type: ignore[attr-defined]
        if isinstance(w, World):
            item.add_report_section("call", "process logs", w.logs(25))
