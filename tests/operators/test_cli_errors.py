"""Every command meets bad input with one line on stderr, exit code 2, never a traceback.

The commands are enumerated from the `faultproof` command tree itself, so a new command is
audited without editing this file. For each command the audit derives representative bad inputs
from its parameters: a missing input file, a key file that is not a key, an output path that
cannot be created, a value of the wrong type, an id that is not hex, and a ledger, oracle or agent
URL on 127.0.0.1 where nothing listens. Each must end with exit code 2 and exactly one non-empty
stderr line, and no "Traceback" anywhere.

Runs in-process through click's CliRunner (fast: ~1 s for the whole tree); a few cases also run as
real subprocesses (`python -m cli`) to show that the in-process harness sees what an operator
sees. Services (commands that run until stopped: they take --log-level, or are the dashboard and
the devnet) are only given inputs that must stop them before they serve: a missing config file,
a wrong type. What they do when the ledger is down at run time is tested in test_services.py.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from nacl.pwhash import argon2id

from cli import main
from faultproof import keyfile
from faultproof.identity import write_secret

NO_INPUT = {"reasons"}  # takes nothing an operator can get wrong
LONG_RUNNING = {"dashboard", "devnet"}  # besides every command with --log-level
# Audited in a process of their own: a PKCS#11 library reads SOFTHSM2_CONF once per process, so
# loading it here would pin the token store for every test that follows in this one.
OWN_PROCESS = {"token"}
OUTPUT_PARAMS = {"out", "out_dir", "directory", "dir", "cache_dir", "json_path", "incidents"}
# string options that name a thing elsewhere, and a value naming nothing
NAMES_THAT_POINT: dict[str, Callable[[Fixtures], str]] = {
    "module": lambda fx: str(fx.missing.with_suffix(".so")), "token_label": lambda fx: "no-such-token"}
PASSPHRASE = "audit passphrase"
PLAUSIBLE = {"trigger_spec": "kind=count_above,threshold=3000,count=4"}  # valid values a hex id would not be
URL_ENV = ("FAULTPROOF_LEDGER", "FAULTPROOF_ORACLE", "FAULTPROOF_AGENT")


def _leaves(cmd: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    if isinstance(cmd, click.Group):
        ctx = click.Context(cmd)
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            assert sub is not None, f"{' '.join((*path, name))} is listed but cannot be loaded"
            yield from _leaves(sub, (*path, name))
    else:
        yield path, cmd


COMMANDS = dict(_leaves(main))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Fixtures:
    root: Path
    closed_url: str
    key: Path  # a valid Ed25519 key file (0600)
    blind: Path  # a valid blinding key file
    garbage: Path  # an input file that is nothing we read
    not_a_key: Path  # a 0600 file that is not a key
    missing: Path
    under_a_file: Path  # an output path whose parent is a regular file
    env: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> Fixtures:
    root = tmp_path_factory.mktemp("cli-errors")
    runner = CliRunner()
    made = runner.invoke(main, ["device", "provision", "--out", str(root / "dev"), "--name", "d"])
    assert made.exit_code == 0, made.output
    # The valid key is encrypted at rest, as a deployment's should be (a plaintext key rightly adds a
    # warning line); the cheapest KDF cost keeps the audit fast.
    key = root / "dev" / "d.key"
    seed = bytes.fromhex(key.read_text().strip())
    key.unlink()
    write_secret(key, keyfile.seal(seed, PASSPHRASE.encode(), opslimit=argon2id.OPSLIMIT_MIN,
                                   memlimit=argon2id.MEMLIMIT_MIN))
    garbage = root / "garbage.toml"
    garbage.write_text("this is [not what any command reads\n")
    not_a_key = root / "not-a.key"
    not_a_key.write_text("not a key\n")
    not_a_key.chmod(0o600)
    closed_url = f"http://127.0.0.1:{_closed_port()}"
    env = dict.fromkeys(URL_ENV, closed_url)
    env.update(FAULTPROOF_ADMIN_KEY=str(key), FAULTPROOF_KEY_PASSPHRASE=PASSPHRASE, FAULTPROOF_CACHE_DIR=os.environ.get(
        "FAULTPROOF_CACHE_DIR", str(root / "cache")))
    return Fixtures(root=root, closed_url=closed_url, key=root / "dev" / "d.key", blind=root / "dev" / "d.blind",
                    garbage=garbage, not_a_key=not_a_key, missing=root / "no-such-file.toml",
                    under_a_file=garbage / "out", env=env)


def _is_service(path: tuple[str, ...], cmd: click.Command) -> bool:
    return " ".join(path) in LONG_RUNNING or any(p.name == "log_level" for p in cmd.params)


def _urlish(p: click.Parameter) -> bool:
    """A service's URL: read from FAULTPROOF_LEDGER/ORACLE/AGENT, defaulting to one, or a base URL."""
    return (getattr(p, "envvar", None) in URL_ENV or str(p.default).startswith("http")
            or "base URL" in (getattr(p, "help", None) or ""))


