"""Commands for people using a running network: policyholders and underwriters.

    faultproof claim submit FILE --oracle URL   # a SignedClaim (msgpack or JSON) to an oracle
    faultproof claim status CLAIM_ID            # status, votes and receipt, from an oracle
    faultproof claim list|show|export           # a policyholder's view, from the gateway agent;
                                                # export --format msgpack writes the signed claim
    faultproof pool status                      # the pool's balances, from the ledger

URLs default to the environment (FAULTPROOF_ORACLE, FAULTPROOF_AGENT, FAULTPROOF_LEDGER), which
`faultproof devnet --keep-running` prints. Only thin HTTP clients live here: no protocol logic.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from faultproof.commandline import json_option, ledger_option
from faultproof.errors import DecodeError
from faultproof.messages import SignedClaim
from faultproof.operator_errors import OperatorError
from faultproof.oracle_client import OracleAnswer, OracleClient, OracleUnreachable, request

DEFAULT_ORACLE = "http://127.0.0.1:8710"  # an oracle's default [http] port
DEFAULT_AGENT = "http://127.0.0.1:8800"  # the agent's default [http] port


def _request(url: str, data: bytes | None = None, content_type: str = "application/json",
             accept: str = "application/json") -> Any:
    """One request; the parsed JSON answer, or the raw bytes when `accept` is not JSON."""
    try:
        answer = request("POST" if data is not None else "GET", url, data, content_type=content_type, accept=accept)
    except OracleUnreachable as e:
        raise OperatorError(f"{e} (is it running, and is the URL right?)") from None
    if not answer.ok:
        raise OperatorError(answer.error_text())
    return answer.body if accept == "application/json" else answer.raw


def _oracle(url: str, ask: Callable[[OracleClient], OracleAnswer]) -> Any:
    """One request to an oracle (faultproof/oracle_client.py); a refusal or no answer is one line."""
    try:
        with OracleClient(url, timeout=30) as client:
            answer = ask(client)
    except OracleUnreachable as e:
        raise OperatorError(str(e)) from None
    if not answer.ok:
        raise OperatorError(answer.error_text())
    return answer.body


def load_claim(path: Path) -> SignedClaim:
    return load_claim_bytes(path.read_bytes(), str(path))


def load_claim_bytes(raw: bytes, source: str) -> SignedClaim:
    """A SignedClaim from msgpack or JSON bytes; one line naming the source when it is not one."""
    try:
        if raw[:1] in (b"{", b" ", b"\n"):
            return SignedClaim.from_json(json.loads(raw))
        return SignedClaim.decode(raw)
    except (DecodeError, ValueError) as e:
        raise OperatorError(f"{source} is not a signed claim: {e}") from None


@click.group()
def claim() -> None:
    """Submit claims and follow them."""


@claim.command("submit")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--oracle", "oracle_url", envvar="FAULTPROOF_ORACLE", default=DEFAULT_ORACLE, show_default=True)
def claim_submit(file: Path, oracle_url: str) -> None:
    """Submit a signed claim FILE (msgpack or JSON) to an oracle."""
    signed = load_claim(file)
    click.echo(json.dumps(_oracle(oracle_url, lambda c: c.submit(signed.encode())), indent=1))


@claim.command("status")
@click.argument("claim_id")
@click.option("--oracle", "oracle_url", envvar="FAULTPROOF_ORACLE", default=DEFAULT_ORACLE, show_default=True)
def claim_status(claim_id: str, oracle_url: str) -> None:
    """Show a claim's status, votes and receipt."""
    click.echo(json.dumps(_oracle(oracle_url, lambda c: c.claim(claim_id)), indent=1))


_AGENT_OPTION = click.option("--agent", "agent_url", envvar="FAULTPROOF_AGENT", default=DEFAULT_AGENT,
                             show_default=True, help="The gateway agent that made the claims.")


