"""`python -m tests.sim --seed N` replays one scenario; `--seeds N [--from S]` runs many (the long
soak behind `make sim SEEDS=100000`). Prints each failing seed and exits 1 if any failed."""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

from tests.sim.sim import SimFailure, run_seed, run_seeds
from tests.sim.world import World


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.sim")
    ap.add_argument("--seed", type=int, help="replay one seed and print its scenario")
    ap.add_argument("--seeds", type=int, default=2000, help="how many seeds to run")
    ap.add_argument("--from", dest="first", type=int, default=0, help="first seed")
    ap.add_argument("--workers", type=int, default=1, help="processes (seeds split evenly)")
    args = ap.parse_args()
    if args.seed is not None:
        try:
            sim = run_seed(args.seed)
        except SimFailure as f:
            print(f, file=sys.stderr)
            return 1
        print(f"seed {args.seed}: ok {sim.sc} {sim.stats} digest {sim.digest()[:16]}")
        return 0
    t0 = time.monotonic()
    World.build()  # circuit and proofs once, before the workers fork (they inherit them)
    per = -(-args.seeds // args.workers)
    starts = [args.first + i * per for i in range(args.workers)]
    counts = [max(0, min(per, args.first + args.seeds - s)) for s in starts]
    with ProcessPoolExecutor(args.workers, mp_context=get_context("fork")) as pool:
        results = list(pool.map(_chunk, starts, counts))
    failures = [f for fs, _ in results for f in fs]
    cpu = sum(c for _, c in results)
    for f in failures:
        print(f, file=sys.stderr)
    wall = time.monotonic() - t0
    print(f"{args.seeds - len(failures)} passed, {len(failures)} failed ({wall:.1f} s wall, {cpu:.1f} s CPU)")
    return 1 if failures else 0


def _chunk(first: int, count: int) -> tuple[list[str], float]:
    c0 = time.process_time()
    failures = run_seeds(range(first, first + count))
    return [str(f) for f in failures], time.process_time() - c0


if __name__ == "__main__":
    sys.exit(main())
