"""`faultproof dashboard --ledger URL --oracle URL ...`: serve the read-only web dashboard.

Listens on 127.0.0.1 by default and prints its URL on one line when it is listening. Takes only
public URLs (no key file, no config with secrets). Bad arguments are one line naming the problem.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from urllib.parse import urlparse

import click

from faultproof.operator_errors import OperatorError


def _check_url(value: str, what: str) -> str:
    u = urlparse(value)
    if u.scheme not in ("http", "https") or not u.netloc or u.path not in ("", "/") or u.query:
        raise click.BadParameter(f"{what} must be a base URL like http://127.0.0.1:8080, got {value!r}")
    return value.rstrip("/")


@click.command()
@click.option("--ledger", "ledger_url", required=True, help="The ledger's base URL.")
@click.option("--oracle", "oracle_urls", multiple=True, help="An oracle's base URL (repeat for each).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8090, show_default=True,
              help="Port to listen on (0: any free port).")
@click.option("--poll", "poll_s", type=click.FloatRange(0.1, 60), default=1.0, show_default=True,
              help="Seconds between polls of the oracles.")
def dashboard(ledger_url: str, oracle_urls: tuple[str, ...], host: str, port: int, poll_s: float) -> None:
    """Serve the read-only web dashboard of a network (pool, policies, claims, oracles, devices, ledger)."""
    ledger_url = _check_url(ledger_url, "--ledger")
    oracles = [_check_url(u, "--oracle") for u in oracle_urls]
    if len(set(oracles)) != len(oracles):
        raise click.BadParameter("an oracle URL is given twice", param_hint="--oracle")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(_serve(ledger_url, oracles, host, port, poll_s))
    except OSError as e:
        raise OperatorError(f"cannot listen on {host}:{port}: {e.strerror or e} (choose another --port)") from None


async def _serve(ledger_url: str, oracles: list[str], host: str, port: int, poll_s: float) -> None:
    from aiohttp import web

    from dashboard.collector import Collector
    from dashboard.server import make_app
    from ledger.service import wall_clock_ms

    collector = Collector(ledger_url, oracles, clock=wall_clock_ms, poll_s=poll_s)
    app = make_app(collector, clock=wall_clock_ms)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        bound = runner.addresses[0][1] if runner.addresses else port
        click.echo(f"faultproof dashboard listening on http://{host}:{bound}/ (ledger {ledger_url}, "
                   f"{len(oracles)} oracles)")
        sys.stdout.flush()
        await stop.wait()
    finally:
        await runner.cleanup()
