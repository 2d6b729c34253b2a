"""`faultproof econ`: the economic-security view of a network (DESIGN §14).

    faultproof econ report --ledger URL      # per policy: each attack path, its cost, the payout, the profit
    faultproof econ simulate [--preset devnet] [--years N] [--seed S] [--set name=value ...]
    faultproof econ evidence FILE --ledger URL   # submit slashing evidence (anyone may)

`report` replays the ledger's signed entries into a `LedgerState` (as an oracle does, checking
every signature and rule) and asks it the soundness rule's question for every policy that is not
closed, with today's bonds: the numbers are the ledger's own, never a second computation.
`simulate` runs the seeded Monte-Carlo of `cli.econ_sim`. Only presentation lives here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from cli.econ_sim import SimParams, simulate
from faultproof.commandline import json_option, ledger_option
from faultproof.errors import DecodeError, FaultproofError
from faultproof.messages import Message
from faultproof.operator_errors import OperatorError
from ledger.state import IntegrityError, LedgerState, PolicyStatus

YEAR_MS = 365 * 86_400_000


# --------------------------------------------------------------------------- report


def policy_reports(state: LedgerState, now_ms: int) -> list[dict[str, Any]]:
    """For every policy not closed: its attack paths with their costs, the payout per period and
    the cheapest attack's profit (negative: cheating does not pay), on the state's current bonds."""
    out = []
    for pid, policy in state.policies.items():
        if policy.status_at(now_ms) is PolicyStatus.CLOSED:
            continue
        econ = state.econ.policies.get(pid)
        devices = econ.group if econ is not None and econ.group else (policy.device_id,)
        verdict = state.soundness(policy.terms, econ, devices)
        out.append({
            "policy_id": pid.hex(),
            "devices": [d.hex() for d in devices],
            "m": state.econ.min_proofs_of(econ),
            "payout": verdict.payout,
            "attacks": [{"path": a.path.value, "cost": a.cost, "detail": a.detail,
                         "profit": verdict.payout - a.cost} for a in verdict.attacks],
            "cheapest": verdict.cheapest.path.value,
            "profit": verdict.profit,
            "sound": verdict.sound,
        })
    return out


def slash_reports(state: LedgerState) -> list[dict[str, Any]]:
    return [{"kind": s.kind.name.lower(), "offender": s.offender.hex(), "evidence": s.evidence,
             "slashed": s.slashed, "to_reporter": s.to_reporter, "to_pool": s.to_pool, "height": s.height}
            for s in state.econ.slashes]


async def replay_ledger(url: str) -> LedgerState:
    """The ledger's state, rebuilt from its signed entries (every signature and rule checked)."""
    from ledger.client import LedgerClient

    async with LedgerClient(url) as client:
        head, page = await client.entries(-1)
        if not page:
            raise OperatorError(f"{url} has no entries yet")
        state = LedgerState.from_genesis_entry(page[0])
        rest = page[1:]
        while True:
            for signed in rest:
                state.apply_entry(signed)
            if state.height >= head:
                return state
            head, rest = await client.entries(state.height)


def render_report(state: LedgerState, console: Console) -> None:
    params = state.econ.params
    if params is None:
        console.print("[yellow]the economic rules are off on this ledger (no set_econ_params): "
                      "bonds count as 0[/yellow]")
    else:
        console.print(f"econ params: min oracle bond {params.min_oracle_bond:,}, staging cap "
                      f"{params.max_staging_cost:,}, reporter share {params.reporter_share_bps / 100:g} %, "
                      f"unlock delay {params.unlock_delay_ms / 86_400_000:g} d")
    table = Table(title=f"attack paths per policy at height {state.height}")
    for col in ("policy", "m", "payout", "path", "cost", "profit", "sound"):
        table.add_column(col, justify="right" if col in ("m", "payout", "cost", "profit") else "left",
                         no_wrap=col in ("path", "cost", "profit"))
    for r in policy_reports(state, state.time_ms):
        for i, a in enumerate(r["attacks"]):
            cheapest = a["path"] == r["cheapest"]
            table.add_row(r["policy_id"][:12] if i == 0 else "", str(r["m"]) if i == 0 else "",
                          f"{r['payout']:,}" if i == 0 else "", a["path"] + (" *" if cheapest else ""),
                          f"{a['cost']:,}", f"{a['profit']:,}", ("yes" if r["sound"] else "NO") if i == 0 else "")
    console.print(table)
    slashes = slash_reports(state)
    if slashes:
        st = Table(title="slashed")
        for col in ("kind", "offender", "evidence", "slashed", "to reporter", "to pool", "height"):
            st.add_column(col)
        for s in slashes:
            st.add_row(s["kind"], s["offender"][:12], s["evidence"], f"{s['slashed']:,}", f"{s['to_reporter']:,}",
                       f"{s['to_pool']:,}", str(s["height"]))
        console.print(st)