@claim.command("list")
@_AGENT_OPTION
@click.option("--status", default=None, help="Only claims in this status (e.g. paid, pending, rejected).")
@click.option("--device-id", default=None, help="Only this device's claims (hex).")
@json_option
def claim_list(agent_url: str, status: str | None, device_id: str | None, as_json: bool) -> None:
    """The claims the agent made, newest first."""
    query = "&".join(f"{k}={v}" for k, v in (("status", status), ("device_id", device_id)) if v)
    claims = _request(f"{agent_url.rstrip('/')}/v1/claims" + (f"?{query}" if query else ""))["claims"]
    if as_json:
        click.echo(json.dumps(claims, indent=1))
        return
    table = Table(title=f"claims at {agent_url}")
    for column in ("claim_id", "device", "window (seq)", "status", "paid"):
        table.add_column(column)
    for c in claims:
        table.add_row(c["claim_id"], c["device_id"][:16] + "…", f"{c['start_seq']}..{c['end_seq']}",
                      str(c["status"]), f"{c['paid']:,}" if isinstance(c.get("paid"), int) else "")
    Console().print(table)


@claim.command("show")
@click.argument("claim_id")
@_AGENT_OPTION
@click.option("--oracle", "oracle_url", envvar="FAULTPROOF_ORACLE", default=None,
              help="Also show the oracles' votes (k of n) from this oracle.")
@json_option
def claim_show(claim_id: str, agent_url: str, oracle_url: str | None, as_json: bool) -> None:
    """One claim as the policyholder sees it: status, window, amount paid, and the votes."""
    record = _request(f"{agent_url.rstrip('/')}/v1/claims/{claim_id}")
    if oracle_url:
        record["oracle"] = _oracle(oracle_url, lambda c: c.claim(claim_id))
    if as_json:
        click.echo(json.dumps(record, indent=1))
        return
    click.echo(f"claim {record['claim_id']}: {record['status']}")
    click.echo(f"  device {record['device_id']} epoch {record['epoch']} seq {record['start_seq']}..{record['end_seq']}")
    click.echo(f"  policy {record['policy_id']}")
    if record.get("paid"):
        click.echo(f"  paid {record['paid']:,}")
    if record.get("reason"):
        click.echo(f"  reason {record['reason']}")
    votes = record.get("oracle", {}).get("votes")
    if isinstance(votes, dict):
        click.echo(f"  votes {json.dumps(votes)}")


@claim.command("export")
@click.argument("claim_id")
@_AGENT_OPTION
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["auto", "record", "msgpack"]), default="auto", show_default=True,
              help="record: the agent's JSON record of the claim; msgpack: the signed claim itself (proof "
                   "included), which `faultproof claim submit` sends to an oracle; auto: msgpack when OUT ends "
                   "in .msgpack, else record.")
def claim_export(claim_id: str, agent_url: str, out: Path, fmt: str) -> None:
    """Write a claim to a file: the agent's record (JSON) or the signed claim (msgpack)."""
    if fmt == "auto":
        fmt = "msgpack" if out.suffix == ".msgpack" else "record"
    base = f"{agent_url.rstrip('/')}/v1/claims/{claim_id}"
    try:
        if fmt == "msgpack":
            signed = _request(base + "/signed", accept="application/msgpack")
            load_claim_bytes(signed, base)  # the agent gave a signed claim, not something else
            out.write_bytes(signed)
        else:
            out.write_text(json.dumps(_request(base), indent=1) + "\n")
    except OSError as e:
        raise OperatorError(f"cannot write {out}: {e.strerror} (give a path you can write)") from None
    click.echo(f"wrote {out}")


@click.group()
def pool() -> None:
    """The insurance pool."""


@pool.command("status")
@ledger_option()
@json_option
def pool_status(ledger_url: str, as_json: bool) -> None:
    """Balances of the pool (free, locked, premiums, paid) from the ledger."""
    state = _request(f"{ledger_url.rstrip('/')}/v1/state")
    if as_json:
        click.echo(json.dumps(state, indent=1))
        return
    table = Table(title=f"pool at height {state.get('height')}")
    table.add_column("account")
    table.add_column("balance", justify="right")
    for name, value in sorted((state.get("balances") or {}).items()):
        table.add_row(name, f"{value:,}" if isinstance(value, int) else json.dumps(value))
    Console().print(table)

