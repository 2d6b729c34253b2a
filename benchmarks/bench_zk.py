"""Zero-knowledge proof speed and size (faultproof.zk).

- constraints_n{16,64}: the shipped all-kinds circuit; constraints_n{n}_kind{k}_only: the same
  statement compiled for one trigger kind (KINDS mask), to weigh one circuit against five.
- setup_n{n}_s: compile + groth16py development setup, fresh (a temporary cache dir).
- prove_n{16,64}_p50_s: witness + proof, proving key already loaded, with the native (C++)
  witness generator when built (`make setup`); baseline: groth16py's WebAssembly witness path
  (the previous implementation), interleaved round by round in the same run.
  prove_n{n}_cpu_s: CPU seconds per proof (this process + the generator process), same pair.
  witness_n{n}_native_s: the native generator alone (process start, .dat load, witness).
- prove_n{16,64}_snarkjs_cli_p50_s: the snarkjs CLI (`groth16 fullprove`, one node process per
  proof) on a snarkjs dev setup of the same circuit (powers of tau 2^15 made once and cached).
- zk_burst100_submit_to_proof_p95_s: 100 incidents (n=16) handed to a ProofPool at once, with
  claim deadlines in random order: pool sized to the cores, native witness, deadline order;
  baseline: one worker, WebAssembly witness, arrival order (the shape before issue 15). Seconds
  from hand-off to proof, 95th percentile. zk_burst100_deadline_order_ok: 1 if the proofs of the
  non-baseline run completed in deadline order (per worker slot).
- prove_n64_kind{k}_only_p50_s / prove_n64_kind{k}_shared_p50_s: groth16py on the single-kind
  circuit and on the shared one, same window, interleaved.
- verify_per_s: faultproof.zk.pool.ProofPool with one worker per core, verify_many in batches of
  64 (mcl random linear combination); baseline: the same pool verifying each proof with groth16py.
  Wall clock: the workers share this process's scheduler group (Linux autogroup, one per
  session), so while other sessions load the machine the pool gets about what one process gets;
  load_1m says how loaded it was. verify_inline_per_s: one core, no pool, batch vs groth16py;
  cpu_us_per_proof: CPU time per proof in that run, which other processes' load does not move
  the way it moves the rates. verify_pool_calls_per_s: 4000 concurrent single `pool.verify` calls
  (coalesced into batches), baseline one groth16py check per call. verify_snarkjs_cli_per_s: one
  snarkjs CLI process per proof; verify_node_warm_per_s: snarkjs's API in one warm node process.

    python -m benchmarks.bench_zk            # prints JSON
    FAULTPROOF_BENCH_ZK_QUICK=1 ...          # skip the snarkjs baselines and per-kind circuits
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from faultproof.zk import BuiltCircuit, Kind, TriggerParams, Witness, build, circuit, native, prove
from faultproof.zk import backend_snarkjs as sjs
from faultproof.zk.circuit import default_cache_dir, verify_many
from faultproof.zk.pool import ProofPool

Metric = dict[str, Any]
SIZES = (16, 64)
PROVE_RUNS = 7
VERIFY_COUNT = 4000
BURST = 100


def window(kind: Kind, n: int) -> Witness:
    """A window of n readings that meets a trigger of `kind` at K = n // 2 (or G = 5000 ms)."""
    k = n // 2
    ts = [1_700_000_000_000 + 1000 * (i + 1) for i in range(n)]
    if kind is Kind.DROPOUT:
        ts = [t + (5000 if i >= n - 1 else 0) for i, t in enumerate(ts)]
    readings = [((i * 37) % 11) - 5 for i in range(n)]  # small, varied, in [-5, 5]
    if kind in (Kind.COUNT, Kind.RUN, Kind.OUTSIDE):
        readings[n - k:] = [100] * k
    if kind is Kind.STUCK:
        readings = [i for i in range(n)]
        readings[n - k:] = [7] * k
    params = {
        Kind.COUNT: TriggerParams.count(50, k),
        Kind.RUN: TriggerParams.run(50, k),
        Kind.STUCK: TriggerParams.stuck(k),
        Kind.OUTSIDE: TriggerParams.outside(-50, 50, k),
        Kind.DROPOUT: TriggerParams.dropout(5000),
    }[kind]
    return Witness.build(readings=readings, timestamps=ts, blindings=[i + 1 for i in range(n)],
                         c_start=12345, t_start=1_700_000_000_000, params=params, n=n)


def _p50(samples: list[float]) -> float:
    return round(statistics.median(samples), 4)


def _cpu() -> float:
    self_, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return self_.ru_utime + self_.ru_stime + kids.ru_utime + kids.ru_stime


