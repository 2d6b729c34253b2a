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
