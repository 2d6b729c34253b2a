"""Zero-knowledge proof speed and size (faultproof.zk).

- constraints_n{16,64}: the shipped all-kinds circuit; constraints_n{n}_kind{k}_only: the same
  statement compiled for one trigger kind (KINDS mask), to weigh one circuit against five.
- setup_n{n}_s: compile + groth16py development setup, fresh (a temporary cache dir).
- prove_n{16,64}_p50_s: groth16py, witness + proof, proving key already loaded; baseline: the
  snarkjs CLI (`groth16 fullprove`, one node process per proof) on a snarkjs dev setup of the
  same circuit (its powers of tau, 2^15, is made once and cached: ~10+ minutes the first time).
- prove_n64_kind{k}_only_p50_s / prove_n64_kind{k}_shared_p50_s: groth16py on the single-kind
  circuit and on the shared one, same window, interleaved.
- verify_per_s: faultproof.zk.pool.ProofPool with one worker per core, verify_many; baseline: one
  snarkjs CLI process per proof (sequential). verify_inline_per_s: one core, no pool;
  verify_node_warm_per_s: snarkjs's API in one warm node process.

    python -m benchmarks.bench_zk            # prints JSON
    FAULTPROOF_BENCH_ZK_QUICK=1 ...          # skip the snarkjs baselines and per-kind proving
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from faultproof.zk import BuiltCircuit, Kind, TriggerParams, Witness, build, prove, verify
from faultproof.zk import backend_snarkjs as sjs
from faultproof.zk.circuit import default_cache_dir
from faultproof.zk.pool import ProofPool

Metric = dict[str, Any]
SIZES = (16, 64)
PROVE_RUNS = 7
VERIFY_COUNT = 4000


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


def _prove_p50(built: BuiltCircuit, witnesses: list[Witness], runs: int = PROVE_RUNS) -> float:
    prove(built, witnesses[0])  # loads the proving key
    samples = []
    for i in range(runs):
        w = witnesses[i % len(witnesses)]
        t0 = time.perf_counter()
        prove(built, w, check=False)
        samples.append(time.perf_counter() - t0)
    return _p50(samples)


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
            for name, circuit in ((f"kind{kind.value}_only", single), (f"kind{kind.value}_shared", shared)):
                t0 = time.perf_counter()
                prove(circuit, windows[kind], check=False)
                samples.setdefault(name, []).append(time.perf_counter() - t0)
    return {f"prove_n{shared.n}_{name}_p50_s": {"value": _p50(v), "unit": "s"}
            for name, v in samples.items()}


async def _pool_verify_rate(built: BuiltCircuit, items: list[tuple[bytes, list[int]]]) -> float:
    async with ProofPool(preload=[]) as pool:
        await pool.verify_many(built.vkey, items[: pool.workers * 4])  # warm workers
        t0 = time.perf_counter()
        results = await pool.verify_many(built.vkey, items, chunk=250)
        seconds = time.perf_counter() - t0
    assert all(results)
    return round(len(items) / seconds, 1)


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
            singles = {}
            for kind in Kind:
                singles[kind] = build(n, cache_dir=cache, kinds=1 << (kind - 1))
                out[f"constraints_n{n}_kind{kind.value}_only"] = {
                    "value": singles[kind].meta.constraints, "unit": "constraints"}
            if n == 64 and not quick:
                out.update(_single_kind_prove(built[n], singles))

        for n in SIZES:
            ws = [window(kind, n) for kind in Kind]
            metric: Metric = {"value": _prove_p50(built[n], ws), "unit": "s"}
            if not quick:
                base = _snarkjs_prove_p50(n, ws)
                if base is not None:
                    metric["baseline"] = base
            out[f"prove_n{n}_p50_s"] = metric
            out[f"proving_key_n{n}_mb"] = {
                "value": round((built[n].path / "proving_key.bin").stat().st_size / 1e6, 1),
                "unit": "MB"}

        b = built[16]
        ws = [window(kind, 16) for kind in Kind]
        proofs = [(prove(b, w), w.public.as_list()) for w in ws]
        items = [proofs[i % len(proofs)] for i in range(VERIFY_COUNT)]
        t0 = time.perf_counter()
        assert all(verify(b.vkey, p, s) for p, s in items[:1000])
        inline = round(1000 / (time.perf_counter() - t0), 1)
        out["verify_inline_per_s"] = {"value": inline, "unit": "proofs/s"}
        metric = {"value": asyncio.run(_pool_verify_rate(b, items)), "unit": "proofs/s"}
        if sjs.available():
            samples = []
            for p, s in proofs[:3]:
                t0 = time.perf_counter()
                assert sjs.verify(b.vkey, p, s)
                samples.append(time.perf_counter() - t0)
            metric["baseline"] = round(1 / statistics.median(samples), 2)
            results, seconds = sjs.verify_many(b.vkey, items[:200])
            assert all(results)
            out["verify_node_warm_per_s"] = {"value": round(200 / seconds, 1), "unit": "proofs/s"}
        out["verify_per_s"] = metric
    return out


if __name__ == "__main__":
    json.dump(run(), sys.stdout, indent=1, sort_keys=True)
    print()
