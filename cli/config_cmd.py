"""`faultproof config validate FILE`: check a ledger, oracle or agent config before starting it.

The kind is read from the file's sections ([ledger], [oracle] or [agent]) and the file is parsed by
that service's own loader, so validate and start-up can never disagree on a key or a type. Then
what a loader cannot see: every key file exists and is private (0600), data folders can be
created, ports are free to bind, and the ledger URL answers (for an oracle: with its key in the
current oracle set). Prints one line per check; exits 2 on the first kind of problem found, with
the fix in the line. Never prints a key, only public ids.
"""

from __future__ import annotations

import os
import socket
import sys
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from faultproof.config import ConfigError
from faultproof.identity import Identity, KeyFileError
from faultproof.oracle_client import OracleUnreachable, request

if TYPE_CHECKING:
    from agent.config import AgentConfig
    from ledger.config import LedgerConfig
    from oracle.config import OracleConfig


@dataclass(frozen=True)
class Check:
    ok: bool
    what: str


def _kind(raw: dict[str, Any]) -> str | None:
    for kind in ("ledger", "oracle", "agent"):
        if kind in raw:
            return kind
    return None


def _key(path: Path, role: str) -> Iterator[Check]:
    try:
        identity = Identity.load(path)
    except KeyFileError as e:
        yield Check(False, f"{role} key {path}: {e}")
        return
    yield Check(True, f"{role} key {path} (public id {identity.public_key.hex()})")


def _dir(path: Path, role: str) -> Check:
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK):
        return Check(False, f"{role} {path}: {probe} is not writable; fix the path or its permissions")
    return Check(True, f"{role} {path}")


def _port(host: str, port: int, role: str) -> Check:
    if port == 0:
        return Check(True, f"{role} port: any free port")
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return Check(False, f"{role} port {host}:{port} is in use; stop what holds it or pick another port")
    return Check(True, f"{role} port {host}:{port} is free")


def _ledger_reachable(url: str, oracle_id: bytes | None) -> Check:
    try:
        answer = request("GET", url.rstrip("/") + "/v1/state", timeout=3)
    except OracleUnreachable as e:
        return Check(False, f"ledger {url} does not answer ({e}); start it or fix ledger_url")
    state = answer.body
    if not answer.ok or not isinstance(state, dict):
        return Check(False, f"ledger {url} does not answer ({answer.error_text()}); start it or fix ledger_url")
    if oracle_id is not None:
        members = [m if isinstance(m, str) else m.get("oracle_id", "") for m in state.get("oracles", [])]
        if oracle_id.hex() not in members:
            return Check(False, f"this oracle's key {oracle_id.hex()[:16]}… is not in the ledger's oracle set; "
                                "use a listed key or ask the admin to rotate the set")
    return Check(True, f"ledger {url} answers (ledger_id {str(state.get('ledger_id', '?'))[:16]}…)")


def checks_for(path: Path, *, network: bool) -> Iterator[Check]:
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        yield Check(False, f"{path} not found; give the path of a config file")
        return
    except tomllib.TOMLDecodeError as e:
        yield Check(False, f"{path} is not valid TOML ({e})")
        return
    kind = _kind(raw)
    if kind is None:
        yield Check(False, f"{path} has none of the sections [ledger], [oracle], [agent]; "
                           "is it a faultproof config?")
        return
    load, checks = _KINDS[kind]()
    try:
        cfg = load(path)
    except ConfigError as e:  # the one loader's one error type: names the file, the key and the type
        yield Check(False, str(e))
        return
    yield Check(True, f"{path}: {'an' if kind[0] in 'ao' else 'a'} {kind} config")
    yield from checks(cfg, network)


def _ledger_checks(lc: LedgerConfig, network: bool) -> Iterator[Check]:
    if lc.ledger_key.exists():
        yield from _key(lc.ledger_key, "ledger")
    else:
        yield _dir(lc.ledger_key.parent, "ledger key folder (`ledger init` creates the key)")
    if lc.genesis.admin_key is not None:
        yield from _key(lc.genesis.admin_key, "admin")
    for i, p in enumerate(lc.genesis.oracle_keys, start=1):
        yield from _key(p, f"oracle-{i}")
    yield _dir(lc.db.parent, "database folder")
    yield _port(lc.host, lc.port, "ledger HTTP")


def _oracle_checks(oc: OracleConfig, network: bool) -> Iterator[Check]:
    keys = list(_key(oc.key_file, "oracle"))
    yield from keys
    yield _dir(oc.data_dir, "data folder")
    yield _port(oc.http_host, oc.http_port, "oracle HTTP")
    yield _port("127.0.0.1", oc.gossip_port, "oracle gossip")
    if network and all(c.ok for c in keys):
        yield _ledger_reachable(oc.ledger_url, Identity.load(oc.key_file).public_key)


def _agent_checks(ac: AgentConfig, network: bool) -> Iterator[Check]:
    yield from _key(ac.key_file, "agent")
    yield _dir(ac.data_dir, "data folder")
    yield _dir(ac.blinding_keys_dir, "blinding keys folder")
    yield _port(ac.http.host, ac.http.port, "agent HTTP")
    if network:
        yield _ledger_reachable(ac.ledger_url, None)


def _ledger_kind() -> tuple[Callable[[Path], Any], Callable[[Any, bool], Iterator[Check]]]:
    from ledger.config import load_config

    return load_config, _ledger_checks


def _oracle_kind() -> tuple[Callable[[Path], Any], Callable[[Any, bool], Iterator[Check]]]:
    from oracle.config import load

    return load, _oracle_checks


def _agent_kind() -> tuple[Callable[[Path], Any], Callable[[Any, bool], Iterator[Check]]]:
    from agent.config import load

    return load, _agent_checks


# kind -> (its service's own loader, the checks a loader cannot make); imported when used, so
# validating one kind of file does not import the other services.
_KINDS = {"ledger": _ledger_kind, "oracle": _oracle_kind, "agent": _agent_kind}


@click.group("config")
def config() -> None:
    """Check configuration files before starting a service."""


@config.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--offline", is_flag=True, help="Skip the checks that contact the ledger.")
def validate(files: tuple[Path, ...], offline: bool) -> None:
    """Validate every key, type, path, key permission, port and the ledger of each config FILE."""
    failed = False
    for path in files:
        for check in checks_for(path, network=not offline):
            click.echo(f"{'ok' if check.ok else 'error'}: {check.what}", err=not check.ok)
            failed |= not check.ok
    if failed:
        sys.exit(2)