@click.group()
def econ() -> None:
    """Economic security: attack costs per policy, and a Monte-Carlo of cheaters' profits."""


@econ.command("report")
@ledger_option()
@json_option
def report(ledger_url: str, as_json: bool) -> None:
    """Per policy: each attack path, its cost, the payout per period and the profit."""
    try:
        state = asyncio.run(replay_ledger(ledger_url))
    except FaultproofError as e:
        raise OperatorError(f"cannot read the ledger at {ledger_url}: {e} (is it running? --ledger URL)") from None
    except IntegrityError as e:
        raise OperatorError(f"the ledger's entries do not verify: {e}") from None
    if as_json:
        click.echo(json.dumps({"height": state.height, "policies": policy_reports(state, state.time_ms),
                               "slashes": slash_reports(state)}, indent=1))
        return
    render_report(state, Console())


# --------------------------------------------------------------------------- evidence


def load_evidence(path: Path) -> Message:
    """Slashing evidence from FILE: its msgpack bytes, or JSON `{"type": "<name>", ...fields}`."""
    from faultproof.messages import ECON_TX_TYPES, GroupQuorumCertificate, decode_any

    kinds = tuple(t for t in ECON_TX_TYPES if t is not GroupQuorumCertificate)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise OperatorError(f"cannot read {path}: {e.strerror}") from None
    try:
        if raw[:1] in (b"{", b" ", b"\n"):
            obj = json.loads(raw)
            by_name = {t.NAME: t for t in kinds}
            if not isinstance(obj, dict) or obj.get("type") not in by_name:
                raise OperatorError(f"{path}: JSON evidence needs \"type\": one of {sorted(by_name)}")
            return by_name[obj["type"]].from_json({k: v for k, v in obj.items() if k != "type"})
        return decode_any(raw, allowed=kinds)
    except (DecodeError, ValueError) as e:
        raise OperatorError(f"{path} is not slashing evidence: {e}") from None


@econ.command("evidence")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@ledger_option()
def evidence(file: Path, ledger_url: str) -> None:
    """Submit slashing evidence FILE (vote-equivocation, contradicting-approve, frame-equivocation)."""
    from ledger.client import LedgerClient

    tx = load_evidence(file)

    async def go() -> dict[str, Any]:
        async with LedgerClient(ledger_url) as client:
            r = await client.submit(tx)
            return {"height": r.height, "kind": r.kind}

    try:
        click.echo(json.dumps(asyncio.run(go())))
    except FaultproofError as e:
        raise OperatorError(f"refused: {e.reason.value}: {e.message}") from None


# --------------------------------------------------------------------------- simulate


def devnet_params(config: Path) -> SimParams:
    """The Monte-Carlo parameters of the devnet: its [policy], [network] and [econ] sections."""
    from cli.devnet.plan import load_config

    cfg = load_config(config)
    pol, net, ec = cfg.get("policy", {}), cfg.get("network", {}), cfg.get("econ", {})
    period_ms = int(pol.get("period_ms", 3_600_000))
    term_days = int(pol.get("term_days", 30))
    return SimParams(
        periods=YEAR_MS // period_ms, payout=int(pol.get("amount", 1_000_000)),
        coverage=int(pol.get("coverage", 5_000_000)) * 365 // term_days,
        device_bond=int(ec.get("device_bond", 0)), staging_cost=int(ec.get("staging_cost", 0)),
        declared_staging_cost=int(ec.get("staging_cost", 0)), max_staging_cost=int(ec.get("max_staging_cost", 0)),
        oracles=int(net.get("oracles", 5)), k=int(net.get("threshold", 4)),
        oracle_bond=int(ec.get("oracle_bond", 0)), reporter_share_bps=int(ec.get("reporter_share_bps", 0)),
        **{k: v for k, v in ec.get("simulate", {}).items()})


