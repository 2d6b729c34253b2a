"""`faultproof circuits ...`: build (or import a ceremony for) the malfunction circuit.

Registered lazily by cli/__init__.py as "circuits" -> "faultproof.zk.cli:circuits". Prints what
`register_circuit` needs: the canonical verification key hash, n, the constraint count, the
production flag, the ceremony transcript hash and the path of the canonical verification key file.
A development setup is announced with a loud UNSAFE warning on stderr.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from faultproof.errors import FaultproofError
from faultproof.operator_errors import OperatorError
from faultproof.zk.circuit import BACKENDS, build

_UNSAFE = """\
!!! UNSAFE: DEVELOPMENT SETUP !!!
This circuit's keys come from a single-party setup on this machine. Whoever ran it (or can read
its memory) can forge proofs for ANY statement. Never register it on a production ledger: run a
multi-party ceremony with snarkjs and import it with --zkey (see docs/circuits.md)."""


@click.group()
def circuits() -> None:
    """Zero-knowledge malfunction circuits (Circom 2, Groth16 over BN254)."""


@circuits.command("build")
@click.option("--n", "n", type=int, default=16, show_default=True, help="Window size (readings).")
@click.option("--zkey", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Import this snarkjs ceremony .zkey instead of a development setup.")
@click.option("--backend", type=click.Choice(BACKENDS), default="groth16py", show_default=True)
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Circuit cache (default $FAULTPROOF_CACHE_DIR or <repo>/.cache/circuits).")
def build_cmd(n: int, zkey: Path | None, backend: str, cache_dir: Path | None) -> None:
    """Compile and set up (or import a ceremony for) the circuit of window size N."""
    try:
        built = build(n, zkey=zkey, cache_dir=cache_dir, backend=backend)
    except FaultproofError as e:
        raise OperatorError(str(e)) from None
    except OSError as e:
        raise OperatorError(_cache_problem(e)) from None
    meta = built.meta
    if not meta.production:
        click.secho(_UNSAFE, fg="red", bold=True, err=True)
    click.echo(f"vkey_hash: {meta.vkey_hash.hex()}")
    click.echo(f"n: {meta.n}")
    click.echo(f"constraints: {meta.constraints}")
    click.echo(f"layout_version: {meta.layout_version}")
    click.echo(f"production: {str(meta.production).lower()}")
    click.echo(f"ceremony_transcript_hash: {meta.ceremony_transcript_hash.hex()}")
    click.echo(f"backend: {meta.backend}")
    click.echo(f"vkey: {built.vkey_path}")
    # The id `admin register-circuit` will print and policies name (`issue-policy --circuit-id`).
    from faultproof.messages import circuit_id

    click.echo(f"circuit_id: {circuit_id(built.vkey_path.read_bytes(), meta.n, meta.layout_version).hex()}")


@circuits.command("witness")
@click.option("--n", "sizes", type=int, multiple=True, default=(16, 64), show_default=True,
              help="Window sizes to build a native witness generator for (repeatable).")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Circuit cache (default $FAULTPROOF_CACHE_DIR or <repo>/.cache/circuits).")
def witness_cmd(sizes: tuple[int, ...], cache_dir: Path | None) -> None:
    """Build the native (C++) witness generators; provers fall back to WebAssembly without them."""
    from faultproof.zk import native
    from faultproof.zk.circuit import build_native

    if not native.available():
        click.echo("warning: g++, nasm or circom2 missing: proofs use the slower WebAssembly "
                   "witness path (fix: make setup)", err=True)
        return
    # Each build is one single-threaded compiler run: build the sizes side by side, one per core.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, min(len(sizes), os.cpu_count() or 1))) as pool:
        builds = {n: pool.submit(build_native, n, cache_dir=cache_dir) for n in sizes}
        for n, build in builds.items():
            try:
                path = build.result()
            except native.NativeWitnessError as e:
                raise OperatorError(f"native witness generator for n={n}: {e}") from None
            except OSError as e:
                raise OperatorError(_cache_problem(e)) from None
            click.echo(f"n={n}: {path}")


def _cache_problem(e: OSError) -> str:
    return (f"cannot use the circuit cache at {e.filename}: {e.strerror} "
            "(choose a writable folder with --cache-dir or FAULTPROOF_CACHE_DIR)")
