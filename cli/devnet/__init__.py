"""`faultproof devnet`: the whole system, live, in one command (`make devnet`).

Starts on 127.0.0.1 only: the ledger service, n oracle processes, an MQTT broker, one agent, and
simulated devices (in this process, speaking MQTT like devices) of which some develop faults and
the rest stay healthy but noisy, as `configs/devnet.toml` says. A development genesis funds the
pool, registers the circuit, enrols the agent and devices and issues their policies.

`--settlement evm` runs the same network on the InsurancePool contract on a local anvil chain
(`cli/devnet/chain.py`, DESIGN §13) and judges from the contract's events and state.

The verdict is built from the ledger alone (its entries and receipts, verified offline), never
from the agent's or this orchestrator's bookkeeping: exit 0 only if every injected fault was paid
exactly once, no healthy device was paid, and `faultproof ledger verify` passes. Every process it
started is stopped at the end, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import click

from cli.devnet.plan import (
    DEFAULT_CONFIG,
    DevicePlan,
    Progress,
    load_config,
    plan_devices,
    trigger_params,
)


@click.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_CONFIG,
              show_default=True)
@click.option("--oracles", type=int, default=None, help="Oracle processes (default from the config: 5).")
@click.option("--threshold", type=int, default=None, help="k of n (default from the config: 4).")
@click.option("--devices", type=int, default=None, help="Simulated devices (default from the config: 8).")
@click.option("--seconds", type=float, default=None, help="Give up after this long (default from the config).")
@click.option("--seed", type=int, default=None, help="Sensor noise seed.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the summary as JSON here.")
@click.option("--keep-running", is_flag=True, help="Leave the network up after the summary (Ctrl-C stops it).")
@click.option("--keys", type=click.Choice(["file", "pkcs11"]), default="file", show_default=True,
              help="pkcs11: every admin, ledger, oracle, agent and device key in a SoftHSM2 token (DESIGN §15); "
                   "with --settlement evm the oracles' chain keys, the agents' and the devices' keys (the summary "
                   "says what stays a file).")
@click.option("--settlement", type=click.Choice(["sqlite", "evm"]), default="sqlite", show_default=True,
              help="evm: settle on the InsurancePool contract on a local anvil chain (DESIGN §13) instead of "
                   "the ledger service; leaves out what the contract does not enforce yet (the summary says what).")
def devnet(config_path: Path, oracles: int | None, threshold: int | None, devices: int | None,
           seconds: float | None, seed: int | None, json_path: Path | None, keep_running: bool, keys: str,
           settlement: str) -> None:
    """Run a local network end to end: ledger, oracles, broker, agent, devices; claims get paid."""
    cfg = load_config(config_path)
    net_cfg = dict(cfg.get("network", {}))
    for key, value in (("oracles", oracles), ("threshold", threshold), ("devices", devices),
                       ("seconds", seconds), ("seed", seed)):
        if value is not None:
            net_cfg[key] = value
    n = int(net_cfg.get("oracles", 5))
    k = int(net_cfg.get("threshold", (2 * n) // 3 + 1))
    if not n // 2 + 1 <= k <= n:
        raise click.BadParameter(f"threshold must satisfy floor(n/2)+1 <= k <= n (n={n})", param_hint="--threshold")
    from cli.devnet.run import DevnetRun

    # SIGTERM stops the network as cleanly as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    if settlement == "evm":
        from cli.devnet.chain import EvmDevnetRun

        run: DevnetRun = EvmDevnetRun(cfg, net_cfg, n, k, keep_running=keep_running, keys=keys)
    else:
        run = DevnetRun(cfg, net_cfg, n, k, keep_running=keep_running, keys=keys)
    try:
        summary = run.run(json_path)
    except KeyboardInterrupt:
        run.console.print("[yellow]interrupted: stopping every process[/yellow]")
        run.shutdown()
        sys.exit(130)
    sys.exit(0 if summary["ok"] else 1)


__all__ = ["devnet", "DevicePlan", "Progress", "load_config", "plan_devices", "trigger_params"]
