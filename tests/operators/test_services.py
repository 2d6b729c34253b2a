"""Services started by hand meet the operator's common mistakes with one line and exit code 2:
a second `ledger serve` on the same database, and a port that is already in use."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from faultproof.procs import ManagedProcess, free_port, wait_port


def _faultproof(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    root = tmp_path_factory.mktemp("services") / "site"
    port = free_port()
    result = CliRunner().invoke(main, ["init", str(root), "--oracles", "3", "--base-port", str(port)])
    assert result.exit_code == 0, result.output
    ledger = ManagedProcess("ledger", ["-m", "cli", "ledger", "serve", "--config", str(root / "ledger.toml")],
                            root / "ledger.log", cwd=root).start()
    try:
        wait_port(port, ledger)
        yield root, port
    finally:
        ledger.stop()


def test_second_ledger_serve_on_one_database_refuses(site: tuple[Path, int]) -> None:
    root, _ = site
    out = _faultproof("ledger", "serve", "--config", "ledger.toml", "--port", "0", cwd=root)
    assert out.returncode == 2
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "already served by another" in errors[0] and "pid" in errors[0]
    assert "Traceback" not in out.stderr


def test_ledger_serve_on_a_port_in_use_names_the_port(site: tuple[Path, int], tmp_path: Path) -> None:
    root, port = site
    other = root / "other.toml"
    other.write_text((root / "ledger.toml").read_text().replace("data/ledger/ledger.db", "data/other.db"))
    assert _faultproof("ledger", "init", "--config", str(other), cwd=root).returncode == 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        out = _faultproof("ledger", "serve", "--config", str(other), "--port", str(busy), cwd=root)
    assert out.returncode == 2
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"127.0.0.1:{busy}" in errors[0] and "Traceback" not in out.stderr
