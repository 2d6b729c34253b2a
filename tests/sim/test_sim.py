"""The simulator in `make test`: thousands of seeded scenarios of the whole protocol (tests/sim/sim.py),
exact replay of a seed, and proof that it finds planted bugs within its default seeds.

`SIM_SEEDS` (default 2000) sets how many scenarios run here; `make sim SEEDS=100000` is the long
soak. The seeds run in two processes (the machine has 2 cores)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
import types
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import pytest

from ledger.state import Policy
from oracle.quorum import OracleSet, Tally
from tests.sim.sim import Scenario, SimFailure, SimOracle, run_seed, run_seeds
from tests.sim.world import World

REPO = Path(__file__).resolve().parents[2]
SEEDS = int(os.environ.get("SIM_SEEDS", "2000"))
WORKERS = 2


def _chunk(first: int, count: int) -> tuple[list[str], float]:
    c0 = time.process_time()
    failures = run_seeds(range(first, first + count))
    return [str(f) for f in failures], time.process_time() - c0


def test_thousands_of_seeded_scenarios_keep_every_invariant() -> None:
    t0, c0 = time.monotonic(), time.process_time()
    World.build()  # circuit and proofs once, before the workers fork (they inherit them)
    per = -(-SEEDS // WORKERS)
    with ProcessPoolExecutor(WORKERS, mp_context=get_context("fork")) as pool:
        results = list(pool.map(_chunk, [i * per for i in range(WORKERS)], [per] * WORKERS))
    failures = [f for fs, _ in results for f in fs]
    cpu = sum(c for _, c in results) + time.process_time() - c0
    wall = time.monotonic() - t0
    print(f"\nsimulator: {per * WORKERS} seeds, {wall:.1f} s wall, {cpu:.1f} s CPU in {WORKERS} processes")
    assert not failures, "\n".join(failures[:10])


def test_a_seed_replays_exactly() -> None:
    """Same seed, same run: in this process and in fresh ones with other hash seeds (the printed
    replay command must reproduce a failure wherever it is run)."""
    a, b = run_seed(12345), run_seed(12345)
    assert a.digest() == b.digest() and a.stats == b.stats
    assert run_seed(12346).digest() != a.digest()
    for hash_seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-m", "tests.sim", "--seed", "12345"], capture_output=True, text=True,
                             check=True, cwd=REPO, env={**os.environ, "PYTHONHASHSEED": hash_seed}, timeout=300)
        assert f"digest {a.digest()[:16]}" in out.stdout, out.stdout + out.stderr


def test_a_flooding_member_is_capped_and_claims_are_still_paid() -> None:
    """What tests/oracle/test_byzantine.py did with processes: a member flooding votes for made-up
    claims opens at most OPEN_CAP tallies at each honest oracle (OVER_LIMIT past it), and every
    claimed incident is still paid (run() checks L1)."""
    seed = next(s for s in range(10_000) if "flood" in Scenario.draw(random.Random(s)).byzantine.values())
    sim = run_seed(seed)
    ignored = [n.machine.ignored_votes() for n in sim.nodes if isinstance(n, SimOracle) and n.machine]
    assert any(i.get("over_limit", 0) > 0 for i in ignored), ignored
    assert sim.claimed and all(sim.world.incidents[i].claim_id("A") in sim.ledger.state.claims
                               or sim.world.incidents[i].claim_id("B") in sim.ledger.state.claims
                               for i in sim.claimed)


def _first_failure(limit: int) -> SimFailure | None:
    for seed in range(limit):
        try:
            run_seed(seed)
        except SimFailure as f:
            return f
    return None


def test_finds_a_disabled_overlap_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    """Planted bug: the ledger's (and so the oracles') overlap rules never fire, the policy's P4 and
    the per-device one of §11 alike. Windows A and B of one device overlap; the simulator's own S2
    check must catch both being paid."""
    import ledger.state

    monkeypatch.setattr(Policy, "overlaps", lambda self, start_ts, end_ts: False)
    monkeypatch.setattr(ledger.state, "device_window_overlaps", lambda state, body: False)
    found = _first_failure(SEEDS)
    assert found is not None, "the planted overlap bug was not found"
    assert "S2" in str(found) and "replay: python -m tests.sim --seed" in str(found)


def test_finds_a_quorum_off_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Planted bug: the oracles' counter certifies at k - 1 approvals. The ledger refuses such a
    QC, so the claim is never paid: the liveness check L1 (or S1, were it paid) must catch it."""
    real = Tally._decide

    def off_by_one(self: Tally, oracle_set: OracleSet) -> None:
        view = types.SimpleNamespace(members=oracle_set.members, threshold=oracle_set.threshold - 1,
                                     reject_threshold=oracle_set.reject_threshold)
        real(self, view)  # type: ignore[arg-type]

    monkeypatch.setattr(Tally, "_decide", off_by_one)
    found = _first_failure(SEEDS)
    assert found is not None, "the planted quorum bug was not found"
    assert "L1" in str(found) or "S1" in str(found)
