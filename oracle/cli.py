"""`faultproof oracle ...`: run an oracle node, look at one.

    faultproof oracle run    --config configs/oracle.example.toml
    faultproof oracle status --url http://127.0.0.1:8710
    faultproof oracle claim  --url http://127.0.0.1:8710 CLAIM_ID

Only wiring: configuration, the key file, logging, signals and the process lifecycle. Everything
the node does is in oracle/node.py; a bad config or key file stops here with a message that says
what to fix, before anything starts.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import click

from faultproof.commandline import check_store, config_option
from faultproof.identity import KeyFileError
from faultproof.logs import log_options, setup_logging
from faultproof.operator_errors import OperatorError
from faultproof.oracle_client import OracleAnswer, OracleClient, OracleUnreachable
from faultproof.signing import KeyError_ as SigningKeyError
from faultproof.signing import load_process_keys
from oracle.config import ConfigError, load

DEFAULT_URL = "http://127.0.0.1:8710"


@click.group()
def oracle() -> None:
    """Oracle node: verify claims, vote, reach quorum, get claims paid."""


@oracle.command("run")
@config_option("Oracle", "configs/oracle.example.toml")
@log_options
def run(config_path: Path, log_level: str | None, log_format: str) -> None:
    """Run the oracle node until SIGTERM or SIGINT."""
    try:
        cfg = load(config_path)
        identity, gossip_identity = load_process_keys(cfg.key_file, cfg.transport_key_file)
    except (ConfigError, KeyFileError, SigningKeyError) as e:
        raise OperatorError(str(e)) from None
    from oracle.store import MIGRATIONS

    check_store(cfg.db_path, "oracle", MIGRATIONS)
    setup_logging(log_level or "INFO", log_format)
    from ledger.state import IntegrityError
    from oracle.node import GossipDown, OracleNode

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await OracleNode(cfg, identity, gossip_identity=gossip_identity).run(stop)
        except IntegrityError as e:  # e.g. ledger_url serves another ledger than the pinned ledger_id
            raise OperatorError(f"{e}; check [oracle] ledger_url and ledger_id in {config_path}") from None
        except OSError as e:
            if e.errno != errno.EADDRINUSE:
                raise
            raise OperatorError(f"cannot listen on {cfg.http_host}:{cfg.http_port} (HTTP) or 127.0.0.1:"
                                f"{cfg.gossip_port} (gossip): address in use; stop what holds it or set [http] "
                                f"port / [gossip] port in {config_path}") from None

    try:
        asyncio.run(main())
    except* GossipDown as eg:
        # Crash-only: everything is in SQLite; a restart rejoins the mesh and catches up.
        logging.getLogger("faultproof.oracle").critical("exiting: %s", eg.exceptions[0])
        sys.exit(3)


def _ask(url: str, ask: Callable[[OracleClient], OracleAnswer]) -> object:
    """The node's JSON answer, a refusal included (it says what the node thinks); no answer at all
    is one line (faultproof/oracle_client.py is the one client of a node's API)."""
    try:
        with OracleClient(url) as client:
            return ask(client).body or {}
    except OracleUnreachable as e:
        raise OperatorError(str(e)) from None


@oracle.command("status")
@click.option("--url", envvar="FAULTPROOF_ORACLE", default=DEFAULT_URL, show_default=True)
def status(url: str) -> None:
    """Print a node's /v1/status (JSON)."""
    click.echo(json.dumps(_ask(url, lambda c: c.status()), indent=1))


@oracle.command("claim")
@click.option("--url", envvar="FAULTPROOF_ORACLE", default=DEFAULT_URL, show_default=True)
@click.argument("claim_id")
def claim(url: str, claim_id: str) -> None:
    """Print what a node knows about one claim (status, votes, QC, receipt)."""
    click.echo(json.dumps(_ask(url, lambda c: c.claim(claim_id)), indent=1))
