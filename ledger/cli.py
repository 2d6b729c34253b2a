"""`faultproof ledger ...` and `faultproof receipt ...`: create, run, check and inspect a ledger.

    faultproof ledger init   --config configs/ledger.example.toml [--dev-keys]
    faultproof ledger serve  --config configs/ledger.example.toml [--port N]
    faultproof ledger verify --db PATH [--workers N] [--json]
    faultproof ledger status [--url URL | --evm-rpc URL --contract ADDRESS]
    faultproof receipt verify FILE [--ledger-id HEX]

Only wiring: configuration, key files and process lifecycle. The rules are in `state.py`, the
storage in `store.py`, the API in `http.py`.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import secrets
import signal
import sys
from pathlib import Path
from typing import IO, cast

import click

from faultproof.commandline import config_option, json_option, ledger_option
from faultproof.errors import DecodeError, FaultproofError
from faultproof.identity import Identity, KeyFileError
from faultproof.logs import log_options, setup_logging
from faultproof.messages import Genesis, Receipt
from faultproof.operator_errors import OperatorError
from faultproof.signing import PKCS11_PREFIX, load_signer
from faultproof.signing import KeyError_ as SigningKeyError
from ledger.config import ConfigError, LedgerConfig, load_config
from ledger.receipts import verify_receipt
from ledger.service import LedgerService, wall_clock_ms
from ledger.state import default_threshold, validate_oracle_set
from ledger.store import LedgerStore, StoreError
from ledger.verify import replay_store


def _config(path: Path) -> LedgerConfig:
    try:
        return load_config(path)
    except ConfigError as e:
        raise OperatorError(str(e)) from None


def _load_or_create_key(path: Path, create: bool) -> Identity:
    if str(path).startswith(PKCS11_PREFIX):  # DESIGN §15: the ledger key in a token signs there
        try:
            return cast(Identity, load_signer(str(path)))
        except SigningKeyError as e:
            raise OperatorError(str(e)) from None
    if path.exists() or not create:
        try:
            return Identity.load(path)
        except KeyFileError as e:
            raise OperatorError(str(e)) from None
    path.parent.mkdir(parents=True, exist_ok=True)
    identity = Identity.generate()
    identity.save(path)
    click.echo(f"created key file {path} ({identity.public_key.hex()})", err=True)
    return identity


def build_genesis(cfg: LedgerConfig, ledger_key: Identity, *, dev_keys: bool) -> Genesis:
    g = cfg.genesis
    if g.admin_public_key is not None:
        admin = g.admin_public_key
    elif g.admin_key is not None:
        admin = _load_or_create_key(g.admin_key, dev_keys).public_key
    else:
        raise OperatorError(f"{cfg.source}: [genesis] needs admin_key or admin_public_key")
    oracles = list(g.oracles) + [_load_or_create_key(p, dev_keys).public_key for p in g.oracle_keys]
    if not oracles:
        raise OperatorError(f"{cfg.source}: [genesis] lists no oracles (oracles or oracle_keys)")
    threshold = g.threshold or default_threshold(len(oracles))
    try:
        validate_oracle_set(tuple(oracles), threshold)
    except FaultproofError as e:
        raise OperatorError(f"{cfg.source}: [genesis] {e.message}") from None
    return Genesis(nonce=secrets.token_bytes(32), created_ms=wall_clock_ms(), ledger_key=ledger_key.public_key,
                   admin=admin, oracles=tuple(oracles), threshold=threshold, development=int(g.development),
                   max_skew_ms=g.max_skew_ms, rotation_grace_ms=g.rotation_grace_ms,
                   max_backdate_ms=g.max_backdate_ms)


@click.group()
def ledger() -> None:
    """The insurance pool ledger (embedded SQLite service)."""


@ledger.command("init")
@config_option("Ledger", "configs/ledger.example.toml")
@click.option("--dev-keys", is_flag=True,
              help="Also create missing admin/oracle key files (development ledgers only).")
def init(config_path: Path, dev_keys: bool) -> None:
    """Create the ledger key (if missing), the genesis and the database."""
    cfg = _config(config_path)
    if dev_keys and not cfg.genesis.development:
        raise OperatorError("--dev-keys is only for development ledgers")
    if cfg.db.exists():
        raise OperatorError(f"{cfg.db} already exists; a ledger is created once")
    ledger_key = _load_or_create_key(cfg.ledger_key, True)
    genesis = build_genesis(cfg, ledger_key, dev_keys=dev_keys)
    try:
        service = LedgerService.create(cfg.db, genesis, ledger_key, synchronous=cfg.synchronous)
    except StoreError as e:
        raise OperatorError(str(e)) from None
    service.close()
    click.echo(json.dumps({"ledger_id": genesis.ledger_id.hex(), "db": str(cfg.db),
                           "oracles": len(genesis.oracles), "threshold": genesis.threshold,
                           "development": bool(genesis.development)}))


@ledger.command("serve")
@config_option("Ledger", "configs/ledger.example.toml")
@click.option("--host", default=None, help="Override [server] host.")
@click.option("--port", type=int, default=None, help="Override [server] port (0: any free port).")
@log_options
def serve(config_path: Path, host: str | None, port: int | None, log_level: str | None, log_format: str) -> None:
    """Serve the ledger's HTTP API until SIGTERM/SIGINT."""
    cfg = _config(config_path)
    setup_logging(log_level or "INFO", log_format)
    lock = _serve_lock(cfg.db)  # held until the process exits; the kernel releases it on kill -9
    try:
        ledger_key = _load_or_create_key(cfg.ledger_key, False)
        # One check process per core decodes QC batches and checks their signatures (ledger/checkpool.py).
        service = LedgerService.open(cfg.db, ledger_key, synchronous=cfg.synchronous, max_batch=cfg.max_batch,
                                     check_processes=len(os.sched_getaffinity(0)))
    except (KeyFileError, StoreError) as e:
        raise OperatorError(str(e)) from None
    try:
        asyncio.run(_serve(service, cfg, host or cfg.host, cfg.port if port is None else port))
    finally:
        service.close()
        lock.close()


