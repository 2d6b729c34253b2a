"""Services started by hand meet the operator's common mistakes with one line and exit code 2:
a second `ledger serve` on the same database, and a port that is already in use (ledger, oracle,
agent); and a signal
stops the oracle and the agent while they wait for a ledger that does not answer."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from faultproof.procs import ManagedProcess, free_port, wait_port
from tests.netfix import wait_until
from tests.operators.site import init_site, serve_ledger


def _faultproof(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60)


LEDGER: list[ManagedProcess] = []  # the module's ledger, which the last test stops and restarts


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    root = tmp_path_factory.mktemp("services") / "site"
    port = init_site(root)
    ledger = serve_ledger(root, port)
    LEDGER[:] = [ledger]
    try:
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


def _get(url: str) -> tuple[int, dict[str, object]]:
    import json
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310 - a test's own service
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")
    except OSError:
        return 0, {}


def test_oracle_on_a_port_in_use_names_the_port(site: tuple[Path, int]) -> None:
    root, base = site
    with socket.socket() as s:
        s.bind(("127.0.0.1", base + 12))  # oracle-2's HTTP port
        s.listen()
        out = _faultproof("oracle", "run", "--config", str(root / "oracle-2.toml"), cwd=root)
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert out.returncode == 2, out.stderr[-2000:]
    assert len(errors) == 1 and f"127.0.0.1:{base + 12}" in errors[0] and "Traceback" not in out.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_oracle_stops_at_a_signal_while_waiting_for_the_ledger_within_2s(site: tuple[Path, int], tmp_path: Path,
                                                                          sig: signal.Signals) -> None:
    root, base = site
    cut_off = root / "oracle-3-cut-off.toml"
    cut_off.write_text((root / "oracle-3.toml").read_text().replace(f"127.0.0.1:{base}\"", "127.0.0.1:9\""))
    oracle = ManagedProcess("oracle-cut-off", ["-m", "cli", "oracle", "run", "--config", str(cut_off)],
                            tmp_path / "oracle.log", cwd=root).start()
    try:
        wait_until(lambda: _get(f"http://127.0.0.1:{base + 13}/healthz")[0] == 200, 60,
                   what="the cut-off oracle alive", detail=oracle.tail)
        status, body = _get(f"http://127.0.0.1:{base + 13}/readyz")
        assert status == 503 and "not synced" in str(body["problems"])  # alive, not ready
        started = time.monotonic()
        assert oracle.proc is not None
        oracle.proc.send_signal(sig)
        code = oracle.proc.wait(timeout=10)
        assert time.monotonic() - started < 2.0 and code == 0, code
    finally:
        oracle.stop()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_agent_stops_at_a_signal_while_waiting_for_the_ledger(site: tuple[Path, int], tmp_path: Path,
                                                                sig: signal.Signals) -> None:
    """The agent's start-up waits for the ledger (up to ledger_bootstrap_timeout_s, 60 s): a signal
    ends that wait at once, with the documented status 0 and one line that says so."""
    root, base = site
    cut_off = root / f"agent-cut-off-{sig.name}.toml"
    cut_off.write_text((root / "agent.toml").read_text().replace(f"127.0.0.1:{base}\"", f"127.0.0.1:{free_port()}\""))
    log = tmp_path / "agent.log"
    with log.open("wb") as out:
        agent = subprocess.Popen([sys.executable, "-m", "cli", "agent", "run", "--config", str(cut_off)],
                                 cwd=root, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: "ledger unreachable" in log.read_text(), 30, what="the agent waiting for the ledger",
                   detail=log.read_text)
        started = time.monotonic()
        agent.send_signal(sig)
        code = agent.wait(timeout=10)
        elapsed = time.monotonic() - started
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
    text = log.read_text()
    assert elapsed < 2.0 and code == 0, (elapsed, code, text)
    assert "Traceback" not in text
    stopped = [line for line in text.splitlines() if "stopped" in line]
    assert len(stopped) == 1 and "before it was ready" in stopped[0], text


def test_agent_on_a_port_in_use_names_the_port(site: tuple[Path, int]) -> None:
    """The agent binds its HTTP port last (after the ledger and its proving keys): a port in use is
    still one line and exit 2, not a traceback."""
    root, base = site
    runner = CliRunner()
    built = runner.invoke(main, ["circuits", "build", "--n", "16"])
    vkey = next(line.split(": ", 1)[1] for line in built.stdout.splitlines() if line.startswith("vkey: "))
    registered = runner.invoke(main, ["admin", "--url", f"http://127.0.0.1:{base}", "--key",
                                      str(root / "keys" / "admin.key"), "register-circuit", "--vkey-file", vkey,
                                      "--n", "16"])
    assert registered.exit_code == 0, registered.output
    with socket.socket() as s:
        s.bind(("127.0.0.1", base + 100))  # the agent's HTTP port
        s.listen()
        out = _faultproof("agent", "run", "--config", str(root / "agent.toml"), cwd=root)
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert out.returncode == 2, out.stderr[-2000:]
    assert len(errors) == 1 and f"127.0.0.1:{base + 100}" in errors[0] and "[http] port" in errors[0]
    assert "Traceback" not in out.stderr


def test_readyz_follows_the_ledger(site: tuple[Path, int], tmp_path: Path) -> None:
    """Last in this module: it stops and restarts the shared ledger."""
    root, base = site
    oracle = ManagedProcess("oracle-1", ["-m", "cli", "oracle", "run", "--config", str(root / "oracle-1.toml")],
                            tmp_path / "oracle-1.log", cwd=root).start()
    ready = f"http://127.0.0.1:{base + 11}/readyz"
    try:
        wait_until(lambda: _get(ready)[0] == 200, 90, what="oracle-1 ready", detail=oracle.tail)
        LEDGER[0].stop()
        wait_until(lambda: _get(ready)[0] == 503, 30, what="oracle-1 not ready without the ledger", detail=oracle.tail)
        status, body = _get(ready)
        assert "unreachable" in str(body["problems"]), body
        assert _get(f"http://127.0.0.1:{base + 11}/healthz")[0] == 200  # alive all along
        LEDGER[0].start()
        wait_port(base, LEDGER[0])
        wait_until(lambda: _get(ready)[0] == 200, 60, what="oracle-1 ready again", detail=oracle.tail)
    finally:
        oracle.stop()
