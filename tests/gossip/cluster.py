"""Start, query and stop a set of real node processes (node_main.py) on 127.0.0.1.

Owns the processes it starts and ends them by pid only (SIGTERM, then SIGKILL after a grace
period). Synchronous on purpose (subprocess + urllib), so fixtures work without an event loop;
tests that need concurrency use aiohttp in their own loop.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faultproof.gossip.keys import peer_id_for_public_key
from faultproof.identity import Identity
from faultproof.procs import free_port

NODE_MAIN = Path(__file__).with_name("node_main.py")
REPO = Path(__file__).resolve().parents[2]


def http(method: str, url: str, body: Any = None, timeout: float = 30.0) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        raw = resp.read()
        if resp.headers.get("Content-Type", "").startswith("application/json"):
            return json.loads(raw)
        return raw.decode()


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of a Prometheus sample over series matching `labels` (0 if absent)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


@dataclass
class NodeProc:
    name: str
    workdir: Path
    identity: Identity
    p2p_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    spawned_at: float = 0.0

    @property
    def public_key(self) -> bytes:
        return self.identity.public_key

    @property
    def addr(self) -> str:
        return f"/ip4/127.0.0.1/tcp/{self.p2p_port}/p2p/{peer_id_for_public_key(self.public_key)}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> None:
        cfg_path = self.workdir / f"{self.name}.json"
        cfg_path.write_text(json.dumps(self.config))
        log = open(self.workdir / f"{self.name}.log", "ab")  # noqa: SIM115 - owned by the child
        self.spawned_at = time.time()
        self.proc = subprocess.Popen(
            [sys.executable, str(NODE_MAIN), "--config", str(cfg_path)],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()

    def kill(self) -> None:
        """SIGKILL, by our own pid: the crash case."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, grace: float = 5.0) -> None:
        if not self.proc or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def get(self, path: str, timeout: float = 30.0) -> Any:
        return http("GET", self.url + path, timeout=timeout)

    def post(self, path: str, body: Any, timeout: float = 120.0) -> Any:
        return http("POST", self.url + path, body, timeout=timeout)

    def wait_http(self, timeout: float = 30.0) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see {self.workdir}/{self.name}.log")
            try:
                self.get("/healthz", timeout=2)
                return
            except OSError:
                time.sleep(0.1)
        raise TimeoutError(f"{self.name} did not answer /healthz within {timeout}s")

    def log_tail(self, n: int = 40) -> str:
        p = self.workdir / f"{self.name}.log"
        return "\n".join(p.read_text(errors="replace").splitlines()[-n:]) if p.exists() else ""


class Cluster:
    """N nodes with fresh identities. `configure` then `start`; `links[i]` lists the nodes node i
    dials (its static bootstrap peers)."""

    def __init__(self, workdir: Path, n: int) -> None:
        self.workdir = workdir
        self.nodes: list[NodeProc] = []
        for i in range(n):
            ident = Identity.generate()
            ident.save(workdir / f"node{i}.key")
            self.nodes.append(NodeProc(f"node{i}", workdir, ident))

    def configure(
        self,
        links: dict[int, list[int]],
        topics: dict[str, dict[str, Any]],
        *,
        pending_topics: list[str] | None = None,
        overrides: dict[int, dict[str, dict[str, Any]]] | None = None,
        settings: dict[str, Any] | None = None,
        regossip_interval: float = 60.0,
    ) -> Cluster:
        for i, node in enumerate(self.nodes):
            node_topics = json.loads(json.dumps(topics))
            for t, over in (overrides or {}).get(i, {}).items():
                node_topics[t].update(over)
            node.config = {
                "name": node.name,
                "key": str(self.workdir / f"node{i}.key"),
                "p2p_port": node.p2p_port,
                "http_port": node.http_port,
                "bootstrap": [self.nodes[j].addr for j in links.get(i, [])],
                "topics": node_topics,
                "pending_topics": list(pending_topics or []),
                "regossip_interval": regossip_interval,
                "settings": settings or {},
            }
        return self

    def hex(self, i: int) -> str:
        return self.nodes[i].public_key.hex()

    def start(self, timeout: float = 60.0) -> None:
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            node.wait_http(timeout)

    def stop(self) -> None:
        for node in self.nodes:
            if node.proc and node.proc.poll() is None:
                os.kill(node.proc.pid, signal.SIGTERM)
        for node in self.nodes:
            node.stop()

    def wait_mesh(self, topic: str, expected: dict[int, int], timeout: float = 30.0) -> float:
        """Wait until node i's mesh on `topic` has at least expected[i] peers. Returns seconds."""
        t0 = time.time()
        deadline = t0 + timeout
        while True:
            sizes = {i: self.nodes[i].get("/status")["mesh"].get(topic, 0) for i in expected}
            if all(sizes[i] >= expected[i] for i in expected):
                return time.time() - t0
            if time.time() > deadline:
                raise TimeoutError(f"mesh on {topic} not formed: {sizes}, wanted {expected}")
            time.sleep(0.2)

    def wait_received(
        self, receivers: list[int], topic: str, tag: str, count: int, timeout: float
    ) -> dict[int, dict[str, Any]]:
        deadline = time.time() + timeout
        while True:
            views = {i: self.nodes[i].get(f"/received?topic={topic}&tag={tag}") for i in receivers}
            if all(v["unique"] >= count for v in views.values()) or time.time() > deadline:
                return views
            time.sleep(0.25)
