"""A test node: one GossipNode plus a tiny aiohttp control API, run as its own process.

    python tests/gossip/node_main.py --config node.json

Control API (127.0.0.1 only):
  GET  /healthz            200 {"ok": true}: answered by the loop, so it measures loop latency
  GET  /status             node.health() plus loop-lag statistics and start times
  GET  /metrics            the node's Prometheus registry
  GET  /received?topic=&tag=  what arrived: count, unique seqs, senders, latency percentiles
  POST /publish            {"topic","tag","count","size","rate"?,"pending"?,"wait"?} test messages
  POST /allowed            {"topic","allowed": [hex] | null} -> node.set_allowed

A test payload is  b"FPT1" | tag (8 bytes) | seq (u32) | sent_ns (u64) | padding  so a receiver can
measure delivery latency (all nodes share one clock). This program is test scaffolding only: it
must never be imported by faultproof itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import struct
import sys
import time
from collections import defaultdict
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from faultproof.errors import FaultproofError
from faultproof.gossip import GossipNode, GossipSettings, Regossiper, TopicPolicy
from faultproof.identity import Identity

MAGIC = b"FPT1"
HEADER = struct.Struct(">4s8sIQ")


def make_payload(tag: str, seq: int, size: int) -> bytes:
    head = HEADER.pack(MAGIC, tag.encode()[:8].ljust(8, b"\0"), seq, time.time_ns())
    return head + b"\xa5" * max(0, size - len(head))


def parse_payload(data: bytes) -> tuple[str, int, int] | None:
    if len(data) < HEADER.size or not data.startswith(MAGIC):
        return None
    _, tag, seq, sent_ns = HEADER.unpack_from(data)
    return tag.rstrip(b"\0").decode(), seq, sent_ns


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


class TestNodeApp:
    def __init__(self, cfg: dict) -> None:
        self.cfg = cfg
        self.registry = CollectorRegistry()
        topics = {
            name: TopicPolicy(
                max_size=t.get("max_size", 64 * 1024),
                allowed=None if t.get("allowed") is None else [bytes.fromhex(h) for h in t["allowed"]],
                rate_per_s=t.get("rate", 50.0),
                burst=t.get("burst", 500),
            )
            for name, t in cfg["topics"].items()
        }
        self.node = GossipNode(
            Identity.load(cfg["key"]),
            cfg["p2p_port"],
            bootstrap=cfg.get("bootstrap", []),
            topics=topics,
            registry=self.registry,
            settings=GossipSettings(**cfg.get("settings", {})),
        )
        self.pending_topics = list(cfg.get("pending_topics", []))
        self.regossiper = Regossiper(
            self.node, self.pending_topics, interval=cfg.get("regossip_interval", 60.0)
        )
        # (topic, tag) -> seq -> (latency_ms, sender_hex, count)
        self.received: dict[tuple[str, str], dict[int, list]] = defaultdict(dict)
        self.lags: list[float] = []
        self.process_started = time.time()
        self.gossip_started: float | None = None
        self.first_mesh: float | None = None
        self._bg: set[asyncio.Task] = set()

    # -- background loops --------------------------------------------------------------------

    async def consume(self, topic: str) -> None:
        async for msg in self.node.subscribe(topic):
            now = time.time_ns()
            parsed = parse_payload(msg.data)
            if parsed is None:
                continue
            tag, seq, sent_ns = parsed
            slot = self.received[(topic, tag)]
            if seq in slot:
                slot[seq][2] += 1  # a duplicate got through: the tests look for these
            else:
                slot[seq] = [(now - sent_ns) / 1e6, msg.sender.hex(), 1]
            if topic in self.pending_topics:
                self.regossiper.add(topic, msg.data)

    async def watch_loop_lag(self) -> None:
        period = 0.02
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(period)
            self.lags.append((time.perf_counter() - t0 - period) * 1000)
            if len(self.lags) > 20000:
                del self.lags[:10000]
            if self.first_mesh is None and any(self.node.mesh_size(t) for t in self.node.topics):
                self.first_mesh = time.time()

    # -- HTTP --------------------------------------------------------------------------------

    async def healthz(self, _req: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def status(self, _req: web.Request) -> web.Response:
        h = self.node.health()
        lags = self.lags[-5000:]
        h.update(
            process_started=self.process_started,
            gossip_started=self.gossip_started,
            first_mesh=self.first_mesh,
            loop_lag_ms={"p50": percentile(lags, 0.5), "p99": percentile(lags, 0.99), "max": max(lags, default=None)},
            pending=len(self.regossiper),
            background=len(self._bg),
            pid=os.getpid(),
        )
        return web.json_response(h)

    async def metrics(self, _req: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def received_view(self, req: web.Request) -> web.Response:
        topic, tag = req.query["topic"], req.query["tag"]
        slot = self.received.get((topic, tag), {})
        lat = [v[0] for v in slot.values()]
        senders: dict[str, int] = defaultdict(int)
        for v in slot.values():
            senders[v[1]] += 1
        return web.json_response(
            {
                "latencies": lat if req.query.get("full") else None,
                "unique": len(slot),
                "duplicates": sum(v[2] - 1 for v in slot.values()),
                "seqs": sorted(slot) if req.query.get("seqs", "1") == "1" else None,
                "senders": senders,
                "latency_ms": {
                    "p50": percentile(lat, 0.5),
                    "p95": percentile(lat, 0.95),
                    "max": max(lat, default=None),
                },
            }
        )

    async def _publish(self, body: dict) -> dict:
        topic, tag = body["topic"], body["tag"]
        count, size = int(body["count"]), int(body.get("size", 256))
        start = int(body.get("start_seq", 0))
        rate = body.get("rate")
        pending = bool(body.get("pending", False))
        t0 = time.perf_counter()
        errors: dict[str, int] = defaultdict(int)

        async def one(seq: int) -> None:
            data = make_payload(tag, seq, size)
            try:
                await self.node.publish(topic, data)
            except FaultproofError as e:
                errors[e.reason.value] += 1
                return
            if pending:
                self.regossiper.add(topic, data)

        if rate:
            # Paced: one message every 1/rate s, each publish awaited concurrently.
            tasks = []
            for i in range(count):
                tasks.append(asyncio.create_task(one(start + i)))
                await asyncio.sleep(1.0 / float(rate))
            await asyncio.gather(*tasks)
        else:
            # A burst: everything at once; back-pressure inside publish() paces it.
            await asyncio.gather(*(one(start + i) for i in range(count)))
        return {"published": count - sum(errors.values()), "errors": errors, "elapsed_s": time.perf_counter() - t0}

    async def publish(self, req: web.Request) -> web.Response:
        body = await req.json()
        if body.get("wait", True):
            return web.json_response(await self._publish(body))
        task = asyncio.create_task(self._publish(body))
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)
        return web.json_response({"started": True})

    async def allowed(self, req: web.Request) -> web.Response:
        body = await req.json()
        allowed = body.get("allowed")
        self.node.set_allowed(body["topic"], None if allowed is None else [bytes.fromhex(h) for h in allowed])
        return web.json_response({"ok": True})

    # -- main --------------------------------------------------------------------------------

    async def run(self) -> None:
        app = web.Application()
        app.add_routes(
            [
                web.get("/healthz", self.healthz),
                web.get("/status", self.status),
                web.get("/metrics", self.metrics),
                web.get("/received", self.received_view),
                web.post("/publish", self.publish),
                web.post("/allowed", self.allowed),
            ]
        )
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        await self.node.start()
        self.gossip_started = time.time()
        site = web.TCPSite(runner, "127.0.0.1", self.cfg["http_port"])
        await site.start()
        logging.info("node %s up: %s", self.cfg.get("name"), self.node.listen_addr)
        try:
            async with asyncio.TaskGroup() as tg:
                loops = [tg.create_task(self.consume(t)) for t in self.node.topics]
                loops.append(tg.create_task(self.watch_loop_lag()))
                loops.append(tg.create_task(self.regossiper.run()))
                await stop.wait()
                for t in loops:
                    t.cancel()
        finally:
            for t in list(self._bg):
                t.cancel()
            await runner.cleanup()
            await self.node.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    args = parser.parse_args()
    cfg = json.loads(Path(args.config).read_text())
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format=f"%(asctime)s {cfg.get('name', '?')} %(name)s %(levelname)s %(message)s",
    )
    asyncio.run(TestNodeApp(cfg).run())


if __name__ == "__main__":
    main()