def _numeric(p: click.Parameter) -> bool:
    return isinstance(p.type, (click.types.IntParamType, click.types.FloatParamType))


def _keyish(p: click.Parameter) -> bool:
    """A key file's path (a Path, or a string that may also be pkcs11:TOKEN/LABEL)."""
    name = p.name or ""
    return ("key" in name and name != "public_key" and not _numeric(p)
            and isinstance(p.type, (click.Path, click.types.StringParamType)))


def _plausible(p: click.Parameter, fx: Fixtures) -> str:
    """A value that is not what a case is about: valid where we can make it valid."""
    name = p.name or ""
    if isinstance(p.type, click.Choice):
        return str(p.type.choices[0])
    if _numeric(p):
        low = getattr(p.type, "min", None)
        return str(low if low is not None and low > 1 else 1)
    if isinstance(p.type, click.Path):
        if name in OUTPUT_PARAMS:
            return str(fx.root / "outputs" / f"{name}-{len(os.listdir(fx.root))}")
        if "blind" in name:
            return str(fx.blind)
        return str(fx.key if _keyish(p) else fx.garbage)
    if _keyish(p):
        return str(fx.key)
    if _urlish(p):
        return fx.closed_url
    if name in PLAUSIBLE:
        return PLAUSIBLE[name]
    return "ab" * 32  # ids, hashes and keys are 32 hex bytes


def _args(cmd: click.Command, fx: Fixtures, target: click.Parameter | None = None, bad: str = "") -> list[str]:
    out: list[str] = []
    for p in cmd.params:
        if p.name == "help" or (getattr(p, "is_flag", False) and p is not target):
            continue
        if p is target:
            value = bad
        elif p.required or _urlish(p):
            value = _plausible(p, fx)  # optional URLs too: never the default, where a real service may listen
        else:
            continue
        if isinstance(p, click.Argument):
            out.append(value)
        else:
            out += [p.opts[0], value]
    return out


def _cases(path: tuple[str, ...], cmd: click.Command, fx: Fixtures) -> list[tuple[str, list[str], dict[str, str]]]:
    service = _is_service(path, cmd)
    cases: list[tuple[str, list[str], dict[str, str]]] = []
    params = [p for p in cmd.params if p.name != "help"]
    for p in params:
        if _keyish(p) and not isinstance(p.type, click.Path) and not service:
            cases.append((f"{p.name}: not a key", _args(cmd, fx, p, str(fx.not_a_key)), {}))
        if isinstance(p.type, click.Path):
            if p.name in OUTPUT_PARAMS:
                if not service:
                    cases.append((f"{p.name}: cannot be created", _args(cmd, fx, p, str(fx.under_a_file)), {}))
                continue
            cases.append((f"{p.name}: missing file", _args(cmd, fx, p, str(fx.missing)), {}))
            if not service:
                bad = fx.not_a_key if _keyish(p) else fx.garbage
                cases.append((f"{p.name}: not what it should be", _args(cmd, fx, p, str(bad)), {}))
    for p in params:
        if p.name in NAMES_THAT_POINT and not isinstance(p.type, click.Path):
            cases.append((f"{p.name}: names nothing", _args(cmd, fx, p, NAMES_THAT_POINT[p.name](fx)), {}))
    numeric = [p for p in params if _numeric(p)]
    if numeric:
        cases.append((f"{numeric[0].name}: wrong type", _args(cmd, fx, numeric[0], "x"), {}))
    ids = [p for p in params if (p.name or "").endswith("_id") and isinstance(p.type, click.types.StringParamType)]
    if ids and not service:
        cases.append((f"{ids[0].name}: not hex", _args(cmd, fx, ids[0], "zz"), {}))
    if not service and (path[0] == "admin" or any(_urlish(p) for p in params)):
        cases.append(("unreachable service", _args(cmd, fx), {}))
    if path[0] == "admin" and not service:
        cases.append(("admin key is not a key", _args(cmd, fx), {"FAULTPROOF_ADMIN_KEY": str(fx.not_a_key)}))
    return cases