def _coerce(params: SimParams, assignments: tuple[str, ...]) -> SimParams:
    fields = {f.name: f for f in dataclasses.fields(SimParams)}
    changes: dict[str, Any] = {}
    for item in assignments:
        name, sep, value = item.partition("=")
        if not sep or name not in fields:
            raise click.BadParameter(f"{item!r}: expected name=value with name one of {sorted(fields)}",
                                     param_hint="--set")
        kind = type(getattr(params, name))
        try:
            changes[name] = kind(value)
        except ValueError:
            raise click.BadParameter(f"{item!r}: {name} takes a {kind.__name__}", param_hint="--set") from None
    return dataclasses.replace(params, **changes)


@econ.command("simulate")
@click.option("--preset", type=click.Choice(["devnet", "default"]), default="devnet", show_default=True,
              help="devnet: the parameters of configs/devnet.toml; default: SimParams' defaults.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("configs/devnet.toml"), show_default=True)
@click.option("--years", type=int, default=None, help="Simulated years (default 1000).")
@click.option("--seed", type=int, default=None)
@click.option("--set", "assignments", multiple=True, help="Override a parameter: name=value (repeatable).")
@json_option
def simulate_cmd(preset: str, config_path: Path, years: int | None, seed: int | None, assignments: tuple[str, ...],
                 as_json: bool) -> None:
    """Seeded Monte-Carlo: pool balance, payouts to cheaters, slashed amounts, cheaters' net profit."""
    params = devnet_params(config_path) if preset == "devnet" else SimParams()
    params = _coerce(params, assignments)
    if years is not None:
        params = dataclasses.replace(params, years=years)
    if seed is not None:
        params = dataclasses.replace(params, seed=seed)
    try:
        result = simulate(params)
    except ValueError as e:
        raise OperatorError(f"invalid parameters: {e} (fix with --set name=value)") from None
    s = result.summary()
    if as_json:
        click.echo(json.dumps(s, indent=1))
        return
    console = Console()
    sd = s["soundness"]
    console.print(f"{s['years']} seeded years (seed {params.seed}), {params.operators} operators "
                  f"({params.dishonest_share:.0%} dishonest), m={params.m}, oracles {params.k}-of-{params.oracles} "
                  f"({params.dishonest_oracles} dishonest)")
    console.print(f"soundness rule: payout {sd['payout']:,} vs cheapest attack {sd['cheapest']} {sd['cost']:,} -> "
                  f"profit {sd['profit']:,} ({'sound' if sd['sound'] else 'UNSOUND: the ledger refuses it'})")
    table = Table()
    table.add_column("over all years")
    table.add_column("amount", justify="right")
    for label, value in (("pool result (premiums + slashed - payouts)", s["pool_result"]),
                         ("pool worst year", s["pool_worst_year"]),
                         ("premiums", s["premiums"]), ("honest payouts", s["honest_payouts"]),
                         ("payouts to cheaters", s["payouts_to_cheaters"]),
                         ("slashed device bonds", s["slashed"]["devices"]),
                         ("slashed oracle bonds", s["slashed"]["oracles"]),
                         ("  to reporters", s["slashed"]["to_reporters"]), ("  to the pool", s["slashed"]["to_pool"]),
                         ("cheaters' staging spent", s["staging_spent"]),
                         ("cheaters' net profit", s["cheaters_net_profit"]),
                         ("  of which before premiums", s["cheaters_profit_before_premiums"]),
                         ("cheaters' best year", s["cheaters_best_year"]),
                         ("years cheaters profited", s["cheaters_profitable_years"])):
        table.add_row(label, f"{value:,}")
    console.print(table)
