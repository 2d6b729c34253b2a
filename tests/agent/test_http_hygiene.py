"""Input hygiene of every HTTP service (issue 13 item 9, design §12): one strict JSON parser,
an over-limit Content-Length refused at once, half-open connections closed, a client that leaves
mid-body a debug line. Real processes on 127.0.0.1 (a ledger, one oracle, one agent), spoken to
with raw sockets; `faultproof.httperrors.application` in-process for the short timeouts."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web

from faultproof import strictjson
from faultproof.errors import DecodeError, Reason
from faultproof.httperrors import application
from faultproof.procs import ManagedProcess, free_port
from tests.agent.agentfix import AgentProc
from tests.netfix import Network

# --------------------------------------------------------------------------- the parser


@pytest.mark.parametrize("raw, reason", [
    (b'{"a": 1, "a": 2}', Reason.MALFORMED),  # duplicate key
    (b'{"a": {"b": 1, "b": 1}}', Reason.MALFORMED),  # nested duplicate, same value
    (b'{"a": NaN}', Reason.MALFORMED),
    (b'[Infinity]', Reason.MALFORMED),
    (b'[-Infinity]', Reason.MALFORMED),
    (b'\xef\xbb\xbf{"a": 1}', Reason.MALFORMED),  # UTF-8 byte-order mark
    ('{"a": 1}'.encode("utf-16"), Reason.MALFORMED),
    ('{"a": 1}'.encode("utf-16-le"), Reason.MALFORMED),
    ('{"a": 1}'.encode("utf-32"), Reason.MALFORMED),
    (b'{"a": "\xff"}', Reason.MALFORMED),  # not UTF-8
    (b'{"a": 1} x', Reason.MALFORMED),
    (b"[" * 100_000 + b"]" * 100_000, Reason.TOO_DEEP),
])
def test_strict_json_refuses(raw: bytes, reason: Reason) -> None:
    with pytest.raises(DecodeError) as e:
        strictjson.loads(raw)
    assert e.value.reason is reason


def test_strict_json_accepts_plain_json() -> None:
    assert strictjson.loads(b'{"a": [1, 2.5, "\\u00e9", null, true], "b": {"a": 1}}') == \
        {"a": [1, 2.5, "\u00e9", None, True], "b": {"a": 1}}


# --------------------------------------------------------------------------- raw HTTP


def _connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    return s


def _read_all(s: socket.socket, timeout: float) -> bytes:
    s.settimeout(timeout)
    out = b""
    while True:
        try:
            chunk = s.recv(65536)
        except TimeoutError:
            return out
        if not chunk:
            return out
        out += chunk


def _status_and_code(raw: bytes) -> tuple[int, str | None]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    try:
        code = json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        code = None
    return status, code


def _request(port: int, path: str, body: bytes, content_type: str = "application/json") -> tuple[int, str | None]:
    s = _connect(port)
    try:
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
                  f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
        return _status_and_code(_read_all(s, 10))
    finally:
        s.close()


# --------------------------------------------------------------------------- three real services


@dataclass
class Service:
    name: str
    port: int
    path: str  # the POST endpoint that takes a JSON body
    proc: ManagedProcess


AGENT_KEYS: list[Path] = []  # the module agent's blinding_keys_dir
# The services' [http] idle_timeout_s in this module (default IDLE_TIMEOUT_S = 20 s): the half-open
# test waits one idle timeout, and the setting itself is what is under test.
IDLE_S = 3.0


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Service]]:
    root = tmp_path_factory.mktemp("hygiene")
    net = Network.start(root, n=1, k=1, idle_timeout_s=IDLE_S)
    agent = None
    try:
        agent = AgentProc.create(root, net, 0, gossip=False)
        agent.write_config(net, mqtt={"enabled": False}, http={"idle_timeout_s": IDLE_S})
        agent.start()
        AGENT_KEYS[:] = [agent.keys_dir]
        port = lambda url: int(url.rsplit(":", 1)[1])  # noqa: E731
        yield [Service("ledger", port(net.ledger_url), "/v1/tx", net.ledger),
               Service("oracle", port(net.oracles[0].url), "/v1/claims", net.oracles[0].proc),
               Service("agent", agent.http_port, "/v1/frames", agent.proc)]
    finally:
        if agent is not None:
            agent.stop()
        net.stop()


def test_every_service_parses_json_strictly(services: list[Service]) -> None:
    bodies = [b'{"type": "deposit", "type": "deposit"}', b'{"a": NaN}', b'\xef\xbb\xbf{"a": 1}',
              '{"a": 1}'.encode("utf-16")]
    for svc in services:
        for body in bodies:
            assert _request(svc.port, svc.path, body) == (400, "malformed"), (svc.name, body)


def test_agent_converts_decimal_values_by_the_declared_scale_or_says_why(services: list[Service]) -> None:
    agent = services[2]
    dev = "ab" * 32
    frame = {"device_id": dev, "epoch": 0, "seq": 1, "ts_ms": 1, "chain": "00" * 32}
    body = {"signed": {"frame": frame, "signature": "00" * 64}, "value": "21.555"}
    # no <device>.sensor.json: the agent says what to do rather than guessing a scale
    assert _request(agent.port, agent.path, json.dumps(body).encode()) == (422, "unknown_device")
    (AGENT_KEYS[0] / f"{dev}.sensor.json").write_text('{"unit": "degC", "scale": 100}')
    assert _request(agent.port, agent.path, json.dumps(body).encode()) == (422, "reading_out_of_range")
    # on the scale it converts, and the frame goes on to the ordinary checks (this one is unknown)
    assert _request(agent.port, agent.path, json.dumps(body | {"value": "21.55"}).encode()) == \
        (422, "unknown_device")


def test_every_service_refuses_an_oversize_content_length_at_once(services: list[Service]) -> None:
    for svc in services:
        s = _connect(svc.port)
        try:
            started = time.monotonic()
            s.sendall(f"POST {svc.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                      f"Content-Length: {1 << 40}\r\n\r\n".encode())  # and never a body byte
            raw = _read_all(s, 5)
            elapsed = time.monotonic() - started
        finally:
            s.close()
        assert raw, f"{svc.name}: no answer to an oversize Content-Length"
        assert _status_and_code(raw) == (413, "oversize"), (svc.name, raw[:200])
        assert elapsed < 3, (svc.name, elapsed)


def test_every_service_closes_half_open_connections(services: list[Service]) -> None:
    """A request head that never completes, and a connection that never sends a byte, are closed
    after the configured [http] idle timeout (all services at once, so the test takes one timeout)."""
    def closed_after(port: int, first: bytes) -> float:
        s = _connect(port)
        try:
            started = time.monotonic()
            if first:
                s.sendall(first)
            assert _read_all(s, IDLE_S + 10) == b""
            return time.monotonic() - started
        finally:
            s.close()

    partial = b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le"
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        jobs = {(svc.name, bool(first)): pool.submit(closed_after, svc.port, first)
                for svc in services for first in (partial, b"")}
        for what, job in jobs.items():
            assert IDLE_S - 0.5 <= job.result() < IDLE_S + 5, what  # the configured timeout, not sooner


def test_a_client_leaving_mid_body_is_not_an_internal_error(services: list[Service]) -> None:
    for svc in services:
        s = _connect(svc.port)
        s.sendall(f"POST {svc.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  "Content-Length: 5000\r\n\r\n{\"readings\": [".encode())
        time.sleep(0.2)
        s.close()
    time.sleep(1.0)
    for svc in services:
        log = svc.proc.log_path.read_text(errors="replace")
        assert "internal error" not in log and "Traceback" not in log, (svc.name, log[-2000:])
        # ... and the service still answers.
        assert _request(svc.port, svc.path, b'{"a": 1, "a": 1}') == (400, "malformed")


# --------------------------------------------------------------------------- short timeouts in-process


async def test_a_stalled_body_gets_408_and_the_connection_closes(caplog: pytest.LogCaptureFixture) -> None:
    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"n": len(await request.read())})

    app = application(logging.getLogger("hygiene-test"), max_body_bytes=1000, idle_timeout_s=0.5,
                      body_timeout_s=0.5)
    app.router.add_post("/x", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        def stalled() -> bytes:
            s = _connect(port)
            try:
                s.sendall(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789")
                return _read_all(s, 5)
            finally:
                s.close()

        def idle() -> float:
            s = _connect(port)
            started = time.monotonic()
            try:
                assert _read_all(s, 5) == b""
                return time.monotonic() - started
            finally:
                s.close()

        raw = await asyncio.to_thread(stalled)
        assert _status_and_code(raw) == (408, "bad_request")
        assert await asyncio.to_thread(idle) < 2.5
        assert _status_and_code(await asyncio.to_thread(
            lambda: _read_all(_sent(port, b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"), 2)))[0] == 200
    finally:
        await runner.cleanup()
    assert "internal error" not in caplog.text


def _sent(port: int, data: bytes) -> socket.socket:
    s = _connect(port)
    s.sendall(data)
    return s