def _serve_lock(db: Path) -> IO[str]:
    """One `ledger serve` per database: a second one would interleave writers and fork the chain."""
    lock_path = db.with_name(db.name + ".serve-lock")
    try:
        lock = open(lock_path, "a+")  # noqa: SIM115 - held open for the life of the process
    except OSError as e:
        raise OperatorError(f"cannot open {lock_path} ({e.strerror}); check the [ledger] db path") from None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "?"
        lock.close()
        raise OperatorError(f"{db} is already served by another `faultproof ledger serve` (pid {holder}); "
                            "stop that one first, or give this one its own database") from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    return lock


async def _serve(service: LedgerService, cfg: LedgerConfig, host: str, port: int) -> None:
    from aiohttp import web

    from ledger.http import make_app

    app = make_app(service, max_body_bytes=cfg.max_body_bytes, max_wait_s=cfg.max_wait_s,
                   max_entries_per_page=cfg.max_entries_per_page, idle_timeout_s=cfg.idle_timeout_s)
    # On SIGTERM, waiting long polls answer at once (on_shutdown) and other in-flight requests get
    # 1 s: a transaction either committed or was not (clients resend; the ledger is idempotent).
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    try:
        await site.start()
    except OSError as e:
        await runner.cleanup()
        raise OperatorError(f"cannot listen on {host}:{port} ({e.strerror}); stop what holds the port or set "
                            "[server] port (0: any free port)") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    bound = runner.addresses[0][1] if runner.addresses else port
    durability = service.status()["durability"]
    click.echo(f"faultproof ledger listening on http://{host}:{bound} ledger_id={service.state.ledger_id.hex()} "
               f"height={service.committed_height} synchronous={durability['synchronous']} "
               f"max_batch={service.max_batch}", err=False)
    sys.stdout.flush()
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


