"""Gateway agent speed: ingest (in-process, MQTT, HTTP) and detect-to-claim latency.

agent_ingest_frames_per_s: the ingest engine in-process (decode + every frame check + durable
  SQLite store with group commit, synchronous=FULL), frames from 20 devices in ReadingBatches of
  100, one thread; baseline: the same engine with one commit per frame (max_batch = 1).
agent_ingest_s8_frames_per_s: the same with devices that sign every 8th frame (DESIGN §16: the
  frames between are UnsignedReadings, confirmed through the chain by the next signed frame);
  baseline: agent_ingest_frames_per_s's value (every frame signed) measured in the same run.
  Both carry `poseidon`: the backend faultproof.chain hashed with (native or light-poseidon), two
  hashes per frame being most of the work.
agent_ingest_mqtt_frames_per_s: a real agent process fed by mosquitto (agent/broker.py): 20 devices
  publish one DeviceReading per QoS 1 message (what a device sends); from the first publish to the
  last frame committed. agent_ingest_mqtt_mosquitto_frames_per_s: the same behind Debian's
  mosquitto, when it is installed. agent_ingest_mqtt_batched_frames_per_s: the same with a ReadingBatch of 20 per
  message (a gateway-side bridge).
agent_ingest_http_frames_per_s: POST /v1/frames with ReadingBatches of 100, 4 requests in flight;
  each response comes after its frames are committed.
agent_detect_to_claim_p50_s: for incidents on 5 devices, from the commit that completed the
  window to the signed, proved claim leaving the agent (gossip/HTTP), p50 (and the p50 to paid).
agent_detect_to_claim_p95_s: the same under a burst of 100 incidents (100 devices streaming at
  once), p95: the proving pool (one process per core, deadline-ordered queue) is the queue.

The network ones start a ledger and 5 oracles (tests/netfix.py), a broker and the agent as real
processes on 127.0.0.1. Frames are signed before timing starts (the device's work, not the agent's).

    python -m benchmarks.bench_agent
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from agent.frames import DeviceRecord, parse_wire
from agent.ingest import EngineConfig, IngestEngine, IngestResult, LedgerSnapshot
from agent.simulator import Fault, Sensor, SimDevice, prebuilt_stream, topic_for
from faultproof import chain
from faultproof.identity import Identity
from faultproof.messages import ReadingBatch

DEVICES = 20
BURST_INCIDENTS = 100


def _rate(n: int, seconds: float) -> float:
    return round(n / seconds, 1)


def _devices(count: int, seed: int = 0, sign_every: int = 1) -> list[SimDevice]:
    return [SimDevice(Identity.from_seed(bytes([seed + i + 1]) * 32), bytes([seed + i + 1]) * 31,
                      sensor=Sensor(seed=i), sign_every=sign_every) for i in range(count)]


def _snapshot(devs: list[SimDevice]) -> LedgerSnapshot:
    return LedgerSnapshot({d.device_id: DeviceRecord(d.device_id, 0, chain.chain_to_bytes(chain.chain_anchor(
        d.device_id, 0)), None, d.blinding_key, sign_every=d.sign_every) for d in devs})


def _ingest_inprocess(frames_per_device: int, *, max_batch: int, per_frame: bool, sign_every: int = 1) -> float:
    devs = _devices(DEVICES, sign_every=sign_every)
    streams = [prebuilt_stream(d, frames_per_device) for d in devs]
    if per_frame:
        payloads = [m.encode() for i in range(frames_per_device) for s in streams for m in s[i:i + 1]]
    else:
        payloads = [ReadingBatch(readings=tuple(s[i:i + 100])).encode()
                    for i in range(0, frames_per_device, 100) for s in streams]
    total = DEVICES * frames_per_device
    with tempfile.TemporaryDirectory() as tmp:
        engine = IngestEngine(Path(tmp) / "bench.sqlite3", EngineConfig(max_batch=max_batch))
        engine.start()
        engine.set_ledger(_snapshot(devs))
        done = threading.Event()
        count = [0]

        def cb(r: IngestResult) -> None:
            count[0] += len(r.verdicts)
            if count[0] >= total:
                done.set()

        started = time.perf_counter()
        for p in payloads:
            engine.submit(parse_wire(p), cb)
        assert done.wait(600), "ingest did not finish"
        elapsed = time.perf_counter() - started
        assert engine.committed_frames == total, (engine.committed_frames, total)
        engine.stop()
    return _rate(total, elapsed)


def ingest_inprocess() -> dict[str, Any]:
    value = _ingest_inprocess(1000, max_batch=5000, per_frame=False)
    baseline = _ingest_inprocess(25, max_batch=1, per_frame=True)  # ~200 commits/s: keep it short
    return {"value": value, "unit": "frames/s", "baseline": baseline, "poseidon": chain.POSEIDON_BACKEND}


def ingest_inprocess_sparse(every_signed: float) -> dict[str, Any]:
    """Devices that sign every 8th frame; 1001 frames each, so every run ends on a signed frame."""
    value = _ingest_inprocess(1001, max_batch=5000, per_frame=False, sign_every=8)
    return {"value": value, "unit": "frames/s", "baseline": every_signed, "poseidon": chain.POSEIDON_BACKEND}


# --------------------------------------------------------------------------- over the network


def _network_benchmarks() -> dict[str, Any]:
    from tests.agent.agentfix import agent_network

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, \
            agent_network(Path(tmp), ingest={"reorder_window": 4096},
                          prover={"workers": 0}) as (net, _, port, agent):  # 0: one proving process per core
        out["agent_ingest_mqtt_frames_per_s"] = _mqtt(agent, net, port, per_message=1, frames_per_device=250)
        out["agent_ingest_mqtt_batched_frames_per_s"] = _mqtt(agent, net, port, per_message=20,
                                                              frames_per_device=500)
        out["agent_ingest_http_frames_per_s"] = _http(agent, net, frames_per_device=500)
        out.update(_latencies(agent, net, port))
    return out


def _wait_committed(agent: Any, target: int, timeout: float = 300) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if agent.status()["frames"]["committed"] >= target:
            return time.perf_counter()
        time.sleep(0.02)
    raise TimeoutError(f"agent committed {agent.status()['frames']['committed']} < {target}")


def _mqtt(agent: Any, net: Any, port: int, *, per_message: int, frames_per_device: int) -> dict[str, Any]:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    devs = agent.new_devices(net, DEVICES)
    agent.wait_knows(timeout=60)
    streams = [prebuilt_stream(d, frames_per_device) for d in devs]
    msgs: list[tuple[str, bytes]] = []
    for i in range(0, frames_per_device, per_message):
        for d, s in zip(devs, streams, strict=True):
            chunk = s[i:i + per_message]
            payload = chunk[0].encode() if per_message == 1 else ReadingBatch(readings=tuple(chunk)).encode()
            msgs.append((topic_for(d.device_id), payload))
    total = DEVICES * frames_per_device
    base = agent.status()["frames"]["committed"]
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{per_message}")
    client.username_pw_set("bench")
    client.max_inflight_messages_set(2000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    started = time.perf_counter()
    for topic, payload in msgs:
        client.publish(topic, payload, qos=1)
    finished = _wait_committed(agent, base + total)
    client.loop_stop()
    client.disconnect()
    return {"value": _rate(total, finished - started), "unit": "frames/s",
            "frames_per_message": per_message}


def _http(agent: Any, net: Any, *, frames_per_device: int) -> dict[str, Any]:
    import aiohttp

    devs = agent.new_devices(net, DEVICES)
    agent.wait_knows(timeout=60)
    streams = [prebuilt_stream(d, frames_per_device) for d in devs]
    bodies = [ReadingBatch(readings=tuple(s[i:i + 100])).encode()
              for i in range(0, frames_per_device, 100) for s in streams]
    total = DEVICES * frames_per_device

    async def go() -> float:
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        for b in bodies:
            queue.put_nowait(b)
        async with aiohttp.ClientSession() as s:
            async def worker() -> None:
                while not queue.empty():
                    body = queue.get_nowait()
                    async with s.post(agent.url + "/v1/frames", data=body,
                                      headers={"Content-Type": "application/msgpack"}) as r:
                        got = await r.json()
                        assert r.status == 200 and not got["rejected"], got
            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(4)))
            return time.perf_counter() - started

    elapsed = asyncio.run(go())
    return {"value": _rate(total, elapsed), "unit": "frames/s", "frames_per_request": 100}


def _detect_to_claim(agent: Any, net: Any, port: int, devices: int, seed: int) -> dict[str, list[float]]:
    """Stream `devices` faulty, insured devices at once; per claim the seconds from detection to the
    claim leaving the agent (`sent`), to paid, and the proving time."""
    from agent.simulator import MqttTransport, run_fleet
    from faultproof.zk.params import TriggerParams

    devs = agent.new_devices(net, devices, faults={i: [Fault.run(20 + 7 * (i % 5), 6, 9000)] for i in range(devices)},
                             seed=seed)
    for d in devs:
        agent.insure(net, d, TriggerParams.run(3000, 3))
    agent.wait_knows(timeout=120)

    async def go() -> None:
        async with MqttTransport("127.0.0.1", port) as t:
            await run_fleet(devs, t, readings=80, rate_hz=50)

    asyncio.run(go())
    ids = {d.device_id.hex() for d in devs}
    deadline = time.monotonic() + 300
    claims: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        claims = [c for c in agent.claims() if c["device_id"] in ids]
        if len(claims) >= devices and all(c["status"] in ("paid", "rejected", "failed") for c in claims):
            break
        time.sleep(0.2)
    return {"sent": [(c["submitted_ms"] - c["detected_ms"]) / 1000 for c in claims if c["submitted_ms"]],
            "paid": [(c["decided_ms"] - c["detected_ms"]) / 1000 for c in claims if c["status"] == "paid"],
            "prove": [c["prove_seconds"] for c in claims if c["prove_seconds"] is not None]}


def _p(samples: list[float], q: float) -> float | None:
    return round(sorted(samples)[min(len(samples) - 1, int(q * len(samples)))], 3) if samples else None


def _latencies(agent: Any, net: Any, port: int) -> dict[str, Any]:
    few = _detect_to_claim(agent, net, port, devices=5, seed=100)
    burst = _detect_to_claim(agent, net, port, devices=BURST_INCIDENTS, seed=1000)
    workers = agent.status()["prover"]["workers"]
    return {
        "agent_detect_to_claim_p50_s": {"value": _p(few["sent"], 0.5), "unit": "s", "claims": len(few["sent"]),
                                        "circuit_n": net.circuit.n, "prove_p50_s": _p(few["prove"], 0.5)},
        "agent_detect_to_paid_p50_s": {"value": _p(few["paid"], 0.5), "unit": "s", "paid": len(few["paid"])},
        "agent_detect_to_claim_p95_s": {"value": _p(burst["sent"], 0.95), "unit": "s (burst of 100 incidents)",
                                        "claims": len(burst["sent"]), "paid": len(burst["paid"]),
                                        "prover_workers": workers, "prove_p50_s": _p(burst["prove"], 0.5)},
    }


def run() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {"agent_ingest_frames_per_s": ingest_inprocess()}
    out["agent_ingest_s8_frames_per_s"] = ingest_inprocess_sparse(out["agent_ingest_frames_per_s"]["value"])
    out.update(_network_benchmarks())
    return out


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
