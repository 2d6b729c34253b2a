"""The agent's pure core stays pure: its modules import no I/O, concurrency or clock module
(design §12). An AST scan of their import statements, so a new `import time` fails here."""

from __future__ import annotations

import ast
from pathlib import Path

AGENT = Path(__file__).resolve().parents[2] / "agent"
CORE_MODULES = ("core.py", "frames.py", "detect.py")
FORBIDDEN = {"asyncio", "aiohttp", "sqlite3", "socket", "threading", "libp2p", "time", "datetime",
             "subprocess", "multiprocessing", "selectors", "ssl", "urllib", "http", "paho", "trio",
             "agent.ingest", "agent.store", "agent.claims", "agent.daemon", "agent.api", "agent.mqtt",
             "agent.ledger_link", "ledger"}


def imported(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


def test_core_modules_import_no_io_and_no_clock() -> None:
    for name in CORE_MODULES:
        bad = sorted(m for m in imported(AGENT / name) if forbidden(m))
        assert not bad, f"agent/{name} imports {bad}: the core takes values (time included), the shell does I/O"


def test_the_scan_sees_what_it_must_refuse(tmp_path: Path) -> None:
    p = tmp_path / "m.py"
    p.write_text("import time\nfrom asyncio import sleep\nfrom agent.store import Store\nimport json\n")
    assert sorted(m for m in imported(p) if forbidden(m)) == ["agent.store", "asyncio", "time"]


def test_ingest_core_bookkeeping_is_values_in_decisions_out() -> None:
    """Claimed windows and open claims from stored rows; the retention cutoff from frame time."""
    from agent.core import ClaimedWindow, IngestCore, LedgerSnapshot

    core = IngestCore(max_skew_ms=5000, reorder_window=64)
    row = {"claim_id": b"c" * 32, "policy_id": b"p" * 32, "device_id": b"d" * 32, "epoch": 0, "start_seq": 3,
           "end_seq": 7, "start_ts": 100, "end_ts": 200, "period": 1, "status": "submitted"}
    core.load_claims([row, {**row, "claim_id": b"e" * 32, "status": "paid", "start_ts": 300, "end_ts": 400}],
                     ("paid", "rejected", "failed"))
    assert core.claimed[b"p" * 32] == [ClaimedWindow(100, 200, 1), ClaimedWindow(300, 400, 1)]
    assert core.kept_windows() == [(b"d" * 32, 0, 3, 7)]  # the paid claim's frames may go
    assert core.retention_cutoff(1000) is None  # no frame yet: nothing to count from
    core.note_stored(50_000)
    core.note_stored(40_000)  # older: the newest frame time stays
    assert core.retention_cutoff(1000) == 49_000 and core.retention_cutoff(None) is None
    core.claim_decided(b"c" * 32)
    assert core.kept_windows() == []
    assert core.apply_snapshot(LedgerSnapshot()) == [] and core.install_detectors(LedgerSnapshot()) == set()
