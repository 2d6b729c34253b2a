"""`faultproof init DIR`: lay out a consistent deployment in one directory.

    faultproof init /srv/faultproof --oracles 3 [--threshold K] [--base-port 8700] [--production]

Writes (keys 0600 in a 0700 folder; refuses to overwrite anything that exists):
    keys/admin.key keys/ledger.key keys/oracle-<i>.key keys/agent.key
    ledger.toml oracle-<i>.toml agent.toml     configs that agree with each other: the genesis lists
                                               the oracle keys, every oracle pins the ledger_id and
                                               bootstraps from the others, the agent knows every
                                               oracle and the ledger
    data/ledger/ledger.db                      the ledger, created (genesis) so its id can be pinned
    data/ devices/                             where the services keep their state (--data-dir
                                               puts data elsewhere, e.g. /var/lib/faultproof)
then prints the next commands to run, in order. Every path in the configs is relative to the
config file, so the directory can be moved as a whole.

Pure layout: `plan_deployment` returns the files as values (tested without a disk); the command
writes them. This file must never print or log a key: it prints public ids only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import click
import tomli_w

from faultproof.identity import Identity, KeyFileError
from faultproof.operator_errors import OperatorError


@dataclass(frozen=True)
class Ports:
    """Every port a deployment uses, from one base so that two deployments on one host can coexist."""

    base: int
    oracles: int

    @property
    def ledger(self) -> int:
        return self.base

    def oracle_http(self, i: int) -> int:
        return self.base + 10 + i

    def oracle_gossip(self, i: int) -> int:
        return self.base + 40 + i

    @property
    def agent_http(self) -> int:
        return self.base + 100

    @property
    def mqtt(self) -> int:
        return self.base + 183


@dataclass(frozen=True)
class Deployment:
    """The config documents of a deployment, keyed by file name (relative to its directory)."""

    configs: dict[str, dict[str, object]]
    key_names: tuple[str, ...]
    next_steps: tuple[str, ...]


def oracle_multiaddr(public_key: bytes, port: int) -> str:
    from faultproof.gossip.keys import peer_id_for_public_key

    return f"/ip4/127.0.0.1/tcp/{port}/p2p/{peer_id_for_public_key(public_key)}"


def plan_deployment(root: Path, oracle_keys: list[bytes], *, threshold: int, base_port: int,
                    production: bool, data_dir: str = "data", ledger_id: bytes | None = None) -> Deployment:
    """The configs for a ledger, len(oracle_keys) oracles and one agent, all on 127.0.0.1.

    `data_dir` is where the services keep state: relative to the configs' folder, or absolute (a
    systemd deployment keeps configs in /etc/faultproof, read-only, and data in /var/lib/faultproof).
    """
    data = data_dir.rstrip("/")
    n = len(oracle_keys)
    ports = Ports(base_port, n)
    ledger_url = f"http://127.0.0.1:{ports.ledger}"
    configs: dict[str, dict[str, object]] = {
        "ledger.toml": {
            "ledger": {"db": f"{data}/ledger/ledger.db", "ledger_key": "keys/ledger.key"},
            "genesis": {"admin_key": "keys/admin.key",
                        "oracle_keys": [f"keys/oracle-{i}.key" for i in range(1, n + 1)],
                        "threshold": threshold, "development": not production},
            "server": {"host": "127.0.0.1", "port": ports.ledger},
        },
    }
    peers = [oracle_multiaddr(pk, ports.oracle_gossip(i)) for i, pk in enumerate(oracle_keys, start=1)]
    for i in range(1, n + 1):
        configs[f"oracle-{i}.toml"] = {
            "oracle": {"key_file": f"keys/oracle-{i}.key", "data_dir": f"{data}/oracle-{i}",
                       "ledger_url": ledger_url, **({"ledger_id": ledger_id.hex()} if ledger_id else {})},
            "http": {"host": "127.0.0.1", "port": ports.oracle_http(i)},
            "gossip": {"port": ports.oracle_gossip(i),
                       "bootstrap": [p for j, p in enumerate(peers, start=1) if j != i]},
        }
    configs["agent.toml"] = {
        "agent": {"key_file": "keys/agent.key", "data_dir": f"{data}/agent", "blinding_keys_dir": "devices",
                  "ledger_url": ledger_url},
        "http": {"host": "127.0.0.1", "port": ports.agent_http},
        "mqtt": {"enabled": False, "host": "127.0.0.1", "port": ports.mqtt},
        "gossip": {"enabled": True, "port": 0, "bootstrap": peers},
        "oracles": {"urls": [f"http://127.0.0.1:{ports.oracle_http(i)}" for i in range(1, n + 1)]},
    }
    here = str(root)
    steps = (
        f"faultproof ledger serve --config {here}/ledger.toml &",
        *(f"faultproof oracle run --config {here}/oracle-{i}.toml &" for i in range(1, n + 1)),
        f"export FAULTPROOF_LEDGER={ledger_url} FAULTPROOF_ADMIN_KEY={here}/keys/admin.key",
        "faultproof admin deposit 1000000",
        f"faultproof admin enrol-agent $(faultproof public-key {here}/keys/agent.key)",
        "faultproof circuits build --n 16   # then: faultproof admin register-circuit (it prints circuit_id)",
        f"faultproof device provision --out {here}/devices   # then: faultproof admin enrol-device --from FILE",
        f"faultproof agent run --config {here}/agent.toml &",
    )
    key_names = ("admin", "ledger", *(f"oracle-{i}" for i in range(1, n + 1)), "agent")
    return Deployment(configs, key_names, steps)


def _create_ledger(config: Path) -> bytes:
    """What `faultproof ledger init` does, with the keys just made: the genesis and the database."""
    from ledger.cli import build_genesis
    from ledger.config import ConfigError, load_config
    from ledger.service import LedgerService
    from ledger.store import StoreError

    try:
        cfg = load_config(config)
        ledger_key = Identity.load(cfg.ledger_key)
        genesis = build_genesis(cfg, ledger_key, dev_keys=False)
        LedgerService.create(cfg.db, genesis, ledger_key, synchronous=cfg.synchronous).close()
    except (ConfigError, KeyFileError, StoreError) as e:
        raise OperatorError(str(e)) from None
    return genesis.ledger_id


def _header(name: str) -> str:
    return (f"# {name}: written by `faultproof init`. Paths are relative to this file's folder.\n"
            "# Check it with `faultproof config validate " + name + "` before starting the service.\n\n")


@click.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--oracles", type=click.IntRange(1, 64), default=3, show_default=True, help="Oracle nodes (n).")
@click.option("--threshold", type=int, default=0, help="k of n (0: the default floor(2n/3)+1).")
@click.option("--base-port", type=click.IntRange(1024, 65000), default=8700, show_default=True,
              help="Ledger port; oracles use base+10+i (HTTP) and base+40+i (gossip), the agent base+100.")
@click.option("--production", is_flag=True, help="A production genesis (refuses development circuits).")
@click.option("--data-dir", default="data", show_default=True,
              help="Where services keep state: relative to DIRECTORY, or absolute (e.g. /var/lib/faultproof).")
def init(directory: Path, oracles: int, threshold: int, base_port: int, production: bool, data_dir: str) -> None:
    """Lay out a deployment: keys, agreeing configs for ledger, oracles and agent, next commands."""
    if threshold and not oracles // 2 + 1 <= threshold <= oracles:
        raise click.UsageError(f"--threshold must satisfy floor(n/2)+1 <= k <= n (n = {oracles})")
    root = directory.resolve()
    if root.exists() and any(root.iterdir()):
        raise OperatorError(f"{root} is not empty; give a new or empty directory")
    keys_dir = root / "keys"
    try:
        keys_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(keys_dir, 0o700)
        (root / data_dir).mkdir(parents=True, exist_ok=True)
        (root / "devices").mkdir(exist_ok=True)
        os.chmod(root / "devices", 0o700)  # blinding keys land here
    except OSError as e:
        raise OperatorError(f"cannot create {e.filename}: {e.strerror} (give a DIRECTORY, and --data-dir, "
                            "that you can write)") from None
    identities = {}
    n_keys = ("admin", "ledger", *(f"oracle-{i}" for i in range(1, oracles + 1)), "agent")
    for name in n_keys:
        identity = Identity.generate()
        try:
            identity.save(keys_dir / f"{name}.key")
        except KeyFileError as e:
            raise OperatorError(str(e)) from None
        identities[name] = identity
    oracle_keys = [identities[f"oracle-{i}"].public_key for i in range(1, oracles + 1)]
    draft = plan_deployment(root, oracle_keys, threshold=threshold, base_port=base_port, production=production,
                            data_dir=data_dir)
    (root / "ledger.toml").write_text(_header("ledger.toml") + tomli_w.dumps(draft.configs["ledger.toml"]))
    # The genesis now, so that every oracle's config can pin the ledger_id it serves (DESIGN §11).
    ledger_id = _create_ledger(root / "ledger.toml")
    plan = plan_deployment(root, oracle_keys, threshold=threshold, base_port=base_port, production=production,
                           data_dir=data_dir, ledger_id=ledger_id)
    for name, doc in plan.configs.items():
        (root / name).write_text(_header(name) + tomli_w.dumps(doc))
    click.echo(f"deployment in {root}")
    click.echo(f"  ledger_id  {ledger_id.hex()}")
    for name in plan.key_names:
        click.echo(f"  {name:<10} {identities[name].public_key.hex()}")
    click.echo("next:")
    for step in plan.next_steps:
        click.echo(f"  {step}")