def _prove_pair(built: BuiltCircuit, witnesses: list[Witness],
                runs: int = PROVE_RUNS) -> dict[str, Metric]:
    """Native vs WebAssembly witness path, interleaved so that load from other processes hits
    both alike: p50 wall seconds and mean CPU seconds per proof."""
    n = built.n
    if circuit.native_generator(built) is None and native.available():
        circuit.build_native(n, built.meta.kinds)  # into the default cache, as `make setup` does
    engine = "native" if circuit.native_generator(built) is not None else "wasm"
    prove(built, witnesses[0])  # loads the proving key
    wall: dict[str, list[float]] = {"native": [], "wasm": []}
    cpu: dict[str, list[float]] = {"native": [], "wasm": []}
    for i in range(runs):
        w = witnesses[i % len(witnesses)]
        for name, eng in (("native", engine), ("wasm", "wasm")):
            t0, c0 = time.perf_counter(), _cpu()
            prove(built, w, check=False, engine=eng)
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(_cpu() - c0)
    out: dict[str, Metric] = {
        f"prove_n{n}_p50_s": {"value": _p50(wall["native"]), "unit": "s",
                              "baseline": _p50(wall["wasm"]), "witness": engine},
        f"prove_n{n}_cpu_s": {"value": round(statistics.mean(cpu["native"]), 4), "unit": "s",
                              "baseline": round(statistics.mean(cpu["wasm"]), 4)},
    }
    binary = circuit.native_generator(built)
    if binary is not None:
        samples = []
        for i in range(runs):
            inputs = witnesses[i % len(witnesses)].to_input()
            t0 = time.perf_counter()
            native.witness(binary, inputs)
            samples.append(time.perf_counter() - t0)
        out[f"witness_n{n}_native_s"] = {"value": _p50(samples), "unit": "s"}
    return out


def _snarkjs_prove_p50(n: int, witnesses: list[Witness], runs: int = 3) -> float | None:
    if not sjs.available():
        return None
    ref = build(n, backend="snarkjs", cache_dir=default_cache_dir())  # cached after the first run
    samples = []
    for i in range(runs):
        inputs = witnesses[i % len(witnesses)].to_input()
        t0 = time.perf_counter()
        sjs.prove(ref.wasm_path, ref.zkey_path, inputs)
        samples.append(time.perf_counter() - t0)
    return _p50(samples)


def _single_kind_prove(shared: BuiltCircuit, singles: dict[Kind, BuiltCircuit],
                       rounds: int = 5) -> dict[str, Metric]:
    """p50 proving time of each single-kind circuit and of the shared one on the same window,
    interleaved round by round so that load from other processes hits them alike."""
    windows = {kind: window(kind, shared.n) for kind in Kind}
    for kind, single in singles.items():
        prove(single, windows[kind])  # load keys
    samples: dict[str, list[float]] = {}
    for _ in range(rounds):
        for kind, single in singles.items():
            for name, c in ((f"kind{kind.value}_only", single), (f"kind{kind.value}_shared", shared)):
                t0 = time.perf_counter()
                prove(c, windows[kind], check=False)
                samples.setdefault(name, []).append(time.perf_counter() - t0)
    return {f"prove_n{shared.n}_{name}_p50_s": {"value": _p50(v), "unit": "s"}
            for name, v in samples.items()}


async def _pool_verify_rate(built: BuiltCircuit, items: list[tuple[bytes, list[int]]],
                            engine: str) -> float:
    async with ProofPool(preload=[]) as pool:
        await pool.verify_many(built.vkey, items[: pool.workers * 4], engine=engine)  # warm up
        t0 = time.perf_counter()
        results = await pool.verify_many(built.vkey, items, chunk=64, engine=engine)
        seconds = time.perf_counter() - t0
    assert all(results)
    return round(len(items) / seconds, 1)


async def _pool_calls_rate(built: BuiltCircuit, items: list[tuple[bytes, list[int]]],
                           batch: int) -> float:
    """Concurrent single `pool.verify` calls, as an oracle makes them (batch=1: no coalescing,
    and the workers then run groth16py as before)."""
    async with ProofPool(preload=[], verify_batch=batch) as pool:
        await asyncio.gather(*(pool.verify(built.vkey, p, s) for p, s in items[:64]))
        t0 = time.perf_counter()
        results = await asyncio.gather(*(pool.verify(built.vkey, p, s) for p, s in items))
        seconds = time.perf_counter() - t0
    assert all(results)
    return round(len(items) / seconds, 1)


async def _burst(built: BuiltCircuit, count: int, *, workers: int, engine: str,
                 ordered: bool) -> tuple[float, bool]:
    """`count` incidents handed to a pool at once; p95 seconds from hand-off to proof, and
    whether completions followed the deadlines."""
    rng = random.Random(15)
    deadlines = [rng.uniform(0, 1e6) for _ in range(count)]
    ws = [window(list(Kind)[i % 5], built.n) for i in range(count)]
    async with ProofPool(workers, preload=[built]) as pool:
        await asyncio.gather(*(pool.prove(built, ws[i], engine=engine) for i in range(workers)))
        done: list[tuple[float, float]] = []

        async def one(i: int) -> None:
            await pool.prove(built, ws[i], engine=engine,
                             deadline=deadlines[i] if ordered else None)
            done.append((time.perf_counter() - t0, deadlines[i]))

        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(count)))
    latencies = sorted(t for t, _ in done)
    p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]
    # The first `workers` hand-offs start at once, whatever their deadline; after them each
    # completion may precede at most `workers` - 1 proofs with earlier deadlines still running.
    order = [d for _, d in done][workers:]
    in_order = all(order[i] <= min(order[i + workers:], default=math.inf)
                   for i in range(len(order)))
    return round(p95, 2), in_order


