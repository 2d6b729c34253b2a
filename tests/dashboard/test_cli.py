"""`faultproof dashboard`: bad arguments and a taken port are one line naming the problem and the fix."""

from __future__ import annotations

import socket
import subprocess
import sys

from tests.netfix import REPO


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli", "dashboard", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=60)


def test_a_bad_url_is_refused_in_one_line() -> None:
    out = run("--ledger", "127.0.0.1:8080")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "--ledger must be a base URL like http://127.0.0.1:8080" in out.stderr
    out = run("--ledger", "http://127.0.0.1:1", "--oracle", "http://127.0.0.1:2", "--oracle", "http://127.0.0.1:2/")
    assert out.returncode == 2 and "an oracle URL is given twice" in out.stderr


def test_a_taken_port_is_one_line_naming_the_fix() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        out = run("--ledger", "http://127.0.0.1:1", "--port", str(port))
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"cannot listen on 127.0.0.1:{port}" in lines[0] and "--port" in lines[0]
