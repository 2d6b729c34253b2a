"""Refused broker logins, read from mosquitto's log, as signs of compromise (DESIGN §15).

mosquitto has no API that reports a refused CONNECT; it logs it. This module reads that log:

  `BrokerLogReader` (pure: lines in, `Refusal`s out) understands the lines mosquitto 2.0 writes at
  the `information`/`notice` levels with `connection_messages true` (agent/broker.py configures
  them), and the debug-level ACL denial when an operator enables it:
    New connection from ADDR:PORT on port P.
    New client connected from ADDR:PORT as CLIENT (p2, c1, k60, u'USER').
    Client <unknown> disconnected, not authorised.           (2.0.11: no id, no user, no address)
    Client CLIENT [ADDR:PORT] disconnected: not authorised.   (later 2.0.x: the client id)
    Denied PUBLISH from CLIENT (d0, q1, r0, m1, 'TOPIC', ... (N bytes))   (log_type debug only)
  A device's broker username is its device id (hex) and it connects with that id as client id
  (agent/broker.py's ACL, agent/simulator.py), so a refusal is attributed, in this order, to:
    1. the client id the refusal names, when it is a device id;
    2. for an ACL denial, the username that client id logged in with;
    3. for 2.0.11's anonymous line, the source address of the connection it refuses (the one
       address among connections not yet accepted), when exactly one device has ever logged in
       from that address. Several devices behind one address (NAT, or all on the gateway itself)
       make a refusal unattributable: it is counted, never pinned on a device by guess.
  mosquitto never logs the username of a refused login, so a refusal is "for a device's
  identity" only by its client id or by where it came from.

  `LogTail` (the I/O edge) follows the file from where it was when the agent started: a refusal
  logged before a restart is not counted again. A file that shrank (rotated) is read from 0.

This file must never write to the log, never act on a refusal itself (the ingest engine's anomaly
monitor decides), and never log a line it read (a line may carry a topic an attacker chose).
"""

from __future__ import annotations

import os
import re
from collections import deque
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path

_TS = r"^[^A-Za-z]*"  # mosquitto's optional timestamp prefix (digits, dashes, colons, spaces)
_NEW = re.compile(_TS + r"New connection from (\S+?):(\d+) on port \d+\.")
_CONNECTED = re.compile(_TS + r"New client connected from (\S+?):(\d+) as (\S+) \(.*u'([^']*)'\)\.")
_REFUSED_ANON = re.compile(_TS + r"Client <unknown> disconnected, not authorised\.")
_REFUSED_ID = re.compile(_TS + r"Client (\S+) (?:\[(\S+?):\d+\] )?disconnected[:,] not authorised\.")
_DENIED = re.compile(_TS + r"Denied PUBLISH from (\S+) \(")
_DEVICE_HEX = re.compile(r"^[0-9a-f]{64}$")
_PENDING = 256  # connections not yet accepted or refused, remembered at most


def device_of_name(name: str) -> bytes | None:
    """A broker username or client id that is a device id (64 lowercase hex), or None."""
    return bytes.fromhex(name) if _DEVICE_HEX.match(name) else None


@dataclass(frozen=True)
class Refusal:
    kind: str  # "login" (CONNECT refused) | "acl" (a publish the ACL denied)
    device_id: bytes | None  # None: mosquitto's line does not say whose it was


@dataclass
class BrokerLogReader:
    """Pure: feed it log lines in order; it returns the refusals they report."""

    pending: deque[str] = field(default_factory=lambda: deque(maxlen=_PENDING))  # addresses, oldest first
    users: dict[str, str] = field(default_factory=dict)  # client id -> username it logged in with
    devices_at: dict[str, set[bytes]] = field(default_factory=dict)  # address -> devices seen logging in

    def feed(self, line: str) -> Refusal | None:
        line = line.rstrip("\n")
        if (m := _NEW.match(line)) is not None:
            self.pending.append(m.group(1))
            return None
        if (m := _CONNECTED.match(line)) is not None:
            addr, client, user = m.group(1), m.group(3), m.group(4)
            self._resolved(addr)
            if len(self.users) > 4 * _PENDING:
                self.users.pop(next(iter(self.users)))
            self.users[client] = user
            device = device_of_name(user)
            if device is not None:
                self.devices_at.setdefault(addr, set()).add(device)
            return None
        if _REFUSED_ANON.match(line) is not None:
            return Refusal("login", self._by_address())
        if (m := _REFUSED_ID.match(line)) is not None:
            client, addr = m.group(1), m.group(2)
            if addr is not None:
                self._resolved(addr)
            device = device_of_name(client)
            return Refusal("login", device if device is not None else self._by_address(addr))
        if (m := _DENIED.match(line)) is not None:
            client = m.group(1)
            device = device_of_name(self.users.get(client, "")) or device_of_name(client)
            return Refusal("acl", device)
        return None

    def _resolved(self, addr: str) -> None:
        try:
            self.pending.remove(addr)
        except ValueError:
            pass

    def _by_address(self, addr: str | None = None) -> bytes | None:
        if addr is None:
            # 2.0.11 names nothing: the refused connection is one not yet accepted; only when they
            # all come from one address is it known where this one came from.
            addrs = set(self.pending)
            if len(addrs) != 1:
                self.pending.clear()  # ambiguous from here on: start over
                return None
            addr = self.pending.popleft()
        devices = self.devices_at.get(addr, set())
        return next(iter(devices)) if len(devices) == 1 else None


def refused_devices(reader: BrokerLogReader, lines: Iterable[str], ours: Collection[bytes]) -> list[bytes]:
    """The devices among `ours` that the lines' refusals name, one entry per refusal."""
    out: list[bytes] = []
    for line in lines:
        r = reader.feed(line)
        if r is not None and r.device_id is not None and r.device_id in ours:
            out.append(r.device_id)
    return out


class LogTail:
    """The new complete lines of a growing file, from where it ended when this was made."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._partial = b""
        try:
            self.offset = path.stat().st_size
        except OSError:
            self.offset = 0  # not there yet: read it from the start once it is

    def read(self, max_bytes: int = 1 << 20) -> list[str]:
        try:
            size = self.path.stat().st_size
        except OSError:
            return []
        if size < self.offset:  # rotated or truncated
            self.offset, self._partial = 0, b""
        if size == self.offset:
            return []
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.lseek(fd, self.offset, os.SEEK_SET)
            data = os.read(fd, max_bytes)
        finally:
            os.close(fd)
        self.offset += len(data)
        data = self._partial + data
        *lines, self._partial = data.split(b"\n")
        return [ln.decode("utf-8", "replace") for ln in lines]
