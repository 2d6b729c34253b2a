"""Child processes for the devnet and the tests: start, wait until ready, stop, kill -9, restart.

Every process is started in its own session so a stop reaches its children too, and it is only
ever signalled by the pid this module started (never by name). Output goes to a log file, which
the tests print when something fails.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

# Ports this process gave out in the current lap of its range: never twice in a lap. A lap is
# thousands of ports, far longer than the moment between handing a port out and its service
# binding it (after which `_bindable` refuses it anyway), so a new lap starts afresh: a long test
# worker handed out more ports than its slice holds and then found no 50 free in a row.
_HANDED_OUT: set[int] = set()
_LOWEST = 10_000  # below the ephemeral range, above the well-known and registered services we might meet
_cursor: int | None = None  # the next port this process hands out


PORT_RANGE_ENV = "FAULTPROOF_PORT_RANGE"  # "LO-HI": the ports this process tree may hand out


def _ephemeral_floor() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _port_range() -> tuple[int, int]:
    """[low, high) for free_port: below the ephemeral range, or the slice PORT_RANGE_ENV names.

    Parallel test workers each take their own slice (tests/conftest.py) and their children inherit
    it, so two workers never hand out the same port before either has bound it."""
    low, high = _LOWEST, _ephemeral_floor()
    lo_text, sep, hi_text = os.environ.get(PORT_RANGE_ENV, "").partition("-")
    if sep and lo_text.isdigit() and hi_text.isdigit():
        low, high = max(low, int(lo_text)), min(high, int(hi_text))
    return low, high


def port_slice(index: int, count: int) -> str:
    """The PORT_RANGE_ENV value of slice `index` of `count` equal slices of the free range."""
    low, high = _port_range()
    width = (high - low) // count
    return f"{low + index * width}-{low + (index + 1) * width}"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago, chosen below the kernel's ephemeral range:
    a port from that range (bind to 0) could be taken by any process's outgoing connection between
    now and the moment the service we start binds it (seen: an oracle refused to start)."""
    return free_port_block(1)


def free_port_block(span: int) -> int:
    """A base port B with B .. B + span - 1 all free a moment ago and not handed out this lap, below
    the ephemeral range: for a site whose ports are derived from one base (`faultproof init
    --base-port`). Only the base being free is not enough (seen: an oracle at base + 11 refused).

    Ports are handed out in order from a random start per process, so the singles never fragment
    the range a block needs, and two processes rarely walk the same stretch."""
    global _cursor
    lowest, floor = _port_range()
    if floor - span > lowest + span:
        if _cursor is None or not lowest <= _cursor < floor:
            _cursor = random.randint(lowest, floor - span)
        for _ in range(2 * (floor - lowest) // span):
            if _cursor + span > floor:
                _cursor = lowest
                _HANDED_OUT.clear()  # a new lap (see _HANDED_OUT)
            base, _cursor = _cursor, _cursor + span
            ports = range(base, base + span)
            if any(p in _HANDED_OUT for p in ports) or not all(_bindable(p) for p in ports):
                continue
            _HANDED_OUT.update(ports)
            return base
    if span == 1:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])
    raise RuntimeError(f"no {span} consecutive free ports below {floor}")


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback only
            return 200 <= resp.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def wait_port(port: int, proc: ManagedProcess | None = None, timeout: float = 30.0) -> None:
    """Wait until something accepts TCP connections on 127.0.0.1:`port` (a process without HTTP)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listening on {port}" + (f":\n{proc.tail()}" if proc else ""))


@dataclass
class ManagedProcess:
    """One child process. `args` are passed to the current Python (`python -m ...` style)."""

    name: str
    args: Sequence[str]
    log_path: Path
    ready_url: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> ManagedProcess:
        assert self.proc is None or self.proc.poll() is not None, f"{self.name} already running"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child for its lifetime
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        self.proc = subprocess.Popen(
            [sys.executable, *self.args], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, cwd=self.cwd, start_new_session=True,
        )
        log.close()
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited with {self.proc and self.proc.returncode}:\n{self.tail()}")
            if self.ready_url is None or http_ok(self.ready_url):
                return
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} not ready after {timeout:.0f} s:\n{self.tail()}")

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.proc.wait(timeout)
        return self.proc.returncode

    def terminate(self) -> None:
        """SIGTERM without waiting (see `stop_all`)."""
        if self.proc is not None and self.proc.poll() is None:
            self._signal(signal.SIGTERM)

    def kill9(self) -> None:
        """kill -9 the process group: what a power cut or OOM kill looks like."""
        if self.proc is not None and self.proc.poll() is None:
            self._signal(signal.SIGKILL)
            self.proc.wait(10)

    def restart(self, timeout: float = 60.0) -> None:
        self.stop()
        self.start()
        self.wait_ready(timeout)

    def _signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, sig)  # the group we created with start_new_session
        except ProcessLookupError:
            pass

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def stop_all(processes: Sequence[ManagedProcess], timeout: float = 10.0) -> dict[str, int | None]:
    """Stop several processes at once: SIGTERM to all, then wait for each (SIGKILL after `timeout`).
    Stopping them one by one costs the sum of their shutdowns; this costs the longest one."""
    for mp in processes:
        mp.terminate()
    return {mp.name: mp.stop(timeout) for mp in processes}
