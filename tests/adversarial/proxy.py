"""Per-link TCP proxies on 127.0.0.1 that a test opens, cuts and restores: the network of the
partition cases.

Every directed oracle-to-oracle gossip link of the adversarial network runs through one `Link`
(oracle i dials oracle j only at `link(i, j).port`, see advnet.py), so cutting a set of links is a
network partition and restoring them heals it. A cut link aborts the TCP connections it carries
(both ends see a reset, as when a cable is pulled) and refuses new ones until restored.

All links share one asyncio loop in one daemon thread (`LinkHub`), so the blocking test code can
drive them with plain method calls. The hub never touches a process; it only moves bytes.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
CHUNK = 64 * 1024


class Link:
    """One listening port on 127.0.0.1 forwarding to `target_port`. Lives on the hub's loop."""

    def __init__(self, hub: LinkHub, target_port: int, name: str) -> None:
        self.hub = hub
        self.target_port = target_port
        self.name = name
        self.up = True
        self.port = 0
        self.accepted = 0  # connections forwarded since the link was opened
        self.refused = 0  # connections refused while the link was cut
        self._transports: set[asyncio.BaseTransport] = set()
        self._server: asyncio.Server | None = None

    async def _open(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=128)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            self.refused += 1
            _abort(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            # The target is down (a killed process): the dialler sees a closed connection, as
            # it would see a refused one without the proxy.
            _abort(writer)
            return
        if not self.up:  # cut while we were connecting
            _abort(writer)
            _abort(up_writer)
            return
        self.accepted += 1
        pair = (writer.transport, up_writer.transport)
        self._transports.update(pair)
        try:
            await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
        finally:
            self._transports.difference_update(pair)
            _abort(writer)
            _abort(up_writer)

    def _cut(self) -> None:
        self.up = False
        for t in list(self._transports):
            t.abort()  # RST, not FIN: a cut cable, not a polite close
        self._transports.clear()

    def _restore(self) -> None:
        self.up = True

    async def _close(self) -> None:
        self._cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    # -- called from test threads --
    def cut(self) -> None:
        self.hub.call_sync(self._cut)

    def restore(self) -> None:
        self.hub.call_sync(self._restore)

    def __repr__(self) -> str:
        return f"Link({self.name}, :{self.port} -> :{self.target_port}, {'up' if self.up else 'CUT'})"


def _abort(writer: asyncio.StreamWriter) -> None:
    transport = writer.transport
    if not transport.is_closing():
        transport.abort()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError, asyncio.CancelledError):
        pass
    finally:
        # Half-close is not worth modelling: when one side ends, the pair ends.
        _abort(writer)


class LinkHub:
    """The loop and thread every `Link` runs on."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="adv-link-hub", daemon=True)
        self._thread.start()
        self.links: list[Link] = []

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call_sync(self, fn: Any) -> None:
        async def go() -> None:
            fn()

        self.run(go())

    def open(self, target_port: int, name: str) -> Link:
        link = Link(self, target_port, name)
        self.run(link._open())
        self.links.append(link)
        return link

    def close(self) -> None:
        if not self.loop.is_running():
            return

        async def close_all() -> None:
            for link in self.links:
                await link._close()

        try:
            self.run(close_all(), timeout=10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