@ledger.command("verify")
@click.option("--db", "db", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Take the database path from a ledger config instead of --db.")
@click.option("--workers", type=int, default=None, help="Processes checking signatures (default: CPUs).")
@click.option("--evm-rpc", default=None, help="Verify a pool contract instead: the chain's JSON-RPC URL (DESIGN §13).")
@click.option("--contract", default=None, help="The InsurancePool contract address (with --evm-rpc).")
@json_option
def verify_cmd(db: Path | None, config_path: Path | None, workers: int | None, evm_rpc: str | None,
               contract: str | None, as_json: bool) -> None:
    """Replay the database from genesis; check every hash, link, signature and cached balance.
    With --evm-rpc and --contract: replay every event of the pool through the rules (the mirror)
    and compare the replayed books with the contract's, to the unit."""
    if evm_rpc or contract:
        _verify_pool(evm_rpc, contract, as_json)
        return
    if db is None and config_path is None:
        raise OperatorError("give --db PATH or --config PATH (or --evm-rpc URL --contract ADDRESS for a pool contract)")
    path = db if db is not None else _config(config_path).db  # type: ignore[arg-type]
    try:
        store = LedgerStore(path, readonly=True)
    except StoreError as e:
        raise OperatorError(str(e)) from None
    try:
        result = replay_store(store, workers=workers)
    finally:
        store.close()
    report = {"ok": result.ok, "entries": result.entries, "seconds": round(result.seconds, 3),
              "entries_per_s": round(result.rate, 1), "warnings": result.warnings,
              "bad_height": result.problem.height if result.problem else None,
              "problem": result.problem.problem if result.problem else None}
    if result.state is not None:
        report["head_hash"] = result.state.head_hash.hex()
        report["height"] = result.state.height
    if as_json:
        click.echo(json.dumps(report))
    elif result.ok:
        click.echo(f"OK: {result.entries} entries verified in {result.seconds:.2f} s "
                   f"({result.rate:,.0f}/s); head {report.get('head_hash')} at height {report.get('height')}")
    else:
        assert result.problem is not None
        click.echo(f"BAD entry at height {result.problem.height}: {result.problem.problem}")
    for w in result.warnings:
        click.echo(f"warning: {w}", err=True)
    if not result.ok:
        sys.exit(1)


def _verify_pool(evm_rpc: str | None, contract: str | None, as_json: bool) -> None:
    if not (evm_rpc and contract):
        raise OperatorError("--evm-rpc and --contract go together: give both (the chain and the pool)")
    if not evm_rpc.startswith(("http://", "https://")):
        raise OperatorError(f"--evm-rpc {evm_rpc!r} must be an http(s):// JSON-RPC URL")
    from ledger.evm.verify import verify_pool

    try:
        report = asyncio.run(verify_pool(f"evm+{evm_rpc}?contract={contract}"))
    except FaultproofError as e:
        raise OperatorError(f"{e.reason.value}: {e.message}") from None
    if as_json:
        click.echo(json.dumps(report))
    elif report["ok"]:
        click.echo(f"OK: every event of {contract} replayed through the rules; head {report['head_hash']} at "
                   f"height {report['height']}; books equal the contract's: {report['books']}")
    else:
        click.echo(f"BAD: {report['problem'] or 'books differ from the contract in ' + ', '.join(report['differ'])}")
    if not report["ok"]:
        sys.exit(1)


@ledger.command("status")
@ledger_option("--url")
@click.option("--evm-rpc", default=None, help="The chain's JSON-RPC URL (EVM settlement, DESIGN §13).")
@click.option("--contract", default=None, help="The InsurancePool contract address (with --evm-rpc).")
def status(url: str, evm_rpc: str | None, contract: str | None) -> None:
    """Show a running ledger's status (height, durability, batches), or a pool contract's."""
    if evm_rpc or contract:
        if not (evm_rpc and contract):
            raise OperatorError("--evm-rpc and --contract go together: give both (the chain and the pool)")
        from ledger.evm.pool import chain_status

        try:
            click.echo(json.dumps(chain_status(evm_rpc, contract), indent=1))
        except FaultproofError as e:
            raise OperatorError(e.message) from None
        return
    from ledger.client import LedgerClient

    async def fetch() -> dict[str, object]:
        async with LedgerClient(url) as c:
            return await c.status()

    try:
        click.echo(json.dumps(asyncio.run(fetch()), indent=1))
    except FaultproofError as e:
        raise OperatorError(str(e)) from None


@click.group()
def receipt() -> None:
    """Payout receipts."""


@receipt.command("verify")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--ledger-id", default=None, help="Expected ledger_id (hex); recommended.")
def receipt_verify(file: Path, ledger_id: str | None) -> None:
    """Verify a receipt FILE (msgpack or JSON) offline."""
    raw = file.read_bytes()
    try:
        if raw.lstrip()[:1] == b"{":
            rec = Receipt.from_json(json.loads(raw))
        else:
            rec = Receipt.decode(raw)
    except (DecodeError, ValueError) as e:
        raise OperatorError(f"{file} is not a receipt: {e}") from None
    expected = bytes.fromhex(ledger_id) if ledger_id else None
    check = verify_receipt(rec, ledger_id=expected)
    entry = rec.entry.entry
    for note in check.notes:
        click.echo(f"note: {note}", err=True)
    if not check.ok:
        for p in check.problems:
            click.echo(f"BAD: {p}")
        sys.exit(1)
    click.echo(f"OK: claim {entry.tx.body.claim_id.hex()} paid {entry.paid} at height {entry.height} "  # type: ignore[attr-defined]
               f"of ledger {rec.genesis.ledger_id.hex()}")

