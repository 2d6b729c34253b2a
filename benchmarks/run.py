"""`make bench`: run every benchmarks/bench_*.py and write one JSON object.

Each module exposes `run() -> dict[str, {"value", "unit", "baseline"?}]`; the baseline is the naive
way measured in the same run. The merged result goes to benchmarks/results/latest.json and stdout.
Speed is measured here, on demand, never asserted in tests.

    python -m benchmarks.run              # everything
    python -m benchmarks.run core ledger  # only bench_core.py and bench_ledger.py
"""

from __future__ import annotations

import importlib
import json
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
RESULTS = HERE / "results" / "latest.json"


def main(argv: list[str]) -> int:
    names = argv or sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    metrics: dict[str, Any] = {}
    failed: list[str] = []
    for name in names:
        started = time.monotonic()
        print(f"== bench_{name}", file=sys.stderr, flush=True)
        try:
            module = importlib.import_module(f"benchmarks.bench_{name}")
            metrics.update(module.run())
        except Exception:  # one broken benchmark must not hide the others' numbers
            traceback.print_exc()
            failed.append(name)
        print(f"   {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
    result = {
        "machine": {"python": platform.python_version(), "cpus": _cpus(), "platform": platform.platform()},
        "metrics": metrics,
        "failed": failed,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(json.dumps(result, indent=1, sort_keys=True))
    return 1 if failed else 0


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