def _subprocess(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "import sys; from cli import main; sys.exit(main(prog_name='faultproof'))",
                           *args], capture_output=True, text=True, timeout=60, env={**os.environ, **env}, cwd=cwd)


def _check(label: str, exit_code: int, stderr: str, stdout: str) -> str | None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    if exit_code != 2 or len(lines) != 1 or "Traceback" in stderr + stdout:
        return f"{label}: exit {exit_code}, stderr {len(lines)} line(s):\n    " + "\n    ".join(
            (stderr.strip() or "(nothing)").splitlines()[-8:])
    return None


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=" ".join)
def test_every_command_meets_bad_input_with_one_line_and_exit_2(
        path: tuple[str, ...], fx: Fixtures, monkeypatch: pytest.MonkeyPatch) -> None:
    name = " ".join(path)
    if name in NO_INPUT:
        return
    monkeypatch.chdir(fx.root)  # relative defaults (devnet-data, .cache) land in the test's folder
    # As in a real process: no handler on the root logger, so a log line reaches stderr (logging's
    # last resort) and is counted (pytest's capture handler would swallow it).
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    cases = _cases(path, COMMANDS[path], fx)
    assert cases, f"`faultproof {name}` has no representative bad input: give the audit one"
    failures = []
    for label, args, env in cases:
        where = f"faultproof {name} {' '.join(args)}  [{label}]"
        if path[0] in OWN_PROCESS:
            real = _subprocess([*path, *args], {**fx.env, **env}, fx.root)
            problem = _check(where, real.returncode, real.stderr, real.stdout)
        else:
            result = CliRunner().invoke(main, [*path, *args], env={**fx.env, **env}, prog_name="faultproof")
            uncaught = result.exception if not isinstance(result.exception, (SystemExit, type(None))) else None
            problem = _check(where, result.exit_code,
                             result.stderr + (f"Traceback (in-process): {uncaught!r}" if uncaught else ""),
                             result.stdout)
        if problem:
            failures.append(problem)
    assert not failures, "\n".join(failures)


def test_the_in_process_audit_sees_what_an_operator_sees(fx: Fixtures, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same bad inputs through a real process: the same exit code and the same one stderr line."""
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    samples = [
        ["admin", "deposit", "x"],  # click's own wrong type
        ["--no-such-option"],  # the root's own options
        ["public-key", str(fx.not_a_key)],  # a key file that is not a key
        ["admin", "--url", fx.closed_url, "enrol-agent", "ab" * 32],  # a valid (encrypted) key, a ledger down
        ["pool", "status", "--ledger", fx.closed_url],  # a ledger that is down
        ["ledger", "serve", "--config", str(fx.missing)],  # a service's missing config
    ]
    for args in samples:
        inproc = CliRunner().invoke(main, args, env=fx.env, prog_name="faultproof")
        real = _subprocess(args, fx.env, fx.root)
        assert (real.returncode, real.stderr.strip()) == (inproc.exit_code, inproc.stderr.strip()), args
        assert _check(" ".join(args), real.returncode, real.stderr, real.stdout) is None, real.stderr