def run() -> dict[str, Metric]:
    quick = bool(os.environ.get("FAULTPROOF_BENCH_ZK_QUICK"))
    out: dict[str, Metric] = {}
    with tempfile.TemporaryDirectory(prefix="faultproof-bench-zk-") as tmp:
        cache = Path(tmp)
        built: dict[int, BuiltCircuit] = {}
        for n in SIZES:
            t0 = time.perf_counter()
            built[n] = build(n, cache_dir=cache)
            out[f"setup_n{n}_s"] = {"value": round(time.perf_counter() - t0, 2), "unit": "s"}
            out[f"constraints_n{n}"] = {"value": built[n].meta.constraints, "unit": "constraints"}
            if quick:
                continue
            singles = {}
            for kind in Kind:
                singles[kind] = build(n, cache_dir=cache, kinds=1 << (kind - 1))
                out[f"constraints_n{n}_kind{kind.value}_only"] = {
                    "value": singles[kind].meta.constraints, "unit": "constraints"}
            if n == 64:
                out.update(_single_kind_prove(built[n], singles))

        for n in SIZES:
            ws = [window(kind, n) for kind in Kind]
            out.update(_prove_pair(built[n], ws))
            if not quick:
                base = _snarkjs_prove_p50(n, ws)
                if base is not None:
                    out[f"prove_n{n}_snarkjs_cli_p50_s"] = {"value": base, "unit": "s"}
            out[f"proving_key_n{n}_mb"] = {
                "value": round((built[n].path / "proving_key.bin").stat().st_size / 1e6, 1),
                "unit": "MB"}

        b = built[16]
        cores = _cores()
        p95, in_order = asyncio.run(_burst(b, BURST, workers=cores, engine="auto", ordered=True))
        metric: Metric = {"value": p95, "unit": "s", "workers": cores}
        metric["baseline"] = asyncio.run(
            _burst(b, BURST, workers=1, engine="wasm", ordered=False))[0]
        out[f"zk_burst{BURST}_submit_to_proof_p95_s"] = metric
        out[f"zk_burst{BURST}_deadline_order_ok"] = {"value": int(in_order), "unit": "bool"}

        ws = [window(kind, 16) for kind in Kind]
        proofs = [(prove(b, w), w.public.as_list()) for w in ws]
        items = [proofs[i % len(proofs)] for i in range(VERIFY_COUNT)]
        rates, cpu_us = {}, {}
        for engine, count in (("batch", 2048), ("groth16py", 512)):
            t0, c0 = time.perf_counter(), time.process_time()
            assert all(verify_many(b.vkey, items[:count], engine=engine))
            rates[engine] = round(count / (time.perf_counter() - t0), 1)
            cpu_us[engine] = round((time.process_time() - c0) / count * 1e6, 1)
        out["verify_inline_per_s"] = {"value": rates["batch"], "unit": "proofs/s",
                                      "baseline": rates["groth16py"],
                                      "cpu_us_per_proof": cpu_us["batch"],
                                      "baseline_cpu_us_per_proof": cpu_us["groth16py"]}
        out["verify_per_s"] = {
            "value": asyncio.run(_pool_verify_rate(b, items, "batch")), "unit": "proofs/s",
            "baseline": asyncio.run(_pool_verify_rate(b, items[:1000], "groth16py")),
            "workers": cores, "load_1m": round(os.getloadavg()[0], 2)}
        out["verify_pool_calls_per_s"] = {
            "value": asyncio.run(_pool_calls_rate(b, items, 64)), "unit": "proofs/s",
            "baseline": asyncio.run(_pool_calls_rate(b, items[:1000], 1))}
        if sjs.available() and not quick:
            samples = []
            for p, s in proofs[:3]:
                t0 = time.perf_counter()
                assert sjs.verify(b.vkey, p, s)
                samples.append(time.perf_counter() - t0)
            out["verify_snarkjs_cli_per_s"] = {"value": round(1 / statistics.median(samples), 2),
                                               "unit": "proofs/s"}
            results, seconds = sjs.verify_many(b.vkey, items[:200])
            assert all(results)
            out["verify_node_warm_per_s"] = {"value": round(200 / seconds, 1), "unit": "proofs/s"}
    return out


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


if __name__ == "__main__":
    json.dump(run(), sys.stdout, indent=1, sort_keys=True)
    print()
